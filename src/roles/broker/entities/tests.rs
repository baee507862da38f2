//! Unit tests of the entity repository and its element logic.

use serde_json::json;

use super::*;
use crate::ngsi::pattern::EntitySelector;
use crate::ngsi::scope::ScopeFilter;
use crate::ngsi::times::Edited;

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
        None => Ok(Edited::by_name((fresh.clone(), vec!["a".to_string()]))),
        Some(_) => Err("exists"),
    });
    let change = created.await.unwrap().unwrap();
    assert!(change.before.is_none() && change.registration_changed);
    let refused = entities.edit("", "e", None, |_| Err::<Edited, _>("no")).await.unwrap();
    assert_eq!(refused.err(), Some("no"));
    let mut renamed = fresh.clone();
    renamed.attributes[0].name = "b".into();
    let change = entities
        .edit("", "e", None, |_| Ok::<_, ()>(Edited::by_name((renamed.clone(), vec![]))))
        .await
        .unwrap()
        .unwrap();
    assert!(change.before.is_some() && change.registration_changed);
    let same = entities
        .edit("", "e", None, |_| Ok::<_, ()>(Edited::by_name((renamed.clone(), vec![]))))
        .await
        .unwrap()
        .unwrap();
    assert!(!same.registration_changed);
    let mut invalid = fresh.clone();
    invalid.attributes[0].name = String::new();
    assert!(entities.edit("", "e", None, |_| Ok::<_, ()>(Edited::by_name((invalid, vec![])))).await.is_err());
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
        move |_: Option<&ContextElement>| Ok::<_, ()>(Edited::by_name((edited, vec!["a".to_string()])))
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

fn ids(found: &[Arc<StoredEntity>]) -> Vec<&str> {
    found.iter().map(|entity| entity.element.entity_id.id.as_str()).collect()
}

