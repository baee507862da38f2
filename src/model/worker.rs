//! Worker and master profiles (spec §1.5, §3.1): what a worker announces with `WORKER_JOIN` /
//! `WORKER_HEARTBEAT`, and what the master answers on `GET /status`. Additive: `tasks` in a worker profile, the
//! tasks it runs with their epochs, so a master can reconcile after a restart or failover, and `epoch`, the
//! highest master epoch the worker has accepted, so a newly active master can fence every earlier one.

use serde::{Deserialize, Serialize};

/// A point on the Earth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct GeoPoint {
    /// Degrees north.
    #[serde(default)]
    pub latitude: f64,
    /// Degrees east.
    #[serde(default)]
    pub longitude: f64,
}

impl GeoPoint {
    /// FogFlow treats (0,0) as "no location".
    pub fn is_known(&self) -> bool {
        !(self.latitude == 0.0 && self.longitude == 0.0)
    }

    /// Great-circle distance in metres (FogFlow's haversine, Earth radius 6 378 100 m).
    pub fn distance_m(&self, other: &GeoPoint) -> f64 {
        const EARTH_RADIUS_M: f64 = 6_378_100.0;
        let (lat1, lat2) = (self.latitude.to_radians(), other.latitude.to_radians());
        let dlat = lat2 - lat1;
        let dlon = (other.longitude - self.longitude).to_radians();
        let a = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
    }
}

/// A task a worker reports it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedTask {
    /// Task id.
    pub id: String,
    /// Epoch of the command that created it.
    #[serde(default)]
    pub epoch: u64,
    /// Status text.
    #[serde(default)]
    pub status: String,
}

/// A worker's profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct WorkerProfile {
    /// `Worker.<site_id>[.<n>]`.
    pub id: String,
    /// Where it is.
    #[serde(default)]
    pub location: GeoPoint,
    /// Kept for FogFlow.
    #[serde(default)]
    pub geohash_id: String,
    /// `linux`.
    #[serde(default)]
    pub os: String,
    /// `amd64`, `arm`, `arm64`.
    #[serde(default)]
    pub hardware: String,
    /// Most tasks it accepts.
    #[serde(default)]
    pub capacity: u32,
    /// Tasks it holds.
    #[serde(default)]
    pub workload: u32,
    /// Kept for FogFlow.
    #[serde(rename = "CAdvisorPort", default)]
    pub cadvisor_port: u16,
    /// Kept for FogFlow.
    #[serde(rename = "EdgeAddress", default)]
    pub edge_address: String,
    /// Set by the master (RFC 3339).
    #[serde(rename = "Last_Heartbeat_Update", default)]
    pub last_heartbeat_update: String,
    /// The tasks it holds (additive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Vec<ReportedTask>>,
    /// The runtime it uses, e.g. `process` or `docker` (additive).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub runtime: String,
    /// The highest master epoch it has accepted a command with (additive; 0: none yet).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub epoch: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// The master's profile (`GET /status`, `MASTER_JOIN`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct MasterProfile {
    /// `Master.<site_id>`.
    pub id: String,
    /// Where it is.
    #[serde(default)]
    pub location: GeoPoint,
    /// Its NGSI agent URL.
    #[serde(default)]
    pub agent: String,
    /// Its fencing epoch (additive; sent with `MASTER_JOIN` to every worker when it becomes active).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub epoch: u64,
}

/// The host's OS and hardware in FogFlow's spelling (Go's GOOS / GOARCH).
pub fn host_platform() -> (&'static str, &'static str) {
    let hardware = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    };
    (std::env::consts::OS, hardware)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_fogflow_worker_profile() {
        let profile: WorkerProfile = serde_json::from_value(json!({"id":"Worker.001",
            "location":{"latitude":35.69,"longitude":139.70},"geohash_id":"","os":"linux","hardware":"amd64",
            "capacity":8,"workload":0,"CAdvisorPort":0,"EdgeAddress":"","Last_Heartbeat_Update":"0001-01-01T00:00:00Z"}))
        .unwrap();
        assert_eq!(profile.capacity, 8);
        assert!(profile.tasks.is_none());
        let wire = serde_json::to_value(&profile).unwrap();
        assert!(wire.get("tasks").is_none());
        assert!(wire.get("epoch").is_none());
        let fenced = WorkerProfile { epoch: 4, ..profile.clone() };
        assert_eq!(serde_json::to_value(&fenced).unwrap()["epoch"], 4);
        assert_eq!(wire["Last_Heartbeat_Update"], "0001-01-01T00:00:00Z");
    }

    #[test]
    fn haversine_distance() {
        let tokyo = GeoPoint { latitude: 35.69, longitude: 139.70 };
        let other = GeoPoint { latitude: 36.69, longitude: 138.70 };
        let d = tokyo.distance_m(&other);
        assert!((d - 142_000.0).abs() < 3_000.0, "{d}");
        assert_eq!(tokyo.distance_m(&tokyo), 0.0);
        assert!(!GeoPoint::default().is_known());
    }
}
