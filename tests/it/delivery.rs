//! Notification delivery under failing subscribers: no head-of-line blocking between subscriptions (a stalled
//! or 500-answering sink does not delay a healthy one), failure and success counters on the subscription and
//! in `/metrics`, recovery after errors, `Require-Reliability` retries versus `max_attempts`, and the bounded
//! queue dropping (and counting) when a subscriber never answers.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{
    attr, element, elements, find_key, free_port, metric_sum, wait_until, Broker, BrokerOptions, Reply, Sink,
};

fn busy(value: i64) -> Value {
    element("Busy.1", "Load", &[("n", "integer", json!(value))])
}

fn values(notifications: &[Value]) -> Vec<i64> {
    notifications.iter().flat_map(elements).filter_map(|e| attr(&e, "n")).filter_map(|v| v.as_i64()).collect()
}

fn subscribe(broker: &Broker, reference: &str, headers: &[(&str, &str)]) -> String {
    broker.subscribe_ok_with(&json!({"entities":[{"id":"Busy.1"}],"reference":reference}), headers)
}

fn counter(subscription: &Value, key: &str) -> f64 {
    find_key(subscription, key).and_then(Value::as_f64).unwrap_or(0.0)
}

#[test]
fn stalled_and_failing_subscribers_do_not_delay_a_healthy_one() {
    let broker = BrokerOptions::new().env("FOGFLOW__BROKER__NOTIFICATION__TIMEOUT_MS", 30_000).start();
    let stalled = Sink::with_reply(Reply::Stall);
    let failing = Sink::with_reply(Reply::Status(500));
    let healthy = Sink::start();
    subscribe(&broker, &stalled.url(), &[]);
    subscribe(&broker, &failing.url(), &[]);
    subscribe(&broker, &healthy.url(), &[]);
    for value in 1..=5 {
        broker.update_ok("UPDATE", &[busy(value)]);
    }
    healthy.wait_until(Duration::from_secs(8), "value 5 at the healthy subscriber", |requests| {
        values(&requests.iter().map(|r| r.json()).collect::<Vec<_>>()).contains(&5)
    });
    assert_eq!(values(&healthy.notifications()), [1, 2, 3, 4, 5], "every change, in order");
    for sink in [&stalled, &failing] {
        sink.wait_until(Duration::from_secs(10), "a delivery attempt", |requests| !requests.is_empty());
    }
    assert_eq!(broker.get("/health").status, 200);
}

#[test]
fn failed_and_successful_deliveries_are_counted() {
    let broker = Broker::start();
    let failing = Sink::with_reply(Reply::Status(500));
    let healthy = Sink::start();
    let failing_sid = subscribe(&broker, &failing.url(), &[]);
    let unreachable_sid = subscribe(&broker, &format!("http://127.0.0.1:{}", free_port()), &[]);
    let healthy_sid = subscribe(&broker, &healthy.url(), &[]);
    broker.update_ok("UPDATE", &[busy(1)]);
    healthy.wait_notifications(1, Duration::from_secs(10));

    for sid in [&failing_sid, &unreachable_sid] {
        let subscription = wait_until(Duration::from_secs(30), "failsCounter > 0", || {
            let subscription = broker.get(&format!("/ngsi10/subscription/{sid}")).json();
            (counter(&subscription, "failsCounter") > 0.0).then_some(subscription)
        });
        assert!(
            find_key(&subscription, "lastFailureReason").and_then(Value::as_str).is_some_and(|r| !r.is_empty()),
            "no lastFailureReason: {subscription}"
        );
        assert!(find_key(&subscription, "lastFailure").is_some_and(|v| !v.is_null()), "no lastFailure: {subscription}");
    }
    let subscription = wait_until(Duration::from_secs(10), "timesSent > 0", || {
        let subscription = broker.get(&format!("/ngsi10/subscription/{healthy_sid}")).json();
        (counter(&subscription, "timesSent") > 0.0).then_some(subscription)
    });
    assert_eq!(counter(&subscription, "failsCounter"), 0.0, "{subscription}");
    assert!(find_key(&subscription, "lastSuccess").is_some_and(|v| !v.is_null()), "no lastSuccess: {subscription}");

    let text = broker.metrics();
    let failed = metric_sum(&text, &["notification", "fail"]).unwrap_or(0.0);
    assert!(failed > 0.0, "failed notifications not counted in /metrics:\n{text}");
    let sent = metric_sum(&text, &["notification", "sent"]).unwrap_or(0.0);
    assert!(sent > 0.0, "sent notifications not counted in /metrics:\n{text}");
}

#[test]
fn subscriber_recovering_from_errors_gets_later_notifications() {
    let broker = Broker::start();
    let sink = Sink::with_reply(Reply::Status(500));
    subscribe(&broker, &sink.url(), &[]);
    broker.update_ok("UPDATE", &[busy(1)]);
    sink.wait_notifications(1, Duration::from_secs(10));
    sink.set_reply(Reply::Ok);
    broker.update_ok("UPDATE", &[busy(2)]);
    sink.wait_until(Duration::from_secs(30), "value 2 after recovery", |requests| {
        values(&requests.iter().map(|r| r.json()).collect::<Vec<_>>()).contains(&2)
    });
}

