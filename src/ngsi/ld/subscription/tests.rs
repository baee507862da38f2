//! Unit tests of NGSI-LD subscription parsing, PATCH, selection, projection, rendering and notification bodies.

use serde_json::json;

use super::render::{render_subscription, Shown};
use super::*;
use crate::ngsi::ld::context::CORE_CONTEXT_URL;
use crate::ngsi::ld::entity::parse_entity;
use crate::ngsi::times::EntityTimes;

fn parse(body: Value) -> Result<(Option<String>, LdSubscription), SubscriptionError> {
    LdSubscription::parse(&body, &Context::core(), Value::Null)
}

fn endpoint() -> Value {
    json!({"endpoint": {"uri": "http://127.0.0.1:9/notify"}})
}

fn room(id: &str, temperature: f64) -> ContextElement {
    parse_entity(
        &Context::core(),
        &json!({"id": id, "type": "Room", "temperature": {"type": "Property", "value": temperature, "unitCode": "CEL"},
            "humidity": 40, "location": {"type": "Point", "coordinates": [8.68, 49.4]}}),
    )
    .unwrap()
}

#[test]
fn a_full_subscription_is_parsed_with_canonical_names() {
    let context = Context::from_body(&json!({"Room": "https://example.org/Room"})).unwrap();
    let (id, subscription) = LdSubscription::parse(
        &json!({"id": "urn:ngsi-ld:Subscription:1", "type": "Subscription", "subscriptionName": "rooms",
            "description": "d", "entities": [{"type": "Room"}, {"idPattern": "^urn:b", "type": "Building"},
            {"id": "urn:c"}], "watchedAttributes": ["temperature"], "q": "temperature>20",
            "geoQ": {"georel": "near;maxDistance==1000", "geometry": "Point", "coordinates": [8.68, 49.4]},
            "isActive": false, "expiresAt": "2099-01-01T00:00:00Z", "throttling": 1.5,
            "notification": {"attributes": ["temperature"], "format": "keyValues",
                "endpoint": {"uri": "http://127.0.0.1:9/n", "accept": "application/ld+json"}},
            "@context": {"Room": "https://example.org/Room"}}),
        &context,
        json!({"Room": "https://example.org/Room"}),
    )
    .unwrap();
    assert_eq!(id.as_deref(), Some("urn:ngsi-ld:Subscription:1"));
    assert_eq!(subscription.entities[0].entity_type.as_deref(), Some("https://example.org/Room"));
    assert_eq!(subscription.entities[1].id_pattern.as_deref(), Some("^urn:b"));
    assert_eq!(subscription.watched_attributes, ["temperature"]);
    assert_eq!((subscription.format, subscription.accept), (NotificationFormat::KeyValues, Accept::LdJson));
    assert_eq!((subscription.is_active, subscription.throttling_ms), (false, Some(1500)));
    assert_eq!(subscription.expires_at, Some(4_070_908_800_000));
    assert_eq!(subscription.geo_q.as_ref().unwrap().coordinates, "[8.68,49.4]");
    let stored: LdSubscription = serde_json::from_value(serde_json::to_value(&subscription).unwrap()).unwrap();
    assert_eq!(stored, subscription, "the stored form reads back");
    assert!(stored.compile().is_ok());
}

