//! NGSIv2 (Orion-compatible) subscriptions: parsing and validation of Orion's subscription body (`subject` with
//! `entities` and `condition`, `notification` with `http.url`, `attrs`/`exceptAttrs`, `attrsFormat`,
//! `onlyChangedAttrs`, `maxFailsLimit`, `throttling`, `expires`, `status`, `description`), partial updates
//! (PATCH), rendering back in Orion's shape, the projection of a notified entity (`attrs` projects, never
//! filters; `exceptAttrs` excludes) and the notification body per `attrsFormat`. Pure: no I/O, no HTTP.
//!
//! `condition.attrs` are triggers (a change of one of them notifies; none = any change), unlike NGSI10
//! `attributes`, which also filter entities.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::geo::GeoQuery;
use super::query::Query;
use super::service_path::ServicePaths;
use super::view;
use crate::ngsi::pattern::EntitySelector;
use crate::ngsi::v1::{ContextElement, EntityId};
use crate::ngsi::ParseError;

mod parse;

pub use self::parse::parse_expires;
use self::parse::{object, parse_notification, parse_subject, text, unknown};

/// Longest `description`.
const MAX_DESCRIPTION: usize = 1024;
/// Most entities, or attribute names, in one list of a subscription.
const MAX_LIST: usize = 100;

/// `notification.attrsFormat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum AttrsFormat {
    /// Entities as `GET /v2/entities` renders them.
    #[default]
    #[serde(rename = "normalized")]
    Normalized,
    /// `options=keyValues` entities.
    #[serde(rename = "keyValues")]
    KeyValues,
    /// `options=values` entities (arrays of values).
    #[serde(rename = "values")]
    Values,
    /// An NGSIv1 `notifyContext` body.
    #[serde(rename = "legacy")]
    Legacy,
}

impl AttrsFormat {
    /// Orion's name (the `Ngsiv2-AttrsFormat` header).
    pub fn name(self) -> &'static str {
        match self {
            AttrsFormat::Normalized => "normalized",
            AttrsFormat::KeyValues => "keyValues",
            AttrsFormat::Values => "values",
            AttrsFormat::Legacy => "legacy",
        }
    }
}

/// One entry of `subject.entities`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubjectEntity {
    /// `id`, or the `idPattern` regex when `pattern`.
    pub id: String,
    /// Whether `id` is an `idPattern`.
    #[serde(default)]
    pub pattern: bool,
    /// `type`, empty for any.
    #[serde(default)]
    pub entity_type: String,
}

/// `subject.condition.expression`, as given (compiled by [`V2Subscription::query`] and [`V2Subscription::geo`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Expression {
    /// `q`.
    #[serde(default)]
    pub q: Option<String>,
    /// `georel`.
    #[serde(default)]
    pub georel: Option<String>,
    /// `geometry`.
    #[serde(default)]
    pub geometry: Option<String>,
    /// `coords`.
    #[serde(default)]
    pub coords: Option<String>,
}

/// A subscription's `status` as set by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Status {
    /// Notifies.
    #[default]
    #[serde(rename = "active")]
    Active,
    /// Does not notify.
    #[serde(rename = "inactive")]
    Inactive,
}

