//! NGSI10 subscription management: `subscribeContext` answers, `GET /ngsi10/subscription[/{sid}]`,
//! `unsubscribeContext` and `DELETE /ngsi10/subscription/{sid}` (with 404 for unknown ids), and that a
//! cancelled subscription is never notified again.

use std::time::Duration;

use serde_json::json;

use crate::common::{assert_ngsi_error, element, find_key, Broker, Reply, Sink};

fn temperature_subscription(reference: &str) -> serde_json::Value {
    json!({"entities":[{"id":"Device.*","isPattern":true}],"attributes":["temp"],"reference":reference})
}

#[test]
fn subscribe_answers_an_id_and_the_subscription_can_be_read() {
    let broker = Broker::start();
    let sink = Sink::start();
    let response = broker.post("/ngsi10/subscribeContext", &temperature_subscription(&sink.url()));
    assert_eq!(response.status, 200, "{response:?}");
    let sid = response.json()["subscribeResponse"]["subscriptionId"].as_str().unwrap_or_default().to_string();
    assert!(!sid.is_empty(), "{}", response.body);
    let second = broker.subscribe_ok(&temperature_subscription(&sink.url()));
    assert_ne!(sid, second, "ids are unique");

    let listed = broker.get("/ngsi10/subscription");
    assert_eq!(listed.status, 200, "{listed:?}");
    let map = listed.json();
    let map = map.as_object().unwrap_or_else(|| panic!("not a map sid→subscription: {}", listed.body));
    assert!(map.contains_key(&sid) && map.contains_key(&second), "{map:?}");

    let one = broker.get(&format!("/ngsi10/subscription/{sid}"));
    assert_eq!(one.status, 200, "{one:?}");
    let subscription = one.json();
    assert_eq!(find_key(&subscription, "reference"), Some(&json!(sink.url())), "{subscription}");
    assert_eq!(
        find_key(&subscription, "entities"),
        Some(&json!([{"id":"Device.*","isPattern":true}])),
        "{subscription}"
    );

    assert_ngsi_error(&broker.get("/ngsi10/subscription/no-such-subscription"), 404);
}

#[test]
fn unsubscribe_echoes_the_id_and_unknown_ids_are_404() {
    let broker = Broker::start();
    let sid = broker.subscribe_ok(&temperature_subscription("http://127.0.0.1:9"));
    let response = broker.post("/ngsi10/unsubscribeContext", &json!({"subscriptionId": sid}));
    assert_eq!(response.status, 200, "{response:?}");
    let answer = response.json();
    assert_eq!(answer["subscriptionId"], sid.as_str(), "{answer}");
    assert_eq!(answer["statusCode"]["code"], 200, "{answer}");
    assert_eq!(broker.get(&format!("/ngsi10/subscription/{sid}")).status, 404);
    assert!(!broker.get("/ngsi10/subscription").body.contains(&sid));

    let again = broker.post("/ngsi10/unsubscribeContext", &json!({"subscriptionId": sid}));
    assert_eq!(again.status, 404, "{again:?}");
    let unknown = broker.post("/ngsi10/unsubscribeContext", &json!({"subscriptionId": "never-existed"}));
    assert_eq!(unknown.status, 404, "{unknown:?}");
}

#[test]
fn delete_subscription_route_removes_it_then_404() {
    let broker = Broker::start();
    let sid = broker.subscribe_ok(&temperature_subscription("http://127.0.0.1:9"));
    let deleted = broker.delete(&format!("/ngsi10/subscription/{sid}"));
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert_ngsi_error(&broker.get(&format!("/ngsi10/subscription/{sid}")), 404);
    assert_ngsi_error(&broker.delete(&format!("/ngsi10/subscription/{sid}")), 404);
}

