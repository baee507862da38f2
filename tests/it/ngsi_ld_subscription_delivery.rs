//! NGSI-LD subscription delivery options against the real binary and a real HTTP sink: `throttling`, `geoQ`,
//! concurrent creations of one id, failed deliveries in the notification status, and `lang` choosing the
//! language notified. Shares the helpers of `ngsi_ld_subscriptions`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{Broker, Sink};
use crate::ngsi_ld_entities::{assert_problem, create, room, send};
use crate::ngsi_ld_subscriptions::*;

#[test]
fn throttling_sends_the_latest_state_at_most_once_per_interval() {
    let broker = Broker::start();
    let sink = Sink::start();
    let mut body = subscription("Room", &format!("{}/throttled", sink.url()));
    body["throttling"] = json!(1);
    body["notification"]["format"] = json!("keyValues");
    subscribe(&broker, &body, &[]);
    create(&broker, &room("urn:ngsi-ld:Room:1", 10.0, 8.68, 49.4), &[]);
    wait_for(&sink, "/throttled", "the first notification", |e| e["temperature"] == 10.0);
    for temperature in [1, 2, 3] {
        merge(&broker, "urn:ngsi-ld:Room:1", &json!({"temperature": temperature}), &[]);
    }
    wait_for(&sink, "/throttled", "the latest state", |e| e["temperature"] == 3);
    let requests = received(&sink, "/throttled");
    let temperatures: Vec<Value> = requests.iter().map(|r| r.json()["data"][0]["temperature"].clone()).collect();
    assert_eq!(temperatures, [json!(10.0), json!(3)], "intermediate states are coalesced");
    let gap = requests[1].at.duration_since(requests[0].at);
    assert!(gap >= Duration::from_millis(900), "notifications {gap:?} apart");
}

#[test]
fn geo_q_selects_entities_by_position() {
    let broker = Broker::start();
    let sink = Sink::start();
    subscribe(&broker, &subscription("Room", &format!("{}/marker", sink.url())), &[]);
    let mut body = subscription("Room", &format!("{}/near", sink.url()));
    body["geoQ"] = json!({"georel": "near;maxDistance==2000", "geometry": "Point", "coordinates": [8.68, 49.4]});
    body["notification"]["format"] = json!("concise");
    subscribe(&broker, &body, &[]);
    create(&broker, &room("urn:ngsi-ld:Room:far", 10.0, 13.4, 52.5), &[]);
    assert_eq!(settled_count(&sink, |e| e["id"] == "urn:ngsi-ld:Room:far", "/near"), 0, "Berlin is not near");
    create(&broker, &room("urn:ngsi-ld:Room:near", 11.0, 8.681, 49.401), &[]);
    let request = wait_for(&sink, "/near", "the near room", |e| e["id"] == "urn:ngsi-ld:Room:near");
    let entity = &request.json()["data"][0];
    assert_eq!(entity["temperature"], json!({"value": 11.0, "unitCode": "CEL"}), "concise: {entity}");
    assert_eq!(entity["location"], json!({"type": "Point", "coordinates": [8.681, 49.401]}), "concise: {entity}");
    assert_eq!(received(&sink, "/near").len(), 1);
}

#[test]
fn concurrent_creations_of_one_id_make_one_subscription() {
    let broker = Broker::start();
    let mut body = subscription("Room", "http://127.0.0.1:9/n");
    body["id"] = json!("urn:ngsi-ld:Subscription:contested");
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            (0..8).map(|_| scope.spawn(|| send(&broker, "POST", SUBSCRIPTIONS, &body, &[]).status)).collect();
        handles.into_iter().map(|handle| handle.join().expect("request thread")).collect()
    });
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 7, "{statuses:?}");
    assert_eq!(broker.get(SUBSCRIPTIONS).json().as_array().map(|a| a.len()), Some(1));
}

#[test]
fn failed_deliveries_show_in_the_notification_status() {
    let broker = Broker::start();
    let sink = Sink::with_reply(crate::common::Reply::Status(500));
    let id = subscribe(&broker, &subscription("Room", &format!("{}/failing", sink.url())), &[]);
    create(&broker, &room("urn:ngsi-ld:Room:1", 10.0, 8.68, 49.4), &[]);
    let shown = crate::common::wait_until(WAIT, "a failed status", || {
        let shown = retrieve(&broker, &id, &[]).json();
        (shown["notification"]["status"] == "failed").then_some(shown)
    });
    let notification = &shown["notification"];
    assert!(notification["lastFailure"].is_string() && notification["lastNotification"].is_string(), "{shown}");
    assert!(notification["timesFailed"].as_u64().is_some_and(|n| n >= 1), "{shown}");
    assert_eq!(notification["timesSent"], 0, "{shown}");
    sink.set_reply(crate::common::Reply::Ok);
    merge(&broker, "urn:ngsi-ld:Room:1", &json!({"temperature": 11}), &[]);
    crate::common::wait_until(WAIT, "an ok status after a success", || {
        let shown = retrieve(&broker, &id, &[]).json();
        (shown["notification"]["status"] == "ok" && shown["notification"]["lastSuccess"].is_string()).then_some(())
    });
}

/// `lang` on a subscription: LanguageProperties are notified as Properties in the language it picks (and the
/// subscription shows it); without it the whole languageMap is notified; an invalid `lang` is 400.
#[test]
fn lang_notifies_language_properties_in_the_language_asked() {
    let broker = Broker::start();
    let sink = Sink::start();
    let mut french = subscription("Museum", &format!("{}/fr", sink.url()));
    french["lang"] = json!("fr");
    let id = subscribe(&broker, &french, &[]);
    assert_eq!(retrieve(&broker, &id, &[]).json()["lang"], "fr");
    subscribe(&broker, &subscription("Museum", &format!("{}/all", sink.url())), &[]);
    let museum = json!({"id": "urn:ngsi-ld:Museum:1", "type": "Museum",
        "name": {"type": "LanguageProperty", "languageMap": {"en": "Modern Art Museum", "fr": "Musée d'Art Moderne"}}});
    create(&broker, &museum, &[]);
    let notified = wait_for(&sink, "/fr", "a notification in French", |e| e["id"] == "urn:ngsi-ld:Museum:1");
    assert_eq!(
        notified.json()["data"][0]["name"],
        json!({"type": "Property", "value": "Musée d'Art Moderne", "lang": "fr"}),
        "{}",
        notified.json()
    );
    let all = wait_for(&sink, "/all", "a notification with the map", |e| e["id"] == "urn:ngsi-ld:Museum:1");
    assert_eq!(all.json()["data"][0]["name"]["languageMap"]["en"], "Modern Art Museum", "{}", all.json());
    let mut invalid = subscription("Museum", &format!("{}/bad", sink.url()));
    invalid["lang"] = json!("fr;q=2");
    assert_problem(&send(&broker, "POST", SUBSCRIPTIONS, &invalid, &[]), 400, "BadRequestData");
}
