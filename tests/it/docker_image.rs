//! The container image, built the documented way (`scripts/image-rootfs.sh` + `Dockerfile`, `FROM scratch`, no
//! registry) from the binary under test, on the machine's Docker engine: the broker starts in it as the
//! unprivileged user, becomes ready, stores an entity in `/data`, keeps it across a graceful restart, and exits
//! with code 0 on `docker stop` (SIGTERM). The container and the image are removed afterwards, also on failure.
//!
//! Needs a running Docker engine. Without one the test fails when `CI=true` and is skipped with a printed reason
//! otherwise. The only address used is 127.0.0.1 (the container port published there by Docker).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The binary under test (cargo builds it for integration tests).
const BINARY: &str = env!("CARGO_BIN_EXE_fogflow");
/// The crate root: `Dockerfile` and `scripts/` live there.
const CRATE_DIR: &str = env!("CARGO_MANIFEST_DIR");
/// How long the broker may take to become ready in the container.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Seconds `docker stop` waits after SIGTERM before it sends SIGKILL (exit code 137, a failure here).
const STOP_TIMEOUT_SECS: &str = "30";

#[test]
fn broker_runs_in_the_scratch_image_and_stops_gracefully() {
    if let Err(reason) = docker_available() {
        let ci = std::env::var("CI").is_ok_and(|value| value.eq_ignore_ascii_case("true"));
        assert!(!ci, "CI=true but Docker is not usable, so the image test cannot run: {reason}");
        eprintln!("SKIPPED docker_image: Docker is not usable here ({reason}); CI=true makes this a failure");
        return;
    }

    let context = tempfile::tempdir().expect("temp dir for the build context");
    let rootfs = context.path().join("rootfs");
    let script = Path::new(CRATE_DIR).join("scripts/image-rootfs.sh");
    let mut rootfs_command = Command::new("bash");
    rootfs_command.arg(&script);
    if command_works("objcopy", &["--version"]) {
        // Debug sections make up most of a test build; the image does not need them.
        rootfs_command.arg("--strip");
    }
    run_ok(rootfs_command.arg(BINARY).arg(&rootfs));

    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    let tag = format!("fogflow-it-docker-image:{}-{nanos}", std::process::id());
    let mut cleanup = Cleanup { image: Some(tag.clone()), container: None };
    let dockerfile = Path::new(CRATE_DIR).join("Dockerfile");
    run_ok(Command::new("docker").args(["build", "-q", "-t", &tag, "-f"]).arg(&dockerfile).arg(context.path()));

    let user = docker_ok(&["image", "inspect", "-f", "{{.Config.User}}", &tag]);
    assert_eq!(user, "10001:10001", "the image must run as the unprivileged user");
    let entrypoint = docker_ok(&["image", "inspect", "-f", "{{json .Config.Entrypoint}}", &tag]);
    assert_eq!(entrypoint, r#"["/fogflow"]"#);

    let container = docker_ok(&[
        "run",
        "-d",
        "--label",
        "fogflow.test=docker_image",
        "-p",
        "127.0.0.1::8070",
        "-e",
        "FOGFLOW__BROKER__USE_DISCOVERY=false",
        &tag,
    ]);
    cleanup.container = Some(container.clone());

    let port = wait_ready(&container);
    eprintln!("docker_image: {tag} built; broker ready in container {container:.12} on 127.0.0.1:{port}");
    let (status, body) = http(port, "GET", "/version", None).expect("GET /version");
    assert_eq!(status, 200, "GET /version: {body}");
    let version: serde_json::Value = serde_json::from_str(&body).expect("/version answers JSON");
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"), "{body}");
    let (status, body) = http(port, "GET", "/health", None).expect("GET /health");
    assert_eq!(status, 200, "GET /health: {body}");

    // A write proves that the store under /data is writable by uid 10001.
    let update = r#"{"contextElements":[{"entityId":{"id":"Device.temp001","type":"Temperature","isPattern":false},
        "attributes":[{"name":"temp","type":"integer","value":10}],
        "domainMetadata":[{"name":"location","type":"point","value":{"latitude":49.406393,"longitude":8.684208}}]}],
        "updateAction":"UPDATE"}"#;
    let (status, body) = http(port, "POST", "/ngsi10/updateContext", Some(update)).expect("POST updateContext");
    assert_eq!(status, 200, "updateContext: {body}\n{}", logs(&container));

    stop_gracefully(&container);

    // Restarted, the same container reopens its store and still has the entity.
    docker_ok(&["start", &container]);
    let port = wait_ready(&container);
    let (status, body) = http(port, "GET", "/ngsi10/entity/Device.temp001", None).expect("GET entity");
    assert_eq!(status, 200, "entity lost across a graceful restart: {body}\n{}", logs(&container));
    assert!(body.contains("Device.temp001"), "{body}");
    stop_gracefully(&container);
    eprintln!("docker_image: both graceful stops exited 0 and the entity survived the restart");

    docker_ok(&["rm", &container]);
    cleanup.container = None;
    docker_ok(&["rmi", &tag]);
    cleanup.image = None;
    assert!(docker(&["image", "inspect", &tag]).is_err(), "image {tag} is still there");
    let left = docker_ok(&["ps", "-aq", "--filter", &format!("id={container}")]);
    assert!(left.is_empty(), "container {container} is still there");
}

