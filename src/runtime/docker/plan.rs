//! What container a task becomes (spec §4.4, with our fixes), decided without talking to Docker: the image,
//! FogFlow's launch environment (`myport`, `adminCfg`, the operator's parameters), the labels that tie the
//! container to its task, worker, epoch and run, the network (host, or FogFlow's bridge with the task port and
//! every `service_port` published), and resource limits from the operator's `cpus` / `memory` parameters.
//!
//! Must not: do I/O.

use std::collections::HashMap;

use crate::runtime::{LaunchSpec, RuntimeError};

/// Container label keys (the `FOGFLOW_*` launch labels become `fogflow.*`).
pub mod keys {
    /// Marks every container this runtime made.
    pub const MANAGED: &str = "fogflow.managed";
    /// The run (unique per launch).
    pub const RUN: &str = "fogflow.run";
    /// The task id.
    pub const TASK_ID: &str = "fogflow.task_id";
    /// The worker id.
    pub const WORKER_ID: &str = "fogflow.worker_id";
    /// The epoch of the command that placed the task.
    pub const EPOCH: &str = "fogflow.epoch";
}

/// How a task container is networked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// The host's network: the operator binds `myport` on the host and reaches the broker as the worker does
    /// (works with `my_hostip` = 127.0.0.1).
    Host,
    /// FogFlow's default bridge network: `myport` and every `service_port` published on the host; the broker
    /// must be reachable from the container at `my_hostip`.
    Bridge,
}

impl Network {
    /// From `worker.docker_network`.
    pub fn parse(text: &str) -> Option<Network> {
        match text.to_ascii_lowercase().as_str() {
            "host" => Some(Network::Host),
            "bridge" => Some(Network::Bridge),
            _ => None,
        }
    }
}

/// One container to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPlan {
    /// `name:tag`.
    pub image: String,
    /// `KEY=value` lines.
    pub env: Vec<String>,
    /// Labels.
    pub labels: HashMap<String, String>,
    /// Network mode.
    pub network: Network,
    /// `myport`.
    pub port: u16,
    /// Ports of `service_port` parameters (published in bridge mode).
    pub service_ports: Vec<u16>,
    /// Host address the published ports bind to (bridge mode).
    pub bind_ip: String,
    /// Memory limit in bytes (`memory` parameter).
    pub memory_bytes: Option<i64>,
    /// CPU limit in billionths of a CPU (`cpus` parameter).
    pub nano_cpus: Option<i64>,
}

/// The container for `spec` in run `run_id`; a malformed `cpus`, `memory` or `service_port` parameter is a
/// permanent launch failure naming it.
pub fn plan(spec: &LaunchSpec, run_id: &str, network: Network) -> Result<ContainerPlan, RuntimeError> {
    let invalid = |name: &str, value: &str, expected: &str| RuntimeError::InvalidParameter {
        name: name.to_string(),
        value: value.to_string(),
        expected: expected.to_string(),
    };
    let mut memory_bytes = None;
    let mut nano_cpus = None;
    let mut service_ports = Vec::new();
    for parameter in &spec.parameters {
        let value = parameter.value.trim();
        match parameter.name.as_str() {
            "memory" => {
                memory_bytes = Some(
                    parse_memory(value)
                        .ok_or_else(|| invalid("memory", value, "bytes with an optional k/m/g suffix, ≥ 6m"))?,
                )
            }
            "cpus" => {
                nano_cpus = Some(parse_cpus(value).ok_or_else(|| invalid("cpus", value, "a number of CPUs > 0"))?)
            }
            "service_port" | "service-port" => service_ports.push(
                value
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| invalid(&parameter.name, value, "a port"))?,
            ),
            _ => {}
        }
    }
    let mut labels: HashMap<String, String> =
        spec.labels.iter().map(|(key, value)| (label_key(key), value.clone())).collect();
    labels.insert(keys::MANAGED.into(), "true".into());
    labels.insert(keys::RUN.into(), run_id.to_string());
    Ok(ContainerPlan {
        image: spec.image.clone(),
        env: spec.env().into_iter().map(|(key, value)| format!("{key}={value}")).collect(),
        labels,
        network,
        port: spec.port.port(),
        service_ports,
        bind_ip: "0.0.0.0".into(),
        memory_bytes,
        nano_cpus,
    })
}

