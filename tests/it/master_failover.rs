//! Master failover with every role in a process of its own on a private RabbitMQ node: two masters (one
//! active, one standby, chosen by the masters' single-active queue), two workers, discovery+broker and the
//! designer. A second worker and a second master with an id already in use are refused with a clear error;
//! `kill -9` of the active master makes the standby active within seconds with a higher epoch, the converter
//! keeps converting with its task neither duplicated nor lost, and commands replayed with the old master's
//! epoch are refused by the workers. The killed master, restarted, stands by; when RabbitMQ cuts the active
//! master's connection, that one steps down and the other takes over. Tasks run in Docker containers where the
//! engine is usable (always under `CI=true`), so "exactly once" is also checked as one container.

use std::process::Output;
use std::time::{Duration, Instant};

use fogflow::bus::amqp::{AmqpBus, AmqpOptions};
use fogflow::bus::envelope::keys;
use fogflow::bus::{Bus, Envelope, MessageType};
use serde_json::json;

use crate::common::converter::{fahrenheit_of, running_task, temperature};
use crate::common::docker::{self, ContainerCleanup};
use crate::common::fogflow::{At, FogFlow, FogFlowOptions, Ports};
use crate::common::rabbitmq::{self, RabbitMq};
use crate::common::{free_port, run_cli, wait_until};

const FLOW_TIMEOUT: Duration = Duration::from_secs(40);

fn on(node: &RabbitMq, roles: &str, ports: Ports) -> FogFlowOptions {
    node.fogflow(roles, ports)
}

/// Runs a role that must refuse to start, with `extra` settings; its output.
fn refused(node: &RabbitMq, role: &str, extra: &[(&str, String)]) -> Output {
    let port = node.amqp_port.to_string();
    let mut env: Vec<(&str, String)> = vec![
        ("FOGFLOW__MY_HOSTIP", "127.0.0.1".into()),
        ("FOGFLOW__RABBITMQ__HOST_IP", "127.0.0.1".into()),
        ("FOGFLOW__RABBITMQ__PORT", port),
        ("FOGFLOW__RABBITMQ__USERNAME", rabbitmq::USER.into()),
        ("FOGFLOW__RABBITMQ__PASSWORD", rabbitmq::PASSWORD.into()),
        ("FOGFLOW__WORKER__HTTP_PORT", free_port().to_string()),
        ("FOGFLOW__MASTER__NGSI_AGENT_PORT", free_port().to_string()),
        ("FOGFLOW__MASTER__REST_API_PORT", free_port().to_string()),
    ];
    env.extend(extra.iter().cloned());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_cli(&["--role", role], &env)
}

fn converts(core: &FogFlow, celsius: f64, fahrenheit: f64, what: &str) {
    core.update("UPDATE", &[temperature("Device.Temp001", celsius)]);
    wait_until(FLOW_TIMEOUT, what, || fahrenheit_of(core, "Device.Temp001").filter(|f| (f - fahrenheit).abs() < 1e-6));
}

/// `(state, epoch)` from a master's `/status`.
fn status(master: &FogFlow) -> (String, u64) {
    let status = master.get(At::Master, "/status").json();
    (status["state"].as_str().unwrap_or_default().to_string(), status["epoch"].as_u64().unwrap_or(0))
}

/// The task ids a worker holds.
fn held(worker: &FogFlow) -> Vec<String> {
    let tasks = worker.get(At::Worker, "/tasks").json();
    tasks.as_array().into_iter().flatten().filter_map(|t| t["id"].as_str().map(str::to_string)).collect()
}

fn stale_commands(worker: &FogFlow) -> u64 {
    let text = worker.get(At::Worker, "/metrics").body;
    text.lines()
        .filter(|line| !line.starts_with('#') && line.contains("worker_stale_commands"))
        .filter_map(|line| line.split_whitespace().last()?.parse::<f64>().ok())
        .map(|value| value as u64)
        .sum()
}

