//! One flow: one task of one intent's topology (spec §2.5–§2.7), as pure state. It holds the entities
//! registered for each input stream and derives the task instances they call for: group keys
//! `<Type>-<GroupBy>`, one instance per combination of group values (the Cartesian product), each with the
//! entities of its group as inputs, and nothing until every input stream has at least one entity.
//!
//! Unlike FogFlow it recomputes the whole desired set on every change and diffs it against the current one, so
//! deleted entities leave their groups, group values that no entity carries any more disappear, and an entity
//! whose group value changes moves to its new task (the old one is removed when empty). No I/O here.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::model::grouping::{group_hash, output_id, task_id, Group};
use crate::model::{GeoPoint, GroupBy, InputEntity, InputStreamSpec, OutputEntity, TaskSpec};
use crate::ngsi::scope::ScopeFilter;
use crate::ngsi::v1::{ContextElement, ContextMetadata, EntityId};

/// Most task instances one flow may derive (the product of group values can explode).
pub const MAX_INSTANCES_PER_FLOW: usize = 10_000;

/// An entity as the master knows it: from discovery's registration plus the providing broker's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityInfo {
    /// Id.
    pub id: String,
    /// Type.
    pub entity_type: String,
    /// Domain metadata by name.
    pub metadata: BTreeMap<String, ContextMetadata>,
    /// The broker that holds it (NGSI10 URL).
    pub provider: String,
}

impl EntityInfo {
    /// Its `location` metadata of type point, if any (FogFlow's scheduling input).
    pub fn location(&self) -> Option<GeoPoint> {
        let metadata = self.metadata.get("location")?;
        let latitude = metadata.value.get("latitude")?.as_f64()?;
        let longitude = metadata.value.get("longitude")?.as_f64()?;
        Some(GeoPoint { latitude, longitude })
    }

    fn as_element(&self) -> ContextElement {
        ContextElement {
            entity_id: EntityId { id: self.id.clone(), entity_type: self.entity_type.clone(), is_pattern: false },
            attributes: Vec::new(),
            domain_metadata: self.metadata.values().cloned().collect(),
            extra_types: Vec::new(),
        }
    }
}

/// A task instance the flow wants.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredTask {
    /// `Task.<topology>.<task>.<hash>`.
    pub task_id: String,
    /// Its group.
    pub group: Group,
    /// Its inputs, sorted by (type, id).
    pub inputs: Vec<InputEntity>,
    /// Its outputs.
    pub outputs: Vec<OutputEntity>,
}

/// What changed in the flow's desired tasks.
#[derive(Debug, Clone, PartialEq)]
pub enum FlowChange {
    /// A new task instance.
    Add(DesiredTask),
    /// A task instance no longer wanted.
    Remove(String),
    /// An input more for an existing instance.
    AddInput {
        /// The task.
        task_id: String,
        /// The input.
        input: InputEntity,
    },
    /// An input less for an existing instance.
    RemoveInput {
        /// The task.
        task_id: String,
        /// The input.
        input: InputEntity,
    },
}

/// One flow's state.
#[derive(Debug, Clone)]
pub struct Flow {
    topology: String,
    task: TaskSpec,
    scope: ScopeFilter,
    entities: Vec<BTreeMap<String, EntityInfo>>,
    current: BTreeMap<String, DesiredTask>,
}

impl Flow {
    /// A flow for `task` of `topology`; `scope` filters the entities of scoped inputs.
    pub fn new(topology: &str, task: TaskSpec, scope: ScopeFilter) -> Flow {
        let inputs = task.input_streams.len();
        Flow {
            topology: topology.into(),
            task,
            scope,
            entities: vec![BTreeMap::new(); inputs],
            current: BTreeMap::new(),
        }
    }

    /// The task spec.
    pub fn task(&self) -> &TaskSpec {
        &self.task
    }

    /// The instances it wants now.
    pub fn desired(&self) -> impl Iterator<Item = &DesiredTask> {
        self.current.values()
    }

    /// The entities known for input `index`.
    pub fn entities(&self, index: usize) -> impl Iterator<Item = &EntityInfo> {
        self.entities.get(index).into_iter().flat_map(|m| m.values())
    }

