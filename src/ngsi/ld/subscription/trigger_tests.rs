//! Unit tests of `notificationTrigger` matching and of what notifications add for `showChanges`, `sysAttrs` and
//! deletions.

use serde_json::json;

use super::*;
use crate::ngsi::ld::entity::parse_entity;
use crate::ngsi::times::EntityTimes;

fn subscription(members: Value) -> LdSubscription {
    let mut body =
        json!({"entities": [{"type": "Room"}], "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}}});
    for (key, value) in members.as_object().unwrap() {
        if key == "notification" {
            for (member, inner) in value.as_object().unwrap() {
                body["notification"][member] = inner.clone();
            }
        } else {
            body[key] = value.clone();
        }
    }
    LdSubscription::parse(&body, &Context::core(), Value::Null).unwrap().1
}

fn room(attributes: Value) -> ContextElement {
    let mut entity = json!({"id": "urn:r", "type": "Room"});
    for (name, attribute) in attributes.as_object().unwrap() {
        entity[name] = attribute.clone();
    }
    parse_entity(&Context::core(), &entity).unwrap()
}

fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

/// The changes of a room: created with temperature, updated (temperature), given humidity, losing humidity,
/// deleted.
struct Story {
    bare: ContextElement,
    warm: ContextElement,
    hot: ContextElement,
    humid: ContextElement,
}

fn story() -> Story {
    Story {
        bare: room(json!({})),
        warm: room(json!({"temperature": 20})),
        hot: room(json!({"temperature": 30})),
        humid: room(json!({"temperature": 30, "humidity": 50})),
    }
}

/// A named change: what, before, after, names touched.
type Case<'a> = (&'a str, Option<&'a ContextElement>, Option<&'a ContextElement>, &'a [&'a str]);

fn fires(
    subscription: &LdSubscription,
    before: Option<&ContextElement>,
    after: Option<&ContextElement>,
    touched: &[&str],
) -> bool {
    subscription.is_triggered_by(&Change { before, after, touched: &names(touched) })
}

#[test]
fn triggers_classify_creations_updates_and_deletions_of_entities_and_attributes() {
    let s = story();
    let cases: [Case; 7] = [
        ("created", None, Some(&s.warm), &["temperature"]),
        ("created bare", None, Some(&s.bare), &[]),
        ("updated", Some(&s.warm), Some(&s.hot), &["temperature"]),
        ("attribute added", Some(&s.hot), Some(&s.humid), &["humidity"]),
        ("attribute deleted", Some(&s.humid), Some(&s.hot), &["humidity"]),
        ("deleted", Some(&s.hot), None, &["temperature"]),
        ("nothing touched", Some(&s.hot), Some(&s.hot), &[]),
    ];
    let expectations: [(Value, [bool; 7]); 8] = [
        (json!({}), [true, true, true, true, false, false, false]),
        (json!({"notificationTrigger": ["entityCreated"]}), [true, true, false, false, false, false, false]),
        (json!({"notificationTrigger": ["entityUpdated"]}), [false, false, true, true, true, false, false]),
        (json!({"notificationTrigger": ["entityDeleted"]}), [false, false, false, false, false, true, false]),
        (json!({"notificationTrigger": ["attributeCreated"]}), [true, true, false, true, false, false, false]),
        (json!({"notificationTrigger": ["attributeUpdated"]}), [false, false, true, false, false, false, false]),
        (json!({"notificationTrigger": ["attributeDeleted"]}), [false, false, false, false, true, true, false]),
        (
            json!({"notificationTrigger": ["entityCreated", "entityDeleted"], "watchedAttributes": ["humidity"]}),
            [false, false, false, false, false, false, false],
        ),
    ];
    for (members, expected) in expectations {
        let subscription = subscription(members.clone());
        for ((what, before, after, touched), expected) in cases.iter().zip(expected) {
            assert_eq!(fires(&subscription, *before, *after, touched), expected, "{members} on {what}");
        }
    }
    let watched = subscription(json!({"notificationTrigger": ["attributeDeleted", "attributeUpdated"],
        "watchedAttributes": ["temperature"]}));
    assert!(!fires(&watched, Some(&s.humid), Some(&s.hot), &["humidity"]), "humidity is not watched");
    assert!(fires(&watched, Some(&s.hot), None, &["temperature"]), "deleting the entity deletes temperature");
    assert!(fires(&watched, Some(&s.warm), Some(&s.hot), &["temperature"]));
}

