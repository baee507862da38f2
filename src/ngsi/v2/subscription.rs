//! NGSIv2 (Orion-compatible) subscriptions: parsing and validation of Orion's subscription body (`subject` with
//! `entities` and `condition`, `notification` with `http.url`, `attrs`/`exceptAttrs`, `attrsFormat`,
//! `onlyChangedAttrs`, `maxFailsLimit`, `throttling`, `expires`, `status`, `description`), partial updates
//! (PATCH), rendering back in Orion's shape, the projection of a notified entity (`attrs` projects, never
//! filters; `exceptAttrs` excludes) and the notification body per `attrsFormat`. Pure: no I/O, no HTTP.
//!
//! `condition.attrs` are triggers (a change of one of them notifies; none = any change), unlike NGSI10
//! `attributes`, which also filter entities.

use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::geo::GeoQuery;
use super::query::Query;
use super::service_path::ServicePaths;
use super::{check_identifier, view};
use crate::ngsi::limits::MAX_PATTERN_LEN;
use crate::ngsi::pattern::EntitySelector;
use crate::ngsi::v1::{ContextElement, EntityId};
use crate::ngsi::ParseError;

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

fn object<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, ParseError> {
    value.as_object().ok_or_else(|| ParseError::new(format!("{what} must be a JSON object")))
}

fn text<'a>(value: &'a Value, what: &str) -> Result<&'a str, ParseError> {
    value.as_str().ok_or_else(|| ParseError::new(format!("{what} must be a string")))
}

fn names(value: &Value, what: &str) -> Result<Vec<String>, ParseError> {
    let items = value.as_array().ok_or_else(|| ParseError::new(format!("{what} must be an array of strings")))?;
    if items.len() > MAX_LIST {
        return Err(ParseError::new(format!("more than {MAX_LIST} items in {what}")));
    }
    items
        .iter()
        .map(|item| {
            let name = text(item, what)?;
            check_identifier("attribute name", name)?;
            Ok(name.to_string())
        })
        .collect()
}

fn unknown(key: &str, within: &str) -> ParseError {
    ParseError::new(format!("unrecognized field `{key}` in {within}"))
}

/// Parses Orion's `expires` (an ISO 8601 date and time, UTC unless an offset is given, or a date) into ms.
pub fn parse_expires(value: &str) -> Result<i64, ParseError> {
    let bad = || ParseError::new(format!("expires `{value}` is not a valid ISO 8601 date"));
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(at.timestamp_millis());
    }
    let trimmed = value.strip_suffix('Z').unwrap_or(value);
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(at) = NaiveDateTime::parse_from_str(trimmed, format) {
            return Ok(at.and_utc().timestamp_millis());
        }
    }
    let date = NaiveDate::parse_from_str(trimmed, "%Y-%m-%d").map_err(|_| bad())?;
    Ok(date.and_hms_opt(0, 0, 0).ok_or_else(bad)?.and_utc().timestamp_millis())
}

fn parse_subject(subscription: &mut V2Subscription, subject: &Value) -> Result<(), ParseError> {
    for (key, value) in object(subject, "subject")? {
        match key.as_str() {
            "entities" => subscription.entities = parse_entities(value)?,
            "condition" => {
                for (key, value) in object(value, "subject.condition")? {
                    match key.as_str() {
                        "attrs" => subscription.condition_attrs = names(value, "condition.attrs")?,
                        "expression" => subscription.expression = parse_expression(value)?,
                        "alterationTypes" | "notifyOnMetadataChange" => {
                            return Err(ParseError::new(format!("condition.{key} is not supported by this broker")))
                        }
                        other => return Err(unknown(other, "subject.condition")),
                    }
                }
            }
            other => return Err(unknown(other, "subject")),
        }
    }
    if subscription.entities.is_empty() {
        return Err(ParseError::new("subject.entities is missing or empty"));
    }
    Ok(())
}