#[test]
fn cancelled_subscriptions_are_not_notified() {
    let broker = Broker::start();
    let cancelled_sink = Sink::start();
    let deleted_sink = Sink::start();
    let witness = Sink::start();
    let by_unsubscribe = broker.subscribe_ok(&temperature_subscription(&cancelled_sink.url()));
    let by_delete = broker.subscribe_ok(&temperature_subscription(&deleted_sink.url()));
    broker.subscribe_ok(&temperature_subscription(&witness.url()));

    let first = |v: i64| element("Device.1", "Temperature", &[("temp", "integer", json!(v))]);
    broker.update_ok("UPDATE", &[first(1)]);
    for sink in [&cancelled_sink, &deleted_sink, &witness] {
        sink.wait_notifications(1, Duration::from_secs(10));
    }

    let response = broker.post("/ngsi10/unsubscribeContext", &json!({"subscriptionId": by_unsubscribe}));
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(broker.delete(&format!("/ngsi10/subscription/{by_delete}")).status, 200);
    let before = (cancelled_sink.notifications().len(), deleted_sink.notifications().len());

    broker.update_ok("UPDATE", &[first(2)]);
    witness.wait_notification(Duration::from_secs(10), "the witness notified of temp 2", |n| {
        n.to_string().contains("\"value\":2")
    });
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(cancelled_sink.notifications().len(), before.0, "unsubscribed: {:?}", cancelled_sink.notifications());
    assert_eq!(deleted_sink.notifications().len(), before.1, "deleted: {:?}", deleted_sink.notifications());
}

#[test]
fn subscription_answer_echoes_duration_and_throttling() {
    let broker = Broker::start();
    let body = json!({"entities":[{"id":"X.*","isPattern":true}],"reference":"http://127.0.0.1:9",
                      "duration":"PT1H","throttling":"PT5S"});
    let response = broker.post("/ngsi10/subscribeContext", &body);
    assert_eq!(response.status, 200, "{response:?}");
    let answer = response.json();
    assert_eq!(answer["subscribeResponse"]["duration"], "PT1H", "{answer}");
    assert_eq!(answer["subscribeResponse"]["throttling"], "PT5S", "{answer}");
}

#[test]
fn subscriptions_only_see_their_own_tenant() {
    let broker = Broker::start();
    let sink = Sink::start();
    let tenant_a = [("Fiware-Service", "tenanta")];
    let sid_a = broker.subscribe_ok_with(
        &json!({"entities":[{"id":"TN.*","isPattern":true}],"reference":format!("{}/a", sink.url())}),
        &tenant_a,
    );
    broker.subscribe_ok(
        &json!({"entities":[{"id":"TN.*","isPattern":true}],"reference":format!("{}/default", sink.url())}),
    );
    broker.update_ok_with(
        "UPDATE",
        &[element("TN.b", "T", &[("v", "integer", json!(1))])],
        &[("Fiware-Service", "tenantb")],
    );
    broker.update_ok_with("UPDATE", &[element("TN.a", "T", &[("v", "integer", json!(2))])], &tenant_a);
    broker.update_ok("UPDATE", &[element("TN.d", "T", &[("v", "integer", json!(3))])]);
    sink.wait_until(Duration::from_secs(10), "both tenants notified", |requests| {
        requests.iter().any(|r| r.path == "/a/notifyContext")
            && requests.iter().any(|r| r.path == "/default/notifyContext")
    });
    std::thread::sleep(Duration::from_millis(500));
    let seen = |path: &str| -> Vec<String> {
        sink.requests().iter().filter(|r| r.path == path).flat_map(|r| crate::common::ids(&r.json())).collect()
    };
    assert_eq!(seen("/a/notifyContext"), ["TN.a"]);
    assert_eq!(seen("/default/notifyContext"), ["TN.d"]);
    let own = broker.request("GET", &format!("/ngsi10/subscription/{sid_a}"), None, &tenant_a);
    assert_eq!(own.status, 200, "{own:?}");
    assert_eq!(
        broker.get(&format!("/ngsi10/subscription/{sid_a}")).status,
        404,
        "the default tenant sees tenanta's subscription"
    );
}

#[test]
fn cancelling_drops_the_queued_backlog() {
    let broker = Broker::start();
    let sink = Sink::with_reply(Reply::SlowOk(1500));
    let sid = broker.subscribe_ok(&json!({"entities":[{"id":"Queue.1"}],"reference":sink.url()}));
    let update = |value: i64| broker.update_ok("UPDATE", &[element("Queue.1", "Q", &[("v", "integer", json!(value))])]);
    update(1);
    sink.wait_until(Duration::from_secs(10), "the first notification in flight", |requests| !requests.is_empty());
    for value in 2..=10 {
        update(value);
    }
    let deleted = broker.delete(&format!("/ngsi10/subscription/{sid}"));
    assert_eq!(deleted.status, 200, "{deleted:?}");
    let cancelled_at = std::time::Instant::now();
    std::thread::sleep(Duration::from_millis(2500));
    let late: Vec<String> = sink.requests().iter().filter(|r| r.at > cancelled_at).map(|r| r.body.clone()).collect();
    assert!(late.is_empty(), "the queued backlog was sent after the subscription was deleted: {late:?}");
}
