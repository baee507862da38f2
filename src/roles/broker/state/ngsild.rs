//! NGSI-LD subscriptions on the broker's one subscription engine: create (durable before it answers; an id given
//! by the client must be new, `AlreadyExists` otherwise) and update (PATCH: a new record replaces the old one,
//! its delivery counters carried over). Listing, retrieval and deletion are shared with NGSI10 and NGSIv2
//! ([`BrokerState::subscriptions`], [`BrokerState::subscription`], [`BrokerState::unsubscribe`]). NGSI-LD
//! subscriptions get no initial notification; an expired one is kept (shown `expired`) until deleted. A
//! subscription with `timeInterval` is fed by a timer ([`BrokerState::notify_periodically`]) with the current
//! state of every entity it selects, started whenever it is activated: on creation, on a PATCH (which replaces
//! the delivery, stopping the old timer) and on a restart.

use std::sync::Arc;
use std::time::Duration;

use super::{BrokerError, BrokerState};
use crate::ngsi::ld::subscription::LdSubscription;
use crate::roles::broker::notifier::{Delivery, Tick};
use crate::roles::broker::subscriptions::{validate_reference, CompiledSubscription, Subscriber, SubscriptionRecord};

impl BrokerState {
    /// Creates an NGSI-LD subscription with the given id (a fresh `urn:ngsi-ld:Subscription:<uuid>` when none);
    /// answers its id. Subscription ids are unique across tenants.
    pub async fn subscribe_ld(
        &self,
        tenant: &str,
        id: Option<String>,
        subscription: LdSubscription,
    ) -> Result<String, BrokerError> {
        validate_reference(&subscription.uri)?;
        let id = id.unwrap_or_else(|| format!("urn:ngsi-ld:Subscription:{}", uuid::Uuid::new_v4()));
        let _creating = self.ld_creation.lock().await;
        if self.subscriptions.get(&id).is_some() || self.subscription_tree.get(&id)?.is_some() {
            return Err(BrokerError::AlreadyExists(format!("subscription `{id}` already exists")));
        }
        let subscriber = Subscriber { broker_url: self.broker_url.clone(), ..Subscriber::default() };
        let now = chrono::Utc::now().timestamp_millis();
        let record = SubscriptionRecord::ld(id.clone(), tenant.to_string(), subscriber, now, subscription);
        let compiled = CompiledSubscription::compile(record.clone())?;
        self.subscription_tree.insert(&record.id, &record)?;
        self.store.commit().await?;
        self.activate(compiled);
        self.refresh_gauges();
        tracing::debug!(subscription = %id, "NGSI-LD subscription created");
        Ok(id)
    }

    /// Replaces an NGSI-LD subscription of `tenant` by what `edit` makes of it; `Ok(Ok(false))` when there is no
    /// such NGSI-LD subscription, `Ok(Err(_))` with `edit`'s refusal (nothing changed). Its delivery counters are
    /// kept; pending notifications of the old version are dropped.
    pub async fn update_ld<E>(
        &self,
        tenant: &str,
        id: &str,
        edit: impl FnOnce(&LdSubscription) -> Result<LdSubscription, E>,
    ) -> Result<Result<bool, E>, BrokerError> {
        let Some(live) = self.subscription(tenant, id) else { return Ok(Ok(false)) };
        let Some(current) = &live.compiled.record.ld else { return Ok(Ok(false)) };
        let updated = match edit(current) {
            Ok(updated) => updated,
            Err(refusal) => return Ok(Err(refusal)),
        };
        validate_reference(&updated.uri)?;
        let old = &live.compiled.record;
        let record =
            SubscriptionRecord::ld(old.id.clone(), old.tenant.clone(), old.subscriber.clone(), old.created_at, updated);
        self.replace_subscription(&live, record, false).await?;
        Ok(Ok(true))
    }
}

impl BrokerState {
    /// Starts the timer of periodic subscription `id` (its delivery `delivery`): every `period`, the current state
    /// of each entity it selects (`entities`, `q`, `geoQ`), projected to its `notification.attributes`, in
    /// creation order. The timer stops once the subscription is gone, replaced (another delivery), paused or
    /// expired, or the broker is dropped.
    pub(super) fn notify_periodically(&self, id: String, delivery: Arc<Delivery>, period: Duration) {
        let state = Arc::downgrade(&self.0);
        let fed = delivery.clone();
        self.notifier.start_periodic(delivery, period, move || {
            let Some(state) = state.upgrade() else { return Tick::Stop };
            let Some(live) = state.subscriptions.get(&id) else { return Tick::Stop };
            let Some(ld) = &live.compiled.record.ld else { return Tick::Stop };
            let now = chrono::Utc::now().timestamp_millis();
            if !Arc::ptr_eq(&live.delivery, &fed) || !ld.is_active || live.compiled.is_expired(now) {
                return Tick::Stop;
            }
            let tenant = &live.compiled.record.tenant;
            // Only the entities of the types named, when every `entities` item names one.
            let types: Option<Vec<String>> = ld.entities.iter().map(|info| info.entity_type.clone()).collect();
            let types = types.filter(|types| !types.is_empty());
            let selected = state.entities.select_in_creation_order(
                tenant,
                types.as_deref(),
                |entity| live.compiled.selects(tenant, &entity.service_path, &entity.element),
                None,
            );
            Tick::Send(
                selected
                    .iter()
                    .filter_map(|entity| {
                        let element = live.compiled.current(tenant, &entity.service_path, &entity.element, &[])?;
                        let notice = ld.state_notice(entity.created_at, entity.modified_at);
                        Some((element, entity.clone(), notice))
                    })
                    .collect(),
            )
        });
    }
}
