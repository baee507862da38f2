//! NGSIv2 `Fiware-ServicePath` against the real binary, as Orion does it: Orion's syntax errors (400
//! `BadRequest` with Orion's descriptions), entities created in one path, reads scoped by a path, a `/#`
//! subtree or a comma list (no header = every path), writes naming exactly one path (no header = `/`),
//! isolation between paths, NGSI10 and NGSI-LD seeing every path, subscriptions scoped by the path they were
//! created with and notifying with the entity's `Fiware-ServicePath` (asserted at a real sink), subscription
//! listings by path, and everything (a PATCHed subscription's scope too) surviving a restart.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{Broker, Recorded, Resp, Sink};
use crate::ngsiv2_entities::assert_v2_error;

const WAIT: Duration = Duration::from_secs(10);

fn at(path: &str) -> Vec<(&'static str, &str)> {
    vec![("Fiware-ServicePath", path)]
}

fn send(broker: &Broker, method: &str, url: &str, body: Option<&Value>, path: Option<&str>) -> Resp {
    let headers = path.map(at).unwrap_or_default();
    broker.request(method, url, body.map(Value::to_string).as_deref(), &headers)
}

/// As [`send`], for a request refused before its body is read: the broker then closes the connection, so the
/// client must not reuse it.
fn send_refused(broker: &Broker, method: &str, url: &str, body: Option<&Value>, path: &str) -> Resp {
    let headers = [("Fiware-ServicePath", path), ("Connection", "close")];
    broker.request(method, url, body.map(Value::to_string).as_deref(), &headers)
}

fn create(broker: &Broker, id: &str, path: Option<&str>) {
    let entity = json!({"id": id, "type": "Tree", "height": {"type": "Number", "value": 3}});
    let response = send(broker, "POST", "/v2/entities", Some(&entity), path);
    assert_eq!(response.status, 201, "{id} in {path:?}: {response:?}");
}

/// The ids `GET /v2/entities` lists with this header (sorted).
fn ids(broker: &Broker, path: Option<&str>) -> Vec<String> {
    let response = send(broker, "GET", "/v2/entities?limit=100", None, path);
    assert_eq!(response.status, 200, "{path:?}: {response:?}");
    let mut ids: Vec<String> =
        response.json().as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    ids
}

/// The garden: `Root` in `/`, `Madrid` in `/Madrid`, `North` in `/Madrid/Gardens/North`, `Parterre` in
/// `/Madrid/Gardens/North/Parterre1`, `South` in `/Madrid/Gardens/South`, `Latina` in `/Madrid/Districts`.
fn garden(broker: &Broker) {
    create(broker, "Root", None);
    create(broker, "Madrid", Some("/Madrid"));
    create(broker, "North", Some("/Madrid/Gardens/North"));
    create(broker, "Parterre", Some("/Madrid/Gardens/North/Parterre1/"));
    create(broker, "South", Some("/Madrid/Gardens/South"));
    create(broker, "Latina", Some(" /Madrid/Districts"));
}

#[test]
fn bad_service_paths_are_refused_with_orions_errors() {
    let broker = Broker::start();
    let entity = json!({"id": "T1", "type": "Tree"});
    let cases = [
        ("sdffsfs", "Only /absolute/ Service Paths allowed [a service path must begin with /]"),
        ("/service,sr", "Only /absolute/ Service Paths allowed [a service path must begin with /]"),
        ("/a/b/c/d/e/f/g/h/i/j/k", "too many components in ServicePath"),
        ("/a,/b,/c,/d,/e,/f,/g,/h,/i,/j,/k", "too many service paths - a maximum of ten service paths is allowed"),
        (&format!("/{}", "x".repeat(51)), "component-name too long in ServicePath"),
        ("/a-b", "a component of ServicePath contains an illegal character"),
        ("/a/b#", "a component of ServicePath contains an illegal character"),
        ("/a//b", "empty component in ServicePath"),
    ];
    for (path, description) in cases {
        for (method, url, body) in [
            ("GET", "/v2/entities", None),
            ("POST", "/v2/entities", Some(&entity)),
            ("GET", "/v2/entities/T1", None),
            ("POST", "/v2/subscriptions", None),
        ] {
            let response = send_refused(&broker, method, url, body, path);
            let error = assert_v2_error(&response, 400, "BadRequest");
            assert_eq!(error["description"], description, "{method} {url} with {path}");
        }
    }
    // Reads take up to ten paths and subtrees; writes take exactly one plain path.
    assert_eq!(send(&broker, "GET", "/v2/entities", None, Some("/a/#, /b")).status, 200);
    let several = send_refused(&broker, "POST", "/v2/entities", Some(&entity), "/a,/b");
    let error = assert_v2_error(&several, 400, "BadRequest");
    assert_eq!(error["description"], "more than one service path in context update request");
    let subtree = send_refused(&broker, "POST", "/v2/entities", Some(&entity), "/a/#");
    assert_eq!(assert_v2_error(&subtree, 400, "BadRequest")["description"], "Bad Character in Service-Path");
    let batch = json!({"actionType": "append", "entities": [entity]});
    let batch = send_refused(&broker, "POST", "/v2/op/update", Some(&batch), "/a/#");
    assert_v2_error(&batch, 400, "BadRequest");
    assert_eq!(ids(&broker, None), Vec::<String>::new(), "nothing was written");
}