fn types(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

/// Checks that the index holds exactly the tenant's entities of the map, with the map's current versions.
fn assert_index_matches_map(entities: &Entities, tenant: &str) {
    let mut from_map = entities.select(tenant, |_| true);
    from_map.sort_by_key(|entity| (entity.created_at, entity.element.entity_id.id.clone()));
    let from_index = entities.select_in_creation_order(tenant, None, |_| true, None);
    assert_eq!(from_index.len(), from_map.len());
    assert_eq!(entities.index.len(tenant), from_map.len());
    for (indexed, mapped) in from_index.iter().zip(&from_map) {
        assert!(Arc::ptr_eq(indexed, mapped), "index holds the map's version of {}", mapped.element.entity_id.id);
    }
}

#[tokio::test]
async fn index_follows_inserts_type_changes_deletes_and_tenants() {
    let store = Store::temporary().unwrap();
    let entities = Entities::open(&store).unwrap();
    let create = |id: &str, entity_type: &str, value: i64| {
        element(json!({"entityId":{"id":id,"type":entity_type},"attributes":[{"name":"n","value":value}]}))
    };
    // Creation order differs from id order.
    for (id, entity_type) in [("c", "T"), ("b", "U"), ("a", "T")] {
        entities.apply_update("", &[create(id, entity_type, 1)], UpdateAction::Append).await.unwrap();
    }
    entities.apply_update("t2", &[create("x", "T", 1)], UpdateAction::Append).await.unwrap();
    let all = |_: &StoredEntity| true;
    assert_eq!(ids(&entities.select_in_creation_order("", Some(&types(&["T"])), all, None)), ["c", "a"]);
    assert_eq!(ids(&entities.select_in_creation_order("", None, all, None)), ["c", "b", "a"]);
    assert_eq!(ids(&entities.select_in_creation_order("t2", Some(&types(&["T"])), all, None)), ["x"]);
    assert!(entities.select_in_creation_order("t3", None, all, None).is_empty());
    assert!(entities.select_in_creation_order("", Some(&types(&["V"])), all, None).is_empty());
    assert!(entities.has_tenant("t2") && !entities.has_tenant("t3"));

    // An update is seen with its new value; a type change moves the entity, keeping its creation order.
    entities.apply_update("", &[create("a", "T", 2)], UpdateAction::Update).await.unwrap();
    let found = entities.select_in_creation_order("", Some(&types(&["T"])), all, None);
    assert_eq!(found[1].element.attributes[0].value, json!(2));
    entities.apply_update("", &[create("c", "U", 3)], UpdateAction::Update).await.unwrap();
    assert_eq!(ids(&entities.select_in_creation_order("", Some(&types(&["T"])), all, None)), ["a"]);
    assert_eq!(ids(&entities.select_in_creation_order("", Some(&types(&["U"])), all, None)), ["c", "b"]);
    let retyped = create("b", "V", 4);
    entities
        .edit("", "b", None, |_| Ok::<_, ()>(Edited::by_name((retyped, vec!["n".to_string()]))))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ids(&entities.select_in_creation_order("", Some(&types(&["U"])), all, None)), ["c"]);
    assert_eq!(ids(&entities.select_in_creation_order("", Some(&types(&["V", "U"])), all, None)), ["c", "b"]);
    assert_index_matches_map(&entities, "");

    // Removing an attribute, then entities; an emptied type and tenant are forgotten.
    let remove_attribute = element(json!({"entityId":{"id":"c"},"attributes":[{"name":"n"}]}));
    entities.apply_update("", &[remove_attribute], UpdateAction::Delete).await.unwrap();
    assert!(entities.select_in_creation_order("", Some(&types(&["U"])), all, None)[0].element.attributes.is_empty());
    assert_index_matches_map(&entities, "");
    entities.delete("", "b").await.unwrap().unwrap();
    assert_eq!(entities.index.type_len("", "V"), 0);
    assert_eq!(ids(&entities.select_in_creation_order("", None, all, None)), ["c", "a"]);
    entities.delete("t2", "x").await.unwrap().unwrap();
    assert!(!entities.has_tenant("t2") && entities.has_tenant(""));
    assert!(entities.select_in_creation_order("t2", None, all, None).is_empty());
    assert_index_matches_map(&entities, "");

    // Recreating gets a new creation time: last.
    entities.apply_update("", &[create("b", "U", 5)], UpdateAction::Append).await.unwrap();
    assert_eq!(ids(&entities.select_in_creation_order("", Some(&types(&["U"])), all, None)), ["c", "b"]);
    assert_index_matches_map(&entities, "");

    // Loaded at startup.
    entities.apply_update("t2", &[create("y", "T", 1)], UpdateAction::Append).await.unwrap();
    let reopened = Entities::open(&store).unwrap();
    assert_eq!(ids(&reopened.select_in_creation_order("", None, all, None)), ["c", "a", "b"]);
    assert_eq!(ids(&reopened.select_in_creation_order("", Some(&types(&["U"])), all, None)), ["c", "b"]);
    assert_eq!(ids(&reopened.select_in_creation_order("t2", Some(&types(&["T"])), all, None)), ["y"]);
    assert_index_matches_map(&reopened, "");
    assert_index_matches_map(&reopened, "t2");
}

