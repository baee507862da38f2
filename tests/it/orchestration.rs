//! The orchestration path end to end on the real binary (`--role all`: designer, master, worker, broker and
//! discovery in one process on the in-process bus, tasks run by the process runtime as `fogflow operator …`):
//! fog functions launch one task per matching entity, outputs appear at the broker with the right values,
//! removing inputs removes tasks, disabling removes everything, chained topologies work, geoscopes limit inputs,
//! and a restart of the whole process neither duplicates nor loses tasks.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::fogflow::{At, FogFlow};
use crate::common::wait_until;

/// Time for an entity → registration → availability → placement → launch → output chain.
const FLOW_TIMEOUT: Duration = Duration::from_secs(30);

fn temperature(id: &str, celsius: f64, latitude: f64, longitude: f64) -> Value {
    json!({
        "entityId": {"id": id, "type": "Temperature", "isPattern": false},
        "attributes": [{"name": "temperature", "type": "float", "value": celsius}],
        "domainMetadata": [{"name": "location", "type": "point",
            "value": {"latitude": latitude, "longitude": longitude}}]
    })
}

/// Entities of `entity_type` at the broker.
fn entities_of(fogflow: &FogFlow, entity_type: &str) -> Vec<Value> {
    let body = json!({"entities": [{"type": entity_type, "isPattern": true, "id": ".*"}]});
    let response = fogflow.post(At::Broker, "/ngsi10/queryContext", &body);
    assert_eq!(response.status, 200, "{response:?}");
    response.json()["contextResponses"]
        .as_array()
        .map(|list| list.iter().map(|r| r["contextElement"].clone()).collect())
        .unwrap_or_default()
}

fn attribute(element: &Value, name: &str) -> Option<Value> {
    element["attributes"].as_array()?.iter().find(|a| a["name"] == name).map(|a| a["value"].clone())
}

/// The master's task table.
fn master_tasks(fogflow: &FogFlow) -> Vec<Value> {
    let response = fogflow.get(At::Master, "/tasks");
    assert_eq!(response.status, 200, "{response:?}");
    response.json().as_array().cloned().unwrap_or_default()
}

/// The worker's task list.
fn worker_tasks(fogflow: &FogFlow) -> Vec<Value> {
    let response = fogflow.get(At::Worker, "/tasks");
    assert_eq!(response.status, 200, "{response:?}");
    response.json().as_array().cloned().unwrap_or_default()
}

fn running(tasks: &[Value]) -> usize {
    tasks.iter().filter(|t| t["Status"] == "running" || t["status"] == "running").count()
}

/// The Fahrenheit value published for `source`, once it equals `expected`.
fn wait_fahrenheit(fogflow: &FogFlow, source: &str, expected: f64) -> Value {
    wait_until(FLOW_TIMEOUT, &format!("{source} converted to {expected} °F"), || {
        entities_of(fogflow, "Fahrenheit").into_iter().find(|e| {
            attribute(e, "source").as_ref().and_then(Value::as_str) == Some(source)
                && attribute(e, "temperature_f").and_then(|v| v.as_f64()).is_some_and(|f| (f - expected).abs() < 1e-6)
        })
    })
}

fn enable(fogflow: &FogFlow, name: &str) {
    let response = fogflow.get(At::Designer, &format!("/fogfunction/{name}/enable"));
    assert_eq!(response.status, 200, "{response:?}");
}