#[test]
fn reliable_subscription_retries_until_delivered_while_others_give_up() {
    let broker = BrokerOptions::new().env("FOGFLOW__BROKER__NOTIFICATION__MAX_ATTEMPTS", 1).start();
    let reliable = Sink::with_reply(Reply::Status(500));
    let plain = Sink::with_reply(Reply::Status(500));
    subscribe(&broker, &reliable.url(), &[("Require-Reliability", "true")]);
    subscribe(&broker, &plain.url(), &[]);
    broker.update_ok("UPDATE", &[busy(1)]);
    reliable.wait_until(Duration::from_secs(30), "a retry of the reliable notification", |requests| {
        requests.iter().filter(|r| r.answered == Some(500)).count() >= 2
    });
    reliable.set_reply(Reply::Ok);
    reliable.wait_until(Duration::from_secs(60), "the reliable notification delivered after recovery", |requests| {
        requests.iter().any(|r| r.answered == Some(200) && values(&[r.json()]).contains(&1))
    });
    assert_eq!(plain.requests().len(), 1, "max_attempts = 1 without Require-Reliability: {:?}", plain.requests());
}

#[test]
fn full_queue_of_a_stalled_subscriber_drops_and_counts_without_blocking_updates() {
    let broker = BrokerOptions::new()
        .env("FOGFLOW__BROKER__NOTIFICATION__QUEUE_CAPACITY", 2)
        .env("FOGFLOW__BROKER__NOTIFICATION__TIMEOUT_MS", 30_000)
        .start();
    let stalled = Sink::with_reply(Reply::Stall);
    let healthy = Sink::start();
    subscribe(&broker, &stalled.url(), &[]);
    subscribe(&broker, &healthy.url(), &[]);
    for value in 1..=30 {
        broker.update_ok("UPDATE", &[busy(value)]);
    }
    healthy.wait_until(Duration::from_secs(10), "value 30 at the healthy subscriber", |requests| {
        values(&requests.iter().map(|r| r.json()).collect::<Vec<_>>()).contains(&30)
    });
    let text = wait_until(Duration::from_secs(10), "a dropped-notification count", || {
        let text = broker.metrics();
        (metric_sum(&text, &["notification", "drop"]).unwrap_or(0.0) > 0.0).then_some(text)
    });
    assert!(
        metric_sum(&text, &["notification", "drop"]).unwrap() <= 60.0,
        "more drops than elements queued (30 updates x 2 subscriptions): {text}"
    );
}

#[test]
fn backlog_is_delivered_completely_in_order_in_batches_of_at_most_max_batch() {
    let broker = BrokerOptions::new().env("FOGFLOW__BROKER__NOTIFICATION__MAX_BATCH", 10).start();
    let sink = Sink::with_reply(Reply::SlowOk(100));
    subscribe(&broker, &sink.url(), &[]);
    std::thread::scope(|scope| {
        let broker = &broker;
        scope.spawn(move || {
            for value in 1..=100 {
                broker.update_ok("UPDATE", &[busy(value)]);
            }
        });
    });
    sink.wait_until(Duration::from_secs(20), "value 100", |requests| {
        values(&requests.iter().map(|r| r.json()).collect::<Vec<_>>()).contains(&100)
    });
    let all = sink.notifications();
    assert_eq!(values(&all), (1..=100).collect::<Vec<i64>>(), "every change exactly once, in order");
    let largest = all.iter().map(|n| elements(n).len()).max().unwrap_or(0);
    assert!(largest <= 10, "a notification carried {largest} elements, max_batch is 10");
    assert!(largest > 1, "a backlog behind a slow subscriber was not batched: {} notifications", all.len());
}

#[test]
fn current_state_of_many_entities_is_sent_in_batches_without_loss() {
    let broker = BrokerOptions::new().env("FOGFLOW__BROKER__NOTIFICATION__MAX_BATCH", 100).start();
    let many: Vec<Value> =
        (0..250).map(|n| element(&format!("Many.{n}"), "M", &[("n", "integer", json!(n))])).collect();
    broker.update_ok("UPDATE", &many);
    let sink = Sink::start();
    broker.subscribe_ok(&json!({"entities":[{"id":"Many.*","isPattern":true}],"reference":sink.url()}));
    sink.wait_until(Duration::from_secs(20), "250 entities notified", |requests| {
        requests.iter().map(|r| elements(&r.json()).len()).sum::<usize>() >= 250
    });
    std::thread::sleep(Duration::from_millis(500));
    let all = sink.notifications();
    let mut ids: Vec<String> =
        all.iter().flat_map(elements).map(|e| e["entityId"]["id"].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(ids.len(), 250, "each entity once");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 250, "duplicates in the current-state notification");
    assert!(all.iter().all(|n| elements(n).len() <= 100), "a batch exceeds max_batch 100");
}
