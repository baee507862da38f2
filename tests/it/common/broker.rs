//! A `fogflow --role broker` (or, with [`BrokerOptions::discovery`], `--role discovery`) child process: started
//! on a free port with its own data directory and log file,
//! probed until `/ready`, stopped with SIGKILL or SIGTERM, restarted on the same data, killed by its own PID on
//! drop (printing its log when the test is failing); plus the HTTP calls tests make to it.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{exchange, fogflow_command, free_port, send_signal, wait_child_exit, Resp};

/// How long a started broker may take to answer `GET /ready` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Upper bound of any single HTTP exchange with the broker.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// How to start a broker.
#[derive(Debug, Clone, Default)]
pub struct BrokerOptions {
    env: Vec<(String, String)>,
    args: Vec<String>,
    use_discovery: bool,
    run_discovery: bool,
    port: Option<u16>,
}

impl BrokerOptions {
    /// Defaults: discovery off, no extra environment or arguments.
    pub fn new() -> Self {
        BrokerOptions::default()
    }

    /// Adds an environment variable (e.g. `FOGFLOW__BROKER__NOTIFICATION__TIMEOUT_MS`).
    pub fn env(mut self, key: &str, value: impl ToString) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Adds a command-line argument.
    pub fn arg(mut self, arg: impl ToString) -> Self {
        self.args.push(arg.to_string());
        self
    }

    /// Runs the discovery role instead of a broker (on its own port, `FOGFLOW__DISCOVERY__HTTP_PORT`).
    pub fn discovery() -> Self {
        BrokerOptions { run_discovery: true, ..BrokerOptions::default() }
    }

    /// Listens on this port instead of a free one (e.g. to restart discovery where brokers expect it).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Turns discovery registration on (`broker.use_discovery = true`).
    pub fn with_discovery(mut self) -> Self {
        self.use_discovery = true;
        self
    }

    /// Starts the broker and waits until it is ready.
    pub fn start(self) -> Broker {
        let dir = tempfile::tempdir().expect("temp dir");
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(REQUEST_TIMEOUT)
            .redirects(0)
            .build();
        let port = self.port.unwrap_or_else(free_port);
        let mut broker = Broker { port, dir, options: self, child: None, agent };
        broker.spawn_and_wait();
        broker
    }
}

/// A running `fogflow --role broker` child process.
pub struct Broker {
    /// The port its HTTP listener is on (127.0.0.1).
    pub port: u16,
    dir: tempfile::TempDir,
    options: BrokerOptions,
    child: Option<Child>,
    agent: ureq::Agent,
}

impl Broker {
    /// A broker with default options (discovery off).
    pub fn start() -> Broker {
        BrokerOptions::new().start()
    }

