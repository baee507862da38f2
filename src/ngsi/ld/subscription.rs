//! NGSI-LD subscriptions (ETSI GS CIM 009 clauses 5.2.12 Subscription, 5.2.14 NotificationParams, 5.3.1
//! Notification): parsing and validation of a subscription body or PATCH fragment against the request's
//! `@context`, the stored form, its compiled selection (`entities`, `q`, `geoQ`), the projection of a notified
//! entity (`notification.attributes`) and the Notification body (`format` normalized, keyValues or concise,
//! names compacted with the subscription's `@context`). Rendering back is in [`render`]. Pure: no I/O.
//!
//! Names (entity types, `watchedAttributes`, `notification.attributes`, `geoQ.geoproperty`) are stored canonical
//! (see [`super::context`]); `q` is stored as written with the context it was written in, and compiled again
//! from both. `timeInterval`, `csf`, `temporalQ`, `scopeQ`, `lang`, `notification.endpoint.receiverInfo` /
//! `notifierInfo`, `notification.sysAttrs` / `showChanges` and `notificationTrigger` are refused with
//! [`SubscriptionError::NotSupported`].

pub mod render;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::context::{Context, ContextError};
use super::geo::GeoQuery;
use super::query::Query;
use super::render::{view, Format};
use super::{check_uri, LOCATION};
use crate::ngsi::limits::{check_name, MAX_PATTERN_LEN};
use crate::ngsi::pattern::EntitySelector;
use crate::ngsi::v1::{ContextElement, EntityId};
use crate::ngsi::ParseError;

/// Most entities, or attribute names, in one list of a subscription.
pub const MAX_LIST: usize = 100;
/// Longest `description` or `subscriptionName`.
const MAX_TEXT: usize = 1024;
/// Longest endpoint URI.
const MAX_URI: usize = 2048;

/// Why a subscription body cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    /// The body is invalid (`BadRequestData`).
    #[error(transparent)]
    Invalid(#[from] ParseError),
    /// A member this broker does not implement (`OperationNotSupported`).
    #[error("{0}")]
    NotSupported(String),
    /// The `@context` cannot be used.
    #[error(transparent)]
    Context(#[from] ContextError),
}

fn invalid(message: impl Into<String>) -> SubscriptionError {
    SubscriptionError::Invalid(ParseError::new(message))
}

/// One `entities` item (EntityInfo): `id` or `idPattern` (an `id` wins), and a canonical `type` (any when absent).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EntityInfo {
    /// `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `idPattern`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_pattern: Option<String>,
    /// `type`, canonical.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_type: Option<String>,
}

/// `notification.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum NotificationFormat {
    /// `normalized`.
    #[default]
    #[serde(rename = "normalized")]
    Normalized,
    /// `keyValues`.
    #[serde(rename = "keyValues")]
    KeyValues,
    /// `concise`.
    #[serde(rename = "concise")]
    Concise,
}

impl NotificationFormat {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            NotificationFormat::Normalized => "normalized",
            NotificationFormat::KeyValues => "keyValues",
            NotificationFormat::Concise => "concise",
        }
    }

    fn render_format(self) -> Format {
        match self {
            NotificationFormat::Normalized => Format::Normalized,
            NotificationFormat::KeyValues => Format::KeyValues,
            NotificationFormat::Concise => Format::Concise,
        }
    }
}

/// `notification.endpoint.accept`: the media type of notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Accept {
    /// `application/json`, the context in a `Link` header.
    #[default]
    #[serde(rename = "application/json")]
    Json,
    /// `application/ld+json`, the context in the body.
    #[serde(rename = "application/ld+json")]
    LdJson,
}

impl Accept {
    /// The media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Accept::Json => "application/json",
            Accept::LdJson => "application/ld+json",
        }
    }
}

/// `q` as written, with the `@context` it was written in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QText {
    /// The expression.
    pub text: String,
    /// The body `@context` (null: the core context).
    #[serde(default)]
    pub context: Value,
}

/// `geoQ`; `geoproperty` canonical.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeoQ {
    /// `georel`.
    pub georel: String,
    /// `geometry`.
    pub geometry: String,
    /// `coordinates`, as JSON text.
    pub coordinates: String,
    /// `geoproperty`, canonical (`location` by default).
    pub geoproperty: String,
}

