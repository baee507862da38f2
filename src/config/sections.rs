//! The sections of the configuration (one struct per `config.json` section) and their defaults.
//!
//! Pure data: loading, layering and validation live in the parent module.

use serde::{Deserialize, Serialize};

/// A point on Earth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PhysicalLocation {
    /// Degrees north, -90..90.
    pub latitude: f64,
    /// Degrees east, -180..180.
    pub longitude: f64,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LoggingConfig {
    /// (ours) Filter directive (`info`, `debug`, `fogflow=debug,hyper=warn`); `RUST_LOG` wins. Default `info`.
    pub level: String,
    /// (ours) `text` or `json`; `--log-format` wins. Default `text`.
    pub format: LogFormat,
    /// FogFlow key: `stdout`/`stderr` turns debug logging on, `discard` (default) leaves it off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub debug: Option<String>,
    /// FogFlow key, accepted for compatibility (all our logs go to stderr).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<String>,
    /// FogFlow key, accepted for compatibility.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// FogFlow key, accepted for compatibility.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// When a write counts as durable before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Concurrent writers share one flush (group commit); each still waits for a flush covering its write.
    #[default]
    Group,
    /// Every write is followed by its own flush.
    Flush,
}

/// Broker role settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct BrokerConfig {
    /// Host advertised in the broker's URL; default `external_ip`, then `my_hostip`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// HTTP port. Default 8070.
    pub http_port: u16,
    /// FogFlow key for the TLS port (TLS is not served yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub https_port: Option<u16>,
    /// Seconds between heartbeats to discovery. Default 10.
    pub heartbeat_interval: u64,
    /// (ours) Broker id; default `Broker.<site_id>`, or `Broker.<site_id>.<instance>` with `instance`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Instance suffix of the broker id (FogFlow's `-i <n>`), for replicas sharing a site: e.g. the pod name of
    /// a StatefulSet replica. Letters, digits, `-` and `_`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// (ours) Register entities and the broker itself with discovery. Default true.
    pub use_discovery: bool,
    /// (ours) `group` (default) or `flush`: see [`Durability`].
    pub durability: Durability,
    /// (ours) Shortest time in milliseconds between the starts of two group-commit journal syncs once a sync
    /// covered several writes; 0 (default) starts the next sync as soon as the last one ends, and each sync
    /// covers every write that arrived meanwhile.
    pub group_commit_interval_ms: u64,
    /// (ours) Largest request body accepted, in bytes. Default 1 MiB.
    pub max_body_bytes: usize,
    /// (ours) Default and largest page of a query (`limit`). Default 1000.
    pub max_query_results: usize,
    /// (ours) Notification delivery.
    pub notification: NotificationConfig,
}

/// How notifications are delivered.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct NotificationConfig {
    /// Elements waiting per subscription before the oldest are dropped (counted and logged). Default 10000.
    pub queue_capacity: usize,
    /// Milliseconds to connect to a subscriber. Default 2000.
    pub connect_timeout_ms: u64,
    /// Milliseconds a whole notification request may take. Default 5000.
    pub timeout_ms: u64,
    /// Attempts per notification without `Require-Reliability` (with it: until it succeeds). Default 3.
    pub max_attempts: u32,
    /// Most elements sent in one notification when a backlog has built up. Default 100.
    pub max_batch: usize,
}

/// Discovery role settings and how other roles reach it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DiscoveryConfig {
    /// Host other roles use; default `coreservice_ip`, then `my_hostip`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// HTTP port. Default 8090.
    pub http_port: u16,
    /// FogFlow key for the TLS port (TLS is not served yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub https_port: Option<u16>,
    /// (ours) Missed heartbeats (of `broker.heartbeat_interval` seconds) after which a broker's lease expires
    /// and its registrations are removed. Default 3.
    pub lease_heartbeats: u32,
}

/// Master settings (FogFlow keys).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MasterConfig {
    /// Host of the master.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// NGSI agent port. Default 1060.
    pub ngsi_agent_port: u16,
    /// REST port. Default 8010.
    pub rest_api_port: u16,
    /// Master id; default `Master.<site_id>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Seconds the master waits for a worker to confirm a task (`TASK_UPDATE`) before placing it elsewhere.
    /// Default 30.
    pub task_confirm_timeout_secs: u64,
}