    /// The data directory given with `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("broker.log")
    }

    /// Everything the broker process(es) wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// The URL the broker advertises (`http://127.0.0.1:<port>/ngsi10`).
    pub fn advertised_url(&self) -> String {
        self.url("/ngsi10")
    }

    fn spawn_and_wait(&mut self) {
        if let Some(status) = self.spawn_until_ready_or_exit() {
            panic!("broker exited during start-up with {status}; log:\n{}", self.log());
        }
    }

    /// Spawns the process and waits until it is ready (`None`) or has exited (its status).
    fn spawn_until_ready_or_exit(&mut self) -> Option<ExitStatus> {
        let log = File::options().create(true).append(true).open(self.log_path()).expect("open log file");
        let mut command = fogflow_command(self.dir.path());
        let (role, port_variable) = if self.options.run_discovery {
            ("discovery", "FOGFLOW__DISCOVERY__HTTP_PORT")
        } else {
            ("broker", "FOGFLOW__BROKER__HTTP_PORT")
        };
        command
            .arg("--role")
            .arg(role)
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(&self.options.args)
            .env(port_variable, self.port.to_string())
            .env("FOGFLOW__BROKER__USE_DISCOVERY", self.options.use_discovery.to_string())
            .env("RUST_LOG", "info")
            .envs(self.options.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        self.child = Some(command.spawn().expect("spawn fogflow --role broker"));
        let probe = ureq::AgentBuilder::new().timeout(Duration::from_secs(2)).build();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|child| child.try_wait().expect("try_wait")) {
                self.child = None;
                return Some(status);
            }
            if let Ok(response) = probe.get(&self.url("/ready")).call() {
                if response.status() == 200 {
                    return None;
                }
            }
            if Instant::now() > deadline {
                panic!("broker not ready within {READY_TIMEOUT:?}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process with SIGKILL (no chance to flush anything) and reaps it.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("broker is running");
        child.kill().expect("SIGKILL the broker");
        child.wait().expect("reap the broker");
    }

    /// Sends SIGTERM and waits at most `timeout` for the exit; `None` if it is still running then.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.signal("TERM");
        self.wait_exit(timeout)
    }

    /// Sends `SIG<name>` (e.g. `TERM`) to the broker process, by its PID.
    pub fn signal(&self, name: &str) {
        send_signal(self.child.as_ref(), name);
    }

    /// Waits at most `timeout` for the process to exit, without signalling it; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_child_exit(&mut self.child, timeout)
    }

    /// Starts the broker again on the same data directory and expects it to refuse to start: returns its exit
    /// status (panics if it becomes ready instead).
    pub fn restart_expecting_exit(&mut self) -> ExitStatus {
        assert!(self.child.is_none(), "stop the broker before restarting it");
        self.port = free_port();
        match self.spawn_until_ready_or_exit() {
            Some(status) => status,
            None => panic!("the broker started although it should have refused to; log:\n{}", self.log()),
        }
    }

    /// Starts the process again on the same data directory (on its fixed port, else a new free one) and waits
    /// until it is ready.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the broker before restarting it");
        self.port = self.options.port.unwrap_or_else(free_port);
        self.spawn_and_wait();
    }

    /// One HTTP exchange; panics on a transport error (the broker must always answer).
    pub fn request(&self, method: &str, path: &str, body: Option<&str>, headers: &[(&str, &str)]) -> Resp {
        exchange(&self.agent, method, &self.url(path), body, headers)
            .unwrap_or_else(|error| panic!("{method} {path} failed at transport level: {error}; log:\n{}", self.log()))
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", path, None, &[])
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Resp {
        self.request("DELETE", path, None, &[])
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Resp {
        self.request("POST", path, Some(&body.to_string()), &[])
    }

    /// `POST path` with a JSON body and extra headers.
    pub fn post_with(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Resp {
        self.request("POST", path, Some(&body.to_string()), headers)
    }

    /// `POST path` with a body sent verbatim (for malformed input).
    pub fn post_raw(&self, path: &str, body: &str) -> Resp {
        self.request("POST", path, Some(body), &[])
    }

    /// `POST /ngsi10/updateContext`, asserting 200, returning the JSON answer.
    pub fn update_ok(&self, action: &str, elements: &[Value]) -> Value {
        self.update_ok_with(action, elements, &[])
    }

    /// Like [`Broker::update_ok`], with extra headers.
    pub fn update_ok_with(&self, action: &str, elements: &[Value], headers: &[(&str, &str)]) -> Value {
        let body = json!({ "contextElements": elements, "updateAction": action });
        let response = self.post_with("/ngsi10/updateContext", &body, headers);
        assert_eq!(response.status, 200, "updateContext {body} answered {response:?}");
        response.json()
    }

    /// `POST /ngsi10/queryContext`, asserting 200, returning the JSON answer.
    pub fn query_ok(&self, body: &Value) -> Value {
        let response = self.post("/ngsi10/queryContext", body);
        assert_eq!(response.status, 200, "queryContext {body} answered {response:?}");
        response.json()
    }

    /// `POST /ngsi10/subscribeContext`, asserting 200, returning the subscription id.
    pub fn subscribe_ok(&self, body: &Value) -> String {
        self.subscribe_ok_with(body, &[])
    }

    /// Like [`Broker::subscribe_ok`], with extra headers.
    pub fn subscribe_ok_with(&self, body: &Value, headers: &[(&str, &str)]) -> String {
        let response = self.post_with("/ngsi10/subscribeContext", body, headers);
        assert_eq!(response.status, 200, "subscribeContext {body} answered {response:?}");
        let answer = response.json();
        let sid = answer["subscribeResponse"]["subscriptionId"].as_str().unwrap_or_default().to_string();
        assert!(!sid.is_empty(), "no subscribeResponse.subscriptionId in {answer}");
        sid
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> String {
        let response = self.get("/metrics");
        assert_eq!(response.status, 200, "/metrics answered {response:?}");
        response.body
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "----- broker log ({}) -----\n{}\n----- end of broker log -----",
                self.log_path().display(),
                self.log()
            );
        }
    }
}
