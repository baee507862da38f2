//! Subscriptions of every flavour, NGSI10, NGSIv2 (Orion's `/v2/subscriptions`) and NGSI-LD
//! (`/ngsi-ld/v1/subscriptions`): the durable records, their
//! compiled form (entity selector, scopes or `q`/geo expression, trigger attributes, throttling, expiry) and the
//! decision of which subscriptions a change concerns and with what content. NGSI10 `attributes` filter and
//! project; NGSIv2 `condition.attrs` and NGSI-LD `watchedAttributes` only trigger, and NGSIv2
//! `notification.attrs` and NGSI-LD `notification.attributes` only project; an NGSI-LD subscription fires on its
//! `notificationTrigger`s (entity deletions included, see [`crate::ngsi::ld::subscription::trigger`]) and its
//! notifications carry an [`LdNotice`]; one with a `timeInterval` is not notified of changes (the broker feeds it
//! periodically). Delivery itself belongs to `notifier`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::entities::{has_all_attributes, project, EntityChange};
use crate::ngsi::duration::parse_iso8601;
use crate::ngsi::ld::subscription::{Change, LdNotice, LdSubscription, Selection};
use crate::ngsi::limits;
use crate::ngsi::pattern::EntitySelector;
use crate::ngsi::scope::ScopeFilter;
use crate::ngsi::v1::{ContextElement, SubscribeContextRequest};
use crate::ngsi::v2::geo::GeoQuery;
use crate::ngsi::v2::query::Query;
use crate::ngsi::v2::service_path::{ServicePaths, ROOT};
use crate::ngsi::v2::subscription::{Status, V2Subscription};
use crate::ngsi::ParseError;

/// Who subscribed and how they want notifications, from the subscribe request's headers. Serialized with
/// FogFlow's Go field names, as its `GET /ngsi10/subscription` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Subscriber {
    /// Subscribed by another broker (`User-Agent: lightweight-iot-broker`).
    #[serde(rename = "IsInternal", default)]
    pub is_internal: bool,
    /// `Require-Reliability: true`: retry failed notifications until they succeed.
    #[serde(rename = "RequireReliability", default)]
    pub require_reliability: bool,
    /// This broker's URL.
    #[serde(rename = "BrokerURL", default)]
    pub broker_url: String,
    /// Kept for FogFlow's shape; always empty (pending notifications live in the delivery queue).
    #[serde(rename = "NotifyCache", default)]
    pub notify_cache: Vec<ContextElement>,
    /// `Destination` header: `NGSIv2`, `NGSI-LD`, anything else means NGSIv1.
    #[serde(rename = "DestinationType", default)]
    pub destination_type: String,
    /// `NGSILD-Tenant` header, forwarded on NGSI-LD notifications.
    #[serde(rename = "Tenant", default)]
    pub tenant: String,
    /// `Fiware-Correlator` header: updates carrying the same correlator are not notified (loop prevention).
    #[serde(rename = "Correlator", default)]
    pub correlator: String,
}

/// A subscription as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionRecord {
    /// Subscription id.
    pub id: String,
    /// Tenant (`Fiware-Service`), empty for the default one.
    #[serde(default)]
    pub tenant: String,
    /// The request as received.
    pub request: SubscribeContextRequest,
    /// Who subscribed.
    pub subscriber: Subscriber,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// Expiry time, ms since the epoch, from `duration`.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// An NGSIv2 subscription's own fields (then `request` holds its entities and URL only); absent for NGSI10
    /// (and in records stored before NGSIv2 subscriptions existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v2: Option<V2Subscription>,
    /// An NGSI-LD subscription's own fields (then `request` holds its endpoint URI only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ld: Option<LdSubscription>,
}

impl SubscriptionRecord {
    /// The record of an NGSIv2 subscription.
    pub fn v2(id: String, tenant: String, subscriber: Subscriber, created_at: i64, v2: V2Subscription) -> Self {
        let request =
            SubscribeContextRequest { entities: v2.entity_ids(), reference: v2.url.clone(), ..Default::default() };
        SubscriptionRecord { id, tenant, request, subscriber, created_at, expires_at: None, v2: Some(v2), ld: None }
    }

    /// The record of an NGSI-LD subscription.
    pub fn ld(id: String, tenant: String, subscriber: Subscriber, created_at: i64, ld: LdSubscription) -> Self {
        let request = SubscribeContextRequest { reference: ld.uri.clone(), ..Default::default() };
        SubscriptionRecord { id, tenant, request, subscriber, created_at, expires_at: None, v2: None, ld: Some(ld) }
    }
}

