//! Bad inputs (reliability catalogue §4.1, B3–B8 as they apply to NGSI10): each is answered with the right
//! status and the NGSIv1 error body `{"errorCode":{"code":"400","reasonPhrase":…,"details":…}}` (code as a
//! string), never a 500 or a crash; unknown paths are 404 and wrong methods 405. Body size limits are in
//! `body_limits`. Every case is checked and all mismatches are reported together.

use serde_json::{json, Value};

use crate::common::{assert_ngsi_error, element, ngsi_error_mismatch, Broker};

struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    body: Option<String>,
    status: u16,
}

fn case(name: &'static str, path: &'static str, body: impl Into<String>, status: u16) -> Case {
    Case { name, method: "POST", path, body: Some(body.into()), status }
}

fn update_with(elements: Value) -> String {
    json!({"contextElements": elements, "updateAction": "UPDATE"}).to_string()
}

fn query_scope(scope: Value) -> String {
    json!({"entities":[{"id":".*","isPattern":true}],"restriction":{"scopes":[scope]}}).to_string()
}

fn query_pattern(pattern: &str) -> String {
    json!({"entities":[{"id": pattern, "isPattern": true}]}).to_string()
}

fn subscribe_with(extra: Value) -> String {
    let mut body = json!({"entities":[{"id":"Device.*","isPattern":true}],"reference":"http://127.0.0.1:9"});
    for (key, value) in extra.as_object().unwrap() {
        if value.is_null() {
            body.as_object_mut().unwrap().remove(key);
        } else {
            body[key] = value.clone();
        }
    }
    body.to_string()
}

