//! NGSI-LD subscriptions (`/ngsi-ld/v1/subscriptions`) against the real binary and a real HTTP sink: create (201 +
//! `Location`, 409 for a taken id), list with paging and count, retrieve, PATCH and delete; ProblemDetails for
//! invalid bodies and unsupported members; the Notification body (`normalized`, `keyValues`, `attributes`
//! projection, `application/ld+json` with the subscription's `@context`) and its headers; `q` and
//! `watchedAttributes`; `isActive` false pausing and `expiresAt`; PATCH changing what is notified; delete
//! stopping notifications; changes made through NGSI10 and NGSIv2 notifying LD subscriptions (and LD changes
//! still notifying NGSIv2 ones); a restart after SIGKILL; tenants. Throttling, `geoQ`, failed deliveries and `lang` are
//! in `ngsi_ld_subscription_delivery`.
//! `notificationTrigger`, deletions, `showChanges` and `sysAttrs` are in `ngsi_ld_subscription_triggers`, which
//! shares the helpers here.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{element, Broker, Recorded, Resp, Sink};
use crate::ngsi_ld_entities::{assert_problem, create, room, send};

pub const WAIT: Duration = Duration::from_secs(10);
const CORE: &str = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context";
pub const SUBSCRIPTIONS: &str = "/ngsi-ld/v1/subscriptions";

/// A subscription on entities of `entity_type`, notifying `uri`.
pub fn subscription(entity_type: &str, uri: &str) -> Value {
    json!({"type": "Subscription", "entities": [{"type": entity_type}], "notification": {"endpoint": {"uri": uri}}})
}

/// `POST /ngsi-ld/v1/subscriptions`, asserting 201 with a `Location`; answers the id.
pub fn subscribe(broker: &Broker, body: &Value, headers: &[(&str, &str)]) -> String {
    let response = send(broker, "POST", SUBSCRIPTIONS, body, headers);
    assert_eq!(response.status, 201, "{body}: {response:?}");
    let location = response.header("location").expect("Location header").to_string();
    location.strip_prefix("/ngsi-ld/v1/subscriptions/").expect("Location names the subscription").to_string()
}

pub fn retrieve(broker: &Broker, id: &str, headers: &[(&str, &str)]) -> Resp {
    broker.request("GET", &format!("{SUBSCRIPTIONS}/{id}"), None, headers)
}

pub fn patch(broker: &Broker, id: &str, fragment: &Value) -> Resp {
    send(broker, "PATCH", &format!("{SUBSCRIPTIONS}/{id}"), fragment, &[])
}

/// Merges attributes into an LD entity, asserting 204.
pub fn merge(broker: &Broker, id: &str, attributes: &Value, headers: &[(&str, &str)]) {
    let response = send(broker, "PATCH", &format!("/ngsi-ld/v1/entities/{id}"), attributes, headers);
    assert_eq!(response.status, 204, "{attributes}: {response:?}");
}

/// The notifications received on `path`.
pub fn received(sink: &Sink, path: &str) -> Vec<Recorded> {
    sink.requests().into_iter().filter(|r| r.path == path).collect()
}

/// Waits until a notification on `path` has an entity satisfying `check`; answers that notification's request.
pub fn wait_for(sink: &Sink, path: &str, what: &str, check: impl Fn(&Value) -> bool) -> Recorded {
    let has = |r: &Recorded| r.path == path && r.json()["data"].as_array().is_some_and(|d| d.iter().any(&check));
    let requests = sink.wait_until(WAIT, what, |requests| requests.iter().any(has));
    requests.into_iter().find(has).expect("found")
}

/// After a change that the `/marker` subscription reports, gives other deliveries a moment, then answers how many
/// notifications `path` got.
pub fn settled_count(sink: &Sink, marker_check: impl Fn(&Value) -> bool, path: &str) -> usize {
    wait_for(sink, "/marker", "the marker notification", marker_check);
    std::thread::sleep(Duration::from_millis(500));
    received(sink, path).len()
}

