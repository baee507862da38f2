//! Unit tests of the entity repository and its element logic.

use serde_json::json;

use super::*;

fn element(value: serde_json::Value) -> ContextElement {
    serde_json::from_value(value).unwrap()
}

#[test]
fn merge_replaces_by_name_and_reports_registration_changes() {
    let stored = element(
        json!({"entityId":{"id":"e","type":"T"},"attributes":[{"name":"a","type":"integer","value":1},{"name":"b","type":"string","value":"x"}],
        "domainMetadata":[{"name":"city","type":"string","value":"Heidelberg"}]}),
    );
    let (merged, changed) =
        merge(&stored, &element(json!({"entityId":{"id":"e"},"attributes":[{"name":"a","type":"integer","value":2}]})));
    assert!(!changed);
    assert_eq!(merged.attributes[0].value, json!(2));
    assert_eq!(merged.attributes[1].value, json!("x"));
    assert_eq!(merged.entity_id.entity_type, "T");
    let (merged, changed) = merge(
        &stored,
        &element(
            json!({"entityId":{"id":"e"},"attributes":[{"name":"a","type":"float","value":2.5},{"name":"c","value":true}]}),
        ),
    );
    assert!(changed);
    assert_eq!(merged.attributes[0].attribute_type, "float");
    assert_eq!(merged.attributes.len(), 3);
    let (_, changed) = merge(
        &stored,
        &element(json!({"entityId":{"id":"e"},"domainMetadata":[{"name":"city","type":"string","value":"Tokyo"}]})),
    );
    assert!(changed);
}

#[test]
fn updates_are_validated_before_anything_is_applied() {
    let too_long = element(json!({"entityId":{"id":"x".repeat(300)}}));
    assert!(validate_update(&[too_long], UpdateAction::Update).is_err());
    let pattern = element(json!({"entityId":{"id":"a.*","isPattern":true}}));
    assert!(validate_update(&[pattern], UpdateAction::Update).is_err());
    assert!(validate_update(&[], UpdateAction::Update).is_err());
    let bad_attribute = element(json!({"entityId":{"id":"a"},"attributes":[{"name":"","value":1}]}));
    assert!(validate_update(&[bad_attribute], UpdateAction::Update).is_err());
}

#[tokio::test]
async fn edit_creates_refuses_and_replaces_under_the_lock() {
    let store = Store::temporary().unwrap();
    let entities = Entities::open(&store).unwrap();
    let fresh = element(json!({"entityId":{"id":"e","type":"T"},"attributes":[{"name":"a","value":1}]}));
    let created = entities.edit("", "e", None, |stored| match stored {
        None => Ok((fresh.clone(), vec!["a".to_string()])),
        Some(_) => Err("exists"),
    });
    let change = created.await.unwrap().unwrap();
    assert!(change.before.is_none() && change.registration_changed);
    let refused = entities.edit("", "e", None, |_| Err::<(ContextElement, Vec<String>), _>("no")).await.unwrap();
    assert_eq!(refused.err(), Some("no"));
    let mut renamed = fresh.clone();
    renamed.attributes[0].name = "b".into();
    let change = entities.edit("", "e", None, |_| Ok::<_, ()>((renamed.clone(), vec![]))).await.unwrap().unwrap();
    assert!(change.before.is_some() && change.registration_changed);
    let same = entities.edit("", "e", None, |_| Ok::<_, ()>((renamed.clone(), vec![]))).await.unwrap().unwrap();
    assert!(!same.registration_changed);
    let mut invalid = fresh.clone();
    invalid.attributes[0].name = String::new();
    assert!(entities.edit("", "e", None, |_| Ok::<_, ()>((invalid, vec![]))).await.is_err());
    assert_eq!(entities.get("", "e").unwrap().element, renamed, "an invalid edit writes nothing");
    assert_eq!(Entities::open(&store).unwrap().get("", "e").unwrap().element, renamed, "durable");
}