#[tokio::test]
async fn typed_selection_stops_early_in_creation_order() {
    let store = Store::temporary().unwrap();
    let entities = Entities::open(&store).unwrap();
    // More entities than one chunk of the index, types alternating, ids not in creation order.
    let batch: Vec<ContextElement> = (0..700)
        .map(|i| {
            let entity_type = if i % 2 == 0 { "T" } else { "U" };
            element(json!({"entityId":{"id":format!("e{}", 1000 - i),"type":entity_type},
                "attributes":[{"name":"n","value":i}]}))
        })
        .collect();
    entities.apply_update("", &batch, UpdateAction::Append).await.unwrap();
    let n = |entity: &StoredEntity| entity.element.attributes[0].value.as_i64().unwrap();
    let visited = std::cell::Cell::new(0);
    let every_third = |entity: &StoredEntity| {
        visited.set(visited.get() + 1);
        n(entity) % 3 == 0
    };
    let page = entities.select_in_creation_order("", Some(&types(&["T"])), every_third, Some(5));
    assert_eq!(page.iter().map(|e| n(e)).collect::<Vec<_>>(), [0, 6, 12, 18, 24]);
    assert!(visited.get() <= 256, "stopped within the first chunk, visited {}", visited.get());
    visited.set(0);
    let all_t = entities.select_in_creation_order("", Some(&types(&["T"])), every_third, None);
    assert_eq!(all_t.len(), (0..700).filter(|i| i % 2 == 0 && i % 3 == 0).count());
    assert_eq!(visited.get(), 350, "only the entities of the type");
    assert!(all_t.windows(2).all(|pair| pair[0].created_at < pair[1].created_at));
    // Several types: their union in creation order, the same as filtering every entity.
    let both = entities.select_in_creation_order("", Some(&types(&["U", "T", "U"])), every_third, Some(7));
    assert_eq!(both.iter().map(|e| n(e)).collect::<Vec<_>>(), [0, 3, 6, 9, 12, 15, 18]);
    let everything = entities.select_in_creation_order("", None, every_third, None);
    assert_eq!(everything.len(), (0..700).filter(|i| i % 3 == 0).count());
    assert_eq!(
        entities.select_in_creation_order("", Some(&types(&["U", "T"])), every_third, None).len(),
        everything.len()
    );
    assert!(entities.select_in_creation_order("", None, every_third, Some(0)).is_empty());
    let late = entities.select_in_creation_order("", None, |entity| n(entity) >= 690, Some(20));
    assert_eq!(late.iter().map(|e| n(e)).collect::<Vec<_>>(), (690..700).collect::<Vec<_>>(), "across chunks");

    // NGSI10 queries naming a type scan only it and still answer by id with the full count.
    let selector = EntitySelector::compile(&[crate::ngsi::v1::EntityId {
        id: String::new(),
        entity_type: "U".into(),
        is_pattern: false,
    }])
    .unwrap();
    let page = entities.query("", &selector, &ScopeFilter::default(), &[], 0, 3);
    assert_eq!(page.total, 350);
    assert_eq!(page.elements.iter().map(|e| e.entity_id.id.as_str()).collect::<Vec<_>>(), ["e301", "e303", "e305"]);
}

#[tokio::test]
async fn attribute_times_follow_each_write_and_are_durable() {
    use crate::ngsi::ld::context::Context;
    use crate::ngsi::ld::edit::Edit;
    use crate::ngsi::ld::entity::parse_attribute;

    let store = Store::temporary().unwrap();
    let entities = Entities::open(&store).unwrap();
    let times_of = |name: &str, dataset: Option<&str>| {
        let entity = entities.get("", "e").unwrap();
        let index = entity
            .element
            .attributes
            .iter()
            .position(|a| a.name == name && crate::ngsi::ld::multi::dataset_id(a) == dataset)
            .unwrap();
        entity.attribute_times[index]
    };
    let tick = || tokio::time::sleep(std::time::Duration::from_millis(3));
    let ngsi10 =
        |attributes: serde_json::Value| element(json!({"entityId":{"id":"e","type":"T"},"attributes":attributes}));
    let ld = |edit: Edit| move |stored: Option<&ContextElement>| edit.apply("e", stored);
    let gps = |value: i64| {
        parse_attribute(&Context::core(), "b", &json!({"type": "Property", "value": value, "datasetId": "urn:gps"}))
            .unwrap()
    };

    entities
        .apply_update("", &[ngsi10(json!([{"name":"a","value":1},{"name":"b","value":2}]))], UpdateAction::Append)
        .await
        .unwrap();
    let (a0, b0) = (times_of("a", None), times_of("b", None));
    assert_eq!((a0.created_at, a0.modified_at), (b0.created_at, b0.created_at), "created together");

    tick().await;
    entities.apply_update("", &[ngsi10(json!([{"name":"a","value":3}]))], UpdateAction::Update).await.unwrap();
    let a1 = times_of("a", None);
    assert!(a1.created_at == a0.created_at && a1.modified_at > a0.modified_at, "a written: {a1:?}");
    assert_eq!(times_of("b", None), b0, "b untouched");

    tick().await;
    entities
        .edit("", "e", None, ld(Edit::Append { attributes: vec![gps(4)], no_overwrite: false, types: Vec::new() }))
        .await
        .unwrap()
        .unwrap();
    let gps0 = times_of("b", Some("urn:gps"));
    assert!(gps0.created_at > b0.created_at && gps0.created_at == gps0.modified_at, "a new instance: {gps0:?}");
    tick().await;
    entities.edit("", "e", None, ld(Edit::UpdateExisting(vec![gps(5)]))).await.unwrap().unwrap();
    let gps1 = times_of("b", Some("urn:gps"));
    assert!(gps1.created_at == gps0.created_at && gps1.modified_at > gps0.modified_at, "{gps1:?}");
    assert_eq!((times_of("b", None), times_of("a", None)), (b0, a1), "the other instances untouched");

    tick().await;
    let mut replacement = entities.get("", "e").unwrap().element.clone();
    replacement.attributes.retain(|attribute| attribute.name == "a");
    entities.edit("", "e", None, ld(Edit::Replace(replacement))).await.unwrap().unwrap();
    let a2 = times_of("a", None);
    assert!(a2.created_at == a0.created_at && a2.modified_at > a1.modified_at, "a replace keeps createdAt: {a2:?}");

    tick().await;
    let delete_a = Edit::DeleteAttribute { name: "a".into(), dataset_id: None, delete_all: false };
    entities.edit("", "e", None, ld(delete_a)).await.unwrap().unwrap();
    entities.apply_update("", &[ngsi10(json!([{"name":"a","value":6}]))], UpdateAction::Append).await.unwrap();
    let a3 = times_of("a", None);
    assert!(a3.created_at > a2.modified_at, "deleted and added again: new createdAt {a3:?}");

    let reopened = Entities::open(&store).unwrap().get("", "e").unwrap();
    assert_eq!(reopened.attribute_times, entities.get("", "e").unwrap().attribute_times, "durable");

    let old: StoredEntity = serde_json::from_value(json!({"tenant":"","element":{"entityId":{"id":"o"},
        "attributes":[{"name":"a","value":1}]},"created_at":1,"modified_at":2}))
    .unwrap();
    assert!(old.attribute_times.is_empty(), "stored by an older build");
    let shown = old.times().of(0, &old.element.attributes[0]);
    assert_eq!((shown.created_at, shown.modified_at), (1, 2), "its attributes show the entity's times");
}

