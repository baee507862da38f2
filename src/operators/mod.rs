//! The built-in operators (`fogflow operator <name>`) and the small "operator SDK" they share.
//!
//! Each operator is a real FogFlow task instance speaking the same HTTP contract as a Docker operator
//! (spec `master-worker-designer.md` §5):
//!
//! - **Startup** ([`Startup::from_env`]): `myport` (required, the port to listen on at `0.0.0.0`), `adminCfg`
//!   (a JSON array of admin commands; when absent, `brokerURL` is taken as `CONNECT_BROKER`), and the
//!   operator parameters, which the worker passes as environment variables `name=value` ([`Params`]).
//! - **Input** (`POST /notifyContext`): an NGSIv1 notification; each element with status 200 goes through
//!   [`Operator::on_entity`]. **Configuration** (`POST /admin`): admin commands applied in order.
//! - **Output**: a bounded queue and one publishing task, `POST <brokerURL>/updateContext` with
//!   `Fiware-Correlator`, retried with backoff ([`publisher`]); receiving never waits for publishing.
//! - **Shutdown**: SIGTERM or SIGINT ends the process with code 0 within about a second.
//!
//! The operators themselves ([`dummy`], [`converter`], [`counter`], [`anomaly`]) are pure: an input element
//! (plus the output streams and the current time, in a [`Context`]) in, output elements out.

pub mod anomaly;
pub mod converter;
pub mod counter;
pub mod dummy;
pub mod publisher;
mod server;

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::model::admin::{parse_commands, AdminCommand, OutputStream, TaskSettings};
use crate::ngsi::v1::{ContextAttribute, ContextElement, ContextMetadata, EntityId};

/// The built-in operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OperatorName {
    /// FogFlow's `dummy`: republishes each input as `Result<inputId>` (type `Result`).
    Dummy,
    /// °C → °F: `temperature` → `temperature_f` on the first output.
    Converter,
    /// Counts inputs per time window (`window_seconds`, default 5) → `{time, counter}` on the first output.
    Counter,
    /// PowerPanel `usage` above the Rule's `threshold` (default 30) → an Anomaly on the first output.
    Anomaly,
}

impl OperatorName {
    /// The name as written on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorName::Dummy => "dummy",
            OperatorName::Converter => "converter",
            OperatorName::Counter => "counter",
            OperatorName::Anomaly => "anomaly",
        }
    }
}

impl std::fmt::Display for OperatorName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an input element produced no output (logged, never fatal).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    /// A required attribute is absent.
    #[error("entity `{entity}` has no attribute `{attribute}`")]
    MissingAttribute {
        /// Entity id.
        entity: String,
        /// Attribute name.
        attribute: String,
    },
    /// An attribute that must be a number is not.
    #[error("attribute `{attribute}` of entity `{entity}` is not a number: {value}")]
    NotANumber {
        /// Entity id.
        entity: String,
        /// Attribute name.
        attribute: String,
        /// The value found, as JSON text.
        value: String,
    },
}

/// Why an operator cannot start or stopped with a failure.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// `myport` is not set.
    #[error("environment variable `myport` is not set (the port this operator listens on)")]
    MissingPort,
    /// `myport` is not a port number.
    #[error("environment variable `myport` = `{0}` is not a port number (1-65535)")]
    InvalidPort(String),
    /// `adminCfg` is not a JSON array.
    #[error("environment variable `adminCfg` is not a JSON array of admin commands: {0}")]
    InvalidAdminCfg(String),
    /// An operator parameter has an unusable value.
    #[error("operator parameter `{name}` = `{value}`: {reason}")]
    InvalidParameter {
        /// Parameter (environment variable) name.
        name: String,
        /// Its value.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// The listener cannot be opened.
    #[error("cannot listen on 0.0.0.0:{port}: {source}")]
    Bind {
        /// The port.
        port: u16,
        /// The cause.
        source: std::io::Error,
    },
}

impl OperatorError {
    /// Whether this is a usage error (bad environment or parameters; exit code 64).
    pub fn is_usage(&self) -> bool {
        !matches!(self, OperatorError::Bind { .. })
    }
}

/// What an operator sees besides the input: its output streams and the current time.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The output streams (`SET_OUTPUTS`), in the order they were set.
    pub outputs: &'a [OutputStream],
    /// Now.
    pub now: DateTime<Utc>,
}

impl Context<'_> {
    /// The entity id to publish on: the first output stream, else `fallback_id`/`fallback_type`.
    pub fn first_output_or(&self, fallback_id: impl Into<String>, fallback_type: &str) -> EntityId {
        match self.outputs.first() {
            Some(output) => {
                EntityId { id: output.id.clone(), entity_type: output.entity_type.clone(), is_pattern: false }
            }
            None => EntityId { id: fallback_id.into(), entity_type: fallback_type.into(), is_pattern: false },
        }
    }
}