#[test]
fn converter_fog_function_runs_one_task_per_entity_and_follows_the_input() {
    let fogflow = FogFlow::start();
    enable(&fogflow, "Convert");
    fogflow.update("UPDATE", &[temperature("Device.Temp001", 73.0, 35.69, 139.70)]);
    let output = wait_fahrenheit(&fogflow, "Device.Temp001", 163.4);
    let output_id = output["entityId"]["id"].as_str().unwrap().to_string();
    assert!(output_id.starts_with("Fahrenheit.") && output_id.ends_with(".1"), "FogFlow's output id: {output_id}");
    let tasks = master_tasks(&fogflow);
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    let task_id = tasks[0]["TaskID"].as_str().unwrap();
    assert!(task_id.starts_with("Task.Convert.Main."), "{task_id}");
    assert_eq!(output_id.split('.').nth(1), task_id.split('.').nth(3), "output and task share the group hash");

    // The input changes: the output follows.
    fogflow.update("UPDATE", &[temperature("Device.Temp001", 20.0, 35.69, 139.70)]);
    wait_fahrenheit(&fogflow, "Device.Temp001", 68.0);

    // Two more entities: one task each (groupBy EntityID).
    fogflow.update("UPDATE", &[temperature("Device.Temp002", 0.0, 35.0, 139.0)]);
    fogflow.update("UPDATE", &[temperature("Device.Temp003", 100.0, 35.0, 139.0)]);
    wait_fahrenheit(&fogflow, "Device.Temp002", 32.0);
    wait_fahrenheit(&fogflow, "Device.Temp003", 212.0);
    wait_until(FLOW_TIMEOUT, "3 running tasks on the worker", || (running(&worker_tasks(&fogflow)) == 3).then_some(()));
    assert_eq!(master_tasks(&fogflow).len(), 3);
    // The designer's task table shows them too.
    wait_until(FLOW_TIMEOUT, "3 tasks in /info/task", || {
        let list = fogflow.get(At::Designer, "/info/task").json();
        (list.as_array().map(Vec::len) == Some(3)).then_some(())
    });

    // Removing an input entity removes its task and its output entity.
    let doomed = entities_of(&fogflow, "Fahrenheit")
        .into_iter()
        .find(|e| attribute(e, "source").as_ref().and_then(Value::as_str) == Some("Device.Temp002"))
        .unwrap();
    let doomed_id = doomed["entityId"]["id"].as_str().unwrap().to_string();
    fogflow.update("DELETE", &[json!({"entityId": {"id": "Device.Temp002", "type": "Temperature"}})]);
    wait_until(FLOW_TIMEOUT, "the task of the deleted entity removed", || {
        (master_tasks(&fogflow).len() == 2 && worker_tasks(&fogflow).len() == 2).then_some(())
    });
    wait_until(FLOW_TIMEOUT, "the deleted entity's output removed", || {
        fogflow.entity(&doomed_id).is_none().then_some(())
    });

    // Disabling the fog function removes every task.
    let response = fogflow.get(At::Designer, "/fogfunction/Convert/disable");
    assert_eq!(response.status, 200, "{response:?}");
    wait_until(FLOW_TIMEOUT, "every task removed", || {
        (master_tasks(&fogflow).is_empty() && worker_tasks(&fogflow).is_empty()).then_some(())
    });
}

#[test]
fn a_chained_topology_detects_anomalies_and_counts_them() {
    let fogflow = FogFlow::start();
    let intent = json!({"topology": "anomaly-detection", "priority": {"exclusive": false, "level": 0},
        "qos": "NONE", "geoscope": {"scopeType": "global", "scopeValue": "global"}});
    let response = fogflow.post(At::Designer, "/intent", &intent);
    assert_eq!(response.status, 200, "{response:?}");
    let panel = |usage: i64| {
        json!({"entityId": {"id": "Device.PowerPanel.01", "type": "PowerPanel", "isPattern": false},
            "attributes": [{"name": "usage", "type": "integer", "value": usage},
                           {"name": "shop", "type": "string", "value": "01"}],
            "domainMetadata": [{"name": "location", "type": "point", "value": {"latitude": 35.7, "longitude": 139.7}},
                               {"name": "shop", "type": "string", "value": "01"}]})
    };
    fogflow.update("UPDATE", &[panel(10)]);
    // No rule yet: the detector waits for both inputs.
    std::thread::sleep(Duration::from_secs(2));
    assert!(master_tasks(&fogflow).is_empty(), "{:?}", master_tasks(&fogflow));
    fogflow.update(
        "UPDATE",
        &[json!({"entityId": {"id": "Stream.Rule.01", "type": "Rule", "isPattern": false},
        "attributes": [{"name": "threshold", "type": "integer", "value": 30}]})],
    );
    wait_until(FLOW_TIMEOUT, "the detector running", || {
        let tasks = master_tasks(&fogflow);
        tasks.iter().any(|t| t["TaskName"] == "Detector" && t["Status"] == "running").then_some(())
    });
    // Over the threshold: an anomaly, then the counting task and its statistics.
    wait_until(FLOW_TIMEOUT, "an Anomaly entity", || {
        fogflow.update("UPDATE", &[panel(87)]);
        (!entities_of(&fogflow, "Anomaly").is_empty()).then_some(())
    });
    let stat = wait_until(Duration::from_secs(60), "a Stat entity from the counting task", || {
        entities_of(&fogflow, "Stat").into_iter().next()
    });
    assert!(attribute(&stat, "counter").and_then(|v| v.as_i64()).is_some_and(|n| n >= 1), "{stat}");
    let tasks = master_tasks(&fogflow);
    assert_eq!(tasks.iter().filter(|t| t["TaskName"] == "Counting").count(), 1, "{tasks:?}");
    // Deleting the intent removes all of its tasks.
    let id = fogflow.get(At::Designer, "/intent").json().as_object().unwrap().keys().next().unwrap().clone();
    assert_eq!(fogflow.delete(At::Designer, &format!("/intent/{id}")).status, 200);
    wait_until(FLOW_TIMEOUT, "every task removed", || master_tasks(&fogflow).is_empty().then_some(()));
}

