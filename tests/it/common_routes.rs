//! The routes every role serves beside its API, on a running broker: `/health`, `/ready`, `/metrics`
//! (Prometheus text with HTTP and broker families) and `/version`.

use serde_json::json;

use crate::common::{element, metric_sum, Broker};

#[test]
fn health_and_ready_answer_200_once_started() {
    let broker = Broker::start();
    let health = broker.get("/health");
    assert_eq!(health.status, 200, "{health:?}");
    let ready = broker.get("/ready");
    assert_eq!(ready.status, 200, "{ready:?}");
    assert!(ready.json()["status"].is_string(), "ready answer has no status: {}", ready.body);
}

#[test]
fn version_reports_version_commit_and_date() {
    let broker = Broker::start();
    let response = broker.get("/version");
    assert_eq!(response.status, 200);
    let body = response.json();
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"), "{body}");
    for key in ["commit", "date"] {
        assert!(body[key].as_str().is_some_and(|v| !v.is_empty()), "/version lacks `{key}`: {body}");
    }
}

#[test]
fn metrics_are_prometheus_text_with_http_and_broker_families() {
    let broker = Broker::start();
    broker.update_ok("UPDATE", &[element("Metric.1", "T", &[("x", "integer", json!(1))])]);
    broker.subscribe_ok(&json!({"entities":[{"id":"Nothing.*","isPattern":true}],"reference":"http://127.0.0.1:9"}));
    let text = broker.metrics();
    assert!(text.contains("# TYPE"), "not Prometheus text: {text}");
    assert!(text.contains("fogflow_http_requests"), "no fogflow_http_requests in:\n{text}");
    assert!(
        text.lines().any(|l| l.starts_with("fogflow_http_requests") && l.contains("updateContext")),
        "the update request is not counted under its route:\n{text}"
    );
    let entities = metric_sum(&text, &["entit"]).unwrap_or_else(|| panic!("no entity metric in:\n{text}"));
    assert!(entities >= 1.0, "entity metric should count the created entity:\n{text}");
    let subscriptions =
        metric_sum(&text, &["subscription"]).unwrap_or_else(|| panic!("no subscription metric in:\n{text}"));
    assert!(subscriptions >= 1.0, "subscription metric should count the subscription:\n{text}");
    for outcome in ["sent", "fail", "drop"] {
        assert!(
            metric_sum(&text, &["notification", outcome]).is_some(),
            "no notification `{outcome}` metric in:\n{text}"
        );
    }
}

#[test]
fn unknown_top_level_path_is_404() {
    let broker = Broker::start();
    assert_eq!(broker.get("/no/such/path").status, 404);
}