/// Publishes `commands` as the old master would (its id and epoch) through a bus connection of the test's own.
fn replay(node: &RabbitMq, commands: Vec<Envelope>) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        let bus = AmqpBus::start(AmqpOptions::new("127.0.0.1", node.amqp_port, rabbitmq::USER, rabbitmq::PASSWORD));
        assert!(bus.wait_connected(Duration::from_secs(15)).await, "test bus: {}", bus.status());
        for command in commands {
            bus.publish(command).await.expect("replayed command published");
        }
        bus.close().await;
    });
}

#[test]
fn the_standby_master_takes_over_from_a_killed_one_and_fences_it() {
    let Some(node) = RabbitMq::start() else { return };
    // Tasks run as Docker containers, as in production, where the engine is usable (always under CI=true).
    let runtime = if docker::usable("master_failover (falls back to the process runtime)") {
        docker::operator_images();
        "docker"
    } else {
        "process"
    };
    let _cleanup = ContainerCleanup(vec!["Worker.001.1".into(), "Worker.001.2".into()]);
    let ports = Ports::free();
    let core = on(&node, "discovery,broker", ports).start();
    let designer = on(&node, "designer", ports).start();
    let mut first = on(&node, "master", ports).env("FOGFLOW__MASTER__ID", "Master.A").start();
    wait_until(FLOW_TIMEOUT, "the first master active", || (status(&first).0 == "active").then_some(()));
    let second_ports = Ports { master_agent: free_port(), master_rest: free_port(), ..ports };
    let second = on(&node, "master", second_ports).env("FOGFLOW__MASTER__ID", "Master.B").start();
    let worker = |instance: &str| {
        on(&node, "worker", Ports { worker: free_port(), ..ports })
            .env("FOGFLOW__WORKER__INSTANCE", instance)
            .env("FOGFLOW__WORKER__RUNTIME", runtime)
            .start()
    };
    let workers = [worker("1"), worker("2")];
    wait_until(FLOW_TIMEOUT, "both workers joined the active master", || {
        let listed = first.get(At::Master, "/workers").json();
        (listed.as_object().is_some_and(|map| map.len() == 2)).then_some(())
    });

    // Ids are unique per process: a second Worker.001.1 and a second Master.A are refused, clearly.
    let (dup_worker, dup_master) = std::thread::scope(|scope| {
        let worker = scope.spawn(|| refused(&node, "worker", &[("FOGFLOW__WORKER__INSTANCE", "1".into())]));
        let master = scope.spawn(|| refused(&node, "master", &[("FOGFLOW__MASTER__ID", "Master.A".into())]));
        (worker.join().unwrap(), master.join().unwrap())
    });
    for (output, id) in [(&dup_worker, "worker with id `Worker.001.1`"), (&dup_master, "master with id `Master.A`")] {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "a second {id} started: {stderr}");
        assert!(stderr.contains(&format!("another {id} is running")) && stderr.contains("unique id"), "{stderr}");
    }

    let (state, _) = status(&second);
    assert_eq!(state, "standby");
    assert_eq!(second.get(At::Master, "/tasks").status, 503, "a standby does not orchestrate");
    assert_eq!(second.get(At::Master, "/ready").status, 200, "a standby is ready");

    assert_eq!(designer.get(At::Designer, "/fogfunction/Convert/enable").status, 200);
    converts(&core, 73.0, 163.4, "73 °C converted to 163.4 °F");
    let (task, holder) = wait_until(FLOW_TIMEOUT, "one running task", || running_task(&first));
    let (_, old_epoch) = status(&first);
    assert!(old_epoch >= 1);

    first.kill9();
    let killed = Instant::now();
    wait_until(Duration::from_secs(15), "the standby active", || (status(&second).0 == "active").then_some(()));
    let takeover = killed.elapsed();
    eprintln!("takeover in {takeover:?}");
    assert!(takeover < Duration::from_secs(10), "takeover took {takeover:?}");
    let (_, new_epoch) = status(&second);
    assert!(new_epoch > old_epoch, "epoch {new_epoch} not above the old master's {old_epoch}");
    let adopted = wait_until(FLOW_TIMEOUT, "the task running under the new master", || running_task(&second));
    assert_eq!(adopted, (task.clone(), holder.clone()), "the task was adopted where it ran, not relaunched");
    converts(&core, 100.0, 212.0, "100 °C converted after the takeover");

    // Exactly once in total, also once the takeover has settled.
    let all_held = || workers.iter().flat_map(held).collect::<Vec<String>>();
    assert_eq!(all_held(), vec![task.clone()]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(all_held(), vec![task.clone()]);

    // The old master's commands, replayed with its epoch, are refused by both workers.
    let before: Vec<u64> = workers.iter().map(stale_commands).collect();
    let other = if holder == "Worker.001.1" { "Worker.001.2" } else { "Worker.001.1" };
    let remove = json!({"ID": task, "WorkerID": holder, "Epoch": old_epoch});
    let add = |worker: &str| {
        json!({"ID": "Task.replayed", "TopologyName": "Convert", "TaskName": "Main", "OperatorName": "converter",
            "DockerImage": "fogflow/converter:latest", "WorkerID": worker, "Status": "scheduled",
            "Inputs": [{"Type": "Temperature", "ID": "Device.Temp001", "AttributeList": []}],
            "Outputs": [{"Type": "Fahrenheit", "StreamID": "Fahrenheit.replayed.1"}], "Epoch": old_epoch})
    };
    replay(
        &node,
        vec![
            Envelope::new(MessageType::RemoveTask, keys::direct(&holder), "Master.A", &remove),
            Envelope::new(MessageType::AddTask, keys::direct(&holder), "Master.A", &add(&holder)),
            Envelope::new(MessageType::AddTask, keys::direct(other), "Master.A", &add(other)),
        ],
    );
    let holder_index = usize::from(holder != "Worker.001.1");
    let expected = |i: usize| before[i] + if i == holder_index { 2 } else { 1 };
    wait_until(Duration::from_secs(10), "the replayed commands refused as stale", || {
        (0..2).all(|i| stale_commands(&workers[i]) >= expected(i)).then_some(())
    });
    assert_eq!(all_held(), vec![task.clone()], "a replayed command changed the workers' tasks");
    converts(&core, 0.0, 32.0, "0 °C converted after the replay");
    assert_eq!(running_task(&second), Some((task.clone(), holder.clone())));

    // The killed master comes back as a standby; then RabbitMQ cuts the active master's connection: it steps
    // down (and queues up again as standby) while the other takes over with a still higher epoch.
    first.restart();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(status(&first).0, "standby", "a restarted master waits behind the active one");
    assert_eq!(status(&second).0, "active");
    close_connection_of(&node, second.pid());
    wait_until(Duration::from_secs(15), "the restarted master active", || (status(&first).0 == "active").then_some(()));
    wait_until(Duration::from_secs(15), "the cut master standing by", || {
        (status(&second).0 == "standby").then_some(())
    });
    assert!(status(&first).1 > new_epoch, "epoch {} not above {new_epoch}", status(&first).1);
    let readopted = wait_until(FLOW_TIMEOUT, "the task running under the restarted master", || running_task(&first));
    assert_eq!(readopted, (task.clone(), holder));
    converts(&core, 50.0, 122.0, "50 °C converted after the second takeover");
    assert_eq!(all_held(), vec![task.clone()]);
    if runtime == "docker" {
        let containers: Vec<String> =
            ["Worker.001.1", "Worker.001.2"].iter().flat_map(|w| docker::task_containers(w, None)).collect();
        assert_eq!(containers.len(), 1, "one task container in all: {containers:?}");
        assert_eq!(docker::label(&containers[0], "fogflow.task_id"), task);
    }
}

/// Has RabbitMQ close the AMQP connection of the fogflow process `pid` (named `fogflow <roles> pid <pid>`).
fn close_connection_of(node: &RabbitMq, pid: u32) {
    let listed = node.ctl(&["list_connections", "-q", "--no-table-headers", "pid", "client_properties"]);
    let text = String::from_utf8_lossy(&listed.stdout).to_string();
    let marker = format!("pid {pid}\"");
    let line =
        text.lines().find(|line| line.contains(&marker)).unwrap_or_else(|| panic!("no connection of {pid}: {text}"));
    let connection = line.split_whitespace().next().expect("the connection's pid");
    let closed = node.ctl(&["close_connection", connection, "test: the active master's connection is cut"]);
    assert!(closed.status.success(), "{}", String::from_utf8_lossy(&closed.stderr));
}
