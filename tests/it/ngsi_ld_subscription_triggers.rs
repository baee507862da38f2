//! NGSI-LD subscription `notificationTrigger`, `notification.showChanges` and `notification.sysAttrs` against the
//! real binary and a real HTTP sink: `entityCreated` against `attributeUpdated`, the default triggers, entity
//! deletions through NGSI-LD (DELETE, batch delete), NGSIv2 and NGSI10 notified to `entityDeleted` subscriptions
//! as `{id, type, deletedAt}`, attribute deletions notified to `attributeDeleted` ones with the NGSI-LD Null,
//! previous values of updated attributes, and the entity's `createdAt` / `modifiedAt`.

use serde_json::{json, Value};

use crate::common::{element, Broker, Sink};
use crate::ngsi_ld_entities::{assert_problem, create, room, send};
use crate::ngsi_ld_subscriptions::{
    merge, patch, received, retrieve, settled_count, subscribe, subscription, wait_for,
};

/// A subscription on Rooms notifying `path` of the sink, with `members` added (`notification` merged).
fn on_rooms(sink: &Sink, path: &str, members: Value) -> Value {
    let mut body = subscription("Room", &format!("{}{path}", sink.url()));
    for (key, value) in members.as_object().expect("an object") {
        if key == "notification" {
            for (member, inner) in value.as_object().expect("an object") {
                body["notification"][member] = inner.clone();
            }
        } else {
            body[key] = value.clone();
        }
    }
    body
}

/// An entity notified of a deletion, with its `deletedAt` checked to be a date-time and taken out.
fn without_deleted_at(entity: &Value) -> Value {
    let mut entity = entity.clone();
    let deleted_at = entity.as_object_mut().and_then(|members| members.remove("deletedAt"));
    assert!(deleted_at.as_ref().and_then(Value::as_str).is_some_and(|at| at.ends_with('Z')), "deletedAt in {entity}");
    entity
}

#[test]
fn notification_triggers_choose_between_entity_creations_and_attribute_updates() {
    let broker = Broker::start();
    let sink = Sink::start();
    subscribe(&broker, &on_rooms(&sink, "/marker", json!({})), &[]);
    let created =
        subscribe(&broker, &on_rooms(&sink, "/created", json!({"notificationTrigger": ["entityCreated"]})), &[]);
    let updated = on_rooms(&sink, "/updated", json!({"notificationTrigger": ["attributeUpdated"]}));
    let updated = subscribe(&broker, &updated, &[]);
    assert_eq!(retrieve(&broker, &created, &[]).json()["notificationTrigger"], json!(["entityCreated"]));
    assert_eq!(
        retrieve(&broker, &updated, &[]).json()["notificationTrigger"],
        json!(["attributeUpdated"]),
        "shown as given"
    );

    create(&broker, &room("urn:ngsi-ld:Room:1", 10.0, 8.68, 49.4), &[]);
    let request = wait_for(&sink, "/created", "the creation", |e| e["id"] == "urn:ngsi-ld:Room:1");
    assert_eq!(request.json()["data"][0]["temperature"], json!({"type": "Property", "value": 10.0, "unitCode": "CEL"}));
    assert_eq!(
        settled_count(&sink, |e| e["temperature"]["value"] == 10.0, "/updated"),
        0,
        "a creation updates nothing"
    );

    merge(&broker, "urn:ngsi-ld:Room:1", &json!({"temperature": 12}), &[]);
    wait_for(&sink, "/updated", "the update", |e| e["temperature"]["value"] == 12);
    merge(&broker, "urn:ngsi-ld:Room:1", &json!({"humidity": 40}), &[]);
    assert_eq!(
        settled_count(&sink, |e| e["humidity"]["value"] == 40, "/updated"),
        1,
        "a new attribute is attributeCreated, not attributeUpdated"
    );
    assert_eq!(received(&sink, "/created").len(), 1, "updates are not entityCreated");

    assert_eq!(patch(&broker, &created, &json!({"notificationTrigger": ["entityUpdated"]})).status, 204);
    assert_eq!(retrieve(&broker, &created, &[]).json()["notificationTrigger"], json!(["entityUpdated"]));
    merge(&broker, "urn:ngsi-ld:Room:1", &json!({"humidity": 45}), &[]);
    wait_for(&sink, "/created", "an update once entityUpdated", |e| e["humidity"]["value"] == 45);
    assert_problem(
        &patch(&broker, &created, &json!({"notificationTrigger": ["entityChanged"]})),
        400,
        "BadRequestData",
    );
    let default = subscribe(&broker, &on_rooms(&sink, "/default", json!({})), &[]);
    assert_eq!(
        retrieve(&broker, &default, &[]).json()["notificationTrigger"],
        json!(["attributeCreated", "attributeUpdated"]),
        "the spec's default"
    );
}

