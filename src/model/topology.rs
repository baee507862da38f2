//! Service topologies (spec §2.2): tasks with input streams (`selected_type`, `selected_attributes`,
//! `groupby`, `scoped`) and output streams (`entity_type`), and their validation — names, operators that exist,
//! and no cycles among the implicit edges (task B reads task A when an input type of B is an output type of A).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::names::{check_name, NameError};

/// How the entities of one input are partitioned into task instances.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupBy {
    /// One instance gets every entity (broadcast).
    All,
    /// One instance per entity id.
    EntityId,
    /// One instance per entity type.
    EntityType,
    /// One instance per value of a domain metadata (e.g. `shop`).
    Metadata(String),
}

impl GroupBy {
    /// Parses FogFlow's text (`ALL`, `EntityID`, `EntityType`, else a metadata name); empty means `ALL`.
    pub fn parse(text: &str) -> GroupBy {
        match text.trim() {
            "" => GroupBy::All,
            t if t.eq_ignore_ascii_case("all") => GroupBy::All,
            t if t.eq_ignore_ascii_case("entityid") => GroupBy::EntityId,
            t if t.eq_ignore_ascii_case("entitytype") => GroupBy::EntityType,
            t => GroupBy::Metadata(t.to_string()),
        }
    }

    /// FogFlow's spelling, used in group keys.
    pub fn as_text(&self) -> &str {
        match self {
            GroupBy::All => "ALL",
            GroupBy::EntityId => "EntityID",
            GroupBy::EntityType => "EntityType",
            GroupBy::Metadata(name) => name,
        }
    }
}

/// One input stream of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputStreamSpec {
    /// The entity type read.
    pub selected_type: String,
    /// Attributes read (`[]` or `["all"]`: all).
    #[serde(default)]
    pub selected_attributes: Vec<String>,
    /// `ALL`, `EntityID`, `EntityType` or a metadata name.
    #[serde(default = "all_text")]
    pub groupby: String,
    /// Whether the intent's geoscope filters this input.
    #[serde(default)]
    pub scoped: bool,
}

fn all_text() -> String {
    "ALL".into()
}

impl InputStreamSpec {
    /// The partitioning.
    pub fn group_by(&self) -> GroupBy {
        GroupBy::parse(&self.groupby)
    }

    /// Selected attributes without FogFlow's `all` marker.
    pub fn attributes(&self) -> Vec<String> {
        self.selected_attributes.iter().filter(|a| !a.eq_ignore_ascii_case("all") && !a.is_empty()).cloned().collect()
    }
}

/// One output stream of a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputStreamSpec {
    /// The entity type produced.
    pub entity_type: String,
}

/// One task of a topology.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Task name, unique in the topology.
    pub name: String,
    /// The operator that runs it.
    pub operator: String,
    /// Its inputs.
    #[serde(default)]
    pub input_streams: Vec<InputStreamSpec>,
    /// Its outputs.
    #[serde(default)]
    pub output_streams: Vec<OutputStreamSpec>,
}

/// A service topology.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    /// Unique name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// The tasks.
    #[serde(default)]
    pub tasks: Vec<TaskSpec>,
}

/// A designer "service": a topology and its board (`POST /service`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// The topology.
    pub topology: Topology,
    /// The designer's board, stored as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub designboard: Option<Value>,
}

/// Why a topology is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TopologyError {
    /// A name is not acceptable.
    #[error("topology {what}: {source}")]
    Name {
        /// Which name.
        what: String,
        /// Why.
        source: NameError,
    },
    /// It has no task.
    #[error("topology {0} has no task")]
    NoTask(String),
    /// Two tasks share a name.
    #[error("topology {topology} has two tasks named {task}")]
    DuplicateTask {
        /// Topology.
        topology: String,
        /// Task.
        task: String,
    },
    /// A task has no input stream.
    #[error("task {0} has no input stream")]
    NoInput(String),
    /// An input or output type is empty.
    #[error("task {0} has an input or output stream without an entity type")]
    EmptyType(String),
    /// A task names an operator nobody registered.
    #[error("task {task} uses operator {operator}, which is not registered")]
    UnknownOperator {
        /// Task.
        task: String,
        /// Operator.
        operator: String,
    },
    /// The tasks read each other in a loop.
    #[error("tasks form a cycle: {0}")]
    Cycle(String),
}

impl Topology {
    /// Checks names, streams, operators (`operator_exists`) and cycles.
    pub fn validate(&self, operator_exists: impl Fn(&str) -> bool) -> Result<(), TopologyError> {
        check_name(&self.name).map_err(|source| TopologyError::Name { what: "name".into(), source })?;
        if self.tasks.is_empty() {
            return Err(TopologyError::NoTask(self.name.clone()));
        }
        let mut seen = BTreeSet::new();
        for task in &self.tasks {
            check_name(&task.name).map_err(|source| TopologyError::Name { what: "task name".into(), source })?;
            if !seen.insert(task.name.as_str()) {
                return Err(TopologyError::DuplicateTask { topology: self.name.clone(), task: task.name.clone() });
            }
            if task.input_streams.is_empty() {
                return Err(TopologyError::NoInput(task.name.clone()));
            }
            let empty_input = task.input_streams.iter().any(|s| s.selected_type.trim().is_empty());
            let empty_output = task.output_streams.iter().any(|s| s.entity_type.trim().is_empty());
            if empty_input || empty_output {
                return Err(TopologyError::EmptyType(task.name.clone()));
            }
            if !operator_exists(&task.operator) {
                return Err(TopologyError::UnknownOperator {
                    task: task.name.clone(),
                    operator: task.operator.clone(),
                });
            }
        }
        self.check_cycles()
    }

