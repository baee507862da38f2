//! The process configuration: FogFlow's `config.json` keys plus ours, layered as built-in defaults →
//! `config.json` → `FOGFLOW__<SECTION>__<KEY>` environment → command line, then validated once.
//!
//! This is the only module that interprets configuration sources. It never reads the process environment
//! itself: `main` passes the environment in as a map, so tests can layer their own (linkerd's habit).
//! Every field documents its default; secrets are masked whenever the config is printed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod context;
mod sections;
mod tls;

pub use self::sections::*;
pub use self::tls::TlsConfig;

/// The config file read when `--config` is not given, if it exists in the working directory (as FogFlow does).
pub const DEFAULT_CONFIG_FILE: &str = "config.json";
/// Environment variable prefix; sections and keys are separated by `__` (`FOGFLOW__BROKER__HTTP_PORT`).
pub const ENV_PREFIX: &str = "FOGFLOW";

/// Why a configuration could not be loaded. Every variant is a usage error (exit code 64).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A source could not be parsed or a value has the wrong type.
    #[error("invalid config: {0}")]
    Parse(String),
    /// A value is out of range or inconsistent.
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// Values given on the command line, applied after every other source.
#[derive(Debug, Clone, Default)]
pub struct ConfigOverrides {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
}

/// The whole configuration. Keys follow FogFlow's `config.json` (spec §10); ours are marked "ours".
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address other hosts and task containers use to reach this node. Default `127.0.0.1`.
    pub my_hostip: String,
    /// Public (NAT) address; takes precedence over `my_hostip` in advertised URLs. Alias `external_hostip`.
    #[serde(alias = "external_hostip", skip_serializing_if = "Option::is_none")]
    pub external_ip: Option<String>,
    /// Address inside the cluster network, when it differs from `my_hostip`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internal_hostip: Option<String>,
    /// Address of the core services (discovery, RabbitMQ) for edge nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coreservice_ip: Option<String>,
    /// Site id; forms the broker id `Broker.<site_id>`. Default `001`.
    pub site_id: String,
    /// Where this node is; registered with discovery and used for placement. Default Tokyo (FogFlow's).
    pub physical_location: PhysicalLocation,
    /// (ours) Directory of the persistent stores; each role uses `<data_dir>/<role>`. Default `./data`.
    pub data_dir: PathBuf,
    /// (ours) Seconds a graceful shutdown may take before the process exits anyway. Default 10.
    pub shutdown_grace_secs: u64,
    /// Logging.
    pub logging: LoggingConfig,
    /// Broker role.
    pub broker: BrokerConfig,
    /// Discovery role (and how other roles reach it).
    pub discovery: DiscoveryConfig,
    /// Master role (FogFlow keys, used by a later release).
    pub master: MasterConfig,
    /// Designer role (FogFlow keys, used by a later release).
    pub designer: DesignerConfig,
    /// Worker role (FogFlow keys, used by a later release).
    pub worker: WorkerConfig,
    /// (ours) The control bus of master, worker and designer: `auto` (default: in-process when the three run
    /// in this process, else RabbitMQ), `memory` or `rabbitmq`.
    pub bus: BusKind,
    /// RabbitMQ connection (FogFlow keys), used when the bus is RabbitMQ.
    pub rabbitmq: RabbitMqConfig,
    /// TLS settings (FogFlow keys; not served yet).
    pub https: HttpsConfig,
    /// (ours) Remote JSON-LD `@context` resolution of the NGSI-LD API.
    pub context: ContextConfig,
    /// (ours) Trust for outgoing `https://` requests.
    pub tls: TlsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            my_hostip: "127.0.0.1".into(),
            external_ip: None,
            internal_hostip: None,
            coreservice_ip: None,
            site_id: "001".into(),
            physical_location: PhysicalLocation { latitude: 35.692221, longitude: 139.709059 },
            data_dir: PathBuf::from("./data"),
            shutdown_grace_secs: 10,
            logging: LoggingConfig::default(),
            broker: BrokerConfig::default(),
            discovery: DiscoveryConfig::default(),
            master: MasterConfig::default(),
            designer: DesignerConfig::default(),
            worker: WorkerConfig::default(),
            bus: BusKind::Auto,
            rabbitmq: RabbitMqConfig::default(),
            https: HttpsConfig::default(),
            context: ContextConfig::default(),
            tls: TlsConfig::default(),
        }
    }
}