#[test]
fn entity_deletions_notify_entity_deleted_subscriptions_through_every_flavour() {
    let broker = Broker::start();
    let sink = Sink::start();
    subscribe(&broker, &on_rooms(&sink, "/marker", json!({})), &[]);
    let deleted = on_rooms(
        &sink,
        "/deleted",
        json!({"notificationTrigger": ["entityDeleted"],
        "notification": {"format": "keyValues"}}),
    );
    let deleted_id = subscribe(&broker, &deleted, &[]);
    let with_times =
        on_rooms(&sink, "/sys", json!({"notificationTrigger": ["entityDeleted"], "notification": {"sysAttrs": true}}));
    subscribe(&broker, &with_times, &[]);
    let v2 = json!({"subject": {"entities": [{"idPattern": "^urn:ngsi-ld:Room"}]},
        "notification": {"http": {"url": format!("{}/v2", sink.url())}}});
    assert_eq!(send(&broker, "POST", "/v2/subscriptions", &v2, &[]).status, 201);
    for n in 1..=4 {
        create(&broker, &room(&format!("urn:ngsi-ld:Room:{n}"), 10.0, 8.68, 49.4), &[]);
    }
    wait_for(&sink, "/marker", "the last creation", |e| e["id"] == "urn:ngsi-ld:Room:4");
    assert!(received(&sink, "/deleted").is_empty(), "creations are not entityDeleted");
    let sys_entity = broker.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1?options=sysAttrs").json();

    assert_eq!(broker.delete("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1").status, 204);
    let request = wait_for(&sink, "/deleted", "the LD deletion", |e| e["id"] == "urn:ngsi-ld:Room:1");
    let notification = request.json();
    assert_eq!(notification["subscriptionId"], deleted_id.as_str());
    assert_eq!(without_deleted_at(&notification["data"][0]), json!({"id": "urn:ngsi-ld:Room:1", "type": "Room"}));
    let request = wait_for(&sink, "/sys", "the LD deletion with sysAttrs", |e| e["id"] == "urn:ngsi-ld:Room:1");
    let entity = request.json()["data"][0].clone();
    assert_eq!(
        without_deleted_at(&entity),
        json!({"id": "urn:ngsi-ld:Room:1", "type": "Room", "createdAt": sys_entity["createdAt"],
            "modifiedAt": sys_entity["modifiedAt"]}),
        "the deleted entity's times"
    );

    assert_eq!(broker.delete("/v2/entities/urn:ngsi-ld:Room:2").status, 204);
    let request = wait_for(&sink, "/deleted", "the NGSIv2 deletion", |e| e["id"] == "urn:ngsi-ld:Room:2");
    let entity = request.json()["data"].as_array().unwrap().iter().find(|e| e["id"] == "urn:ngsi-ld:Room:2").cloned();
    assert_eq!(without_deleted_at(&entity.unwrap()), json!({"id": "urn:ngsi-ld:Room:2", "type": "Room"}));

    broker.update_ok("DELETE", &[element("urn:ngsi-ld:Room:3", "Room", &[])]);
    wait_for(&sink, "/deleted", "the NGSI10 deletion", |e| {
        e["id"] == "urn:ngsi-ld:Room:3" && e["deletedAt"].is_string()
    });

    let response = send(&broker, "POST", "/ngsi-ld/v1/entityOperations/delete", &json!(["urn:ngsi-ld:Room:4"]), &[]);
    assert_eq!(response.status, 204, "{response:?}");
    wait_for(&sink, "/deleted", "the batch deletion", |e| {
        e["id"] == "urn:ngsi-ld:Room:4" && e["deletedAt"].is_string()
    });

    create(&broker, &room("urn:ngsi-ld:Room:5", 10.0, 8.68, 49.4), &[]);
    wait_for(&sink, "/v2", "the NGSIv2 notification of the last creation", |e| e["id"] == "urn:ngsi-ld:Room:5");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let v2_entities: usize =
        received(&sink, "/v2").iter().map(|r| r.json()["data"].as_array().map_or(0, Vec::len)).sum();
    assert_eq!(v2_entities, 5, "NGSIv2 subscriptions are still notified of the creations only");
    assert!(
        received(&sink, "/marker").iter().all(|r| r.json()["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e.get("deletedAt").is_none())),
        "the default triggers do not include entityDeleted"
    );
}

#[test]
fn attribute_deletions_notify_attribute_deleted_subscriptions_with_the_ngsi_ld_null() {
    let broker = Broker::start();
    let sink = Sink::start();
    subscribe(&broker, &on_rooms(&sink, "/marker", json!({})), &[]);
    let deleted = on_rooms(&sink, "/attr", json!({"notificationTrigger": ["attributeDeleted"]}));
    subscribe(&broker, &deleted, &[]);
    let watched = on_rooms(
        &sink,
        "/watched",
        json!({"notificationTrigger": ["attributeDeleted"],
        "watchedAttributes": ["humidity"], "notification": {"format": "keyValues"}}),
    );
    subscribe(&broker, &watched, &[]);
    create(&broker, &room("urn:ngsi-ld:Room:1", 10.0, 8.68, 49.4), &[]);
    merge(&broker, "urn:ngsi-ld:Room:1", &json!({"humidity": 40}), &[]);
    wait_for(&sink, "/marker", "the update", |e| e["humidity"]["value"] == 40);
    let marker_before = received(&sink, "/marker").len();

    assert_eq!(broker.delete("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1/attrs/inBuilding").status, 204);
    let request = wait_for(&sink, "/attr", "the attribute deletion", |e| e["id"] == "urn:ngsi-ld:Room:1");
    assert_eq!(
        request.json()["data"][0],
        json!({"id": "urn:ngsi-ld:Room:1", "type": "Room",
            "temperature": {"type": "Property", "value": 10.0, "unitCode": "CEL"},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [8.68, 49.4]}},
            "humidity": {"type": "Property", "value": 40},
            "inBuilding": {"type": "Relationship", "object": "urn:ngsi-ld:null"}})
    );
    assert!(received(&sink, "/watched").is_empty(), "inBuilding is not watched");

    assert_eq!(broker.delete("/v2/entities/urn:ngsi-ld:Room:1/attrs/humidity").status, 204);
    let request = wait_for(&sink, "/watched", "the watched deletion", |e| e["humidity"] == "urn:ngsi-ld:null");
    assert_eq!(
        request.json()["data"][0],
        json!({"id": "urn:ngsi-ld:Room:1", "type": "Room", "temperature": 10.0,
            "location": {"type": "Point", "coordinates": [8.68, 49.4]}, "humidity": "urn:ngsi-ld:null"})
    );
    merge(&broker, "urn:ngsi-ld:Room:1", &json!({"temperature": 11}), &[]);
    assert_eq!(
        settled_count(&sink, |e| e["temperature"]["value"] == 11, "/marker"),
        marker_before + 1,
        "attribute deletions are not in the default triggers"
    );
    assert_eq!(received(&sink, "/attr").len(), 2, "an update is not attributeDeleted");
}

