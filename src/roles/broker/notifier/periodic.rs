//! Periodic notification (NGSI-LD subscriptions with `timeInterval`, ETSI GS CIM 009 clause 5.2.12): a timer task
//! per subscription asks the broker, every period, for the current state of what the subscription selects and
//! queues it on the subscription's delivery in one go, so it leaves in as few notifications as the batch size
//! allows. The delivery is the usual bounded one (coalescing per entity: a subscriber slower than the period gets
//! each entity's latest state once), so a periodic subscription never blocks another. The timer stops when the
//! delivery is cancelled (the subscription deleted or replaced, or shutdown) or when the broker answers
//! [`Tick::Stop`] (paused, expired, gone). The first notification comes one period after the timer starts.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use super::{Delivery, Notifier, Pending};
use crate::ngsi::ld::subscription::LdNotice;
use crate::ngsi::v1::ContextElement;
use crate::roles::broker::entities::StoredEntity;

/// One element to queue: the element, the stored entity it was projected from, and what its NGSI-LD notification
/// adds.
pub type Queued = (ContextElement, Arc<StoredEntity>, Option<Box<LdNotice>>);

/// What to do at one period of a periodic subscription.
#[derive(Debug)]
pub enum Tick {
    /// Notify these elements (each with the stored entity it was projected from and what its NGSI-LD notification
    /// adds); nothing when empty.
    Send(Vec<Queued>),
    /// Stop the timer for good.
    Stop,
}

impl Delivery {
    /// Queues several elements at once (coalesced per entity, bounded as [`Delivery::push`]) and wakes the task
    /// once, so they are sent together.
    pub fn push_all(&self, elements: Vec<Queued>) {
        if self.is_disabled() || elements.is_empty() {
            return;
        }
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        for (element, entity, notice) in elements {
            let service_path = entity.service_path.clone();
            self.enqueue(&mut queue, Pending { element, notice, correlator: None, service_path, entity: Some(entity) });
        }
        drop(queue);
        self.wake.notify_one();
    }
}

impl Notifier {
    /// Starts the timer of a periodic subscription: every `period` (the first one period from now), `tick` says
    /// what to queue on `delivery`, or to stop.
    pub fn start_periodic(
        &self,
        delivery: Arc<Delivery>,
        period: Duration,
        mut tick: impl FnMut() -> Tick + Send + 'static,
    ) {
        let cancel = delivery.cancel.clone();
        self.tasks.spawn(async move {
            let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = timer.tick() => {}
                    () = cancel.cancelled() => return,
                }
                match tick() {
                    Tick::Send(elements) => delivery.push_all(elements),
                    Tick::Stop => return,
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::config::NotificationConfig;
    use crate::ngsi::ld::subscription::LdSubscription;
    use crate::ngsi::v1::EntityId;
    use crate::roles::broker::notifier::NotifierMetrics;
    use crate::roles::broker::subscriptions::{Subscriber, SubscriptionRecord};

    fn element(id: &str) -> Queued {
        let entity_id = EntityId { id: id.into(), ..EntityId::default() };
        let element = ContextElement { entity_id, ..ContextElement::default() };
        let entity = StoredEntity {
            tenant: String::new(),
            element: element.clone(),
            service_path: "/".into(),
            created_at: 1,
            modified_at: 1,
            attribute_times: Vec::new(),
        };
        (element, Arc::new(entity), None)
    }

    /// Waits (at most 5 s) until `check` holds.
    async fn eventually(what: &str, check: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !check() {
            assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn the_timer_queues_what_the_broker_gives_each_period_until_told_to_stop() {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let config = NotificationConfig { queue_capacity: 10, ..NotificationConfig::default() };
        let tasks = tokio_util::task::TaskTracker::new();
        let notifier = Notifier::new(&config, NotifierMetrics::default(), tasks.clone(), shutdown.clone());
        let ld =
            LdSubscription { time_interval_ms: Some(1000), uri: "http://127.0.0.1:9/n".into(), ..Default::default() };
        let record = SubscriptionRecord::ld("urn:s".into(), String::new(), Subscriber::default(), 0, ld);
        let started = notifier.start(&record, None);
        assert!(started.coalesce, "a periodic subscription keeps the latest state per entity");
        started.cancel.cancel();
        // A delivery with no task sending: what is queued stays queued, to be counted.
        let delivery = Arc::new(Delivery { cancel: shutdown.child_token(), ..idle_like(&started) });
        let ticks = Arc::new(AtomicUsize::new(0));
        let counted = ticks.clone();
        let period = Duration::from_millis(200);
        notifier.start_periodic(delivery.clone(), period, move || match counted.fetch_add(1, Ordering::SeqCst) {
            0 | 1 => Tick::Send(vec![element("urn:a"), element("urn:b")]),
            _ => Tick::Stop,
        });
        assert_eq!(ticks.load(Ordering::SeqCst), 0, "nothing before one period");
        eventually("the first period", || ticks.load(Ordering::SeqCst) >= 1).await;
        assert_eq!(delivery.status().pending, 2);
        eventually("the second period", || ticks.load(Ordering::SeqCst) >= 2).await;
        assert_eq!(delivery.status().pending, 2, "coalesced per entity");
        eventually("the stop", || ticks.load(Ordering::SeqCst) >= 3).await;
        tokio::time::sleep(period * 3).await;
        assert_eq!(ticks.load(Ordering::SeqCst), 3, "stopped when told");

        let cancelled = Arc::new(Delivery { cancel: shutdown.child_token(), ..idle_like(&started) });
        let never = Arc::new(AtomicUsize::new(0));
        let counted = never.clone();
        notifier.start_periodic(cancelled.clone(), period, move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Tick::Send(Vec::new())
        });
        cancelled.cancel.cancel();
        tokio::time::sleep(period * 3).await;
        assert_eq!(never.load(Ordering::SeqCst), 0, "a cancelled delivery stops its timer");
        shutdown.cancel();
        tasks.close();
        tasks.wait().await;
    }

    /// A delivery like `of` with no task reading its queue.
    fn idle_like(of: &Delivery) -> Delivery {
        Delivery {
            subscription_id: of.subscription_id.clone(),
            queue: Default::default(),
            status: Default::default(),
            wake: Default::default(),
            cancel: Default::default(),
            coalesce: of.coalesce,
            capacity: of.capacity,
            metrics: of.metrics.clone(),
            max_fails: None,
            disabled: Default::default(),
        }
    }
}
