//! Durability across a crash: whatever was acknowledged with 200 (entities, attribute merges, deletions,
//! subscriptions, cancellations) is there after `kill -9` and a restart on the same data directory, and the
//! restored subscription notifies again. A store of a newer format is refused and left as it was.

use std::time::Duration;

use serde_json::json;

use crate::common::{attr, attr_names, element, elements, Broker, BrokerOptions, Sink};

#[test]
fn acknowledged_writes_survive_kill_9() {
    let mut broker = Broker::start();
    let sink = Sink::start();
    broker.update_ok(
        "UPDATE",
        &[
            element("Keep.1", "K", &[("a", "integer", json!(1)), ("b", "string", json!("x"))]),
            element("Keep.2", "K", &[("a", "integer", json!(2))]),
            element("Drop.1", "K", &[("a", "integer", json!(3))]),
        ],
    );
    broker.update_ok("UPDATE", &[element("Keep.1", "K", &[("a", "integer", json!(10))])]);
    broker.update_ok("DELETE", &[json!({"entityId":{"id":"Keep.1"},"attributes":[{"name":"b"}]})]);
    assert_eq!(broker.delete("/ngsi10/entity/Drop.1").status, 200);
    let sid = broker.subscribe_ok(
        &json!({"entities":[{"id":"Keep.*","isPattern":true}],"attributes":["a"],"reference":sink.url()}),
    );
    let cancelled = broker.subscribe_ok(
        &json!({"entities":[{"id":"Keep.*","isPattern":true}],"reference":format!("{}/cancelled", sink.url())}),
    );
    assert_eq!(broker.delete(&format!("/ngsi10/subscription/{cancelled}")).status, 200);

    broker.kill9();
    broker.restart();

    let keep1 = broker.get("/ngsi10/entity/Keep.1");
    assert_eq!(keep1.status, 200, "Keep.1 lost: {keep1:?}");
    let keep1 = keep1.json();
    assert_eq!(attr(&keep1, "a"), Some(json!(10)), "merged value lost: {keep1}");
    assert_eq!(attr_names(&keep1), ["a"], "deleted attribute came back: {keep1}");
    assert_eq!(keep1["entityId"]["type"], "K");
    assert_eq!(attr(&broker.get("/ngsi10/entity/Keep.2").json(), "a"), Some(json!(2)));
    assert_eq!(broker.get("/ngsi10/entity/Drop.1").status, 404, "a deleted entity came back");

    let subscription = broker.get(&format!("/ngsi10/subscription/{sid}"));
    assert_eq!(subscription.status, 200, "subscription lost: {subscription:?}");
    assert_eq!(
        broker.get(&format!("/ngsi10/subscription/{cancelled}")).status,
        404,
        "a cancelled subscription came back"
    );

    let cancelled_before = sink.requests().iter().filter(|r| r.path.starts_with("/cancelled")).count();
    broker.update_ok("UPDATE", &[element("Keep.2", "K", &[("a", "integer", json!(22)), ("z", "integer", json!(0))])]);
    let all = sink.wait_notification(Duration::from_secs(10), "a notification after restart", |n| {
        n["subscriptionId"] == sid.as_str()
            && elements(n).iter().any(|e| e["entityId"]["id"] == "Keep.2" && attr(e, "a") == Some(json!(22)))
    });
    let last = elements(all.iter().rev().find(|n| n["subscriptionId"] == sid.as_str()).unwrap());
    assert!(last.iter().all(|e| attr_names(e) == ["a"]), "projection lost after restart: {all:?}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        sink.requests().iter().filter(|r| r.path.starts_with("/cancelled")).count(),
        cancelled_before,
        "the cancelled subscription notifies after restart"
    );
}

#[test]
fn many_concurrent_acknowledged_writes_survive_kill_9() {
    let mut broker = BrokerOptions::new().env("FOGFLOW__BROKER__DURABILITY", "group").start();
    std::thread::scope(|scope| {
        for writer in 0..4 {
            let broker = &broker;
            scope.spawn(move || {
                for n in 0..25 {
                    broker
                        .update_ok("UPDATE", &[element(&format!("W{writer}.{n}"), "W", &[("n", "integer", json!(n))])]);
                }
            });
        }
    });
    broker.kill9();
    broker.restart();
    let listed = broker.get("/ngsi10/entity").json();
    let count = listed.as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(count, 100, "acknowledged writes lost after kill -9: {count} of 100 present");
    assert_eq!(attr(&broker.get("/ngsi10/entity/W3.24").json(), "n"), Some(json!(24)));
}