/// The compiled `expression` and service paths of an NGSIv2 subscription.
#[derive(Debug)]
struct V2Filter {
    q: Option<Query>,
    geo: Option<GeoQuery>,
    paths: ServicePaths,
}

/// What to notify a subscription of one change.
#[derive(Debug)]
pub struct Notified<'c> {
    /// The element, selected and projected the subscription's way.
    pub element: ContextElement,
    /// What an NGSI-LD notification adds to it (times, deletions, previous values), when anything.
    pub notice: Option<Box<LdNotice>>,
    /// The service path of the entity.
    pub service_path: &'c str,
}

/// A subscription ready to match changes.
#[derive(Debug)]
pub struct CompiledSubscription {
    /// The record.
    pub record: SubscriptionRecord,
    selector: EntitySelector,
    scopes: ScopeFilter,
    triggers: Vec<String>,
    v2: Option<V2Filter>,
    ld: Option<Selection>,
    /// Minimum interval between two notifications.
    pub throttling: Option<Duration>,
}

/// Validates a subscribe request; returns the expiry duration, if any.
pub fn validate_request(request: &SubscribeContextRequest) -> Result<Option<Duration>, ParseError> {
    EntitySelector::compile(&request.entities)?;
    ScopeFilter::compile(request.restriction.as_ref())?;
    for name in &request.attributes {
        limits::check_name("attribute name", name)?;
    }
    for condition in &request.notify_conditions {
        for name in &condition.cond_value_list {
            limits::check_name("condValueList attribute", name)?;
        }
    }
    validate_reference(&request.reference)?;
    if !request.throttling.is_empty() {
        parse_iso8601("throttling", &request.throttling)?;
    }
    if request.duration.is_empty() {
        return Ok(None);
    }
    let duration = parse_iso8601("duration", &request.duration)?;
    if duration.is_zero() {
        return Err(ParseError::new("duration must be longer than zero"));
    }
    Ok(Some(duration))
}

