//! What subscribers receive: the current-state notification on creation (only when something matches), one
//! per later matching change, the `notifyContext` body shape, attribute projection, `ONCHANGE` conditions
//! with `condValueList`, and `Fiware-Correlator` loop prevention.
//!
//! Negative checks use a barrier where possible: a later matching update on the same subscription must
//! arrive, and since delivery per subscription is ordered, an unwanted notification would have come first.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{attr, attr_names, element, elements, located_element, Broker, Sink};

const WAIT: Duration = Duration::from_secs(10);

fn temp(id: &str, value: i64) -> Value {
    element(id, "Temperature", &[("temp", "integer", json!(value))])
}

/// The values of attribute `name` of entity `id` across notification bodies, in arrival order.
fn values(notifications: &[Value], id: &str, name: &str) -> Vec<Value> {
    notifications
        .iter()
        .flat_map(elements)
        .filter(|e| e["entityId"]["id"] == id)
        .filter_map(|e| attr(&e, name))
        .collect()
}

fn notified_with(id: &'static str, name: &'static str, value: Value) -> impl Fn(&Value) -> bool {
    move |notification| {
        elements(notification).iter().any(|e| e["entityId"]["id"] == id && attr(e, name) == Some(value.clone()))
    }
}

#[test]
fn new_subscription_gets_current_state_then_each_matching_update() {
    let broker = Broker::start();
    let sink = Sink::start();
    broker.update_ok(
        "UPDATE",
        &[located_element(
            "Device.temp001",
            "Temperature",
            &[("temp", "integer", json!(10))],
            49.4,
            8.68,
            "Heidelberg",
        )],
    );
    let sid = broker.subscribe_ok(&json!({"entities":[{"id":"Device.*","isPattern":true}],"reference":sink.url()}));

    sink.wait_notifications(1, WAIT);
    let first = &sink.requests()[0];
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, "/notifyContext", "NGSIv1 notifications go to <reference>/notifyContext");
    assert!(first.header("content-type").is_some_and(|t| t.contains("application/json")), "{:?}", first.headers);
    let body = first.json();
    assert_eq!(body["subscriptionId"], sid.as_str(), "{body}");
    assert!(body["originator"].is_string(), "originator missing: {body}");
    let response = &body["contextResponses"][0];
    assert_eq!(response["statusCode"]["code"], 200, "{body}");
    assert_eq!(response["contextElement"]["entityId"]["id"], "Device.temp001", "{body}");
    assert_eq!(response["contextElement"]["entityId"]["type"], "Temperature", "{body}");
    assert_eq!(attr(&response["contextElement"], "temp"), Some(json!(10)), "{body}");
    assert!(
        response["contextElement"]["domainMetadata"].to_string().contains("location"),
        "notified element carries domain metadata: {body}"
    );

    broker.update_ok("UPDATE", &[temp("Device.temp001", 11)]);
    broker.update_ok("UPDATE", &[temp("Device.temp002", 30)]);
    let all = sink.wait_notification(WAIT, "temp002 = 30", notified_with("Device.temp002", "temp", json!(30)));
    assert_eq!(values(&all, "Device.temp001", "temp"), [json!(10), json!(11)], "{all:?}");
    assert!(all.iter().all(|n| n["subscriptionId"] == sid.as_str()));
}

#[test]
fn no_current_state_notification_when_nothing_matches() {
    let broker = Broker::start();
    let sink = Sink::start();
    broker.update_ok("UPDATE", &[temp("Other.1", 1)]);
    broker.subscribe_ok(&json!({"entities":[{"id":"Device.*","isPattern":true}],"reference":sink.url()}));
    broker.update_ok("UPDATE", &[temp("Device.1", 5)]);
    let all = sink.wait_notification(WAIT, "Device.1 = 5", notified_with("Device.1", "temp", json!(5)));
    assert_eq!(all.len(), 1, "no empty current-state notification before the first match: {all:?}");
    assert_eq!(elements(&all[0]).len(), 1, "{all:?}");
}

