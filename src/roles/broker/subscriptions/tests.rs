//! Unit tests of subscription matching: NGSI10 projection, triggers and correlators, NGSIv2 and NGSI-LD
//! selection and projection, stored records loading, request validation.

use serde_json::json;

use super::*;
use crate::roles::broker::entities::StoredEntity;

fn subscription(request: serde_json::Value, correlator: &str) -> CompiledSubscription {
    let request: SubscribeContextRequest = serde_json::from_value(request).unwrap();
    validate_request(&request).unwrap();
    let record = SubscriptionRecord {
        id: "s".into(),
        tenant: String::new(),
        request,
        subscriber: Subscriber { correlator: correlator.into(), ..Subscriber::default() },
        created_at: 0,
        expires_at: None,
        v2: None,
        ld: None,
    };
    CompiledSubscription::compile(record).unwrap()
}

fn change(element: serde_json::Value, touched: &[&str]) -> EntityChange {
    let element: ContextElement = serde_json::from_value(element).unwrap();
    EntityChange {
        before: None,
        after: Some(Arc::new(StoredEntity {
            tenant: String::new(),
            element,
            service_path: ROOT.into(),
            created_at: 1,
            modified_at: 1,
            attribute_times: Vec::new(),
        })),
        touched: touched.iter().map(|s| s.to_string()).collect(),
        registration_changed: false,
    }
}

#[test]
fn projection_triggers_and_correlators_decide_notifications() {
    let sub = subscription(
        json!({"entities":[{"id":"Device.*","isPattern":true}],"attributes":["temp"],"reference":"http://127.0.0.1:1",
               "notifyConditions":[{"type":"ONCHANGE","condValueList":["temp"]}]}),
        "loop",
    );
    let update = change(
        json!({"entityId":{"id":"Device.1"},"attributes":[{"name":"temp","value":1},{"name":"hum","value":2}]}),
        &["temp"],
    );
    let notified = sub.notification_for("", &update, None).unwrap();
    assert_eq!((notified.element.attributes.len(), notified.service_path), (1, "/"));
    assert!(notified.notice.is_none(), "NGSI10 notifications carry no NGSI-LD notice");
    assert!(sub.notification_for("", &update, Some("loop")).is_none());
    assert!(sub.notification_for("", &update, Some("other")).is_some());
    let humidity_only = change(
        json!({"entityId":{"id":"Device.1"},"attributes":[{"name":"temp","value":1},{"name":"hum","value":3}]}),
        &["hum"],
    );
    assert!(sub.notification_for("", &humidity_only, None).is_none());
    let lacking = change(json!({"entityId":{"id":"Device.2"},"attributes":[{"name":"hum","value":2}]}), &["temp"]);
    assert!(sub.notification_for("", &lacking, None).is_none());
    assert!(sub.notification_for("tenant", &update, None).is_none());
}

#[test]
fn records_stored_before_ngsiv2_subscriptions_still_load() {
    let old = json!({"id":"s1","tenant":"","request":{"entities":[{"id":"a","type":"T","isPattern":false}],
        "reference":"http://127.0.0.1:1"},"subscriber":{"IsInternal":false,"RequireReliability":false,
        "BrokerURL":"http://b/ngsi10","NotifyCache":[],"DestinationType":"","Tenant":"","Correlator":""},
        "created_at":5,"expires_at":null});
    let record: SubscriptionRecord = serde_json::from_value(old).unwrap();
    assert!(record.v2.is_none());
    assert!(serde_json::to_value(&record).unwrap().get("v2").is_none(), "NGSI10 records keep their shape");
    assert!(CompiledSubscription::compile(record).is_ok());
}

