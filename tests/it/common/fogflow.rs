//! A whole FogFlow in one child process (`fogflow --role all`, or a chosen role list) on free ports, with its own
//! data directory and log: every role's port is set through `FOGFLOW__…` variables, `my_hostip` is 127.0.0.1,
//! heartbeats are fast (1 s) so liveness tests take seconds. Started until every role answers `/ready`, killed
//! by its own PID on drop (printing its log when the test is failing); plus HTTP helpers per role.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{exchange, fogflow_command, free_port, send_signal, wait_child_exit, Resp};

/// How long a started FogFlow may take until every role is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound of any single HTTP exchange.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The ports of one FogFlow process.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// Discovery.
    pub discovery: u16,
    /// Broker.
    pub broker: u16,
    /// Designer (REST + dashboard).
    pub designer: u16,
    /// Master NGSI agent.
    pub master_agent: u16,
    /// Master REST.
    pub master_rest: u16,
    /// Worker health/REST.
    pub worker: u16,
}

impl Ports {
    /// Free ports for every role (share one set between processes with [`FogFlowOptions::ports`]).
    pub fn free() -> Ports {
        Ports {
            discovery: free_port(),
            broker: free_port(),
            designer: free_port(),
            master_agent: free_port(),
            master_rest: free_port(),
            worker: free_port(),
        }
    }
}

/// One role's HTTP side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// Discovery.
    Discovery,
    /// Broker.
    Broker,
    /// Designer.
    Designer,
    /// Master REST.
    Master,
    /// Master NGSI agent.
    MasterAgent,
    /// Worker.
    Worker,
}

/// How to start.
#[derive(Debug, Clone)]
pub struct FogFlowOptions {
    roles: String,
    env: Vec<(String, String)>,
    ports: Option<Ports>,
    wait_for: &'static str,
}

impl Default for FogFlowOptions {
    fn default() -> Self {
        FogFlowOptions { roles: "all".into(), env: Vec::new(), ports: None, wait_for: "/ready" }
    }
}

impl FogFlowOptions {
    /// `--role all`, 1 s heartbeats, 3 missed heartbeats for liveness.
    pub fn new() -> Self {
        Self::default()
    }

    /// Another role list (e.g. `master,worker,designer` next to a separate broker and discovery).
    pub fn roles(mut self, roles: &str) -> Self {
        self.roles = roles.into();
        self
    }

    /// Adds an environment variable (e.g. `FOGFLOW__WORKER__CAPACITY`).
    pub fn env(mut self, key: &str, value: impl ToString) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// These ports instead of free ones of its own: processes given the same [`Ports`] find each other (each
    /// listens only on the ports of its roles).
    pub fn ports(mut self, ports: Ports) -> Self {
        self.ports = Some(ports);
        self
    }

    /// Start-up waits only until every role answers `/health` (for a process that cannot be ready yet).
    pub fn alive_only(mut self) -> Self {
        self.wait_for = "/health";
        self
    }

    /// Starts and waits until ready.
    pub fn start(self) -> FogFlow {
        let dir = tempfile::tempdir().expect("temp dir");
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(REQUEST_TIMEOUT)
            .redirects(0)
            .build();
        let ports = self.ports.unwrap_or_else(Ports::free);
        let mut fogflow = FogFlow { ports, dir, options: self, child: None, agent };
        fogflow.spawn_and_wait();
        fogflow
    }
}

/// A running FogFlow process.
pub struct FogFlow {
    /// Its ports.
    pub ports: Ports,
    dir: tempfile::TempDir,
    options: FogFlowOptions,
    child: Option<Child>,
    agent: ureq::Agent,
}

impl FogFlow {
    /// `--role all` with the defaults of [`FogFlowOptions::new`].
    pub fn start() -> FogFlow {
        FogFlowOptions::new().start()
    }