/// An NGSI-LD subscription as stored (its id and tenant are the broker record's).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LdSubscription {
    /// `subscriptionName`.
    #[serde(default)]
    pub name: Option<String>,
    /// `description`.
    #[serde(default)]
    pub description: Option<String>,
    /// `entities`.
    #[serde(default)]
    pub entities: Vec<EntityInfo>,
    /// `watchedAttributes`, canonical: a change of one of them notifies (none: any change).
    #[serde(default)]
    pub watched_attributes: Vec<String>,
    /// `q`.
    #[serde(default)]
    pub q: Option<QText>,
    /// `geoQ`.
    #[serde(default)]
    pub geo_q: Option<GeoQ>,
    /// `notification.attributes`, canonical (all when empty).
    #[serde(default)]
    pub attributes: Vec<String>,
    /// `notification.format`.
    #[serde(default)]
    pub format: NotificationFormat,
    /// `notification.endpoint.uri`.
    #[serde(default)]
    pub uri: String,
    /// `notification.endpoint.accept`.
    #[serde(default)]
    pub accept: Accept,
    /// `isActive`.
    #[serde(default = "yes")]
    pub is_active: bool,
    /// `expiresAt`, ms since the epoch.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// `throttling`, ms.
    #[serde(default)]
    pub throttling_ms: Option<u64>,
    /// The subscription's body `@context` (null: the core context), used to compact notifications.
    #[serde(default)]
    pub context: Value,
}

fn yes() -> bool {
    true
}

/// The compiled selection of a subscription.
#[derive(Debug, Clone)]
pub struct Selection {
    selector: Option<EntitySelector>,
    q: Option<Query>,
    geo: Option<GeoQuery>,
}

impl Selection {
    /// Whether the entity in this state is selected (`entities`, `q`, `geoQ`).
    pub fn selects(&self, element: &ContextElement) -> bool {
        self.selector.as_ref().is_none_or(|s| s.matches(&element.entity_id.id, &element.entity_id.entity_type))
            && self.q.as_ref().is_none_or(|q| q.matches(element))
            && self.geo.as_ref().is_none_or(|g| g.matches(element))
    }
}

fn text<'a>(value: &'a Value, what: &str) -> Result<&'a str, SubscriptionError> {
    value.as_str().ok_or_else(|| invalid(format!("{what} must be a string")))
}

fn bounded_text(value: &Value, what: &str) -> Result<String, SubscriptionError> {
    let text = text(value, what)?;
    if text.len() > MAX_TEXT {
        return Err(invalid(format!("{what} is longer than {MAX_TEXT} bytes")));
    }
    Ok(text.to_string())
}

fn items<'a>(value: &'a Value, what: &str) -> Result<&'a [Value], SubscriptionError> {
    match value.as_array() {
        Some(items) if items.is_empty() => Err(invalid(format!("{what} must not be empty"))),
        Some(items) if items.len() > MAX_LIST => Err(invalid(format!("more than {MAX_LIST} items in {what}"))),
        Some(items) => Ok(items),
        None => Err(invalid(format!("{what} must be an array"))),
    }
}

fn names(context: &Context, value: &Value, what: &str) -> Result<Vec<String>, SubscriptionError> {
    items(value, what)?
        .iter()
        .map(|item| {
            let name = context.canonical(text(item, what)?);
            check_name(what, &name)?;
            Ok(name)
        })
        .collect()
}

fn not_supported(what: &str) -> SubscriptionError {
    SubscriptionError::NotSupported(format!("{what} is not supported by this broker"))
}

fn unknown(key: &str, within: &str) -> SubscriptionError {
    invalid(format!("unrecognized member `{key}` in {within}"))
}

fn date_time(value: &Value, what: &str) -> Result<i64, SubscriptionError> {
    let text = text(value, what)?;
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|at| at.timestamp_millis())
        .map_err(|_| invalid(format!("{what} `{text}` is not an ISO 8601 date-time")))
}

