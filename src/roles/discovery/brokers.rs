//! Broker leases: every broker heartbeats (`POST /ngsi9/broker/heartbeat`); one not heard of for the lease
//! (default three heartbeat intervals) is expired, and the caller then removes everything it registered. Time
//! is this process's monotonic clock, never the broker's timestamp (F16). A second live broker claiming an id
//! with another URL is refused (FogFlow's `Broker.<site_id>` collisions, F14).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// A live broker as `GET /ngsi9/broker` lists it (FogFlow's `BrokerProfile`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BrokerView {
    /// Broker id.
    pub id: String,
    /// Its NGSI10 URL.
    #[serde(rename = "myURL")]
    pub my_url: String,
    /// When its last heartbeat arrived (RFC 3339, this process's clock).
    #[serde(rename = "Last_Heartbeat_Update")]
    pub last_heartbeat_update: String,
}

#[derive(Debug, Clone)]
struct Lease {
    view: BrokerView,
    last_seen: Instant,
}

/// Why a heartbeat was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("broker id `{id}` is already used by the live broker at {existing_url}; give each broker a unique id")]
pub struct DuplicateBrokerId {
    /// The id.
    pub id: String,
    /// The URL of the broker holding it.
    pub existing_url: String,
}

/// The brokers with a current lease.
#[derive(Debug)]
pub struct Brokers {
    leases: Mutex<HashMap<String, Lease>>,
    lease: Duration,
}

impl Brokers {
    /// An empty list with the given lease length.
    pub fn new(lease: Duration) -> Self {
        Brokers { leases: Mutex::new(HashMap::new()), lease }
    }

    /// Refuses `id` for `url` when another live broker holds it.
    pub fn check_unique(&self, id: &str, url: &str) -> Result<(), DuplicateBrokerId> {
        let leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        Self::unique_in(&leases, self.lease, id, url)
    }

    fn unique_in(
        leases: &HashMap<String, Lease>,
        lease: Duration,
        id: &str,
        url: &str,
    ) -> Result<(), DuplicateBrokerId> {
        match leases.get(id) {
            Some(existing) if existing.last_seen.elapsed() < lease && existing.view.my_url != url => {
                Err(DuplicateBrokerId { id: id.to_string(), existing_url: existing.view.my_url.clone() })
            }
            _ => Ok(()),
        }
    }

    /// Records a heartbeat; refuses an id held by another live URL.
    pub fn heartbeat(&self, id: &str, url: &str) -> Result<(), DuplicateBrokerId> {
        let now = Instant::now();
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        Self::unique_in(&leases, self.lease, id, url)?;
        let view = BrokerView {
            id: id.to_string(),
            my_url: url.to_string(),
            last_heartbeat_update: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        leases.insert(id.to_string(), Lease { view, last_seen: now });
        Ok(())
    }

    /// Forgets a broker (it unregistered itself); returns its URL.
    pub fn remove(&self, id: &str) -> Option<String> {
        self.leases.lock().unwrap_or_else(|p| p.into_inner()).remove(id).map(|lease| lease.view.my_url)
    }

    /// Removes and returns the brokers whose lease ran out.
    pub fn expire(&self) -> Vec<BrokerView> {
        let now = Instant::now();
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        let expired: Vec<String> = leases
            .iter()
            .filter(|(_, l)| now.duration_since(l.last_seen) >= self.lease)
            .map(|(id, _)| id.clone())
            .collect();
        expired.iter().filter_map(|id| leases.remove(id)).map(|lease| lease.view).collect()
    }

    /// The live brokers, by id.
    pub fn live(&self) -> Vec<BrokerView> {
        let mut views: Vec<BrokerView> =
            self.leases.lock().unwrap_or_else(|p| p.into_inner()).values().map(|l| l.view.clone()).collect();
        views.sort_by(|a, b| a.id.cmp(&b.id));
        views
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_expire_and_duplicate_ids_are_refused() {
        let brokers = Brokers::new(Duration::from_millis(50));
        brokers.heartbeat("Broker.001", "http://a/ngsi10").unwrap();
        let error = brokers.heartbeat("Broker.001", "http://b/ngsi10").unwrap_err();
        assert!(error.to_string().contains("http://a/ngsi10"), "{error}");
        assert_eq!(brokers.live().len(), 1);
        std::thread::sleep(Duration::from_millis(60));
        let expired = brokers.expire();
        assert_eq!(expired[0].my_url, "http://a/ngsi10");
        assert!(brokers.live().is_empty());
        brokers.heartbeat("Broker.001", "http://b/ngsi10").unwrap();
    }
}
