//! The worker loop over the in-process bus with a fake runtime and a fake broker.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::json;

use super::inputs::{BrokerError, TaskBroker};
use super::*;
use crate::bus::memory::MemoryBus;
use crate::bus::Consumer;
use crate::model::{InputEntity, OutputEntity, TaskStatus, TaskUpdate};
use crate::runtime::{BoxFuture, ExitEvent, LaunchSpec, Launched, RunningTask, RuntimeError};

const WORKER: &str = "Worker.test";

#[derive(Default)]
struct FakeRuntime {
    launches: Mutex<Vec<(String, HashMap<String, String>)>>,
    running: Mutex<HashMap<String, String>>,
    stopped: Mutex<Vec<String>>,
    gate: Mutex<Option<Arc<tokio::sync::Semaphore>>>,
    exits: Mutex<Option<mpsc::UnboundedSender<ExitEvent>>>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<ExitEvent>>>,
}

impl FakeRuntime {
    fn new() -> Arc<Self> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let runtime = FakeRuntime::default();
        *runtime.exits.lock().unwrap() = Some(sender);
        *runtime.receiver.lock().unwrap() = Some(receiver);
        Arc::new(runtime)
    }

    fn launch_count(&self, task: &str) -> usize {
        self.launches.lock().unwrap().iter().filter(|(id, _)| id == task).count()
    }

    fn run_of(&self, task: &str) -> Option<String> {
        self.running.lock().unwrap().iter().find(|(_, t)| *t == task).map(|(run, _)| run.clone())
    }

    fn crash(&self, task: &str) {
        let run = self.run_of(task).expect("running");
        self.running.lock().unwrap().remove(&run);
        let event = ExitEvent {
            task_id: task.into(),
            run_id: run,
            code: Some(1),
            reason: "exited with code 1".into(),
            requested: false,
        };
        self.exits.lock().unwrap().as_ref().unwrap().send(event).unwrap();
    }
}

impl TaskRuntime for FakeRuntime {
    fn kind(&self) -> &'static str {
        "fake"
    }

    fn launch(&self, spec: LaunchSpec) -> BoxFuture<'_, Result<Launched, RuntimeError>> {
        Box::pin(async move {
            let gate = self.gate.lock().unwrap().clone();
            if let Some(gate) = gate {
                gate.acquire().await.unwrap().forget();
            }
            if spec.image.starts_with("bad/") {
                return Err(RuntimeError::UnknownImage { runtime: "process", image: spec.image.clone() });
            }
            let mut launches = self.launches.lock().unwrap();
            launches.push((spec.task_id.clone(), spec.env().into_iter().collect()));
            let n = launches.len();
            let run_id = format!("run-{n}");
            self.running.lock().unwrap().insert(run_id.clone(), spec.task_id.clone());
            Ok(Launched {
                run_id,
                container_id: format!("{}", 1000 + n),
                pid: Some(1000 + n as u32),
                port: spec.port.port(),
            })
        })
    }

    fn stop<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(async move {
            let task = self.running.lock().unwrap().remove(run_id).ok_or(RuntimeError::NotFound(run_id.into()))?;
            self.stopped.lock().unwrap().push(task.clone());
            let event = ExitEvent {
                task_id: task,
                run_id: run_id.into(),
                code: None,
                reason: "stopped".into(),
                requested: true,
            };
            let _ = self.exits.lock().unwrap().as_ref().unwrap().send(event);
            Ok(())
        })
    }

    fn list(&self) -> BoxFuture<'_, Vec<RunningTask>> {
        let runs = self
            .running
            .lock()
            .unwrap()
            .iter()
            .map(|(run, task)| RunningTask { task_id: task.clone(), run_id: run.clone(), pid: None })
            .collect();
        Box::pin(async move { runs })
    }

    fn take_exit_events(&self) -> Option<mpsc::UnboundedReceiver<ExitEvent>> {
        self.receiver.lock().unwrap().take()
    }
}