#[test]
fn non_matching_updates_notify_nothing() {
    let broker = Broker::start();
    let sink = Sink::start();
    broker.subscribe_ok(&json!({"entities":[{"id":"Device.1"}],"reference":sink.url()}));
    broker.subscribe_ok(&json!({"entities":[{"id":"","type":"Temperature","isPattern":true}],"reference":format!("{}/typed", sink.url())}));
    broker.update_ok("UPDATE", &[temp("Device.2", 1)]);
    broker.update_ok("UPDATE", &[element("Device.1x", "Humidity", &[("hum", "integer", json!(3))])]);
    broker.update_ok("UPDATE", &[element("Device.1", "Temperature", &[("temp", "integer", json!(7))])]);
    sink.wait_until(WAIT, "both subscriptions notified of Device.1", |requests| {
        let has_device_1 = |path: &str| {
            requests
                .iter()
                .filter(|r| r.path == path)
                .flat_map(|r| elements(&r.json()))
                .any(|e| e["entityId"]["id"] == "Device.1")
        };
        has_device_1("/notifyContext") && has_device_1("/typed/notifyContext")
    });
    std::thread::sleep(Duration::from_millis(500));
    let exact: Vec<Value> = sink.requests().iter().filter(|r| r.path == "/notifyContext").map(|r| r.json()).collect();
    let notified_ids: Vec<String> = exact.iter().flat_map(elements).map(|e| e["entityId"]["id"].to_string()).collect();
    assert_eq!(notified_ids, ["\"Device.1\""], "exact id subscription: {exact:?}");
    let typed: Vec<Value> =
        sink.requests().iter().filter(|r| r.path == "/typed/notifyContext").map(|r| r.json()).collect();
    let typed_ids: Vec<String> = typed.iter().flat_map(elements).map(|e| e["entityId"]["id"].to_string()).collect();
    assert_eq!(typed_ids, ["\"Device.2\"", "\"Device.1\""], "type subscription: {typed:?}");
}

#[test]
fn attributes_projection_is_honoured_in_notifications() {
    let broker = Broker::start();
    let sink = Sink::start();
    broker.update_ok(
        "UPDATE",
        &[element("Room.1", "Room", &[("temp", "integer", json!(20)), ("hum", "integer", json!(40))])],
    );
    broker.update_ok("UPDATE", &[element("Room.2", "Room", &[("hum", "integer", json!(41))])]);
    broker.subscribe_ok(
        &json!({"entities":[{"id":"Room.*","isPattern":true}],"attributes":["temp"],"reference":sink.url()}),
    );
    let all = sink.wait_notification(WAIT, "Room.1 current state", notified_with("Room.1", "temp", json!(20)));
    for element in all.iter().flat_map(elements) {
        assert_eq!(element["entityId"]["id"], "Room.1", "Room.2 lacks temp and must not be notified: {all:?}");
        assert_eq!(attr_names(&element), ["temp"], "{all:?}");
    }
    broker.update_ok("UPDATE", &[element("Room.1", "Room", &[("temp", "integer", json!(21))])]);
    let all = sink.wait_notification(WAIT, "Room.1 temp 21", notified_with("Room.1", "temp", json!(21)));
    let last = elements(all.last().unwrap());
    assert_eq!(attr_names(&last[0]), ["temp"], "{all:?}");
}

#[test]
fn onchange_condition_notifies_only_changes_of_listed_attributes() {
    let broker = Broker::start();
    let sink = Sink::start();
    broker.subscribe_ok(&json!({"entities":[{"id":"Room.1"}],"reference":sink.url(),
        "notifyConditions":[{"type":"ONCHANGE","condValueList":["temp"]}]}));
    broker.update_ok(
        "UPDATE",
        &[element("Room.1", "Room", &[("temp", "integer", json!(1)), ("hum", "integer", json!(1))])],
    );
    sink.wait_notification(WAIT, "creation with temp", notified_with("Room.1", "temp", json!(1)));
    broker.update_ok("UPDATE", &[element("Room.1", "Room", &[("hum", "integer", json!(2))])]);
    broker.update_ok("UPDATE", &[element("Room.1", "Room", &[("hum", "integer", json!(3))])]);
    broker.update_ok("UPDATE", &[element("Room.1", "Room", &[("temp", "integer", json!(4))])]);
    let all = sink.wait_notification(WAIT, "temp 4", notified_with("Room.1", "temp", json!(4)));
    let hums = values(&all, "Room.1", "hum");
    assert!(!hums.contains(&json!(2)), "an update touching only hum notified: {all:?}");
    assert_eq!(values(&all, "Room.1", "temp"), [json!(1), json!(4)], "{all:?}");
}