/// Designer settings (FogFlow keys).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DesignerConfig {
    /// Host of the designer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// Web and REST port. Default 8080.
    #[serde(rename = "webSrvPort", alias = "websrvport")]
    pub web_srv_port: u16,
    /// NGSI agent port. Default 1030.
    #[serde(rename = "agentPort", alias = "agentport")]
    pub agent_port: u16,
}

/// Worker settings (FogFlow keys).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerConfig {
    /// Most tasks this worker runs. Default 8.
    pub capacity: u32,
    /// Seconds between worker heartbeats. Default 10.
    pub heartbeat_interval: u64,
    /// Missed heartbeats before the master declares a worker dead. Default 3.
    pub detection_duration: u64,
    /// Private registry credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistryConfig>,
    /// Worker id; default `Worker.<site_id>`, or `Worker.<site_id>.<instance>` with `worker.instance`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Instance suffix when several workers share a site.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Port of the worker's own HTTP endpoint (`/health`, `/ready`, `/metrics`, `/tasks`). Default 8085.
    pub http_port: u16,
    /// How tasks run: `docker` (a container per task), `process` (a child process per task), or `auto`
    /// (default): `process` on the in-process bus of `--role all`, otherwise `docker` when the Docker socket
    /// answers at start, else `process`.
    pub runtime: String,
    /// Docker runtime: the engine's socket (`unix:///var/run/docker.sock` or a path); default `DOCKER_HOST`
    /// when it is a `unix://` URL, else `/var/run/docker.sock`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker_host: Option<String>,
    /// Docker runtime: `host` (default; task containers share the host's network, so `my_hostip` may be
    /// 127.0.0.1) or `bridge` (FogFlow's: `myport` and `service_port`s published; the broker must be reachable
    /// from containers at `my_hostip`).
    pub docker_network: String,
    /// Process runtime: image name (without tag) → command line for operators that are not built in, e.g.
    /// `{"acme/echo": "python3 /opt/echo.py"}`. Images `fogflow/<name>` of the built-in operators need no entry.
    pub operators: std::collections::BTreeMap<String, String>,
    /// Lowest port handed to tasks as `myport` (0: any free port the OS gives). Default 0.
    pub task_port_min: u16,
}

/// Container registry credentials.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct RegistryConfig {
    /// User name.
    pub username: String,
    /// Password (secret: masked when printed).
    pub password: String,
    /// E-mail.
    pub email: String,
    /// Registry address.
    pub serveraddress: String,
}

/// RabbitMQ connection (FogFlow keys).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RabbitMqConfig {
    /// Host; default `coreservice_ip`, then `my_hostip`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// AMQP port. Default 5672.
    pub port: u16,
    /// User. Default `admin` (FogFlow's).
    pub username: String,
    /// Password (secret: masked when printed; prefer `FOGFLOW__RABBITMQ__PASSWORD`). Default `mypass` (FogFlow's).
    pub password: String,
    /// (ours) Deliveries a consumer may hold unacknowledged (AMQP prefetch). Default 1: one at a time, so a
    /// delivery rejected with requeue comes back before the next one, as on the in-process bus. 1..1000.
    pub prefetch: u16,
    /// (ours) Deliveries of one message before RabbitMQ dead-letters it to `fogflow.dead` (quorum queues'
    /// `x-delivery-limit`: redeliveries after a reject with requeue or a lost consumer count). Default 5. 1..1000.
    pub delivery_limit: u32,
    /// (ours) Seconds a publish waits for RabbitMQ's confirm before it fails. Default 10. 1..300.
    pub publish_timeout_secs: u64,
    /// (ours) Longest pause between reconnection attempts (the backoff doubles from 100 ms up to this, with
    /// jitter; it never gives up). Default 30. 1..600.
    pub reconnect_max_secs: u64,
}

/// (ours) Which control bus the master, worker and designer roles use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BusKind {
    /// The in-process bus when this process runs master, worker and designer together (`--role all`), else
    /// RabbitMQ.
    #[default]
    Auto,
    /// The in-process bus; only valid when master, worker and designer run in this one process.
    Memory,
    /// RabbitMQ (the `rabbitmq` section).
    Rabbitmq,
}