#[test]
fn invalid_subscriptions_are_bad_request_data() {
    for bad in [
        json!([]),
        json!({"entities": [{"type": "Room"}]}),
        json!({"notification": endpoint()}),
        json!({"entities": [], "notification": endpoint()}),
        json!({"entities": [{}], "notification": endpoint()}),
        json!({"entities": [{"id": "not a uri"}], "notification": endpoint()}),
        json!({"entities": [{"idPattern": "("}], "notification": endpoint()}),
        json!({"entities": [{"type": 3}], "notification": endpoint()}),
        json!({"entities": [{"type": "Room", "color": "red"}], "notification": endpoint()}),
        json!({"id": "sub1", "entities": [{"type": "Room"}], "notification": endpoint()}),
        json!({"type": "Entity", "entities": [{"type": "Room"}], "notification": endpoint()}),
        json!({"entities": [{"type": "Room"}], "q": "temperature>", "notification": endpoint()}),
        json!({"entities": [{"type": "Room"}], "geoQ": {"georel": "near"}, "notification": endpoint()}),
        json!({"entities": [{"type": "Room"}], "geoQ": {"georel": "nearby", "geometry": "Point",
            "coordinates": [1, 2]}, "notification": endpoint()}),
        json!({"entities": [{"type": "Room"}], "isActive": "yes", "notification": endpoint()}),
        json!({"entities": [{"type": "Room"}], "expiresAt": "tomorrow", "notification": endpoint()}),
        json!({"entities": [{"type": "Room"}], "throttling": -1, "notification": endpoint()}),
        json!({"entities": [{"type": "Room"}], "notification": {}}),
        json!({"entities": [{"type": "Room"}], "notification": {"endpoint": {"uri": "no uri"}}}),
        json!({"entities": [{"type": "Room"}], "notification": {"format": "values", "endpoint": endpoint()["endpoint"]}}),
        json!({"entities": [{"type": "Room"}], "notification": {"endpoint": {"uri": "http://a/b", "accept": "text/xml"}}}),
        json!({"entities": [{"type": "Room"}], "notification": {"attributes": [], "endpoint": endpoint()["endpoint"]}}),
        json!({"entities": [{"type": "Room"}], "bogus": 1, "notification": endpoint()}),
    ] {
        assert!(matches!(parse(bad.clone()), Err(SubscriptionError::Invalid(_))), "{bad}");
    }
}

#[test]
fn unimplemented_members_are_operation_not_supported() {
    for body in [
        json!({"entities": [{"type": "Room"}], "temporalQ": {}, "notification": endpoint()}),
        json!({"entities": [{"type": "Room"}], "csf": "a==1", "notification": endpoint()}),
        json!({"entities": [{"type": "Room"}], "scopeQ": "/a", "notification": endpoint()}),
        json!({"entities": [{"type": "Room"}], "datasetId": ["urn:d"], "notification": endpoint()}),
        json!({"entities": [{"type": "Room"}], "jsonKeys": ["a"], "notification": endpoint()}),
        json!({"entities": [{"type": "Room"}], "notification": {"endpoint": {"uri": "http://a/b", "receiverInfo": []}}}),
        json!({"entities": [{"type": "Room"}], "notification": {"endpoint": {"uri": "http://a/b", "notifierInfo": []}}}),
    ] {
        assert!(matches!(parse(body.clone()), Err(SubscriptionError::NotSupported(_))), "{body}");
    }
}

