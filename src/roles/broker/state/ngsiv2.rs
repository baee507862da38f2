//! NGSIv2 subscriptions on the broker's one subscription engine: create (durable, then the initial notification
//! unless skipped), update (PATCH: a new record replaces the old one, its delivery counters carried over), and
//! the automatic deactivation of a subscription whose delivery reached `maxFailsLimit`. Listing, retrieval and
//! deletion are shared with NGSI10 ([`BrokerState::subscription`], [`BrokerState::unsubscribe`]).

use std::sync::Arc;

use super::{BrokerError, BrokerState, LiveSubscription};
use crate::ngsi::v1::ContextElement;
use crate::ngsi::v2::subscription::{Status, V2Subscription};
use crate::ngsi::ParseError;
use crate::roles::broker::subscriptions::{validate_reference, CompiledSubscription, Subscriber, SubscriptionRecord};

impl BrokerState {
    /// Creates an NGSIv2 subscription (durable before this returns) and, unless `skip_initial`, queues the
    /// current state of what it selects. Answers its id.
    pub async fn subscribe_v2(
        &self,
        tenant: &str,
        subscription: V2Subscription,
        skip_initial: bool,
    ) -> Result<String, BrokerError> {
        validate_reference(&subscription.url)?;
        let subscriber = Subscriber { broker_url: self.broker_url.clone(), ..Subscriber::default() };
        let id = uuid::Uuid::new_v4().simple().to_string();
        let now = chrono::Utc::now().timestamp_millis();
        let record = SubscriptionRecord::v2(id.clone(), tenant.to_string(), subscriber, now, subscription);
        let compiled = CompiledSubscription::compile(record.clone())?;
        self.subscription_tree.insert(&record.id, &record)?;
        self.store.commit().await?;
        self.activate_then(compiled, |live| {
            if skip_initial {
                return;
            }
            let current: Vec<(ContextElement, String)> = self
                .entities
                .list(tenant)
                .iter()
                .filter_map(|entity| {
                    let changed: Vec<String> = entity.element.attributes.iter().map(|a| a.name.clone()).collect();
                    let element = live.compiled.current(tenant, &entity.service_path, &entity.element, &changed)?;
                    Some((element, entity.service_path.clone()))
                })
                .collect();
            if !current.is_empty() {
                live.delivery.push_initial(current);
            }
        });
        self.refresh_gauges();
        tracing::debug!(subscription = %id, "NGSIv2 subscription created");
        Ok(id)
    }

    /// Replaces an NGSIv2 subscription of `tenant` by what `edit` makes of it; false when there is no such
    /// NGSIv2 subscription. Its delivery counters are kept (consecutive failures are reset when it becomes
    /// active again); pending notifications of the old version are dropped.
    pub async fn update_v2(
        &self,
        tenant: &str,
        id: &str,
        edit: impl FnOnce(&V2Subscription) -> Result<V2Subscription, ParseError>,
    ) -> Result<bool, BrokerError> {
        let Some(live) = self.subscription(tenant, id) else { return Ok(false) };
        let Some(current) = &live.compiled.record.v2 else { return Ok(false) };
        let updated = edit(current)?;
        validate_reference(&updated.url)?;
        let was_stopped = current.status == Status::Inactive || live.delivery.is_disabled();
        let reset_fails = was_stopped && updated.status == Status::Active;
        let old = &live.compiled.record;
        let record =
            SubscriptionRecord::v2(old.id.clone(), old.tenant.clone(), old.subscriber.clone(), old.created_at, updated);
        self.replace_subscription(&live, record, reset_fails).await?;
        Ok(true)
    }

    /// Marks an NGSIv2 subscription whose delivery stopped at `maxFailsLimit` inactive (durably).
    pub(super) async fn deactivate_failed(&self, live: &Arc<LiveSubscription>) {
        let record = &live.compiled.record;
        if record.v2.as_ref().is_none_or(|v2| v2.status == Status::Inactive) {
            return;
        }
        let deactivate = |v2: &V2Subscription| Ok(V2Subscription { status: Status::Inactive, ..v2.clone() });
        match self.update_v2(&record.tenant, &record.id, deactivate).await {
            Ok(_) => tracing::info!(subscription = %record.id, "maxFailsLimit reached: subscription set inactive"),
            Err(error) => {
                tracing::warn!(subscription = %record.id, %error, "cannot set a failing subscription inactive yet")
            }
        }
    }

    /// Whether the subscription's delivery is stopped, or it is set inactive (for its shown `status`).
    pub fn is_stopped(live: &LiveSubscription) -> bool {
        live.delivery.is_disabled() || live.compiled.record.v2.as_ref().is_some_and(|v2| v2.status == Status::Inactive)
    }
}