/// TLS settings (FogFlow keys).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct HttpsConfig {
    /// Whether TLS listeners are wanted (refused until TLS is implemented).
    pub enabled: bool,
    /// Certificate file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub my_certificate: Option<String>,
    /// Key file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub my_key: Option<String>,
    /// CA file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub my_ca: Option<String>,
}

impl Default for PhysicalLocation {
    fn default() -> Self {
        PhysicalLocation { latitude: 35.692221, longitude: 139.709059 }
    }
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: "info".into(),
            format: LogFormat::Text,
            debug: None,
            info: None,
            protocol: None,
            error: None,
        }
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            host_ip: None,
            http_port: 8070,
            https_port: None,
            heartbeat_interval: 10,
            id: None,
            instance: None,
            use_discovery: true,
            durability: Durability::Group,
            group_commit_interval_ms: 0,
            max_body_bytes: 1024 * 1024,
            max_query_results: 1000,
            notification: NotificationConfig::default(),
        }
    }
}

impl Default for NotificationConfig {
    fn default() -> Self {
        NotificationConfig {
            queue_capacity: 10_000,
            connect_timeout_ms: 2_000,
            timeout_ms: 5_000,
            max_attempts: 3,
            max_batch: 100,
        }
    }
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig { host_ip: None, http_port: 8090, https_port: None, lease_heartbeats: 3 }
    }
}

impl Default for MasterConfig {
    fn default() -> Self {
        MasterConfig {
            host_ip: None,
            ngsi_agent_port: 1060,
            rest_api_port: 8010,
            id: None,
            task_confirm_timeout_secs: 30,
        }
    }
}

impl Default for DesignerConfig {
    fn default() -> Self {
        DesignerConfig { host_ip: None, web_srv_port: 8080, agent_port: 1030 }
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            capacity: 8,
            heartbeat_interval: 10,
            detection_duration: 3,
            registry: None,
            id: None,
            instance: None,
            http_port: 8085,
            runtime: "auto".into(),
            docker_host: None,
            docker_network: "host".into(),
            operators: Default::default(),
            task_port_min: 0,
        }
    }
}

impl Default for RabbitMqConfig {
    fn default() -> Self {
        RabbitMqConfig {
            host_ip: None,
            port: 5672,
            username: "admin".into(),
            password: "mypass".into(),
            prefetch: 1,
            delivery_limit: 5,
            publish_timeout_secs: 10,
            reconnect_max_secs: 30,
        }
    }
}

/// (ours) How the NGSI-LD API resolves remote JSON-LD `@context` URLs (the core context is embedded and never
/// fetched). Order: `preload`, then the in-memory cache, then a fetch from an `allowlist`ed `http://` URL.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ContextConfig {
    /// URL prefixes from which remote contexts may be fetched, each `http://host[:port]/…` or
    /// `https://host[:port]/…` (the host must end with `/`); a comma-separated string is accepted from the
    /// environment. Default empty: no remote context is ever fetched.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub allowlist: Vec<String>,
    /// Context URL → local file holding that context document (a JSON object with `@context`), read at start-up
    /// (a missing or invalid file is a configuration error). Default empty.
    pub preload: std::collections::BTreeMap<String, std::path::PathBuf>,
    /// Largest context document fetched or hosted, in bytes. Default 1 MiB.
    pub max_bytes: usize,
    /// Milliseconds one fetch may take, connecting included. Default 3000.
    pub timeout_ms: u64,
    /// Most fetched contexts kept in memory. Default 256.
    pub cache_entries: usize,
    /// Seconds a fetched context is used before it is fetched again. Default 3600.
    pub cache_ttl_secs: u64,
    /// Most `@context`s clients may host on the broker (`POST /ngsi-ld/v1/jsonldContexts`), each at most
    /// `max_bytes` long; 0 turns hosting off. Default 200.
    pub max_hosted: usize,
}

impl Default for ContextConfig {
    fn default() -> Self {
        ContextConfig {
            allowlist: Vec::new(),
            preload: Default::default(),
            max_bytes: 1024 * 1024,
            timeout_ms: 3_000,
            cache_entries: 256,
            cache_ttl_secs: 3_600,
            max_hosted: 200,
        }
    }
}

/// A list given as a JSON array, or as one comma-separated string (an environment variable).
fn list_or_comma_separated<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Given::deserialize(deserializer)? {
        Given::List(items) => items,
        Given::Text(text) => text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect(),
    })
}