fn parse_entities(context: &Context, value: &Value) -> Result<Vec<EntityInfo>, SubscriptionError> {
    let mut entities = Vec::new();
    for item in items(value, "entities")? {
        let Value::Object(members) = item else { return Err(invalid("an item of entities must be a JSON object")) };
        let mut info = EntityInfo::default();
        for (key, value) in members {
            match key.as_str() {
                "id" => {
                    let id = text(value, "entities[].id")?;
                    check_uri("entities[].id", id)?;
                    info.id = Some(id.to_string());
                }
                "idPattern" => {
                    let pattern = text(value, "entities[].idPattern")?;
                    if pattern.len() > MAX_PATTERN_LEN {
                        return Err(invalid(format!("idPattern is longer than {MAX_PATTERN_LEN} bytes")));
                    }
                    info.id_pattern = Some(pattern.to_string());
                }
                "type" => {
                    let entity_type = context.canonical(text(value, "entities[].type")?);
                    check_name("entities[].type", &entity_type)?;
                    info.entity_type = Some(entity_type);
                }
                other => return Err(unknown(other, "entities[]")),
            }
        }
        if info.id.is_none() && info.id_pattern.is_none() && info.entity_type.is_none() {
            return Err(invalid("an item of entities needs a type, an id or an idPattern"));
        }
        entities.push(info);
    }
    Ok(entities)
}

fn parse_geo_q(context: &Context, value: &Value) -> Result<GeoQ, SubscriptionError> {
    let Value::Object(members) = value else { return Err(invalid("geoQ must be a JSON object")) };
    let (mut georel, mut geometry, mut coordinates, mut geoproperty) = (None, None, None, LOCATION.to_string());
    for (key, value) in members {
        match key.as_str() {
            "georel" => georel = Some(text(value, "geoQ.georel")?.to_string()),
            "geometry" => geometry = Some(text(value, "geoQ.geometry")?.to_string()),
            "coordinates" => {
                coordinates = Some(match value {
                    Value::String(text) => text.clone(),
                    Value::Array(_) => value.to_string(),
                    _ => return Err(invalid("geoQ.coordinates must be an array (or its JSON text)")),
                })
            }
            "geoproperty" => geoproperty = context.canonical(text(value, "geoQ.geoproperty")?),
            other => return Err(unknown(other, "geoQ")),
        }
    }
    match (georel, geometry, coordinates) {
        (Some(georel), Some(geometry), Some(coordinates)) => Ok(GeoQ { georel, geometry, coordinates, geoproperty }),
        _ => Err(invalid("geoQ needs georel, geometry and coordinates")),
    }
}

impl LdSubscription {
    /// Parses a subscription body (POST) with the request's context; `raw_context` is its body `@context` (null
    /// for the core context). Answers the `id` the body gives (checked to be a URI), if any.
    pub fn parse(
        body: &Value,
        context: &Context,
        raw_context: Value,
    ) -> Result<(Option<String>, LdSubscription), SubscriptionError> {
        let Value::Object(members) = body else { return Err(invalid("a subscription must be a JSON object")) };
        let mut subscription = LdSubscription { is_active: true, context: raw_context.clone(), ..Default::default() };
        let mut id = None;
        for (key, value) in members {
            match key.as_str() {
                "id" => {
                    let given = text(value, "id")?;
                    check_uri("subscription id", given)?;
                    id = Some(given.to_string());
                }
                "type" => {
                    if value != "Subscription" {
                        return Err(invalid("the type of a subscription must be Subscription"));
                    }
                }
                // Shown by GET: accepted and ignored, so a retrieved subscription can be sent back.
                "status" | "createdAt" | "modifiedAt" => {}
                _ => subscription.apply(key, value, context, &raw_context)?,
            }
        }
        if !members.contains_key("notification") {
            return Err(invalid("notification is missing"));
        }
        subscription.check()?;
        Ok((id, subscription))
    }