fn body(subscription: &LdSubscription, element: &ContextElement, notice: Option<&LdNotice>) -> Value {
    let projected = subscription.project(element);
    let times =
        notice.map_or_else(EntityTimes::default, |notice| EntityTimes::entity(notice.created_at, notice.modified_at));
    notification_body(subscription, "urn:s", "urn:n", 0, [(&projected, times, notice)].into_iter())["data"][0].clone()
}

const CREATED: i64 = 1_000;
const MODIFIED: i64 = 2_000;
const CHANGED: i64 = 3_000;

#[test]
fn an_entity_deletion_notifies_its_id_type_and_deleted_at() {
    let s = story();
    let change = Change { before: Some(&s.humid), after: None, touched: &names(&["temperature", "humidity"]) };
    let deleted = ContextElement { entity_id: s.humid.entity_id.clone(), ..ContextElement::default() };

    let key_values =
        subscription(json!({"notificationTrigger": ["entityDeleted"], "notification": {"format": "keyValues"}}));
    let notice = key_values.notice(&change, CREATED, MODIFIED, CHANGED).unwrap();
    assert_eq!(
        body(&key_values, &deleted, Some(&notice)),
        json!({"id": "urn:r", "type": "Room", "deletedAt": "1970-01-01T00:00:03.000Z"})
    );

    let sys_attrs = subscription(json!({"notificationTrigger": ["entityDeleted"], "notification": {"sysAttrs": true}}));
    let notice = sys_attrs.notice(&change, CREATED, MODIFIED, CHANGED).unwrap();
    assert_eq!(
        body(&sys_attrs, &deleted, Some(&notice)),
        json!({"id": "urn:r", "type": "Room", "createdAt": "1970-01-01T00:00:01.000Z",
            "modifiedAt": "1970-01-01T00:00:02.000Z", "deletedAt": "1970-01-01T00:00:03.000Z"})
    );

    let show_changes =
        subscription(json!({"notificationTrigger": ["entityDeleted"], "notification": {"showChanges": true}}));
    let notice = show_changes.notice(&change, CREATED, MODIFIED, CHANGED).unwrap();
    assert_eq!(
        body(&show_changes, &deleted, Some(&notice)),
        json!({"id": "urn:r", "type": "Room", "deletedAt": "1970-01-01T00:00:03.000Z",
            "temperature": {"type": "Property", "value": "urn:ngsi-ld:null", "previousValue": 30},
            "humidity": {"type": "Property", "value": "urn:ngsi-ld:null", "previousValue": 50}})
    );

    let watched = subscription(json!({"notificationTrigger": ["attributeDeleted"], "watchedAttributes": ["humidity"]}));
    let notice = watched.notice(&change, CREATED, MODIFIED, CHANGED).unwrap();
    assert_eq!(
        body(&watched, &deleted, Some(&notice)),
        json!({"id": "urn:r", "type": "Room", "deletedAt": "1970-01-01T00:00:03.000Z",
            "humidity": {"type": "Property", "value": "urn:ngsi-ld:null"}}),
        "attributeDeleted: the watched attributes deleted with the entity"
    );
}

