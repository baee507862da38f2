//! A task operator child process, as a worker would launch it: `fogflow operator <name>` (or any other command,
//! e.g. the Python operator in `tests/operators/`) with `myport` on a free port, `adminCfg` and operator
//! parameters in the environment; probed until it accepts connections, stopped with SIGTERM or killed by its
//! own PID on drop (printing its log when the test is failing); plus the HTTP calls tests make to it.

use std::fs::File;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{exchange, fogflow_command, send_signal, wait_child_exit, Resp};

/// How long a started operator may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The admin commands a worker sends: CONNECT_BROKER, SET_CORRELATORID, SET_REFERENCE, then one SET_OUTPUTS per
/// `(type, id)`.
pub fn admin_cfg(broker_url: &str, correlator: &str, port: u16, outputs: &[(&str, &str)]) -> Value {
    let mut commands = vec![
        json!({"command": "CONNECT_BROKER", "brokerURL": broker_url}),
        json!({"command": "SET_CORRELATORID", "correlatorID": correlator}),
        json!({"command": "SET_REFERENCE", "url": format!("http://127.0.0.1:{port}")}),
    ];
    commands.extend(outputs.iter().map(|(kind, id)| json!({"command": "SET_OUTPUTS", "type": kind, "id": id})));
    Value::Array(commands)
}

/// An NGSIv1 notification of `elements`, each with status 200.
pub fn notification(elements: &[Value]) -> Value {
    let responses: Vec<Value> = elements
        .iter()
        .map(|element| json!({"contextElement": element, "statusCode": {"code": 200, "reasonPhrase": "OK"}}))
        .collect();
    json!({"subscriptionId": "sub-test", "originator": "", "contextResponses": responses})
}

/// A running operator process.
pub struct OperatorProcess {
    /// Its `myport`.
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    agent: ureq::Agent,
}

impl OperatorProcess {
    /// Starts `fogflow operator <name>` with `myport` = `port` and the given environment (e.g. `adminCfg`).
    pub fn start(name: &str, port: u16, env: &[(&str, String)]) -> OperatorProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut command = fogflow_command(dir.path());
        command.arg("operator").arg(name).env("RUST_LOG", "debug");
        OperatorProcess::spawn(command, dir, port, env)
    }

    /// Starts an arbitrary operator command (run in a fresh directory) with `myport` = `port` and `env`.
    pub fn start_command(mut command: Command, port: u16, env: &[(&str, String)]) -> OperatorProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        command.current_dir(dir.path()).stdin(Stdio::null());
        OperatorProcess::spawn(command, dir, port, env)
    }

    fn spawn(mut command: Command, dir: tempfile::TempDir, port: u16, env: &[(&str, String)]) -> OperatorProcess {
        let log_path = dir.path().join("operator.log");
        let log = File::create(&log_path).expect("create log file");
        command
            .env("myport", port.to_string())
            .envs(env.iter().map(|(key, value)| (*key, value.as_str())))
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        let child = command.spawn().expect("spawn the operator");
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .redirects(0)
            .build();
        let mut operator = OperatorProcess { port, dir, child: Some(child), agent };
        operator.wait_listening();
        operator
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("operator.log")
    }

    /// Everything the operator wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|child| child.try_wait().expect("try_wait")) {
                self.child = None;
                panic!("operator exited during start-up with {status}; log:\n{}", self.log());
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if Instant::now() > deadline {
                panic!("operator not listening on {} within {START_TIMEOUT:?}; log:\n{}", self.port, self.log());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// One HTTP exchange with the operator; panics on a transport error.
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> Resp {
        let url = format!("http://127.0.0.1:{}{}", self.port, path);
        exchange(&self.agent, method, &url, body, &[])
            .unwrap_or_else(|error| panic!("{method} {path} failed at transport level: {error}; log:\n{}", self.log()))
    }

    /// `POST /notifyContext` with these elements (all status 200).
    pub fn notify(&self, elements: &[Value]) -> Resp {
        self.request("POST", "/notifyContext", Some(&notification(elements).to_string()))
    }

    /// `POST /admin` with these commands.
    pub fn admin(&self, commands: &Value) -> Resp {
        self.request("POST", "/admin", Some(&commands.to_string()))
    }

    /// Sends `SIG<name>` to the process, by its PID.
    pub fn signal(&self, name: &str) {
        send_signal(self.child.as_ref(), name);
    }

    /// Waits at most `timeout` for the process to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_child_exit(&mut self.child, timeout)
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "----- operator log ({}) -----\n{}\n----- end of operator log -----",
                self.log_path().display(),
                self.log()
            );
        }
    }
}
