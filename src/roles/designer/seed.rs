//! The built-in registry written on the first start (only into an empty store, and only once: a user who
//! deletes a seed does not get it back after a restart): the operators `dummy`, `converter`, `counter` and
//! `anomaly` with images `fogflow/<name>:latest` for X86 and ARM64 (the worker's process runtime runs these
//! as `fogflow operator <name>`), the `anomaly-detection` service topology (spec §2.2), and the fog functions
//! `Convert` and `Test`, both disabled.
//!
//! Owns: the seed content. Must not: announce anything (seeded fog functions are disabled).

use serde_json::{json, Value};

use super::store::DesignerStore;
use crate::model::{FogFunction, Operator, Service};
use crate::store::StoreError;

/// The built-in operators and what they do.
const OPERATORS: [(&str, &str); 4] = [
    ("dummy", "FogFlow's dummy operator: republishes each input entity as its output"),
    ("converter", "converts temperatures from Celsius to Fahrenheit"),
    ("counter", "counts input updates in windows and publishes the count"),
    ("anomaly", "publishes an Anomaly when a panel's usage exceeds the threshold of a Rule entity"),
];

fn operator(name: &str, description: &str) -> Operator {
    let images: Vec<Value> = ["X86", "ARM64"]
        .iter()
        .map(|hw| {
            json!({"operatorName": name, "name": format!("fogflow/{name}"), "tag": "latest", "hwType": hw,
                   "osType": "Linux", "prefetched": false})
        })
        .collect();
    serde_json::from_value(json!({"name": name, "description": description, "parameters": [], "dockerimages": images}))
        .expect("the built-in operator is valid")
}

fn anomaly_detection() -> Service {
    serde_json::from_value(json!({"topology": {"name": "anomaly-detection",
        "description": "detect anomaly events in shops",
        "tasks": [
          {"name": "Detector", "operator": "anomaly",
           "input_streams": [
             {"selected_type": "PowerPanel", "selected_attributes": [], "groupby": "EntityID", "scoped": true},
             {"selected_type": "Rule", "selected_attributes": [], "groupby": "ALL", "scoped": false}],
           "output_streams": [{"entity_type": "Anomaly"}]},
          {"name": "Counting", "operator": "counter",
           "input_streams": [{"selected_type": "Anomaly", "selected_attributes": [], "groupby": "ALL", "scoped": true}],
           "output_streams": [{"entity_type": "Stat"}]}]}}))
    .expect("the built-in topology is valid")
}

fn fog_function(name: &str, operator: &str, output: &str) -> FogFunction {
    let mut function: FogFunction = serde_json::from_value(json!({"name": name, "status": "disabled",
        "topology": {"name": name, "description": format!("built-in fog function running {operator}"),
          "tasks": [{"name": "Main", "operator": operator,
            "input_streams": [{"selected_type": "Temperature", "selected_attributes": [], "groupby": "EntityID",
                               "scoped": false}],
            "output_streams": [{"entity_type": output}]}]},
        "intent": {"topology": name, "priority": {"exclusive": false, "level": 0}, "qos": "default",
                   "geoscope": {"scopeType": "global", "scopeValue": "global"}}}))
    .expect("the built-in fog function is valid");
    function.normalize(|_| true).expect("the built-in fog function is valid");
    function
}

/// The seeded fog functions.
pub fn fog_functions() -> Vec<FogFunction> {
    vec![fog_function("Convert", "converter", "Fahrenheit"), fog_function("Test", "dummy", "Out")]
}

/// Writes the seeds when this store was never seeded and holds nothing; whether it did. The caller commits.
pub fn seed_if_new(store: &DesignerStore) -> Result<bool, StoreError> {
    if store.seeded()? {
        return Ok(false);
    }
    let fresh = store.is_empty();
    if fresh {
        for (name, description) in OPERATORS {
            let mut operator = operator(name, description);
            if operator.validate().is_ok() {
                store.operators.insert(name, &operator)?;
            }
        }
        let service = anomaly_detection();
        store.topologies.insert(&service.topology.name, &service.topology)?;
        store.services.insert(&service.topology.name, &service)?;
        for function in fog_functions() {
            store.topologies.insert(&function.name, &function.topology)?;
            store.fogfunctions.insert(&function.name, &function)?;
        }
    }
    store.mark_seeded()?;
    Ok(fresh)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn seeds_are_valid_and_written_once() {
        let store = DesignerStore::open(Store::temporary().unwrap()).unwrap();
        assert!(seed_if_new(&store).unwrap());
        assert_eq!(store.operators.len(), 4);
        let anomaly = store.topologies.get("anomaly-detection").unwrap().unwrap();
        anomaly.validate(|op| store.operators.get(op).unwrap().is_some()).unwrap();
        let convert = store.fogfunctions.get("Convert").unwrap().unwrap();
        assert!(!convert.is_enabled());
        assert!(convert.intent.id.starts_with("ServiceIntent."));
        let dummy = store.operators.get("dummy").unwrap().unwrap();
        assert_eq!(dummy.image_for("amd64").unwrap().reference(), "fogflow/dummy:latest");
        assert_eq!(dummy.image_for("arm64").unwrap().hw_type, "ARM64");
        store.operators.remove("dummy").unwrap();
        assert!(!seed_if_new(&store).unwrap());
        assert!(store.operators.get("dummy").unwrap().is_none());
    }
}