#[derive(Default)]
struct FakeBroker {
    subscriptions: Mutex<Vec<(String, String, String, String)>>,
    unsubscribed: Mutex<Vec<String>>,
    deleted: Mutex<Vec<String>>,
}

impl FakeBroker {
    fn subscribed_inputs(&self, task: &str) -> Vec<String> {
        self.subscriptions.lock().unwrap().iter().filter(|s| s.0 == task).map(|s| s.1.clone()).collect()
    }
}

impl TaskBroker for FakeBroker {
    fn subscribe<'a>(
        &'a self,
        task_id: &'a str,
        input: &'a InputEntity,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<String, BrokerError>> {
        Box::pin(async move {
            let mut subscriptions = self.subscriptions.lock().unwrap();
            let sid = format!("sid-{}", subscriptions.len() + 1);
            subscriptions.push((task_id.into(), input.id.clone(), reference.into(), sid.clone()));
            Ok(sid)
        })
    }

    fn unsubscribe<'a>(&'a self, subscription_id: &'a str) -> BoxFuture<'a, Result<(), BrokerError>> {
        self.unsubscribed.lock().unwrap().push(subscription_id.into());
        Box::pin(async { Ok(()) })
    }

    fn delete_entity<'a>(&'a self, _entity_type: &'a str, id: &'a str) -> BoxFuture<'a, Result<(), BrokerError>> {
        self.deleted.lock().unwrap().push(id.into());
        Box::pin(async { Ok(()) })
    }
}

struct Harness {
    bus: MemoryBus,
    runtime: Arc<FakeRuntime>,
    broker: Arc<FakeBroker>,
    master: Consumer,
    views: TaskViews,
    metrics: WorkerMetrics,
    shutdown: CancellationToken,
    worker: tokio::task::JoinHandle<Result<(), crate::roles::RoleError>>,
}

async fn start(capacity: u32, heartbeat: Duration, gate: Option<Arc<tokio::sync::Semaphore>>) -> Harness {
    let bus = MemoryBus::new();
    let master = bus.consume(QueueSpec::new("Master.test", ["heartbeat.*", "task."])).await.unwrap();
    let runtime = FakeRuntime::new();
    *runtime.gate.lock().unwrap() = gate;
    let broker = Arc::new(FakeBroker::default());
    let views = TaskViews::default();
    let metrics = WorkerMetrics::default();
    let parts = WorkerParts {
        worker_id: WORKER.into(),
        profile: WorkerProfile { id: WORKER.into(), capacity, runtime: "fake".into(), ..Default::default() },
        heartbeat,
        launcher: Launcher {
            worker_id: WORKER.into(),
            runtime: runtime.clone(),
            broker: broker.clone(),
            ports: PortAllocator::new(0),
            broker_url: "http://10.0.0.1:8070/ngsi10".into(),
            host_ip: "10.0.0.5".into(),
            listen_wait: Duration::ZERO,
        },
        backoff: Backoff { first: Duration::from_millis(50), max: Duration::from_millis(200) },
        metrics: metrics.clone(),
        views: views.clone(),
        readiness: Readiness::new("starting"),
        teardown_budget: Duration::from_secs(5),
    };
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(run_worker(parts, Arc::new(bus.clone()), shutdown.clone()));
    let mut harness = Harness { bus, runtime, broker, master, views, metrics, shutdown, worker };
    let join = harness.next().await;
    assert_eq!(join.kind(), Some(MessageType::WorkerJoin));
    assert_eq!(join.routing_key, "heartbeat.");
    assert_eq!(join.payload["id"], WORKER);
    harness
}

