//! The operator admin commands (FogFlow's `ConfigCommand`): what a worker tells a task instance, through the
//! `adminCfg` environment variable or `POST /admin`, about its broker, correlator, own reference and outputs.
//!
//! Data only: parsing, rendering and the [`TaskSettings`] they add up to. Keys are FogFlow's (`command`,
//! `brokerURL`, `correlatorID`, `url`, `type`, `id`); unknown commands are kept so an operator can ignore them.

use serde::{Deserialize, Serialize};

/// One admin command, as FogFlow's worker writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command")]
pub enum AdminCommand {
    /// The NGSI10 base URL (ending in `/ngsi10`) the task publishes to.
    #[serde(rename = "CONNECT_BROKER")]
    ConnectBroker {
        /// The broker's NGSI10 base URL.
        #[serde(rename = "brokerURL")]
        broker_url: String,
    },
    /// The correlator (the task id) sent as `Fiware-Correlator` on the task's updates.
    #[serde(rename = "SET_CORRELATORID")]
    SetCorrelatorId {
        /// The correlator.
        #[serde(rename = "correlatorID")]
        correlator_id: String,
    },
    /// The task's own notify URL.
    #[serde(rename = "SET_REFERENCE")]
    SetReference {
        /// The URL.
        url: String,
    },
    /// One output stream.
    #[serde(rename = "SET_OUTPUTS")]
    SetOutputs {
        /// Entity type of the output.
        #[serde(rename = "type")]
        entity_type: String,
        /// Entity id of the output.
        id: String,
    },
    /// One input stream (FogFlow's test mode only; workers never send it).
    #[serde(rename = "SET_INPUTS")]
    SetInputs {
        /// Entity type.
        #[serde(rename = "type", default)]
        entity_type: String,
        /// Entity id, empty for all of the type.
        #[serde(default)]
        id: String,
    },
}

/// An output stream a task was told to publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputStream {
    /// Entity type.
    pub entity_type: String,
    /// Entity id.
    pub id: String,
}

/// What a list of admin commands configures, applied in order (later commands win; outputs accumulate).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskSettings {
    /// The broker's NGSI10 base URL.
    pub broker_url: Option<String>,
    /// The correlator for `Fiware-Correlator`.
    pub correlator_id: Option<String>,
    /// The task's own notify URL.
    pub reference: Option<String>,
    /// The output streams.
    pub outputs: Vec<OutputStream>,
    /// The input streams (test mode).
    pub inputs: Vec<OutputStream>,
}

impl TaskSettings {
    /// Applies commands in order.
    pub fn apply(&mut self, commands: &[AdminCommand]) {
        for command in commands {
            match command {
                AdminCommand::ConnectBroker { broker_url } => self.broker_url = Some(broker_url.clone()),
                AdminCommand::SetCorrelatorId { correlator_id } => self.correlator_id = Some(correlator_id.clone()),
                AdminCommand::SetReference { url } => self.reference = Some(url.clone()),
                AdminCommand::SetOutputs { entity_type, id } => {
                    let output = OutputStream { entity_type: entity_type.clone(), id: id.clone() };
                    if !self.outputs.contains(&output) {
                        self.outputs.push(output);
                    }
                }
                AdminCommand::SetInputs { entity_type, id } => {
                    self.inputs.push(OutputStream { entity_type: entity_type.clone(), id: id.clone() })
                }
            }
        }
    }
}

/// Parses an `adminCfg` value or a `POST /admin` body: a JSON array of commands. Commands with an unknown
/// `command` are skipped (FogFlow operators ignore them too); a body that is not an array is an error.
pub fn parse_commands(text: &[u8]) -> Result<Vec<AdminCommand>, serde_json::Error> {
    let raw: Vec<serde_json::Value> = serde_json::from_slice(text)?;
    Ok(raw.into_iter().filter_map(|value| serde_json::from_value(value).ok()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fogflow_admin_config() {
        let text = br#"[{"command":"CONNECT_BROKER","brokerURL":"http://10.0.0.1:8070/ngsi10"},
            {"command":"SET_CORRELATORID","correlatorID":"Task.T.Main.00000001"},
            {"command":"SET_REFERENCE","url":"http://10.0.0.5:41234"},
            {"command":"SET_OUTPUTS","type":"Out","id":"Out.00000001.1"},
            {"command":"SOMETHING_NEW","x":1}]"#;
        let commands = parse_commands(text).unwrap();
        assert_eq!(commands.len(), 4);
        let mut settings = TaskSettings::default();
        settings.apply(&commands);
        assert_eq!(settings.broker_url.as_deref(), Some("http://10.0.0.1:8070/ngsi10"));
        assert_eq!(settings.correlator_id.as_deref(), Some("Task.T.Main.00000001"));
        assert_eq!(settings.outputs, vec![OutputStream { entity_type: "Out".into(), id: "Out.00000001.1".into() }]);
        let rendered = serde_json::to_value(&commands[0]).unwrap();
        assert_eq!(rendered, serde_json::json!({"command":"CONNECT_BROKER","brokerURL":"http://10.0.0.1:8070/ngsi10"}));
    }

    #[test]
    fn a_non_array_is_an_error() {
        assert!(parse_commands(b"{}").is_err());
        assert!(parse_commands(b"not json").is_err());
    }
}
