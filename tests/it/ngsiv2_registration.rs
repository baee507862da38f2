//! NGSIv2 writes keep discovery informed exactly as NGSI10 writes do: a v2 creation registers the entity with
//! its attributes, a v2 attribute append re-registers the merged set, a v2 deletion unregisters it (a recording
//! sink plays discovery).

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{BrokerOptions, Recorded, Sink};

const WAIT: Duration = Duration::from_secs(20);

fn registered_attributes(requests: &[Recorded], id: &str) -> Vec<Vec<String>> {
    requests
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/ngsi9/registerContext")
        .flat_map(|r| r.json()["contextRegistrations"].as_array().cloned().unwrap_or_default())
        .filter(|registration| {
            registration["entities"].as_array().is_some_and(|list| list.iter().any(|e| e["id"] == id))
        })
        .map(|registration| {
            let mut names: Vec<String> = registration["attributes"]
                .as_array()
                .map(|list| list.iter().filter_map(|a| a["name"].as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            names.sort();
            names
        })
        .collect()
}

#[test]
fn v2_writes_register_and_unregister_with_discovery() {
    let discovery = Sink::start();
    let broker = BrokerOptions::new()
        .with_discovery()
        .env("FOGFLOW__DISCOVERY__HTTP_PORT", discovery.port)
        .env("FOGFLOW__DISCOVERY__HOST_IP", "127.0.0.1")
        .start();
    let entity = json!({"id":"Room1","type":"Room","temp":{"value":20}});
    let created = broker.request("POST", "/v2/entities", Some(&entity.to_string()), &[]);
    assert_eq!(created.status, 201, "{created:?}");
    discovery.wait_until(WAIT, "Room1 registered with temp", |requests| {
        registered_attributes(requests, "Room1").iter().any(|names| names == &["temp"])
    });
    let attrs: Value = json!({"co2":{"value":400}});
    let appended = broker.request("POST", "/v2/entities/Room1/attrs", Some(&attrs.to_string()), &[]);
    assert_eq!(appended.status, 204, "{appended:?}");
    discovery.wait_until(WAIT, "Room1 re-registered with co2 and temp", |requests| {
        registered_attributes(requests, "Room1").iter().any(|names| names == &["co2", "temp"])
    });
    assert_eq!(broker.delete("/v2/entities/Room1").status, 204);
    discovery.wait_until(WAIT, "Room1 unregistered", |requests| {
        requests.iter().any(|r| r.method == "DELETE" && r.path == "/ngsi9/registration/Room1")
    });
}