/// One operator's processing logic. Implementations are pure: no I/O, the time comes in the [`Context`].
pub trait Operator: Send {
    /// Handles one input element and returns the elements to publish.
    fn on_entity(&mut self, element: &ContextElement, context: &Context<'_>)
        -> Result<Vec<ContextElement>, InputError>;

    /// How often [`Operator::on_tick`] runs; `None` (the default) means never.
    fn tick_interval(&self) -> Option<Duration> {
        None
    }

    /// Periodic work (e.g. closing a time window); returns the elements to publish.
    fn on_tick(&mut self, _context: &Context<'_>) -> Vec<ContextElement> {
        Vec::new()
    }
}

/// The operator parameters: every environment variable, looked up by the parameter's name.
#[derive(Debug, Clone, Default)]
pub struct Params {
    values: HashMap<String, String>,
}

impl Params {
    /// Parameters from a name → value map (normally the whole environment).
    pub fn new(values: HashMap<String, String>) -> Self {
        Params { values }
    }

    /// A parameter's raw value, trimmed; `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|value| value.trim()).filter(|value| !value.is_empty())
    }

    /// A finite number parameter within `min..=max`, `default` when absent.
    pub fn number(&self, name: &str, default: f64, min: f64, max: f64) -> Result<f64, OperatorError> {
        let Some(text) = self.get(name) else {
            return Ok(default);
        };
        let invalid = |reason: String| OperatorError::InvalidParameter {
            name: name.to_string(),
            value: text.to_string(),
            reason,
        };
        let number: f64 = text.parse().map_err(|_| invalid("not a number".into()))?;
        if !number.is_finite() || number < min || number > max {
            return Err(invalid(format!("must be between {min} and {max}")));
        }
        Ok(number)
    }
}

/// Everything read from the environment at startup.
#[derive(Debug, Clone)]
pub struct Startup {
    /// `myport`.
    pub port: u16,
    /// `adminCfg`, or `CONNECT_BROKER brokerURL` when `adminCfg` is absent.
    pub commands: Vec<AdminCommand>,
    /// The operator parameters.
    pub params: Params,
}

impl Startup {
    /// Reads `myport`, `adminCfg` (or `brokerURL`) and the parameters from an environment map.
    pub fn from_env(env: &HashMap<String, String>) -> Result<Startup, OperatorError> {
        let port_text = env.get("myport").map(|value| value.trim()).ok_or(OperatorError::MissingPort)?;
        let port = match port_text.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(OperatorError::InvalidPort(port_text.to_string())),
        };
        let commands = match env.get("adminCfg").filter(|text| !text.trim().is_empty()) {
            Some(text) => {
                parse_commands(text.as_bytes()).map_err(|error| OperatorError::InvalidAdminCfg(error.to_string()))?
            }
            None => env
                .get("brokerURL")
                .filter(|url| !url.trim().is_empty())
                .map(|url| vec![AdminCommand::ConnectBroker { broker_url: url.trim().to_string() }])
                .unwrap_or_default(),
        };
        Ok(Startup { port, commands, params: Params::new(env.clone()) })
    }

    /// The settings the startup commands add up to.
    pub fn settings(&self) -> TaskSettings {
        let mut settings = TaskSettings::default();
        settings.apply(&self.commands);
        settings
    }
}

/// Builds the named operator from its parameters.
pub fn build(name: OperatorName, params: &Params) -> Result<Box<dyn Operator>, OperatorError> {
    Ok(match name {
        OperatorName::Dummy => Box::new(dummy::Dummy),
        OperatorName::Converter => Box::new(converter::Converter),
        OperatorName::Counter => Box::new(counter::Counter::from_params(params, Utc::now())?),
        OperatorName::Anomaly => Box::new(anomaly::Anomaly::from_params(params)?),
    })
}

/// Runs the named operator until `shutdown` fires: reads the environment, listens on `0.0.0.0:$myport`,
/// serves the operator contract, publishes results.
pub async fn run(
    name: OperatorName,
    env: &HashMap<String, String>,
    shutdown: CancellationToken,
) -> Result<(), OperatorError> {
    let startup = Startup::from_env(env)?;
    let operator = build(name, &startup.params)?;
    if let Some(parent) = env.get(PARENT_PID_VARIABLE).and_then(|pid| pid.trim().parse::<u32>().ok()) {
        tokio::spawn(stop_when_orphaned(parent, shutdown.clone()));
    }
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", startup.port))
        .await
        .map_err(|source| OperatorError::Bind { port: startup.port, source })?;
    let settings = startup.settings();
    tracing::info!(
        operator = %name,
        port = startup.port,
        broker = settings.broker_url.as_deref().unwrap_or("(none yet)"),
        correlator = settings.correlator_id.as_deref().unwrap_or(""),
        outputs = settings.outputs.len(),
        "operator listening"
    );
    server::run(name, operator, settings, listener, shutdown).await;
    tracing::info!(operator = %name, "operator stopped");
    Ok(())
}

/// Set by the worker's process runtime to its own pid: the operator stops when that process is gone (a worker
/// killed with SIGKILL cannot stop its tasks; its restart launches them again).
pub const PARENT_PID_VARIABLE: &str = "FOGFLOW_PARENT_PID";