#[tokio::test]
async fn entities_of_several_types_are_indexed_under_each_and_kept_by_ngsi10_writes() {
    let store = Store::temporary().unwrap();
    let entities = Entities::open(&store).unwrap();
    let typed = |id: &str, names: &[&str]| {
        let mut element = element(json!({"entityId": {"id": id}, "attributes": [{"name": "n", "value": 1}]}));
        element.set_types(types(names));
        element
    };
    let put = |element: ContextElement| {
        let id = element.entity_id.id.clone();
        let entities = entities.clone();
        async move {
            let edit = |_: Option<&ContextElement>| Ok::<_, ()>(Edited::by_name((element, vec!["n".to_string()])));
            entities.edit("", &id, None, edit).await.unwrap().unwrap();
        }
    };
    put(typed("a", &["T", "U"])).await;
    put(typed("b", &["U"])).await;
    let all = |_: &StoredEntity| true;
    let select = |entities: &Entities, names: &[&str], stop_after| {
        ids(&entities.select_in_creation_order("", Some(&types(names)), all, stop_after))
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(select(&entities, &["T"], None), ["a"]);
    assert_eq!(select(&entities, &["U"], None), ["a", "b"]);
    assert_eq!(select(&entities, &["T", "U"], None), ["a", "b"], "listed once though of both types");
    assert_eq!(select(&entities, &["U", "T"], Some(1)), ["a"]);

    // An NGSI10 update naming the first type, another of its types or none keeps every type.
    for entity_type in ["T", "U", ""] {
        let update = element(json!({"entityId": {"id": "a", "type": entity_type}, "attributes": [{"name": "n"}]}));
        entities.apply_update("", &[update], UpdateAction::Update).await.unwrap();
        assert_eq!(entities.get("", "a").unwrap().element.types().collect::<Vec<_>>(), ["T", "U"]);
    }
    assert_index_matches_map(&entities, "");

    // New types move the entity in the index; a deletion forgets it under each type.
    put(typed("a", &["V", "U", "W"])).await;
    assert_eq!((select(&entities, &["T"], None), select(&entities, &["W"], None)), (vec![], vec!["a".to_string()]));
    assert_eq!(entities.index.type_len("", "T"), 0);
    let reopened = Entities::open(&store).unwrap();
    assert_eq!(reopened.get("", "a").unwrap().element.types().collect::<Vec<_>>(), ["V", "U", "W"], "journalled");
    assert_eq!(select(&reopened, &["W", "U"], None), ["a", "b"]);
    entities.delete("", "a").await.unwrap().unwrap();
    assert_eq!((entities.index.type_len("", "U"), entities.index.type_len("", "V")), (1, 0));
    assert_index_matches_map(&entities, "");
}