/// Checks a notification URL: `http://` or `https://` with a host, at most 2048 characters.
pub fn validate_reference(reference: &str) -> Result<(), ParseError> {
    if reference.is_empty() {
        return Err(ParseError::new("reference is missing: give the URL notifications are sent to"));
    }
    if reference.len() > 2048 {
        return Err(ParseError::new("reference is longer than 2048 characters"));
    }
    let uri: http::Uri =
        reference.parse().map_err(|_| ParseError::new(format!("reference `{reference}` is not a valid URL")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(ParseError::new(format!("reference `{reference}` must be an http:// or https:// URL")));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(ParseError::new(format!("reference `{reference}` has no host")));
    }
    Ok(())
}

impl CompiledSubscription {
    /// Compiles a stored record (validated when it was created).
    pub fn compile(record: SubscriptionRecord) -> Result<Self, ParseError> {
        if let Some(ld) = &record.ld {
            let selection = ld.compile().map_err(|error| ParseError::new(error.to_string()))?;
            let triggers = ld.watched_attributes.clone();
            let throttling = ld.throttling_ms.map(Duration::from_millis);
            let (selector, scopes) = (EntitySelector::default(), ScopeFilter::compile(None)?);
            return Ok(CompiledSubscription {
                record,
                selector,
                scopes,
                triggers,
                v2: None,
                ld: Some(selection),
                throttling,
            });
        }
        if let Some(v2) = &record.v2 {
            let selector = v2.selector()?;
            let filter = V2Filter { q: v2.query()?, geo: v2.geo()?, paths: v2.service_paths()? };
            let triggers = v2.condition_attrs.clone();
            let throttling = v2.throttling.map(Duration::from_secs);
            let scopes = ScopeFilter::compile(None)?;
            return Ok(CompiledSubscription {
                record,
                selector,
                scopes,
                triggers,
                v2: Some(filter),
                ld: None,
                throttling,
            });
        }
        let selector = EntitySelector::compile(&record.request.entities)?;
        let scopes = ScopeFilter::compile(record.request.restriction.as_ref())?;
        let triggers =
            record.request.notify_conditions.iter().flat_map(|c| c.cond_value_list.iter().cloned()).collect();
        let throttling = if record.request.throttling.is_empty() {
            None
        } else {
            Some(parse_iso8601("throttling", &record.request.throttling)?).filter(|d| !d.is_zero())
        };
        Ok(CompiledSubscription { record, selector, scopes, triggers, v2: None, ld: None, throttling })
    }

    /// Whether the subscription has expired at `now_ms` (NGSI10 `duration`, NGSIv2 `expires`, NGSI-LD
    /// `expiresAt`).
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.record.expires_at.is_some_and(|expires| now_ms >= expires)
            || self.record.v2.as_ref().is_some_and(|v2| v2.is_expired(now_ms))
            || self.record.ld.as_ref().is_some_and(|ld| ld.is_expired(now_ms))
    }

    /// Whether the subscription must be removed at `now_ms`: an expired NGSI10 subscription (an expired NGSIv2
    /// one is kept and shown as `expired`, as Orion does).
    pub fn must_be_removed(&self, now_ms: i64) -> bool {
        self.record.expires_at.is_some_and(|expires| now_ms >= expires)
    }

    /// Whether an NGSIv2 subscription is set `inactive` or an NGSI-LD one is not `isActive` (NGSI10
    /// subscriptions are always active).
    fn is_inactive(&self) -> bool {
        self.record.v2.as_ref().is_some_and(|v2| v2.status == Status::Inactive)
            || self.record.ld.as_ref().is_some_and(|ld| !ld.is_active)
    }

    /// The period of an NGSI-LD subscription with `timeInterval`: notified with the current state of what it
    /// selects every period, never of changes.
    pub fn period(&self) -> Option<Duration> {
        self.record.ld.as_ref().and_then(|ld| ld.time_interval_ms).map(Duration::from_millis)
    }

    /// Whether it notifies creations and updates only, with its own projection (NGSIv2 and NGSI-LD).
    fn notifies_current_state(&self) -> bool {
        self.record.v2.is_some() || self.record.ld.is_some()
    }

    /// The element to notify of an entity in this state (living in service path `path`), given the changed
    /// attributes: selection, then the projection of the subscription's flavour; None when the entity is not
    /// selected or the subscription is inactive or expired.
    pub fn current(
        &self,
        tenant: &str,
        path: &str,
        element: &ContextElement,
        changed: &[String],
    ) -> Option<ContextElement> {
        if self.is_inactive() || self.is_expired(chrono::Utc::now().timestamp_millis()) {
            return None;
        }
        if !self.selects(tenant, path, element) {
            return None;
        }
        Some(match (&self.record.v2, &self.record.ld) {
            (Some(v2), _) => v2.project(element, changed),
            (None, Some(ld)) => ld.project(element),
            (None, None) => project(element, &self.record.request.attributes),
        })
    }

    /// Whether an entity in this state, living in service path `path`, is selected (ids, type, attributes,
    /// scopes; an NGSIv2 subscription's service paths).
    pub fn selects(&self, tenant: &str, path: &str, element: &ContextElement) -> bool {
        if let Some(ld) = &self.ld {
            return tenant == self.record.tenant && ld.selects(element);
        }
        tenant == self.record.tenant
            && self.selector.matches(&element.entity_id.id, &element.entity_id.entity_type)
            && has_all_attributes(element, &self.record.request.attributes)
            && self.scopes.matches(element)
            && self.v2.as_ref().is_none_or(|v2| {
                v2.paths.matches(path)
                    && v2.q.as_ref().is_none_or(|q| q.matches(element))
                    && v2.geo.as_ref().is_none_or(|g| g.matches(element))
            })
    }

    /// What to notify for `change`, or None when this subscription is not concerned.
    pub fn notification_for<'c>(
        &self,
        tenant: &str,
        change: &'c EntityChange,
        correlator: Option<&str>,
    ) -> Option<Notified<'c>> {
        let own = self.record.subscriber.correlator.as_str();
        if (!own.is_empty() && correlator == Some(own)) || self.period().is_some() {
            return None;
        }
        if let Some(ld) = &self.record.ld {
            return self.ld_notification_for(tenant, ld, change);
        }
        if !self.triggers.is_empty() && !change.touched.iter().any(|name| self.triggers.contains(name)) {
            return None;
        }
        if self.notifies_current_state() {
            // NGSIv2 subscriptions are notified of creations and updates, not of deletions (as Orion by default).
            let after = change.after.as_ref()?;
            let element = self.current(tenant, &after.service_path, &after.element, &change.touched)?;
            return Some(Notified { element, notice: None, service_path: &after.service_path });
        }
        let (element, service_path) = match (&change.after, &change.before) {
            (Some(after), _) => self
                .selects(tenant, &after.service_path, &after.element)
                .then(|| (project(&after.element, &self.record.request.attributes), after.service_path.as_str()))?,
            (None, Some(before)) => self.selects(tenant, &before.service_path, &before.element).then(|| {
                let element =
                    ContextElement { entity_id: before.element.entity_id.clone(), ..ContextElement::default() };
                (element, before.service_path.as_str())
            })?,
            (None, None) => return None,
        };
        Some(Notified { element, notice: None, service_path })
    }

    /// What to notify an NGSI-LD subscription for `change`: when it fires one of its `notificationTrigger`s
    /// (`watchedAttributes` applied) and the entity is selected (after the change; before it when deleted), the
    /// entity projected (a deleted one by its id and type alone) with its notice.
    fn ld_notification_for<'c>(
        &self,
        tenant: &str,
        ld: &LdSubscription,
        change: &'c EntityChange,
    ) -> Option<Notified<'c>> {
        let seen = Change {
            before: change.before.as_ref().map(|before| &before.element),
            after: change.after.as_ref().map(|after| &after.element),
            touched: &change.touched,
        };
        if !ld.is_triggered_by(&seen) {
            return None;
        }
        let now = chrono::Utc::now().timestamp_millis();
        if self.is_inactive() || self.is_expired(now) {
            return None;
        }
        let state = change.after.as_ref().or(change.before.as_ref())?;
        if !self.selects(tenant, &state.service_path, &state.element) {
            return None;
        }
        let element = match &change.after {
            Some(after) => ld.project(&after.element),
            None => ContextElement {
                entity_id: state.element.entity_id.clone(),
                extra_types: state.element.extra_types.clone(),
                ..ContextElement::default()
            },
        };
        let notice = ld.notice(&seen, state.created_at, state.modified_at, now);
        Some(Notified { element, notice, service_path: &state.service_path })
    }

    /// The element to relay for one received from another broker (`notifyContext`): the same selection,
    /// attribute filter, projection, scopes and trigger attributes as a local change, with the received
    /// element as the entity's state and its attributes as the changed ones, in the root service path.
    pub fn relay_for(&self, tenant: &str, element: &ContextElement) -> Option<ContextElement> {
        if self.period().is_some() {
            return None;
        }
        if let Some(ld) = &self.record.ld {
            // An update of the attributes received (whether it created them is not known here).
            let changed: Vec<String> = element.attributes.iter().map(|a| a.name.clone()).collect();
            let seen = Change { before: Some(element), after: Some(element), touched: &changed };
            if !ld.is_triggered_by(&seen) {
                return None;
            }
            return self.current(tenant, ROOT, element, &changed);
        }
        if !self.triggers.is_empty() && !element.attributes.iter().any(|a| self.triggers.contains(&a.name)) {
            return None;
        }
        if self.notifies_current_state() {
            let changed: Vec<String> = element.attributes.iter().map(|a| a.name.clone()).collect();
            return self.current(tenant, ROOT, element, &changed);
        }
        self.selects(tenant, ROOT, element).then(|| project(element, &self.record.request.attributes))
    }
}

