//! Count and number limits of NGSI10 input (reliability catalogue B4, B6, B8; `src/ngsi/limits.rs`): attributes
//! per entity (also once merged with what is stored), elements per request, name lengths, polygon vertices,
//! numbers out of range, non-JSON literals, duplicate keys and a byte-order mark — all 400 with an NGSI error.

use serde_json::{json, Value};

use crate::common::{attr_names, ngsi_error_mismatch, Broker};

fn attributes(range: std::ops::Range<usize>) -> Vec<Value> {
    range.map(|i| json!({"name": format!("a{i}"), "type": "integer", "value": i})).collect()
}

fn update(id: &str, attributes: Vec<Value>) -> Value {
    json!({"contextElements":[{"entityId":{"id": id, "type": "W"}, "attributes": attributes}],"updateAction":"UPDATE"})
}

#[test]
fn oversized_counts_and_odd_json_are_rejected_with_400() {
    let broker = Broker::start();
    let many_elements: Vec<Value> = (0..10_001).map(|i| json!({"entityId":{"id": format!("E.{i}")}})).collect();
    let polygon: Vec<Value> =
        (0..20_000).map(|i| json!({"latitude": 1.0 + i as f64 * 1e-6, "longitude": 1.0})).collect();
    let up = "/ngsi10/updateContext";
    let cases: Vec<(&str, &str, String)> = vec![
        ("1001 attributes in one element", up, update("W.1", attributes(0..1001)).to_string()),
        (
            "10001 elements in one request",
            up,
            json!({"contextElements": many_elements, "updateAction": "UPDATE"}).to_string(),
        ),
        (
            "300-char attribute name",
            up,
            update("W.2", vec![json!({"name": "n".repeat(300), "value": 1})]).to_string(),
        ),
        (
            "empty metadata name",
            up,
            json!({"contextElements":[{"entityId":{"id":"W.3"},"domainMetadata":[{"name":"","value":1}]}],"updateAction":"UPDATE"})
                .to_string(),
        ),
        (
            "number out of range",
            up,
            r#"{"contextElements":[{"entityId":{"id":"N.1"},"attributes":[{"name":"a","value":1e999999}]}],"updateAction":"UPDATE"}"#.into(),
        ),
        (
            "NaN literal",
            up,
            r#"{"contextElements":[{"entityId":{"id":"N.1"},"attributes":[{"name":"a","value":NaN}]}],"updateAction":"UPDATE"}"#.into(),
        ),
        (
            "duplicate key",
            up,
            r#"{"contextElements":[{"entityId":{"id":"N.1","id":"N.2"}}],"updateAction":"UPDATE"}"#.into(),
        ),
        (
            "byte-order mark",
            up,
            "\u{feff}{\"contextElements\":[{\"entityId\":{\"id\":\"N.3\"}}],\"updateAction\":\"UPDATE\"}".into(),
        ),
        (
            "polygon of 20000 vertices",
            "/ngsi10/queryContext",
            json!({"entities":[{"id":".*","isPattern":true}],
                   "restriction":{"scopes":[{"scopeType":"polygon","scopeValue":{"vertices": polygon}}]}})
            .to_string(),
        ),
        (
            "two nearby scopes",
            "/ngsi10/queryContext",
            json!({"entities":[{"id":".*","isPattern":true}],"restriction":{"scopes":[
                {"scopeType":"nearby","scopeValue":{"latitude":1,"longitude":1}},
                {"scopeType":"nearby","scopeValue":{"latitude":2,"longitude":2}}]}})
            .to_string(),
        ),
    ];
    let mut problems = Vec::new();
    for (name, path, body) in cases {
        let response = broker.post_raw(path, &body);
        if let Some(problem) = ngsi_error_mismatch(&response, 400) {
            problems.push(format!("{name}: {problem}"));
        }
    }
    assert_eq!(broker.get("/ngsi10/entity").json(), json!([]), "a rejected request stored something");
    assert!(problems.is_empty(), "{} case(s) mishandled:\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn attribute_limit_holds_for_the_merged_entity() {
    let broker = Broker::start();
    let first = broker.post("/ngsi10/updateContext", &update("Wide.1", attributes(0..600)));
    assert_eq!(first.status, 200, "600 attributes are within the limit");
    let second = broker.post("/ngsi10/updateContext", &update("Wide.1", attributes(600..1200)));
    let stored = broker.get("/ngsi10/entity/Wide.1").json();
    let count = attr_names(&stored).len();
    assert!(
        count <= 1000,
        "the entity grew to {count} attributes by merging, past the limit of 1000 (second update answered {} {})",
        second.status,
        &second.body[..second.body.len().min(200)]
    );
    if let Some(problem) = ngsi_error_mismatch(&second, 400) {
        panic!("an update that would pass the attribute limit must be refused: {problem}");
    }
    assert_eq!(count, 600, "a refused update changed the entity");
}
