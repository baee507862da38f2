//! The `process` runtime: each task's operator runs as a child process of the worker, in its own process
//! group, with FogFlow's launch environment (`myport`, `adminCfg`, parameters) plus the task labels.
//!
//! Images resolve to command lines: `fogflow/<builtin>:<any tag>` → this binary's `operator <builtin>`;
//! anything else → `worker.operators[<image name without tag>]` (split on whitespace); otherwise the launch
//! fails with "no process-runtime operator for image X". Every child is reaped by its own task, which reports
//! exactly one [`ExitEvent`]; stopping sends SIGTERM to the group, then SIGKILL after the grace. Output lines
//! go to the log tagged with the task id. Children die with the runtime (`kill_on_drop`, and the whole group is
//! killed when the runtime is dropped); if the worker is killed outright, a watchdog in each task's process
//! group kills the group within a second, and [`ProcessRuntime::cleanup_leftovers`] (at the next start) finds
//! any survivors by their labels and kills them.
//!
//! Must not: know about the bus, the broker or task states.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::ValueEnum;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot, watch};

use super::{labels, BoxFuture, ExitChannel, ExitEvent, LaunchSpec, Launched, RunningTask, RuntimeError, TaskRuntime};
use crate::operators::OperatorName;
use crate::sync::lock;

/// Longest output line forwarded to the log; longer lines are cut.
const MAX_LINE: u64 = 8 * 1024;

/// Environment variables of the worker a task inherits (everything else is cleared).
const INHERITED_ENV: [&str; 7] = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "RUST_LOG"];

/// Label with the pid of the worker process that started the task (orphan detection, here and in the
/// built-in operators, which stop once their parent is no longer that process).
const WORKER_PID: &str = crate::operators::PARENT_PID_VARIABLE;

struct Run {
    task_id: String,
    pid: u32,
    stop: Option<oneshot::Sender<()>>,
    done: watch::Receiver<bool>,
}

/// The `process` runtime.
pub struct ProcessRuntime {
    operators: BTreeMap<String, String>,
    exe: Option<PathBuf>,
    grace: Duration,
    runs: Arc<Mutex<HashMap<String, Run>>>,
    exits: ExitChannel,
    next_run: AtomicU64,
}

impl std::fmt::Debug for ProcessRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessRuntime").field("operators", &self.operators).finish_non_exhaustive()
    }
}

/// The image's name without its tag (`host:5000/a/b:1` → `host:5000/a/b`).
pub fn image_name(image: &str) -> &str {
    match image.rfind(':') {
        Some(colon) if !image[colon..].contains('/') => &image[..colon],
        _ => image,
    }
}

impl ProcessRuntime {
    /// A runtime with the configured image → command-line map, stopping children with `grace` between SIGTERM
    /// and SIGKILL.
    pub fn new(operators: BTreeMap<String, String>, grace: Duration) -> Self {
        ProcessRuntime {
            operators,
            exe: std::env::current_exe().ok(),
            grace,
            runs: Arc::default(),
            exits: ExitChannel::new(),
            next_run: AtomicU64::new(1),
        }
    }

    /// The program and arguments for an image.
    pub fn resolve(&self, image: &str) -> Result<(String, Vec<String>), RuntimeError> {
        let name = image_name(image);
        let unknown = || RuntimeError::UnknownImage { runtime: "process", image: image.to_string() };
        if let Some(line) = self.operators.get(image).or_else(|| self.operators.get(name)) {
            let mut words = line.split_whitespace().map(str::to_string);
            let program = words.next().ok_or_else(unknown)?;
            return Ok((program, words.collect()));
        }
        let builtin = name
            .strip_prefix("fogflow/")
            .and_then(|short| OperatorName::value_variants().iter().find(|op| op.as_str() == short));
        match (builtin, &self.exe) {
            (Some(op), Some(exe)) => {
                Ok((exe.to_string_lossy().into_owned(), vec!["operator".into(), op.as_str().to_string()]))
            }
            _ => Err(unknown()),
        }
    }

