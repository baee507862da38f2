//! A tiny HTTP/1.1 server on 127.0.0.1:0 standing in for notification subscribers and for discovery: it
//! records every request (method, path, headers, body) and answers 200 with an NGSI `responseCode` body, or
//! another status, or 200 slowly, or never (a stalled subscriber), as the test chooses. Waits are bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How the sink answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// 200 `{"responseCode":{"code":200,"reasonPhrase":"OK"}}`.
    Ok,
    /// The given status with an error body.
    Status(u16),
    /// Read the request, record it, never answer (the connection stays open until the sink is dropped).
    Stall,
    /// Answer 200 after the given milliseconds (a slow subscriber).
    SlowOk(u64),
}

/// One received request.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `POST`, `GET`, …
    pub method: String,
    /// Path with query.
    pub path: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: String,
    /// When it was received.
    pub at: Instant,
    /// The status it was answered with (`None`: stalled).
    pub answered: Option<u16>,
}

impl Recorded {
    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// A header's value (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(key, _)| *key == name).map(|(_, value)| value.as_str())
    }
}

struct Shared {
    requests: Mutex<Vec<Recorded>>,
    arrived: Condvar,
    reply: Mutex<Reply>,
    stop: AtomicBool,
}

/// The recording server; stops when dropped.
pub struct Sink {
    /// Its port on 127.0.0.1.
    pub port: u16,
    shared: Arc<Shared>,
}

impl Sink {
    /// A sink answering 200.
    pub fn start() -> Sink {
        Sink::with_reply(Reply::Ok)
    }

    /// A sink answering as `reply` says.
    pub fn with_reply(reply: Reply) -> Sink {
        Sink::on_port(0, reply)
    }