    /// Records (or refreshes) an entity of input `index` and returns the changes.
    pub fn upsert(&mut self, index: usize, entity: EntityInfo) -> Vec<FlowChange> {
        let Some(stream) = self.task.input_streams.get(index) else { return Vec::new() };
        let entities = &mut self.entities[index];
        if stream.scoped && !self.scope.is_empty() && !self.scope.matches(&entity.as_element()) {
            entities.remove(&entity.id);
        } else {
            entities.insert(entity.id.clone(), entity);
        }
        self.recompute()
    }

    /// Forgets an entity of input `index` and returns the changes.
    pub fn remove(&mut self, index: usize, entity_id: &str) -> Vec<FlowChange> {
        if let Some(entities) = self.entities.get_mut(index) {
            entities.remove(entity_id);
        }
        self.recompute()
    }

    /// Every current instance removed (the intent goes away).
    pub fn teardown(&mut self) -> Vec<FlowChange> {
        let removed = std::mem::take(&mut self.current);
        removed.into_keys().map(FlowChange::Remove).collect()
    }

    fn recompute(&mut self) -> Vec<FlowChange> {
        let desired = self.derive();
        let mut changes = Vec::new();
        for (task_id, old) in &self.current {
            match desired.get(task_id) {
                None => changes.push(FlowChange::Remove(task_id.clone())),
                Some(new) => {
                    for input in new.inputs.iter().filter(|i| !old.inputs.contains(i)) {
                        changes.push(FlowChange::AddInput { task_id: task_id.clone(), input: input.clone() });
                    }
                    for input in old.inputs.iter().filter(|i| !new.inputs.contains(i)) {
                        changes.push(FlowChange::RemoveInput { task_id: task_id.clone(), input: input.clone() });
                    }
                }
            }
        }
        for (task_id, new) in &desired {
            if !self.current.contains_key(task_id) {
                changes.push(FlowChange::Add(new.clone()));
            }
        }
        self.current = desired;
        changes
    }

