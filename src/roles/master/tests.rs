//! The orchestrator's deployment logic against the in-process bus with two simulated workers: placement on the
//! nearest worker, rescheduling when that worker goes silent, reconciliation when it comes back, and removal
//! when the input disappears. Discovery, brokers and the designer are unreachable here (closed ports): the
//! orchestrator must cope (entity details fall back to id and type; the flow's location comes from the test).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::json;

use super::failover::Takeover;
use super::orchestrator::{Input, Links, Orchestrator, Snapshot};
use super::records::{IntentRecord, MasterStore};
use crate::bus::memory::MemoryBus;
use crate::bus::{Bus, Consumer, MessageType, QueueSpec};
use crate::clients::broker::BrokerClient;
use crate::clients::discovery::DiscoveryClient;
use crate::clients::http_client::HttpClient;
use crate::config::Config;
use crate::model::{GeoPoint, ReportedTask, ScheduledTaskInstance, ServiceIntent, Topology, WorkerProfile};
use crate::ngsi::v9::NotifyContextAvailabilityRequest;
use crate::store::Store;

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn orchestrator(bus: &MemoryBus) -> Orchestrator {
    let mut config = Config::default();
    config.worker.heartbeat_interval = 1;
    config.worker.detection_duration = 1;
    config.my_hostip = "127.0.0.1".into();
    config.discovery.http_port = closed_port();
    config.designer.web_srv_port = closed_port();
    let http = HttpClient::new(Duration::from_millis(200), Duration::from_millis(500));
    let links = Links {
        bus: Arc::new(bus.clone()),
        discovery: DiscoveryClient::new(config.discovery_url(), http.clone()),
        brokers: BrokerClient::new(http.clone()),
        http,
    };
    let store = MasterStore::open(Store::temporary().unwrap()).unwrap();
    let snapshot = Arc::new(RwLock::new(Snapshot::default()));
    let mut orchestrator =
        Orchestrator::load("Master.001".into(), 7, Arc::new(config), links, store, snapshot).unwrap();
    let topology: Topology = serde_json::from_value(json!({"name":"Convert","tasks":[{"name":"Main",
        "operator":"converter","input_streams":[{"selected_type":"Temperature","groupby":"EntityID"}],
        "output_streams":[{"entity_type":"Fahrenheit"}]}]}))
    .unwrap();
    let operator =
        serde_json::from_value(json!({"name":"converter","dockerimages":[{"name":"fogflow/converter"}]})).unwrap();
    let intent: ServiceIntent = serde_json::from_value(json!({"id":"ServiceIntent.1","topology":"Convert"})).unwrap();
    let record = IntentRecord { intent, topology, operators: vec![operator], subscriptions: Vec::new() };
    orchestrator.intents.insert("ServiceIntent.1".into(), record.clone());
    orchestrator.resume().await;
    orchestrator.subscriptions.insert("sid-1".into(), ("ServiceIntent.1/Main".into(), 0));
    orchestrator
}

fn worker(id: &str, latitude: f64, tasks: Option<Vec<ReportedTask>>) -> WorkerProfile {
    WorkerProfile {
        id: id.into(),
        location: GeoPoint { latitude, longitude: 139.0 },
        hardware: "amd64".into(),
        capacity: 4,
        tasks,
        ..Default::default()
    }
}

fn availability(code: u16, entity: &str) -> Input {
    availability_from(code, entity, &format!("http://127.0.0.1:{}/ngsi10", closed_port()))
}

fn availability_from(code: u16, entity: &str, provider: &str) -> Input {
    Input::Availability(
        serde_json::from_value::<NotifyContextAvailabilityRequest>(json!({"subscribeId":"sid-1",
            "errorCode":{"code":code},
            "contextRegistrationResponses":[{"contextRegistration":{"entities":[{"id":entity,"type":"Temperature"}],
                "providingApplication":provider},
                "errorCode":{"code":200}}]}))
        .unwrap(),
    )
}

async fn next_command(consumer: &mut Consumer) -> (MessageType, ScheduledTaskInstance) {
    let delivery = tokio::time::timeout(Duration::from_secs(5), consumer.next()).await.expect("a command").unwrap();
    let kind = delivery.envelope.kind().unwrap();
    let instance = delivery.envelope.payload_as().unwrap();
    delivery.ack();
    (kind, instance)
}