#[test]
fn subscriptions_are_created_listed_retrieved_patched_and_deleted() {
    let broker = Broker::start();
    let mut body = subscription("Room", "http://127.0.0.1:9/notify");
    body["id"] = json!("urn:ngsi-ld:Subscription:rooms");
    body["subscriptionName"] = json!("rooms");
    body["watchedAttributes"] = json!(["temperature"]);
    body["q"] = json!("temperature>20");
    body["throttling"] = json!(2);
    body["expiresAt"] = json!("2099-01-01T00:00:00Z");
    body["notification"]["attributes"] = json!(["temperature"]);
    body["notification"]["format"] = json!("keyValues");
    let id = subscribe(&broker, &body, &[]);
    assert_eq!(id, "urn:ngsi-ld:Subscription:rooms");
    assert_problem(&send(&broker, "POST", SUBSCRIPTIONS, &body, &[]), 409, "AlreadyExists");
    let generated = subscribe(&broker, &subscription("Building", "http://127.0.0.1:9/other"), &[]);
    assert!(generated.starts_with("urn:ngsi-ld:Subscription:"), "{generated}");

    let shown = retrieve(&broker, &id, &[]);
    assert_eq!(shown.status, 200, "{shown:?}");
    assert!(shown.header("link").is_some_and(|link| link.contains(CORE)), "{shown:?}");
    let shown = shown.json();
    assert_eq!((shown["id"].as_str(), shown["type"].as_str()), (Some(id.as_str()), Some("Subscription")));
    assert_eq!(shown["subscriptionName"], "rooms");
    assert_eq!(shown["entities"], json!([{"type": "Room"}]));
    assert_eq!(
        (shown["watchedAttributes"].clone(), shown["q"].clone()),
        (json!(["temperature"]), json!("temperature>20"))
    );
    assert_eq!((shown["isActive"].clone(), shown["status"].clone()), (json!(true), json!("active")));
    assert_eq!(shown["notification"]["attributes"], json!(["temperature"]));
    assert_eq!(shown["notification"]["format"], "keyValues");
    assert_eq!(
        shown["notification"]["endpoint"],
        json!({"uri": "http://127.0.0.1:9/notify", "accept": "application/json"})
    );
    assert_eq!(
        (shown["notification"]["timesSent"].clone(), shown["notification"]["status"].clone()),
        (json!(0), json!("ok"))
    );
    assert_eq!(
        (shown["throttling"].as_f64(), shown["expiresAt"].as_str()),
        (Some(2.0), Some("2099-01-01T00:00:00.000Z"))
    );
    let ld = retrieve(&broker, &id, &[("Accept", "application/ld+json")]);
    assert_eq!(ld.content_type.as_deref(), Some("application/ld+json"));
    assert!(ld.json()["@context"].as_str().is_some_and(|c| c.starts_with(CORE)), "{ld:?}");

    let listed = broker.get(&format!("{SUBSCRIPTIONS}?limit=1&offset=1&count=true"));
    assert_eq!(listed.status, 200, "{listed:?}");
    assert_eq!(listed.header("ngsild-results-count"), Some("2"));
    assert_eq!(listed.json().as_array().map(|a| a.len()), Some(1));
    assert_eq!(listed.json()[0]["id"], generated.as_str(), "creation order");
    assert_problem(&broker.get(&format!("{SUBSCRIPTIONS}?limit=1001")), 403, "TooManyResults");

    let patched = patch(&broker, &id, &json!({"isActive": false, "notification": {"format": "concise"}}));
    assert_eq!(patched.status, 204, "{patched:?}");
    let shown = retrieve(&broker, &id, &[]).json();
    assert_eq!((shown["isActive"].clone(), shown["status"].clone()), (json!(false), json!("paused")));
    assert_eq!(shown["notification"]["format"], "concise");
    assert_eq!(shown["notification"]["attributes"], json!(["temperature"]), "members not patched are kept");
    assert_problem(&patch(&broker, &id, &json!({"isActive": "no"})), 400, "BadRequestData");
    assert_problem(&patch(&broker, &id, &json!({"id": "urn:x"})), 400, "BadRequestData");
    assert_problem(
        &patch(&broker, "urn:ngsi-ld:Subscription:none", &json!({"isActive": true})),
        404,
        "ResourceNotFound",
    );

    assert_eq!(broker.delete(&format!("{SUBSCRIPTIONS}/{id}")).status, 204);
    assert_problem(&broker.delete(&format!("{SUBSCRIPTIONS}/{id}")), 404, "ResourceNotFound");
    assert_problem(&retrieve(&broker, &id, &[]), 404, "ResourceNotFound");
    assert_eq!(broker.get(SUBSCRIPTIONS).json().as_array().map(|a| a.len()), Some(1));
}