    /// Applies a PATCH fragment parsed with the request's context: every member given replaces the stored one,
    /// `notification` member by member. A fragment with an `@context` makes it the subscription's context.
    pub fn patch(
        &self,
        fragment: &Value,
        context: &Context,
        raw_context: Value,
    ) -> Result<LdSubscription, SubscriptionError> {
        let Value::Object(members) = fragment else { return Err(invalid("a subscription must be a JSON object")) };
        if members.keys().all(|key| key == "@context") {
            return Err(invalid("the fragment holds nothing to update"));
        }
        let mut updated = self.clone();
        if !raw_context.is_null() {
            updated.context = raw_context.clone();
        }
        for (key, value) in members {
            match key.as_str() {
                "id" | "type" => return Err(invalid(format!("{key} of a subscription cannot be changed"))),
                _ => updated.apply(key, value, context, &raw_context)?,
            }
        }
        updated.check()?;
        Ok(updated)
    }

    /// Sets one top-level member.
    fn apply(&mut self, key: &str, value: &Value, context: &Context, raw: &Value) -> Result<(), SubscriptionError> {
        match key {
            "@context" => {}
            "subscriptionName" => self.name = Some(bounded_text(value, key)?),
            "description" => self.description = Some(bounded_text(value, key)?),
            "entities" => self.entities = parse_entities(context, value)?,
            "watchedAttributes" => self.watched_attributes = names(context, value, key)?,
            "q" => {
                let q = text(value, key)?;
                Query::parse(q, context)?;
                self.q = Some(QText { text: q.to_string(), context: raw.clone() });
            }
            "geoQ" => self.geo_q = Some(parse_geo_q(context, value)?),
            "isActive" => self.is_active = value.as_bool().ok_or_else(|| invalid("isActive must be a boolean"))?,
            "expiresAt" => self.expires_at = Some(date_time(value, key)?),
            "throttling" => match value.as_f64() {
                Some(seconds) if seconds.is_finite() && (0.0..=u32::MAX as f64).contains(&seconds) => {
                    self.throttling_ms = Some((seconds * 1000.0).round() as u64).filter(|ms| *ms > 0)
                }
                _ => return Err(invalid("throttling must be a non-negative number of seconds")),
            },
            "notification" => self.apply_notification(context, value)?,
            "timeInterval"
            | "csf"
            | "temporalQ"
            | "scopeQ"
            | "lang"
            | "notificationTrigger"
            | "datasetId"
            | "jsonKeys" => return Err(not_supported(key)),
            other => return Err(unknown(other, "the subscription")),
        }
        Ok(())
    }

    fn apply_notification(&mut self, context: &Context, value: &Value) -> Result<(), SubscriptionError> {
        let Value::Object(members) = value else { return Err(invalid("notification must be a JSON object")) };
        for (key, value) in members {
            match key.as_str() {
                "attributes" => self.attributes = names(context, value, "notification.attributes")?,
                "format" => {
                    self.format = serde_json::from_value(value.clone())
                        .map_err(|_| invalid("notification.format must be normalized, keyValues or concise"))?
                }
                "endpoint" => self.apply_endpoint(value)?,
                "sysAttrs" | "showChanges" => return Err(not_supported(&format!("notification.{key}"))),
                // Shown by GET: accepted and ignored.
                "status" | "timesSent" | "timesFailed" | "lastNotification" | "lastSuccess" | "lastFailure" => {}
                other => return Err(unknown(other, "notification")),
            }
        }
        Ok(())
    }

    fn apply_endpoint(&mut self, value: &Value) -> Result<(), SubscriptionError> {
        let Value::Object(members) = value else { return Err(invalid("notification.endpoint must be a JSON object")) };
        let mut uri = None;
        for (key, value) in members {
            match key.as_str() {
                "uri" => {
                    let given = text(value, "notification.endpoint.uri")?;
                    if given.len() > MAX_URI {
                        return Err(invalid(format!("notification.endpoint.uri is longer than {MAX_URI} bytes")));
                    }
                    uri = Some(given.to_string());
                }
                "accept" => {
                    self.accept = serde_json::from_value(value.clone()).map_err(|_| {
                        invalid("notification.endpoint.accept must be application/json or application/ld+json")
                    })?
                }
                "receiverInfo" | "notifierInfo" => return Err(not_supported(&format!("notification.endpoint.{key}"))),
                other => return Err(unknown(other, "notification.endpoint")),
            }
        }
        self.uri = uri.ok_or_else(|| invalid("notification.endpoint.uri is missing"))?;
        Ok(())
    }

