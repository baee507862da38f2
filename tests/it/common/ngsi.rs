//! NGSI10 payload builders and inspectors for the tests: context elements, the FogFlow sample, attribute and
//! id extraction, the NGSIv1 error-shape check, Prometheus sample sums, and a raw HTTP exchange for requests
//! `ureq` cannot make (oversized or chunked bodies).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};

use super::Resp;

/// A FogFlow-shaped context element with `attributes` given as `(name, type, value)`.
pub fn element(id: &str, entity_type: &str, attributes: &[(&str, &str, Value)]) -> Value {
    let attributes: Vec<Value> =
        attributes.iter().map(|(name, kind, value)| json!({"name": name, "type": kind, "value": value})).collect();
    json!({ "entityId": {"id": id, "type": entity_type, "isPattern": false}, "attributes": attributes })
}

/// `element` plus domain metadata `location` (a FogFlow point) and `city`.
pub fn located_element(
    id: &str,
    entity_type: &str,
    attributes: &[(&str, &str, Value)],
    lat: f64,
    lon: f64,
    city: &str,
) -> Value {
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
    let text_of = |key: &str| body["errorCode"][key].as_str().unwrap_or_default().to_string();
    if text_of("reasonPhrase").is_empty() {
        return Some(format!("errorCode.reasonPhrase missing in {body}"));
    }
    if status == 400 && text_of("details").is_empty() {
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
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
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
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
        .and_then(|v| v.parse::<usize>().ok());
    length.is_some_and(|length| body.len() >= length)
}
