//! The notification formats a subscriber can ask for with FogFlow's `Destination` header: NGSIv2
//! (`{"subscriptionId","data":[entity]}` POSTed to the reference itself) and NGSI-LD (a batch upsert POSTed to
//! `<reference>/ngsi-ld/v1/entityOperations/upsert` with the core `@context` Link and the `NGSILD-Tenant`
//! header), and the NGSIv1 deletion notification (an element with only the entity id).

use std::time::Duration;

use serde_json::json;

use crate::common::{located_element, Broker, Sink};

const WAIT: Duration = Duration::from_secs(10);

fn heidelberg_sensor(value: i64) -> serde_json::Value {
    located_element("Device.temp001", "Temperature", &[("temp", "integer", json!(value))], 49.4, 8.68, "Heidelberg")
}

#[test]
fn ngsiv2_destination_gets_orion_shaped_entities_at_the_reference() {
    let broker = Broker::start();
    let sink = Sink::start();
    let reference = format!("{}/v2/notify", sink.url());
    broker.subscribe_ok_with(
        &json!({"entities":[{"id":"Device.*","isPattern":true}],"reference":reference}),
        &[("Destination", "NGSIv2")],
    );
    broker.update_ok("UPDATE", &[heidelberg_sensor(21)]);
    let requests = sink.wait_until(WAIT, "an NGSIv2 notification", |requests| {
        requests.iter().any(|r| r.path == "/v2/notify" && r.body.contains("21"))
    });
    let notification = requests.iter().rev().find(|r| r.path == "/v2/notify").unwrap().json();
    let entity = &notification["data"][0];
    assert_eq!(entity["id"], "Device.temp001", "{notification}");
    assert_eq!(entity["type"], "Temperature", "{notification}");
    assert_eq!(entity["temp"], json!({"type":"integer","value":21}), "{notification}");
    assert_eq!(entity["city"]["value"], "Heidelberg", "{notification}");
    assert!(notification["subscriptionId"].is_string(), "{notification}");
}

#[test]
fn ngsi_ld_destination_gets_a_batch_upsert_with_context_and_tenant() {
    let broker = Broker::start();
    let sink = Sink::start();
    broker.subscribe_ok_with(
        &json!({"entities":[{"id":"Device.*","isPattern":true}],"reference":sink.url()}),
        &[("Destination", "NGSI-LD"), ("NGSILD-Tenant", "farm1")],
    );
    broker.update_ok("UPDATE", &[heidelberg_sensor(22)]);
    let upsert_path = "/ngsi-ld/v1/entityOperations/upsert";
    let requests = sink.wait_until(WAIT, "an NGSI-LD upsert", |requests| {
        requests.iter().any(|r| r.path == upsert_path && r.body.contains("22"))
    });
    let upsert = requests.iter().rev().find(|r| r.path == upsert_path).unwrap();
    assert!(upsert.header("link").is_some_and(|link| link.contains("ngsi-ld-core-context")), "{:?}", upsert.headers);
    assert_eq!(upsert.header("ngsild-tenant"), Some("farm1"), "{:?}", upsert.headers);
    let entities = upsert.json();
    let entity = &entities[0];
    assert_eq!(entity["id"], "urn:Device.temp001", "{entities}");
    assert_eq!(entity["temp"], json!({"type":"Property","value":22}), "{entities}");
    assert_eq!(entity["location"]["type"], "GeoProperty", "{entities}");
    assert_eq!(entity["location"]["value"]["coordinates"], json!([8.68, 49.4]), "{entities}");
}

#[test]
fn deleting_an_entity_notifies_its_id_only() {
    let broker = Broker::start();
    let sink = Sink::start();
    broker.update_ok("UPDATE", &[heidelberg_sensor(5)]);
    broker.subscribe_ok(&json!({"entities":[{"id":"Device.temp001"}],"reference":sink.url()}));
    sink.wait_notifications(1, WAIT);
    assert_eq!(broker.delete("/ngsi10/entity/Device.temp001").status, 200);
    let notifications = sink.wait_notifications(2, WAIT);
    let deleted = &notifications[1]["contextResponses"][0]["contextElement"];
    assert_eq!(deleted["entityId"]["id"], "Device.temp001", "{deleted}");
    assert!(deleted.get("attributes").is_none(), "a deletion carries no attributes: {deleted}");
}
