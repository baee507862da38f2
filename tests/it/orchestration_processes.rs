//! Task processes and role placement on the real binary: operators started by the worker stop with it (graceful
//! stop and SIGKILL alike), a crashed operator is restarted, the control plane runs as a process apart from the
//! broker and discovery, an operator written only against FogFlow's published protocol (Python, FogFlow's
//! template style) runs through the worker, and the master's NGSI agent refuses bad input in NGSI's format.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::fogflow::{At, FogFlow, FogFlowOptions};
use crate::common::wait_until;

const FLOW_TIMEOUT: Duration = Duration::from_secs(30);

fn temperature(id: &str, celsius: f64) -> Value {
    json!({"entityId": {"id": id, "type": "Temperature", "isPattern": false},
        "attributes": [{"name": "temperature", "type": "float", "value": celsius}]})
}

fn worker_tasks(fogflow: &FogFlow) -> Vec<Value> {
    fogflow.get(At::Worker, "/tasks").json().as_array().cloned().unwrap_or_default()
}

fn running_pids(fogflow: &FogFlow, count: usize) -> Vec<u32> {
    wait_until(FLOW_TIMEOUT, &format!("{count} running tasks with a pid"), || {
        let tasks = worker_tasks(fogflow);
        let pids: Vec<u32> = tasks
            .iter()
            .filter(|t| t["status"] == "running")
            .filter_map(|t| t["pid"].as_u64().map(|p| p as u32))
            .collect();
        (pids.len() == count).then_some(pids)
    })
}

fn alive(pid: u32) -> bool {
    // A zombie is not alive: it only waits for its parent to reap it.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| stat.rsplit(')').next().map(|rest| !rest.trim_start().starts_with('Z')).unwrap_or(false))
        .unwrap_or(false)
}

fn fahrenheit_of(fogflow: &FogFlow, source: &str, expected: f64, output_type: &str) {
    wait_until(FLOW_TIMEOUT, &format!("{source} converted to {expected}"), || {
        let body = json!({"entities": [{"type": output_type, "isPattern": true, "id": ".*"}]});
        let answer = fogflow.post(At::Broker, "/ngsi10/queryContext", &body).json();
        answer["contextResponses"].as_array()?.iter().find_map(|r| {
            let attributes = r["contextElement"]["attributes"].as_array()?;
            let value = attributes.iter().find(|a| a["name"] == "temperature_f")?["value"].as_f64()?;
            ((value - expected).abs() < 1e-6).then_some(())
        })
    })
}

#[test]
fn operators_stop_with_a_graceful_stop_and_with_sigkill() {
    let mut fogflow = FogFlow::start();
    assert_eq!(fogflow.get(At::Designer, "/fogfunction/Convert/enable").status, 200);
    fogflow.update("UPDATE", &[temperature("T1", 1.0), temperature("T2", 2.0)]);
    let pids = running_pids(&fogflow, 2);
    assert!(pids.iter().all(|pid| alive(*pid)));
    let status = fogflow.terminate(Duration::from_secs(20)).expect("exits within the grace");
    assert!(status.success(), "graceful stop exit status {status}");
    for pid in &pids {
        assert!(!alive(*pid), "operator {pid} outlived a graceful stop");
    }

    fogflow.restart();
    let pids = running_pids(&fogflow, 2);
    fogflow.kill9();
    wait_until(Duration::from_secs(5), "operators gone after SIGKILL of their worker", || {
        pids.iter().all(|pid| !alive(*pid)).then_some(())
    });
}

#[test]
fn a_crashed_operator_is_restarted() {
    let fogflow = FogFlow::start();
    assert_eq!(fogflow.get(At::Designer, "/fogfunction/Convert/enable").status, 200);
    fogflow.update("UPDATE", &[temperature("T1", 1.0)]);
    let pid = running_pids(&fogflow, 1)[0];
    assert!(Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap().success());
    let new_pid = wait_until(FLOW_TIMEOUT, "the task running again with a new process", || {
        running_pids(&fogflow, 1).first().copied().filter(|p| *p != pid)
    });
    assert!(alive(new_pid));
    fogflow.update("UPDATE", &[temperature("T1", 100.0)]);
    fahrenheit_of(&fogflow, "T1", 212.0, "Fahrenheit");
}

