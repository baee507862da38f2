//! The broker's side of discovery (`broker.use_discovery = true`), with a recording sink standing in for
//! discovery: self-registration as `IoTBroker`/`Broker.001` with its advertised URL, periodic heartbeats,
//! entity registrations listing the full merged attribute set, unregistration of deleted entities and of the
//! broker on shutdown, local reads and writes that do not wait when discovery is closed or stalled, and
//! (re-)registration once discovery comes up or restarts empty (spec §12.17, reliability F12).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{attr, element, free_port, located_element, Broker, BrokerOptions, Recorded, Reply, Sink};

fn with_discovery_at(port: u16) -> BrokerOptions {
    BrokerOptions::new()
        .with_discovery()
        .env("FOGFLOW__DISCOVERY__HTTP_PORT", port)
        .env("FOGFLOW__DISCOVERY__HOST_IP", "127.0.0.1")
        .env("FOGFLOW__BROKER__HEARTBEAT_INTERVAL", 1)
}

/// The `contextRegistrations` of `POST /ngsi9/registerContext` requests.
fn registrations(requests: &[Recorded]) -> Vec<Value> {
    requests
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/ngsi9/registerContext")
        .flat_map(|r| r.json()["contextRegistrations"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn registers_entity(registration: &Value, id: &str, entity_type: &str) -> bool {
    registration["entities"]
        .as_array()
        .is_some_and(|list| list.iter().any(|e| e["id"] == id && e["type"] == entity_type))
}

fn registered_attributes(registration: &Value) -> Vec<String> {
    let mut names: Vec<String> = registration["attributes"]
        .as_array()
        .map(|list| list.iter().filter_map(|a| a["name"].as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    names.sort();
    names
}

fn heartbeats(requests: &[Recorded]) -> Vec<Value> {
    requests.iter().filter(|r| r.method == "POST" && r.path == "/ngsi9/broker/heartbeat").map(Recorded::json).collect()
}

#[test]
fn spec12_11_broker_registers_itself_and_heartbeats_with_one_advertised_url() {
    let discovery = Sink::start();
    let broker = with_discovery_at(discovery.port).start();
    let url = broker.advertised_url();
    let requests = discovery.wait_until(Duration::from_secs(20), "self-registration and two heartbeats", |requests| {
        registrations(requests).iter().any(|r| registers_entity(r, "Broker.001", "IoTBroker"))
            && heartbeats(requests).len() >= 2
    });
    let own = registrations(&requests).into_iter().find(|r| registers_entity(r, "Broker.001", "IoTBroker")).unwrap();
    assert_eq!(own["providingApplication"], url.as_str(), "{own}");
    let metadata = own["contextMetadata"].as_array().cloned().unwrap_or_default();
    let location = metadata.iter().find(|m| m["name"] == "location").unwrap_or_else(|| panic!("no location: {own}"));
    assert_eq!(location["type"], "point", "{own}");
    assert!(location["value"]["latitude"].is_f64() && location["value"]["longitude"].is_f64(), "{own}");

    let beat = &heartbeats(&requests)[0];
    assert_eq!(beat["id"], "Broker.001", "{beat}");
    assert_eq!(beat["myURL"], url.as_str(), "{beat}");
    assert!(requests.iter().all(|r| r.path.starts_with("/ngsi9/")), "discovery calls outside /ngsi9");
}

#[test]
fn spec12_3_entity_registration_lists_all_merged_attributes() {
    let discovery = Sink::start();
    let broker = with_discovery_at(discovery.port).start();
    broker.update_ok(
        "UPDATE",
        &[located_element("Device.reg1", "Temperature", &[("temp", "integer", json!(1))], 49.4, 8.68, "Heidelberg")],
    );
    let requests = discovery.wait_until(Duration::from_secs(15), "a registration of Device.reg1", |requests| {
        registrations(requests).iter().any(|r| registers_entity(r, "Device.reg1", "Temperature"))
    });
    let first =
        registrations(&requests).into_iter().find(|r| registers_entity(r, "Device.reg1", "Temperature")).unwrap();
    assert_eq!(first["providingApplication"], broker.advertised_url().as_str(), "{first}");
    assert_eq!(registered_attributes(&first), ["temp"], "{first}");
    let attribute = &first["attributes"][0];
    assert_eq!(attribute["type"], "integer", "{first}");
    assert_eq!(attribute["isDomain"], false, "{first}");
    assert!(first["contextMetadata"].to_string().contains("location"), "domain metadata registered: {first}");

    broker.update_ok("UPDATE", &[element("Device.reg1", "Temperature", &[("hum", "integer", json!(2))])]);
    broker.update_ok("APPEND", &[element("Device.reg1", "Temperature", &[("co2", "integer", json!(3))])]);
    discovery.wait_until(Duration::from_secs(15), "a registration listing temp, hum and co2", |requests| {
        registrations(requests).iter().any(|r| {
            registers_entity(r, "Device.reg1", "Temperature") && registered_attributes(r) == ["co2", "hum", "temp"]
        })
    });
}

fn local_work_is_prompt(broker: &Broker) {
    for n in 0..5 {
        let started = Instant::now();
        broker.update_ok("UPDATE", &[element(&format!("Local.{n}"), "L", &[("v", "integer", json!(n))])]);
        let entity = broker.get(&format!("/ngsi10/entity/Local.{n}"));
        assert_eq!(entity.status, 200, "{entity:?}");
        assert_eq!(attr(&entity.json(), "v"), Some(json!(n)));
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "a local write and read waited on discovery: {:?}",
            started.elapsed()
        );
    }
    assert_eq!(broker.get("/health").status, 200);
}

#[test]
fn closed_discovery_port_does_not_block_local_reads_and_writes() {
    let broker = with_discovery_at(free_port()).start();
    local_work_is_prompt(&broker);
}

#[test]
fn stalled_discovery_does_not_block_local_reads_and_writes() {
    let discovery = Sink::with_reply(Reply::Stall);
    let broker = with_discovery_at(discovery.port).start();
    local_work_is_prompt(&broker);
    discovery.wait_until(Duration::from_secs(10), "the broker trying discovery", |requests| !requests.is_empty());
}

#[test]
fn deleted_entities_and_the_stopping_broker_are_unregistered() {
    let discovery = Sink::start();
    let mut broker = with_discovery_at(discovery.port).start();
    broker.update_ok("UPDATE", &[element("Gone.1", "G", &[("v", "integer", json!(1))])]);
    discovery.wait_until(Duration::from_secs(15), "Gone.1 registered", |requests| {
        registrations(requests).iter().any(|r| registers_entity(r, "Gone.1", "G"))
    });
    assert_eq!(broker.delete("/ngsi10/entity/Gone.1").status, 200);
    discovery.wait_until(Duration::from_secs(15), "Gone.1 unregistered", |requests| {
        requests.iter().any(|r| r.method == "DELETE" && r.path == "/ngsi9/registration/Gone.1")
    });
    let status = broker.terminate(Duration::from_secs(15)).expect("no exit after SIGTERM");
    assert_eq!(status.code(), Some(0));
    assert!(
        discovery.requests().iter().any(|r| r.method == "DELETE" && r.path == "/ngsi9/registration/Broker.001"),
        "the broker did not unregister itself on shutdown"
    );
}

#[test]
fn registrations_made_while_discovery_was_down_arrive_once_it_is_up() {
    let port = free_port();
    let broker = with_discovery_at(port).start();
    broker.update_ok("UPDATE", &[element("Early.1", "E", &[("v", "integer", json!(1))])]);
    std::thread::sleep(Duration::from_millis(1500));
    let discovery = Sink::on_port(port, Reply::Ok);
    discovery.wait_until(
        Duration::from_secs(30),
        "the broker and Early.1 registered after discovery came up",
        |requests| {
            let all = registrations(requests);
            all.iter().any(|r| registers_entity(r, "Broker.001", "IoTBroker"))
                && all.iter().any(|r| registers_entity(r, "Early.1", "E"))
        },
    );
}

#[test]
fn broker_re_registers_everything_after_discovery_restarts_empty() {
    let port = free_port();
    let first = Sink::on_port(port, Reply::Ok);
    let broker = with_discovery_at(port).start();
    broker.update_ok("UPDATE", &[element("Kept.1", "K", &[("v", "integer", json!(1))])]);
    first.wait_until(Duration::from_secs(15), "Kept.1 registered", |requests| {
        registrations(requests).iter().any(|r| registers_entity(r, "Kept.1", "K"))
    });
    drop(first);
    std::thread::sleep(Duration::from_millis(2500));
    let second = Sink::on_port(port, Reply::Ok);
    second.wait_until(
        Duration::from_secs(20),
        "the broker and Kept.1 registered again with the restarted discovery",
        |requests| {
            let all = registrations(requests);
            all.iter().any(|r| registers_entity(r, "Broker.001", "IoTBroker"))
                && all.iter().any(|r| registers_entity(r, "Kept.1", "K"))
        },
    );
}