/// An NGSIv2 subscription as stored (its own field names; rendered in Orion's shape by [`V2Subscription::render`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct V2Subscription {
    /// `description`.
    #[serde(default)]
    pub description: Option<String>,
    /// `subject.entities`.
    #[serde(default)]
    pub entities: Vec<SubjectEntity>,
    /// `subject.condition.attrs`: trigger attributes.
    #[serde(default)]
    pub condition_attrs: Vec<String>,
    /// `subject.condition.expression`.
    #[serde(default)]
    pub expression: Expression,
    /// `notification.http.url`.
    #[serde(default)]
    pub url: String,
    /// `notification.attrs`: projection.
    #[serde(default)]
    pub attrs: Vec<String>,
    /// `notification.exceptAttrs`: excluded attributes.
    #[serde(default)]
    pub except_attrs: Vec<String>,
    /// `notification.attrsFormat`.
    #[serde(default)]
    pub attrs_format: AttrsFormat,
    /// `notification.onlyChangedAttrs`.
    #[serde(default)]
    pub only_changed_attrs: bool,
    /// `notification.maxFailsLimit`.
    #[serde(default)]
    pub max_fails_limit: Option<u64>,
    /// `throttling`, seconds.
    #[serde(default)]
    pub throttling: Option<u64>,
    /// `expires`, ms since the epoch.
    #[serde(default)]
    pub expires: Option<i64>,
    /// `status`.
    #[serde(default)]
    pub status: Status,
    /// The `Fiware-ServicePath` it was created with (canonical text, `/#` when the header was absent): the
    /// service paths of the entities it selects. None in records stored before service paths were kept: every
    /// path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_path: Option<String>,
}

impl V2Subscription {
    /// Parses and validates an Orion subscription body (the URL's scheme and host are checked by the broker).
    pub fn parse(body: &Value) -> Result<V2Subscription, ParseError> {
        let members = object(body, "the payload")?;
        let mut subscription = V2Subscription::default();
        let subject = members.get("subject").ok_or_else(|| ParseError::new("no subject for subscription specified"))?;
        let notification =
            members.get("notification").ok_or_else(|| ParseError::new("no notification for subscription specified"))?;
        parse_subject(&mut subscription, subject)?;
        parse_notification(&mut subscription, notification)?;
        for (key, value) in members {
            match key.as_str() {
                "subject" | "notification" | "id" => {}
                "description" => {
                    let description = text(value, "description")?;
                    if description.len() > MAX_DESCRIPTION {
                        return Err(ParseError::new(format!("description is longer than {MAX_DESCRIPTION} bytes")));
                    }
                    subscription.description = Some(description.to_string());
                }
                "throttling" => match value.as_f64() {
                    Some(seconds) if seconds < 0.0 => return Err(ParseError::new("throttling must not be negative")),
                    Some(seconds) if seconds.fract() == 0.0 && seconds <= u32::MAX as f64 => {
                        subscription.throttling = Some(seconds as u64).filter(|s| *s > 0)
                    }
                    _ => return Err(ParseError::new("throttling must be a non-negative integer number of seconds")),
                },
                "expires" => subscription.expires = Some(parse_expires(text(value, "expires")?)?),
                "status" => {
                    subscription.status = match text(value, "status")? {
                        "active" => Status::Active,
                        "inactive" => Status::Inactive,
                        other => {
                            return Err(ParseError::new(format!("status `{other}` (expected active or inactive)")))
                        }
                    }
                }
                other => return Err(unknown(other, "the subscription")),
            }
        }
        subscription.selector()?;
        subscription.query()?;
        subscription.geo()?;
        Ok(subscription)
    }

    /// Applies a PATCH body: each top-level field given (`description`, `subject`, `notification`, `throttling`,
    /// `expires`, `status`) replaces the stored one; the result is validated as a new subscription.
    pub fn patch(&self, body: &Value) -> Result<V2Subscription, ParseError> {
        let patch = object(body, "the payload")?;
        if patch.is_empty() {
            return Err(ParseError::new("empty payload"));
        }
        let mut merged = match self.render() {
            Value::Object(members) => members,
            _ => Map::new(),
        };
        for (key, value) in patch {
            match key.as_str() {
                "description" | "subject" | "notification" | "throttling" | "expires" | "status" => {
                    merged.insert(key.clone(), value.clone());
                }
                other => return Err(unknown(other, "the subscription")),
            }
        }
        let patched = V2Subscription::parse(&Value::Object(merged))?;
        Ok(V2Subscription { service_path: self.service_path.clone(), ..patched })
    }

