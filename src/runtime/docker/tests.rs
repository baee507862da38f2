//! The Docker runtime against the machine's engine where one answers (skipped otherwise, a failure under
//! `CI=true`); the end-to-end behaviour with real operator images is in `tests/it/docker_runtime.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::runtime::{labels, PortAllocator};

fn engine_usable() -> bool {
    let usable = std::path::Path::new("/var/run/docker.sock").exists();
    if !usable {
        let ci = std::env::var("CI").is_ok_and(|value| value.eq_ignore_ascii_case("true"));
        assert!(!ci, "CI=true but /var/run/docker.sock is missing");
        eprintln!("SKIPPED: no Docker socket");
    }
    usable
}

fn spec(image: &str) -> LaunchSpec {
    LaunchSpec {
        task_id: "Task.unit".into(),
        image: image.into(),
        port: PortAllocator::new(0).lease().unwrap(),
        admin: Vec::new(),
        parameters: Vec::new(),
        labels: BTreeMap::from([
            (labels::TASK_ID.to_string(), "Task.unit".to_string()),
            (labels::WORKER_ID.to_string(), format!("Worker.unit-{}", std::process::id())),
            (labels::EPOCH.to_string(), "1".to_string()),
        ]),
    }
}

#[tokio::test]
async fn a_missing_image_without_a_registry_fails_clearly_and_is_retried_later() {
    if !engine_usable() {
        return;
    }
    let worker = format!("Worker.unit-{}", std::process::id());
    let runtime = DockerRuntime::new("/var/run/docker.sock", &worker, Network::Host, Duration::from_secs(1), None);
    runtime.health().await.expect("the engine answers");
    let image = "fogflow-unit/never-built:none";
    let outcome = tokio::time::timeout(Duration::from_secs(120), runtime.launch(spec(image))).await;
    let error = outcome.expect("a missing image must not hang the launch").unwrap_err();
    assert!(matches!(error, RuntimeError::ImageUnavailable { .. }), "{error:?}");
    assert!(error.to_string().contains(image), "{error}");
    assert!(!error.is_permanent(), "retried with backoff: the image may be loaded later");
    assert!(runtime.list().await.is_empty());
}

#[tokio::test]
async fn an_unreachable_daemon_is_a_health_error_and_a_retryable_launch_failure() {
    let runtime = DockerRuntime::new(
        "unix:///nonexistent/docker.sock",
        "Worker.unit",
        Network::Host,
        Duration::from_secs(1),
        None,
    );
    let reason = runtime.health().await.unwrap_err();
    assert!(reason.contains("Docker daemon unreachable at /nonexistent/docker.sock"), "{reason}");
    let error = runtime.launch(spec("fogflow/converter:latest")).await.unwrap_err();
    assert!(matches!(error, RuntimeError::EngineUnavailable(_)), "{error:?}");
    assert!(!error.is_permanent());
    assert_eq!(runtime.kind(), "docker");
}
