//! The machine's Docker engine for the tests: the `docker` CLI, whether the engine is usable (tests skip with a
//! printed reason when it is not, except under `CI=true`, where they fail), the operator images built once per
//! test run from the binary under test (`scripts/operator-images.sh`, `FROM scratch`, no registry), containers
//! by label, and [`DockerProxy`] — a Unix-socket relay to the engine that a test cuts and restores to make the
//! daemon unreachable for one worker without touching the engine itself.

use std::io::ErrorKind;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// The binary under test.
const BINARY: &str = env!("CARGO_BIN_EXE_fogflow");
/// The crate root (`scripts/` lives there).
const CRATE_DIR: &str = env!("CARGO_MANIFEST_DIR");
/// The engine's socket.
pub const ENGINE_SOCKET: &str = "/var/run/docker.sock";

/// Runs `docker args`; stdout trimmed, or a description of the failure.
pub fn docker(args: &[&str]) -> Result<String, String> {
    let output = Command::new("docker").args(args).output().map_err(|error| format!("cannot run docker: {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(format!("docker {} failed ({}): {}", args.join(" "), output.status, describe(&output)))
    }
}

/// `docker args`, panicking with the reason on failure.
pub fn docker_ok(args: &[&str]) -> String {
    docker(args).unwrap_or_else(|error| panic!("{error}"))
}

/// A command's stdout and stderr.
pub fn describe(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Whether a Docker engine answers, and if not why.
pub fn engine_answers() -> Result<(), String> {
    docker(&["version", "--format", "{{.Server.Version}}"]).map(|_| ())
}

/// Whether the engine is usable; otherwise prints why the test is skipped, and panics under `CI=true`.
pub fn usable(test: &str) -> bool {
    match engine_answers() {
        Ok(()) => true,
        Err(reason) => {
            let ci = std::env::var("CI").is_ok_and(|value| value.eq_ignore_ascii_case("true"));
            assert!(!ci, "CI=true but Docker is not usable, so {test} cannot run: {reason}");
            eprintln!("SKIPPED {test}: Docker is not usable here ({reason}); CI=true makes this a failure");
            false
        }
    }
}

static IMAGES: OnceLock<Result<(), String>> = OnceLock::new();

/// Builds `fogflow/{dummy,converter,counter,anomaly}:latest` from the binary under test, once per test run
/// (the images stay, as `scripts/operator-images.sh` leaves them for a user).
pub fn operator_images() {
    let built = IMAGES.get_or_init(|| {
        let script = Path::new(CRATE_DIR).join("scripts/operator-images.sh");
        let mut command = Command::new("bash");
        command.arg(&script);
        if Command::new("objcopy").arg("--version").output().is_ok_and(|o| o.status.success()) {
            command.arg("--strip");
        }
        let output = command.arg(BINARY).arg("latest").output().map_err(|e| format!("cannot run {script:?}: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!("operator-images.sh failed ({}): {}", output.status, describe(&output)))
        }
    });
    if let Err(reason) = built {
        panic!("{reason}");
    }
}

/// Ids of the containers (running or not) labelled as tasks of `worker_id`, optionally of one task.
pub fn task_containers(worker_id: &str, task_id: Option<&str>) -> Vec<String> {
    let worker = format!("label=fogflow.worker_id={worker_id}");
    let mut args = vec!["ps", "-a", "-q", "--no-trunc", "--filter", "label=fogflow.managed=true", "--filter", &worker];
    let task = task_id.map(|task| format!("label=fogflow.task_id={task}"));
    if let Some(task) = &task {
        args.extend(["--filter", task]);
    }
    docker_ok(&args).lines().map(str::to_string).collect()
}

/// A label of a container.
pub fn label(container: &str, key: &str) -> String {
    docker_ok(&["inspect", "-f", &format!("{{{{index .Config.Labels \"{key}\"}}}}"), container])
}

/// Removes every task container of the given workers when dropped (also when the test fails).
pub struct ContainerCleanup(pub Vec<String>);

impl Drop for ContainerCleanup {
    fn drop(&mut self) {
        for worker in &self.0 {
            for container in task_containers(worker, None) {
                let _ = docker(&["rm", "-f", &container]);
            }
        }
    }
}

struct Relay {
    stop: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<UnixStream>>>,
    acceptor: JoinHandle<()>,
}

/// A Unix socket at `path` relaying to the Docker engine while it runs: [`DockerProxy::cut`] closes it and every
/// connection through it (the socket file disappears, as when the daemon is down), [`DockerProxy::restore`]
/// opens it again.
pub struct DockerProxy {
    path: PathBuf,
    relay: Option<Relay>,
}

impl DockerProxy {
    /// A relay at `path`, running.
    pub fn start(path: &Path) -> DockerProxy {
        let mut proxy = DockerProxy { path: path.to_path_buf(), relay: None };
        proxy.restore();
        proxy
    }

    /// The socket as a `unix://` URL.
    pub fn url(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// Opens the socket (no-op when it is open).
    pub fn restore(&mut self) {
        if self.relay.is_some() {
            return;
        }
        let _ = std::fs::remove_file(&self.path);
        let listener = UnixListener::bind(&self.path).expect("bind the proxy socket");
        listener.set_nonblocking(true).expect("non-blocking proxy socket");
        let stop = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<UnixStream>>> = Arc::default();
        let (stopping, held) = (stop.clone(), connections.clone());
        let acceptor = std::thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(engine) = UnixStream::connect(ENGINE_SOCKET) else { continue };
                        let pair = (client.try_clone(), engine.try_clone());
                        let (Ok(client_copy), Ok(engine_copy)) = pair else { continue };
                        held.lock().unwrap().extend([client.try_clone().unwrap(), engine.try_clone().unwrap()]);
                        std::thread::spawn(move || pipe(client, engine));
                        std::thread::spawn(move || pipe(engine_copy, client_copy));
                    }
                    Err(error) if error.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        self.relay = Some(Relay { stop, connections, acceptor });
    }

    /// Closes the socket and every connection through it.
    pub fn cut(&mut self) {
        let Some(relay) = self.relay.take() else { return };
        relay.stop.store(true, Ordering::SeqCst);
        let _ = relay.acceptor.join();
        let _ = std::fs::remove_file(&self.path);
        for connection in relay.connections.lock().unwrap().drain(..) {
            let _ = connection.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for DockerProxy {
    fn drop(&mut self) {
        self.cut();
    }
}

fn pipe(mut from: UnixStream, mut to: UnixStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(std::net::Shutdown::Write);
}