    /// The subscription in Orion's shape, without `id`, `status` details or delivery counters.
    pub fn render(&self) -> Value {
        let entities: Vec<Value> = self
            .entities
            .iter()
            .map(|entity| {
                let mut object = Map::new();
                object.insert((if entity.pattern { "idPattern" } else { "id" }).into(), json!(entity.id));
                if !entity.entity_type.is_empty() {
                    object.insert("type".into(), json!(entity.entity_type));
                }
                Value::Object(object)
            })
            .collect();
        let mut condition = json!({ "attrs": self.condition_attrs });
        let expression: Map<String, Value> = [
            ("q", &self.expression.q),
            ("georel", &self.expression.georel),
            ("geometry", &self.expression.geometry),
            ("coords", &self.expression.coords),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.as_ref().map(|value| (key.to_string(), json!(value))))
        .collect();
        if !expression.is_empty() {
            condition["expression"] = Value::Object(expression);
        }
        let mut notification = json!({
            "http": { "url": self.url },
            "attrsFormat": self.attrs_format.name(),
            "onlyChangedAttrs": self.only_changed_attrs,
        });
        if self.except_attrs.is_empty() {
            notification["attrs"] = json!(self.attrs);
        } else {
            notification["exceptAttrs"] = json!(self.except_attrs);
        }
        if let Some(limit) = self.max_fails_limit {
            notification["maxFailsLimit"] = json!(limit);
        }
        let mut body = json!({
            "subject": { "entities": entities, "condition": condition },
            "notification": notification,
            "status": match self.status { Status::Active => "active", Status::Inactive => "inactive" },
        });
        if let Some(description) = &self.description {
            body["description"] = json!(description);
        }
        if let Some(throttling) = self.throttling {
            body["throttling"] = json!(throttling);
        }
        if let Some(expires) = self.expires.and_then(chrono::DateTime::from_timestamp_millis) {
            body["expires"] = json!(expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        }
        body
    }

    /// The entities as NGSI10 entity ids (an empty type matches any).
    pub fn entity_ids(&self) -> Vec<EntityId> {
        self.entities
            .iter()
            .map(|e| EntityId { id: e.id.clone(), entity_type: e.entity_type.clone(), is_pattern: e.pattern })
            .collect()
    }

    /// The compiled entity selector.
    pub fn selector(&self) -> Result<EntitySelector, ParseError> {
        EntitySelector::compile(&self.entity_ids())
    }

    /// The compiled `expression.q`.
    pub fn query(&self) -> Result<Option<Query>, ParseError> {
        self.expression.q.as_deref().map(Query::parse).transpose()
    }

    /// The compiled geo part of `expression`.
    pub fn geo(&self) -> Result<Option<GeoQuery>, ParseError> {
        let e = &self.expression;
        GeoQuery::parse(e.georel.as_deref(), e.geometry.as_deref(), e.coords.as_deref())
    }

    /// The service paths of the entities it selects (every path when none was kept).
    pub fn service_paths(&self) -> Result<ServicePaths, ParseError> {
        self.service_path.as_deref().map_or_else(|| Ok(ServicePaths::default()), ServicePaths::parse)
    }

    /// Whether `expires` has passed at `now_ms`.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expires.is_some_and(|expires| now_ms >= expires)
    }

    /// What to notify of an entity: its v2 view projected to `attrs` (all when empty), without `exceptAttrs`,
    /// and with `onlyChangedAttrs` only the attributes in `changed`. The result has no domain metadata.
    pub fn project(&self, element: &ContextElement, changed: &[String]) -> ContextElement {
        let all = view(element);
        let mut attributes: Vec<_> = if self.attrs.is_empty() || self.attrs.iter().any(|a| a == "*") {
            all
        } else {
            self.attrs.iter().filter_map(|name| all.iter().find(|a| &a.name == name).cloned()).collect()
        };
        attributes.retain(|a| !self.except_attrs.contains(&a.name));
        if self.only_changed_attrs {
            attributes.retain(|a| changed.contains(&a.name));
        }
        // NGSIv2 shows an entity's first type only.
        ContextElement { entity_id: element.entity_id.clone(), attributes, ..ContextElement::default() }
    }
}

mod notify;

pub use notify::notification_body;

#[cfg(test)]
mod tests;
