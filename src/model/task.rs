//! Task instances and the messages about them (spec §1.5): `ScheduledTaskInstance` (ADD_TASK / REMOVE_TASK),
//! `FlowInfo` (ADD_INPUT / REMOVE_INPUT), `TaskUpdate` and `TaskInfo` — PascalCase on the wire as FogFlow's Go
//! structs without tags. Additive fields: `Epoch` (the master's fencing epoch; 0 from FogFlow's master) and
//! `Reason` on a task update.

use serde::{Deserialize, Serialize};

use super::operator::Parameter;

/// The status of a task instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Placed, not yet confirmed by its worker.
    #[default]
    Scheduled,
    /// Its operator runs.
    Running,
    /// Preempted by an exclusive task.
    Paused,
    /// Stopped and cleaned up.
    Removed,
    /// Could not be started (additive to FogFlow's set).
    Failed,
}

impl TaskStatus {
    /// FogFlow's text.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Scheduled => "scheduled",
            TaskStatus::Running => "running",
            TaskStatus::Paused => "paused",
            TaskStatus::Removed => "removed",
            TaskStatus::Failed => "failed",
        }
    }
}

/// One input entity of a task.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InputEntity {
    /// Entity type.
    #[serde(default)]
    pub r#type: String,
    /// Entity id (empty: every entity of the type).
    #[serde(rename = "ID", default)]
    pub id: String,
    /// Attributes to subscribe (empty: all).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub attribute_list: Vec<String>,
}

/// One output stream of a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OutputEntity {
    /// Entity type.
    #[serde(default)]
    pub r#type: String,
    /// Entity id, `<type>.<hash>.<n>`.
    #[serde(rename = "StreamID", default)]
    pub stream_id: String,
    /// Kept for FogFlow (always null there).
    #[serde(default)]
    pub annotations: Option<serde_json::Value>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A task instance placed on a worker (`ADD_TASK`, `REMOVE_TASK`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ScheduledTaskInstance {
    /// `Task.<topology>.<task>.<hash>`.
    #[serde(rename = "ID")]
    pub id: String,
    /// Topology.
    #[serde(default)]
    pub topology_name: String,
    /// Task of the topology.
    #[serde(default)]
    pub task_name: String,
    /// The intent it serves.
    #[serde(rename = "ServiceIntentID", default)]
    pub service_intent_id: String,
    /// Operator.
    #[serde(default)]
    pub operator_name: String,
    /// Kept for FogFlow, unused.
    #[serde(default)]
    pub task_type: String,
    /// Kept for FogFlow, unused.
    #[serde(default)]
    pub function_code: String,
    /// `name:tag` of the image.
    #[serde(default)]
    pub docker_image: String,
    /// The operator's parameters.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub parameters: Vec<Parameter>,
    /// Worker it is placed on.
    #[serde(rename = "WorkerID", default)]
    pub worker_id: String,
    /// Exclusive tasks preempt inclusive ones.
    #[serde(default)]
    pub is_exclusive: bool,
    /// Priority level among exclusive tasks.
    #[serde(default)]
    pub priority_level: i32,
    /// Status text.
    #[serde(default)]
    pub status: TaskStatus,
    /// Input entities.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub inputs: Vec<InputEntity>,
    /// Output streams.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub outputs: Vec<OutputEntity>,
    /// The master's fencing epoch (additive; 0 from FogFlow's master).
    #[serde(default)]
    pub epoch: u64,
}

/// An input added to or removed from a running task (`ADD_INPUT`, `REMOVE_INPUT`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct FlowInfo {
    /// The input.
    pub input_stream: Option<InputEntity>,
    /// The task.
    #[serde(rename = "TaskInstanceID", default)]
    pub task_instance_id: String,
    /// Its worker.
    #[serde(rename = "WorkerID", default)]
    pub worker_id: String,
    /// The master's fencing epoch (additive).
    #[serde(default)]
    pub epoch: u64,
}

