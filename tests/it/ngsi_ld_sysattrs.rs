//! NGSI-LD system attributes of attribute instances (ETSI GS CIM 009 clause 4.8): with `options=sysAttrs` every
//! attribute (each `datasetId` instance of a multi-attribute) shows its own `createdAt` (first written, kept across
//! updates, overwrites and replaces) and `modifiedAt` (last written), whichever API wrote it (NGSI-LD, NGSI10,
//! NGSIv2), in retrieval, queries and the query batch, normalized and concise, none in keyValues; NGSIv2 reads show
//! the same times as Orion's `dateCreated`/`dateModified` metadata. Times are compared by order (ISO 8601 UTC with
//! milliseconds sorts as text), never by wall-clock value.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::Broker;
use crate::ngsi_ld_entities::{create, send};

const CAR: &str = "/ngsi-ld/v1/entities/urn:ngsi-ld:Car:1";

/// A pause longer than the clock's millisecond, so that two writes get different times.
fn tick() {
    std::thread::sleep(Duration::from_millis(5));
}

/// The car with `options=sysAttrs` (normalized).
fn read(broker: &Broker) -> Value {
    let response = broker.get(&format!("{CAR}?options=sysAttrs"));
    assert_eq!(response.status, 200, "{response:?}");
    response.json()
}

/// `(createdAt, modifiedAt)` of a rendered attribute instance, checked to be ISO 8601 UTC with milliseconds.
fn times(attribute: &Value) -> (String, String) {
    let time = |key: &str| {
        let text = attribute[key].as_str().unwrap_or_else(|| panic!("no {key} in {attribute}")).to_string();
        let shape = text.len() == 24 && text.as_bytes()[10] == b'T' && text.as_bytes()[19] == b'.';
        assert!(shape && text.ends_with('Z'), "{key} `{text}` is not UTC with milliseconds");
        text
    };
    (time("createdAt"), time("modifiedAt"))
}

/// The instance of `speed` with this `datasetId` (none: the default instance).
fn speed<'a>(car: &'a Value, dataset: Option<&str>) -> &'a Value {
    let instances = car["speed"].as_array().unwrap_or_else(|| panic!("speed is not multi: {car}"));
    let found = instances.iter().find(|i| i.get("datasetId").and_then(Value::as_str) == dataset);
    found.unwrap_or_else(|| panic!("no speed instance {dataset:?} in {car}"))
}