#[test]
fn invalid_subscriptions_are_refused_with_problem_details() {
    let broker = Broker::start();
    let good = subscription("Room", "http://127.0.0.1:9/n");
    let with = |key: &str, value: Value| {
        let mut body = good.clone();
        body[key] = value;
        body
    };
    for bad in [
        json!({"entities": [{"type": "Room"}]}),
        json!({"notification": good["notification"]}),
        with("entities", json!([])),
        with("entities", json!([{"id": "not a uri"}])),
        with("entities", json!([{"idPattern": "("}])),
        with("id", json!("sub-1")),
        with("type", json!("Entity")),
        with("q", json!("temperature>")),
        with("geoQ", json!({"georel": "near;maxDistance==10", "geometry": "Point"})),
        with("isActive", json!(1)),
        with("expiresAt", json!("2001-01-01T00:00:00Z")),
        with("throttling", json!(-1)),
        with("notification", json!({"endpoint": {"uri": "not a uri"}})),
        with("notification", json!({"endpoint": {"uri": "ftp://127.0.0.1/n"}})),
        with("notification", json!({"format": "values", "endpoint": {"uri": "http://127.0.0.1:9/n"}})),
        with("notification", json!({"endpoint": {"uri": "http://127.0.0.1:9/n", "accept": "text/plain"}})),
        with("unknownMember", json!(1)),
        with("notificationTrigger", json!(["entityChanged"])),
        with(
            "notification",
            json!({"showChanges": true, "format": "keyValues", "endpoint": {"uri": "http://127.0.0.1:9/n"}}),
        ),
    ] {
        assert_problem(&send(&broker, "POST", SUBSCRIPTIONS, &bad, &[]), 400, "BadRequestData");
    }
    for unsupported in [with("csf", json!("a==b")), with("temporalQ", json!({"timerel": "after"}))] {
        assert_problem(&send(&broker, "POST", SUBSCRIPTIONS, &unsupported, &[]), 422, "OperationNotSupported");
    }
    let raw = broker.request("POST", SUBSCRIPTIONS, Some("{"), &[]);
    assert_problem(&raw, 400, "InvalidRequest");
    let text = broker.request("POST", SUBSCRIPTIONS, Some(&good.to_string()), &[("Content-Type", "text/plain")]);
    assert_problem(&text, 415, "UnsupportedMediaType");
    assert_problem(&retrieve(&broker, "not-a-uri", &[]), 400, "BadRequestData");
    assert_problem(&retrieve(&broker, "urn:ngsi-ld:Subscription:none", &[]), 404, "ResourceNotFound");
    assert_eq!(broker.get(SUBSCRIPTIONS).json(), json!([]), "nothing was created");
}

#[test]
fn notifications_carry_the_notification_body_in_the_format_and_projection_asked() {
    let broker = Broker::start();
    let sink = Sink::start();
    let mut normalized = subscription("Room", &format!("{}/normalized", sink.url()));
    normalized["notification"]["attributes"] = json!(["temperature"]);
    let normalized_id = subscribe(&broker, &normalized, &[]);
    let mut key_values = subscription("Room", &format!("{}/kv", sink.url()));
    key_values["notification"]["format"] = json!("keyValues");
    subscribe(&broker, &key_values, &[]);
    create(&broker, &room("urn:ngsi-ld:Room:1", 21.5, 8.68, 49.4), &[]);

    let request = wait_for(&sink, "/normalized", "a normalized notification", |e| e["id"] == "urn:ngsi-ld:Room:1");
    assert_eq!(request.method, "POST");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert!(request.header("link").is_some_and(|link| link.contains(CORE)), "{request:?}");
    let notification = request.json();
    assert!(
        notification["id"].as_str().is_some_and(|id| id.starts_with("urn:ngsi-ld:Notification:")),
        "{notification}"
    );
    assert_eq!(notification["type"], "Notification");
    assert_eq!(notification["subscriptionId"], normalized_id.as_str());
    assert!(notification["notifiedAt"].as_str().is_some_and(|at| at.ends_with('Z')), "{notification}");
    assert_eq!(
        notification["data"],
        json!([{"id": "urn:ngsi-ld:Room:1", "type": "Room",
            "temperature": {"type": "Property", "value": 21.5, "unitCode": "CEL"}}])
    );
    let request = wait_for(&sink, "/kv", "a keyValues notification", |e| e["id"] == "urn:ngsi-ld:Room:1");
    assert_eq!(
        request.json()["data"][0],
        json!({"id": "urn:ngsi-ld:Room:1", "type": "Room", "temperature": 21.5, "inBuilding": "urn:ngsi-ld:Building:1",
            "location": {"type": "Point", "coordinates": [8.68, 49.4]}})
    );
    crate::common::wait_until(WAIT, "timesSent and lastSuccess", || {
        let shown = retrieve(&broker, &normalized_id, &[]).json();
        (shown["notification"]["timesSent"] == 1 && shown["notification"]["lastSuccess"].is_string()).then_some(())
    });
}