/// `FOGFLOW_TASK_ID` → `fogflow.task_id`.
fn label_key(key: &str) -> String {
    match key.strip_prefix("FOGFLOW_") {
        Some(rest) => format!("fogflow.{}", rest.to_ascii_lowercase()),
        None => key.to_string(),
    }
}

/// Docker's memory syntax: `512`, `64k`, `256m`, `1g` (also `mb`, `gb`; case-insensitive); at least 6 MiB,
/// Docker's minimum.
pub fn parse_memory(text: &str) -> Option<i64> {
    let lower = text.trim().to_ascii_lowercase();
    let digits_end = lower.find(|c: char| !c.is_ascii_digit()).unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits_end);
    let number: i64 = number.parse().ok()?;
    let factor: i64 = match unit.trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor).filter(|bytes| *bytes >= 6 << 20)
}

/// A CPU count (`0.5`, `2`) → nano CPUs.
pub fn parse_cpus(text: &str) -> Option<i64> {
    let cpus: f64 = text.trim().parse().ok()?;
    (cpus.is_finite() && cpus > 0.0 && cpus <= 1024.0).then(|| (cpus * 1e9).round() as i64)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::admin::AdminCommand;
    use crate::model::Parameter;
    use crate::runtime::{labels, PortAllocator};

    fn spec(parameters: &[(&str, &str)]) -> LaunchSpec {
        LaunchSpec {
            task_id: "Task.1".into(),
            image: "fogflow/converter:latest".into(),
            port: PortAllocator::new(0).lease().unwrap(),
            admin: vec![AdminCommand::SetCorrelatorId { correlator_id: "Task.1".into() }],
            parameters: parameters
                .iter()
                .map(|(name, value)| Parameter { name: (*name).into(), value: (*value).into() })
                .collect(),
            labels: BTreeMap::from([
                (labels::TASK_ID.to_string(), "Task.1".to_string()),
                (labels::WORKER_ID.to_string(), "Worker.001".to_string()),
                (labels::EPOCH.to_string(), "7".to_string()),
            ]),
        }
    }

    #[test]
    fn a_plan_carries_the_contract_labels_and_limits() {
        let spec = spec(&[("memory", "256m"), ("cpus", "0.5"), ("threshold", "30"), ("service_port", "9000")]);
        let plan = plan(&spec, "run-1", Network::Bridge).unwrap();
        assert_eq!(plan.image, "fogflow/converter:latest");
        assert_eq!(plan.memory_bytes, Some(256 << 20));
        assert_eq!(plan.nano_cpus, Some(500_000_000));
        assert_eq!(plan.service_ports, vec![9000]);
        assert_eq!(plan.port, spec.port.port());
        assert!(plan.env.contains(&format!("myport={}", spec.port.port())));
        assert!(plan.env.contains(&"threshold=30".to_string()));
        assert!(plan.env.iter().any(|line| line.starts_with("adminCfg=[")));
        assert_eq!(plan.labels[keys::TASK_ID], "Task.1");
        assert_eq!(plan.labels[keys::WORKER_ID], "Worker.001");
        assert_eq!(plan.labels[keys::EPOCH], "7");
        assert_eq!(plan.labels[keys::RUN], "run-1");
        assert_eq!(plan.labels[keys::MANAGED], "true");
    }

    #[test]
    fn bad_limits_are_permanent_failures_naming_the_parameter() {
        for (name, value) in
            [("memory", "lots"), ("memory", "1k"), ("cpus", "-1"), ("cpus", "NaN"), ("service_port", "x")]
        {
            let error = plan(&spec(&[(name, value)]), "run-1", Network::Host).unwrap_err();
            assert!(error.is_permanent(), "{error}");
            assert!(error.to_string().contains(name), "{error}");
        }
    }

    #[test]
    fn memory_and_cpu_syntax() {
        assert_eq!(parse_memory("1g"), Some(1 << 30));
        assert_eq!(parse_memory("64MB"), Some(64 << 20));
        assert_eq!(parse_memory("7340032"), Some(7 << 20));
        assert_eq!(parse_memory("99999999999999999999g"), None);
        assert_eq!(parse_memory(""), None);
        assert_eq!(parse_cpus("2"), Some(2_000_000_000));
        assert_eq!(parse_cpus("inf"), None);
        assert_eq!(Network::parse("HOST"), Some(Network::Host));
        assert_eq!(Network::parse("overlay"), None);
    }
}
