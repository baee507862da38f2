//! Start-up restore (spec §6.5, fixed): waits for the cloud broker with backoff, then re-creates every stored
//! device entity the broker does not hold and every stored subscription the broker no longer knows, re-keying
//! each re-created subscription under its new id (FogFlow kept the stale ids). Runs in the background.
//!
//! Owns: nothing persistent of its own. Must not: overwrite entities the broker still holds (a device's live
//! values are newer than what the designer stored when it was registered).

use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::announcer::next_delay;
use super::api::devices::{device_element, subscribe, update_entity};
use super::proxy::base_of;
use super::store::DesignerStore;
use crate::clients::discovery::encode_segment;
use crate::clients::http_client::HttpClient;

/// Restores devices and subscriptions once the broker at `broker` (`…/ngsi10`) answers.
pub async fn run(http: HttpClient, broker: String, store: DesignerStore, shutdown: CancellationToken) {
    let version = format!("{}/version", base_of(&broker));
    let mut delay = Duration::from_millis(200);
    loop {
        if matches!(http.send_empty(http::Method::GET, &version).await, Ok(response) if response.is_success()) {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => return,
        }
        delay = next_delay(delay);
    }
    let devices = restore_devices(&http, &broker, &store).await;
    let subscriptions = restore_subscriptions(&http, &broker, &store).await;
    tracing::info!(devices, subscriptions, "devices and subscriptions restored at the broker");
}

async fn restore_devices(http: &HttpClient, broker: &str, store: &DesignerStore) -> usize {
    let devices = match DesignerStore::all(&store.devices) {
        Ok(devices) => devices,
        Err(error) => {
            tracing::error!(%error, "cannot read the stored devices");
            return 0;
        }
    };
    let mut restored = 0;
    for (id, device) in devices {
        if exists(http, &format!("{broker}/entity/{}", encode_segment(&id))).await {
            continue;
        }
        match device_element(&device) {
            Ok(element) => match update_entity(http, broker, element, "UPDATE").await {
                Ok(()) => restored += 1,
                Err(error) => tracing::warn!(%error, device = %id, "cannot re-create a device entity"),
            },
            Err(error) => tracing::warn!(%error, device = %id, "stored device is not a valid entity"),
        }
    }
    restored
}

async fn restore_subscriptions(http: &HttpClient, broker: &str, store: &DesignerStore) -> usize {
    let subscriptions = match DesignerStore::all(&store.subscriptions) {
        Ok(subscriptions) => subscriptions,
        Err(error) => {
            tracing::error!(%error, "cannot read the stored subscriptions");
            return 0;
        }
    };
    let mut restored = 0;
    for (sid, record) in subscriptions {
        if exists(http, &format!("{broker}/subscription/{}", encode_segment(&sid))).await {
            continue;
        }
        let new_sid = match subscribe(http, broker, &record).await {
            Ok(new_sid) => new_sid,
            Err(error) => {
                tracing::warn!(%error, subscription = %sid, "cannot re-create a subscription");
                continue;
            }
        };
        let _writer = store.write_lock().await;
        let rekeyed = store.subscriptions.insert(&new_sid, &record).and_then(|()| store.subscriptions.remove(&sid));
        match rekeyed.map(drop) {
            Ok(()) => {
                if let Err(error) = store.commit().await {
                    tracing::error!(%error, "cannot store a re-created subscription");
                }
                restored += 1;
            }
            Err(error) => tracing::error!(%error, "cannot store a re-created subscription"),
        }
    }
    restored
}

/// Whether `url` answers 200 with a JSON body that is not null (a broker that does not know the id answers
/// 404).
async fn exists(http: &HttpClient, url: &str) -> bool {
    match http.send_empty(http::Method::GET, url).await {
        Ok(response) if response.is_success() => {
            !matches!(serde_json::from_slice::<Value>(&response.body), Ok(Value::Null))
        }
        _ => false,
    }
}
