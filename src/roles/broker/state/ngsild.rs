//! NGSI-LD subscriptions on the broker's one subscription engine: create (durable before it answers; an id given
//! by the client must be new, `AlreadyExists` otherwise) and update (PATCH: a new record replaces the old one,
//! its delivery counters carried over). Listing, retrieval and deletion are shared with NGSI10 and NGSIv2
//! ([`BrokerState::subscriptions`], [`BrokerState::subscription`], [`BrokerState::unsubscribe`]). NGSI-LD
//! subscriptions get no initial notification; an expired one is kept (shown `expired`) until deleted.

use super::{BrokerError, BrokerState};
use crate::ngsi::ld::subscription::LdSubscription;
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