#[test]
fn ld_json_notifications_carry_the_subscriptions_context_in_the_body() {
    let broker = Broker::start();
    let sink = Sink::start();
    let context = json!({"brand": "https://schema.org/brand", "Car": "https://example.org/Car"});
    let ld = [("Content-Type", "application/ld+json")];
    let mut body = subscription("Car", &format!("{}/ld", sink.url()));
    body["notification"]["format"] = json!("keyValues");
    body["notification"]["endpoint"]["accept"] = json!("application/ld+json");
    body["@context"] = context.clone();
    let id = subscribe(&broker, &body, &ld);
    assert_eq!(retrieve(&broker, &id, &[]).json()["entities"], json!([{"type": "https://example.org/Car"}]));
    let car = json!({"id": "urn:ngsi-ld:Car:1", "type": "Car", "brand": {"type": "Property", "value": "Mercedes"},
        "speed": 80, "@context": context});
    create(&broker, &car, &ld);
    let request = wait_for(&sink, "/ld", "an ld+json notification", |e| e["id"] == "urn:ngsi-ld:Car:1");
    assert_eq!(request.header("content-type"), Some("application/ld+json"));
    assert!(request.header("link").is_none(), "{request:?}");
    let notification = request.json();
    assert_eq!(notification["@context"], context);
    assert_eq!(
        notification["data"][0],
        json!({"id": "urn:ngsi-ld:Car:1", "type": "Car", "brand": "Mercedes", "speed": 80})
    );
}

#[test]
fn q_and_watched_attributes_decide_what_notifies() {
    let broker = Broker::start();
    let sink = Sink::start();
    subscribe(&broker, &subscription("Room", &format!("{}/marker", sink.url())), &[]);
    let mut body = subscription("Room", &format!("{}/hot", sink.url()));
    body["q"] = json!("temperature>20");
    body["watchedAttributes"] = json!(["temperature"]);
    subscribe(&broker, &body, &[]);
    create(&broker, &room("urn:ngsi-ld:Room:1", 10.0, 8.68, 49.4), &[]);
    merge(&broker, "urn:ngsi-ld:Room:1", &json!({"humidity": 50}), &[]);
    let count = settled_count(&sink, |e| e["humidity"]["value"] == 50, "/hot");
    assert_eq!(count, 0, "neither the cold creation nor a humidity change notifies");
    merge(&broker, "urn:ngsi-ld:Room:1", &json!({"temperature": 25}), &[]);
    let request = wait_for(&sink, "/hot", "the hot notification", |e| e["temperature"]["value"] == 25);
    assert_eq!(request.json()["data"][0]["humidity"], json!({"type": "Property", "value": 50}));
    merge(&broker, "urn:ngsi-ld:Room:1", &json!({"humidity": 60}), &[]);
    assert_eq!(settled_count(&sink, |e| e["humidity"]["value"] == 60, "/hot"), 1, "humidity is not watched");
}