#[test]
fn ngsiv2_conditions_trigger_and_attrs_only_project() {
    let v2 = V2Subscription::parse(&json!({"subject":{"entities":[{"idPattern":"^Device"}],
        "condition":{"attrs":["temp"],"expression":{"q":"temp>0"}}},
        "notification":{"http":{"url":"http://127.0.0.1:1"},"attrs":["hum"]}}))
    .unwrap();
    let record = SubscriptionRecord::v2("s".into(), String::new(), Subscriber::default(), 0, v2);
    let sub = CompiledSubscription::compile(record).unwrap();
    let update = change(
        json!({"entityId":{"id":"Device.1"},"attributes":[{"name":"temp","value":1},{"name":"hum","value":2}]}),
        &["temp"],
    );
    let element = sub.notification_for("", &update, None).unwrap().element;
    assert_eq!(element.attributes.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["hum"]);
    let no_hum = change(json!({"entityId":{"id":"Device.2"},"attributes":[{"name":"temp","value":1}]}), &["temp"]);
    assert!(sub.notification_for("", &no_hum, None).unwrap().element.attributes.is_empty(), "attrs never filter");
    let cold = change(json!({"entityId":{"id":"Device.3"},"attributes":[{"name":"temp","value":-1}]}), &["temp"]);
    assert!(sub.notification_for("", &cold, None).is_none(), "q filters");
    assert!(sub.notification_for("", &change(json!({"entityId":{"id":"Device.1"}}), &["hum"]), None).is_none());
}

#[test]
fn ngsi_ld_subscriptions_watch_select_and_project_their_way() {
    let context = crate::ngsi::ld::context::Context::core();
    let body = json!({"entities":[{"type":"Device"}],"watchedAttributes":["temp"],"q":"temp>0",
        "notification":{"attributes":["hum"],"endpoint":{"uri":"http://127.0.0.1:1/n"}}});
    let (_, ld) = LdSubscription::parse(&body, &context, serde_json::Value::Null).unwrap();
    let record = SubscriptionRecord::ld("urn:s".into(), String::new(), Subscriber::default(), 0, ld.clone());
    let stored: SubscriptionRecord = serde_json::from_value(serde_json::to_value(&record).unwrap()).unwrap();
    assert_eq!(stored, record, "LD records round-trip through the store");
    let sub = CompiledSubscription::compile(record).unwrap();
    let device = |temp: i64, touched: &[&str]| {
        change(
            json!({"entityId":{"id":"urn:d","type":"Device"},"attributes":[{"name":"temp","value":temp},{"name":"hum","value":2}]}),
            touched,
        )
    };
    let element = sub.notification_for("", &device(1, &["temp"]), None).unwrap().element;
    assert_eq!(element.attributes.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["hum"]);
    assert!(sub.notification_for("", &device(1, &["hum"]), None).is_none(), "hum is not watched");
    assert!(sub.notification_for("", &device(-1, &["temp"]), None).is_none(), "q filters");
    assert!(sub.notification_for("t", &device(1, &["temp"]), None).is_none(), "other tenant");
    let paused = LdSubscription { is_active: false, ..ld };
    let record = SubscriptionRecord::ld("urn:s".into(), String::new(), Subscriber::default(), 0, paused);
    let sub = CompiledSubscription::compile(record).unwrap();
    assert!(sub.notification_for("", &device(1, &["temp"]), None).is_none(), "isActive false");
}

#[test]
fn invalid_requests_are_rejected() {
    for bad in [
        json!({"entities":[{"id":"a"}]}),
        json!({"entities":[{"id":"a"}],"reference":"ftp://x"}),
        json!({"entities":[{"id":"a"}],"reference":"not a url"}),
        json!({"entities":[],"reference":"http://x"}),
        json!({"entities":[{"id":"a"}],"reference":"http://x","duration":"forever"}),
        json!({"entities":[{"id":"a"}],"reference":"http://x","throttling":"5 seconds"}),
    ] {
        let request: SubscribeContextRequest = serde_json::from_value(bad.clone()).unwrap();
        assert!(validate_request(&request).is_err(), "{bad}");
    }
}

fn ld_subscription(body: serde_json::Value) -> CompiledSubscription {
    let context = crate::ngsi::ld::context::Context::core();
    let (_, ld) = LdSubscription::parse(&body, &context, serde_json::Value::Null).unwrap();
    CompiledSubscription::compile(SubscriptionRecord::ld("urn:s".into(), String::new(), Subscriber::default(), 0, ld))
        .unwrap()
}

