//! Rendering NGSI-LD subscriptions back (clause 5.2.12, as `GET /ngsi-ld/v1/subscriptions` shows them) and
//! compacting notified entities with a subscription's `@context`.

use serde_json::{json, Map, Value};

use super::LdSubscription;
use crate::ngsi::ld::context::Compactor;
use crate::ngsi::ld::render::date_time;
use crate::ngsi::ld::{DATASET_ID, OBSERVED_AT, UNIT_CODE};

/// Members of a rendered attribute that are not sub-properties.
const ATTRIBUTE_KEYS: &[&str] = &[
    "type",
    "value",
    "object",
    "languageMap",
    "lang",
    OBSERVED_AT,
    UNIT_CODE,
    DATASET_ID,
    "createdAt",
    "modifiedAt",
    "deletedAt",
    "previousValue",
    "previousObject",
    "previousLanguageMap",
];

/// Whether a rendered attribute object has a value member (normalized, or concise with sub-properties).
fn has_value(object: &Map<String, Value>) -> bool {
    ["value", "object", "languageMap"].iter().any(|key| object.contains_key(*key))
}

/// Whether a rendered attribute value is an attribute object.
fn is_attribute(value: &Value) -> bool {
    value.as_object().is_some_and(has_value)
}

/// A rendered attribute (instance) with its sub-property names compacted; a bare value as it is.
fn compact_attribute(compactor: &Compactor, value: Value) -> Value {
    match value {
        Value::Object(attribute) if has_value(&attribute) => Value::Object(
            attribute
                .into_iter()
                .map(|(name, sub)| {
                    if ATTRIBUTE_KEYS.contains(&name.as_str()) {
                        (name, sub)
                    } else {
                        (compactor.compact(&name), sub)
                    }
                })
                .collect(),
        ),
        other => other,
    }
}

/// A rendered entity with its type and attribute / sub-property names compacted (each instance of a
/// multi-attribute).
pub fn compact_entity(compactor: &Compactor, entity: Value) -> Value {
    let Value::Object(members) = entity else { return entity };
    let mut compacted = Map::new();
    for (key, value) in members {
        match key.as_str() {
            "id" | "createdAt" | "modifiedAt" | "deletedAt" => {
                compacted.insert(key, value);
            }
            "type" => {
                let value = match value {
                    Value::String(name) => Value::String(compactor.compact(&name)),
                    Value::Array(names) => Value::Array(
                        names
                            .into_iter()
                            .map(|name| match name {
                                Value::String(name) => Value::String(compactor.compact(&name)),
                                other => other,
                            })
                            .collect(),
                    ),
                    other => other,
                };
                compacted.insert(key, value);
            }
            _ => {
                let value = match value {
                    Value::Array(instances) if instances.iter().all(is_attribute) => Value::Array(
                        instances.into_iter().map(|instance| compact_attribute(compactor, instance)).collect(),
                    ),
                    other => compact_attribute(compactor, other),
                };
                compacted.insert(compactor.compact(&key), value);
            }
        }
    }
    Value::Object(compacted)
}

/// Delivery counters and state shown with a subscription.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shown {
    /// Notifications delivered.
    pub times_sent: u64,
    /// Failed attempts.
    pub times_failed: u64,
    /// Whether the last attempt failed.
    pub failing: bool,
    /// Last attempt, success and failure (RFC 3339).
    pub last_notification: Option<String>,
    /// Last success.
    pub last_success: Option<String>,
    /// Last failure.
    pub last_failure: Option<String>,
}

