//! Request size and slow-client limits (reliability catalogue B1, B2, B15): a body over 1 MiB is refused with
//! 413 and an NGSI error, whether it declares its `Content-Length` or arrives chunked; nothing is stored, the
//! broker keeps serving, and a body just under the limit is accepted. A client that never finishes its
//! headers is disconnected (header-read timeout) while others are served.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{element, raw_exchange, Broker};

#[test]
fn oversized_body_is_refused_with_413_and_the_broker_keeps_serving() {
    let broker = Broker::start();
    let size = 2 * 1024 * 1024;
    let prefix = br#"{"contextElements":[{"entityId":{"id":"Big.1"},"attributes":[{"name":"blob","value":""#;
    let suffix = br#""}]}],"updateAction":"UPDATE"}"#;
    let mut body = prefix.to_vec();
    body.resize(size - suffix.len(), b'x');
    body.extend_from_slice(suffix);
    let head = format!(
        "POST /ngsi10/updateContext HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let (status, text) = raw_exchange(broker.port, &head, body);
    assert_eq!(status, 413, "answer to a 2 MiB body: {}", &text[..text.len().min(500)]);
    let json_start = text.find("\r\n\r\n").map(|i| &text[i + 4..]).unwrap_or_default();
    let error: Value = serde_json::from_str(json_start).unwrap_or(Value::Null);
    assert_eq!(error["errorCode"]["code"], "413", "413 answer is not an NGSI error: {text}");

    assert_eq!(broker.get("/health").status, 200);
    assert_eq!(broker.get("/ngsi10/entity/Big.1").status, 404, "the oversized entity was stored");
    broker.update_ok("UPDATE", &[element("Small.1", "T", &[("v", "integer", json!(1))])]);

    let just_under = 1024 * 1024 - 4096;
    let mut fitting = prefix.to_vec();
    fitting.resize(just_under - suffix.len(), b'y');
    fitting.extend_from_slice(suffix);
    let response = broker.post_raw("/ngsi10/updateContext", std::str::from_utf8(&fitting).unwrap());
    assert_eq!(
        response.status,
        200,
        "a body just under 1 MiB must be accepted: {}",
        &response.body[..response.body.len().min(300)]
    );
}

#[test]
fn chunked_body_over_the_limit_is_refused_too() {
    let broker = Broker::start();
    let head = "POST /ngsi10/updateContext HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    let chunk = vec![b' '; 64 * 1024];
    let mut body = Vec::new();
    for _ in 0..40 {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(&chunk);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let (status, text) = raw_exchange(broker.port, head, body);
    assert_eq!(status, 413, "answer to a 2.5 MiB chunked body: {}", &text[..text.len().min(500)]);
    assert_eq!(broker.get("/health").status, 200);
}

#[test]
fn client_that_never_finishes_its_headers_is_disconnected_while_others_are_served() {
    let broker = Broker::start();
    let mut slow = TcpStream::connect(("127.0.0.1", broker.port)).expect("connect");
    slow.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n").unwrap();
    let started = Instant::now();
    assert_eq!(broker.get("/health").status, 200, "other clients are served meanwhile");
    let mut buffer = [0u8; 256];
    let read = slow.read(&mut buffer);
    let answered = matches!(read, Ok(n) if n > 0 && buffer.starts_with(b"HTTP/1.1 408"));
    assert!(
        matches!(read, Ok(0)) || answered || matches!(&read, Err(e) if e.kind() == ErrorKind::ConnectionReset),
        "the half-sent request was not cut off: {read:?} {:?}",
        String::from_utf8_lossy(&buffer)
    );
    assert!(started.elapsed() < Duration::from_secs(25), "cut off only after {:?}", started.elapsed());
}