fn task(id: &str, epoch: u64) -> ScheduledTaskInstance {
    ScheduledTaskInstance {
        id: id.into(),
        topology_name: "Test".into(),
        task_name: "Main".into(),
        service_intent_id: "ServiceIntent.1".into(),
        docker_image: "fogflow/dummy:latest".into(),
        worker_id: WORKER.into(),
        inputs: vec![InputEntity { r#type: "Temperature".into(), id: format!("Device.{id}"), attribute_list: vec![] }],
        outputs: vec![OutputEntity { r#type: "Out".into(), stream_id: format!("Out.{id}.1"), annotations: None }],
        epoch,
        ..Default::default()
    }
}

fn exclusive(id: &str, level: i32) -> ScheduledTaskInstance {
    ScheduledTaskInstance { is_exclusive: true, priority_level: level, ..task(id, 0) }
}

fn flow(task: &str, input: &str, epoch: u64) -> FlowInfo {
    FlowInfo {
        input_stream: Some(InputEntity { r#type: "Temperature".into(), id: input.into(), attribute_list: vec![] }),
        task_instance_id: task.into(),
        worker_id: WORKER.into(),
        epoch,
    }
}

impl Harness {
    async fn send(&self, kind: MessageType, payload: &impl serde::Serialize) {
        self.bus.publish(Envelope::new(kind, keys::direct(WORKER), "Master.test", payload)).await.unwrap();
    }

    async fn next(&mut self) -> Envelope {
        let delivery =
            tokio::time::timeout(Duration::from_secs(5), self.master.next()).await.expect("a message").expect("open");
        let envelope = delivery.envelope.clone();
        delivery.ack();
        envelope
    }

    /// The next TASK_UPDATE (TASK_INFO and heartbeats skipped).
    async fn update(&mut self) -> TaskUpdate {
        loop {
            let envelope = self.next().await;
            if envelope.kind() == Some(MessageType::TaskUpdate) {
                return envelope.payload_as().unwrap();
            }
        }
    }

    async fn expect(&mut self, id: &str, status: TaskStatus) -> TaskUpdate {
        let update = self.update().await;
        assert_eq!((update.task_id.as_str(), update.status), (id, status), "{update:?}");
        update
    }

    async fn stop(self) -> (Vec<Envelope>, Arc<FakeRuntime>, Arc<FakeBroker>) {
        let mut this = self;
        this.shutdown.cancel();
        let mut rest = Vec::new();
        loop {
            let envelope = this.next().await;
            let leave = envelope.kind() == Some(MessageType::WorkerLeave);
            rest.push(envelope);
            if leave {
                break;
            }
        }
        tokio::time::timeout(Duration::from_secs(5), this.worker).await.unwrap().unwrap().unwrap();
        (rest, this.runtime, this.broker)
    }
}

#[tokio::test]
async fn add_task_launches_subscribes_reports_and_is_idempotent() {
    let mut h = start(8, Duration::from_secs(3600), None).await;
    h.send(MessageType::AddTask, &task("Task.A", 0)).await;
    let running = h.expect("Task.A", TaskStatus::Running).await;
    assert_eq!(running.service_intent_id, "ServiceIntent.1");
    let info = h.next().await;
    assert_eq!(info.kind(), Some(MessageType::TaskInfo));
    let (_, env) = h.runtime.launches.lock().unwrap()[0].clone();
    let port = env["myport"].clone();
    assert_eq!(info.payload["Info"], format!("refURL=http://10.0.0.5:{port}; containerID=1001"));
    assert_eq!(info.payload["ServiceIntentID"], "ServiceIntent.1");
    let admin: serde_json::Value = serde_json::from_str(&env["adminCfg"]).unwrap();
    assert_eq!(
        admin,
        json!([{"command":"CONNECT_BROKER","brokerURL":"http://10.0.0.1:8070/ngsi10"},
            {"command":"SET_CORRELATORID","correlatorID":"Task.A"},
            {"command":"SET_REFERENCE","url":format!("http://10.0.0.5:{port}")},
            {"command":"SET_OUTPUTS","type":"Out","id":"Out.Task.A.1"}])
    );
    assert_eq!(env["FOGFLOW_WORKER_ID"], WORKER);
    let subscription = h.broker.subscriptions.lock().unwrap()[0].clone();
    assert_eq!(
        subscription,
        ("Task.A".into(), "Device.Task.A".into(), format!("http://10.0.0.5:{port}"), "sid-1".into())
    );
    // The same ADD_TASK again (a redelivery, or a master re-sending after a restart): no second launch, the
    // current status again, the newer epoch adopted.
    h.send(MessageType::AddTask, &task("Task.A", 2)).await;
    assert_eq!(h.expect("Task.A", TaskStatus::Running).await.epoch, 2);
    assert_eq!(h.runtime.launch_count("Task.A"), 1);
    let views = h.views.get();
    assert_eq!(views.len(), 1);
    assert_eq!((views[0].status.as_str(), views[0].epoch, views[0].pid), ("running", 2, Some(1001)));
    assert_eq!(serde_json::to_value(&views[0]).unwrap()["refURL"], format!("http://10.0.0.5:{port}"));
    // REMOVE_TASK: stopped, unsubscribed, output deleted, removed.
    h.send(MessageType::RemoveTask, &json!({"ID":"Task.A","WorkerID":WORKER,"Epoch":2})).await;
    h.expect("Task.A", TaskStatus::Removed).await;
    assert_eq!(*h.runtime.stopped.lock().unwrap(), vec!["Task.A".to_string()]);
    assert_eq!(*h.broker.unsubscribed.lock().unwrap(), vec!["sid-1".to_string()]);
    assert_eq!(*h.broker.deleted.lock().unwrap(), vec!["Out.Task.A.1".to_string()]);
    // An unknown task is confirmed removed too.
    h.send(MessageType::RemoveTask, &json!({"ID":"Task.Gone","Epoch":2})).await;
    h.expect("Task.Gone", TaskStatus::Removed).await;
    let (rest, _, _) = h.stop().await;
    assert_eq!(rest.len(), 1, "only WORKER_LEAVE after the last task went: {rest:?}");
}

#[tokio::test]
async fn stale_epochs_are_refused() {
    let mut h = start(8, Duration::from_secs(3600), None).await;
    h.send(MessageType::AddTask, &task("Task.A", 5)).await;
    h.expect("Task.A", TaskStatus::Running).await;
    h.send(MessageType::AddTask, &task("Task.Old", 3)).await;
    h.send(MessageType::AddTask, &task("Task.Zero", 0)).await;
    h.send(MessageType::RemoveTask, &json!({"ID":"Task.A","Epoch":4})).await;
    h.send(MessageType::AddInput, &flow("Task.A", "Device.X", 1)).await;
    h.send(MessageType::AddTask, &task("Task.New", 5)).await;
    h.expect("Task.New", TaskStatus::Running).await;
    assert_eq!(h.metrics.stale_commands.get(), 4);
    assert_eq!(h.runtime.launch_count("Task.Old") + h.runtime.launch_count("Task.Zero"), 0);
    assert_eq!(h.broker.subscribed_inputs("Task.A"), vec!["Device.Task.A"]);
    assert!(h.runtime.stopped.lock().unwrap().is_empty());
    assert_eq!(h.views.get().len(), 2);
    h.stop().await;
}

#[tokio::test]
async fn inputs_added_before_the_launch_completes_are_subscribed_once() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let mut h = start(8, Duration::from_secs(3600), Some(gate.clone())).await;
    h.send(MessageType::AddTask, &task("Task.A", 1)).await;
    h.send(MessageType::AddInput, &flow("Task.A", "Device.B", 1)).await;
    h.send(MessageType::AddInput, &flow("Task.A", "Device.B", 1)).await;
    h.send(MessageType::AddInput, &flow("Task.A", "Device.Task.A", 1)).await;
    h.send(MessageType::RemoveInput, &flow("Task.Unknown", "Device.B", 1)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.bus.depth(WORKER), 0, "commands are handled while the launch runs");
    assert_eq!(h.views.get()[0].status, "scheduled");
    gate.add_permits(1);
    h.expect("Task.A", TaskStatus::Running).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(h.broker.subscribed_inputs("Task.A"), vec!["Device.Task.A", "Device.B"]);
    // REMOVE_INPUT carries only the id.
    h.send(MessageType::RemoveInput, &json!({"InputStream":{"ID":"Device.B"},"TaskInstanceID":"Task.A","Epoch":1}))
        .await;
    h.send(MessageType::AddTask, &task("Task.A", 1)).await;
    h.expect("Task.A", TaskStatus::Running).await;
    assert_eq!(*h.broker.unsubscribed.lock().unwrap(), vec!["sid-2".to_string()]);
    assert_eq!(h.views.get()[0].inputs.len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn exclusive_tasks_preempt_and_resume() {
    let mut h = start(8, Duration::from_secs(3600), None).await;
    h.send(MessageType::AddTask, &task("A", 0)).await;
    h.expect("A", TaskStatus::Running).await;
    h.send(MessageType::AddTask, &exclusive("Z", 0)).await;
    h.expect("A", TaskStatus::Paused).await;
    h.expect("Z", TaskStatus::Running).await;
    assert_eq!(*h.broker.deleted.lock().unwrap(), vec!["Out.A.1".to_string()], "a paused task's outputs go");
    h.send(MessageType::AddTask, &exclusive("X", 10)).await;
    h.expect("Z", TaskStatus::Paused).await;
    h.expect("X", TaskStatus::Running).await;
    h.send(MessageType::AddTask, &task("B", 0)).await;
    h.expect("B", TaskStatus::Paused).await;
    h.send(MessageType::RemoveTask, &json!({"ID":"X"})).await;
    h.expect("X", TaskStatus::Removed).await;
    h.expect("Z", TaskStatus::Running).await; // level 0 resumes (FogFlow's quirk fixed)
    h.send(MessageType::RemoveTask, &json!({"ID":"Z"})).await;
    h.expect("Z", TaskStatus::Removed).await;
    let mut resumed = [h.update().await, h.update().await];
    resumed.sort_by(|a, b| a.task_id.cmp(&b.task_id));
    assert_eq!(
        resumed.iter().map(|u| (u.task_id.as_str(), u.status)).collect::<Vec<_>>(),
        vec![("A", TaskStatus::Running), ("B", TaskStatus::Running)]
    );
    assert_eq!(h.runtime.launch_count("A"), 2);
    h.stop().await;
}

#[tokio::test]
async fn capacity_unknown_images_and_malformed_messages() {
    let mut h = start(1, Duration::from_secs(3600), None).await;
    h.send(MessageType::AddTask, &task("Task.A", 0)).await;
    h.expect("Task.A", TaskStatus::Running).await;
    h.send(MessageType::AddTask, &task("Task.B", 0)).await;
    assert_eq!(h.expect("Task.B", TaskStatus::Failed).await.reason, "worker at capacity");
    h.send(MessageType::RemoveTask, &json!({"ID":"Task.A"})).await;
    h.expect("Task.A", TaskStatus::Removed).await;
    h.send(MessageType::AddTask, &json!({"ID": 7})).await;
    h.send(MessageType::AddInput, &json!({"TaskInstanceID":"Task.A"})).await;
    h.bus.publish(Envelope::new(MessageType::TaskUpdate, keys::direct(WORKER), "x", &json!({}))).await.unwrap();
    h.send(MessageType::PrefetchImage, &json!({"name":"fogflow/dummy","tag":"latest"})).await;
    h.send(MessageType::AddTask, &ScheduledTaskInstance { docker_image: "bad/image:1".into(), ..task("Task.C", 0) })
        .await;
    let failed = h.expect("Task.C", TaskStatus::Failed).await;
    assert_eq!(failed.reason, "no process-runtime operator for image bad/image:1");
    assert!(h.views.get().is_empty(), "a task that cannot run is not held");
    assert_eq!(h.bus.depth(WORKER), 0);
    h.stop().await;
}

#[tokio::test]
async fn a_task_whose_operator_dies_is_reported_and_restarted() {
    let mut h = start(8, Duration::from_secs(3600), None).await;
    h.send(MessageType::AddTask, &task("Task.A", 0)).await;
    h.expect("Task.A", TaskStatus::Running).await;
    h.runtime.crash("Task.A");
    let failed = h.expect("Task.A", TaskStatus::Failed).await;
    assert_eq!(failed.reason, "operator exited with code 1");
    assert_eq!(*h.broker.unsubscribed.lock().unwrap(), vec!["sid-1".to_string()]);
    h.expect("Task.A", TaskStatus::Running).await;
    assert_eq!(h.runtime.launch_count("Task.A"), 2);
    assert_eq!(h.broker.subscribed_inputs("Task.A").len(), 2, "subscribed again for the new run");
    assert_eq!(h.metrics.restarts.get(), 1);
    h.runtime.crash("Task.A");
    h.expect("Task.A", TaskStatus::Failed).await;
    h.send(MessageType::RemoveTask, &json!({"ID":"Task.A"})).await;
    h.expect("Task.A", TaskStatus::Removed).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.runtime.launch_count("Task.A"), 2, "no restart after removal");
    h.stop().await;
}

#[tokio::test]
async fn heartbeats_report_tasks_and_shutdown_removes_everything() {
    let mut h = start(8, Duration::from_millis(100), None).await;
    h.send(MessageType::AddTask, &task("Task.A", 3)).await;
    h.send(MessageType::AddTask, &task("Task.B", 3)).await;
    h.expect("Task.A", TaskStatus::Running).await;
    h.expect("Task.B", TaskStatus::Running).await;
    let heartbeat = loop {
        let envelope = h.next().await;
        if envelope.kind() == Some(MessageType::WorkerHeartbeat) && envelope.payload["workload"] == 2 {
            break envelope;
        }
    };
    assert_eq!(heartbeat.routing_key, "heartbeat.");
    assert_eq!(heartbeat.payload["capacity"], 8);
    assert_eq!(heartbeat.payload["tasks"][0], json!({"id":"Task.A","epoch":3,"status":"running"}));
    assert_eq!(heartbeat.payload["epoch"], 3, "the highest epoch accepted");
    // A newly active master's MASTER_JOIN raises it: heartbeats report it, and older commands are refused.
    h.send(MessageType::MasterJoin, &json!({"id":"Master.B","epoch":9})).await;
    loop {
        let envelope = h.next().await;
        if envelope.kind() == Some(MessageType::WorkerHeartbeat) && envelope.payload["epoch"] == 9 {
            break;
        }
    }
    h.send(MessageType::RemoveTask, &json!({"ID":"Task.A","Epoch":3})).await;
    h.send(MessageType::MasterJoin, &json!({"id":"Master.A","epoch":3})).await;
    tokio::time::timeout(Duration::from_secs(5), async {
        while h.metrics.stale_commands.get() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the old master's commands refused");
    assert_eq!(h.views.get().len(), 2);
    let (rest, runtime, broker) = h.stop().await;
    let removed: Vec<String> = rest
        .iter()
        .filter(|e| e.kind() == Some(MessageType::TaskUpdate))
        .map(|e| e.payload_as::<TaskUpdate>().unwrap())
        .filter(|u| u.status == TaskStatus::Removed)
        .map(|u| u.task_id)
        .collect();
    assert_eq!(removed.len(), 2);
    assert_eq!(rest.last().unwrap().payload["workload"], 0);
    assert!(runtime.running.lock().unwrap().is_empty());
    assert_eq!(broker.unsubscribed.lock().unwrap().len(), 2);
    assert_eq!(broker.deleted.lock().unwrap().len(), 2);
}