#[test]
fn notification_trigger_show_changes_and_sys_attrs_are_parsed_shown_and_patched() {
    let (_, plain) = parse(json!({"entities": [{"type": "Room"}], "notification": endpoint()})).unwrap();
    assert_eq!(plain.notification_trigger, Triggers::of(&[Trigger::AttributeCreated, Trigger::AttributeUpdated]));
    assert!(!plain.show_changes && !plain.sys_attrs);
    let rendered = render_subscription("urn:s", &plain, &Shown::default(), 0, &Default::default());
    assert_eq!(rendered["notificationTrigger"], json!(["attributeCreated", "attributeUpdated"]), "the default shown");
    assert_eq!(
        (rendered["notification"]["showChanges"].as_bool(), rendered["notification"]["sysAttrs"].as_bool()),
        (Some(false), Some(false))
    );
    assert_eq!(parse(rendered).unwrap().1, plain, "the default read back is the default");

    let (_, subscription) = parse(json!({"entities": [{"type": "Room"}],
        "notificationTrigger": ["entityDeleted", "attributeDeleted", "entityCreated", "entityDeleted"],
        "notification": {"showChanges": true, "sysAttrs": true, "endpoint": endpoint()["endpoint"]}}))
    .unwrap();
    assert_eq!(
        subscription.notification_trigger,
        Triggers::of(&[Trigger::EntityCreated, Trigger::EntityDeleted, Trigger::AttributeDeleted])
    );
    assert!(subscription.show_changes && subscription.sys_attrs);
    let stored: LdSubscription = serde_json::from_value(serde_json::to_value(&subscription).unwrap()).unwrap();
    assert_eq!(stored, subscription, "the stored form reads back");
    let rendered = render_subscription("urn:s", &subscription, &Shown::default(), 0, &Default::default());
    assert_eq!(rendered["notificationTrigger"], json!(["entityCreated", "entityDeleted", "attributeDeleted"]));
    assert_eq!(rendered["notification"]["showChanges"], true);
    assert_eq!(rendered["notification"]["sysAttrs"], true);
    assert_eq!(parse(rendered).unwrap().1, subscription, "a retrieved subscription can be sent back");

    let patched = subscription
        .patch(
            &json!({"notificationTrigger": ["entityUpdated"], "notification": {"showChanges": false}}),
            &Context::core(),
            Value::Null,
        )
        .unwrap();
    assert_eq!(patched.notification_trigger, Triggers::of(&[Trigger::EntityUpdated]));
    assert!(!patched.show_changes && patched.sys_attrs, "notification merged member by member");
    let to_key_values =
        subscription.patch(&json!({"notification": {"format": "keyValues"}}), &Context::core(), Value::Null);
    assert!(matches!(to_key_values, Err(SubscriptionError::Invalid(_))), "showChanges excludes keyValues");

    for bad in [
        json!({"entities": [{"type": "Room"}], "notificationTrigger": ["entityChanged"], "notification": endpoint()}),
        json!({"entities": [{"type": "Room"}], "notificationTrigger": [], "notification": endpoint()}),
        json!({"entities": [{"type": "Room"}], "notificationTrigger": "entityCreated", "notification": endpoint()}),
        json!({"entities": [{"type": "Room"}], "notificationTrigger": [3], "notification": endpoint()}),
        json!({"entities": [{"type": "Room"}], "notification": {"showChanges": "yes", "endpoint": endpoint()["endpoint"]}}),
        json!({"entities": [{"type": "Room"}], "notification": {"sysAttrs": 1, "endpoint": endpoint()["endpoint"]}}),
        json!({"entities": [{"type": "Room"}], "notification": {"showChanges": true, "format": "keyValues",
            "endpoint": endpoint()["endpoint"]}}),
    ] {
        assert!(matches!(parse(bad.clone()), Err(SubscriptionError::Invalid(_))), "{bad}");
    }
}

#[test]
fn selection_and_projection_follow_entities_q_geo_q_and_attributes() {
    let (_, subscription) = parse(json!({"entities": [{"type": "Room"}], "q": "temperature>20",
        "geoQ": {"georel": "near;maxDistance==1000", "geometry": "Point", "coordinates": "[8.68,49.4]"},
        "notification": {"attributes": ["temperature", "location"], "endpoint": endpoint()["endpoint"]}}))
    .unwrap();
    let selection = subscription.compile().unwrap();
    assert!(selection.selects(&room("urn:a", 25.0)));
    assert!(!selection.selects(&room("urn:a", 15.0)), "q filters");
    let mut far = room("urn:a", 25.0);
    far.domain_metadata.clear();
    far.attributes.retain(|a| a.name != "location");
    assert!(!selection.selects(&far), "geoQ filters");
    let projected = subscription.project(&room("urn:a", 25.0));
    let names: Vec<&str> = projected.attributes.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["location", "temperature"]);
    let (_, watched_only) = parse(json!({"watchedAttributes": ["temperature"], "notification": endpoint()})).unwrap();
    assert!(watched_only.compile().unwrap().selects(&room("urn:x", 1.0)), "no entities: any entity");
}

#[test]
fn patch_replaces_members_and_merges_notification() {
    let (_, subscription) = parse(json!({"entities": [{"type": "Room"}], "notification": {"attributes": ["a"],
        "endpoint": {"uri": "http://127.0.0.1:9/n"}}}))
    .unwrap();
    let patched = subscription
        .patch(&json!({"isActive": false, "notification": {"format": "concise"}}), &Context::core(), Value::Null)
        .unwrap();
    assert!(!patched.is_active);
    assert_eq!((patched.format, patched.uri.as_str()), (NotificationFormat::Concise, "http://127.0.0.1:9/n"));
    assert_eq!(patched.attributes, ["a"], "members not in the fragment are kept");
    for bad in [json!({}), json!({"id": "urn:x"}), json!({"q": "a=="}), json!({"entities": []}), json!([1])] {
        assert!(subscription.patch(&bad, &Context::core(), Value::Null).is_err(), "{bad}");
    }
}

