//! NGSI-LD periodic subscriptions (`timeInterval`, ETSI GS CIM 009 clause 5.2.12) against the real binary and a
//! real HTTP sink: notified every period with the current state of every entity selected (its `entities`, `q`,
//! format and attributes), not on changes; the delivery counters; mutual exclusion with `watchedAttributes` and
//! `throttling`; no notification once paused or deleted; the timer rebuilt after a SIGKILL restart.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{Broker, Recorded, Sink};
use crate::ngsi_ld_entities::{assert_problem, create, room, send};

const SUBSCRIPTIONS: &str = "/ngsi-ld/v1/subscriptions";

/// A periodic subscription on rooms warmer than 20, every `seconds`, in keyValues with the temperature only.
fn periodic(uri: &str, seconds: f64) -> Value {
    json!({"type": "Subscription", "entities": [{"type": "Room"}], "q": "temperature>20", "timeInterval": seconds,
        "notification": {"format": "keyValues", "attributes": ["temperature"], "endpoint": {"uri": uri}}})
}

fn subscribe(broker: &Broker, body: &Value) -> String {
    let response = send(broker, "POST", SUBSCRIPTIONS, body, &[]);
    assert_eq!(response.status, 201, "{body}: {response:?}");
    let location = response.header("location").expect("Location").to_string();
    location.strip_prefix("/ngsi-ld/v1/subscriptions/").expect("a subscription").to_string()
}

/// The requests on `path` so far.
fn received(sink: &Sink, path: &str) -> Vec<Recorded> {
    sink.requests().into_iter().filter(|r| r.path == path).collect()
}

/// Waits until `path` got `count` notifications; answers them.
fn wait_count(sink: &Sink, path: &str, count: usize, timeout: Duration) -> Vec<Recorded> {
    sink.wait_until(timeout, &format!("{count} notifications at {path}"), |requests| {
        requests.iter().filter(|r| r.path == path).count() >= count
    });
    received(sink, path)
}