#[test]
fn show_changes_notifies_previous_values_and_sys_attrs_the_entity_and_attribute_times() {
    let broker = Broker::start();
    let sink = Sink::start();
    let changes = on_rooms(&sink, "/changes", json!({"notification": {"showChanges": true}}));
    let changes_id = subscribe(&broker, &changes, &[]);
    let shown = retrieve(&broker, &changes_id, &[]).json();
    assert_eq!(
        (shown["notification"]["showChanges"].clone(), shown["notification"]["sysAttrs"].clone()),
        (json!(true), json!(false))
    );
    subscribe(
        &broker,
        &on_rooms(
            &sink,
            "/sys",
            json!({"notification": {"sysAttrs": true, "attributes": ["temperature", "location"]}}),
        ),
        &[],
    );
    create(&broker, &room("urn:ngsi-ld:Room:1", 10.0, 8.68, 49.4), &[]);
    let request = wait_for(&sink, "/changes", "the creation", |e| e["id"] == "urn:ngsi-ld:Room:1");
    assert!(
        request.json()["data"][0]["temperature"].get("previousValue").is_none(),
        "a creation has no previous value"
    );

    let update = json!({"temperature": {"type": "Property", "value": 12, "unitCode": "CEL"},
        "inBuilding": {"type": "Relationship", "object": "urn:ngsi-ld:Building:2"}});
    merge(&broker, "urn:ngsi-ld:Room:1", &update, &[]);
    let request = wait_for(&sink, "/changes", "the update", |e| e["temperature"]["value"] == 12);
    let entity = request.json()["data"][0].clone();
    assert_eq!(
        entity["temperature"],
        json!({"type": "Property", "value": 12, "unitCode": "CEL", "previousValue": 10.0})
    );
    assert_eq!(
        entity["inBuilding"],
        json!({"type": "Relationship", "object": "urn:ngsi-ld:Building:2", "previousObject": "urn:ngsi-ld:Building:1"})
    );
    assert!(entity["location"].get("previousValue").is_none(), "location did not change");

    let stored = broker.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1?options=sysAttrs").json();
    let request = wait_for(&sink, "/sys", "the update with sysAttrs", |e| e["temperature"]["value"] == 12);
    assert_eq!(
        request.json()["data"][0],
        json!({"id": "urn:ngsi-ld:Room:1", "type": "Room", "createdAt": stored["createdAt"],
            "modifiedAt": stored["modifiedAt"], "temperature": {"type": "Property", "value": 12, "unitCode": "CEL",
                "createdAt": stored["temperature"]["createdAt"], "modifiedAt": stored["temperature"]["modifiedAt"]},
            "location": stored["location"]})
    );
    assert_ne!(stored["createdAt"], stored["modifiedAt"], "{stored}");
    // The attribute's own times: modified by the merge, created before it; location was not touched.
    assert_ne!(stored["temperature"]["createdAt"], stored["temperature"]["modifiedAt"], "{stored}");
    assert_eq!(stored["temperature"]["modifiedAt"], stored["modifiedAt"], "{stored}");
    assert_eq!(stored["location"]["modifiedAt"], stored["location"]["createdAt"], "{stored}");
    assert_problem(
        &patch(&broker, &changes_id, &json!({"notification": {"format": "keyValues"}})),
        400,
        "BadRequestData",
    );
}