#[tokio::test]
async fn upsert_delete_and_query_round_trip() {
    let store = Store::temporary().unwrap();
    let entities = Entities::open(&store).unwrap();
    let first = element(json!({"entityId":{"id":"Device.1","type":"T"},"attributes":[{"name":"temp","value":1}]}));
    let second = element(json!({"entityId":{"id":"Device.2","type":"T"},"attributes":[{"name":"hum","value":2}]}));
    let outcomes = entities.apply_update("", &[first, second], UpdateAction::Update).await.unwrap();
    assert!(
        matches!(&outcomes[0], ElementOutcome::Applied(change) if change.before.is_none() && change.registration_changed)
    );
    let selector = EntitySelector::compile(&[crate::ngsi::v1::EntityId {
        id: "Device.*".into(),
        entity_type: String::new(),
        is_pattern: true,
    }])
    .unwrap();
    let page = entities.query("", &selector, &ScopeFilter::default(), &[], 0, 10);
    assert_eq!(page.total, 2);
    let page = entities.query("", &selector, &ScopeFilter::default(), &["temp".to_string()], 0, 10);
    assert_eq!(page.total, 1);
    assert!(entities.query("other", &selector, &ScopeFilter::default(), &[], 0, 10).elements.is_empty());
    let remove_attribute = element(json!({"entityId":{"id":"Device.1"},"attributes":[{"name":"temp"}]}));
    entities.apply_update("", &[remove_attribute], UpdateAction::Delete).await.unwrap();
    assert!(entities.get("", "Device.1").unwrap().element.attributes.is_empty());
    assert!(entities.delete("", "Device.1").await.unwrap().is_some());
    assert!(entities.delete("", "Device.1").await.unwrap().is_none());
    assert_eq!(entities.len(), 1);
    let reopened = Entities::open(&store).unwrap();
    assert_eq!(reopened.len(), 1);
    let first = reopened.next_creation_time(5);
    assert!(first > reopened.get("", "Device.2").unwrap().created_at, "after every stored creation");
    assert_eq!(reopened.next_creation_time(5), first + 1, "unique and increasing in one millisecond");
}

#[tokio::test]
async fn service_paths_are_kept_enforced_for_v2_writes_and_persisted() {
    let store = Store::temporary().unwrap();
    let entities = Entities::open(&store).unwrap();
    let fresh = element(json!({"entityId":{"id":"e","type":"T"},"attributes":[{"name":"a","value":1}]}));
    let write = |value: i64| {
        let mut edited = fresh.clone();
        edited.attributes[0].value = json!(value);
        move |_: Option<&ContextElement>| Ok::<_, ()>((edited, vec!["a".to_string()]))
    };
    entities.edit("", "e", Some("/park"), write(1)).await.unwrap().unwrap();
    assert_eq!(entities.get("", "e").unwrap().service_path, "/park");
    let elsewhere = entities.edit("", "e", Some("/"), write(2)).await;
    assert!(matches!(elsewhere, Err(RepoError::OtherServicePath { ref path, .. }) if path == "/park"));
    entities.edit("", "e", Some("/park"), write(3)).await.unwrap().unwrap();
    entities.edit("", "e", None, write(4)).await.unwrap().unwrap();
    let update = element(json!({"entityId":{"id":"e"},"attributes":[{"name":"b","value":5}]}));
    entities.apply_update("", &[update], UpdateAction::Update).await.unwrap();
    let kept = entities.get("", "e").unwrap();
    assert_eq!((kept.service_path.as_str(), kept.element.attributes[0].value.clone()), ("/park", json!(4)));
    let reopened = Entities::open(&store).unwrap().get("", "e").unwrap();
    assert_eq!(reopened.service_path, "/park", "durable");
    entities.edit("", "n", None, write(1)).await.unwrap().unwrap();
    assert_eq!(entities.get("", "n").unwrap().service_path, "/", "NGSI10 and NGSI-LD creations live in /");
    let old: StoredEntity = serde_json::from_value(json!({"tenant":"","element":{"entityId":{"id":"o"}},
        "created_at":1,"modified_at":1}))
    .unwrap();
    assert_eq!(old.service_path, "/", "entities stored before paths were kept are in /");
    assert!(serde_json::to_value(&old).unwrap().get("service_path").is_none(), "/ is not written");
}