#[tokio::test]
async fn places_reschedules_on_silence_and_reconciles_the_returning_worker() {
    let bus = MemoryBus::new();
    let mut a = worker_queue(&bus, "Worker.A").await;
    let mut b = worker_queue(&bus, "Worker.B").await;
    let mut master = orchestrator(&bus).await;
    // No worker yet: the task waits instead of being dropped.
    master.handle(availability(201, "Device.1")).await;
    assert_eq!(master.tasks.len(), 1);
    assert!(master.tasks.values().all(|t| t.record.worker.is_none()));
    master.on_worker_alive(worker("Worker.A", 35.0, None)).await;
    let (kind, task) = next_command(&mut a).await;
    assert_eq!(kind, MessageType::AddTask);
    assert!(task.id.starts_with("Task.Convert.Main."), "{}", task.id);
    assert_eq!(
        (task.worker_id.as_str(), task.epoch, task.docker_image.as_str()),
        ("Worker.A", 7, "fogflow/converter:latest")
    );
    master.on_worker_alive(worker("Worker.B", 36.0, Some(vec![]))).await;

    // A goes silent, B keeps heartbeating: after the liveness window B gets the same task.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        master.on_worker_alive(worker("Worker.B", 36.0, Some(vec![]))).await;
        master.tick().await;
    }
    let (kind, moved) = next_command(&mut b).await;
    assert_eq!(
        (kind, moved.id.as_str(), moved.worker_id.as_str()),
        (MessageType::AddTask, task.id.as_str(), "Worker.B")
    );

    // A comes back still running it: it is told to remove it; B keeps it.
    let held = ReportedTask { id: task.id.clone(), epoch: 7, status: "running".into() };
    master.on_worker_alive(worker("Worker.A", 35.0, Some(vec![held]))).await;
    let (kind, removed) = next_command(&mut a).await;
    assert_eq!((kind, removed.id.as_str()), (MessageType::RemoveTask, task.id.as_str()));
    assert_eq!(master.tasks[&task.id].record.worker.as_deref(), Some("Worker.B"));

    // The input disappears: the task is removed where it runs.
    master.handle(availability(410, "Device.1")).await;
    let (kind, gone) = next_command(&mut b).await;
    assert_eq!((kind, gone.id.as_str()), (MessageType::RemoveTask, task.id.as_str()));
    assert!(master.tasks.is_empty());
}

#[tokio::test]
async fn a_worker_that_lost_a_task_gets_it_again_and_full_workers_get_none() {
    let bus = MemoryBus::new();
    let mut a = worker_queue(&bus, "Worker.A").await;
    let mut master = orchestrator(&bus).await;
    let mut full = worker("Worker.A", 35.0, Some(vec![]));
    full.capacity = 1;
    master.on_worker_alive(full.clone()).await;
    master.handle(availability(201, "Device.1")).await;
    let (_, first) = next_command(&mut a).await;
    master.handle(availability(301, "Device.2")).await;
    // Capacity 1: the second task waits.
    assert_eq!(master.tasks.values().filter(|t| t.record.worker.is_none()).count(), 1);
    // The worker restarted and holds nothing: after the grace of two heartbeats the placed task is sent again.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    master.on_worker_alive(full).await;
    let (kind, again) = next_command(&mut a).await;
    assert_eq!((kind, again.id), (MessageType::AddTask, first.id));
}