#[test]
fn queries_are_scoped_by_paths_subtrees_and_lists() {
    let broker = Broker::start();
    garden(&broker);
    let all = ["Latina", "Madrid", "North", "Parterre", "Root", "South"];
    assert_eq!(ids(&broker, None), all, "no header: every path (/#)");
    assert_eq!(ids(&broker, Some("/#")), all);
    assert_eq!(ids(&broker, Some("/")), ["Root"], "/ alone is the root only");
    assert_eq!(ids(&broker, Some("/Madrid")), ["Madrid"]);
    assert_eq!(ids(&broker, Some("/Madrid/Gardens/North/#")), ["North", "Parterre"]);
    assert_eq!(ids(&broker, Some("/Madrid/Gardens/#")), ["North", "Parterre", "South"]);
    assert_eq!(ids(&broker, Some("/Madrid/Gardens")), Vec::<String>::new(), "no entity lives in /Madrid/Gardens");
    assert_eq!(ids(&broker, Some("/Madrid/Gardens/North, /Madrid/Districts")), ["Latina", "North"]);
    assert_eq!(ids(&broker, Some("/Madrid/Gar/#")), Vec::<String>::new(), "a subtree is by whole levels");
    let counted = send(&broker, "GET", "/v2/entities?options=count", None, Some("/Madrid/#"));
    assert_eq!(counted.header("fiware-total-count"), Some("5"), "{counted:?}");

    // GET by id, attributes and values, and POST /v2/op/query, in the same scope.
    assert_eq!(send(&broker, "GET", "/v2/entities/North", None, Some("/Madrid/#")).status, 200);
    assert_eq!(send(&broker, "GET", "/v2/entities/North", None, None).status, 200);
    assert_v2_error(&send(&broker, "GET", "/v2/entities/North", None, Some("/Madrid/Gardens/South")), 404, "NotFound");
    assert_v2_error(&send(&broker, "GET", "/v2/entities/North/attrs", None, Some("/")), 404, "NotFound");
    let value = send(&broker, "GET", "/v2/entities/North/attrs/height/value", None, Some("/Madrid/Gardens/North"));
    assert_eq!(value.status, 200, "{value:?}");
    let query = json!({"entities": [{"idPattern": ".*", "type": "Tree"}]});
    let found = send(&broker, "POST", "/v2/op/query", Some(&query), Some("/Madrid/Gardens/#"));
    let found: Vec<Value> = found.json().as_array().unwrap().iter().map(|e| e["id"].clone()).collect();
    assert_eq!(found, [json!("North"), json!("Parterre"), json!("South")]);
}

#[test]
fn writes_go_to_one_path_and_paths_are_isolated() {
    let broker = Broker::start();
    create(&broker, "T1", Some("/park"));
    let patch = json!({"height": {"type": "Number", "value": 4}});
    // Without the header a write is in `/`: the entity in /park is not found there, nor from another path.
    for path in [None, Some("/"), Some("/garden"), Some("/park/inner")] {
        let patched = send(&broker, "PATCH", "/v2/entities/T1/attrs", Some(&patch), path);
        assert_v2_error(&patched, 404, "NotFound");
        assert_v2_error(&send(&broker, "DELETE", "/v2/entities/T1", None, path), 404, "NotFound");
        let value = send(&broker, "PUT", "/v2/entities/T1/attrs/height/value", Some(&json!(9)), path);
        assert_v2_error(&value, 404, "NotFound");
    }
    let batch = json!({"actionType": "update", "entities": [{"id": "T1", "height": {"value": 5}}]});
    assert_v2_error(&send(&broker, "POST", "/v2/op/update", Some(&batch), Some("/garden")), 404, "NotFound");
    // One id is one entity per tenant here: creating it in another path is refused (Orion would make a second).
    let again = json!({"id": "T1", "type": "Tree"});
    let elsewhere = send(&broker, "POST", "/v2/entities", Some(&again), Some("/garden"));
    assert_eq!(assert_v2_error(&elsewhere, 422, "Unprocessable")["description"], "Already Exists");
    let upsert = send(&broker, "POST", "/v2/entities?options=upsert", Some(&again), None);
    assert_v2_error(&upsert, 422, "Unprocessable");
    let shown = send(&broker, "GET", "/v2/entities/T1?options=keyValues", None, Some("/park"));
    assert_eq!(shown.json(), json!({"id": "T1", "type": "Tree", "height": 3}), "nothing was written");

    // In its own path every write works.
    assert_eq!(send(&broker, "PATCH", "/v2/entities/T1/attrs", Some(&patch), Some("/park/")).status, 204);
    let batch = json!({"actionType": "append", "entities": [{"id": "T1", "leaves": {"value": 100}}]});
    assert_eq!(send(&broker, "POST", "/v2/op/update", Some(&batch), Some("/park")).status, 204);
    let shown = send(&broker, "GET", "/v2/entities/T1?options=keyValues", None, Some("/park"));
    assert_eq!(shown.json(), json!({"id": "T1", "type": "Tree", "height": 4, "leaves": 100}));
    assert_eq!(send(&broker, "DELETE", "/v2/entities/T1", None, Some("/park")).status, 204);
    assert_eq!(ids(&broker, None), Vec::<String>::new());

    // The same id can then live in another path.
    create(&broker, "T1", Some("/garden"));
    assert_eq!(ids(&broker, Some("/park")), Vec::<String>::new());
    assert_eq!(ids(&broker, Some("/garden")), ["T1"]);
}

