//! Graceful shutdown: SIGTERM exits with code 0 within the grace period with the data flushed; the listener
//! stops accepting while an in-flight request started before the signal still completes; a stalled
//! subscriber does not hold the exit past the grace period; a second signal exits at once with 130.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;

use crate::common::{attr, element, Broker, BrokerOptions, Reply, Sink};

#[test]
fn sigterm_exits_0_and_acknowledged_data_is_there_after_restart() {
    let mut broker = Broker::start();
    broker.update_ok("UPDATE", &[element("Term.1", "T", &[("v", "integer", json!(1))])]);
    let sid = broker.subscribe_ok(&json!({"entities":[{"id":"Term.1"}],"reference":"http://127.0.0.1:9"}));
    let status = broker.terminate(Duration::from_secs(15)).expect("no exit within 15 s of SIGTERM");
    assert_eq!(status.code(), Some(0), "exit status {status}; log:\n{}", broker.log());
    broker.restart();
    assert_eq!(attr(&broker.get("/ngsi10/entity/Term.1").json(), "v"), Some(json!(1)));
    assert_eq!(broker.get(&format!("/ngsi10/subscription/{sid}")).status, 200);
}

#[test]
fn in_flight_request_completes_during_graceful_shutdown() {
    let mut broker = Broker::start();
    let body =
        json!({"contextElements":[element("Flight.1", "T", &[("v", "integer", json!(7))])],"updateAction":"UPDATE"})
            .to_string();
    let (first, rest) = body.split_at(body.len() / 2);
    let mut stream = TcpStream::connect(("127.0.0.1", broker.port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST /ngsi10/updateContext HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(first.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    broker.signal("TERM");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        TcpStream::connect(("127.0.0.1", broker.port)).is_err(),
        "the listener still accepts new connections while draining"
    );
    stream.write_all(rest.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "in-flight request not completed: {answer:?}");

    let status = broker.wait_exit(Duration::from_secs(15)).expect("no exit within 15 s of SIGTERM");
    assert_eq!(status.code(), Some(0), "exit status {status}");
    broker.restart();
    assert_eq!(attr(&broker.get("/ngsi10/entity/Flight.1").json(), "v"), Some(json!(7)));
}

#[test]
fn stalled_subscriber_does_not_hold_shutdown_past_the_grace_period() {
    let mut broker = BrokerOptions::new()
        .env("FOGFLOW__SHUTDOWN_GRACE_SECS", 5)
        .env("FOGFLOW__BROKER__NOTIFICATION__TIMEOUT_MS", 60_000)
        .start();
    let stalled = Sink::with_reply(Reply::Stall);
    broker.subscribe_ok(&json!({"entities":[{"id":"Stall.1"}],"reference":stalled.url()}));
    broker.update_ok("UPDATE", &[element("Stall.1", "T", &[("v", "integer", json!(1))])]);
    stalled.wait_until(Duration::from_secs(10), "a delivery attempt", |requests| !requests.is_empty());
    let status = broker.terminate(Duration::from_secs(10)).expect("no exit within 10 s of SIGTERM with a 5 s grace");
    assert_eq!(status.code(), Some(0), "background delivery should be cancelled, not time out the drain: {status}");
    broker.restart();
    assert_eq!(attr(&broker.get("/ngsi10/entity/Stall.1").json(), "v"), Some(json!(1)));
}

#[test]
fn second_signal_exits_at_once_with_130() {
    let mut broker = BrokerOptions::new().env("FOGFLOW__SHUTDOWN_GRACE_SECS", 60).start();
    let mut stream = TcpStream::connect(("127.0.0.1", broker.port)).expect("connect");
    let head = "POST /ngsi10/updateContext HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"contextElements\":";
    stream.write_all(head.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    broker.signal("TERM");
    assert!(
        broker.wait_exit(Duration::from_millis(500)).is_none(),
        "exited at the first signal despite an in-flight request"
    );
    let status = broker.terminate(Duration::from_secs(5)).expect("no exit within 5 s of a second SIGTERM");
    assert_eq!(status.code(), Some(130), "exit status {status}");
    drop(stream);
}