#[test]
fn ngsi_ld_triggers_decide_which_changes_notify_and_deletions_carry_a_notice() {
    let stored = |temp: i64, created_at: i64| {
        Arc::new(StoredEntity {
            tenant: String::new(),
            element: serde_json::from_value(json!({"entityId":{"id":"urn:d","type":"Device"},
                "attributes":[{"name":"temp","type":"Property","value":temp}]}))
            .unwrap(),
            service_path: ROOT.into(),
            created_at,
            modified_at: created_at + 1,
            attribute_times: Vec::new(),
        })
    };
    let creation = EntityChange {
        before: None,
        after: Some(stored(1, 10)),
        touched: vec!["temp".into()],
        registration_changed: true,
    };
    let update = EntityChange {
        before: Some(stored(1, 10)),
        after: Some(stored(2, 10)),
        touched: vec!["temp".into()],
        registration_changed: false,
    };
    let deletion = EntityChange {
        before: Some(stored(2, 10)),
        after: None,
        touched: vec!["temp".into()],
        registration_changed: true,
    };
    let endpoint = json!({"endpoint":{"uri":"http://127.0.0.1:1/n"}});
    let default = ld_subscription(json!({"entities":[{"type":"Device"}],"notification":endpoint}));
    assert!(default.notification_for("", &creation, None).is_some(), "attributeCreated by default");
    assert!(default.notification_for("", &update, None).unwrap().notice.is_none(), "nothing to add to an update");
    assert!(default.notification_for("", &deletion, None).is_none(), "no entityDeleted by default");
    let deleted_only = ld_subscription(json!({"entities":[{"type":"Device"}],"notificationTrigger":["entityDeleted"],
        "notification":{"sysAttrs":true,"endpoint":endpoint["endpoint"]}}));
    assert!(deleted_only.notification_for("", &creation, None).is_none());
    assert!(deleted_only.notification_for("", &update, None).is_none());
    let notified = deleted_only.notification_for("", &deletion, None).unwrap();
    assert_eq!((notified.element.entity_id.id.as_str(), notified.element.attributes.len()), ("urn:d", 0));
    let notice = notified.notice.unwrap();
    assert!(notice.entity_deleted);
    assert_eq!((notice.created_at, notice.modified_at), (10, 11), "the deleted entity's times");
    assert!(notice.deleted.is_empty(), "entityDeleted alone notifies the id, type and deletedAt");
    let q_on_deleted = ld_subscription(json!({"entities":[{"type":"Device"}],"q":"temp>5",
        "notificationTrigger":["entityDeleted"],"notification":endpoint}));
    assert!(q_on_deleted.notification_for("", &deletion, None).is_none(), "q applies to the entity as it was");
    let relayed = &update.after.as_ref().unwrap().element;
    assert!(default.relay_for("", relayed).is_some(), "relayed elements are updates");
    assert!(deleted_only.relay_for("", relayed).is_none());
}

#[test]
fn an_entry_is_visible_to_for_each_only_after_insert_then_has_run() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let table = Arc::new(SubscriptionTable::<u32>::new());
    let initial_queued = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (table, initial_queued) = (table.clone(), initial_queued.clone());
        std::thread::spawn(move || loop {
            let mut seen = false;
            table.for_each(|_| seen = true);
            if seen {
                return initial_queued.load(Ordering::SeqCst);
            }
            std::thread::yield_now();
        })
    };
    table.insert_then("s1".into(), Arc::new(7), |entry| {
        assert_eq!(**entry, 7);
        std::thread::sleep(std::time::Duration::from_millis(50));
        initial_queued.store(true, Ordering::SeqCst);
    });
    assert!(watcher.join().unwrap(), "for_each saw the entry before its initial state was queued");
    assert_eq!(table.get("s1").as_deref(), Some(&7));
}
