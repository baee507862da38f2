//! FogFlow's production shape: roles in separate processes of the real binary, talking over a private
//! RabbitMQ node (`bus = auto`, which is RabbitMQ for roles apart). A role whose RabbitMQ is down starts, is
//! alive but not ready, and becomes ready when RabbitMQ comes (F4), without ever logging the password; the
//! converter fog function runs end to end across discovery+broker, master, designer and two workers.

use std::time::Duration;

use serde_json::Value;

use crate::common::converter::{fahrenheit_of, temperature};
use crate::common::fogflow::{At, FogFlow, FogFlowOptions, Ports};
use crate::common::free_port;
use crate::common::rabbitmq::{self, RabbitMq};
use crate::common::wait_until;

const FLOW_TIMEOUT: Duration = Duration::from_secs(60);

/// `options` on RabbitMQ `node` as `user`, with the shared `ports`.
fn on_rabbitmq(options: FogFlowOptions, node: &RabbitMq, user: &str, password: &str, ports: Ports) -> FogFlowOptions {
    options
        .ports(ports)
        .env("FOGFLOW__RABBITMQ__HOST_IP", "127.0.0.1")
        .env("FOGFLOW__RABBITMQ__PORT", node.amqp_port)
        .env("FOGFLOW__RABBITMQ__USERNAME", user)
        .env("FOGFLOW__RABBITMQ__PASSWORD", password)
}

#[test]
fn a_role_apart_waits_for_rabbitmq_not_ready_and_without_logging_the_password() {
    let Some(node) = RabbitMq::start() else { return };
    let password = "Pw-4-distributed-test";
    node.add_user("fogflow", password);
    node.stop();
    let designer = on_rabbitmq(FogFlowOptions::new().roles("designer"), &node, "fogflow", password, Ports::free())
        .alive_only()
        .start();
    let ready = designer.get(At::Designer, "/ready");
    assert_eq!(ready.status, 503, "ready without RabbitMQ: {ready:?}");
    assert!(ready.body.contains("bus"), "the reason names the bus: {}", ready.body);

    node.start_again();
    wait_until(Duration::from_secs(30), "designer ready once RabbitMQ runs", || {
        (designer.get(At::Designer, "/ready").status == 200).then_some(())
    });
    let log = designer.log();
    assert!(log.contains("amqp://fogflow:***@127.0.0.1"), "the log shows the masked URL:\n{log}");
    assert!(!log.contains(password), "the password leaked into the log:\n{log}");
}

/// The master's task table.
fn master_tasks(master: &FogFlow) -> Vec<Value> {
    master.get(At::Master, "/tasks").json().as_array().cloned().unwrap_or_default()
}

/// Tasks a worker process holds.
fn held(worker: &FogFlow) -> usize {
    worker.get(At::Worker, "/tasks").json().as_array().map(Vec::len).unwrap_or(0)
}

/// The converter fog function across discovery+broker, master, designer and two workers as separate processes:
/// values end to end; `kill -9` of the worker running the task moves it to the other worker within the liveness
/// window (3 heartbeats of 1 s); `kill -9` and restart of the master, then of the designer, neither duplicates
/// nor loses the task.
#[test]
fn converter_fog_function_across_separate_processes_on_rabbitmq() {
    let Some(node) = rabbitmq::shared() else { return };
    let ports = Ports::free();
    let start = |roles: &str, ports: Ports, instance: Option<&str>| {
        let mut options =
            on_rabbitmq(FogFlowOptions::new().roles(roles), node, rabbitmq::USER, rabbitmq::PASSWORD, ports);
        if let Some(instance) = instance {
            options = options.env("FOGFLOW__WORKER__INSTANCE", instance);
        }
        options.start()
    };
    let core = start("discovery,broker", ports, None);
    let mut master = start("master", ports, None);
    let mut designer = start("designer", ports, None);
    let mut workers = vec![
        ("Worker.001.1", start("worker", Ports { worker: free_port(), ..ports }, Some("1"))),
        ("Worker.001.2", start("worker", Ports { worker: free_port(), ..ports }, Some("2"))),
    ];
    wait_until(FLOW_TIMEOUT, "both workers joined the master", || {
        let workers = master.get(At::Master, "/workers");
        (workers.status == 200 && workers.json().as_object().is_some_and(|map| map.len() == 2)).then_some(())
    });

    let enabled = designer.get(At::Designer, "/fogfunction/Convert/enable");
    assert_eq!(enabled.status, 200, "{enabled:?}");
    core.update("UPDATE", &[temperature("Device.Temp001", 73.0)]);
    wait_until(FLOW_TIMEOUT, "73 °C converted to 163.4 °F", || {
        fahrenheit_of(&core, "Device.Temp001").filter(|f| (f - 163.4).abs() < 1e-6)
    });
    let running_on = |master: &FogFlow| -> Option<String> {
        let tasks = master_tasks(master);
        let [task] = tasks.as_slice() else { return None };
        (task["Status"] == "running").then(|| task["Worker"].as_str().unwrap_or_default().to_string())
    };
    let first = wait_until(FLOW_TIMEOUT, "one running task", || running_on(&master));

    // Kill the worker that runs it: the other one takes it over.
    let index = workers.iter().position(|(id, _)| *id == first).expect("a known worker runs the task");
    let (_, mut victim) = workers.remove(index);
    victim.kill9();
    let (survivor_id, survivor) = &workers[0];
    wait_until(Duration::from_secs(20), "the task running on the surviving worker", || {
        running_on(&master).filter(|worker| worker == survivor_id)
    });
    core.update("UPDATE", &[temperature("Device.Temp001", 100.0)]);
    wait_until(FLOW_TIMEOUT, "100 °C converted by the surviving worker", || {
        fahrenheit_of(&core, "Device.Temp001").filter(|f| (f - 212.0).abs() < 1e-6)
    });

    // Restarting the master, then the designer, neither duplicates nor loses the task.
    master.kill9();
    master.restart();
    designer.kill9();
    designer.restart();
    wait_until(FLOW_TIMEOUT, "the task still running once, on the same worker", || {
        running_on(&master).filter(|worker| worker == survivor_id)
    });
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(held(survivor), 1, "{:?}", survivor.get(At::Worker, "/tasks").json());
    assert_eq!(master_tasks(&master).len(), 1);
    core.update("UPDATE", &[temperature("Device.Temp001", 0.0)]);
    wait_until(FLOW_TIMEOUT, "0 °C converted after the restarts", || {
        fahrenheit_of(&core, "Device.Temp001").filter(|f| (f - 32.0).abs() < 1e-6)
    });
}