impl Config {
    /// Loads the layered configuration: defaults → `path` (or `./config.json` if present) → `env` → `overrides`,
    /// then validates it. `env` is the process environment as a map; only `FOGFLOW__*` keys are read.
    pub fn load(
        path: Option<&Path>,
        env: &HashMap<String, String>,
        overrides: &ConfigOverrides,
    ) -> Result<Config, ConfigError> {
        let defaults =
            serde_json::to_string(&Config::default()).map_err(|error| ConfigError::Parse(error.to_string()))?;
        let mut builder =
            config::Config::builder().add_source(config::File::from_str(&defaults, config::FileFormat::Json));
        if let Some(file) = Self::file_to_read(path) {
            let text =
                std::fs::read_to_string(&file).map_err(|source| ConfigError::Read { path: file.clone(), source })?;
            serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .filter(serde_json::Value::is_object)
                .ok_or_else(|| ConfigError::Parse(format!("{} is not a JSON object", file.display())))?;
            builder = builder.add_source(config::File::from_str(&text, config::FileFormat::Json));
        }
        let known_keys: serde_json::Value =
            serde_json::from_str(&defaults).map_err(|error| ConfigError::Parse(error.to_string()))?;
        for (path, value) in env_overrides(env, &known_keys) {
            builder = builder
                .set_override(path.as_str(), value.as_str())
                .map_err(|error| ConfigError::Parse(format!("{path}: {error}")))?;
        }
        let layered = builder.build().map_err(|error| ConfigError::Parse(error.to_string()))?;
        let mut config: Config = layered.try_deserialize().map_err(|error| ConfigError::Parse(error.to_string()))?;
        if let Some(data_dir) = &overrides.data_dir {
            config.data_dir = data_dir.clone();
        }
        if let Some(format) = overrides.log_format {
            config.logging.format = format;
        }
        config.validate()?;
        Ok(config)
    }

    /// The config file that [`Config::load`] reads: the given one, else `./config.json` when it exists.
    pub fn file_to_read(path: Option<&Path>) -> Option<PathBuf> {
        match path {
            Some(path) => Some(path.to_path_buf()),
            None => {
                let default = PathBuf::from(DEFAULT_CONFIG_FILE);
                default.is_file().then_some(default)
            }
        }
    }

