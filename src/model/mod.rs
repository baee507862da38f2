//! FogFlow's programming model: operators, docker images, service topologies, fog functions, service intents,
//! task instances, flows, worker profiles and the operator admin commands — the types that travel between
//! designer, master, worker and operators, with FogFlow's JSON on the wire (spec `master-worker-designer.md`
//! §1.5, §2).
//!
//! Pure data and pure rules (validation, group hashing, distances): no I/O here.

pub mod admin;
pub mod grouping;
pub mod intent;
pub mod names;
pub mod operator;
pub mod task;
pub mod topology;
pub mod worker;

pub use intent::{FogFunction, IntentAction, Priority, ServiceIntent};
pub use operator::{DockerImage, Operator, Parameter};
pub use task::{FlowInfo, InputEntity, OutputEntity, ScheduledTaskInstance, TaskInfo, TaskStatus, TaskUpdate};
pub use topology::{GroupBy, InputStreamSpec, OutputStreamSpec, Service, TaskSpec, Topology};
pub use worker::{GeoPoint, MasterProfile, ReportedTask, WorkerProfile};