#[test]
fn a_geoscope_limits_which_inputs_count() {
    let fogflow = FogFlow::start();
    let service = json!([{"topology": {"name": "Local", "description": "", "tasks": [{"name": "Main",
        "operator": "converter",
        "input_streams": [{"selected_type": "Temperature", "selected_attributes": [], "groupby": "EntityID",
            "scoped": true}],
        "output_streams": [{"entity_type": "Fahrenheit"}]}]}}]);
    assert_eq!(fogflow.post(At::Designer, "/service", &service).status, 200);
    let intent = json!({"topology": "Local", "geoscope": {"scopeType": "circle",
        "scopeValue": {"centerLatitude": 35.0, "centerLongitude": 139.0, "radius": 2000}}});
    assert_eq!(fogflow.post(At::Designer, "/intent", &intent).status, 200);
    fogflow.update("UPDATE", &[temperature("Inside", 10.0, 35.001, 139.0)]);
    fogflow.update("UPDATE", &[temperature("Outside", 10.0, 36.0, 139.0)]);
    wait_fahrenheit(&fogflow, "Inside", 50.0);
    std::thread::sleep(Duration::from_secs(2));
    let tasks = master_tasks(&fogflow);
    assert_eq!(tasks.len(), 1, "only the entity inside the circle counts: {tasks:?}");
    assert_eq!(tasks[0]["Inputs"][0]["ID"], "Inside");
}

#[test]
fn a_restart_neither_duplicates_nor_loses_tasks() {
    let mut fogflow = FogFlow::start();
    enable(&fogflow, "Convert");
    fogflow.update("UPDATE", &[temperature("Device.A", 1.0, 35.0, 139.0)]);
    fogflow.update("UPDATE", &[temperature("Device.B", 2.0, 35.0, 139.0)]);
    wait_until(FLOW_TIMEOUT, "2 running tasks", || (running(&worker_tasks(&fogflow)) == 2).then_some(()));
    let before: Vec<Value> = master_tasks(&fogflow).iter().map(|t| t["TaskID"].clone()).collect();
    fogflow.kill9();
    fogflow.restart();
    wait_until(FLOW_TIMEOUT, "the same 2 tasks running again", || {
        (running(&worker_tasks(&fogflow)) == 2).then_some(())
    });
    let mut after: Vec<Value> = master_tasks(&fogflow).iter().map(|t| t["TaskID"].clone()).collect();
    after.sort_by_key(|v| v.to_string());
    let mut expected = before.clone();
    expected.sort_by_key(|v| v.to_string());
    assert_eq!(after, expected);
    // Still exactly two after the restart has settled (no late duplicate).
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(worker_tasks(&fogflow).len(), 2, "{:?}", worker_tasks(&fogflow));
    // And the flow still works.
    fogflow.update("UPDATE", &[temperature("Device.A", 100.0, 35.0, 139.0)]);
    wait_fahrenheit(&fogflow, "Device.A", 212.0);
}