async fn stop_when_orphaned(parent: u32, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
        }
        if std::os::unix::process::parent_id() != parent {
            tracing::warn!(parent, "the worker that started this operator is gone; stopping");
            shutdown.cancel();
            return;
        }
    }
}

/// An attribute of an element by name.
pub fn attribute<'a>(element: &'a ContextElement, name: &str) -> Option<&'a ContextAttribute> {
    element.attributes.iter().find(|attribute| attribute.name == name)
}

/// A domain metadata item of an element by name.
pub fn metadata<'a>(element: &'a ContextElement, name: &str) -> Option<&'a ContextMetadata> {
    element.domain_metadata.iter().find(|item| item.name == name)
}

/// The value of a numeric attribute: a JSON number, or a string holding one (Orion-style clients send
/// numbers as strings). Non-finite values are not numbers.
pub fn number_attribute(element: &ContextElement, name: &str) -> Result<f64, InputError> {
    let Some(found) = attribute(element, name) else {
        return Err(InputError::MissingAttribute { entity: element.entity_id.id.clone(), attribute: name.into() });
    };
    as_number(&found.value).ok_or_else(|| InputError::NotANumber {
        entity: element.entity_id.id.clone(),
        attribute: name.into(),
        value: found.value.to_string(),
    })
}

/// A JSON number, or a string that parses as one; finite values only.
pub fn as_number(value: &Value) -> Option<f64> {
    let number = match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse::<f64>().ok(),
        _ => None,
    }?;
    number.is_finite().then_some(number)
}

/// A new attribute.
pub fn new_attribute(name: &str, attribute_type: &str, value: Value) -> ContextAttribute {
    ContextAttribute { name: name.into(), attribute_type: attribute_type.into(), value, metadata: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn startup_reads_port_admin_cfg_and_parameters() {
        let startup = Startup::from_env(&env(&[
            ("myport", "41234"),
            ("adminCfg", r#"[{"command":"CONNECT_BROKER","brokerURL":"http://b:8070/ngsi10"},{"command":"SET_OUTPUTS","type":"F","id":"F.1"}]"#),
            ("brokerURL", "http://ignored/ngsi10"),
            ("window_seconds", "2"),
        ]))
        .unwrap();
        assert_eq!(startup.port, 41234);
        let settings = startup.settings();
        assert_eq!(settings.broker_url.as_deref(), Some("http://b:8070/ngsi10"));
        assert_eq!(settings.outputs[0].id, "F.1");
        assert_eq!(startup.params.number("window_seconds", 5.0, 0.01, 10.0).unwrap(), 2.0);
        assert_eq!(startup.params.number("absent", 5.0, 0.01, 10.0).unwrap(), 5.0);
    }

    #[test]
    fn broker_url_stands_in_for_a_missing_admin_cfg() {
        let startup = Startup::from_env(&env(&[("myport", "1"), ("brokerURL", "http://b/ngsi10")])).unwrap();
        assert_eq!(startup.settings().broker_url.as_deref(), Some("http://b/ngsi10"));
        let bare = Startup::from_env(&env(&[("myport", "1")])).unwrap();
        assert_eq!(bare.settings(), TaskSettings::default());
    }

    #[test]
    fn bad_environment_is_a_usage_error() {
        for (pairs, what) in [
            (env(&[]), "missing port"),
            (env(&[("myport", "x")]), "text port"),
            (env(&[("myport", "0")]), "port 0"),
            (env(&[("myport", "70000")]), "port too large"),
            (env(&[("myport", "1"), ("adminCfg", "{}")]), "adminCfg object"),
            (env(&[("myport", "1"), ("adminCfg", "[")]), "adminCfg not JSON"),
        ] {
            let error = Startup::from_env(&pairs).expect_err(what);
            assert!(error.is_usage(), "{what}: {error}");
        }
        let params = Params::new(env(&[("window_seconds", "-1"), ("threshold", "abc")]));
        assert!(params.number("window_seconds", 5.0, 0.01, 10.0).is_err());
        assert!(params.number("threshold", 30.0, f64::MIN, f64::MAX).is_err());
    }

    #[test]
    fn numbers_may_be_strings_but_must_be_finite() {
        assert_eq!(as_number(&serde_json::json!(73)), Some(73.0));
        assert_eq!(as_number(&serde_json::json!(" 21.5 ")), Some(21.5));
        assert_eq!(as_number(&serde_json::json!("NaN")), None);
        assert_eq!(as_number(&serde_json::json!("hot")), None);
        assert_eq!(as_number(&serde_json::json!(null)), None);
        assert_eq!(as_number(&serde_json::json!({"v": 1})), None);
    }

    #[test]
    fn first_output_or_falls_back() {
        let outputs = vec![OutputStream { entity_type: "T".into(), id: "T.1".into() }];
        let now = Utc::now();
        let with = Context { outputs: &outputs, now };
        assert_eq!(with.first_output_or("x", "X").id, "T.1");
        let without = Context { outputs: &[], now };
        let id = without.first_output_or("x", "X");
        assert_eq!((id.id.as_str(), id.entity_type.as_str()), ("x", "X"));
    }
}