    /// A sink on a given port of 127.0.0.1 (0: any free port).
    pub fn on_port(port: u16, reply: Reply) -> Sink {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind sink");
        let port = listener.local_addr().expect("sink addr").port();
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            reply: Mutex::new(reply),
            stop: AtomicBool::new(false),
        });
        let (stop_shared, accept_shared) = (shared.clone(), shared.clone());
        super::accept_each(
            listener,
            move || stop_shared.stop.load(Ordering::SeqCst),
            move |stream| serve_connection(stream, accept_shared.clone()),
        );
        Sink { port, shared }
    }

    /// `http://127.0.0.1:<port>` (a subscription `reference`; notifications arrive at `/notifyContext`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Changes how later requests are answered.
    pub fn set_reply(&self, reply: Reply) {
        *self.shared.reply.lock().unwrap() = reply;
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The `POST …/notifyContext` bodies so far, as JSON.
    pub fn notifications(&self) -> Vec<Value> {
        self.requests().iter().filter(|r| r.path.ends_with("/notifyContext")).map(Recorded::json).collect()
    }

    /// Waits (at most `timeout`) until `check` accepts the requests so far; panics listing them otherwise.
    pub fn wait_until(&self, timeout: Duration, what: &str, check: impl Fn(&[Recorded]) -> bool) -> Vec<Recorded> {
        let deadline = Instant::now() + timeout;
        let mut requests = self.shared.requests.lock().unwrap();
        loop {
            if check(&requests) {
                return requests.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                let listing: Vec<String> =
                    requests.iter().map(|r| format!("{} {} {}", r.method, r.path, r.body)).collect();
                panic!(
                    "timed out after {timeout:?} waiting for {what}; received {}:\n{}",
                    listing.len(),
                    listing.join("\n")
                );
            }
            requests = self.shared.arrived.wait_timeout(requests, deadline - now).unwrap().0;
        }
    }

    /// Waits until at least `count` notifications (`…/notifyContext`) arrived; returns their bodies.
    pub fn wait_notifications(&self, count: usize, timeout: Duration) -> Vec<Value> {
        self.wait_until(timeout, &format!("{count} notification(s)"), |requests| {
            requests.iter().filter(|r| r.path.ends_with("/notifyContext")).count() >= count
        });
        self.notifications()
    }

    /// Waits until a notification satisfies `check`; returns all notification bodies so far.
    pub fn wait_notification(&self, timeout: Duration, what: &str, check: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.wait_until(timeout, what, |requests| {
            requests.iter().filter(|r| r.path.ends_with("/notifyContext")).any(|r| check(&r.json()))
        });
        self.notifications()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while !shared.stop.load(Ordering::SeqCst) {
        let Some(mut request) = read_request(&mut reader, &shared.stop) else {
            return;
        };
        let close = request.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let reply = *shared.reply.lock().unwrap();
        let answer = match reply {
            Reply::Ok => Some((200, r#"{"responseCode":{"code":200,"reasonPhrase":"OK"}}"#.to_string())),
            Reply::Status(code) => {
                Some((code, format!(r#"{{"errorCode":{{"code":"{code}","reasonPhrase":"sink told to fail"}}}}"#)))
            }
            Reply::SlowOk(millis) => {
                std::thread::sleep(Duration::from_millis(millis));
                Some((200, r#"{"responseCode":{"code":200,"reasonPhrase":"OK"}}"#.to_string()))
            }
            Reply::Stall => None,
        };
        request.answered = answer.as_ref().map(|(status, _)| *status);
        {
            let mut requests = shared.requests.lock().unwrap();
            requests.push(request);
            shared.arrived.notify_all();
        }
        let Some((status, body)) = answer else {
            while !shared.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
            return;
        };
        let answer = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if writer.write_all(answer.as_bytes()).is_err() || close {
            return;
        }
    }
}

/// Reads one request; `None` on EOF, error or stop.
fn read_request(reader: &mut BufReader<TcpStream>, stop: &AtomicBool) -> Option<Recorded> {
    let mut head_lines = Vec::new();
    loop {
        let line = read_line_patiently(reader, stop)?;
        if line.is_empty() {
            if head_lines.is_empty() {
                continue;
            }
            break;
        }
        head_lines.push(line);
    }
    let at = Instant::now();
    let mut parts = head_lines[0].split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let headers: Vec<(String, String)> = head_lines[1..]
        .iter()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let header = |name: &str| headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
    let body = if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        read_chunked(reader, stop)?
    } else {
        let length = header("content-length").and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
        read_exact(reader, length, stop)?
    };
    Some(Recorded { method, path, headers, body: String::from_utf8_lossy(&body).to_string(), at, answered: None })
}

fn read_exact(reader: &mut BufReader<TcpStream>, length: usize, stop: &AtomicBool) -> Option<Vec<u8>> {
    let mut body = vec![0u8; length];
    let mut filled = 0;
    while filled < length {
        match reader.read(&mut body[filled..]) {
            Ok(0) => return None,
            Ok(n) => filled += n,
            Err(error) if is_timeout(&error) && !stop.load(Ordering::SeqCst) => continue,
            Err(_) => return None,
        }
    }
    Some(body)
}

fn read_line_patiently(reader: &mut BufReader<TcpStream>, stop: &AtomicBool) -> Option<String> {
    let mut line = String::new();
    loop {
        match reader.read_line(&mut line) {
            Ok(0) => return None,
            Ok(_) if line.ends_with('\n') => return Some(line.trim_end_matches(['\r', '\n']).to_string()),
            Ok(_) => continue,
            Err(error) if is_timeout(&error) && !stop.load(Ordering::SeqCst) => continue,
            Err(_) => return None,
        }
    }
}

fn read_chunked(reader: &mut BufReader<TcpStream>, stop: &AtomicBool) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let size_line = read_line_patiently(reader, stop)?;
        let size = usize::from_str_radix(size_line.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            loop {
                if read_line_patiently(reader, stop)?.is_empty() {
                    return Some(body);
                }
            }
        }
        body.extend(read_exact(reader, size, stop)?);
        read_line_patiently(reader, stop)?;
    }
}

fn is_timeout(error: &std::io::Error) -> bool {
    matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
}