    /// Checks ranges and consistency.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid(message));
        if self.site_id.is_empty() || !self.site_id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        {
            return invalid(format!("site_id `{}` must be non-empty letters, digits, - or _", self.site_id));
        }
        if self.my_hostip.trim().is_empty() {
            return invalid("my_hostip is empty".into());
        }
        let PhysicalLocation { latitude, longitude } = self.physical_location;
        if !(-90.0..=90.0).contains(&latitude) || !(-180.0..=180.0).contains(&longitude) {
            return invalid(format!("physical_location {latitude},{longitude} is not a valid latitude,longitude"));
        }
        if self.data_dir.as_os_str().is_empty() {
            return invalid("data_dir is empty".into());
        }
        if !(1..=600).contains(&self.shutdown_grace_secs) {
            return invalid(format!("shutdown_grace_secs {} must be 1..600", self.shutdown_grace_secs));
        }
        if self.https.enabled {
            return invalid("https.enabled is not supported yet: terminate TLS in front of fogflow (nginx)".into());
        }
        let broker = &self.broker;
        if !(1024..=64 * 1024 * 1024).contains(&broker.max_body_bytes) {
            return invalid(format!("broker.max_body_bytes {} must be 1 KiB..64 MiB", broker.max_body_bytes));
        }
        if !(1..=100_000).contains(&broker.max_query_results) {
            return invalid(format!("broker.max_query_results {} must be 1..100000", broker.max_query_results));
        }
        if !(1..=3600).contains(&broker.heartbeat_interval) {
            return invalid(format!("broker.heartbeat_interval {} must be 1..3600 seconds", broker.heartbeat_interval));
        }
        if !(1..=100).contains(&self.discovery.lease_heartbeats) {
            return invalid(format!("discovery.lease_heartbeats {} must be 1..100", self.discovery.lease_heartbeats));
        }
        if broker.group_commit_interval_ms > 1000 {
            return invalid(format!(
                "broker.group_commit_interval_ms {} must be at most 1000",
                broker.group_commit_interval_ms
            ));
        }
        if let Some(instance) = &broker.instance {
            if instance.is_empty() || !instance.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')) {
                return invalid(format!("broker.instance `{instance}` must be non-empty letters, digits, - or _"));
            }
        }
        if let Some(id) = &broker.id {
            crate::ngsi::limits::check_name("broker.id", id).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        let notification = &broker.notification;
        if !(1..=1_000_000).contains(&notification.queue_capacity) {
            return invalid(format!(
                "broker.notification.queue_capacity {} must be 1..1000000",
                notification.queue_capacity
            ));
        }
        if notification.connect_timeout_ms == 0 || notification.timeout_ms == 0 {
            return invalid("broker.notification timeouts must be positive".into());
        }
        if notification.max_attempts == 0 || notification.max_batch == 0 {
            return invalid("broker.notification.max_attempts and max_batch must be positive".into());
        }
        if self.worker.heartbeat_interval == 0 || self.worker.detection_duration == 0 {
            return invalid("worker.heartbeat_interval and worker.detection_duration must be positive".into());
        }
        if self.worker.capacity > 10_000 {
            return invalid(format!("worker.capacity {} must be at most 10000", self.worker.capacity));
        }
        if !["auto", "docker", "process"].contains(&self.worker.runtime.as_str()) {
            return invalid(format!("worker.runtime `{}` must be auto, docker or process", self.worker.runtime));
        }
        if !["host", "bridge"].contains(&self.worker.docker_network.as_str()) {
            return invalid(format!("worker.docker_network `{}` must be host or bridge", self.worker.docker_network));
        }
        let rabbitmq = &self.rabbitmq;
        if !(1..=1000).contains(&rabbitmq.prefetch) {
            return invalid(format!("rabbitmq.prefetch {} must be 1..1000", rabbitmq.prefetch));
        }
        if !(1..=1000).contains(&rabbitmq.delivery_limit) {
            return invalid(format!("rabbitmq.delivery_limit {} must be 1..1000", rabbitmq.delivery_limit));
        }
        if !(1..=300).contains(&rabbitmq.publish_timeout_secs) {
            return invalid(format!("rabbitmq.publish_timeout_secs {} must be 1..300", rabbitmq.publish_timeout_secs));
        }
        if !(1..=600).contains(&rabbitmq.reconnect_max_secs) {
            return invalid(format!("rabbitmq.reconnect_max_secs {} must be 1..600", rabbitmq.reconnect_max_secs));
        }
        if rabbitmq.username.is_empty() {
            return invalid("rabbitmq.username is empty".into());
        }
        if self.master.task_confirm_timeout_secs == 0 {
            return invalid("master.task_confirm_timeout_secs must be positive".into());
        }
        tls::validate(&self.tls)?;
        context::validate(&self.context)
    }

    /// The grace period of a graceful shutdown.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// The id this process's broker registers with: `broker.id`, else `Broker.<site_id>`.
    pub fn broker_id(&self) -> String {
        match (&self.broker.id, &self.broker.instance) {
            (Some(id), _) => id.clone(),
            (None, Some(instance)) => format!("Broker.{}.{instance}", self.site_id),
            (None, None) => format!("Broker.{}", self.site_id),
        }
    }

    /// The broker's one advertised NGSI10 URL, `http://<host>:<port>/ngsi10` (FogFlow had two, spec §12.11).
    pub fn broker_url(&self) -> String {
        let host = self.broker.host_ip.as_ref().or(self.external_ip.as_ref()).unwrap_or(&self.my_hostip);
        format!("http://{}:{}/ngsi10", host, self.broker.http_port)
    }

    /// Discovery's NGSI9 URL, `http://<host>:<port>/ngsi9`.
    pub fn discovery_url(&self) -> String {
        let host = self.discovery.host_ip.as_ref().or(self.coreservice_ip.as_ref()).unwrap_or(&self.my_hostip);
        format!("http://{}:{}/ngsi9", host, self.discovery.http_port)
    }

    /// The master's id: `master.id`, else `Master.<site_id>`.
    pub fn master_id(&self) -> String {
        self.master.id.clone().unwrap_or_else(|| format!("Master.{}", self.site_id))
    }

    /// The worker's id: `worker.id`, else `Worker.<site_id>[.<instance>]`.
    pub fn worker_id(&self) -> String {
        match (&self.worker.id, &self.worker.instance) {
            (Some(id), _) => id.clone(),
            (None, Some(instance)) => format!("Worker.{}.{instance}", self.site_id),
            (None, None) => format!("Worker.{}", self.site_id),
        }
    }

    /// The master's NGSI agent URL (its availability notifications arrive at
    /// `<this>/notifyContextAvailability`): host `master.host_ip`, else `external_ip`, else `my_hostip`.
    pub fn master_agent_url(&self) -> String {
        format!("http://{}:{}", self.master_host(), self.master.ngsi_agent_port)
    }

    /// The master's REST URL (`/workers`, `/status`, `/tasks`).
    pub fn master_rest_url(&self) -> String {
        format!("http://{}:{}", self.master_host(), self.master.rest_api_port)
    }

    fn master_host(&self) -> &str {
        self.master.host_ip.as_ref().or(self.external_ip.as_ref()).unwrap_or(&self.my_hostip)
    }

    /// The designer's URL (`GET /topology/<name>` …): host `designer.host_ip`, else `my_hostip`.
    pub fn designer_url(&self) -> String {
        let host = self.designer.host_ip.as_ref().unwrap_or(&self.my_hostip);
        format!("http://{}:{}", host, self.designer.web_srv_port)
    }

    /// The RabbitMQ host: `rabbitmq.host_ip`, else `coreservice_ip`, else `my_hostip` (spec §1.7).
    pub fn rabbitmq_host(&self) -> &str {
        self.rabbitmq.host_ip.as_ref().or(self.coreservice_ip.as_ref()).unwrap_or(&self.my_hostip)
    }

    /// The effective configuration as pretty JSON, with secrets masked.
    pub fn to_masked_json(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        mask(&mut value, &["rabbitmq", "password"]);
        mask(&mut value, &["worker", "registry", "password"]);
        serde_json::to_string_pretty(&value).unwrap_or_default()
    }
}

