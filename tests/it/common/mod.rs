//! Harness of the integration tests: runs the real `fogflow` binary as a child process on a free port with its
//! own temporary data directory, talks HTTP/1.1 to it on 127.0.0.1, and can stop it with SIGKILL or SIGTERM and
//! start it again on the same data. The child's stdout and stderr go to a log file that is printed when a test
//! fails. [`sink`] is the notification (and fake discovery) receiver.

pub mod sink;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub use sink::{Recorded, Reply, Sink};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_fogflow");
/// How long a started broker may take to answer `GET /ready` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Upper bound of any single HTTP exchange with the broker.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

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
    /// Body text.
    pub body: String,
}

impl Resp {
    /// The body as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("body is not JSON ({error}): status {} body {:?}", self.status, self.body))
    }
}

/// How to start a broker.
#[derive(Debug, Clone, Default)]
pub struct BrokerOptions {
    env: Vec<(String, String)>,
    args: Vec<String>,
    use_discovery: bool,
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
        let mut broker = Broker { port: free_port(), dir, options: self, child: None, agent };
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

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker is running").id()
    }

    fn spawn_and_wait(&mut self) {
        let log = File::options().create(true).append(true).open(self.log_path()).expect("open log file");
        let mut command = fogflow_command(self.dir.path());
        command
            .arg("--role")
            .arg("broker")
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(&self.options.args)
            .env("FOGFLOW__BROKER__HTTP_PORT", self.port.to_string())
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
                panic!("broker exited during start-up with {status}; log:\n{}", self.log());
            }
            if let Ok(response) = probe.get(&self.url("/ready")).call() {
                if response.status() == 200 {
                    return;
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
        let pid = self.pid().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill -TERM");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut().expect("broker is running");
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Starts the broker again on the same data directory (on a new free port) and waits until it is ready.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the broker before restarting it");
        self.port = free_port();
        self.spawn_and_wait();
    }

    /// One HTTP exchange; panics on a transport error (the broker must always answer).
    pub fn request(&self, method: &str, path: &str, body: Option<&str>, headers: &[(&str, &str)]) -> Resp {
        let mut request = self.agent.request(method, &self.url(path));
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
            Err(error) => panic!("{method} {path} failed at transport level: {error}; log:\n{}", self.log()),
        };
        let status = response.status();
        let content_type = response.header("content-type").map(str::to_string);
        let body = response.into_string().expect("read response body");
        Resp { status, content_type, body }
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
            eprintln!("----- broker log ({}) -----\n{}\n----- end of broker log -----", self.log_path().display(), self.log());
        }
    }
}

/// A FogFlow-shaped context element: `attributes` as `(name, type, value)`, optional `location` point and
/// extra domain metadata as `(name, type, value)`.
pub fn element(id: &str, entity_type: &str, attributes: &[(&str, &str, Value)]) -> Value {
    let attributes: Vec<Value> =
        attributes.iter().map(|(name, kind, value)| json!({"name": name, "type": kind, "value": value})).collect();
    json!({ "entityId": {"id": id, "type": entity_type, "isPattern": false}, "attributes": attributes })
}

/// `element` plus domain metadata `location` (a FogFlow point) and `city`.
pub fn located_element(id: &str, entity_type: &str, attributes: &[(&str, &str, Value)], lat: f64, lon: f64, city: &str) -> Value {
    let mut value = element(id, entity_type, attributes);
    value["domainMetadata"] = json!([
        {"name": "location", "type": "point", "value": {"latitude": lat, "longitude": lon}},
        {"name": "city", "type": "string", "value": city}
    ]);
    value
}

/// The canonical FogFlow update (spec §4.2): `Device.temp001` of type `Temperature`, `temp` = 10, in Heidelberg.
pub fn fogflow_sample() -> Value {
    json!({"contextElements":[{"entityId":{"id":"Device.temp001","type":"Temperature","isPattern":false},
      "attributes":[{"name":"temp","type":"integer","value":10}],
      "domainMetadata":[{"name":"location","type":"point","value":{"latitude":49.406393,"longitude":8.684208}},
                        {"name":"city","type":"string","value":"Heidelberg"}]}],
     "updateAction":"UPDATE"})
}

/// The value of attribute `name` of a context element.
pub fn attr(element: &Value, name: &str) -> Option<Value> {
    element["attributes"].as_array()?.iter().find(|a| a["name"] == name).map(|a| a["value"].clone())
}