/// A worker's report about a task (`TASK_UPDATE`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct TaskUpdate {
    /// The task.
    #[serde(rename = "TaskID")]
    pub task_id: String,
    /// Topology.
    #[serde(default)]
    pub topology_name: String,
    /// Task of the topology.
    #[serde(default)]
    pub task_name: String,
    /// The intent.
    #[serde(rename = "ServiceIntentID", default)]
    pub service_intent_id: String,
    /// New status.
    pub status: TaskStatus,
    /// Why (failures; additive).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The epoch of the command it answers (additive).
    #[serde(default)]
    pub epoch: u64,
}

/// A worker's report after a launch (`TASK_INFO`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct TaskInfo {
    /// The task.
    #[serde(rename = "TaskID")]
    pub task_id: String,
    /// Topology.
    #[serde(default)]
    pub topology_name: String,
    /// Task of the topology.
    #[serde(default)]
    pub task_name: String,
    /// The intent (filled, unlike FogFlow).
    #[serde(rename = "ServiceIntentID", default)]
    pub service_intent_id: String,
    /// `refURL=<url>; containerID=<id>`.
    #[serde(default)]
    pub info: String,
}

impl ScheduledTaskInstance {
    /// The `TASK_UPDATE` for this task with `status`.
    pub fn update(&self, status: TaskStatus, reason: impl Into<String>) -> TaskUpdate {
        TaskUpdate {
            task_id: self.id.clone(),
            topology_name: self.topology_name.clone(),
            task_name: self.task_name.clone(),
            service_intent_id: self.service_intent_id.clone(),
            status,
            reason: reason.into(),
            epoch: self.epoch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_fogflow_scheduled_task_instance() {
        let wire = json!({"ID":"Task.Test.Main.0123456789","TopologyName":"Test","TaskName":"Main",
            "ServiceIntentID":"ServiceIntent.x","OperatorName":"dummy","TaskType":"","FunctionCode":"",
            "DockerImage":"fogflow/dummy:latest","Parameters":[{"name":"service_port","value":"4041"}],
            "WorkerID":"Worker.001","IsExclusive":false,"PriorityLevel":0,"Status":"scheduled",
            "Inputs":[{"Type":"Temperature","ID":"Device.Temp001","AttributeList":[]}],
            "Outputs":[{"Type":"Out","StreamID":"Out.0123456789.1","Annotations":null}]});
        let task: ScheduledTaskInstance = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(task.inputs[0].id, "Device.Temp001");
        assert_eq!(task.outputs[0].stream_id, "Out.0123456789.1");
        assert_eq!(task.epoch, 0);
        let back = serde_json::to_value(&task).unwrap();
        for key in wire.as_object().unwrap().keys() {
            assert_eq!(back[key], wire[key], "{key}");
        }
        let minimal: ScheduledTaskInstance = serde_json::from_value(json!({"ID":"T","WorkerID":"W"})).unwrap();
        assert_eq!(minimal.id, "T");
        let null_lists: ScheduledTaskInstance =
            serde_json::from_value(json!({"ID":"T","Inputs":null,"Parameters":null})).unwrap();
        assert!(null_lists.inputs.is_empty());
    }

    #[test]
    fn flow_info_and_updates() {
        let flow: FlowInfo = serde_json::from_value(json!({"InputStream":{"Type":"Anomaly","ID":"Anomaly.1.1",
            "AttributeList":[]},"TaskInstanceID":"Task.a.C.1","WorkerID":"Worker.001"}))
        .unwrap();
        assert_eq!(flow.input_stream.unwrap().r#type, "Anomaly");
        let update = TaskUpdate { task_id: "T".into(), status: TaskStatus::Running, ..Default::default() };
        let wire = serde_json::to_value(&update).unwrap();
        assert_eq!(wire["Status"], "running");
        assert_eq!(wire["TaskID"], "T");
    }
}
