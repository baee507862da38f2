//! FogFlow's bus envelope and message types (spec §1.3–§1.4): `{"Type","RoutingKey","From","PayLoad"}`, with
//! routing keys that end in a dot.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The message types FogFlow's components exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Worker → master: joined.
    WorkerJoin,
    /// Worker → master: alive, with its load.
    WorkerHeartbeat,
    /// Worker → master: leaving.
    WorkerLeave,
    /// Master → worker: launch.
    AddTask,
    /// Master → worker: stop.
    RemoveTask,
    /// Master → worker: one more input.
    AddInput,
    /// Master → worker: one input less.
    RemoveInput,
    /// Master → worker: pull an image.
    PrefetchImage,
    /// Worker → master, designer: status.
    TaskUpdate,
    /// Worker → master, designer: launch details.
    TaskInfo,
    /// Master → designer: presence.
    MasterJoin,
    /// Master → designer: leaving.
    MasterLeave,
    /// Designer → master: add or delete an intent.
    ServiceIntent,
    /// Master → the active master (additive): a probe every master publishes each second on the masters'
    /// single-active queue, so a standby learns promptly that it became the active one; acked and ignored.
    MasterProbe,
}

impl MessageType {
    /// FogFlow's `Type` text.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::WorkerJoin => "WORKER_JOIN",
            MessageType::WorkerHeartbeat => "WORKER_HEARTBEAT",
            MessageType::WorkerLeave => "WORKER_LEAVE",
            MessageType::AddTask => "ADD_TASK",
            MessageType::RemoveTask => "REMOVE_TASK",
            MessageType::AddInput => "ADD_INPUT",
            MessageType::RemoveInput => "REMOVE_INPUT",
            MessageType::PrefetchImage => "PREFETCH_IMAGE",
            MessageType::TaskUpdate => "TASK_UPDATE",
            MessageType::TaskInfo => "TASK_INFO",
            MessageType::MasterJoin => "MASTER_JOIN",
            MessageType::MasterLeave => "MASTER_LEAVE",
            MessageType::ServiceIntent => "ServiceIntent",
            MessageType::MasterProbe => "MASTER_PROBE",
        }
    }

    /// Parses a `Type` text.
    pub fn parse(text: &str) -> Option<MessageType> {
        const ALL: [MessageType; 14] = [
            MessageType::WorkerJoin,
            MessageType::WorkerHeartbeat,
            MessageType::WorkerLeave,
            MessageType::AddTask,
            MessageType::RemoveTask,
            MessageType::AddInput,
            MessageType::RemoveInput,
            MessageType::PrefetchImage,
            MessageType::TaskUpdate,
            MessageType::TaskInfo,
            MessageType::MasterJoin,
            MessageType::MasterLeave,
            MessageType::ServiceIntent,
            MessageType::MasterProbe,
        ];
        ALL.into_iter().find(|t| t.as_str() == text)
    }
}

/// Routing keys (with FogFlow's trailing dot).
pub mod keys {
    /// Worker liveness.
    pub const HEARTBEAT: &str = "heartbeat.";
    /// Task status.
    pub const TASK: &str = "task.";
    /// To the designer.
    pub const DESIGNER: &str = "designer.";
    /// Intents to the master.
    pub const ORCHESTRATION: &str = "orchestration.";
    /// Masters' probes to the active master (bound only to the masters' shared queue).
    pub const MASTER_PROBE: &str = "master.probe.";

    /// The key addressing one component by id (`Worker.001.`).
    pub fn direct(id: &str) -> String {
        format!("{id}.")
    }
}

/// The envelope of every bus message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Message type text.
    #[serde(rename = "Type")]
    pub message_type: String,
    /// Routing key.
    #[serde(rename = "RoutingKey")]
    pub routing_key: String,
    /// Sender id.
    #[serde(rename = "From", default)]
    pub from: String,
    /// The payload.
    #[serde(rename = "PayLoad", default)]
    pub payload: Value,
}

impl Envelope {
    /// An envelope for `payload`.
    pub fn new(
        message_type: MessageType,
        routing_key: impl Into<String>,
        from: impl Into<String>,
        payload: &impl Serialize,
    ) -> Self {
        Envelope {
            message_type: message_type.as_str().into(),
            routing_key: routing_key.into(),
            from: from.into(),
            payload: serde_json::to_value(payload).unwrap_or(Value::Null),
        }
    }

    /// The parsed type, `None` for a type this release does not know.
    pub fn kind(&self) -> Option<MessageType> {
        MessageType::parse(&self.message_type)
    }

    /// The payload as `T`.
    pub fn payload_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fogflow_envelope() {
        let wire = json!({"Type":"ServiceIntent","RoutingKey":"orchestration.","From":"designer",
            "PayLoad":{"id":"ServiceIntent.1","topology":"t","action":"ADD"}});
        let envelope: Envelope = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(envelope.kind(), Some(MessageType::ServiceIntent));
        assert_eq!(serde_json::to_value(&envelope).unwrap(), wire);
        assert_eq!(MessageType::parse("WORKER_HEARTBEAT"), Some(MessageType::WorkerHeartbeat));
        assert_eq!(MessageType::parse("nope"), None);
        assert_eq!(keys::direct("Worker.001"), "Worker.001.");
    }
}
