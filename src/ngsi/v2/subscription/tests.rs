//! Unit tests of NGSIv2 subscription parsing, patching, rendering, projection and notification bodies.

use serde_json::json;

use super::*;

fn minimal() -> Value {
    json!({"subject":{"entities":[{"idPattern":".*","type":"Room"}]},
           "notification":{"http":{"url":"http://127.0.0.1:1/notify"}}})
}

fn element() -> ContextElement {
    crate::ngsi::v2::parse_entity(&json!({"id":"R1","type":"Room","temp":{"value":21},"hum":{"value":40}}), false)
        .unwrap()
}

#[test]
fn a_full_body_parses_and_renders_back() {
    let body = json!({"description":"d","subject":{"entities":[{"id":"R1","type":"Room"},{"idPattern":"^C"}],
        "condition":{"attrs":["temp"],"expression":{"q":"temp>20","georel":"near;maxDistance:100","geometry":"point","coords":"1,2"}}},
        "notification":{"http":{"url":"http://h:1/n"},"attrs":["temp"],"attrsFormat":"keyValues","onlyChangedAttrs":true,"maxFailsLimit":3},
        "throttling":5,"expires":"2040-01-01T00:00:00.000Z","status":"inactive"});
    let parsed = V2Subscription::parse(&body).unwrap();
    assert_eq!(parsed.attrs_format, AttrsFormat::KeyValues);
    assert_eq!((parsed.throttling, parsed.max_fails_limit, parsed.status), (Some(5), Some(3), Status::Inactive));
    assert!(parsed.query().unwrap().is_some() && parsed.geo().unwrap().is_some());
    let rendered = parsed.render();
    assert_eq!(rendered["subject"], body["subject"]);
    assert_eq!(rendered["expires"], body["expires"]);
    assert_eq!(rendered["notification"]["attrs"], json!(["temp"]));
    assert_eq!(V2Subscription::parse(&rendered).unwrap(), parsed);
}

#[test]
fn orion_validation_errors() {
    let with = |path: &[&str], value: Value| {
        let mut body = minimal();
        let mut target = &mut body;
        for key in &path[..path.len() - 1] {
            target = &mut target[*key];
        }
        target[path[path.len() - 1]] = value;
        body
    };
    for bad in [
        json!({"notification":{"http":{"url":"http://h"}}}),
        json!({"subject":{"entities":[{"id":"a"}]}}),
        json!({"subject":{"entities":[]},"notification":{"http":{"url":"http://h"}}}),
        with(&["subject", "entities"], json!([{"id":"a","idPattern":"b"}])),
        with(&["subject", "entities"], json!([{"type":"T"}])),
        with(&["subject", "entities"], json!([{"idPattern":"("}])),
        with(&["subject", "condition"], json!({"expression":{"q":"temp>"}})),
        with(&["subject", "condition"], json!({"expression":{"georel":"near","geometry":"point","coords":"1,2"}})),
        with(&["notification", "attrsFormat"], json!("xml")),
        with(&["notification", "http"], json!({})),
        with(&["notification", "exceptAttrs"], json!(["a"])).pipe_attrs(),
        with(&["throttling"], json!(-1)),
        with(&["throttling"], json!(1.5)),
        with(&["expires"], json!("tomorrow")),
        with(&["status"], json!("oneshot")),
        with(&["bogus"], json!(1)),
        with(&["notification", "maxFailsLimit"], json!(0)),
    ] {
        assert!(V2Subscription::parse(&bad).is_err(), "{bad}");
    }
    assert!(V2Subscription::parse(&minimal()).is_ok());
}

trait PipeAttrs {
    fn pipe_attrs(self) -> Value;
}

impl PipeAttrs for Value {
    fn pipe_attrs(mut self) -> Value {
        self["notification"]["attrs"] = json!(["b"]);
        self
    }
}

#[test]
fn expires_accepts_orion_dates() {
    assert_eq!(parse_expires("2030-01-01T00:00:00Z").unwrap(), parse_expires("2030-01-01").unwrap());
    assert_eq!(parse_expires("2030-01-01T00:00:00.000").unwrap(), parse_expires("2030-01-01T01:00:00+01:00").unwrap());
    assert!(parse_expires("2030-13-01").is_err());
}

#[test]
fn patch_replaces_top_level_fields_only() {
    let original = V2Subscription::parse(&minimal()).unwrap();
    let patched = original.patch(&json!({"status":"inactive","throttling":2})).unwrap();
    assert_eq!((patched.status, patched.throttling), (Status::Inactive, Some(2)));
    assert_eq!(patched.url, original.url);
    assert!(original.patch(&json!({"id":"x"})).is_err());
    assert!(original.patch(&json!({})).is_err());
    assert!(original.patch(&json!({"notification":{"attrsFormat":"values"}})).is_err(), "no url");
}

#[test]
fn projection_never_filters_and_honours_except_and_changed() {
    let mut subscription = V2Subscription::parse(&minimal()).unwrap();
    subscription.attrs = vec!["hum".into(), "missing".into()];
    let projected = subscription.project(&element(), &[]);
    assert_eq!(projected.attributes.len(), 1);
    assert_eq!(projected.attributes[0].name, "hum");
    subscription.attrs.clear();
    subscription.except_attrs = vec!["hum".into()];
    assert_eq!(subscription.project(&element(), &[]).attributes[0].name, "temp");
    subscription.except_attrs.clear();
    subscription.only_changed_attrs = true;
    let changed = subscription.project(&element(), &["hum".to_string()]);
    assert_eq!(changed.attributes.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["hum"]);
}

#[test]
fn notification_bodies_follow_attrs_format() {
    let entity = element();
    let normalized = notification_body("s", std::iter::once(&entity), AttrsFormat::Normalized);
    assert_eq!(normalized["subscriptionId"], "s");
    assert_eq!(normalized["data"][0]["temp"], json!({"type":"Number","value":21,"metadata":{}}));
    let key_values = notification_body("s", std::iter::once(&entity), AttrsFormat::KeyValues);
    assert_eq!(key_values["data"][0], json!({"id":"R1","type":"Room","temp":21,"hum":40}));
    let values = notification_body("s", std::iter::once(&entity), AttrsFormat::Values);
    assert_eq!(values["data"][0], json!([40, 21]), "attributes in name order");
    let legacy = notification_body("s", std::iter::once(&entity), AttrsFormat::Legacy);
    assert_eq!(legacy["contextResponses"][0]["contextElement"]["entityId"]["id"], "R1");
}
