//! Worker selection (spec §3.3), pure: among live workers with free capacity and an image for the operator,
//! the one with the smallest sum of distances to the task's input locations wins; inputs without a location
//! are ignored, ties go to the lowest worker id (FogFlow used Go's random map order).

use crate::model::{GeoPoint, Operator, WorkerProfile};

/// A candidate worker with the master's own count of tasks placed on it.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// Its profile.
    pub profile: &'a WorkerProfile,
    /// Tasks the master has placed on it.
    pub placed: u32,
}

/// The chosen worker and the image reference for it, or `None` when no worker fits.
pub fn select_worker<'a>(
    candidates: &[Candidate<'a>],
    locations: &[GeoPoint],
    operator: Option<&Operator>,
) -> Option<(&'a WorkerProfile, String)> {
    let known: Vec<&GeoPoint> = locations.iter().filter(|l| l.is_known()).collect();
    let mut best: Option<(f64, &'a WorkerProfile, String)> = None;
    for candidate in candidates {
        let profile = candidate.profile;
        if candidate.placed >= profile.capacity {
            continue;
        }
        let image = match operator {
            Some(operator) => match operator.image_for(&profile.hardware) {
                Some(image) => image.reference(),
                None => continue,
            },
            None => String::new(),
        };
        let score: f64 = known.iter().map(|l| profile.location.distance_m(l)).sum();
        let better = match &best {
            None => true,
            Some((best_score, best_profile, _)) => {
                score < *best_score || (score == *best_score && profile.id < best_profile.id)
            }
        };
        if better {
            best = Some((score, profile, image));
        }
    }
    best.map(|(_, profile, image)| (profile, image))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn worker(id: &str, lat: f64, lon: f64, capacity: u32) -> WorkerProfile {
        WorkerProfile {
            id: id.into(),
            location: GeoPoint { latitude: lat, longitude: lon },
            hardware: "amd64".into(),
            capacity,
            ..Default::default()
        }
    }

    #[test]
    fn nearest_with_capacity_and_image_wins() {
        let cloud = worker("Worker.001", 35.69, 139.70, 8);
        let edge = worker("Worker.002", 36.69, 138.70, 1);
        let op: Operator = serde_json::from_value(json!({"name":"c","dockerimages":[{"name":"fogflow/c"}]})).unwrap();
        let near_edge = [GeoPoint { latitude: 36.7, longitude: 138.7 }];
        let candidates = [Candidate { profile: &cloud, placed: 0 }, Candidate { profile: &edge, placed: 0 }];
        let (chosen, image) = select_worker(&candidates, &near_edge, Some(&op)).unwrap();
        assert_eq!(chosen.id, "Worker.002");
        assert_eq!(image, "fogflow/c:latest");
        // The edge is full: the cloud takes it.
        let candidates = [Candidate { profile: &cloud, placed: 0 }, Candidate { profile: &edge, placed: 1 }];
        assert_eq!(select_worker(&candidates, &near_edge, Some(&op)).unwrap().0.id, "Worker.001");
        // No location: the lowest id.
        let candidates = [Candidate { profile: &edge, placed: 0 }, Candidate { profile: &cloud, placed: 0 }];
        assert_eq!(select_worker(&candidates, &[GeoPoint::default()], Some(&op)).unwrap().0.id, "Worker.001");
        // No image for the hardware, or nobody free: none.
        let arm_only: Operator =
            serde_json::from_value(json!({"name":"c","dockerimages":[{"name":"x","hwType":"ARM"}]})).unwrap();
        assert!(select_worker(&candidates, &[], Some(&arm_only)).is_none());
        let full = [Candidate { profile: &edge, placed: 1 }];
        assert!(select_worker(&full, &[], Some(&op)).is_none());
    }
}
