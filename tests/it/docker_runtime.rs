//! The Docker runtime on the machine's real engine, with operator images built from the binary under test
//! (`FROM scratch`, no registry): the converter fog function end to end with workers that run tasks as labelled
//! containers, the roles as separate processes on a private RabbitMQ; a crashed container restarted; `kill -9`
//! of the worker running the task
//! (the task moves on, and the dead worker's container is removed when it comes back); task removal removes the
//! container; and a worker whose Docker daemon is unreachable stays up, not ready with capacity 0, and recovers,
//! without losing or duplicating the task it runs.
//!
//! Needs Docker (skipped with a printed reason otherwise, a failure under `CI=true`) and, for the first test,
//! RabbitMQ (`tests/it/common/rabbitmq.rs`).

use std::time::Duration;

use crate::common::converter::{self, running_task};
use crate::common::docker::{self, ContainerCleanup, DockerProxy};
use crate::common::fogflow::{At, FogFlow, FogFlowOptions, Ports};
use crate::common::free_port;
use crate::common::rabbitmq;
use crate::common::wait_until;

const FLOW_TIMEOUT: Duration = Duration::from_secs(60);

fn unique_worker_id(n: u32) -> String {
    format!("Worker.it-docker-{}-{n}", std::process::id())
}

#[test]
fn converter_fog_function_runs_in_containers_and_survives_a_killed_worker() {
    if !docker::usable("docker_runtime") {
        return;
    }
    let Some(node) = rabbitmq::shared() else { return };
    docker::operator_images();
    let worker_ids = [unique_worker_id(1), unique_worker_id(2)];
    let _cleanup = ContainerCleanup(worker_ids.to_vec());
    let ports = Ports::free();
    let options = |roles: &str, ports: Ports| node.fogflow(roles, ports);
    let worker = |id: &str| {
        options("worker", Ports { worker: free_port(), ..ports })
            .env("FOGFLOW__WORKER__ID", id)
            .env("FOGFLOW__WORKER__RUNTIME", "docker")
            .start()
    };
    let core = options("discovery,broker", ports).start();
    let master = options("master", ports).start();
    let designer = options("designer", ports).start();
    let mut workers =
        vec![(worker_ids[0].clone(), worker(&worker_ids[0])), (worker_ids[1].clone(), worker(&worker_ids[1]))];
    for (_, worker) in &workers {
        let ready = worker.get(At::Worker, "/ready");
        assert_eq!(ready.status, 200, "a docker worker is ready when the engine answers: {ready:?}");
    }
    wait_until(FLOW_TIMEOUT, "both workers joined the master", || {
        let listed = master.get(At::Master, "/workers").json();
        let both = worker_ids.iter().all(|id| listed.get(id).is_some_and(|w| w["runtime"] == "docker"));
        both.then_some(())
    });

    let enabled = designer.get(At::Designer, "/fogfunction/Convert/enable");
    assert_eq!(enabled.status, 200, "{enabled:?}");
    converter::converted(&core, "Device.Temp001", 73.0, FLOW_TIMEOUT);
    let (task_id, first) = wait_until(FLOW_TIMEOUT, "one running task", || running_task(&master));
    let containers = docker::task_containers(&first, Some(&task_id));
    assert_eq!(containers.len(), 1, "exactly one container for the task on {first}: {containers:?}");
    let container = &containers[0];
    assert_eq!(docker::label(container, "fogflow.task_id"), task_id);
    assert_eq!(docker::label(container, "fogflow.worker_id"), first);
    assert!(docker::label(container, "fogflow.epoch").parse::<u64>().is_ok_and(|epoch| epoch > 0));
    let image = docker::docker_ok(&["inspect", "-f", "{{.Config.Image}}", container]);
    assert_eq!(image, "fogflow/converter:latest");
    let view = workers.iter().find(|(id, _)| *id == first).map(|(_, w)| w.get(At::Worker, "/tasks").json());
    let view = view.expect("the worker running the task is one of ours");
    assert_eq!(view[0]["containerID"].as_str().map(str::len), Some(12), "{view}");

    // The container crashes (killed from outside): reported, restarted as a new container, still converting.
    docker::docker_ok(&["kill", container]);
    let restarted = wait_until(Duration::from_secs(30), "a new container for the task", || {
        let now = docker::task_containers(&first, Some(&task_id));
        (now.len() == 1 && now[0] != *container).then(|| now[0].clone())
    });
    assert_eq!(docker::label(&restarted, "fogflow.task_id"), task_id);
    converter::converted(&core, "Device.Temp001", 50.0, FLOW_TIMEOUT);
    let crashed_worker = workers.iter().find(|(id, _)| *id == first).map(|(_, w)| w).expect("known worker");
    let metrics = crashed_worker.get(At::Worker, "/metrics").body;
    assert!(
        metrics.lines().any(|line| line.starts_with("fogflow_worker_task_restarts_total") && !line.ends_with(" 0")),
        "the restart is counted:\n{metrics}"
    );

    // kill -9 of that worker: its container keeps running (Docker owns it) but the task moves to the other one.
    let index = workers.iter().position(|(id, _)| *id == first).expect("known worker");
    let (victim_id, mut victim) = workers.remove(index);
    victim.kill9();
    let (survivor_id, _) = &workers[0];
    wait_until(Duration::from_secs(30), "the task running on the surviving worker", || {
        running_task(&master).filter(|(_, worker)| worker == survivor_id)
    });
    assert_eq!(docker::task_containers(survivor_id, Some(&task_id)).len(), 1);
    converter::converted(&core, "Device.Temp001", 100.0, FLOW_TIMEOUT);
    assert_eq!(docker::task_containers(&victim_id, None).len(), 1, "the dead worker's container is still there");

    // The killed worker comes back: the container no task of its own needs is removed.
    victim.restart();
    wait_until(Duration::from_secs(20), "the returning worker removed its old container", || {
        docker::task_containers(&victim_id, None).is_empty().then_some(())
    });
    converter::converted(&core, "Device.Temp001", 0.0, FLOW_TIMEOUT);
    assert_eq!(docker::task_containers(survivor_id, None).len(), 1, "the task was not duplicated");

    // Task removal removes its container.
    let disabled = designer.get(At::Designer, "/fogfunction/Convert/disable");
    assert_eq!(disabled.status, 200, "{disabled:?}");
    wait_until(FLOW_TIMEOUT, "the task's container removed", || {
        docker::task_containers(survivor_id, None).is_empty().then_some(())
    });
}

