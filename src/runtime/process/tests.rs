use super::*;
use crate::model::admin::AdminCommand;
use crate::model::Parameter;
use crate::runtime::PortAllocator;

fn script(dir: &tempfile::TempDir, name: &str, body: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    format!("sh {}", path.display())
}

fn spec(task: &str, image: &str, worker: &str) -> LaunchSpec {
    LaunchSpec {
        task_id: task.into(),
        image: image.into(),
        port: PortAllocator::new(0).lease().unwrap(),
        admin: vec![AdminCommand::SetCorrelatorId { correlator_id: task.into() }],
        parameters: vec![Parameter { name: "threshold".into(), value: "42".into() }],
        labels: BTreeMap::from([
            (labels::TASK_ID.to_string(), task.to_string()),
            (labels::WORKER_ID.to_string(), worker.to_string()),
        ]),
    }
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Exited (reaped, or a zombie waiting for init).
fn gone(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.is_empty() || stat.contains(") Z")
}

async fn wait_gone(pid: u32) -> bool {
    for _ in 0..100 {
        if gone(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

async fn next_exit(exits: &mut mpsc::UnboundedReceiver<ExitEvent>) -> ExitEvent {
    tokio::time::timeout(Duration::from_secs(10), exits.recv()).await.expect("an exit event").expect("open")
}

#[test]
fn resolves_images() {
    let runtime = ProcessRuntime::new(
        BTreeMap::from([("acme/echo".to_string(), "python3 /opt/echo.py -o".to_string())]),
        Duration::from_secs(1),
    );
    let (program, args) = runtime.resolve("fogflow/converter:1.2").unwrap();
    assert!(program.ends_with(std::env::current_exe().unwrap().file_name().unwrap().to_str().unwrap()));
    assert_eq!(args, vec!["operator", "converter"]);
    assert_eq!(runtime.resolve("fogflow/dummy").unwrap().1, vec!["operator", "dummy"]);
    assert_eq!(
        runtime.resolve("acme/echo:latest").unwrap(),
        ("python3".into(), vec!["/opt/echo.py".into(), "-o".into()])
    );
    let error = runtime.resolve("fogflow/facefinder:latest").unwrap_err();
    assert_eq!(error.to_string(), "no process-runtime operator for image fogflow/facefinder:latest");
    assert!(error.is_permanent());
    assert_eq!(image_name("host:5000/a/b:1"), "host:5000/a/b");
    assert_eq!(image_name("host:5000/a/b"), "host:5000/a/b");
    assert_eq!(image_name("fogflow/dummy:latest"), "fogflow/dummy");
}

#[tokio::test]
async fn launches_lists_stops_and_reaps_a_child() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("env");
    let line = script(&dir, "sleeper.sh", &format!("env > {}\necho started\nexec sleep 30", env_file.display()));
    let runtime = ProcessRuntime::new(BTreeMap::from([("test/sleeper".to_string(), line)]), Duration::from_secs(2));
    let mut exits = runtime.take_exit_events().unwrap();
    assert!(runtime.take_exit_events().is_none());
    let launched = runtime.launch(spec("Task.A", "test/sleeper:latest", "W-test-run")).await.unwrap();
    let pid = launched.pid.unwrap();
    assert_eq!(launched.container_id, pid.to_string());
    assert!(alive(pid));
    let listed = runtime.list().await;
    assert_eq!(listed, vec![RunningTask { task_id: "Task.A".into(), run_id: launched.run_id.clone(), pid: Some(pid) }]);
    // The contract's environment, without the worker's own variables.
    let mut env = String::new();
    for _ in 0..100 {
        env = std::fs::read_to_string(&env_file).unwrap_or_default();
        if env.contains("adminCfg") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(env.contains(&format!("myport={}", launched.port)), "{env}");
    assert!(env.contains(r#"adminCfg=[{"command":"SET_CORRELATORID","correlatorID":"Task.A"}]"#), "{env}");
    assert!(env.contains("threshold=42"));
    assert!(env.contains("FOGFLOW_TASK_ID=Task.A"));
    assert!(!env.contains("CARGO_PKG_NAME"), "the worker's environment leaked: {env}");
    runtime.stop(&launched.run_id).await.unwrap();
    let exit = next_exit(&mut exits).await;
    assert_eq!(exit.task_id, "Task.A");
    assert!(exit.requested);
    assert_eq!(exit.reason, "killed by signal 15");
    assert!(!alive(pid), "the child was reaped");
    assert!(runtime.list().await.is_empty());
    assert_eq!(runtime.stop(&launched.run_id).await, Err(RuntimeError::NotFound(launched.run_id.clone())));
}

#[tokio::test]
async fn reports_a_child_that_dies_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let line = script(&dir, "crash.sh", "echo going down >&2\nexit 3");
    let runtime = ProcessRuntime::new(BTreeMap::from([("test/crash".to_string(), line)]), Duration::from_secs(2));
    let mut exits = runtime.take_exit_events().unwrap();
    let launched = runtime.launch(spec("Task.B", "test/crash", "W-test-crash")).await.unwrap();
    let exit = next_exit(&mut exits).await;
    assert_eq!(exit.run_id, launched.run_id);
    assert_eq!(exit.code, Some(3));
    assert_eq!(exit.reason, "exited with code 3");
    assert!(!exit.requested);
    assert!(runtime.list().await.is_empty());
}

#[tokio::test]
async fn kills_a_child_that_ignores_sigterm_with_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("grandchild");
    let line =
        script(&dir, "stubborn.sh", &format!("trap '' TERM\nsleep 30 &\necho $! > {}\nwait", pid_file.display()));
    let runtime =
        ProcessRuntime::new(BTreeMap::from([("test/stubborn".to_string(), line)]), Duration::from_millis(300));
    let mut exits = runtime.take_exit_events().unwrap();
    let launched = runtime.launch(spec("Task.C", "test/stubborn", "W-test-stubborn")).await.unwrap();
    let mut grandchild = None;
    for _ in 0..100 {
        grandchild = std::fs::read_to_string(&pid_file).ok().and_then(|t| t.trim().parse::<u32>().ok());
        if grandchild.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let grandchild = grandchild.expect("the script started a grandchild");
    let started = std::time::Instant::now();
    runtime.stop(&launched.run_id).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(next_exit(&mut exits).await.reason, "killed by signal 9");
    assert!(!alive(launched.pid.unwrap()));
    assert!(wait_gone(grandchild).await, "the grandchild survived");
}

#[tokio::test]
async fn unknown_images_fail_to_launch() {
    let runtime = ProcessRuntime::new(BTreeMap::new(), Duration::from_secs(1));
    let error = runtime.launch(spec("Task.D", "acme/nothing:1", "W-test-unknown")).await.unwrap_err();
    assert_eq!(error, RuntimeError::UnknownImage { runtime: "process", image: "acme/nothing:1".into() });
}

#[tokio::test]
async fn cleans_up_orphans_of_an_earlier_worker() {
    if std::process::Command::new("setsid").arg("--version").output().is_err() {
        return; // needs util-linux setsid to make an orphan
    }
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("orphan");
    let line = script(&dir, "orphan.sh", &format!("setsid sleep 30 &\necho $! > {}\nsleep 0.5", pid_file.display()));
    let runtime = ProcessRuntime::new(BTreeMap::from([("test/orphan".to_string(), line)]), Duration::from_secs(1));
    let mut exits = runtime.take_exit_events().unwrap();
    let worker = format!("W-test-orphans-{}", std::process::id());
    runtime.launch(spec("Task.E", "test/orphan", &worker)).await.unwrap();
    next_exit(&mut exits).await;
    let orphan: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    assert!(!gone(orphan));
    assert_eq!(ProcessRuntime::cleanup_leftovers("W-test-someone-else"), 0);
    assert_eq!(ProcessRuntime::cleanup_leftovers(&worker), 1);
    assert!(wait_gone(orphan).await, "the orphan was killed");
}

#[tokio::test]
async fn the_watchdog_kills_a_task_whose_worker_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let line = script(&dir, "long.sh", "exec sleep 30");
    let runtime = ProcessRuntime::new(BTreeMap::from([("test/long".to_string(), line)]), Duration::from_secs(1));
    let mut exits = runtime.take_exit_events().unwrap();
    let launched = runtime.launch(spec("Task.F", "test/long", "W-test-watchdog")).await.unwrap();
    // A stand-in for a worker that dies: the watchdog watches its pid.
    let mut worker = Command::new("sleep").arg("0.2").spawn().unwrap();
    spawn_watchdog(launched.pid.unwrap(), worker.id().unwrap());
    worker.wait().await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(5), exits.recv()).await.expect("killed in time").unwrap();
    assert_eq!(exit.task_id, "Task.F");
    assert!(!exit.requested);
    assert_eq!(exit.reason, "killed by signal 9");
}