#[test]
fn correlator_prevents_notifying_the_originating_subscription() {
    let broker = Broker::start();
    let sink = Sink::start();
    broker.subscribe_ok_with(
        &json!({"entities":[{"id":"Loop.1"}],"reference":sink.url()}),
        &[("Fiware-Correlator", "operator-x")],
    );
    broker.update_ok_with("UPDATE", &[temp("Loop.1", 1)], &[("Fiware-Correlator", "operator-x")]);
    broker.update_ok_with("UPDATE", &[temp("Loop.1", 2)], &[("Fiware-Correlator", "someone-else")]);
    let all =
        sink.wait_notification(WAIT, "value 2 from another correlator", notified_with("Loop.1", "temp", json!(2)));
    assert!(!values(&all, "Loop.1", "temp").contains(&json!(1)), "own correlator was notified: {all:?}");
    broker.update_ok_with("UPDATE", &[temp("Loop.1", 3)], &[("Fiware-Correlator", "operator-x")]);
    broker.update_ok("UPDATE", &[temp("Loop.1", 4)]);
    let all = sink.wait_notification(WAIT, "value 4 without correlator", notified_with("Loop.1", "temp", json!(4)));
    assert_eq!(values(&all, "Loop.1", "temp"), [json!(2), json!(4)], "{all:?}");
}

#[test]
fn entity_deletion_does_not_break_later_notifications() {
    let broker = Broker::start();
    let sink = Sink::start();
    broker.subscribe_ok(&json!({"entities":[{"id":"Gone.*","isPattern":true}],"reference":sink.url()}));
    broker.update_ok("UPDATE", &[temp("Gone.1", 1)]);
    sink.wait_notification(WAIT, "Gone.1 = 1", notified_with("Gone.1", "temp", json!(1)));
    assert_eq!(broker.delete("/ngsi10/entity/Gone.1").status, 200);
    broker.update_ok("UPDATE", &[temp("Gone.1", 2)]);
    sink.wait_notification(WAIT, "recreated Gone.1 = 2", notified_with("Gone.1", "temp", json!(2)));
}

#[test]
fn subscription_scopes_and_attribute_filter_select_what_is_notified() {
    let broker = Broker::start();
    let sink = Sink::start();
    let base = sink.url();
    broker.subscribe_ok(&json!({"entities":[{"id":"Geo.*","isPattern":true}],"reference":format!("{base}/circle"),
        "restriction":{"scopes":[{"scopeType":"circle","scopeValue":{"centerLatitude":49.4,"centerLongitude":8.68,"radius":2000}}]}}));
    broker.subscribe_ok(&json!({"entities":[{"id":"Geo.*","isPattern":true}],"reference":format!("{base}/city"),
        "restriction":{"scopes":[{"scopeType":"stringQuery","scopeValue":"city=Tokyo"}]}}));
    broker.subscribe_ok(
        &json!({"entities":[{"id":"Geo.*","isPattern":true}],"reference":format!("{base}/co2"),"attributes":["co2"]}),
    );
    let at = |id: &str, lat: f64, lon: f64, city: &str| {
        located_element(id, "G", &[("temp", "integer", json!(1))], lat, lon, city)
    };
    broker.update_ok("UPDATE", &[at("Geo.heidelberg", 49.401, 8.681, "Heidelberg")]);
    broker.update_ok("UPDATE", &[at("Geo.tokyo", 35.69, 139.7, "Tokyo")]);
    broker.update_ok("UPDATE", &[temp("Geo.nowhere", 1)]);
    broker.update_ok("UPDATE", &[element("Geo.nowhere", "G", &[("co2", "integer", json!(400))])]);
    sink.wait_until(WAIT, "one notification per subscription", |requests| {
        ["/circle/notifyContext", "/city/notifyContext", "/co2/notifyContext"]
            .iter()
            .all(|path| requests.iter().any(|r| r.path == *path))
    });
    std::thread::sleep(Duration::from_millis(500));
    let ids_at = |path: &str| -> Vec<String> {
        sink.requests().iter().filter(|r| r.path == path).flat_map(|r| crate::common::ids(&r.json())).collect()
    };
    assert_eq!(ids_at("/circle/notifyContext"), ["Geo.heidelberg"]);
    assert_eq!(ids_at("/city/notifyContext"), ["Geo.tokyo"]);
    assert_eq!(ids_at("/co2/notifyContext"), ["Geo.nowhere"], "notified once it has co2");
}
