//! A tiny HTTPS/1.1 server on 127.0.0.1:0 with a throwaway certificate authority generated at start (nothing
//! secret is committed): it plays a JSON-LD context host (GET of a configured path answers its body) and a
//! notification subscriber (any other request is recorded and answered 200). Its CA certificate can be written
//! to a file for `tls.ca_file`. The certificate names `localhost` and `127.0.0.1`. One request per connection;
//! blocking threads; stops when dropped. Waits are bounded.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::sink::Recorded;

struct Shared {
    routes: HashMap<String, String>,
    hits: Mutex<HashMap<String, usize>>,
    recorded: Mutex<Vec<Recorded>>,
    arrived: Condvar,
    handshake_failures: Mutex<usize>,
    stop: AtomicBool,
}

/// The HTTPS server; stops when dropped.
pub struct TlsServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    ca_pem: String,
    shared: Arc<Shared>,
}

impl TlsServer {
    /// A server answering GET `routes` (path → JSON body) and recording everything else.
    pub fn start(routes: &[(&str, String)]) -> TlsServer {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "fogflow throwaway test CA");
        ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let key = rcgen::KeyPair::generate().expect("server key");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).expect("params");
        params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
        let cert = params.signed_by(&key, &ca, &ca_key).expect("server certificate");
        let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .expect("server config");
        let config = Arc::new(config);

        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind tls server");
        let port = listener.local_addr().expect("tls server addr").port();
        let shared = Arc::new(Shared {
            routes: routes.iter().map(|(path, body)| (path.to_string(), body.clone())).collect(),
            hits: Mutex::new(HashMap::new()),
            recorded: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            handshake_failures: Mutex::new(0),
            stop: AtomicBool::new(false),
        });
        let (stop_shared, accept_shared) = (shared.clone(), shared.clone());
        super::accept_each(
            listener,
            move || stop_shared.stop.load(Ordering::SeqCst),
            move |stream| serve(stream, config.clone(), &accept_shared),
        );
        TlsServer { port, ca_pem: ca.pem(), shared }
    }

    /// `https://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// Writes the CA certificate (PEM) into `dir`, answering the file.
    pub fn write_ca(&self, dir: &Path) -> PathBuf {
        let file = dir.join("test-ca.pem");
        std::fs::write(&file, &self.ca_pem).expect("write CA file");
        file
    }

    /// How many GETs of `path` were answered.
    pub fn hits(&self, path: &str) -> usize {
        self.shared.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// How many TLS handshakes failed (e.g. the client refused the certificate).
    pub fn handshake_failures(&self) -> usize {
        *self.shared.handshake_failures.lock().unwrap()
    }

    /// Waits up to `timeout` for a recorded request (not a GET of a served path) at `path`, panicking with what arrived otherwise.
    pub fn wait_for(&self, path: &str, timeout: Duration) -> Recorded {
        let deadline = Instant::now() + timeout;
        let mut recorded = self.shared.recorded.lock().unwrap();
        loop {
            if let Some(found) = recorded.iter().find(|r| r.path == path) {
                return found.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no request at {path} within {timeout:?}; got {:?}", *recorded);
            recorded = self.shared.arrived.wait_timeout(recorded, left).unwrap().0;
        }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(stream: TcpStream, config: Arc<ServerConfig>, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(connection) = ServerConnection::new(config) else { return };
    let mut tls = StreamOwned::new(connection, stream);
    while tls.conn.is_handshaking() {
        if tls.conn.complete_io(&mut tls.sock).is_err() {
            *shared.handshake_failures.lock().unwrap() += 1;
            return;
        }
    }
    let Some((method, path, headers, body)) = read_request(&mut tls) else { return };
    let answer = match (method.as_str(), shared.routes.get(&path)) {
        ("GET", Some(body)) => {
            *shared.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
            body.clone()
        }
        _ => {
            shared.recorded.lock().unwrap().push(Recorded {
                method,
                path,
                headers,
                body,
                at: Instant::now(),
                answered: Some(200),
            });
            shared.arrived.notify_all();
            "{}".to_string()
        }
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/ld+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        answer.len()
    );
    let _ = tls.write_all(head.as_bytes()).and_then(|()| tls.write_all(answer.as_bytes())).and_then(|()| tls.flush());
    tls.conn.send_close_notify();
    let _ = tls.conn.complete_io(&mut tls.sock);
}

type Request = (String, String, Vec<(String, String)>, String);

fn read_request(tls: &mut StreamOwned<ServerConnection, TcpStream>) -> Option<Request> {
    let mut reader = BufReader::new(tls);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) if line.trim().is_empty() => break,
            Ok(_) => {
                if let Some((name, value)) = line.split_once(':') {
                    headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
                }
            }
        }
    }
    let length = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((method, path, headers, String::from_utf8_lossy(&body).into_owned()))
}