#[test]
fn ngsi10_and_ngsi_ld_see_every_path_and_write_in_place() {
    let broker = Broker::start();
    create(&broker, "urn:ngsi-ld:Tree:1", Some("/park"));
    let ngsi10 = broker.get("/ngsi10/entity/urn:ngsi-ld:Tree:1");
    assert_eq!(ngsi10.status, 200, "{ngsi10:?}");
    let ld = broker.request("GET", "/ngsi-ld/v1/entities/urn:ngsi-ld:Tree:1", None, &at("/other"));
    assert_eq!(ld.status, 200, "NGSI-LD ignores Fiware-ServicePath: {ld:?}");
    // An NGSI10 update keeps the entity in its path.
    broker.update_ok(
        "UPDATE",
        &[json!({"entityId": {"id": "urn:ngsi-ld:Tree:1", "type": "Tree"},
            "attributes": [{"name": "height", "type": "Number", "value": 7}]})],
    );
    let ld_patch = json!({"height": {"type": "Property", "value": 8}});
    let patched = broker.request(
        "PATCH",
        "/ngsi-ld/v1/entities/urn:ngsi-ld:Tree:1/attrs",
        Some(&ld_patch.to_string()),
        &[("Content-Type", "application/json")],
    );
    assert_eq!(patched.status, 204, "{patched:?}");
    let shown = send(&broker, "GET", "/v2/entities/urn:ngsi-ld:Tree:1?options=keyValues", None, Some("/park"));
    assert_eq!(shown.json()["height"], 8, "{shown:?}");
    assert_eq!(ids(&broker, Some("/")), Vec::<String>::new(), "still in /park");
    // NGSI10 and NGSI-LD creations live in `/`.
    broker.update_ok("APPEND", &[json!({"entityId": {"id": "Root", "type": "Tree"}, "attributes": []})]);
    assert_eq!(ids(&broker, Some("/")), ["Root"]);
}