/// The `FOGFLOW__SECTION__KEY` variables as dotted config paths, each segment spelled like the matching known
/// key (so `FOGFLOW__DESIGNER__WEBSRVPORT` sets `designer.webSrvPort`); values stay text, converted to the
/// field's type on deserialization (so `FOGFLOW__SITE_ID=002` stays `"002"`).
fn env_overrides(env: &HashMap<String, String>, known_keys: &serde_json::Value) -> Vec<(String, String)> {
    let prefix = format!("{ENV_PREFIX}__");
    let mut overrides: Vec<(String, String)> = env
        .iter()
        .filter_map(|(key, value)| {
            let rest = key.strip_prefix(&prefix)?;
            let mut level = Some(known_keys);
            let mut segments = Vec::new();
            for raw in rest.split("__").filter(|segment| !segment.is_empty()) {
                let known = level
                    .and_then(serde_json::Value::as_object)
                    .and_then(|object| object.iter().find(|(name, _)| name.eq_ignore_ascii_case(raw)));
                match known {
                    Some((name, inner)) => {
                        segments.push(name.clone());
                        level = Some(inner);
                    }
                    None => {
                        segments.push(raw.to_ascii_lowercase());
                        level = None;
                    }
                }
            }
            (!segments.is_empty()).then(|| (segments.join("."), value.clone()))
        })
        .collect();
    overrides.sort();
    overrides
}

fn mask(value: &mut serde_json::Value, path: &[&str]) {
    let mut cursor = value;
    for key in path {
        match cursor.get_mut(*key) {
            Some(next) => cursor = next,
            None => return,
        }
    }
    if cursor.as_str().is_some_and(|secret| !secret.is_empty()) {
        *cursor = serde_json::Value::String("********".into());
    }
}

#[cfg(test)]
mod tests;