#[test]
fn the_control_plane_runs_apart_from_broker_and_discovery() {
    let data_plane = FogFlowOptions::new().roles("discovery,broker").start();
    let control_plane = FogFlowOptions::new()
        .roles("master,worker,designer")
        .env("FOGFLOW__DISCOVERY__HTTP_PORT", data_plane.port(At::Discovery))
        .env("FOGFLOW__BROKER__HTTP_PORT", data_plane.port(At::Broker))
        .start();
    assert_eq!(control_plane.get(At::Designer, "/fogfunction/Convert/enable").status, 200);
    data_plane.update("UPDATE", &[temperature("Apart", 73.0)]);
    fahrenheit_of(&data_plane, "Apart", 163.4, "Fahrenheit");
    let tasks = control_plane.get(At::Master, "/tasks").json();
    assert_eq!(tasks.as_array().map(Vec::len), Some(1), "{tasks}");
}

#[test]
fn an_operator_speaking_only_fogflows_protocol_runs_through_the_worker() {
    let python = Command::new("python3").arg("--version").output();
    if python.is_err() {
        assert!(std::env::var("CI").is_err(), "python3 is required in CI");
        eprintln!("skipped: python3 not found");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/operators/fogflow_python_operator.py");
    let fogflow = FogFlowOptions::new()
        .env("FOGFLOW__WORKER__OPERATORS__PYCONVERTER", format!("python3 -u {}", script.display()))
        .start();
    let operator = json!([{"name": "pyconverter", "description": "FogFlow template operator",
        "parameters": [], "dockerimages": [{"name": "pyconverter", "tag": "latest", "hwType": "X86", "osType": "Linux"}]}]);
    assert_eq!(fogflow.post(At::Designer, "/operator", &operator).status, 200);
    let function = json!([{"name": "PyConvert", "topology": {"name": "PyConvert", "tasks": [{"name": "Main",
        "operator": "pyconverter",
        "input_streams": [{"selected_type": "Temperature", "selected_attributes": [], "groupby": "EntityID",
            "scoped": false}],
        "output_streams": [{"entity_type": "PyOut"}]}]}}]);
    let response = fogflow.post(At::Designer, "/fogfunction", &function);
    assert_eq!(response.status, 200, "{response:?}");
    fogflow.update("UPDATE", &[temperature("Device.Py", 73.0)]);
    fahrenheit_of(&fogflow, "Device.Py", 163.4, "PyOut");
    let tasks = worker_tasks(&fogflow);
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert!(tasks[0]["id"].as_str().unwrap().starts_with("Task.PyConvert.Main."));
}

#[test]
fn the_master_agent_refuses_bad_input_in_ngsi_format() {
    let fogflow = FogFlow::start();
    let response = fogflow.request(At::MasterAgent, "POST", "/notifyContextAvailability", Some("{not json"), &[]);
    assert_eq!(response.status, 400, "{response:?}");
    assert_eq!(response.json()["responseCode"]["code"], 400);
    let response = fogflow.get(At::MasterAgent, "/nowhere");
    assert_eq!(response.status, 404);
    // A notification for a subscription the master does not know is acknowledged and ignored.
    let notification = json!({"subscribeId": "unknown", "errorCode": {"code": 201},
        "contextRegistrationResponses": []});
    assert_eq!(fogflow.post(At::MasterAgent, "/notifyContextAvailability", &notification).status, 200);
    assert_eq!(fogflow.get(At::Master, "/status").json()["id"], "Master.001");
    wait_until(FLOW_TIMEOUT, "the worker in the master's list", || {
        fogflow.get(At::Master, "/workers").json().get("Worker.001").map(|_| ())
    });
}