    async fn spawn(&self, mut spec: LaunchSpec) -> Result<Launched, RuntimeError> {
        let (program, args) = self.resolve(&spec.image)?;
        let mut command = Command::new(&program);
        command.args(&args).env_clear();
        for key in INHERITED_ENV {
            if let Ok(value) = std::env::var(key) {
                command.env(key, value);
            }
        }
        command.envs(spec.env()).env(WORKER_PID, std::process::id().to_string());
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0).kill_on_drop(true);
        let port = spec.port.port();
        spec.port.unbind();
        let describe = || format!("{program} {}", args.join(" "));
        let mut child =
            command.spawn().map_err(|error| RuntimeError::Spawn { command: describe(), reason: error.to_string() })?;
        let Some(pid) = child.id() else {
            return Err(RuntimeError::Spawn { command: describe(), reason: "exited at once".into() });
        };
        let run_id = format!("run-{}-{pid}", self.next_run.fetch_add(1, Ordering::Relaxed));
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(forward(stdout, spec.task_id.clone(), "stdout"));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(forward(stderr, spec.task_id.clone(), "stderr"));
        }
        let (stop, stop_requested) = oneshot::channel();
        let (done_sender, done) = watch::channel(false);
        lock(&self.runs).insert(run_id.clone(), Run { task_id: spec.task_id.clone(), pid, stop: Some(stop), done });
        spawn_watchdog(pid, std::process::id());
        tracing::info!(task = %spec.task_id, pid, command = %describe(), port, "task process started");
        let reaper = Reaper {
            child,
            pid,
            task_id: spec.task_id,
            run_id: run_id.clone(),
            grace: self.grace,
            runs: self.runs.clone(),
            exits: self.exits.sender(),
            _port: spec.port,
        };
        tokio::spawn(reaper.watch(stop_requested, done_sender));
        Ok(Launched { run_id, container_id: pid.to_string(), pid: Some(pid), port })
    }

    async fn stop_run(&self, run_id: &str) -> Result<(), RuntimeError> {
        let (stop, mut done) = {
            let mut runs = lock(&self.runs);
            let run = runs.get_mut(run_id).ok_or_else(|| RuntimeError::NotFound(run_id.to_string()))?;
            (run.stop.take(), run.done.clone())
        };
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        // Resolves once the reaper has seen the exit (or is gone).
        let _ = done.wait_for(|finished| *finished).await;
        Ok(())
    }

    /// Kills the task processes a previous worker process with this id left behind (they carry its id in their
    /// environment and their parent is no longer that worker). Linux only (`/proc`); returns how many.
    pub fn cleanup_leftovers(worker_id: &str) -> usize {
        let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
        let me = std::process::id();
        let wanted = format!("{}={worker_id}", labels::WORKER_ID);
        let mut killed = 0;
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else { continue };
            if pid == me {
                continue;
            }
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else { continue };
            let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
            if !vars.contains(&wanted.as_bytes()) {
                continue;
            }
            let starter = vars
                .iter()
                .filter_map(|var| std::str::from_utf8(var).ok())
                .find_map(|var| var.strip_prefix(WORKER_PID).and_then(|rest| rest.strip_prefix('=')))
                .and_then(|text| text.parse::<u32>().ok());
            let Some((parent, group)) = parent_and_group(pid) else { continue };
            if starter == Some(parent) {
                continue; // its worker is alive: not an orphan
            }
            tracing::warn!(pid, worker = worker_id, "killing a task process left behind by an earlier worker");
            let target = if group == pid { format!("-{group}") } else { pid.to_string() };
            let _ = std::process::Command::new("kill")
                .args(["-s", "KILL", "--", &target])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            killed += 1;
        }
        killed
    }
}

/// Seconds between the watchdog's checks that the worker is alive.
const WATCHDOG_PERIOD_SECS: u32 = 1;

