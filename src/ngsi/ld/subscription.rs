//! NGSI-LD subscriptions (ETSI GS CIM 009 clauses 5.2.12 Subscription, 5.2.14 NotificationParams, 5.3.1
//! Notification): parsing and validation of a subscription body or PATCH fragment against the request's
//! `@context`, the stored form, its compiled selection (`entities`, `q`, `geoQ`), the projection of a notified
//! entity (`notification.attributes`), which changes fire it ([`trigger`]: `notificationTrigger`,
//! `watchedAttributes`) and the Notification body ([`notification_body`]: `format` normalized, keyValues or
//! concise, names compacted with the subscription's `@context`, `showChanges`, `sysAttrs`, deletions). Parsing
//! member by member is in `parse`, rendering back in [`render`]. Pure: no I/O.
//!
//! Names (entity types, `watchedAttributes`, `notification.attributes`, `geoQ.geoproperty`) are stored canonical
//! (see [`super::context`]); `q` is stored as written with the context it was written in, and compiled again
//! from both. A `timeInterval` (periodic notification, at least [`MIN_TIME_INTERVAL_MS`]) excludes
//! `watchedAttributes` and `throttling`; `showChanges` excludes the `keyValues` format. `csf`, `temporalQ`,
//! `scopeQ`, `datasetId`, `jsonKeys` and `notification.endpoint.receiverInfo` / `notifierInfo` are refused with
//! [`SubscriptionError::NotSupported`].

mod notification;
mod parse;
pub mod render;
#[cfg(test)]
mod tests;
pub mod trigger;
#[cfg(test)]
mod trigger_tests;

pub use self::notification::{notification_body, NGSI_LD_NULL};
pub use self::trigger::{Change, LdNotice, Trigger, Triggers};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::context::{Context, ContextError};
use super::geo::GeoQuery;
use super::query::Query;
use super::render::{view, Format};
use crate::ngsi::pattern::EntitySelector;
use crate::ngsi::v1::{ContextElement, EntityId};
use crate::ngsi::ParseError;

/// Most entities, or attribute names, in one list of a subscription.
pub const MAX_LIST: usize = 100;
/// Longest `description` or `subscriptionName`.
const MAX_TEXT: usize = 1024;
/// Longest endpoint URI.
const MAX_URI: usize = 2048;
/// Shortest `timeInterval` (ms): a periodic subscription reads every entity it selects at each period.
pub const MIN_TIME_INTERVAL_MS: u64 = 1000;

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

/// An NGSI-LD subscription as stored (its id and tenant are the broker record's). The default is active.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// `timeInterval`, ms: notified periodically with the current state of what it selects, not on changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_interval_ms: Option<u64>,
    /// `notificationTrigger` (the spec's default `attributeCreated` + `attributeUpdated` when absent).
    #[serde(default)]
    pub notification_trigger: Triggers,
    /// `notification.showChanges`: updated and deleted attributes carry their previous value.
    #[serde(default, skip_serializing_if = "is_false")]
    pub show_changes: bool,
    /// `notification.sysAttrs`: notified entities carry `createdAt` / `modifiedAt` (and `deletedAt`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub sys_attrs: bool,
    /// `lang`: the language filter of notifications (as `lang` on queries: each LanguageProperty notified as a
    /// Property in the language it picks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// The subscription's `@context` with no remote URL left (null: the core context): the body `@context`, or
    /// the inline equivalent of the remote contexts it named, resolved when it was written. Used to compact
    /// notifications (and to compile `q`), so notifying never fetches anything.
    #[serde(default)]
    pub context: Value,
    /// The `@context` as the client wrote it when it named remote contexts (a `Link` URL, or a body `@context`
    /// with URLs), echoed in notifications (null: `context` is echoed).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub written_context: Value,
}

fn yes() -> bool {
    true
}

fn is_false(value: &bool) -> bool {
    !value
}

impl Default for LdSubscription {
    fn default() -> Self {
        LdSubscription {
            name: None,
            description: None,
            entities: Vec::new(),
            watched_attributes: Vec::new(),
            q: None,
            geo_q: None,
            attributes: Vec::new(),
            format: NotificationFormat::default(),
            uri: String::new(),
            accept: Accept::default(),
            is_active: true,
            expires_at: None,
            throttling_ms: None,
            time_interval_ms: None,
            notification_trigger: Triggers::default(),
            show_changes: false,
            sys_attrs: false,
            lang: None,
            context: Value::Null,
            written_context: Value::Null,
        }
    }
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
        self.selector.as_ref().is_none_or(|s| element.types().any(|t| s.matches(&element.entity_id.id, t)))
            && self.q.as_ref().is_none_or(|q| q.matches(element))
            && self.geo.as_ref().is_none_or(|g| g.matches(element))
    }
}

impl LdSubscription {
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
        ContextElement {
            entity_id: element.entity_id.clone(),
            attributes,
            domain_metadata: Vec::new(),
            extra_types: element.extra_types.clone(),
        }
    }

    /// The subscription's context (the core context when it has none of its own).
    pub fn context(&self) -> Result<Context, ContextError> {
        context_of(&self.context)
    }

    /// The context URL to name in the `Link` header of `application/json` notifications: the remote context the
    /// subscription was written with, when it was one URL (`None`: the core context).
    pub fn context_link(&self) -> Option<&str> {
        self.written_context.as_str().filter(|url| !super::context::is_core_context(url))
    }

    /// The `@context` of `application/ld+json` notifications: as written, else the core context URL.
    fn echoed_context(&self) -> Value {
        match (&self.written_context, &self.context) {
            (Value::Null, Value::Null) => Value::String(super::context::CORE_CONTEXT_URL.into()),
            (Value::Null, context) => context.clone(),
            (written, _) => written.clone(),
        }
    }
}

fn context_of(raw: &Value) -> Result<Context, ContextError> {
    if raw.is_null() {
        Ok(Context::core())
    } else {
        Context::from_body(raw)
    }
}
