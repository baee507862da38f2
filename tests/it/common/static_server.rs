//! A tiny static HTTP/1.1 server on 127.0.0.1:0 standing in for a JSON-LD context host: each path answers a
//! fixed status and body, at once or slowly, a redirect, or never answers (a stalled server); unknown paths answer 404. It counts the requests
//! of each path, so tests can see what was fetched and how often. One request per connection; stops when dropped.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a path answers.
#[derive(Debug, Clone)]
pub enum Serve {
    /// This status and body (`Content-Type: application/ld+json`).
    Body(u16, String),
    /// This body (status 200) after the given milliseconds.
    Slow(u64, String),
    /// Read the request, never answer (until the server is dropped).
    Stall,
    /// This redirect status with this `Location`.
    Redirect(u16, String),
}

struct Shared {
    routes: Mutex<HashMap<String, Serve>>,
    hits: Mutex<HashMap<String, usize>>,
    stop: AtomicBool,
}

/// The server; stops when dropped.
pub struct StaticServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    shared: Arc<Shared>,
}

impl StaticServer {
    /// A server answering `routes` (path → answer).
    pub fn start(routes: &[(&str, Serve)]) -> StaticServer {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind static server");
        let port = listener.local_addr().expect("static server addr").port();
        let shared = Arc::new(Shared {
            routes: Mutex::new(routes.iter().map(|(path, serve)| (path.to_string(), serve.clone())).collect()),
            hits: Mutex::new(HashMap::new()),
            stop: AtomicBool::new(false),
        });
        let (stop_shared, accept_shared) = (shared.clone(), shared.clone());
        super::accept_each(
            listener,
            move || stop_shared.stop.load(Ordering::SeqCst),
            move |stream| answer(stream, &accept_shared),
        );
        StaticServer { port, shared }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// How many requests `path` received.
    pub fn hits(&self, path: &str) -> usize {
        self.shared.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn answer(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(mut writer) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line.trim().is_empty() => break,
            Ok(_) => {}
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_string();
    *shared.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let serve = shared.routes.lock().unwrap().get(&path).cloned();
    let mut location = String::new();
    let (status, body) = match serve {
        Some(Serve::Body(status, body)) => (status, body),
        Some(Serve::Redirect(status, to)) => {
            location = format!("Location: {to}\r\n");
            (status, String::new())
        }
        Some(Serve::Slow(millis, body)) => {
            std::thread::sleep(Duration::from_millis(millis));
            (200, body)
        }
        Some(Serve::Stall) => {
            while !shared.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
            return;
        }
        None => (404, r#"{"error":"not found"}"#.to_string()),
    };
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/ld+json\r\n{location}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = writer.write_all(head.as_bytes()).and_then(|()| writer.write_all(body.as_bytes()));
}
