//! Time-based subscription behaviour: `throttling` (at most one notification per interval, the last one
//! carrying the latest state) and `duration` (the subscription expires, is removed, and notifies nothing
//! afterwards). Only bounded waits; the one timing check is the throttling interval itself, with slack.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{attr, element, elements, Broker, Sink};

fn temp(id: &str, value: i64) -> Value {
    element(id, "Temperature", &[("temp", "integer", json!(value))])
}

fn temps(notification: &Value, id: &str) -> Vec<Value> {
    elements(notification).iter().filter(|e| e["entityId"]["id"] == id).filter_map(|e| attr(e, "temp")).collect()
}

#[test]
fn throttled_subscription_coalesces_quick_updates_and_sends_the_latest() {
    let broker = Broker::start();
    let sink = Sink::start();
    broker.subscribe_ok(&json!({"entities":[{"id":"Fast.1"}],"reference":sink.url(),"throttling":"PT2S"}));
    for value in 1..=6 {
        broker.update_ok("UPDATE", &[temp("Fast.1", value)]);
    }
    sink.wait_notification(Duration::from_secs(15), "a notification with the latest value 6", |n| {
        temps(n, "Fast.1").contains(&json!(6))
    });
    std::thread::sleep(Duration::from_millis(2500));
    let received: Vec<_> = sink.requests().into_iter().filter(|r| r.path == "/notifyContext").collect();
    let bodies: Vec<Value> = received.iter().map(|r| r.json()).collect();
    assert!(received.len() < 6, "6 quick updates were not coalesced: {bodies:?}");
    for pair in received.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(
            gap >= Duration::from_millis(1000),
            "two notifications {gap:?} apart under PT2S throttling: {bodies:?}"
        );
    }
    let last = bodies.last().unwrap();
    assert_eq!(
        temps(last, "Fast.1").last(),
        Some(&json!(6)),
        "the last notification carries the latest value: {bodies:?}"
    );
    let seen: Vec<i64> = bodies.iter().flat_map(|n| temps(n, "Fast.1")).filter_map(|v| v.as_i64()).collect();
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "values must arrive in update order: {seen:?}");
}

#[test]
fn throttling_carries_every_entity_changed_meanwhile() {
    let broker = Broker::start();
    let sink = Sink::start();
    broker.subscribe_ok(
        &json!({"entities":[{"id":"Many.*","isPattern":true}],"reference":sink.url(),"throttling":"PT2S"}),
    );
    for round in 1..=3 {
        broker.update_ok("UPDATE", &[temp("Many.a", round), temp("Many.b", round * 10)]);
    }
    sink.wait_until(Duration::from_secs(15), "the latest state of both entities", |requests| {
        let bodies: Vec<Value> = requests.iter().map(|r| r.json()).collect();
        bodies.iter().any(|n| temps(n, "Many.a").contains(&json!(3)))
            && bodies.iter().any(|n| temps(n, "Many.b").contains(&json!(30)))
    });
    std::thread::sleep(Duration::from_millis(2500));
    let all = sink.notifications();
    let sent: usize = all.iter().map(|n| elements(n).len()).sum();
    assert!(sent < 6, "6 element changes in quick succession were not coalesced: {all:?}");
}

#[test]
fn subscription_with_duration_expires_and_stops_notifying() {
    let broker = Broker::start();
    let sink = Sink::start();
    let witness = Sink::start();
    let started = Instant::now();
    let sid = broker.subscribe_ok(&json!({"entities":[{"id":"Short.1"}],"reference":sink.url(),"duration":"PT2S"}));
    broker.subscribe_ok(&json!({"entities":[{"id":"Short.1"}],"reference":witness.url()}));
    let alive = broker.get(&format!("/ngsi10/subscription/{sid}"));
    assert!(
        alive.status == 200 || started.elapsed() >= Duration::from_secs(2),
        "fresh subscription missing: {alive:?}"
    );

    crate::common::wait_until(Duration::from_secs(10), "the PT2S subscription to expire", || {
        (broker.get(&format!("/ngsi10/subscription/{sid}")).status == 404).then_some(())
    });
    assert!(started.elapsed() >= Duration::from_millis(1500), "expired before its duration");
    assert!(!broker.get("/ngsi10/subscription").body.contains(&sid), "expired subscription still listed");

    broker.update_ok("UPDATE", &[temp("Short.1", 1)]);
    witness.wait_notification(Duration::from_secs(10), "the witness notified", |n| {
        temps(n, "Short.1").contains(&json!(1))
    });
    std::thread::sleep(Duration::from_millis(1000));
    assert!(sink.notifications().is_empty(), "expired subscription notified: {:?}", sink.notifications());
}

#[test]
fn subscription_without_duration_does_not_expire_quickly() {
    let broker = Broker::start();
    let sid =
        broker.subscribe_ok(&json!({"entities":[{"id":"Long.1"}],"reference":"http://127.0.0.1:9","duration":"PT1H"}));
    std::thread::sleep(Duration::from_millis(3000));
    assert_eq!(broker.get(&format!("/ngsi10/subscription/{sid}")).status, 200);
}

#[test]
fn subscription_expiry_time_survives_a_restart() {
    let mut broker = Broker::start();
    let started = Instant::now();
    let sid =
        broker.subscribe_ok(&json!({"entities":[{"id":"Short.2"}],"reference":"http://127.0.0.1:9","duration":"PT6S"}));
    broker.kill9();
    std::thread::sleep(Duration::from_secs(4).saturating_sub(started.elapsed()));
    broker.restart();
    assert_eq!(
        broker.get(&format!("/ngsi10/subscription/{sid}")).status,
        200,
        "the subscription did not survive the restart"
    );
    crate::common::wait_until(Duration::from_secs(12), "the PT6S subscription to expire after a restart", || {
        (broker.get(&format!("/ngsi10/subscription/{sid}")).status == 404).then_some(())
    });
    let expired_after = started.elapsed();
    assert!(expired_after >= Duration::from_millis(5500), "expired before its duration: {expired_after:?}");
    assert!(
        expired_after < Duration::from_secs(9),
        "expired {expired_after:?} after creation: the 6 s duration restarted with the process"
    );
}