#[test]
fn paused_and_expired_subscriptions_are_not_notified() {
    let broker = Broker::start();
    let sink = Sink::start();
    subscribe(&broker, &subscription("Room", &format!("{}/marker", sink.url())), &[]);
    let mut paused = subscription("Room", &format!("{}/paused", sink.url()));
    paused["isActive"] = json!(false);
    let paused_id = subscribe(&broker, &paused, &[]);
    let mut expiring = subscription("Room", &format!("{}/expiring", sink.url()));
    let expires = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    expiring["expiresAt"] = json!(expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let expiring_id = subscribe(&broker, &expiring, &[]);
    std::thread::sleep(Duration::from_millis(1800));
    assert_eq!(retrieve(&broker, &expiring_id, &[]).json()["status"], "expired");
    create(&broker, &room("urn:ngsi-ld:Room:1", 10.0, 8.68, 49.4), &[]);
    assert_eq!(settled_count(&sink, |e| e["id"] == "urn:ngsi-ld:Room:1", "/paused"), 0);
    assert!(received(&sink, "/expiring").is_empty(), "an expired subscription does not notify");
    assert_eq!(patch(&broker, &paused_id, &json!({"isActive": true})).status, 204);
    assert_eq!(retrieve(&broker, &paused_id, &[]).json()["status"], "active");
    merge(&broker, "urn:ngsi-ld:Room:1", &json!({"temperature": 30}), &[]);
    wait_for(&sink, "/paused", "a notification once active again", |e| e["temperature"]["value"] == 30);
}

#[test]
fn patch_changes_what_is_notified_and_delete_stops_notifications() {
    let broker = Broker::start();
    let sink = Sink::start();
    subscribe(&broker, &subscription("Room", &format!("{}/marker", sink.url())), &[]);
    let id = subscribe(&broker, &subscription("Room", &format!("{}/sub", sink.url())), &[]);
    create(&broker, &room("urn:ngsi-ld:Room:1", 10.0, 8.68, 49.4), &[]);
    wait_for(&sink, "/sub", "the first notification", |e| e["inBuilding"]["object"] == "urn:ngsi-ld:Building:1");
    crate::common::wait_until(WAIT, "the first delivery counted", || {
        (retrieve(&broker, &id, &[]).json()["notification"]["timesSent"] == 1).then_some(())
    });
    let fragment = json!({"notification": {"format": "keyValues", "attributes": ["temperature"],
        "endpoint": {"uri": format!("{}/moved", sink.url())}}});
    assert_eq!(patch(&broker, &id, &fragment).status, 204);
    merge(&broker, "urn:ngsi-ld:Room:1", &json!({"temperature": 12}), &[]);
    let request = wait_for(&sink, "/moved", "a notification at the new endpoint", |e| e["temperature"] == 12);
    assert_eq!(request.json()["data"][0], json!({"id": "urn:ngsi-ld:Room:1", "type": "Room", "temperature": 12}));
    crate::common::wait_until(WAIT, "timesSent kept across the PATCH", || {
        (retrieve(&broker, &id, &[]).json()["notification"]["timesSent"] == 2).then_some(())
    });
    assert_eq!(broker.delete(&format!("{SUBSCRIPTIONS}/{id}")).status, 204);
    merge(&broker, "urn:ngsi-ld:Room:1", &json!({"temperature": 14}), &[]);
    assert_eq!(
        settled_count(&sink, |e| e["temperature"]["value"] == 14, "/moved"),
        1,
        "deleted: no more notifications"
    );
}

#[test]
fn ngsi10_and_ngsiv2_changes_notify_ld_subscriptions_and_ld_changes_notify_ngsiv2() {
    let broker = Broker::start();
    let sink = Sink::start();
    subscribe(&broker, &subscription("Device", &format!("{}/ld", sink.url())), &[]);
    broker.update_ok("APPEND", &[element("urn:ngsi-ld:Device:1", "Device", &[("temp", "integer", json!(10))])]);
    let request = wait_for(&sink, "/ld", "an NGSI10 change", |e| e["id"] == "urn:ngsi-ld:Device:1");
    assert_eq!(
        request.json()["data"][0],
        json!({"id": "urn:ngsi-ld:Device:1", "type": "Device",
        "temp": {"type": "Property", "value": 10}})
    );
    let v2 = json!({"id": "urn:ngsi-ld:Device:2", "type": "Device", "temp": {"type": "Number", "value": 21.5,
        "metadata": {"unitCode": {"type": "Text", "value": "CEL"}}}});
    let response = send(&broker, "POST", "/v2/entities?options=upsert", &v2, &[]);
    assert!(matches!(response.status, 201 | 204), "{response:?}");
    let request = wait_for(&sink, "/ld", "an NGSIv2 change", |e| e["id"] == "urn:ngsi-ld:Device:2");
    let data = request.json()["data"].clone();
    let entity = data.as_array().unwrap().iter().find(|e| e["id"] == "urn:ngsi-ld:Device:2").unwrap().clone();
    assert_eq!(entity["temp"], json!({"type": "Property", "value": 21.5, "unitCode": "CEL"}));

    let v2_subscription = json!({"subject": {"entities": [{"idPattern": "^urn:ngsi-ld:Room"}]},
        "notification": {"http": {"url": format!("{}/v2", sink.url())}, "attrsFormat": "keyValues"}});
    let response = send(&broker, "POST", "/v2/subscriptions", &v2_subscription, &[]);
    assert_eq!(response.status, 201, "{response:?}");
    create(&broker, &room("urn:ngsi-ld:Room:9", 19.0, 8.68, 49.4), &[]);
    wait_for(&sink, "/v2", "an NGSIv2 notification of an LD change", |e| {
        e["id"] == "urn:ngsi-ld:Room:9" && e["temperature"] == 19.0
    });
}

#[test]
fn subscriptions_survive_a_sigkill_restart() {
    let mut broker = Broker::start();
    let sink = Sink::start();
    let mut body = subscription("Room", &format!("{}/durable", sink.url()));
    body["notification"]["format"] = json!("keyValues");
    body["q"] = json!("temperature>5");
    let id = subscribe(&broker, &body, &[("NGSILD-Tenant", "farm1")]);
    let before = retrieve(&broker, &id, &[("NGSILD-Tenant", "farm1")]).json();
    broker.kill9();
    broker.restart();
    let after = retrieve(&broker, &id, &[("NGSILD-Tenant", "farm1")]);
    assert_eq!(after.status, 200, "{after:?}");
    assert_eq!(after.json(), before);
    create(&broker, &room("urn:ngsi-ld:Room:1", 9.0, 8.68, 49.4), &[("NGSILD-Tenant", "farm1")]);
    let request = wait_for(&sink, "/durable", "a notification after the restart", |e| e["temperature"] == 9.0);
    assert_eq!(request.header("ngsild-tenant"), Some("farm1"));
}

#[test]
fn subscriptions_are_per_tenant() {
    let broker = Broker::start();
    let sink = Sink::start();
    let farm = [("NGSILD-Tenant", "farm1")];
    let id = subscribe(&broker, &subscription("Room", &format!("{}/farm", sink.url())), &farm);
    subscribe(&broker, &subscription("Room", &format!("{}/marker", sink.url())), &[]);
    assert_problem(&retrieve(&broker, &id, &[]), 404, "ResourceNotFound");
    assert_problem(&retrieve(&broker, &id, &[("NGSILD-Tenant", "farm2")]), 404, "NonexistentTenant");
    assert_eq!(broker.get(SUBSCRIPTIONS).json().as_array().map(|a| a.len()), Some(1), "the default tenant's only");
    let listed = broker.request("GET", SUBSCRIPTIONS, None, &farm).json();
    assert_eq!(listed.as_array().map(|a| a.len()), Some(1));
    assert_eq!(listed[0]["id"], id.as_str());
    assert_problem(&broker.request("DELETE", &format!("{SUBSCRIPTIONS}/{id}"), None, &[]), 404, "ResourceNotFound");
    create(&broker, &room("urn:ngsi-ld:Room:1", 10.0, 8.68, 49.4), &[]);
    assert_eq!(settled_count(&sink, |e| e["id"] == "urn:ngsi-ld:Room:1", "/farm"), 0, "another tenant's change");
    create(&broker, &room("urn:ngsi-ld:Room:2", 11.0, 8.68, 49.4), &farm);
    let request = wait_for(&sink, "/farm", "the tenant's notification", |e| e["id"] == "urn:ngsi-ld:Room:2");
    assert_eq!(request.header("ngsild-tenant"), Some("farm1"));
}
