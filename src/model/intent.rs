//! Service intents and fog functions (spec §2.3–§2.4): which topology to run, with which priority and in
//! which geoscope; a fog function is a one-task topology with its own intent and an enabled/disabled status.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::names::{check_name, NameError};
use super::topology::{Topology, TopologyError};
use crate::ngsi::scope::ScopeFilter;
use crate::ngsi::v1::{OperationScope, Restriction};

/// Priority of an intent's tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Priority {
    /// Exclusive tasks preempt inclusive ones on a worker.
    #[serde(default)]
    pub exclusive: bool,
    /// 0 (low), 50 (middle), 100 (high).
    #[serde(default)]
    pub level: i32,
}

/// `ADD` or `DELETE`, as the designer tells the master.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum IntentAction {
    /// Run it (also FogFlow's meaning of a missing action).
    #[default]
    #[serde(rename = "ADD")]
    Add,
    /// Stop it.
    #[serde(rename = "DELETE")]
    Delete,
}

/// A service intent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceIntent {
    /// `ServiceIntent.<uuid>`.
    #[serde(default)]
    pub id: String,
    /// The topology it runs.
    #[serde(default)]
    pub topology: String,
    /// `SYN` or `ASYN` (kept, ignored as in FogFlow).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stype: String,
    /// QoS text (kept, ignored as in FogFlow).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub qos: String,
    /// Priority.
    #[serde(default)]
    pub priority: Priority,
    /// Where its scoped inputs must be.
    #[serde(default = "global_scope")]
    pub geoscope: OperationScope,
    /// What the master must do with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<IntentAction>,
}

/// FogFlow's `{"scopeType":"global","scopeValue":"global"}`.
pub fn global_scope() -> OperationScope {
    OperationScope { scope_type: "global".into(), scope_value: Value::String("global".into()) }
}

/// Why an intent or fog function is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IntentError {
    /// The id is not acceptable.
    #[error("intent id {0:?} must be 1-200 characters without '/', spaces or control characters")]
    BadId(String),
    /// No topology named.
    #[error("intent {0} names no topology")]
    NoTopology(String),
    /// The geoscope is not valid.
    #[error("intent geoscope: {0}")]
    BadGeoscope(String),
    /// The fog function's name is not acceptable.
    #[error("fog function {0}")]
    Name(NameError),
    /// The fog function's topology is not acceptable.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// The fog function's status is not `enabled` or `disabled`.
    #[error("fog function status must be \"enabled\" or \"disabled\", not {0:?}")]
    BadStatus(String),
}

impl ServiceIntent {
    /// Gives the intent an id when it has none (`ServiceIntent.<uuid>`), then checks it.
    pub fn normalize(&mut self) -> Result<(), IntentError> {
        if self.id.is_empty() {
            self.id = format!("ServiceIntent.{}", uuid::Uuid::new_v4());
        }
        if self.id.len() > 200 || self.id.chars().any(|c| c == '/' || c.is_whitespace() || c.is_control()) {
            return Err(IntentError::BadId(self.id.chars().take(60).collect()));
        }
        if self.topology.trim().is_empty() {
            return Err(IntentError::NoTopology(self.id.clone()));
        }
        check_geoscope(&self.geoscope)
    }

    /// The geoscope as a restriction on scoped inputs (`None` for `global`).
    pub fn scope_restriction(&self) -> Option<Restriction> {
        let kind = self.geoscope.scope_type.to_ascii_lowercase();
        if kind.is_empty() || kind == "global" {
            return None;
        }
        Some(Restriction { scopes: vec![self.geoscope.clone()], ..Default::default() })
    }
}

/// Checks a geoscope with the broker's own scope rules (`global` is always fine).
pub fn check_geoscope(scope: &OperationScope) -> Result<(), IntentError> {
    if scope.scope_type.eq_ignore_ascii_case("global") || scope.scope_type.is_empty() {
        return Ok(());
    }
    let restriction = Restriction { scopes: vec![scope.clone()], ..Default::default() };
    ScopeFilter::compile(Some(&restriction)).map(|_| ()).map_err(|e| IntentError::BadGeoscope(e.to_string()))
}