    /// The operators its tasks use, each once.
    pub fn operators(&self) -> BTreeSet<&str> {
        self.tasks.iter().map(|t| t.operator.as_str()).collect()
    }

    /// The task named `name`.
    pub fn task(&self, name: &str) -> Option<&TaskSpec> {
        self.tasks.iter().find(|t| t.name == name)
    }

    fn check_cycles(&self) -> Result<(), TopologyError> {
        // Edge A -> B when B reads a type A writes.
        let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for a in &self.tasks {
            for b in &self.tasks {
                let reads =
                    b.input_streams.iter().any(|i| a.output_streams.iter().any(|o| o.entity_type == i.selected_type));
                if reads {
                    edges.entry(a.name.as_str()).or_default().push(b.name.as_str());
                }
            }
        }
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            Visiting,
            Done,
        }
        fn visit<'a>(
            node: &'a str,
            edges: &BTreeMap<&'a str, Vec<&'a str>>,
            marks: &mut BTreeMap<&'a str, Mark>,
            path: &mut Vec<&'a str>,
        ) -> Result<(), String> {
            match marks.get(node) {
                Some(Mark::Done) => return Ok(()),
                Some(Mark::Visiting) => {
                    let start = path.iter().position(|n| *n == node).unwrap_or(0);
                    let mut cycle: Vec<&str> = path[start..].to_vec();
                    cycle.push(node);
                    return Err(cycle.join(" -> "));
                }
                None => {}
            }
            marks.insert(node, Mark::Visiting);
            path.push(node);
            for next in edges.get(node).map(Vec::as_slice).unwrap_or(&[]) {
                visit(next, edges, marks, path)?;
            }
            path.pop();
            marks.insert(node, Mark::Done);
            Ok(())
        }
        let mut marks = BTreeMap::new();
        for task in &self.tasks {
            visit(&task.name, &edges, &mut marks, &mut Vec::new()).map_err(TopologyError::Cycle)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn anomaly() -> Topology {
        serde_json::from_value(json!({"name":"anomaly-detection","description":"d","tasks":[
          {"name":"Detector","operator":"anomaly","input_streams":[
             {"selected_type":"PowerPanel","selected_attributes":[],"groupby":"EntityID","scoped":true},
             {"selected_type":"Rule","selected_attributes":["all"],"groupby":"ALL","scoped":false}],
           "output_streams":[{"entity_type":"Anomaly"}]},
          {"name":"Counting","operator":"counter","input_streams":[
             {"selected_type":"Anomaly","selected_attributes":[],"groupby":"ALL","scoped":true}],
           "output_streams":[{"entity_type":"Stat"}]}]}))
        .unwrap()
    }

    #[test]
    fn fogflow_topology_is_valid() {
        let topology = anomaly();
        topology.validate(|_| true).unwrap();
        assert_eq!(topology.tasks[0].input_streams[0].group_by(), GroupBy::EntityId);
        assert!(topology.tasks[0].input_streams[1].attributes().is_empty());
        assert_eq!(topology.operators().into_iter().collect::<Vec<_>>(), vec!["anomaly", "counter"]);
    }

    #[test]
    fn refuses_unknown_operators_cycles_and_bad_names() {
        let topology = anomaly();
        assert!(matches!(topology.validate(|op| op != "counter"), Err(TopologyError::UnknownOperator { .. })));
        let mut cyclic = anomaly();
        cyclic.tasks[1].output_streams[0].entity_type = "PowerPanel".into();
        match cyclic.validate(|_| true) {
            Err(TopologyError::Cycle(path)) => assert!(path.contains("Detector -> Counting -> Detector"), "{path}"),
            other => panic!("{other:?}"),
        }
        let mut self_loop = anomaly();
        self_loop.tasks[1].output_streams[0].entity_type = "Anomaly".into();
        assert!(matches!(self_loop.validate(|_| true), Err(TopologyError::Cycle(_))));
        let mut bad = anomaly();
        bad.name = "a b".into();
        assert!(matches!(bad.validate(|_| true), Err(TopologyError::Name { .. })));
        let mut dup = anomaly();
        dup.tasks[1].name = "Detector".into();
        assert!(matches!(dup.validate(|_| true), Err(TopologyError::DuplicateTask { .. })));
    }

    #[test]
    fn group_by_parsing() {
        assert_eq!(GroupBy::parse("all"), GroupBy::All);
        assert_eq!(GroupBy::parse(""), GroupBy::All);
        assert_eq!(GroupBy::parse("entityid"), GroupBy::EntityId);
        assert_eq!(GroupBy::parse("shop"), GroupBy::Metadata("shop".into()));
        assert_eq!(GroupBy::parse("shop").as_text(), "shop");
    }
}