fn parse_entities(value: &Value) -> Result<Vec<SubjectEntity>, ParseError> {
    let items = value.as_array().ok_or_else(|| ParseError::new("subject.entities must be an array"))?;
    if items.len() > MAX_LIST {
        return Err(ParseError::new(format!("more than {MAX_LIST} entities in subject.entities")));
    }
    let mut entities = Vec::with_capacity(items.len());
    for item in items {
        let (mut id, mut pattern, mut entity_type) = (None, None, String::new());
        for (key, value) in object(item, "an entity of subject.entities")? {
            match key.as_str() {
                "id" => id = Some(text(value, "entity id")?.to_string()),
                "idPattern" => pattern = Some(text(value, "idPattern")?.to_string()),
                "type" => {
                    entity_type = text(value, "entity type")?.to_string();
                    check_identifier("entity type", &entity_type)?;
                }
                "typePattern" => return Err(ParseError::new("typePattern is not supported by this broker yet")),
                other => return Err(unknown(other, "subject.entities")),
            }
        }
        let entity = match (id, pattern) {
            (Some(id), None) => {
                check_identifier("entity id", &id)?;
                SubjectEntity { id, pattern: false, entity_type }
            }
            (None, Some(pattern)) => {
                if pattern.len() > MAX_PATTERN_LEN {
                    return Err(ParseError::new(format!("idPattern is longer than {MAX_PATTERN_LEN} bytes")));
                }
                SubjectEntity { id: pattern, pattern: true, entity_type }
            }
            (Some(_), Some(_)) => return Err(ParseError::new("an entity cannot have both id and idPattern")),
            (None, None) => return Err(ParseError::new("an entity of subject.entities needs id or idPattern")),
        };
        entities.push(entity);
    }
    Ok(entities)
}

fn parse_expression(value: &Value) -> Result<Expression, ParseError> {
    let mut expression = Expression::default();
    for (key, value) in object(value, "condition.expression")? {
        let slot = match key.as_str() {
            "q" => &mut expression.q,
            "georel" => &mut expression.georel,
            "geometry" => &mut expression.geometry,
            "coords" => &mut expression.coords,
            "mq" => return Err(ParseError::new("expression mq is not supported by this broker yet")),
            other => return Err(unknown(other, "condition.expression")),
        };
        *slot = Some(text(value, &format!("expression {key}"))?.to_string());
    }
    Ok(expression)
}

fn parse_notification(subscription: &mut V2Subscription, notification: &Value) -> Result<(), ParseError> {
    let mut url = None;
    let mut except = None;
    for (key, value) in object(notification, "notification")? {
        match key.as_str() {
            "http" => {
                for (key, value) in object(value, "notification.http")? {
                    match key.as_str() {
                        "url" => url = Some(text(value, "notification.http.url")?.to_string()),
                        other => return Err(unknown(other, "notification.http")),
                    }
                }
            }
            "httpCustom" | "mqtt" | "mqttCustom" => {
                return Err(ParseError::new(format!("notification.{key} is not supported by this broker")))
            }
            "attrs" => subscription.attrs = names(value, "notification.attrs")?,
            "exceptAttrs" => except = Some(names(value, "notification.exceptAttrs")?),
            "attrsFormat" => {
                subscription.attrs_format = serde_json::from_value(value.clone()).map_err(|_| {
                    ParseError::new("invalid attrsFormat (accepted values: legacy, normalized, keyValues, values)")
                })?
            }
            "onlyChangedAttrs" => {
                subscription.only_changed_attrs =
                    value.as_bool().ok_or_else(|| ParseError::new("onlyChangedAttrs must be a boolean"))?
            }
            "maxFailsLimit" => match value.as_u64() {
                Some(limit) if limit > 0 => subscription.max_fails_limit = Some(limit),
                _ => return Err(ParseError::new("maxFailsLimit must be a positive integer")),
            },
            // Shown by GET: accepted and ignored, so a GET body can be sent back.
            "timesSent" | "lastNotification" | "lastSuccess" | "lastSuccessCode" | "lastFailure"
            | "lastFailureReason" | "failsCounter" | "covered" => {}
            other => return Err(unknown(other, "notification")),
        }
    }
    if let Some(except) = except {
        if !subscription.attrs.is_empty() {
            return Err(ParseError::new("notification.attrs and notification.exceptAttrs cannot be used together"));
        }
        subscription.except_attrs = except;
    }
    subscription.url = url.ok_or_else(|| ParseError::new("notification.http.url is missing"))?;
    Ok(())
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
        ContextElement { entity_id: element.entity_id.clone(), attributes, domain_metadata: Vec::new() }
    }
}

mod notify;

pub use notify::notification_body;

#[cfg(test)]
mod tests;