/// Removes what the test created, also when it panics half-way.
struct Cleanup {
    image: Option<String>,
    container: Option<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(container) = self.container.take() {
            let _ = docker(&["rm", "-f", &container]);
        }
        if let Some(image) = self.image.take() {
            let _ = docker(&["rmi", "-f", &image]);
        }
    }
}

/// Whether a Docker engine answers, and if not why.
fn docker_available() -> Result<(), String> {
    docker(&["version", "--format", "{{.Server.Version}}"]).map(|_| ())
}

/// Runs `docker args`; stdout trimmed, or a description of the failure.
fn docker(args: &[&str]) -> Result<String, String> {
    let output = Command::new("docker").args(args).output().map_err(|error| format!("cannot run docker: {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(format!("docker {} failed ({}): {}", args.join(" "), output.status, describe(&output)))
    }
}

fn docker_ok(args: &[&str]) -> String {
    docker(args).unwrap_or_else(|error| panic!("{error}"))
}

fn run_ok(command: &mut Command) -> Output {
    let shown = format!("{command:?}");
    let output = command.output().unwrap_or_else(|error| panic!("cannot run {shown}: {error}"));
    assert!(output.status.success(), "{shown} failed ({}): {}", output.status, describe(&output));
    output
}

fn command_works(program: &str, args: &[&str]) -> bool {
    Command::new(program).args(args).output().is_ok_and(|output| output.status.success())
}

fn describe(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn logs(container: &str) -> String {
    match Command::new("docker").args(["logs", "--tail", "50", container]).output() {
        Ok(output) => format!("container logs:\n{}", describe(&output)),
        Err(error) => format!("(no container logs: {error})"),
    }
}

/// Waits until the container's broker answers `GET /ready` with 200; returns the published port on 127.0.0.1.
fn wait_ready(container: &str) -> u16 {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut last = String::from("no answer yet");
    loop {
        let running = docker_ok(&["inspect", "-f", "{{.State.Running}}", container]);
        assert_eq!(running, "true", "the container stopped before it was ready ({last})\n{}", logs(container));
        // The published port can change when a container is started again, so read it every time.
        let port = published_port(container);
        match http(port, "GET", "/ready", None) {
            Ok((200, _)) => return port,
            Ok((status, body)) => last = format!("GET /ready answered {status}: {body}"),
            Err(error) => last = format!("GET /ready failed: {error}"),
        }
        assert!(Instant::now() < deadline, "not ready within {READY_TIMEOUT:?}: {last}\n{}", logs(container));
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The host port Docker published the container's 8070 on (`127.0.0.1:49153` → 49153).
fn published_port(container: &str) -> u16 {
    let mapping = docker_ok(&["port", container, "8070/tcp"]);
    let first = mapping.lines().next().unwrap_or_default();
    let (host, port) = first.rsplit_once(':').unwrap_or_else(|| panic!("unexpected `docker port` output {mapping:?}"));
    assert_eq!(host, "127.0.0.1", "the port must be published on 127.0.0.1 only: {mapping}");
    port.parse().unwrap_or_else(|_| panic!("unexpected `docker port` output {mapping:?}"))
}

/// `docker stop` sends SIGTERM; the process must drain and exit 0 before the timeout would SIGKILL it (137).
fn stop_gracefully(container: &str) {
    docker_ok(&["stop", "-t", STOP_TIMEOUT_SECS, container]);
    let state = docker_ok(&["inspect", "-f", "{{.State.ExitCode}} {{.State.OOMKilled}}", container]);
    assert_eq!(state, "0 false", "a graceful stop must exit with code 0 (exit code, OOM killed)\n{}", logs(container));
}

/// A minimal HTTP/1.1 client for 127.0.0.1: one request per connection; returns the status and the body.
fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> std::io::Result<(u16, String)> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let body = body.unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let invalid = |what: &str| {
        std::io::Error::new(ErrorKind::InvalidData, format!("{what}: {:?}", String::from_utf8_lossy(&raw)))
    };
    if raw.is_empty() {
        // Docker's port proxy accepts and closes while nothing listens in the container yet.
        return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "connection closed without a response"));
    }
    let split = raw.windows(4).position(|window| window == b"\r\n\r\n").ok_or_else(|| invalid("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut content = raw[split + 4..].to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| invalid("no status line"))?;
    let chunked = head.lines().any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("transfer-encoding") && value.to_ascii_lowercase().contains("chunked")
        })
    });
    if chunked {
        content = dechunk(&content).ok_or_else(|| invalid("bad chunked body"))?;
    }
    Ok((status, String::from_utf8_lossy(&content).to_string()))
}

/// Decodes a `Transfer-Encoding: chunked` body.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = data.windows(2).position(|window| window == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}