#[test]
fn periodic_subscriptions_notify_the_current_state_every_interval_until_deleted() {
    let broker = Broker::start();
    let sink = Sink::start();
    create(&broker, &room("urn:ngsi-ld:Room:1", 25.0, 8.6, 49.4), &[]);
    create(&broker, &room("urn:ngsi-ld:Room:2", 15.0, 8.6, 49.4), &[]);
    let started = Instant::now();
    let id = subscribe(&broker, &periodic(&format!("{}/tick", sink.url()), 1.0));

    let notifications = wait_count(&sink, "/tick", 2, Duration::from_secs(10));
    assert!(started.elapsed() >= Duration::from_millis(1900), "the first comes after one interval, then each one");
    for request in &notifications[..2] {
        let body = request.json();
        assert_eq!((body["type"].as_str(), body["subscriptionId"].as_str()), (Some("Notification"), Some(id.as_str())));
        assert_eq!(
            body["data"],
            json!([{"id": "urn:ngsi-ld:Room:1", "type": "Room", "temperature": 25.0}]),
            "every entity selected now (q), in its format and projection"
        );
    }
    let gap = notifications[1].at.duration_since(notifications[0].at);
    assert!(gap >= Duration::from_millis(500) && gap <= Duration::from_millis(3000), "one interval apart: {gap:?}");

    // A change is not notified on its own (that would be a notification of Room 2 alone), but the next period
    // shows the current state of both.
    let patched = send(
        &broker,
        "PATCH",
        "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:2/attrs",
        &json!({"temperature": {"type": "Property", "value": 30.0}}),
        &[],
    );
    assert_eq!(patched.status, 204, "{patched:?}");
    let both = |r: &Recorded| r.path == "/tick" && r.json()["data"].as_array().is_some_and(|d| d.len() == 2);
    let requests = sink.wait_until(Duration::from_secs(5), "a period with both rooms", |rs| rs.iter().any(both));
    let last = requests.iter().find(|r| both(r)).expect("found").json();
    assert_eq!(last["data"][1], json!({"id": "urn:ngsi-ld:Room:2", "type": "Room", "temperature": 30.0}));
    for tick in received(&sink, "/tick") {
        let body = tick.json();
        assert_eq!(
            body["data"][0]["id"], "urn:ngsi-ld:Room:1",
            "only periodic notifications, none on the change: {body}"
        );
    }

    // The sink records a request before answering it: the counters follow the answer.
    let deadline = Instant::now() + Duration::from_secs(5);
    let shown = loop {
        let shown = broker.get(&format!("{SUBSCRIPTIONS}/{id}")).json();
        if shown["notification"]["timesSent"].as_u64().is_some_and(|n| n >= 3) || Instant::now() > deadline {
            break shown;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(shown["timeInterval"], 1.0, "{shown}");
    assert!(shown["notification"]["timesSent"].as_u64().is_some_and(|n| n >= 3), "{shown}");
    assert!(shown["notification"]["lastNotification"].is_string() && shown["notification"]["lastSuccess"].is_string());

    assert_eq!(broker.delete(&format!("{SUBSCRIPTIONS}/{id}")).status, 204);
    std::thread::sleep(Duration::from_millis(300));
    let at_delete = received(&sink, "/tick").len();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(received(&sink, "/tick").len(), at_delete, "no notification after the delete");
}

#[test]
fn periodic_subscriptions_pause_fail_visibly_and_survive_a_restart() {
    let mut broker = Broker::start();
    let sink = Sink::start();
    create(&broker, &room("urn:ngsi-ld:Room:1", 25.0, 8.6, 49.4), &[]);
    let id = subscribe(&broker, &periodic(&format!("{}/p", sink.url()), 1.0));
    wait_count(&sink, "/p", 1, Duration::from_secs(10));
    let paused = send(&broker, "PATCH", &format!("{SUBSCRIPTIONS}/{id}"), &json!({"isActive": false}), &[]);
    assert_eq!(paused.status, 204, "{paused:?}");
    std::thread::sleep(Duration::from_millis(300));
    let at_pause = received(&sink, "/p").len();
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!(received(&sink, "/p").len(), at_pause, "a paused subscription is not notified");

    let resumed = send(&broker, "PATCH", &format!("{SUBSCRIPTIONS}/{id}"), &json!({"isActive": true}), &[]);
    assert_eq!(resumed.status, 204, "{resumed:?}");
    wait_count(&sink, "/p", at_pause + 1, Duration::from_secs(5));

    broker.kill9();
    let down = received(&sink, "/p").len();
    broker.restart();
    let again = wait_count(&sink, "/p", down + 1, Duration::from_secs(10));
    assert_eq!(again[down].json()["subscriptionId"], id.as_str(), "the timer is rebuilt after a restart");

    let failing = subscribe(&broker, &periodic("http://127.0.0.1:9/closed", 1.0));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let shown = broker.get(&format!("{SUBSCRIPTIONS}/{failing}")).json();
        if shown["notification"]["lastFailure"].is_string() {
            assert_eq!(shown["notification"]["status"], "failed", "{shown}");
            break;
        }
        assert!(Instant::now() < deadline, "no failure shown: {shown}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn time_interval_excludes_watched_attributes_and_throttling() {
    let broker = Broker::start();
    let uri = "http://127.0.0.1:9/n";
    let with = |key: &str, value: Value| {
        let mut body = periodic(uri, 10.0);
        body[key] = value;
        body
    };
    for bad in [
        with("watchedAttributes", json!(["temperature"])),
        with("throttling", json!(5)),
        with("timeInterval", json!(0)),
        with("timeInterval", json!(-1)),
        with("timeInterval", json!("10")),
    ] {
        assert_problem(&send(&broker, "POST", SUBSCRIPTIONS, &bad, &[]), 400, "BadRequestData");
    }
    let id = subscribe(&broker, &periodic(uri, 10.0));
    let patched = send(&broker, "PATCH", &format!("{SUBSCRIPTIONS}/{id}"), &json!({"throttling": 2}), &[]);
    assert_problem(&patched, 400, "BadRequestData");
    assert_eq!(broker.get(&format!("{SUBSCRIPTIONS}/{id}")).json()["timeInterval"], 10.0, "nothing changed");
}