#[test]
fn an_attribute_deletion_notifies_the_current_state_and_the_deleted_attribute_as_null() {
    let before = room(json!({"temperature": 30,
        "owner": {"type": "Relationship", "object": "urn:p"},
        "name": {"type": "LanguageProperty", "languageMap": {"en": "Hall"}}}));
    let after = room(json!({"temperature": 30}));
    let change = Change { before: Some(&before), after: Some(&after), touched: &names(&["owner", "name"]) };

    let key_values =
        subscription(json!({"notificationTrigger": ["attributeDeleted"], "notification": {"format": "keyValues"}}));
    let notice = key_values.notice(&change, CREATED, MODIFIED, CHANGED).unwrap();
    assert_eq!(
        body(&key_values, &after, Some(&notice)),
        json!({"id": "urn:r", "type": "Room", "temperature": 30, "owner": "urn:ngsi-ld:null", "name": "urn:ngsi-ld:null"})
    );

    let full = subscription(json!({"notificationTrigger": ["entityUpdated"],
        "notification": {"showChanges": true, "sysAttrs": true, "attributes": ["owner", "name"]}}));
    let notice = full.notice(&change, CREATED, MODIFIED, CHANGED).unwrap();
    assert_eq!(
        body(&full, &after, Some(&notice)),
        json!({"id": "urn:r", "type": "Room",
            "createdAt": "1970-01-01T00:00:01.000Z", "modifiedAt": "1970-01-01T00:00:02.000Z",
            "owner": {"type": "Relationship", "object": "urn:ngsi-ld:null", "previousObject": "urn:p",
                "deletedAt": "1970-01-01T00:00:03.000Z"},
            "name": {"type": "LanguageProperty", "languageMap": "urn:ngsi-ld:null",
                "previousLanguageMap": {"en": "Hall"}, "deletedAt": "1970-01-01T00:00:03.000Z"}})
    );

    let default = subscription(json!({}));
    assert!(default.notice(&change, CREATED, MODIFIED, CHANGED).is_none(), "deletions shown only when asked");
}

#[test]
fn show_changes_adds_the_previous_value_of_updated_attributes() {
    let before = room(json!({"temperature": 20, "humidity": 50, "owner": {"type": "Relationship", "object": "urn:p"}}));
    let after = room(json!({"temperature": 25, "humidity": 50, "owner": {"type": "Relationship", "object": "urn:q"},
        "pressure": 1000}));
    let change =
        Change { before: Some(&before), after: Some(&after), touched: &names(&["temperature", "owner", "pressure"]) };
    let normalized = subscription(json!({"notification": {"showChanges": true}}));
    let notice = normalized.notice(&change, CREATED, MODIFIED, CHANGED).unwrap();
    let notified = body(&normalized, &after, Some(&notice));
    assert_eq!(notified["temperature"], json!({"type": "Property", "value": 25, "previousValue": 20}));
    assert_eq!(notified["owner"], json!({"type": "Relationship", "object": "urn:q", "previousObject": "urn:p"}));
    assert_eq!(notified["humidity"], json!({"type": "Property", "value": 50}), "not touched: no previous value");
    assert_eq!(notified["pressure"], json!({"type": "Property", "value": 1000}), "created: no previous value");
    assert!(notified.get("createdAt").is_none(), "no sysAttrs");

    let concise = subscription(json!({"notification": {"showChanges": true, "format": "concise"}}));
    let notice = concise.notice(&change, CREATED, MODIFIED, CHANGED).unwrap();
    assert_eq!(body(&concise, &after, Some(&notice))["temperature"], json!({"value": 25, "previousValue": 20}));

    let creation = Change { before: None, after: Some(&after), touched: &names(&["temperature"]) };
    assert!(normalized.notice(&creation, CREATED, MODIFIED, CHANGED).is_none(), "a creation has no previous values");
    let sys_attrs = subscription(json!({"notification": {"sysAttrs": true}}));
    let notice = sys_attrs.notice(&creation, CREATED, MODIFIED, CHANGED).unwrap();
    let notified = body(&sys_attrs, &after, Some(&notice));
    assert_eq!(
        (notified["createdAt"].as_str(), notified["modifiedAt"].as_str()),
        (Some("1970-01-01T00:00:01.000Z"), Some("1970-01-01T00:00:02.000Z"))
    );
    assert!(notified.get("deletedAt").is_none());
    assert_eq!(sys_attrs.state_notice(CREATED, MODIFIED).unwrap().created_at, CREATED, "periodic notifications too");
    assert!(normalized.state_notice(CREATED, MODIFIED).is_none());
}
