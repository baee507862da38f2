//! Harness of the integration tests: runs the real `fogflow` binary as a child process on a free port with its
//! own temporary data directory, talks HTTP/1.1 to it on 127.0.0.1, and can stop it with SIGKILL or SIGTERM and
//! start it again on the same data. The child's stdout and stderr go to a log file that is printed when a test
//! fails. [`broker`] runs the broker, [`sink`] receives notifications (and plays discovery), [`ngsi`] builds
//! and inspects NGSI payloads.

pub mod broker;
pub mod converter;
pub mod docker;
pub mod fogflow;
pub mod ngsi;
pub mod operator;
pub mod rabbitmq;
pub mod sink;
pub mod static_server;
pub mod tls_server;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use broker::{Broker, BrokerOptions};
pub use ngsi::*;
pub use sink::{Recorded, Reply, Sink};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_fogflow");

/// One HTTP exchange through `agent`: the response whatever its status, or the transport error as text (the
/// callers panic with their process's log).
pub fn exchange(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<Resp, String> {
    let mut request = agent.request(method, url);
    if body.is_some() {
        request = request.set("Content-Type", "application/json");
    }
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let result = match body {
        Some(body) => request.send_string(body),
        None => request.call(),
    };
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(error) => return Err(error.to_string()),
    };
    let status = response.status();
    let content_type = response.header("content-type").map(str::to_string);
    let headers = response
        .headers_names()
        .into_iter()
        .filter_map(|name| response.header(&name).map(|value| (name.to_ascii_lowercase(), value.to_string())))
        .collect();
    let body = response.into_string().map_err(|error| error.to_string())?;
    Ok(Resp { status, content_type, headers, body })
}

/// Sends `SIG<name>` (e.g. `TERM`) to a child process by its PID.
pub fn send_signal(child: Option<&std::process::Child>, name: &str) {
    let pid = child.expect("the process is running").id().to_string();
    let sent = Command::new("kill").args([format!("-{name}").as_str(), &pid]).status().expect("run kill");
    assert!(sent.success(), "kill -{name} {pid} failed");
}

/// Waits at most `timeout` for the child to exit (then forgets it); `None` if it is still running.
pub fn wait_child_exit(slot: &mut Option<std::process::Child>, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        let child = slot.as_mut().expect("the process is running");
        if let Some(status) = child.try_wait().expect("try_wait") {
            *slot = None;
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Discovery with 1 s heartbeats, for federation tests.
pub fn fast_discovery() -> Broker {
    BrokerOptions::discovery().env("FOGFLOW__BROKER__HEARTBEAT_INTERVAL", 1).start()
}

/// A broker of site `site` registered at `discovery`, heartbeating every second.
pub fn broker_at(discovery: &Broker, site: &str) -> Broker {
    BrokerOptions::new()
        .with_discovery()
        .env("FOGFLOW__DISCOVERY__HTTP_PORT", discovery.port)
        .env("FOGFLOW__DISCOVERY__HOST_IP", "127.0.0.1")
        .env("FOGFLOW__BROKER__HEARTBEAT_INTERVAL", 1)
        .env("FOGFLOW__SITE_ID", site)
        .start()
}

/// Waits until discovery knows entity `id`.
pub fn wait_registered(discovery: &Broker, id: &str, timeout: Duration) {
    wait_until(timeout, &format!("{id} registered at discovery"), || {
        (discovery.get(&format!("/ngsi9/registration/{id}")).status == 200).then_some(())
    });
}

/// A port that was free a moment ago (bound to 127.0.0.1:0, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0").local_addr().expect("local addr").port()
}

/// A `fogflow` command with no inherited `FOGFLOW*` or `RUST_LOG` variables, run in `dir` (so that no
/// `./config.json` of the source tree is picked up).
pub fn fogflow_command(dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command.current_dir(dir).stdin(Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("FOGFLOW") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command
}

/// Runs `fogflow <args>` to completion (bounded) with extra environment variables, in a fresh directory.
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = fogflow_command(dir.path());
    command.args(args).envs(env.iter().copied()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn fogflow");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("collect output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("collect output");
            panic!("fogflow {args:?} did not exit within 20 s; stderr: {}", String::from_utf8_lossy(&output.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Calls `check` until it returns `Some`, at most `timeout`; panics naming `what` otherwise.
pub fn wait_until<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An HTTP response, read whole.
#[derive(Debug, Clone)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// Every header (names lower-cased, first value of each).
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: String,
}

impl Resp {
    /// A header's first value (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(key, _)| *key == name).map(|(_, value)| value.as_str())
    }

    /// The body as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("body is not JSON ({error}): status {} body {:?}", self.status, self.body))
    }
}

/// Serves `listener` on a thread of its own: each connection goes to `serve` on a new thread, until `stopped()`
/// says so (checked at each connection; a server stops by setting its flag and connecting once to wake this).
pub fn accept_each(
    listener: TcpListener,
    stopped: impl Fn() -> bool + Send + 'static,
    serve: impl Fn(std::net::TcpStream) + Send + Sync + 'static,
) {
    let serve = std::sync::Arc::new(serve);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stopped() {
                break;
            }
            let Ok(stream) = stream else { continue };
            let serve = serve.clone();
            std::thread::spawn(move || serve(stream));
        }
    });
}