#[test]
fn notifications_are_rendered_in_the_format_and_compacted_with_the_context() {
    let user = json!({"temp": "https://uri.etsi.org/ngsi-ld/default-context/temperature"});
    let (_, mut subscription) = LdSubscription::parse(
        &json!({"entities": [{"type": "Room"}], "notification": {"format": "keyValues",
            "endpoint": {"uri": "http://127.0.0.1:9/n", "accept": "application/ld+json"}}}),
        &Context::from_body(&user).unwrap(),
        user.clone(),
    )
    .unwrap();
    let element = subscription.project(&room("urn:a", 21.0));
    let body = notification_body(
        &subscription,
        "urn:s",
        "urn:ngsi-ld:Notification:1",
        0,
        [(&element, EntityTimes::default(), None)].into_iter(),
    );
    assert_eq!(body["type"], "Notification");
    assert_eq!(
        (body["subscriptionId"].as_str(), body["notifiedAt"].as_str()),
        (Some("urn:s"), Some("1970-01-01T00:00:00.000Z"))
    );
    assert_eq!(body["data"][0]["temp"], 21.0, "compacted by the subscription's context");
    assert_eq!(body["data"][0]["humidity"], 40);
    assert_eq!(body["@context"], user);
    subscription.accept = Accept::Json;
    subscription.format = NotificationFormat::Normalized;
    let body =
        notification_body(&subscription, "urn:s", "urn:n", 0, [(&element, EntityTimes::default(), None)].into_iter());
    assert_eq!(body["data"][0]["temperature"], json!({"type": "Property", "value": 21.0, "unitCode": "CEL"}));
    assert!(body.get("@context").is_none(), "application/json links the core context instead");
    subscription.accept = Accept::LdJson;
    subscription.context = Value::Null;
    let body =
        notification_body(&subscription, "urn:s", "urn:n", 0, [(&element, EntityTimes::default(), None)].into_iter());
    assert_eq!(body["@context"], CORE_CONTEXT_URL);
}

#[test]
fn subscriptions_render_with_status_and_counters() {
    let (_, subscription) = parse(json!({"entities": [{"idPattern": ".*", "type": "Room"}], "isActive": false,
        "expiresAt": "2030-01-01T00:00:00Z", "throttling": 2, "notification": endpoint()}))
    .unwrap();
    let shown = Shown { times_sent: 3, failing: true, ..Shown::default() };
    let rendered = render_subscription("urn:s", &subscription, &shown, 0, &Default::default());
    assert_eq!(rendered["status"], "paused");
    assert_eq!(rendered["entities"], json!([{"idPattern": ".*", "type": "Room"}]));
    assert_eq!(rendered["notification"]["status"], "failed");
    assert_eq!(rendered["notification"]["timesSent"], 3);
    assert_eq!(rendered["notification"]["endpoint"]["accept"], "application/json");
    assert_eq!(
        (rendered["throttling"].as_f64(), rendered["expiresAt"].as_str()),
        (Some(2.0), Some("2030-01-01T00:00:00.000Z"))
    );
    assert_eq!(render_subscription("urn:s", &subscription, &shown, i64::MAX, &Default::default())["status"], "expired");
    let reparsed = parse(rendered).unwrap().1;
    assert_eq!(reparsed, subscription, "a retrieved subscription can be sent back");
}

#[test]
fn subscriptions_render_their_names_compacted_with_a_context() {
    let user = json!({"Room": "https://example.org/Room", "temp": "https://example.org/temperature",
        "place": "https://example.org/place"});
    let context = Context::from_body(&user).unwrap();
    let (_, subscription) = LdSubscription::parse(
        &json!({"entities": [{"type": "Room"}], "watchedAttributes": ["temp", "humidity"],
            "geoQ": {"georel": "near;maxDistance==10", "geometry": "Point", "coordinates": [1, 2], "geoproperty": "place"},
            "notification": {"attributes": ["temp"], "endpoint": {"uri": "http://127.0.0.1:9/n"}}}),
        &context,
        user,
    )
    .unwrap();
    let stored = render_subscription("urn:s", &subscription, &Shown::default(), 0, &Default::default());
    assert_eq!(stored["entities"], json!([{"type": "https://example.org/Room"}]), "stored names without a context");
    let compacted = render_subscription("urn:s", &subscription, &Shown::default(), 0, &context.compactor());
    assert_eq!(compacted["entities"], json!([{"type": "Room"}]));
    assert_eq!(compacted["watchedAttributes"], json!(["temp", "humidity"]));
    assert_eq!(compacted["notification"]["attributes"], json!(["temp"]));
    assert_eq!(compacted["geoQ"]["geoproperty"], "place");
}