fn cases() -> Vec<Case> {
    let valid = element("Ok.1", "T", &[("v", "integer", json!(1))]);
    let deep = format!(
        r#"{{"contextElements":[{{"entityId":{{"id":"Deep.1"}},"attributes":[{{"name":"a","value":{}{}}}]}}],"updateAction":"UPDATE"}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let up = "/ngsi10/updateContext";
    let query = "/ngsi10/queryContext";
    let sub = "/ngsi10/subscribeContext";
    vec![
        case("malformed JSON", up, r#"{"contextElements": [ {"entityId": "#, 400),
        case("not JSON at all", up, "hello", 400),
        case("empty body", up, "", 400),
        case("null body", up, "null", 400),
        case("array body", up, "[]", 400),
        case("empty object", up, "{}", 400),
        case("missing updateAction", up, json!({"contextElements":[valid]}).to_string(), 400),
        case("unknown updateAction", up, json!({"contextElements":[valid],"updateAction":"CRETAE"}).to_string(), 400),
        case("updateAction not a string", up, json!({"contextElements":[valid],"updateAction":5}).to_string(), 400),
        case(
            "contextElements is a string",
            up,
            json!({"contextElements":"x","updateAction":"UPDATE"}).to_string(),
            400,
        ),
        case(
            "isPattern maybe",
            up,
            update_with(json!([{"entityId":{"id":"A","isPattern":"maybe"},"attributes":[]}])),
            400,
        ),
        case(
            "missing entity id",
            up,
            update_with(json!([{"entityId":{"type":"T"},"attributes":[{"name":"v","value":1}]}])),
            400,
        ),
        case("element without entityId or id", up, update_with(json!([{"attributes":[{"name":"v","value":1}]}])), 400),
        case("empty entity id", up, update_with(json!([element("", "T", &[("v", "integer", json!(1))])])), 400),
        case("257-char entity id", up, update_with(json!([element(&"x".repeat(257), "T", &[])])), 400),
        case("control char in id", up, update_with(json!([element("a\u{0001}b", "T", &[])])), 400),
        case("NUL in id", up, update_with(json!([element("a\u{0000}b", "T", &[])])), 400),
        case("control char in type", up, update_with(json!([element("A.1", "T\u{0007}", &[])])), 400),
        case(
            "attribute without name",
            up,
            update_with(json!([{"entityId":{"id":"A.1"},"attributes":[{"value":1}]}])),
            400,
        ),
        case("empty attribute name", up, update_with(json!([element("A.1", "T", &[("", "integer", json!(1))])])), 400),
        case("attributes not a list", up, update_with(json!([{"entityId":{"id":"A.1"},"attributes":{"v":1}}])), 400),
        case("200 levels of nesting", up, deep, 400),
        case(
            "pattern in an update",
            up,
            update_with(json!([{"entityId":{"id":"A.*","isPattern":true},"attributes":[]}])),
            400,
        ),
        case(
            "lone surrogate",
            up,
            r#"{"contextElements":[{"entityId":{"id":"\ud800"}}],"updateAction":"UPDATE"}"#,
            400,
        ),
        case("trailing garbage after the JSON", up, format!("{} trailing", update_with(json!([valid]))), 400),
        case("query malformed JSON", query, "{\"entities\":", 400),
        case("query entities not a list", query, json!({"entities":"Device.*"}).to_string(), 400),
        case(
            "query latitude 91",
            query,
            query_scope(
                json!({"scopeType":"circle","scopeValue":{"centerLatitude":91,"centerLongitude":0,"radius":10}}),
            ),
            400,
        ),
        case(
            "query longitude 181",
            query,
            query_scope(
                json!({"scopeType":"circle","scopeValue":{"centerLatitude":0,"centerLongitude":181,"radius":10}}),
            ),
            400,
        ),
        case(
            "query negative radius",
            query,
            query_scope(
                json!({"scopeType":"circle","scopeValue":{"centerLatitude":0,"centerLongitude":0,"radius":-1}}),
            ),
            400,
        ),
        case(
            "query circle without centre",
            query,
            query_scope(json!({"scopeType":"circle","scopeValue":{"radius":10}})),
            400,
        ),
        case("query circle value a string", query, query_scope(json!({"scopeType":"circle","scopeValue":"here"})), 400),
        case(
            "query polygon with 2 vertices",
            query,
            query_scope(
                json!({"scopeType":"polygon","scopeValue":{"vertices":[{"latitude":1,"longitude":1},{"latitude":2,"longitude":2}]}}),
            ),
            400,
        ),
        case(
            "query polygon vertex out of range",
            query,
            query_scope(
                json!({"scopeType":"polygon","scopeValue":{"vertices":[{"latitude":1,"longitude":1},{"latitude":2,"longitude":2},{"latitude":95,"longitude":2}]}}),
            ),
            400,
        ),
        case(
            "query bad rectangle corner",
            query,
            query_scope(json!({"scopeType":"simplegeolocation","scopeValue":{"nw_Corner":"a,b","se_Corner":"1,1"}})),
            400,
        ),
        case("query unknown scopeType", query, query_scope(json!({"scopeType":"teleport","scopeValue":{}})), 400),
        case(
            "query stringQuery not a string",
            query,
            query_scope(json!({"scopeType":"stringQuery","scopeValue":5})),
            400,
        ),
        case(
            "query nearby negative limit",
            query,
            query_scope(json!({"scopeType":"nearby","scopeValue":{"latitude":1,"longitude":1,"limit":-3}})),
            400,
        ),
        case("query pattern (a{1000}){1000}", query, query_pattern("(a{1000}){1000}"), 400),
        case("query 2000-char pattern", query, query_pattern(&"a".repeat(2000)), 400),
        case("query pattern *.*", query, query_pattern("*.*"), 400),
        case("query 257-char exact id", query, json!({"entities":[{"id":"y".repeat(257)}]}).to_string(), 400),
        case("subscribe without reference", sub, subscribe_with(json!({"reference": null})), 400),
        case("subscribe with empty reference", sub, subscribe_with(json!({"reference": ""})), 400),
        case("subscribe with ftp reference", sub, subscribe_with(json!({"reference": "ftp://127.0.0.1/x"})), 400),
        case("subscribe with a non-URL reference", sub, subscribe_with(json!({"reference": "not a url"})), 400),
        case("subscribe with a bad duration", sub, subscribe_with(json!({"duration": "one hour"})), 400),
        case("subscribe with a bad throttling", sub, subscribe_with(json!({"throttling": "fast"})), 400),
        case(
            "subscribe with an absurd pattern",
            sub,
            subscribe_with(json!({"entities":[{"id":"(a{1000}){1000}","isPattern":true}]})),
            400,
        ),
        case(
            "subscribe with an invalid scope",
            sub,
            subscribe_with(
                json!({"restriction":{"scopes":[{"scopeType":"circle","scopeValue":{"centerLatitude":91,"centerLongitude":0,"radius":1}}]}}),
            ),
            400,
        ),
        case("subscribe malformed JSON", sub, "{\"entities\":[", 400),
        case("unsubscribe without id", "/ngsi10/unsubscribeContext", "{}", 400),
        case("unsubscribe malformed JSON", "/ngsi10/unsubscribeContext", "{", 400),
        case("unknown POST path under /ngsi10", "/ngsi10/nosuchOperation", "{}", 404),
        Case { name: "unknown GET path under /ngsi10", method: "GET", path: "/ngsi10/nosuch", body: None, status: 404 },
        Case { name: "GET on updateContext", method: "GET", path: "/ngsi10/updateContext", body: None, status: 405 },
        Case { name: "GET on queryContext", method: "GET", path: "/ngsi10/queryContext", body: None, status: 405 },
        Case {
            name: "PUT on subscribeContext",
            method: "PUT",
            path: "/ngsi10/subscribeContext",
            body: Some("{}".into()),
            status: 405,
        },
        Case {
            name: "POST on entity list",
            method: "POST",
            path: "/ngsi10/entity",
            body: Some("{}".into()),
            status: 405,
        },
    ]
}

#[test]
fn bad_inputs_get_ngsi_errors_and_never_a_500() {
    let broker = Broker::start();
    let mut problems = Vec::new();
    for case in cases() {
        let response = broker.request(case.method, case.path, case.body.as_deref(), &[]);
        if let Some(problem) = ngsi_error_mismatch(&response, case.status) {
            problems.push(format!("{} ({} {}): {problem}", case.name, case.method, case.path));
        }
        if broker.get("/health").status != 200 {
            problems.push(format!("{}: /health is no longer 200", case.name));
            break;
        }
    }
    assert_eq!(broker.get("/health").status, 200);
    broker.update_ok("UPDATE", &[element("Still.alive", "T", &[("v", "integer", json!(1))])]);
    assert_eq!(broker.get("/ngsi10/entity/Still.alive").status, 200);
    let listed = broker.get("/ngsi10/entity").json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "a rejected request stored something: {listed}");
    assert!(problems.is_empty(), "{} bad-input case(s) mishandled:\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn over_long_ids_in_resource_paths_are_rejected_not_looked_up() {
    let broker = Broker::start();
    let long_id = "z".repeat(257);
    for path in [
        format!("/ngsi10/entity/{long_id}"),
        format!("/ngsi10/entity/{long_id}/temp"),
        format!("/ngsi10/entity/ok/{long_id}"),
    ] {
        let response = broker.get(&path);
        assert_ngsi_error(&response, 400);
    }
    assert_ngsi_error(&broker.delete(&format!("/ngsi10/entity/{long_id}")), 400);
}