/// The subscription as the API shows it: its members with their names (entity types, `watchedAttributes`,
/// `notification.attributes`, `geoQ.geoproperty`) compacted by `compactor` (the request's context; an empty
/// compactor shows the stored, core-compacted names), `notificationTrigger` (the default when none was given),
/// `notification.showChanges` / `sysAttrs`, `isActive`, `status` (`active`, `paused`, `expired`) and
/// `notification.status` (`ok`, `failed`) with the delivery counters.
pub fn render_subscription(
    id: &str,
    subscription: &LdSubscription,
    shown: &Shown,
    now_ms: i64,
    compactor: &Compactor,
) -> Value {
    let names = |names: &[String]| names.iter().map(|name| compactor.compact(name)).collect::<Vec<_>>();
    let mut body = Map::new();
    body.insert("id".into(), json!(id));
    body.insert("type".into(), json!("Subscription"));
    if let Some(name) = &subscription.name {
        body.insert("subscriptionName".into(), json!(name));
    }
    if let Some(description) = &subscription.description {
        body.insert("description".into(), json!(description));
    }
    if !subscription.entities.is_empty() {
        let entities: Vec<Value> = subscription
            .entities
            .iter()
            .map(|info| {
                let mut entity = Map::new();
                for (key, value) in [("id", &info.id), ("idPattern", &info.id_pattern)] {
                    if let Some(value) = value {
                        entity.insert(key.into(), json!(value));
                    }
                }
                if let Some(entity_type) = &info.entity_type {
                    entity.insert("type".into(), json!(compactor.compact(entity_type)));
                }
                Value::Object(entity)
            })
            .collect();
        body.insert("entities".into(), Value::Array(entities));
    }
    if !subscription.watched_attributes.is_empty() {
        body.insert("watchedAttributes".into(), json!(names(&subscription.watched_attributes)));
    }
    if let Some(q) = &subscription.q {
        body.insert("q".into(), json!(q.text));
    }
    if let Some(geo) = &subscription.geo_q {
        let coordinates = serde_json::from_str::<Value>(&geo.coordinates).unwrap_or_else(|_| json!(geo.coordinates));
        body.insert(
            "geoQ".into(),
            json!({"georel": geo.georel, "geometry": geo.geometry, "coordinates": coordinates, "geoproperty": compactor.compact(&geo.geoproperty)}),
        );
    }
    body.insert("notificationTrigger".into(), json!(subscription.notification_trigger.names()));
    body.insert("isActive".into(), json!(subscription.is_active));
    let status = if subscription.is_expired(now_ms) {
        "expired"
    } else if subscription.is_active {
        "active"
    } else {
        "paused"
    };
    body.insert("status".into(), json!(status));
    let mut notification = Map::new();
    if !subscription.attributes.is_empty() {
        notification.insert("attributes".into(), json!(names(&subscription.attributes)));
    }
    notification.insert("format".into(), json!(subscription.format.name()));
    notification.insert("showChanges".into(), json!(subscription.show_changes));
    notification.insert("sysAttrs".into(), json!(subscription.sys_attrs));
    notification
        .insert("endpoint".into(), json!({"uri": subscription.uri, "accept": subscription.accept.media_type()}));
    notification.insert("status".into(), json!(if shown.failing { "failed" } else { "ok" }));
    notification.insert("timesSent".into(), json!(shown.times_sent));
    notification.insert("timesFailed".into(), json!(shown.times_failed));
    for (key, value) in [
        ("lastNotification", &shown.last_notification),
        ("lastSuccess", &shown.last_success),
        ("lastFailure", &shown.last_failure),
    ] {
        if let Some(value) = value {
            notification.insert(key.into(), json!(value));
        }
    }
    body.insert("notification".into(), Value::Object(notification));
    if let Some(expires_at) = subscription.expires_at {
        body.insert("expiresAt".into(), date_time(expires_at));
    }
    if let Some(ms) = subscription.throttling_ms {
        body.insert("throttling".into(), json!(ms as f64 / 1000.0));
    }
    if let Some(ms) = subscription.time_interval_ms {
        body.insert("timeInterval".into(), json!(ms as f64 / 1000.0));
    }
    if let Some(lang) = &subscription.lang {
        body.insert("lang".into(), json!(lang));
    }
    Value::Object(body)
}
