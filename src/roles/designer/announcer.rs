//! Publishes service intents to the master (`ServiceIntent` on `orchestration.`, `From: "designer"`) in the
//! order the designer acknowledged the changes, from one background task.
//!
//! An announcement that belongs to an acknowledged change sits in the store's outbox (written in the same
//! commit as the change) until the bus takes it, so it survives a crash; while the bus answers `Unroutable`
//! (the master's queue does not exist yet) or is disconnected, the task retries the head of the line with a
//! capped backoff, so an ADD is never overtaken by the DELETE that follows it. At start the outbox is replayed
//! first, then every stored intent and the intent of every enabled fog function is announced again (the master
//! treats a repeated identical ADD as a no-op).
//!
//! Owns: the announcement queue and its task. Must not: decide what to announce (the API does) or touch the
//! registry trees.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::store::DesignerStore;
use crate::bus::envelope::keys;
use crate::bus::{Bus, BusError, Envelope, MessageType};
use crate::model::{IntentAction, ServiceIntent};
use crate::store::StoreError;

/// The `From` of the designer's messages.
pub const DESIGNER_ID: &str = "designer";
/// First retry delay while the bus refuses an announcement.
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// Longest retry delay.
const MAX_RETRY: Duration = Duration::from_secs(5);

/// One announcement: the intent with its action, and its outbox sequence when it is stored there.
#[derive(Debug, Clone)]
pub struct Announcement {
    /// Outbox sequence (`None` for the re-announcements made at start, which are derived from the registry).
    pub sequence: Option<u64>,
    /// The intent, `action` set.
    pub intent: ServiceIntent,
}

/// The sending side: stage announcements in the outbox, release them after the commit.
#[derive(Clone)]
pub struct Announcer {
    store: DesignerStore,
    queue: mpsc::UnboundedSender<Announcement>,
}

impl std::fmt::Debug for Announcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Announcer").finish_non_exhaustive()
    }
}

/// Announcements staged by one change, released once the change is durable.
#[derive(Debug, Default)]
#[must_use = "release the staged announcements after the commit"]
pub struct Staged(Vec<Announcement>);

impl Staged {
    /// Whether nothing was staged.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Announcer {
    /// The announcer and the receiving side for [`run`].
    pub fn new(store: DesignerStore) -> (Announcer, mpsc::UnboundedReceiver<Announcement>) {
        let (queue, receiver) = mpsc::unbounded_channel();
        (Announcer { store, queue }, receiver)
    }

    /// Writes `intent` with `action` to the outbox (call with the store's writer lock held, before the commit).
    pub fn stage(&self, staged: &mut Staged, intent: &ServiceIntent, action: IntentAction) -> Result<(), StoreError> {
        let mut intent = intent.clone();
        intent.action = Some(action);
        let sequence = self.store.push_outbox(&intent)?;
        staged.0.push(Announcement { sequence: Some(sequence), intent });
        Ok(())
    }

    /// Hands the staged announcements to the publishing task (after the commit, writer lock still held).
    pub fn release(&self, staged: Staged) {
        for announcement in staged.0 {
            // The receiver only goes away at shutdown; the outbox keeps the announcement for the next start.
            let _ = self.queue.send(announcement);
        }
    }

    /// Queues the start-up announcements: the outbox, then every stored intent and every enabled fog function's
    /// intent as ADD. Call before the API starts serving.
    pub fn queue_startup(&self) -> Result<usize, StoreError> {
        let mut count = 0;
        for (sequence, intent) in self.store.outbox()? {
            let _ = self.queue.send(Announcement { sequence: Some(sequence), intent });
            count += 1;
        }
        let mut current: Vec<ServiceIntent> = DesignerStore::all(&self.store.intents)?.into_values().collect();
        for function in DesignerStore::all(&self.store.fogfunctions)?.into_values() {
            if function.is_enabled() {
                current.push(function.intent);
            }
        }
        for mut intent in current {
            intent.action = Some(IntentAction::Add);
            let _ = self.queue.send(Announcement { sequence: None, intent });
            count += 1;
        }
        Ok(count)
    }
}

/// Counters of the announcer (registered as `designer_intents_announced` and `designer_announce_retries`).
#[derive(Debug, Clone, Default)]
pub struct AnnounceCounters {
    /// Announcements the bus took.
    pub announced: Counter,
    /// Attempts the bus refused (unroutable or disconnected).
    pub retries: Counter,
}