/// The attribute names of a context element, sorted.
pub fn attr_names(element: &Value) -> Vec<String> {
    let mut names: Vec<String> = element["attributes"]
        .as_array()
        .map(|list| list.iter().filter_map(|a| a["name"].as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// The `contextElement`s of a query answer or a notification body.
pub fn elements(answer: &Value) -> Vec<Value> {
    answer["contextResponses"]
        .as_array()
        .map(|list| list.iter().map(|r| r["contextElement"].clone()).collect())
        .unwrap_or_default()
}

/// The entity ids of a query answer or a notification body, in order.
pub fn ids(answer: &Value) -> Vec<String> {
    elements(answer).iter().map(|e| e["entityId"]["id"].as_str().unwrap_or_default().to_string()).collect()
}

/// Sorted entity ids.
pub fn sorted_ids(answer: &Value) -> Vec<String> {
    let mut list = ids(answer);
    list.sort();
    list
}

/// Asserts an NGSIv1 error answer: the HTTP status, a JSON content type and
/// `{"errorCode":{"code":"<status>","reasonPhrase":…}}` with the code as a string; returns a description of
/// the mismatch instead of panicking so a test can collect several.
pub fn ngsi_error_mismatch(response: &Resp, status: u16) -> Option<String> {
    if response.status != status {
        return Some(format!("expected HTTP {status}, got {} body {:?}", response.status, response.body));
    }
    if !response.content_type.as_deref().is_some_and(|t| t.contains("json")) {
        return Some(format!("expected a JSON content type, got {:?} body {:?}", response.content_type, response.body));
    }
    let Ok(body) = serde_json::from_str::<Value>(&response.body) else {
        return Some(format!("body is not JSON: {:?}", response.body));
    };
    let code = &body["errorCode"]["code"];
    if code.as_str() != Some(status.to_string().as_str()) {
        return Some(format!("expected errorCode.code \"{status}\" (a string), got {body}"));
    }
    if !body["errorCode"]["reasonPhrase"].as_str().is_some_and(|text| !text.is_empty()) {
        return Some(format!("errorCode.reasonPhrase missing in {body}"));
    }
    if status == 400 && !body["errorCode"]["details"].as_str().is_some_and(|text| !text.is_empty()) {
        return Some(format!("errorCode.details missing in {body}"));
    }
    None
}

/// Panics unless `response` is the NGSIv1 error for `status`.
pub fn assert_ngsi_error(response: &Resp, status: u16) {
    if let Some(problem) = ngsi_error_mismatch(response, status) {
        panic!("{problem}");
    }
}

/// Sum of the Prometheus samples whose series text (name and labels, not `fogflow_http_*`) contains every
/// fragment (case-insensitive); `None` when no series matches.
pub fn metric_sum(text: &str, fragments: &[&str]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|line| !line.starts_with('#') && !line.trim().is_empty()) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let lower = series.to_ascii_lowercase();
        if lower.starts_with("fogflow_http_") || lower.contains("_bucket") {
            continue;
        }
        if fragments.iter().all(|fragment| lower.contains(&fragment.to_ascii_lowercase())) {
            if let Ok(number) = value.trim().parse::<f64>() {
                *found.get_or_insert(0.0) += number;
            }
        }
    }
    found
}

/// Finds the first value under `key` anywhere in `value` (depth-first).
pub fn find_key<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => map.get(key).or_else(|| map.values().find_map(|v| find_key(v, key))),
        Value::Array(list) => list.iter().find_map(|v| find_key(v, key)),
        _ => None,
    }
}

/// Sends `head` then `body` on a raw TCP connection (the body from another thread, ignoring write errors
/// since the server may answer early) and returns the status line's code and the response text.
pub fn raw_exchange(port: u16, head: &str, body: Vec<u8>) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    stream.write_all(head.as_bytes()).expect("write request head");
    let mut writer = stream.try_clone().expect("clone stream");
    let sender = std::thread::spawn(move || {
        for chunk in body.chunks(64 * 1024) {
            if writer.write_all(chunk).is_err() {
                break;
            }
        }
    });
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                received.extend_from_slice(&buffer[..n]);
                if response_complete(&received) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = sender.join();
    let text = String::from_utf8_lossy(&received).to_string();
    let status = text.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    (status, text)
}

fn response_complete(received: &[u8]) -> bool {
    let text = String::from_utf8_lossy(received);
    let Some((head, body)) = text.split_once("\r\n\r\n") else { return false };
    let length = head
        .lines()
        .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
        .and_then(|v| v.parse::<usize>().ok());
    length.is_some_and(|length| body.len() >= length)
}
