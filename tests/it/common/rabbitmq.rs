//! A private RabbitMQ node for the tests (testing.md): its own node name, ports from [`free_port`], data and
//! logs in a temporary directory, listening on 127.0.0.1 only, started with the Debian package's scripts.
//! [`shared`] starts one node for the whole test run (a `OnceLock`); [`RabbitMq::start`] starts a node of a
//! test's own (to stop and restart it). Nodes are stopped by their node name (`rabbitmqctl -n <node> stop`),
//! never by process name: on drop, and — for the shared node, which is never dropped — by a watchdog shell
//! started with it that waits for this test process to end. Without RabbitMQ installed, tests skip with a
//! printed reason, except under `CI=true`, where they fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::fogflow::{FogFlowOptions, Ports};
use super::free_port;

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
const CTL: &str = "/usr/lib/rabbitmq/bin/rabbitmqctl";
/// How long a node may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The user every node has (RabbitMQ's default, allowed from loopback only).
pub const USER: &str = "guest";
/// Its password.
pub const PASSWORD: &str = "guest";

/// One private node.
pub struct RabbitMq {
    /// AMQP port on 127.0.0.1.
    pub amqp_port: u16,
    node: String,
    epmd_port: u16,
    dist_port: u16,
    dir: tempfile::TempDir,
}

static SHARED: OnceLock<Option<RabbitMq>> = OnceLock::new();
static NODES: AtomicU32 = AtomicU32::new(0);

/// The node shared by every test of this run, started on first use; `None` (after printing why) when
/// RabbitMQ is not installed and this is not CI.
pub fn shared() -> Option<&'static RabbitMq> {
    SHARED
        .get_or_init(|| {
            let node = RabbitMq::start()?;
            node.watch_test_process();
            Some(node)
        })
        .as_ref()
}

/// Whether RabbitMQ is installed; otherwise prints the reason, and panics under `CI=true`.
pub fn available() -> bool {
    if Path::new(SERVER).exists() && Path::new(CTL).exists() {
        return true;
    }
    let reason = format!("RabbitMQ is not installed ({SERVER} missing): `apt-get install -y rabbitmq-server`");
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("{reason}; CI needs it (.ci/run installs it)");
    }
    eprintln!("SKIPPED: {reason}");
    false
}

impl RabbitMq {
    /// Starts a node of its own and waits until it runs; `None` when RabbitMQ is not installed (see
    /// [`available`]).
    pub fn start() -> Option<RabbitMq> {
        if !available() {
            return None;
        }
        let dir = tempfile::Builder::new().prefix("ff-rabbitmq").tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("home")).expect("home dir");
        std::fs::write(dir.path().join("rabbitmq.config"), "[].\n").expect("rabbitmq.config");
        std::fs::write(dir.path().join("enabled_plugins"), "[].\n").expect("enabled_plugins");
        let n = NODES.fetch_add(1, Ordering::SeqCst);
        let node = RabbitMq {
            amqp_port: free_port(),
            node: format!("ff-test-{}-{n}@localhost", std::process::id()),
            epmd_port: free_port(),
            dist_port: free_port(),
            dir,
        };
        node.start_again();
        Some(node)
    }

    /// Starts the (stopped) node again on the same data and ports, and waits until it runs.
    pub fn start_again(&self) {
        let status = self
            .command(SERVER)
            .arg("-detached")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run rabbitmq-server");
        assert!(status.success(), "rabbitmq-server -detached failed: {status}");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let output = self.ctl(&["await_startup", "--timeout", "10"]);
            if output.status.success() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "RabbitMQ node {} did not start within {START_TIMEOUT:?}: {}\nlogs in {}",
                    self.node,
                    String::from_utf8_lossy(&output.stderr),
                    self.dir.path().join("log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Stops the node (the Erlang VM and its epmd); data stays.
    pub fn stop(&self) {
        let _ = self.ctl(&["stop"]);
        // epmd refuses to stop while the node is still registered, which it may be for a moment.
        for _ in 0..20 {
            let Ok(output) = Command::new("epmd").args(["-port", &self.epmd_port.to_string(), "-kill"]).output() else {
                return;
            };
            if !String::from_utf8_lossy(&output.stdout).contains("not allowed") {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Options for fogflow `roles` on `ports` that use this node as the default user.
    pub fn fogflow(&self, roles: &str, ports: Ports) -> FogFlowOptions {
        FogFlowOptions::new()
            .roles(roles)
            .ports(ports)
            .env("FOGFLOW__RABBITMQ__HOST_IP", "127.0.0.1")
            .env("FOGFLOW__RABBITMQ__PORT", self.amqp_port)
            .env("FOGFLOW__RABBITMQ__USERNAME", USER)
            .env("FOGFLOW__RABBITMQ__PASSWORD", PASSWORD)
    }

    /// Runs `rabbitmqctl -n <node> <args>` against this node.
    pub fn ctl(&self, args: &[&str]) -> Output {
        self.command(CTL).arg("-n").arg(&self.node).args(args).output().expect("run rabbitmqctl")
    }

    /// Adds a user with every permission on `/`.
    pub fn add_user(&self, user: &str, password: &str) {
        let added = self.ctl(&["add_user", user, password]);
        assert!(added.status.success(), "add_user: {}", String::from_utf8_lossy(&added.stderr));
        let allowed = self.ctl(&["set_permissions", "-p", "/", user, ".*", ".*", ".*"]);
        assert!(allowed.status.success(), "set_permissions: {}", String::from_utf8_lossy(&allowed.stderr));
    }

    /// Messages waiting in `queue` (ready plus unacknowledged), `None` when it does not exist.
    pub fn queue_depth(&self, queue: &str) -> Option<u64> {
        let output = self.ctl(&["list_queues", "-q", "--no-table-headers", "name", "messages"]);
        String::from_utf8_lossy(&output.stdout).lines().find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some(queue)).then(|| words.next().and_then(|n| n.parse().ok())).flatten()
        })
    }

    /// RabbitMQ's version text.
    pub fn version(&self) -> String {
        let output = self.ctl(&["version"]);
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    fn command(&self, program: &str) -> Command {
        let d = self.dir.path();
        let mut command = Command::new(program);
        command
            .env("HOME", d.join("home"))
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.amqp_port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq"))
            .env("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", "-kernel inet_dist_use_interface {127,0,0,1}")
            .stdin(Stdio::null());
        command
    }

    /// Starts a watchdog shell that stops this node once the test process is gone (statics are never
    /// dropped), by node name and epmd port.
    fn watch_test_process(&self) {
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {CTL} -n {node} stop >/dev/null 2>&1; \
             for i in 1 2 3 4 5 6 7 8 9 10; do epmd -port {epmd} -kill 2>&1 | grep -q 'not allowed' || break; \
             sleep 0.5; done; rm -rf {dir}",
            pid = std::process::id(),
            node = self.node,
            epmd = self.epmd_port,
            dir = shell_quote(self.dir.path()),
        );
        let _ = self.command("sh").arg("-c").arg(script).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
    }
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", PathBuf::from(path).display().to_string().replace('\'', r"'\''"))
}

impl Drop for RabbitMq {
    fn drop(&mut self) {
        self.stop();
    }
}