    /// Checks the whole: a selection, an endpoint URI, and `q` / `geoQ` / patterns that compile.
    fn check(&self) -> Result<(), SubscriptionError> {
        if self.entities.is_empty() && self.watched_attributes.is_empty() {
            return Err(invalid("a subscription needs entities or watchedAttributes"));
        }
        if self.uri.is_empty() {
            return Err(invalid("notification.endpoint is missing"));
        }
        check_uri("notification.endpoint.uri", &self.uri)?;
        self.compile()?;
        Ok(())
    }

    /// The compiled selection.
    pub fn compile(&self) -> Result<Selection, SubscriptionError> {
        let selector = if self.entities.is_empty() {
            None
        } else {
            let ids: Vec<EntityId> = self
                .entities
                .iter()
                .map(|info| EntityId {
                    id: info.id.clone().or_else(|| info.id_pattern.clone()).unwrap_or_default(),
                    entity_type: info.entity_type.clone().unwrap_or_default(),
                    is_pattern: info.id.is_none() && info.id_pattern.is_some(),
                })
                .map(|id| if id.id.is_empty() { EntityId { id: ".*".into(), is_pattern: true, ..id } } else { id })
                .collect();
            Some(EntitySelector::compile(&ids)?)
        };
        let q = match &self.q {
            Some(q) => Some(Query::parse(&q.text, &context_of(&q.context)?)?),
            None => None,
        };
        let geo = match &self.geo_q {
            Some(g) => {
                GeoQuery::parse(Some(&g.georel), Some(&g.geometry), Some(&g.coordinates), g.geoproperty.clone())?
            }
            None => None,
        };
        Ok(Selection { selector, q, geo })
    }

    /// Whether `expiresAt` has passed at `now_ms`.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expires_at.is_some_and(|at| now_ms >= at)
    }

    /// What to notify of an entity: its NGSI-LD view (a `location` point as a GeoProperty, domain metadata as
    /// Properties) projected to `notification.attributes` (all when empty).
    pub fn project(&self, element: &ContextElement) -> ContextElement {
        let mut attributes = view(element);
        if !self.attributes.is_empty() {
            attributes.retain(|a| self.attributes.contains(&a.name));
        }
        ContextElement { entity_id: element.entity_id.clone(), attributes, domain_metadata: Vec::new() }
    }

    /// The subscription's context (the core context when it has none of its own).
    pub fn context(&self) -> Result<Context, ContextError> {
        context_of(&self.context)
    }
}

fn context_of(raw: &Value) -> Result<Context, ContextError> {
    if raw.is_null() {
        Ok(Context::core())
    } else {
        Context::from_body(raw)
    }
}

/// The Notification body (clause 5.3.1) of `elements` (already projected): `id`, `type`, `subscriptionId`,
/// `notifiedAt` and `data`, entities in the subscription's format with names compacted by its context; for
/// `application/ld+json` with the `@context` in the body (the core context URL when it has none).
pub fn notification_body<'a>(
    subscription: &LdSubscription,
    subscription_id: &str,
    notification_id: &str,
    notified_at_ms: i64,
    elements: impl Iterator<Item = &'a ContextElement>,
) -> Value {
    let compactor = match (subscription.accept, subscription.context()) {
        (Accept::LdJson, Ok(context)) => context.compactor(),
        _ => Default::default(),
    };
    let rendering = super::render::Rendering { format: subscription.format.render_format(), ..Default::default() };
    let data: Vec<Value> = elements
        .map(|element| {
            let rendered = super::render::render_entity(element, 0, 0, &rendering);
            render::compact_entity(&compactor, rendered)
        })
        .collect();
    let mut body = Map::new();
    body.insert("id".into(), Value::String(notification_id.to_string()));
    body.insert("type".into(), Value::String("Notification".into()));
    body.insert("subscriptionId".into(), Value::String(subscription_id.to_string()));
    body.insert("notifiedAt".into(), super::render::date_time(notified_at_ms));
    body.insert("data".into(), Value::Array(data));
    if subscription.accept == Accept::LdJson {
        let context = if subscription.context.is_null() {
            Value::String(super::context::CORE_CONTEXT_URL.into())
        } else {
            subscription.context.clone()
        };
        body.insert("@context".into(), context);
    }
    Value::Object(body)
}