#[test]
fn flush_durability_mode_also_survives_kill_9() {
    let mut broker = BrokerOptions::new().env("FOGFLOW__BROKER__DURABILITY", "flush").start();
    broker.update_ok("UPDATE", &[element("Flush.1", "F", &[("v", "integer", json!(1))])]);
    broker.kill9();
    broker.restart();
    assert_eq!(attr(&broker.get("/ngsi10/entity/Flush.1").json(), "v"), Some(json!(1)));
}

/// Sets `meta/format_version` of the stopped broker's sled store to `version`, or removes it (`None`).
fn set_format_version(broker: &Broker, version: Option<&str>) {
    let db = sled::open(broker.data_dir().join("broker")).expect("open the broker's sled store");
    let meta = db.open_tree("meta").expect("meta tree");
    match version {
        Some(version) => meta.insert("format_version", version.as_bytes()).map(|_| ()),
        None => meta.remove("format_version").map(|_| ()),
    }
    .expect("write format_version");
    db.flush().expect("flush");
}

#[test]
fn store_of_a_newer_or_unknown_format_is_refused_and_left_intact() {
    let mut broker = Broker::start();
    broker.update_ok("UPDATE", &[element("Old.1", "O", &[("v", "integer", json!(1))])]);
    let status = broker.terminate(Duration::from_secs(15)).expect("no exit after SIGTERM");
    assert_eq!(status.code(), Some(0));

    for (version, why) in [(Some("99"), "99"), (Some("garbage"), "garbage"), (None, "version")] {
        set_format_version(&broker, version);
        let status = broker.restart_expecting_exit();
        assert!(!status.success(), "a store with format {version:?} was opened: {status}");
        let log = broker.log();
        let last_run = log.rsplit("listening").next().unwrap_or(&log);
        assert!(
            last_run.contains(why) && last_run.contains("format"),
            "the refusal of format {version:?} does not say why:\n{log}"
        );
    }

    set_format_version(&broker, Some("1"));
    broker.restart();
    assert_eq!(attr(&broker.get("/ngsi10/entity/Old.1").json(), "v"), Some(json!(1)), "the refused store was altered");
}

/// Acknowledged writes made under load, while the store's journal is checkpointed into sled and retired in the
/// background, all survive a `kill -9` in the middle of the stream: four NGSI-LD writers each raise the counter
/// of their ten entities in turn; after the restart every entity holds at least the last value acknowledged for
/// it (or the one write that was in flight for it).
#[test]
fn writes_acknowledged_under_load_survive_a_kill_9_mid_stream() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    const WRITERS: usize = 4;
    const SLOTS: u64 = 10;
    let mut broker = Broker::start();
    let acked: Vec<Vec<AtomicU64>> = (0..WRITERS).map(|_| (0..SLOTS).map(|_| AtomicU64::new(0)).collect()).collect();
    let killed = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for (writer, acked) in acked.iter().enumerate() {
            let (broker, killed) = (&broker, &killed);
            scope.spawn(move || {
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(5)).build();
                let url = broker.url("/ngsi-ld/v1/entityOperations/upsert");
                for n in 1u64.. {
                    let slot = n % SLOTS;
                    let body = json!([{"id": format!("urn:ngsi-ld:Load:{writer}:{slot}"), "type": "Load",
                                       "n": {"type": "Property", "value": n}}])
                    .to_string();
                    match crate::common::exchange(
                        &agent,
                        "POST",
                        &url,
                        Some(&body),
                        &[("Content-Type", "application/json")],
                    ) {
                        Ok(resp) if resp.status == 201 || resp.status == 204 => {
                            acked[slot as usize].store(n, Ordering::SeqCst)
                        }
                        Ok(resp) if !killed.load(Ordering::SeqCst) => {
                            panic!("upsert refused before the kill: {resp:?}")
                        }
                        _ => return,
                    }
                }
            });
        }
        // Long enough for several checkpoints (one a second) to rotate and retire journal segments mid-stream.
        std::thread::sleep(Duration::from_millis(3500));
        killed.store(true, Ordering::SeqCst);
        broker.signal("KILL");
    });
    broker.wait_exit(Duration::from_secs(10)).expect("the broker exits on SIGKILL");
    broker.restart();
    let mut checked = 0;
    for (writer, slots) in acked.iter().enumerate() {
        for (slot, acked) in slots.iter().enumerate() {
            let acked = acked.load(Ordering::SeqCst);
            if acked == 0 {
                continue;
            }
            let entity =
                broker.get(&format!("/ngsi-ld/v1/entities/urn:ngsi-ld:Load:{writer}:{slot}?options=keyValues"));
            assert_eq!(entity.status, 200, "an acknowledged entity is lost: {entity:?}");
            let value = entity.json()["n"].as_u64().expect("a counter");
            assert!(
                value == acked || value == acked + SLOTS,
                "writer {writer} slot {slot}: acknowledged {acked}, found {value} after kill -9"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, WRITERS * SLOTS as usize, "every writer got through its slots before the kill");
}
