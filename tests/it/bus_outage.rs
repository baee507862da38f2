//! RabbitMQ goes away for 20 s in the middle of a request (F4): discovery+broker, master, designer and a Docker
//! worker run as separate processes on a private node; a fog function is enabled and its input published, and
//! the node is stopped at once, while the intent and the task's commands are still on their way. Every role
//! turns not ready (naming the bus) and stays alive; once the node is back they reconnect by themselves, and
//! the requested task runs exactly once — one task at the master, one at the worker, one container — with the
//! output values asserted.
//!
//! Needs RabbitMQ and Docker (skipped with a printed reason otherwise, failures under `CI=true`).

use std::time::Duration;

use crate::common::converter::{fahrenheit_of, temperature};
use crate::common::docker::{self, ContainerCleanup};
use crate::common::fogflow::{At, Ports};
use crate::common::free_port;
use crate::common::rabbitmq::RabbitMq;
use crate::common::wait_until;

const OUTAGE: Duration = Duration::from_secs(20);
const RECOVERY: Duration = Duration::from_secs(90);

#[test]
fn a_task_requested_before_rabbitmq_stops_for_20_s_runs_exactly_once_after() {
    if !docker::usable("bus_outage") {
        return;
    }
    let Some(node) = RabbitMq::start() else { return };
    docker::operator_images();
    let worker_id = format!("Worker.it-outage-{}", std::process::id());
    let _cleanup = ContainerCleanup(vec![worker_id.clone()]);
    let ports = Ports::free();
    let options =
        |roles: &str, ports: Ports| node.fogflow(roles, ports).env("FOGFLOW__RABBITMQ__RECONNECT_MAX_SECS", "2");
    let core = options("discovery,broker", ports).start();
    let master = options("master", ports).start();
    let designer = options("designer", ports).start();
    let worker = options("worker", Ports { worker: free_port(), ..ports })
        .env("FOGFLOW__WORKER__ID", &worker_id)
        .env("FOGFLOW__WORKER__RUNTIME", "docker")
        .start();
    wait_until(Duration::from_secs(30), "the worker joined the master", || {
        master.get(At::Master, "/workers").json().get(&worker_id).map(|_| ())
    });

    // The request, then the outage at once.
    assert_eq!(designer.get(At::Designer, "/fogfunction/Convert/enable").status, 200);
    core.update("UPDATE", &[temperature("Device.Temp009", 25.0)]);
    node.stop();
    let bus_roles = [(&master, At::Master), (&designer, At::Designer), (&worker, At::Worker)];
    for (process, at) in bus_roles {
        let mut last = String::new();
        let seen = (0..150).any(|_| {
            let ready = process.get(at, "/ready");
            last = format!("{} {}", ready.status, ready.body);
            let down = ready.status == 503 && ready.body.contains("bus");
            if !down {
                std::thread::sleep(Duration::from_millis(100));
            }
            down
        });
        assert!(seen, "{at:?} not ready naming the bus within 15 s without RabbitMQ; last /ready: {last}");
    }
    std::thread::sleep(OUTAGE.saturating_sub(Duration::from_secs(2)));
    for (process, at) in bus_roles {
        assert_eq!(process.get(at, "/health").status, 200, "{at:?} stays up through the outage");
    }

    node.start_again();
    for (process, at) in bus_roles {
        wait_until(RECOVERY, "ready again once RabbitMQ is back", || {
            (process.get(at, "/ready").status == 200).then_some(())
        });
    }
    wait_until(RECOVERY, "25 °C converted to 77 °F after the outage", || {
        fahrenheit_of(&core, "Device.Temp009").filter(|f| (f - 77.0).abs() < 1e-6)
    });
    // Exactly once, and it stays so.
    std::thread::sleep(Duration::from_secs(5));
    let tasks = master.get(At::Master, "/tasks").json();
    assert_eq!(tasks.as_array().map(Vec::len), Some(1), "one task at the master: {tasks}");
    assert_eq!(tasks[0]["Status"], "running", "{tasks}");
    let held = worker.get(At::Worker, "/tasks").json();
    assert_eq!(held.as_array().map(Vec::len), Some(1), "one task at the worker: {held}");
    assert_eq!(docker::task_containers(&worker_id, None).len(), 1, "one container");
    core.update("UPDATE", &[temperature("Device.Temp009", 50.0)]);
    wait_until(Duration::from_secs(30), "50 °C converted to 122 °F", || {
        fahrenheit_of(&core, "Device.Temp009").filter(|f| (f - 122.0).abs() < 1e-6)
    });
}