    /// The data directory given with `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("fogflow.log")
    }

    /// Everything the process wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The port of a role's HTTP side.
    pub fn port(&self, at: At) -> u16 {
        match at {
            At::Discovery => self.ports.discovery,
            At::Broker => self.ports.broker,
            At::Designer => self.ports.designer,
            At::Master => self.ports.master_rest,
            At::MasterAgent => self.ports.master_agent,
            At::Worker => self.ports.worker,
        }
    }

    /// `http://127.0.0.1:<port of at><path>`.
    pub fn url(&self, at: At, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port(at), path)
    }

    fn roles(&self) -> Vec<At> {
        let roles = &self.options.roles;
        let has = |name: &str| roles == "all" || roles.split(',').any(|r| r.trim() == name);
        let mut list = Vec::new();
        if has("discovery") {
            list.push(At::Discovery);
        }
        if has("broker") {
            list.push(At::Broker);
        }
        if has("designer") {
            list.push(At::Designer);
        }
        if has("master") {
            list.push(At::Master);
        }
        if has("worker") {
            list.push(At::Worker);
        }
        list
    }

    fn spawn_and_wait(&mut self) {
        let log = File::options().create(true).append(true).open(self.log_path()).expect("open log file");
        let p = self.ports;
        let mut command = fogflow_command(self.dir.path());
        command
            .arg("--role")
            .arg(&self.options.roles)
            .arg("--data-dir")
            .arg(self.data_dir())
            .env("FOGFLOW__MY_HOSTIP", "127.0.0.1")
            .env("FOGFLOW__DISCOVERY__HTTP_PORT", p.discovery.to_string())
            .env("FOGFLOW__BROKER__HTTP_PORT", p.broker.to_string())
            .env("FOGFLOW__BROKER__HEARTBEAT_INTERVAL", "1")
            .env("FOGFLOW__DESIGNER__WEBSRVPORT", p.designer.to_string())
            .env("FOGFLOW__MASTER__NGSI_AGENT_PORT", p.master_agent.to_string())
            .env("FOGFLOW__MASTER__REST_API_PORT", p.master_rest.to_string())
            .env("FOGFLOW__WORKER__HTTP_PORT", p.worker.to_string())
            .env("FOGFLOW__WORKER__HEARTBEAT_INTERVAL", "1")
            .env("FOGFLOW__WORKER__DETECTION_DURATION", "3")
            // Tasks run as processes unless a test asks for Docker (`worker.runtime` auto would pick Docker
            // wherever its socket answers, and the operator images exist only where a test built them).
            .env("FOGFLOW__WORKER__RUNTIME", "process")
            .env("RUST_LOG", "info")
            .envs(self.options.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        self.child = Some(command.spawn().expect("spawn fogflow"));
        let probe = ureq::AgentBuilder::new().timeout(Duration::from_secs(2)).build();
        let deadline = Instant::now() + READY_TIMEOUT;
        let roles = self.roles();
        loop {
            if let Some(status) = self.child.as_mut().and_then(|child| child.try_wait().expect("try_wait")) {
                self.child = None;
                panic!("fogflow exited during start-up with {status}; log:\n{}", self.log());
            }
            let ready = roles.iter().all(|at| {
                let url = self.url(*at, self.options.wait_for);
                probe.get(&url).call().map(|response| response.status() == 200).unwrap_or(false)
            });
            if ready {
                return;
            }
            if Instant::now() > deadline {
                panic!("fogflow not ready within {READY_TIMEOUT:?}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The process id (while it runs).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("fogflow is running").id()
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("fogflow is running");
        child.kill().expect("SIGKILL fogflow");
        child.wait().expect("reap fogflow");
    }

    /// Sends SIGTERM and waits at most `timeout` for the exit; `None` if it is still running then.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        send_signal(self.child.as_ref(), "TERM");
        wait_child_exit(&mut self.child, timeout)
    }

    /// Starts again on the same data directory and ports, and waits until ready.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop fogflow before restarting it");
        self.spawn_and_wait();
    }

    /// One HTTP exchange with a role; panics on a transport error.
    pub fn request(&self, at: At, method: &str, path: &str, body: Option<&str>, headers: &[(&str, &str)]) -> Resp {
        exchange(&self.agent, method, &self.url(at, path), body, headers).unwrap_or_else(|error| {
            panic!("{method} {path} ({at:?}) failed at transport level: {error}; log:\n{}", self.log())
        })
    }

    /// `GET path` at a role.
    pub fn get(&self, at: At, path: &str) -> Resp {
        self.request(at, "GET", path, None, &[])
    }

    /// `DELETE path` at a role.
    pub fn delete(&self, at: At, path: &str) -> Resp {
        self.request(at, "DELETE", path, None, &[])
    }

    /// `POST path` with a JSON body at a role.
    pub fn post(&self, at: At, path: &str, body: &Value) -> Resp {
        self.request(at, "POST", path, Some(&body.to_string()), &[])
    }

    /// `POST /ngsi10/updateContext` at the broker, asserting 200.
    pub fn update(&self, action: &str, elements: &[Value]) -> Value {
        let body = json!({ "contextElements": elements, "updateAction": action });
        let response = self.post(At::Broker, "/ngsi10/updateContext", &body);
        assert_eq!(response.status, 200, "updateContext {body} answered {response:?}");
        response.json()
    }

    /// The entity `id` at the broker (`GET /ngsi10/entity/<id>`), `None` on 404.
    pub fn entity(&self, id: &str) -> Option<Value> {
        let response = self.get(At::Broker, &format!("/ngsi10/entity/{id}"));
        (response.status == 200).then(|| response.json())
    }
}

impl Drop for FogFlow {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- fogflow log ----\n{}", self.log());
        }
    }
}