/// A fog function: one topology with its default intent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FogFunction {
    /// Unique name (the topology's name too).
    pub name: String,
    /// Its topology.
    pub topology: Topology,
    /// The designer's board, stored as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub designboard: Option<Value>,
    /// Its intent (created when missing).
    #[serde(default = "default_intent")]
    pub intent: ServiceIntent,
    /// `enabled` or `disabled`.
    #[serde(default = "enabled")]
    pub status: String,
}

fn enabled() -> String {
    "enabled".into()
}

fn default_intent() -> ServiceIntent {
    ServiceIntent {
        id: String::new(),
        topology: String::new(),
        stype: String::new(),
        qos: "default".into(),
        priority: Priority::default(),
        geoscope: global_scope(),
        action: None,
    }
}

impl FogFunction {
    /// Checks it and makes its intent point at its topology (with an id).
    pub fn normalize(&mut self, operator_exists: impl Fn(&str) -> bool) -> Result<(), IntentError> {
        check_name(&self.name).map_err(IntentError::Name)?;
        if self.topology.name.is_empty() {
            self.topology.name = self.name.clone();
        }
        self.topology.validate(operator_exists)?;
        if self.status != "enabled" && self.status != "disabled" {
            return Err(IntentError::BadStatus(self.status.clone()));
        }
        self.intent.topology = self.topology.name.clone();
        self.intent.action = None;
        self.intent.normalize()
    }

    /// Whether it is enabled.
    pub fn is_enabled(&self) -> bool {
        self.status == "enabled"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn intent_round_trip_and_defaults() {
        let mut intent: ServiceIntent = serde_json::from_value(json!({"topology":"anomaly-detection",
            "priority":{"exclusive":false,"level":0},"qos":"NONE",
            "geoscope":{"scopeType":"circle","scopeValue":{"centerLatitude":35.6,"centerLongitude":139.7,"radius":1000}}}))
        .unwrap();
        intent.normalize().unwrap();
        assert!(intent.id.starts_with("ServiceIntent."));
        assert!(intent.scope_restriction().is_some());
        intent.action = Some(IntentAction::Delete);
        let wire = serde_json::to_value(&intent).unwrap();
        assert_eq!(wire["action"], "DELETE");
    }

    #[test]
    fn refuses_bad_geoscopes_and_ids() {
        let mut intent: ServiceIntent = serde_json::from_value(json!({"topology":"t",
            "geoscope":{"scopeType":"circle","scopeValue":{"centerLatitude":"x"}}}))
        .unwrap();
        assert!(matches!(intent.normalize(), Err(IntentError::BadGeoscope(_))));
        let mut bad_id: ServiceIntent = serde_json::from_value(json!({"id":"a/b","topology":"t"})).unwrap();
        assert!(matches!(bad_id.normalize(), Err(IntentError::BadId(_))));
        let mut global: ServiceIntent = serde_json::from_value(json!({"topology":"t"})).unwrap();
        global.normalize().unwrap();
        assert!(global.scope_restriction().is_none());
    }

    #[test]
    fn fog_function_gets_an_intent() {
        let mut ff: FogFunction = serde_json::from_value(json!({"name":"Convert","topology":{"name":"Convert",
            "tasks":[{"name":"Main","operator":"converter","input_streams":[{"selected_type":"Temperature",
            "groupby":"EntityID"}],"output_streams":[{"entity_type":"Fahrenheit"}]}]}}))
        .unwrap();
        ff.normalize(|_| true).unwrap();
        assert!(ff.is_enabled());
        assert_eq!(ff.intent.topology, "Convert");
        assert!(ff.intent.id.starts_with("ServiceIntent."));
    }
}