/// Joins a small `sh` loop to the task's process group that kills the group once the worker process is gone,
/// so a task does not outlive a worker that was killed without a chance to stop it (SIGKILL, OOM). Stopping the
/// group normally ends the watchdog too. Best effort: without `sh` the task just lacks this guard.
fn spawn_watchdog(pgid: u32, worker_pid: u32) {
    let script =
        format!("while kill -0 \"$1\" 2>/dev/null; do sleep {WATCHDOG_PERIOD_SECS}; done; kill -s KILL -- -\"$2\"");
    let Ok(group) = i32::try_from(pgid) else { return };
    let spawned = Command::new("sh")
        .args(["-c", &script, "fogflow-task-watchdog", &worker_pid.to_string(), &pgid.to_string()])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(group)
        .spawn();
    match spawned {
        Ok(mut watchdog) => {
            tokio::spawn(async move {
                let _ = watchdog.wait().await;
            });
        }
        Err(error) => tracing::warn!(pgid, %error, "cannot start the task watchdog"),
    }
}

/// `(ppid, pgrp)` from `/proc/<pid>/stat`.
fn parent_and_group(pid: u32) -> Option<(u32, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(1);
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
}

impl Drop for ProcessRuntime {
    fn drop(&mut self) {
        for run in lock(&self.runs).values() {
            kill_group_now(run.pid);
        }
    }
}

fn kill_group_now(pgid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

async fn signal_group(pgid: u32, signal: &str) {
    let status = Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    if let Err(error) = status {
        tracing::warn!(pgid, signal, %error, "cannot signal a task's process group");
    }
}

struct Reaper {
    child: Child,
    pid: u32,
    task_id: String,
    run_id: String,
    grace: Duration,
    runs: Arc<Mutex<HashMap<String, Run>>>,
    exits: mpsc::UnboundedSender<ExitEvent>,
    _port: super::PortLease,
}

impl Reaper {
    async fn watch(mut self, stop: oneshot::Receiver<()>, done: watch::Sender<bool>) {
        let mut requested = false;
        let status = tokio::select! {
            status = self.child.wait() => status,
            Ok(()) = stop => {
                requested = true;
                signal_group(self.pid, "TERM").await;
                match tokio::time::timeout(self.grace, self.child.wait()).await {
                    Ok(status) => status,
                    Err(_) => {
                        tracing::warn!(task = %self.task_id, pid = self.pid, "task ignored SIGTERM; killing it");
                        signal_group(self.pid, "KILL").await;
                        let _ = self.child.start_kill();
                        self.child.wait().await
                    }
                }
            }
        };
        // Whatever the leader did, nothing of its group outlives it.
        signal_group(self.pid, "KILL").await;
        let (code, reason) = describe_exit(status);
        tracing::info!(task = %self.task_id, pid = self.pid, %reason, requested, "task process ended");
        lock(&self.runs).remove(&self.run_id);
        let _ = self.exits.send(ExitEvent {
            task_id: self.task_id.clone(),
            run_id: self.run_id.clone(),
            code,
            reason,
            requested,
        });
        let _ = done.send(true);
    }
}

fn describe_exit(status: std::io::Result<ExitStatus>) -> (Option<i32>, String) {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => (Some(code), format!("exited with code {code}")),
            (None, Some(signal)) => (None, format!("killed by signal {signal}")),
            (None, None) => (None, "ended".into()),
        },
        Err(error) => (None, format!("cannot wait for the process: {error}")),
    }
}

async fn forward(stream: impl AsyncRead + Unpin, task_id: String, name: &'static str) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader).take(MAX_LINE).read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                tracing::info!(target: "fogflow::task", task = %task_id, stream = name, "{}", text.trim_end());
            }
        }
    }
}

impl TaskRuntime for ProcessRuntime {
    fn kind(&self) -> &'static str {
        "process"
    }

    fn launch(&self, spec: LaunchSpec) -> BoxFuture<'_, Result<Launched, RuntimeError>> {
        Box::pin(self.spawn(spec))
    }

    fn stop<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(self.stop_run(run_id))
    }

    fn list(&self) -> BoxFuture<'_, Vec<RunningTask>> {
        let runs = lock(&self.runs)
            .iter()
            .map(|(run_id, run)| RunningTask {
                task_id: run.task_id.clone(),
                run_id: run_id.clone(),
                pid: Some(run.pid),
            })
            .collect();
        Box::pin(async move { runs })
    }

    fn take_exit_events(&self) -> Option<mpsc::UnboundedReceiver<ExitEvent>> {
        self.exits.take()
    }
}

#[cfg(test)]
mod tests;