/// Publishes queued announcements in order until `shutdown`.
pub async fn run(
    bus: Arc<dyn Bus>,
    store: DesignerStore,
    mut receiver: mpsc::UnboundedReceiver<Announcement>,
    counters: AnnounceCounters,
    shutdown: CancellationToken,
) {
    loop {
        let announcement = tokio::select! {
            next = receiver.recv() => match next {
                Some(announcement) => announcement,
                None => return,
            },
            () = shutdown.cancelled() => return,
        };
        if !publish_until_taken(bus.as_ref(), &announcement, &counters, &shutdown).await {
            return;
        }
        counters.announced.inc();
        if let Some(sequence) = announcement.sequence {
            if let Err(error) = store.pop_outbox(sequence) {
                // It stays in the outbox and is announced again at the next start (idempotent for the master).
                tracing::warn!(%error, sequence, "cannot remove a published announcement from the outbox");
            }
        }
    }
}

/// Publishes one announcement, retrying while the bus refuses it; false when shutdown came first.
async fn publish_until_taken(
    bus: &dyn Bus,
    announcement: &Announcement,
    counters: &AnnounceCounters,
    shutdown: &CancellationToken,
) -> bool {
    let intent = &announcement.intent;
    let envelope = Envelope::new(MessageType::ServiceIntent, keys::ORCHESTRATION, DESIGNER_ID, intent);
    let mut delay = FIRST_RETRY;
    let mut attempts = 0u32;
    loop {
        match bus.publish(envelope.clone()).await {
            Ok(()) => {
                let action = if intent.action == Some(IntentAction::Delete) { "DELETE" } else { "ADD" };
                tracing::info!(intent = %intent.id, topology = %intent.topology, action, "intent announced");
                return true;
            }
            Err(BusError::Closed) => {
                tracing::warn!(intent = %intent.id, "bus closed; the announcement stays in the outbox");
                return false;
            }
            Err(error) => {
                counters.retries.inc();
                attempts += 1;
                if attempts == 1 || attempts % 20 == 0 {
                    tracing::warn!(%error, intent = %intent.id, attempts, "intent not taken by the bus yet; retrying");
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => return false,
        }
        delay = next_delay(delay);
    }
}

/// The next retry delay: doubled, at most [`MAX_RETRY`].
pub fn next_delay(delay: Duration) -> Duration {
    (delay * 2).min(MAX_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::memory::MemoryBus;
    use crate::bus::QueueSpec;
    use crate::store::Store;

    fn intent(id: &str) -> ServiceIntent {
        serde_json::from_value(serde_json::json!({"id": id, "topology": "t"})).unwrap()
    }

    #[test]
    fn backoff_is_capped() {
        let mut delay = FIRST_RETRY;
        for _ in 0..20 {
            delay = next_delay(delay);
        }
        assert_eq!(delay, MAX_RETRY);
    }

    #[tokio::test]
    async fn waits_for_the_master_queue_and_keeps_order() {
        let store = DesignerStore::open(Store::temporary().unwrap()).unwrap();
        let bus = Arc::new(MemoryBus::new());
        let (announcer, receiver) = Announcer::new(store.clone());
        let mut staged = Staged::default();
        announcer.stage(&mut staged, &intent("A"), IntentAction::Add).unwrap();
        announcer.stage(&mut staged, &intent("A"), IntentAction::Delete).unwrap();
        announcer.release(staged);
        let shutdown = CancellationToken::new();
        let counters = AnnounceCounters::default();
        let task = tokio::spawn(run(bus.clone(), store.clone(), receiver, counters.clone(), shutdown.clone()));
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(store.outbox().unwrap().len(), 2, "nothing is dropped while unroutable");
        let mut master = bus.consume(QueueSpec::new("Master.001", ["orchestration.*"])).await.unwrap();
        let mut actions = Vec::new();
        for _ in 0..2 {
            let delivery = tokio::time::timeout(Duration::from_secs(5), master.next()).await.unwrap().unwrap();
            assert_eq!(delivery.envelope.from, DESIGNER_ID);
            assert_eq!(delivery.envelope.routing_key, keys::ORCHESTRATION);
            actions.push(delivery.envelope.payload["action"].as_str().unwrap().to_string());
            delivery.ack();
        }
        assert_eq!(actions, ["ADD", "DELETE"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(store.outbox().unwrap().is_empty());
        assert_eq!(counters.announced.get(), 2);
        assert!(counters.retries.get() >= 1);
        shutdown.cancel();
        task.await.unwrap();
    }
}