#[test]
fn attribute_instances_keep_their_own_times_through_every_api() {
    let broker = Broker::start();
    create(
        &broker,
        &json!({"id": "urn:ngsi-ld:Car:1", "type": "Car",
            "brand": {"type": "Property", "value": "Mercedes", "createdAt": "2000-01-01T00:00:00.000Z"},
            "speed": [{"type": "Property", "value": 80}, {"type": "Property", "value": 81, "datasetId": "urn:gps"}]}),
        &[],
    );
    let car = read(&broker);
    let brand0 = times(&car["brand"]);
    assert_eq!(brand0.0, brand0.1, "created and modified together: {car}");
    assert!(brand0.0.as_str() > "2000-01-01T00:00:00.000Z", "a client's createdAt is ignored: {car}");
    assert_eq!(times(speed(&car, None)), brand0);
    assert_eq!(times(speed(&car, Some("urn:gps"))), brand0);
    assert_eq!(car["createdAt"], json!(brand0.0), "the entity's creation: {car}");

    // NGSI-LD partial update of the default instance only.
    tick();
    let patch = send(&broker, "PATCH", &format!("{CAR}/attrs/speed"), &json!({"value": 90}), &[]);
    assert_eq!(patch.status, 204, "{patch:?}");
    let car = read(&broker);
    let speed1 = times(speed(&car, None));
    assert!(speed1.0 == brand0.0 && speed1.1 > brand0.1, "the written instance: {car}");
    assert_eq!(times(speed(&car, Some("urn:gps"))), brand0, "the other datasetId instance is untouched: {car}");
    assert_eq!(times(&car["brand"]), brand0, "other attributes are untouched: {car}");
    assert_eq!(car["modifiedAt"], json!(speed1.1), "the entity's last change: {car}");

    // NGSI10 update of brand.
    tick();
    let element = json!({"entityId": {"id": "urn:ngsi-ld:Car:1", "type": "Car", "isPattern": false},
        "attributes": [{"name": "brand", "type": "Property", "value": "Audi"}]});
    broker.update_ok("UPDATE", &[element]);
    let car = read(&broker);
    let brand1 = times(&car["brand"]);
    assert!(brand1.0 == brand0.0 && brand1.1 > speed1.1, "NGSI10 writes stamp the attribute: {car}");
    assert_eq!(times(speed(&car, None)), speed1);

    // NGSIv2 update of brand.
    tick();
    let v2 = broker.request(
        "PATCH",
        "/v2/entities/urn:ngsi-ld:Car:1/attrs",
        Some(r#"{"brand":{"value":"VW"}}"#),
        &[("Content-Type", "application/json")],
    );
    assert_eq!(v2.status, 204, "{v2:?}");
    let car = read(&broker);
    let brand2 = times(&car["brand"]);
    assert!(brand2.0 == brand0.0 && brand2.1 > brand1.1, "NGSIv2 writes stamp the attribute: {car}");
    let orion = broker.get("/v2/entities/urn:ngsi-ld:Car:1?attrs=brand&metadata=dateCreated,dateModified").json();
    let stamp = |time: &str| json!({"type": "DateTime", "value": time});
    assert_eq!(
        orion["brand"]["metadata"],
        json!({"dateCreated": stamp(&brand2.0), "dateModified": stamp(&brand2.1)}),
        "the same times as Orion's builtin metadata: {orion}"
    );

    // NGSI-LD batch upsert (update mode) of the gps instance.
    tick();
    let batch = json!([{"id": "urn:ngsi-ld:Car:1", "type": "Car",
        "speed": {"type": "Property", "value": 95, "datasetId": "urn:gps"}}]);
    let upsert = send(&broker, "POST", "/ngsi-ld/v1/entityOperations/upsert?options=update", &batch, &[]);
    assert_eq!(upsert.status, 204, "{upsert:?}");
    let car = read(&broker);
    let gps1 = times(speed(&car, Some("urn:gps")));
    assert!(gps1.0 == brand0.0 && gps1.1 > brand2.1, "{car}");
    assert_eq!(times(speed(&car, None)), speed1, "{car}");

    // Replace the entity: an instance still there keeps its createdAt, one gone is gone.
    tick();
    let replacement = json!({"type": "Car", "brand": {"type": "Property", "value": "Opel"},
        "seats": {"type": "Property", "value": 5}});
    assert_eq!(send(&broker, "PUT", CAR, &replacement, &[]).status, 204);
    let car = read(&broker);
    let (brand3, seats) = (times(&car["brand"]), times(&car["seats"]));
    assert!(brand3.0 == brand0.0 && brand3.1 > gps1.1, "a replace keeps createdAt (clause 5.6.18): {car}");
    assert!(seats.0 == seats.1 && seats.0 == brand3.1, "a new attribute: {car}");
    assert!(car.get("speed").is_none(), "{car}");

    // Deleted and added again: a new createdAt.
    tick();
    assert_eq!(broker.delete(&format!("{CAR}/attrs/brand")).status, 204);
    let append =
        send(&broker, "POST", &format!("{CAR}/attrs"), &json!({"brand": {"type": "Property", "value": "Kia"}}), &[]);
    assert_eq!(append.status, 204, "{append:?}");
    let car = read(&broker);
    let brand4 = times(&car["brand"]);
    assert!(brand4.0 > brand3.1 && brand4.0 == brand4.1, "{car}");
    assert_eq!(times(&car["seats"]), seats, "{car}");

    // Overwrite by append: createdAt kept.
    tick();
    let overwrite =
        send(&broker, "POST", &format!("{CAR}/attrs"), &json!({"brand": {"type": "Property", "value": "Fiat"}}), &[]);
    assert_eq!(overwrite.status, 204, "{overwrite:?}");
    let brand5 = times(&read(&broker)["brand"]);
    assert!(brand5.0 == brand4.0 && brand5.1 > brand4.1, "an overwrite keeps createdAt");
}

#[test]
fn queries_show_attribute_times_in_normalized_and_concise_but_not_key_values() {
    let broker = Broker::start();
    create(
        &broker,
        &json!({"id": "urn:ngsi-ld:Car:2", "type": "Car", "speed": {"type": "Property", "value": 80}}),
        &[],
    );
    let retrieved = broker.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Car:2?options=sysAttrs").json();
    let (created, modified) = times(&retrieved["speed"]);
    let expected = json!({"type": "Property", "value": 80, "createdAt": created, "modifiedAt": modified});
    assert_eq!(retrieved["speed"], expected);

    let query = broker.get("/ngsi-ld/v1/entities?type=Car&options=sysAttrs");
    assert_eq!(query.status, 200, "{query:?}");
    assert_eq!(query.json()[0]["speed"], expected, "{query:?}");
    let batch = json!({"type": "Query", "entities": [{"type": "Car"}]});
    let queried = send(&broker, "POST", "/ngsi-ld/v1/entityOperations/query?options=sysAttrs", &batch, &[]);
    assert_eq!(queried.status, 200, "{queried:?}");
    assert_eq!(queried.json()[0]["speed"], expected, "{queried:?}");

    let concise = broker.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Car:2?options=concise,sysAttrs").json();
    assert_eq!(concise["speed"], json!({"value": 80, "createdAt": created, "modifiedAt": modified}));
    let key_values = broker.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Car:2?options=keyValues,sysAttrs").json();
    assert_eq!(key_values, json!({"id": "urn:ngsi-ld:Car:2", "type": "Car", "speed": 80}));
    let plain = broker.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Car:2").json();
    assert_eq!(plain["speed"], json!({"type": "Property", "value": 80}), "only with sysAttrs");
}