    /// The desired instances from the entities known now.
    fn derive(&self) -> BTreeMap<String, DesiredTask> {
        let streams = &self.task.input_streams;
        if streams.is_empty() || self.entities.iter().any(BTreeMap::is_empty) {
            return BTreeMap::new();
        }
        // Distinct values per group key.
        let mut values: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut texts: BTreeMap<String, Value> = BTreeMap::new();
        for (index, stream) in streams.iter().enumerate() {
            let key = group_key(stream);
            let slot = values.entry(key).or_default();
            for entity in self.entities[index].values() {
                if let Some(value) = group_value(stream, entity) {
                    let text = value.to_string();
                    slot.insert(text.clone());
                    texts.insert(text, value);
                }
            }
        }
        let mut groups: Vec<Group> = vec![Group::new()];
        for (key, key_values) in &values {
            let mut next = Vec::new();
            for group in &groups {
                for text in key_values {
                    let mut extended = group.clone();
                    extended.insert(key.clone(), texts[text].clone());
                    next.push(extended);
                    if next.len() > MAX_INSTANCES_PER_FLOW {
                        tracing::warn!(topology = %self.topology, task = %self.task.name,
                            "more than {MAX_INSTANCES_PER_FLOW} task instances; the rest are not created");
                        break;
                    }
                }
            }
            groups = next;
        }
        let mut desired = BTreeMap::new();
        for group in groups {
            let mut inputs = Vec::new();
            let mut complete = true;
            for (index, stream) in streams.iter().enumerate() {
                let wanted = &group[&group_key(stream)];
                let before = inputs.len();
                for entity in self.entities[index].values() {
                    if group_value(stream, entity).as_ref() == Some(wanted) {
                        inputs.push(InputEntity {
                            r#type: entity.entity_type.clone(),
                            id: entity.id.clone(),
                            attribute_list: stream.attributes(),
                        });
                    }
                }
                complete &= inputs.len() > before;
            }
            if !complete {
                continue;
            }
            inputs.sort_by(|a, b| (&a.r#type, &a.id).cmp(&(&b.r#type, &b.id)));
            inputs.dedup();
            let hash = group_hash(&group);
            let outputs = self
                .task
                .output_streams
                .iter()
                .enumerate()
                .map(|(i, o)| OutputEntity {
                    r#type: o.entity_type.clone(),
                    stream_id: output_id(&o.entity_type, &hash, i),
                    annotations: None,
                })
                .collect();
            let id = task_id(&self.topology, &self.task.name, &hash);
            desired.insert(id.clone(), DesiredTask { task_id: id, group, inputs, outputs });
        }
        desired
    }
}

/// `<Type>-<GroupBy>`.
fn group_key(stream: &InputStreamSpec) -> String {
    format!("{}-{}", stream.selected_type, stream.group_by().as_text())
}

/// The entity's value for the stream's grouping; `None` when it lacks the grouping metadata.
fn group_value(stream: &InputStreamSpec, entity: &EntityInfo) -> Option<Value> {
    match stream.group_by() {
        GroupBy::All => Some(Value::String("ALL".into())),
        GroupBy::EntityId => Some(Value::String(entity.id.clone())),
        GroupBy::EntityType => Some(Value::String(entity.entity_type.clone())),
        GroupBy::Metadata(name) => entity
            .metadata
            .get(&name)
            .map(|m| serde_json::json!({ "name": m.name, "type": m.metadata_type, "value": m.value })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(inputs: &[(&str, &str)], outputs: &[&str]) -> TaskSpec {
        serde_json::from_value(json!({"name":"Main","operator":"op",
            "input_streams": inputs.iter().map(|(t, g)| json!({"selected_type":t,"groupby":g,"scoped":true})).collect::<Vec<_>>(),
            "output_streams": outputs.iter().map(|t| json!({"entity_type":t})).collect::<Vec<_>>()}))
        .unwrap()
    }

    fn entity(id: &str, entity_type: &str, meta: &[(&str, Value)]) -> EntityInfo {
        EntityInfo {
            id: id.into(),
            entity_type: entity_type.into(),
            metadata: meta
                .iter()
                .map(|(n, v)| {
                    let kind = if *n == "location" { "point" } else { "string" };
                    (
                        n.to_string(),
                        ContextMetadata { name: n.to_string(), metadata_type: kind.into(), value: v.clone() },
                    )
                })
                .collect(),
            provider: "http://b/ngsi10".into(),
        }
    }

    fn adds(changes: &[FlowChange]) -> Vec<&DesiredTask> {
        changes.iter().filter_map(|c| if let FlowChange::Add(t) = c { Some(t) } else { None }).collect()
    }

    #[test]
    fn one_task_per_entity_id_with_fogflow_ids() {
        let mut flow = Flow::new("Test", spec(&[("Temperature", "EntityID")], &["Out"]), ScopeFilter::default());
        let changes = flow.upsert(0, entity("Device.Temp001", "Temperature", &[]));
        let added = adds(&changes);
        assert_eq!(added.len(), 1);
        let hash = group_hash(&Group::from([("Temperature-EntityID".to_string(), json!("Device.Temp001"))]));
        assert_eq!(added[0].task_id, format!("Task.Test.Main.{hash}"));
        assert_eq!(added[0].outputs[0].stream_id, format!("Out.{hash}.1"));
        assert_eq!(added[0].inputs[0].id, "Device.Temp001");
        assert_eq!(adds(&flow.upsert(0, entity("Device.Temp002", "Temperature", &[]))).len(), 1);
        // A refresh of a known entity changes nothing.
        assert!(flow.upsert(0, entity("Device.Temp001", "Temperature", &[])).is_empty());
        assert_eq!(
            flow.remove(0, "Device.Temp002"),
            vec![FlowChange::Remove(format!(
                "Task.Test.Main.{}",
                group_hash(&Group::from([("Temperature-EntityID".to_string(), json!("Device.Temp002"))]))
            ))]
        );
        assert_eq!(flow.desired().count(), 1);
    }

    #[test]
    fn group_all_grows_and_shrinks_inputs() {
        let mut flow = Flow::new("T", spec(&[("Temperature", "ALL")], &["Out"]), ScopeFilter::default());
        assert_eq!(adds(&flow.upsert(0, entity("a", "Temperature", &[]))).len(), 1);
        let changes = flow.upsert(0, entity("b", "Temperature", &[]));
        assert!(matches!(&changes[..], [FlowChange::AddInput { input, .. }] if input.id == "b"));
        let changes = flow.remove(0, "a");
        assert!(matches!(&changes[..], [FlowChange::RemoveInput { input, .. }] if input.id == "a"));
        let changes = flow.remove(0, "b");
        assert!(matches!(&changes[..], [FlowChange::Remove(_)]));
    }

    #[test]
    fn waits_for_every_input_and_crosses_groups() {
        let mut flow = Flow::new(
            "anomaly",
            spec(&[("PowerPanel", "EntityID"), ("Rule", "ALL")], &["Anomaly"]),
            ScopeFilter::default(),
        );
        assert!(flow.upsert(0, entity("p1", "PowerPanel", &[])).is_empty());
        assert!(flow.upsert(0, entity("p2", "PowerPanel", &[])).is_empty());
        let changes = flow.upsert(1, entity("rule", "Rule", &[]));
        let added = adds(&changes);
        assert_eq!(added.len(), 2);
        for task in added {
            assert_eq!(task.inputs.len(), 2, "{task:?}");
            assert!(task.inputs.iter().any(|i| i.id == "rule"));
        }
        // Without a rule no detector may run.
        let changes = flow.remove(1, "rule");
        assert_eq!(changes.iter().filter(|c| matches!(c, FlowChange::Remove(_))).count(), 2);
    }

    #[test]
    fn metadata_groups_and_moves() {
        let mut flow = Flow::new("T", spec(&[("PowerPanel", "shop")], &["Out"]), ScopeFilter::default());
        assert_eq!(adds(&flow.upsert(0, entity("p1", "PowerPanel", &[("shop", json!("01"))]))).len(), 1);
        let changes = flow.upsert(0, entity("p2", "PowerPanel", &[("shop", json!("01"))]));
        assert!(matches!(&changes[..], [FlowChange::AddInput { .. }]));
        // p2 moves to shop 02: it leaves the first task and gets its own.
        let changes = flow.upsert(0, entity("p2", "PowerPanel", &[("shop", json!("02"))]));
        assert_eq!(changes.iter().filter(|c| matches!(c, FlowChange::RemoveInput { .. })).count(), 1);
        assert_eq!(adds(&changes).len(), 1);
        // An entity without the grouping metadata joins no task.
        assert!(flow.upsert(0, entity("p3", "PowerPanel", &[])).is_empty());
    }

    #[test]
    fn scope_filters_scoped_inputs() {
        use crate::ngsi::v1::{OperationScope, Restriction};
        let restriction = Restriction {
            scopes: vec![OperationScope {
                scope_type: "circle".into(),
                scope_value: json!({"centerLatitude": 35.0, "centerLongitude": 139.0, "radius": 1000}),
            }],
            ..Default::default()
        };
        let scope = ScopeFilter::compile(Some(&restriction)).unwrap();
        let mut flow = Flow::new("T", spec(&[("Temperature", "EntityID")], &["Out"]), scope);
        let near = entity("near", "Temperature", &[("location", json!({"latitude": 35.001, "longitude": 139.0}))]);
        let far = entity("far", "Temperature", &[("location", json!({"latitude": 36.0, "longitude": 139.0}))]);
        assert_eq!(adds(&flow.upsert(0, near)).len(), 1);
        assert!(flow.upsert(0, far).is_empty());
        // Moving out of the scope removes its task.
        let moved = entity("near", "Temperature", &[("location", json!({"latitude": 37.0, "longitude": 139.0}))]);
        assert!(matches!(&flow.upsert(0, moved)[..], [FlowChange::Remove(_)]));
        assert_eq!(
            entity("x", "T", &[("location", json!({"latitude": 1.0, "longitude": 2.0}))]).location(),
            Some(GeoPoint { latitude: 1.0, longitude: 2.0 })
        );
    }
}