/// The live subscriptions, by id.
#[derive(Debug, Default)]
pub struct SubscriptionTable<T> {
    entries: RwLock<HashMap<String, Arc<T>>>,
}

impl<T> SubscriptionTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        SubscriptionTable { entries: RwLock::new(HashMap::new()) }
    }

    /// Adds or replaces an entry.
    pub fn insert(&self, id: String, entry: Arc<T>) {
        self.entries.write().unwrap_or_else(|p| p.into_inner()).insert(id, entry);
    }

    /// Adds or replaces an entry and calls `then` on it before any [`SubscriptionTable::for_each`] can see it, so
    /// what `then` queues comes before anything a concurrent change queues for the new entry (`then` must not
    /// block or re-enter).
    pub fn insert_then(&self, id: String, entry: Arc<T>, then: impl FnOnce(&Arc<T>)) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        entries.insert(id.clone(), entry);
        if let Some(entry) = entries.get(&id) {
            then(entry);
        }
    }

    /// Removes an entry.
    pub fn remove(&self, id: &str) -> Option<Arc<T>> {
        self.entries.write().unwrap_or_else(|p| p.into_inner()).remove(id)
    }

    /// One entry.
    pub fn get(&self, id: &str) -> Option<Arc<T>> {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    /// Calls `visit` on every entry while holding the read lock (`visit` must not block or re-enter).
    pub fn for_each(&self, mut visit: impl FnMut(&Arc<T>)) {
        for entry in self.entries.read().unwrap_or_else(|p| p.into_inner()).values() {
            visit(entry);
        }
    }

    /// A snapshot of every entry.
    pub fn all(&self) -> Vec<Arc<T>> {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