/// A broker answering `queryContext` with each entity's current location.
async fn fake_broker(locations: Arc<std::sync::Mutex<std::collections::HashMap<String, (f64, f64)>>>) -> String {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/ngsi10/queryContext",
        post(move |axum::Json(request): axum::Json<serde_json::Value>| {
            let locations = locations.clone();
            async move {
                let id = request["entities"][0]["id"].as_str().unwrap_or_default().to_string();
                let (latitude, longitude) = locations.lock().unwrap()[&id];
                axum::Json(json!({"contextResponses":[{"contextElement":{
                    "entityId":{"id":id,"type":"Temperature"},
                    "domainMetadata":[{"name":"location","type":"point",
                        "value":{"latitude":latitude,"longitude":longitude}}]},
                    "statusCode":{"code":200}}]}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ngsi10", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn tasks_go_to_the_worker_nearest_their_input_and_follow_it_when_it_moves() {
    let bus = MemoryBus::new();
    let mut a = worker_queue(&bus, "Worker.A").await;
    let mut b = worker_queue(&bus, "Worker.B").await;
    let locations = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    let broker = fake_broker(locations.clone()).await;
    let mut master = orchestrator(&bus).await;
    master.on_worker_alive(worker("Worker.A", 35.0, Some(vec![]))).await;
    master.on_worker_alive(worker("Worker.B", 36.0, Some(vec![]))).await;
    // Near B.
    locations.lock().unwrap().insert("Device.1".to_string(), (36.01, 139.0));
    master.handle(availability_from(201, "Device.1", &broker)).await;
    let (kind, task) = next_command(&mut b).await;
    assert_eq!((kind, task.worker_id.as_str()), (MessageType::AddTask, "Worker.B"));
    // The entity moves near A: the task migrates (removed on B, added on A with the same id).
    locations.lock().unwrap().insert("Device.1".to_string(), (35.01, 139.0));
    master.handle(availability_from(301, "Device.1", &broker)).await;
    let (kind, removed) = next_command(&mut b).await;
    assert_eq!((kind, removed.id.as_str()), (MessageType::RemoveTask, task.id.as_str()));
    let (kind, added) = next_command(&mut a).await;
    assert_eq!(
        (kind, added.id.as_str(), added.worker_id.as_str()),
        (MessageType::AddTask, task.id.as_str(), "Worker.A")
    );
    // A refresh without a move changes nothing.
    master.handle(availability_from(301, "Device.1", &broker)).await;
    assert!(tokio::time::timeout(Duration::from_millis(300), a.next()).await.is_err());
}

/// The command queue of worker `id` on `bus` (bound to `<id>.*`), as the worker declares it.
async fn worker_queue(bus: &MemoryBus, id: &str) -> Consumer {
    bus.consume(QueueSpec::new(id, [format!("{id}.*")])).await.unwrap()
}

async fn next_envelope(consumer: &mut Consumer) -> crate::bus::Envelope {
    let delivery = tokio::time::timeout(Duration::from_secs(5), consumer.next()).await.expect("a message").unwrap();
    let envelope = delivery.envelope.clone();
    delivery.ack();
    envelope
}

#[tokio::test]
async fn a_takeover_adopts_reported_tasks_where_they_run_and_fences_the_workers() {
    let bus = MemoryBus::new();
    let mut a = worker_queue(&bus, "Worker.A").await;
    let mut b = worker_queue(&bus, "Worker.B").await;
    // The id the flow derives for Device.1 (deterministic), as a previous master placed it.
    let task_id = {
        let mut before = orchestrator(&MemoryBus::new()).await;
        before.handle(availability(201, "Device.1")).await;
        before.tasks.keys().next().unwrap().clone()
    };
    let running = |id: &str, epoch| ReportedTask { id: id.into(), epoch, status: "running".into() };
    let mut takeover = Takeover::default();
    let mut reported_by_a = worker("Worker.A", 35.0, Some(vec![running(&task_id, 5)]));
    reported_by_a.epoch = 6;
    let reported_by_b = worker("Worker.B", 36.0, Some(vec![running(&task_id, 5), running("Task.Gone", 4)]));
    takeover.heartbeats.insert("Worker.A".into(), reported_by_a);
    takeover.heartbeats.insert("Worker.B".into(), reported_by_b);
    assert_eq!(takeover.epoch(3), 7, "above every epoch a worker reports");

    let mut master = orchestrator(&bus).await;
    master.take_over(takeover, None).await;
    // Held twice: A (first by id) keeps it, B is told to remove its copy; then both hear the new epoch.
    let to_b = next_envelope(&mut b).await;
    assert_eq!((to_b.kind(), to_b.payload["ID"].as_str()), (Some(MessageType::RemoveTask), Some(task_id.as_str())));
    for worker in [&mut a, &mut b] {
        let join = next_envelope(worker).await;
        assert_eq!((join.kind(), join.payload["epoch"].as_u64()), (Some(MessageType::MasterJoin), Some(7)));
    }
    assert_eq!(master.tasks[&task_id].record.worker.as_deref(), Some("Worker.A"));
    assert!(!master.tasks[&task_id].claimed);
    assert_eq!(master.tasks["Task.Gone"].record.worker.as_deref(), Some("Worker.B"), "adopted until the window");
    assert!(master.designer_retry.is_some(), "the designer did not answer: asked again, unclaimed tasks kept");

    // Its flow claims it where it runs: no second launch, only its input confirmed; the record is complete.
    master.handle(availability(201, "Device.1")).await;
    let confirm = next_envelope(&mut a).await;
    assert_eq!(confirm.kind(), Some(MessageType::AddInput));
    let task = &master.tasks[&task_id];
    assert!(task.claimed);
    let instance = &task.record.instance;
    assert_eq!(
        (instance.operator_name.as_str(), instance.docker_image.as_str(), instance.worker_id.as_str()),
        ("converter", "fogflow/converter:latest", "Worker.A")
    );
    assert_eq!(instance.outputs.len(), 1);
    assert!(tokio::time::timeout(Duration::from_millis(300), a.next()).await.is_err(), "no ADD_TASK");
}

#[tokio::test]
async fn the_intents_in_force_are_the_designers_intents_and_enabled_fog_functions() {
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/intent", get(|| async { axum::Json(json!({"ServiceIntent.1": {"id":"ServiceIntent.1","topology":"Convert"}})) }))
        .route(
            "/fogfunction",
            get(|| async {
                axum::Json(json!({
                    "On": {"name":"On","topology":{"name":"On","tasks":[]},"intent":{"id":"ServiceIntent.On","topology":"On"},"status":"enabled"},
                    "Off": {"name":"Off","topology":{"name":"Off","tasks":[]},"intent":{"id":"ServiceIntent.Off","topology":"Off"},"status":"disabled"}
                }))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = HttpClient::new(Duration::from_millis(500), Duration::from_secs(2));
    let mut ids: Vec<String> =
        super::failover::designer_intents(&http, &url).await.unwrap().into_iter().map(|i| i.id).collect();
    ids.sort();
    assert_eq!(ids, ["ServiceIntent.1", "ServiceIntent.On"]);
    let closed = format!("http://127.0.0.1:{}", closed_port());
    assert!(super::failover::designer_intents(&http, &closed).await.is_err());
}
