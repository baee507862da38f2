//! The Notification body of an NGSI-LD subscription (ETSI GS CIM 009 clause 5.3.1): each notified entity in the
//! subscription's format, compacted with its `@context`, with what [`LdNotice`] adds: `createdAt` / `modifiedAt`
//! (`notification.sysAttrs`), `deletedAt` of a deleted entity, deleted attributes with the NGSI-LD Null value
//! (`urn:ngsi-ld:null` as `value`, `object` or `languageMap`; `deletedAt` with `sysAttrs`) and, for
//! `notification.showChanges`, `previousValue` / `previousObject` / `previousLanguageMap` beside the value of
//! the attributes the change updated or deleted.

use serde_json::{Map, Value};

use super::trigger::LdNotice;
use super::{render, Accept, LdSubscription};
use crate::ngsi::ld::entity::Kind;
use crate::ngsi::ld::lang::LanguageFilter;
use crate::ngsi::ld::render::{date_time, render_entity, Format, Rendering};
use crate::ngsi::ld::DATASET_ID;
use crate::ngsi::times::EntityTimes;
use crate::ngsi::v1::{ContextAttribute, ContextElement};

/// The NGSI-LD Null: the value a notification gives an attribute that was deleted.
pub const NGSI_LD_NULL: &str = "urn:ngsi-ld:null";

/// The member carrying the previous value of an attribute of `kind` (`showChanges`).
fn previous_key(kind: Kind) -> &'static str {
    match kind {
        Kind::Relationship => "previousObject",
        Kind::LanguageProperty => "previousLanguageMap",
        Kind::Property | Kind::GeoProperty => "previousValue",
    }
}

fn dataset_id(attribute: &ContextAttribute) -> Option<&Value> {
    attribute.metadata.iter().find(|metadata| metadata.name == DATASET_ID).map(|metadata| &metadata.value)
}

/// Adds the previous value of `previous` to its rendered instance (the one of the same `datasetId`); a bare
/// concise value becomes `{value, previousValue}`.
fn add_previous(entity: &mut Map<String, Value>, previous: &ContextAttribute) {
    let kind = Kind::of(&previous.attribute_type);
    let dataset = dataset_id(previous);
    let Some(rendered) = entity.get_mut(&previous.name) else { return };
    let target = match rendered {
        Value::Array(instances) => instances.iter_mut().find(|instance| instance.get(DATASET_ID) == dataset),
        _ if dataset.is_none() => Some(rendered),
        _ => None,
    };
    let Some(target) = target else { return };
    if !target.is_object() {
        let bare = target.take();
        *target = Value::Object(Map::from_iter([(kind.value_key().to_string(), bare)]));
    }
    if let Value::Object(object) = target {
        object.insert(previous_key(kind).into(), previous.value.clone());
    }
}

/// A deleted attribute as notified: the NGSI-LD Null in its value member (keyValues: the Null alone), its
/// previous value for `showChanges`, its `datasetId`, and `deletedAt` for `sysAttrs`.
fn deleted_attribute(attribute: &ContextAttribute, subscription: &LdSubscription, deleted_at: i64) -> Value {
    let null = Value::String(NGSI_LD_NULL.into());
    let format = subscription.format.render_format();
    if format == Format::KeyValues {
        return null;
    }
    let kind = Kind::of(&attribute.attribute_type);
    let mut object = Map::new();
    if format == Format::Normalized {
        object.insert("type".into(), Value::String(kind.name().into()));
    }
    object.insert(kind.value_key().into(), null);
    if subscription.show_changes {
        object.insert(previous_key(kind).into(), attribute.value.clone());
    }
    if let Some(dataset) = dataset_id(attribute) {
        object.insert(DATASET_ID.into(), dataset.clone());
    }
    if subscription.sys_attrs {
        object.insert("deletedAt".into(), date_time(deleted_at));
    }
    Value::Object(object)
}

/// Adds one rendered instance of attribute `name` (an array once there are several).
fn insert_instance(entity: &mut Map<String, Value>, name: &str, instance: Value) {
    match entity.get_mut(name) {
        Some(Value::Array(instances)) => instances.push(instance),
        Some(first) => *first = Value::Array(vec![first.take(), instance]),
        None => {
            entity.insert(name.to_string(), instance);
        }
    }
}

/// One notified entity, before compaction: its state rendered, with what the notice adds.
fn render_notified(
    subscription: &LdSubscription,
    rendering: &Rendering,
    element: &ContextElement,
    times: &EntityTimes,
    notice: Option<&LdNotice>,
) -> Value {
    let mut rendered = render_entity(element, times, rendering);
    let Some(notice) = notice else { return rendered };
    let Value::Object(entity) = &mut rendered else { return rendered };
    if subscription.show_changes {
        for previous in &notice.previous {
            add_previous(entity, previous);
        }
    }
    for deleted in &notice.deleted {
        insert_instance(entity, &deleted.name, deleted_attribute(deleted, subscription, notice.changed_at));
    }
    if notice.entity_deleted {
        entity.insert("deletedAt".into(), date_time(notice.changed_at));
    }
    rendered
}

/// The Notification body (clause 5.3.1) of `items` (entities already projected, each with the system times of
/// the stored entity it was projected from and its notice): `id`,
/// `type`, `subscriptionId`, `notifiedAt` and `data`, entities in the subscription's format with names compacted
/// by its context; for `application/ld+json` with the `@context` in the body (the core context URL when it has
/// none). An `application/json` notification is compacted only when its context is one URL (named in the `Link`
/// header, [`LdSubscription::context_link`]).
pub fn notification_body<'a>(
    subscription: &LdSubscription,
    subscription_id: &str,
    notification_id: &str,
    notified_at_ms: i64,
    items: impl Iterator<Item = (&'a ContextElement, EntityTimes<'a>, Option<&'a LdNotice>)>,
) -> Value {
    let compacted = subscription.accept == Accept::LdJson || subscription.context_link().is_some();
    let compactor = match subscription.context() {
        Ok(context) if compacted => context.compactor(),
        _ => Default::default(),
    };
    let rendering = Rendering {
        format: subscription.format.render_format(),
        sys_attrs: subscription.sys_attrs,
        // Checked when the subscription was written.
        lang: subscription.lang.as_deref().and_then(|text| LanguageFilter::parse(text).ok()),
        ..Default::default()
    };
    let data: Vec<Value> = items
        .map(|(element, times, notice)| {
            render::compact_entity(&compactor, render_notified(subscription, &rendering, element, &times, notice))
        })
        .collect();
    let mut body = Map::new();
    body.insert("id".into(), Value::String(notification_id.to_string()));
    body.insert("type".into(), Value::String("Notification".into()));
    body.insert("subscriptionId".into(), Value::String(subscription_id.to_string()));
    body.insert("notifiedAt".into(), date_time(notified_at_ms));
    body.insert("data".into(), Value::Array(data));
    if subscription.accept == Accept::LdJson {
        body.insert("@context".into(), subscription.echoed_context());
    }
    Value::Object(body)
}