#[test]
fn time_intervals_are_periodic_and_exclude_watched_attributes_and_throttling() {
    let (_, subscription) =
        parse(json!({"entities": [{"type": "Room"}], "timeInterval": 2.5, "notification": endpoint()})).unwrap();
    assert_eq!(subscription.time_interval_ms, Some(2500));
    let rendered = render_subscription("urn:s", &subscription, &Shown::default(), 0, &Default::default());
    assert_eq!(rendered["timeInterval"], 2.5);
    assert_eq!(parse(rendered).unwrap().1, subscription, "a retrieved periodic subscription can be sent back");
    for bad in [
        json!({"entities": [{"type": "Room"}], "timeInterval": 0, "notification": endpoint()}),
        json!({"entities": [{"type": "Room"}], "timeInterval": 0.5, "notification": endpoint()}),
        json!({"entities": [{"type": "Room"}], "timeInterval": -3, "notification": endpoint()}),
        json!({"entities": [{"type": "Room"}], "timeInterval": "10", "notification": endpoint()}),
        json!({"entities": [{"type": "Room"}], "timeInterval": 10, "watchedAttributes": ["t"], "notification": endpoint()}),
        json!({"entities": [{"type": "Room"}], "timeInterval": 10, "throttling": 5, "notification": endpoint()}),
        json!({"watchedAttributes": ["t"], "timeInterval": 10, "notification": endpoint()}),
    ] {
        assert!(matches!(parse(bad.clone()), Err(SubscriptionError::Invalid(_))), "{bad}");
    }
    let (_, watching) =
        parse(json!({"entities": [{"type": "Room"}], "watchedAttributes": ["t"], "notification": endpoint()})).unwrap();
    let patched = watching.patch(&json!({"timeInterval": 10}), &Context::core(), Value::Null);
    assert!(matches!(patched, Err(SubscriptionError::Invalid(_))), "a PATCH cannot make them meet");
}

#[test]
fn lang_picks_the_language_of_notified_language_properties() {
    let (_, subscription) =
        parse(json!({"entities": [{"type": "Room"}], "lang": "fr,en;q=0.5", "notification": endpoint()})).unwrap();
    assert_eq!(subscription.lang.as_deref(), Some("fr,en;q=0.5"));
    assert_eq!(
        render_subscription("urn:s", &subscription, &Shown::default(), 0, &Default::default())["lang"],
        "fr,en;q=0.5"
    );
    let element = parse_entity(
        &Context::core(),
        &json!({"id": "urn:r", "type": "Room", "name": {"type": "LanguageProperty", "languageMap": {"en": "Room", "fr": "Salle"}}}),
    )
    .unwrap();
    let body =
        notification_body(&subscription, "urn:s", "urn:n", 0, [(&element, EntityTimes::default(), None)].into_iter());
    assert_eq!(body["data"][0]["name"], json!({"type": "Property", "value": "Salle", "lang": "fr"}), "{body}");
    let (_, plain) = parse(json!({"entities": [{"type": "Room"}], "notification": endpoint()})).unwrap();
    let body = notification_body(&plain, "urn:s", "urn:n", 0, [(&element, EntityTimes::default(), None)].into_iter());
    assert_eq!(body["data"][0]["name"]["languageMap"]["fr"], "Salle", "without lang the map is notified: {body}");
    for bad in [json!("not a tag!"), json!(3)] {
        let body = json!({"entities": [{"type": "Room"}], "lang": bad, "notification": endpoint()});
        assert!(matches!(parse(body.clone()), Err(SubscriptionError::Invalid(_))), "{body}");
    }
    let patched = plain.patch(&json!({"lang": "en"}), &Context::core(), Value::Null).unwrap();
    assert_eq!(patched.lang.as_deref(), Some("en"));
}