fn notified_ids(notification: &Recorded) -> Vec<String> {
    let body = notification.json();
    body["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
}

fn subscribe(broker: &Broker, sink: &Sink, name: &str, path: Option<&str>) -> String {
    let body = json!({"subject": {"entities": [{"idPattern": ".*"}]},
        "notification": {"http": {"url": format!("{}/{name}", sink.url())}}});
    let response = send(broker, "POST", "/v2/subscriptions?options=skipInitialNotification", Some(&body), path);
    assert_eq!(response.status, 201, "{response:?}");
    response.header("location").unwrap().trim_start_matches("/v2/subscriptions/").to_string()
}

#[test]
fn subscriptions_are_scoped_by_their_path_and_notify_with_the_entitys_path() {
    let broker = Broker::start();
    let sink = Sink::start();
    let madrid = subscribe(&broker, &sink, "madrid", Some("/Madrid/#"));
    let north = subscribe(&broker, &sink, "north", Some("/Madrid/Gardens/North"));
    let any = subscribe(&broker, &sink, "any", None);
    create(&broker, "Root", None);
    create(&broker, "North", Some("/Madrid/Gardens/North"));
    create(&broker, "South", Some("/Madrid/Gardens/South"));
    let where_is = |id: &str| match id {
        "Root" => "/",
        "North" => "/Madrid/Gardens/North",
        _ => "/Madrid/Gardens/South",
    };
    // Notifications may be batched: each carries the paths of its entities, in order, as Orion does.
    let seen = |requests: &[Recorded], name: &str| -> Vec<String> {
        let mut ids = Vec::new();
        for request in requests.iter().filter(|r| r.path == format!("/{name}")) {
            let notified = notified_ids(request);
            let mut paths: Vec<&str> = notified.iter().map(|id| where_is(id)).collect();
            paths.dedup();
            assert_eq!(request.header("fiware-servicepath"), Some(paths.join(",").as_str()), "{request:?}");
            ids.extend(notified);
        }
        ids.sort();
        ids
    };
    sink.wait_until(WAIT, "every notification", |requests| seen(requests, "any").len() == 3);
    sink.wait_until(WAIT, "every notification", |requests| seen(requests, "madrid").len() == 2);
    std::thread::sleep(Duration::from_millis(300));
    let requests = sink.requests();
    assert_eq!(seen(&requests, "madrid"), ["North", "South"]);
    assert_eq!(seen(&requests, "north"), ["North"]);
    assert_eq!(seen(&requests, "any"), ["North", "Root", "South"], "no header: every path");

    // Listing: every subscription without the header, those made with exactly that path with it; GET by id
    // ignores the header.
    let listed = |path: Option<&str>| -> Vec<String> {
        let response = send(&broker, "GET", "/v2/subscriptions", None, path);
        let mut ids: Vec<String> =
            response.json().as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
        ids.sort();
        ids
    };
    let mut everything = vec![madrid.clone(), north.clone(), any.clone()];
    everything.sort();
    assert_eq!(listed(None), everything);
    assert_eq!(listed(Some("/Madrid/#")), [madrid]);
    assert_eq!(listed(Some("/#")), [any]);
    assert_eq!(listed(Some("/Madrid")), Vec::<String>::new());
    let by_id = send(&broker, "GET", &format!("/v2/subscriptions/{north}"), None, Some("/elsewhere"));
    assert_eq!(by_id.status, 200, "{by_id:?}");
}

#[test]
fn initial_notifications_respect_the_path_and_paths_survive_a_restart() {
    let mut broker = Broker::start();
    let sink = Sink::start();
    create(&broker, "North", Some("/Madrid/Gardens/North"));
    create(&broker, "South", Some("/Madrid/Gardens/South"));
    let body = json!({"subject": {"entities": [{"idPattern": ".*"}]},
        "notification": {"http": {"url": format!("{}/initial", sink.url())}}});
    let created = send(&broker, "POST", "/v2/subscriptions", Some(&body), Some("/Madrid/Gardens/South"));
    assert_eq!(created.status, 201, "{created:?}");
    let first = sink.wait_until(WAIT, "the initial notification", |requests| !requests.is_empty());
    assert_eq!(notified_ids(&first[0]), ["South"]);
    assert_eq!(first[0].header("fiware-servicepath"), Some("/Madrid/Gardens/South"));

    // A PATCH (whatever its header) keeps the subscription's scope.
    let id = created.header("location").unwrap().trim_start_matches("/v2/subscriptions/").to_string();
    let patch = json!({"description": "south only"});
    let patched = send(&broker, "PATCH", &format!("/v2/subscriptions/{id}"), Some(&patch), Some("/elsewhere"));
    assert_eq!(patched.status, 204, "{patched:?}");

    broker.kill9();
    broker.restart();
    assert_eq!(ids(&broker, Some("/Madrid/Gardens/North")), ["North"], "entities keep their path");
    assert_eq!(ids(&broker, Some("/Madrid/Gardens/South")), ["South"]);
    let patch = json!({"height": {"type": "Number", "value": 5}});
    let north = send(&broker, "PATCH", "/v2/entities/North/attrs", Some(&patch), Some("/Madrid/Gardens/North"));
    assert_eq!(north.status, 204, "{north:?}");
    let south = send(&broker, "PATCH", "/v2/entities/South/attrs", Some(&patch), Some("/Madrid/Gardens/South"));
    assert_eq!(south.status, 204, "{south:?}");
    let requests = sink.wait_until(WAIT, "a notification after the restart", |requests| requests.len() >= 2);
    std::thread::sleep(Duration::from_millis(300));
    let requests = if requests.len() == 2 { sink.requests() } else { requests };
    assert_eq!(requests.len(), 2, "the subscription keeps its path: {requests:?}");
    assert_eq!(notified_ids(&requests[1]), ["South"]);
    assert_eq!(requests[1].header("fiware-servicepath"), Some("/Madrid/Gardens/South"));
    let listed = send(&broker, "GET", "/v2/subscriptions", None, Some("/Madrid/Gardens/South"));
    assert_eq!(listed.json().as_array().unwrap().len(), 1, "{listed:?}");
}
