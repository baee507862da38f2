//! `POST /ngsi10/notifyContext`, the broker-to-broker relay (spec §4.6): the answer is a `responseCode` 200
//! (FogFlow answered code 0, spec §12.13), relayed elements reach the matching subscriptions of this broker,
//! and each subscription's filters still hold on this path as on local updates (design: `attributes` filters
//! and projects, restriction scopes are evaluated, an entity without a position is never inside a circle;
//! spec §12.9 lists the lost projection on relays as a FogFlow bug to fix).

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{attr_names, elements, Broker, Sink};

fn relay(broker: &Broker, element: Value) {
    let body = json!({"subscriptionId":"remote-sid","originator":"",
        "contextResponses":[{"contextElement": element, "statusCode":{"code":200,"reasonPhrase":"OK"}}]});
    let response = broker.post_with("/ngsi10/notifyContext", &body, &[("User-Agent", "lightweight-iot-broker")]);
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.json()["responseCode"]["code"], 200, "{}", response.body);
}

fn relayed(id: &str, attributes: Value) -> Value {
    json!({"entityId":{"id": id, "type":"T"}, "attributes": attributes})
}

fn ids_at(sink: &Sink, path: &str) -> Vec<String> {
    sink.requests()
        .iter()
        .filter(|r| r.path == path)
        .flat_map(|r| elements(&r.json()))
        .map(|e| e["entityId"]["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn relayed_notification_reaches_matching_subscriptions() {
    let broker = Broker::start();
    let sink = Sink::start();
    broker.subscribe_ok(&json!({"entities":[{"id":"Remote.*","isPattern":true}],"reference":sink.url()}));
    broker.subscribe_ok(
        &json!({"entities":[{"id":"Other.*","isPattern":true}],"reference":format!("{}/other", sink.url())}),
    );
    relay(&broker, relayed("Remote.1", json!([{"name":"t","type":"integer","value":9}])));
    let all = sink.wait_notifications(1, Duration::from_secs(10));
    let element = &elements(&all[0])[0];
    assert_eq!(element["entityId"]["id"], "Remote.1", "{all:?}");
    assert_eq!(element["attributes"][0]["value"], 9, "{all:?}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(ids_at(&sink, "/other/notifyContext").is_empty(), "a non-matching subscription got the relay");
}

#[test]
fn relayed_notifications_honour_attribute_filter_projection_and_scopes() {
    let broker = Broker::start();
    let sink = Sink::start();
    let base = sink.url();
    broker.subscribe_ok(
        &json!({"entities":[{"id":"R.*","isPattern":true}],"attributes":["t"],"reference":format!("{base}/projected")}),
    );
    broker.subscribe_ok(&json!({"entities":[{"id":"R.*","isPattern":true}],"reference":format!("{base}/circle"),
        "restriction":{"scopes":[{"scopeType":"circle","scopeValue":{"centerLatitude":49.4,"centerLongitude":8.68,"radius":1000}}]}}));
    broker.subscribe_ok(&json!({"entities":[{"id":"R.*","isPattern":true}],"reference":format!("{base}/witness")}));

    relay(
        &broker,
        relayed("R.both", json!([{"name":"t","type":"integer","value":1},{"name":"u","type":"integer","value":2}])),
    );
    relay(&broker, relayed("R.only_u", json!([{"name":"u","type":"integer","value":3}])));
    sink.wait_until(Duration::from_secs(10), "the witness got both relays", |requests| {
        let ids: Vec<String> = requests
            .iter()
            .filter(|r| r.path == "/witness/notifyContext")
            .flat_map(|r| elements(&r.json()))
            .map(|e| e["entityId"]["id"].to_string())
            .collect();
        ids.contains(&"\"R.both\"".to_string()) && ids.contains(&"\"R.only_u\"".to_string())
    });
    std::thread::sleep(Duration::from_millis(500));

    let projected: Vec<Value> = sink
        .requests()
        .iter()
        .filter(|r| r.path == "/projected/notifyContext")
        .flat_map(|r| elements(&r.json()))
        .collect();
    let projected_ids: Vec<&str> = projected.iter().filter_map(|e| e["entityId"]["id"].as_str()).collect();
    assert_eq!(
        projected_ids,
        ["R.both"],
        "an element lacking `t` was relayed to an attributes:[t] subscription: {projected:?}"
    );
    assert_eq!(attr_names(&projected[0]), ["t"], "relayed element not projected: {projected:?}");
    assert!(
        ids_at(&sink, "/circle/notifyContext").is_empty(),
        "elements without a position were relayed to a circle subscription: {:?}",
        ids_at(&sink, "/circle/notifyContext")
    );
}