#[test]
fn a_worker_whose_docker_daemon_is_unreachable_stays_up_and_recovers() {
    if !docker::usable("docker_runtime") {
        return;
    }
    docker::operator_images();
    let worker_id = unique_worker_id(3);
    let _cleanup = ContainerCleanup(vec![worker_id.clone()]);
    let dir = tempfile::tempdir().expect("temp dir for the proxy socket");
    let mut proxy = DockerProxy::start(&dir.path().join("docker.sock"));
    proxy.cut();

    // Started with the daemon unreachable: alive, not ready with the reason, capacity 0 at the master.
    let fogflow = FogFlowOptions::new()
        .env("FOGFLOW__WORKER__ID", &worker_id)
        .env("FOGFLOW__WORKER__RUNTIME", "docker")
        .env("FOGFLOW__WORKER__DOCKER_HOST", proxy.url())
        .alive_only()
        .start();
    let capacity = |fogflow: &FogFlow| fogflow.get(At::Master, "/workers").json()[&worker_id]["capacity"].as_u64();
    let ready = wait_until(Duration::from_secs(20), "the worker reports the daemon unreachable", || {
        let ready = fogflow.get(At::Worker, "/ready");
        (ready.status == 503 && ready.body.contains("Docker daemon unreachable")).then_some(ready)
    });
    assert!(ready.body.contains("docker.sock"), "the reason names the socket: {}", ready.body);
    wait_until(Duration::from_secs(20), "capacity 0 at the master", || (capacity(&fogflow) == Some(0)).then_some(()));

    // The daemon answers: ready, capacity back, and the fog function runs in a container.
    proxy.restore();
    wait_until(Duration::from_secs(20), "the worker ready once the daemon answers", || {
        (fogflow.get(At::Worker, "/ready").status == 200).then_some(())
    });
    wait_until(Duration::from_secs(20), "capacity back at the master", || (capacity(&fogflow) > Some(0)).then_some(()));
    assert_eq!(fogflow.get(At::Designer, "/fogfunction/Convert/enable").status, 200);
    converter::converted(&fogflow, "Device.Temp002", 20.0, FLOW_TIMEOUT);
    let (task_id, _) = wait_until(FLOW_TIMEOUT, "one running task", || running_task(&fogflow));
    assert_eq!(docker::task_containers(&worker_id, Some(&task_id)).len(), 1);

    // The daemon goes away again: no crash, not ready; the running container is not given up for dead.
    proxy.cut();
    wait_until(Duration::from_secs(20), "not ready while the daemon is unreachable", || {
        (fogflow.get(At::Worker, "/ready").status == 503).then_some(())
    });
    converter::converted(&fogflow, "Device.Temp002", 30.0, FLOW_TIMEOUT);
    assert_eq!(fogflow.get(At::Worker, "/health").status, 200, "the worker stays up");

    // And back: the same task, the same single container, still converting.
    proxy.restore();
    wait_until(Duration::from_secs(20), "ready again", || {
        (fogflow.get(At::Worker, "/ready").status == 200).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(running_task(&fogflow).map(|(id, _)| id), Some(task_id.clone()), "the task is the same");
    assert_eq!(docker::task_containers(&worker_id, None).len(), 1, "one container, not a second launch");
    converter::converted(&fogflow, "Device.Temp002", 40.0, FLOW_TIMEOUT);
}

/// The docker0 bridge's address on this host, which containers on the default bridge network reach the host at.
fn docker_bridge_address() -> Option<String> {
    let output = std::process::Command::new("ip").args(["-4", "-o", "addr", "show", "docker0"]).output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let cidr = text.split_whitespace().skip_while(|word| *word != "inet").nth(1)?;
    Some(cidr.split('/').next()?.to_string())
}

/// FogFlow's own networking (`worker.docker_network = bridge`): the task container on the default bridge with
/// `myport` published, the broker reached at `my_hostip` = the docker0 address; the converter still converts.
#[test]
fn bridge_networking_publishes_the_task_port_as_fogflow_did() {
    if !docker::usable("docker_runtime") {
        return;
    }
    let Some(host_ip) = docker_bridge_address() else {
        eprintln!("SKIPPED bridge networking: no docker0 interface on this host (rootless or custom Docker)");
        return;
    };
    docker::operator_images();
    let worker_id = unique_worker_id(4);
    let _cleanup = ContainerCleanup(vec![worker_id.clone()]);
    let fogflow = FogFlowOptions::new()
        .env("FOGFLOW__MY_HOSTIP", &host_ip)
        .env("FOGFLOW__WORKER__ID", &worker_id)
        .env("FOGFLOW__WORKER__RUNTIME", "docker")
        .env("FOGFLOW__WORKER__DOCKER_NETWORK", "bridge")
        .start();
    assert_eq!(fogflow.get(At::Designer, "/fogfunction/Convert/enable").status, 200);
    converter::converted(&fogflow, "Device.Temp003", 15.0, FLOW_TIMEOUT);
    let containers = docker::task_containers(&worker_id, None);
    assert_eq!(containers.len(), 1, "{containers:?}");
    let network = docker::docker_ok(&["inspect", "-f", "{{.HostConfig.NetworkMode}}", &containers[0]]);
    assert_eq!(network, "default", "the container is on the default bridge");
    let view = fogflow.get(At::Worker, "/tasks").json();
    let ref_url = view[0]["refURL"].as_str().unwrap_or_default().to_string();
    let port = ref_url.rsplit(':').next().unwrap_or_default().to_string();
    assert!(ref_url.starts_with(&format!("http://{host_ip}:")), "{view}");
    let published = docker::docker_ok(&["port", &containers[0], &format!("{port}/tcp")]);
    assert!(published.contains(&format!(":{port}")), "myport {port} is published: {published}");
}

/// The runtime on its own: an operator's `memory` and `cpus` parameters become the container's limits, and a
/// stop is graceful (SIGTERM, exit code 0), reported once as requested, and removes the container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_parameters_become_container_limits_and_a_stop_removes_the_container() {
    use std::collections::BTreeMap;

    use fogflow::model::Parameter;
    use fogflow::runtime::docker::plan::Network;
    use fogflow::runtime::docker::DockerRuntime;
    use fogflow::runtime::{labels, LaunchSpec, PortAllocator, TaskRuntime};

    let usable = tokio::task::spawn_blocking(|| docker::usable("docker_runtime")).await.unwrap();
    if !usable {
        return;
    }
    tokio::task::spawn_blocking(docker::operator_images).await.unwrap();
    let worker_id = unique_worker_id(5);
    let _cleanup = ContainerCleanup(vec![worker_id.clone()]);
    let runtime = DockerRuntime::new("/var/run/docker.sock", &worker_id, Network::Host, Duration::from_secs(5), None);
    runtime.health().await.expect("the engine answers");
    let mut exits = runtime.take_exit_events().expect("exit events");
    let parameters = [("memory", "64m"), ("cpus", "0.5"), ("window_seconds", "7")]
        .map(|(name, value)| Parameter { name: name.into(), value: value.into() });
    let spec = LaunchSpec {
        task_id: "Task.limits".into(),
        image: "fogflow/counter:latest".into(),
        port: PortAllocator::new(0).lease().unwrap(),
        admin: Vec::new(),
        parameters: parameters.to_vec(),
        labels: BTreeMap::from([
            (labels::TASK_ID.to_string(), "Task.limits".to_string()),
            (labels::WORKER_ID.to_string(), worker_id.clone()),
            (labels::EPOCH.to_string(), "3".to_string()),
        ]),
    };
    let launched = runtime.launch(spec).await.expect("launch");
    let id = launched.container_id.clone();
    let inspect = |format: &str| docker::docker_ok(&["inspect", "-f", format, &id]);
    assert_eq!(inspect("{{.HostConfig.Memory}}"), (64u64 << 20).to_string());
    assert_eq!(inspect("{{.HostConfig.NanoCpus}}"), "500000000");
    assert_eq!(inspect("{{.HostConfig.NetworkMode}}"), "host");
    let env = inspect("{{json .Config.Env}}");
    assert!(env.contains("\"window_seconds=7\"") && env.contains(&format!("\"myport={}\"", launched.port)), "{env}");
    assert_eq!(inspect("{{index .Config.Labels \"fogflow.epoch\"}}"), "3");

    runtime.stop(&launched.run_id).await.expect("stop");
    let exit = tokio::time::timeout(Duration::from_secs(10), exits.recv()).await.expect("an exit event").unwrap();
    assert!(exit.requested, "{exit:?}");
    assert_eq!(exit.code, Some(0), "a graceful stop: {exit:?}");
    assert!(docker::task_containers(&worker_id, None).is_empty(), "the container is removed");
    assert!(runtime.list().await.is_empty());
}
