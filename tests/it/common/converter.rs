//! The converter fog function (`Convert`: Temperature °C → Fahrenheit °F) as the orchestration tests drive it:
//! a Temperature input entity, the converted value read back from the broker, and the master's one running task.

use std::time::Duration;

use serde_json::{json, Value};

use super::fogflow::{At, FogFlow};
use super::wait_until;

/// A Temperature entity (NGSI10) with a location, as a device publishes it.
pub fn temperature(id: &str, celsius: f64) -> Value {
    json!({
        "entityId": {"id": id, "type": "Temperature", "isPattern": false},
        "attributes": [{"name": "temperature", "type": "float", "value": celsius}],
        "domainMetadata": [{"name": "location", "type": "point",
            "value": {"latitude": 35.69, "longitude": 139.70}}]
    })
}

/// The °F value the converter published for `source`, if any.
pub fn fahrenheit_of(broker: &FogFlow, source: &str) -> Option<f64> {
    let body = json!({"entities": [{"type": "Fahrenheit", "isPattern": true, "id": ".*"}]});
    let response = broker.post(At::Broker, "/ngsi10/queryContext", &body);
    let responses = response.json()["contextResponses"].as_array().cloned().unwrap_or_default();
    responses.iter().map(|r| &r["contextElement"]).find_map(|element| {
        let attributes = element["attributes"].as_array()?;
        let value = |name: &str| attributes.iter().find(|a| a["name"] == name).map(|a| a["value"].clone());
        (value("source")?.as_str()? == source).then(|| value("temperature_f")?.as_f64()).flatten()
    })
}

/// Publishes `celsius` for `source` at `broker` and waits (up to `timeout`) for the converted value.
pub fn converted(broker: &FogFlow, source: &str, celsius: f64, timeout: Duration) {
    broker.update("UPDATE", &[temperature(source, celsius)]);
    let expected = celsius * 9.0 / 5.0 + 32.0;
    wait_until(timeout, &format!("{celsius} °C from {source} converted to {expected} °F"), || {
        fahrenheit_of(broker, source).filter(|f| (f - expected).abs() < 1e-6)
    });
}

/// The master's one task when it runs: `(task id, worker id)`; `None` otherwise (also while the master is a
/// standby and answers 503).
pub fn running_task(master: &FogFlow) -> Option<(String, String)> {
    let response = master.get(At::Master, "/tasks");
    let tasks = if response.status == 200 { response.json().as_array().cloned()? } else { return None };
    let [task] = tasks.as_slice() else { return None };
    if task["Status"] != "running" {
        return None;
    }
    Some((task["ID"].as_str()?.to_string(), task["Worker"].as_str()?.to_string()))
}
