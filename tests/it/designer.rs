//! The designer role on the real binary (`fogflow --role all`): system information and `config.js` (AT-1),
//! registry CRUD with FogFlow's answers (AT-2), the built-in seeds (written once, never over user changes),
//! validation errors that are 4xx JSON and never 500, persistence across SIGKILL (AT-12), devices and
//! subscriptions at the broker, fog function enable/disable, and the pass-through proxies.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::fogflow::{At, FogFlow};
use crate::common::{raw_exchange, wait_until, Resp};

const WAIT: Duration = Duration::from_secs(15);

fn assert_error(response: &Resp, status: u16, what: &str) {
    assert_eq!(response.status, status, "{what}: {response:?}");
    let body = response.json();
    assert!(body["error"].is_string() && body["description"].is_string(), "{what}: {body}");
}

fn dummy_topology(name: &str, operator: &str) -> Value {
    json!({"topology": {"name": name, "description": "test", "tasks": [{"name": "Main", "operator": operator,
        "input_streams": [{"selected_type": "Temperature", "selected_attributes": [], "groupby": "EntityID",
                           "scoped": false}],
        "output_streams": [{"entity_type": "Out"}]}]}, "designboard": {"blocks": [], "edges": []}})
}

fn device(id: &str) -> Value {
    json!({"id": id, "type": "Temperature",
        "attributes": {"temperature": {"type": "float", "value": 21.5}},
        "metadata": {"location": {"type": "point", "value": {"latitude": 35.7, "longitude": 139.7}}}})
}

#[test]
fn system_info_config_and_seeds() {
    let fogflow = FogFlow::start();
    let config = fogflow.get(At::Designer, "/config.js");
    assert_eq!(config.status, 200);
    assert!(config.body.starts_with("var config ="), "{}", config.body);
    assert!(config.body.contains("./ngsi10"), "{}", config.body);
    let brokers = wait_until(WAIT, "the broker listed in /info/broker", || {
        let list = fogflow.get(At::Designer, "/info/broker").json();
        list.as_array().filter(|l| !l.is_empty()).cloned()
    });
    assert!(brokers[0]["id"].as_str().unwrap().starts_with("Broker."), "{brokers:?}");
    for path in ["/info/master", "/info/worker", "/info/task", "/info/type", "/info/task/nothing"] {
        let response = fogflow.get(At::Designer, path);
        assert_eq!(response.status, 200, "{path}: {response:?}");
        assert!(response.json().is_array(), "{path}: {response:?}");
    }
    let operators = fogflow.get(At::Designer, "/operator").json();
    for name in ["dummy", "converter", "counter", "anomaly"] {
        let images = operators[name]["dockerimages"].as_array().unwrap_or_else(|| panic!("{name}: {operators}"));
        assert!(images.iter().any(|i| i["name"] == format!("fogflow/{name}") && i["hwType"] == "X86"), "{name}");
        assert!(images.iter().any(|i| i["hwType"] == "ARM64"), "{name}");
    }
    let topology = fogflow.get(At::Designer, "/topology/anomaly-detection").json();
    assert_eq!(topology["tasks"].as_array().map(Vec::len), Some(2), "{topology}");
    let used: Vec<&str> = topology["operators"].as_array().unwrap().iter().filter_map(|o| o["name"].as_str()).collect();
    assert_eq!(used, ["anomaly", "counter"]);
    let functions = fogflow.get(At::Designer, "/fogfunction").json();
    for name in ["Convert", "Test"] {
        assert_eq!(functions[name]["status"], "disabled", "{functions}");
        assert!(functions[name]["intent"]["id"].as_str().unwrap().starts_with("ServiceIntent."));
    }
    assert_eq!(functions["Convert"]["topology"]["tasks"][0]["operator"], "converter");
    assert_eq!(fogflow.get(At::Designer, "/topology/nothing").json(), json!({}));
    let page = fogflow.get(At::Designer, "/");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("/operator"), "{}", page.body);
    let cors = fogflow.request(At::Designer, "GET", "/operator", None, &[("Origin", "http://dashboard")]);
    assert_eq!(cors.header("access-control-allow-origin"), Some("*"), "{cors:?}");
    assert_eq!(fogflow.get(At::Designer, "/ready").status, 200);
}

#[test]
fn registry_crud_with_fogflow_answers() {
    let fogflow = FogFlow::start();
    // AT-2.
    let dummy = json!([{"name": "dummy", "description": "", "parameters": [], "dockerimages": []}]);
    assert_eq!(fogflow.post(At::Designer, "/operator", &dummy).status, 200);
    let image = json!({"name": "fogflow/dummy", "tag": "latest", "hwType": "X86", "osType": "Linux",
        "operatorName": "dummy", "prefetched": false});
    assert_eq!(fogflow.post(At::Designer, "/dockerimage/dummy", &image).status, 200);
    let images = fogflow.get(At::Designer, "/dockerimage/dummy").json();
    assert_eq!(images.as_array().map(Vec::len), Some(1), "{images}");
    assert_eq!(fogflow.post(At::Designer, "/service", &json!([dummy_topology("t1", "dummy")])).status, 200);
    assert_error(&fogflow.delete(At::Designer, "/operator/dummy"), 501, "operator in use");
    let topology = fogflow.get(At::Designer, "/topology/t1").json();
    assert_eq!(topology["operators"][0]["dockerimages"][0]["name"], "fogflow/dummy", "{topology}");
    assert_eq!(fogflow.get(At::Designer, "/service/t1").json()["designboard"], json!({"blocks": [], "edges": []}));
    assert!(fogflow.get(At::Designer, "/topology").json().as_array().unwrap().iter().any(|t| t["name"] == "t1"));
    // Unknown names.
    assert_error(&fogflow.get(At::Designer, "/operator/nothing"), 404, "unknown operator");
    assert_error(&fogflow.delete(At::Designer, "/operator/nothing"), 404, "delete unknown operator");
    assert_error(&fogflow.get(At::Designer, "/dockerimage/nothing"), 404, "images of unknown operator");
    // An operator posted without images keeps its images; an unused one can be deleted.
    let solo = json!([{"name": "solo", "dockerimages": [{"name": "acme/solo", "hwType": "X86"}]}]);
    assert_eq!(fogflow.post(At::Designer, "/operator", &solo).status, 200);
    assert_eq!(fogflow.post(At::Designer, "/operator", &json!([{"name": "solo", "description": "x"}])).status, 200);
    let solo = fogflow.get(At::Designer, "/operator/solo").json();
    assert_eq!(solo["dockerimages"][0]["operatorName"], "solo", "{solo}");
    assert_eq!(fogflow.delete(At::Designer, "/dockerimage/solo?image=acme/solo").status, 200);
    assert_eq!(fogflow.get(At::Designer, "/dockerimage/solo").json(), json!([]));
    assert_error(&fogflow.delete(At::Designer, "/dockerimage/solo?image=acme/solo"), 404, "unknown image");
    assert_error(&fogflow.delete(At::Designer, "/dockerimage/solo"), 400, "image query missing");
    assert_eq!(fogflow.delete(At::Designer, "/operator/solo").status, 200);
    // Intents.
    let intent = json!({"topology": "t1", "priority": {"exclusive": false, "level": 0}, "qos": "NONE",
        "geoscope": {"scopeType": "global", "scopeValue": "global"}});
    let stored = fogflow.post(At::Designer, "/intent", &intent);
    assert_eq!(stored.status, 200, "{stored:?}");
    let id = stored.json()["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("ServiceIntent."), "{id}");
    assert_eq!(fogflow.get(At::Designer, &format!("/intent/{id}")).json()["topology"], "t1");
    assert_eq!(fogflow.get(At::Designer, "/intent/topology/t1").json().as_array().map(Vec::len), Some(1));
    assert_eq!(fogflow.get(At::Designer, "/intent").json()[&id]["id"], id.as_str());
    assert_eq!(fogflow.post(At::Designer, "/intent", &json!({})).status, 200, "FogFlow's no-op");
    assert_error(&fogflow.delete(At::Designer, "/service/t1"), 409, "service still run by an intent");
    assert_eq!(fogflow.delete(At::Designer, &format!("/intent/{id}")).status, 200);
    assert_error(&fogflow.delete(At::Designer, &format!("/intent/{id}")), 404, "intent deleted twice");
    assert_eq!(fogflow.get(At::Designer, "/intent/topology/t1").json(), json!([]));
    assert_eq!(fogflow.delete(At::Designer, "/service/t1").status, 200);
    assert_eq!(fogflow.get(At::Designer, "/topology/t1").json(), json!({}));
    let still_used = fogflow.delete(At::Designer, "/operator/dummy");
    assert_error(&still_used, 501, "dummy is still used by the seeded fog function Test");
    assert!(still_used.json()["description"].as_str().unwrap().contains("Test"), "{still_used:?}");
}

#[test]
fn validation_errors_are_4xx_json() {
    let fogflow = FogFlow::start();
    let unknown_operator = json!([dummy_topology("bad", "nobody")]);
    assert_error(&fogflow.post(At::Designer, "/service", &unknown_operator), 400, "unknown operator");
    let mut cycle = dummy_topology("loop", "dummy");
    cycle["topology"]["tasks"][0]["output_streams"] = json!([{"entity_type": "Temperature"}]);
    assert_error(&fogflow.post(At::Designer, "/service", &json!([cycle])), 400, "cycle");
    assert_error(&fogflow.post(At::Designer, "/operator", &json!([{"name": "a b"}])), 400, "operator name");
    let no_image_name = json!({"name": "", "tag": "latest"});
    assert_error(&fogflow.post(At::Designer, "/dockerimage/dummy", &no_image_name), 400, "image name");
    let bad_scope = json!({"topology": "anomaly-detection",
        "geoscope": {"scopeType": "circle", "scopeValue": {"centerLatitude": "north"}}});
    assert_error(&fogflow.post(At::Designer, "/intent", &bad_scope), 400, "bad geoscope");
    let no_topology = json!({"topology": "nothing"});
    assert_error(&fogflow.post(At::Designer, "/intent", &no_topology), 400, "intent on unknown topology");
    let function = json!([{"name": "F", "topology": {"tasks": [{"name": "Main", "operator": "nobody",
        "input_streams": [{"selected_type": "T"}], "output_streams": [{"entity_type": "U"}]}]}}]);
    assert_error(&fogflow.post(At::Designer, "/fogfunction", &function), 400, "fog function operator");
    assert_error(&fogflow.get(At::Designer, "/fogfunction/nothing/enable"), 404, "unknown fog function");
    for path in ["/operator", "/service", "/intent", "/fogfunction", "/device", "/subscription"] {
        let malformed = fogflow.request(At::Designer, "POST", path, Some("{not json"), &[]);
        assert_error(&malformed, 400, path);
        let wrong_shape = fogflow.request(At::Designer, "POST", path, Some("42"), &[]);
        assert!((400..500).contains(&wrong_shape.status), "{path}: {wrong_shape:?}");
    }
    let huge = format!("[{{\"name\":\"big\",\"description\":\"{}\"}}]", "x".repeat(5 * 1024 * 1024));
    let head = format!(
        "POST /operator HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        huge.len()
    );
    let (status, text) = raw_exchange(fogflow.port(At::Designer), &head, huge.into_bytes());
    assert_eq!(status, 413, "body limit: {}", &text[..text.len().min(300)]);
    assert!(text.contains("PayloadTooLarge"), "{}", &text[..text.len().min(300)]);
    let bad_subscription = json!({"entity_type": "T", "destination_broker": "MQTT", "reference_url": "http://x"});
    assert_error(&fogflow.post(At::Designer, "/subscription", &bad_subscription), 400, "destination");
    assert_error(&fogflow.post(At::Designer, "/device", &json!({"type": "T"})), 400, "device without id");
    assert_error(&fogflow.get(At::Designer, "/no/such/path"), 404, "unknown path");
    assert_error(&fogflow.request(At::Designer, "PUT", "/operator", Some("[]"), &[]), 405, "wrong method");
    // Nothing was stored by the refused requests.
    assert!(fogflow.get(At::Designer, "/topology/bad").json().as_object().unwrap().is_empty());
    assert!(fogflow.get(At::Designer, "/intent").json().as_object().unwrap().is_empty());
}

#[test]
fn devices_subscriptions_and_proxies() {
    let fogflow = FogFlow::start();
    let created = fogflow.post(At::Designer, "/device", &device("Device.Temp001"));
    assert_eq!(created.status, 200, "{created:?}");
    assert_eq!(created.json()["entityId"], json!({"id": "Device.Temp001", "type": "Temperature", "isPattern": false}));
    let entity = fogflow.entity("Device.Temp001").expect("device entity at the broker");
    assert!(entity.to_string().contains("temperature"), "{entity}");
    assert!(fogflow.get(At::Designer, "/device").json()["Device.Temp001"].is_object());
    // The proxies pass the broker's and discovery's answers through.
    let direct = fogflow.get(At::Broker, "/ngsi10/entity/Device.Temp001");
    let proxied = fogflow.get(At::Designer, "/ngsi10/entity/Device.Temp001");
    assert_eq!((proxied.status, proxied.json()), (direct.status, direct.json()));
    let missing = fogflow.get(At::Designer, "/ngsi10/entity/Nothing");
    assert_eq!(missing.status, fogflow.get(At::Broker, "/ngsi10/entity/Nothing").status);
    let query = json!({"entities": [{"type": "Temperature", "isPattern": true, "id": ".*"}]});
    let queried = fogflow.post(At::Designer, "/ngsi10/queryContext", &query);
    assert_eq!(queried.json(), fogflow.post(At::Broker, "/ngsi10/queryContext", &query).json());
    let brokers = fogflow.get(At::Designer, "/ngsi9/broker");
    assert_eq!(brokers.status, 200);
    assert_eq!(brokers.json(), fogflow.get(At::Discovery, "/ngsi9/broker").json());
    // Subscriptions.
    let subscription = json!({"entity_type": "Temperature", "destination_broker": "NGSIv2",
        "reference_url": "http://127.0.0.1:9/v2", "tenant": ""});
    let made = fogflow.post(At::Designer, "/subscription", &subscription);
    assert_eq!(made.status, 200, "{made:?}");
    let sid = made.json()["subscriptionId"].as_str().unwrap().to_string();
    let at_broker = fogflow.get(At::Broker, &format!("/ngsi10/subscription/{sid}")).json();
    assert_eq!(at_broker["Subscriber"]["DestinationType"], "NGSIv2", "{at_broker}");
    assert_eq!(at_broker["entities"][0]["type"], "Temperature", "{at_broker}");
    assert_eq!(fogflow.get(At::Designer, "/subscription").json()[&sid]["entity_type"], "Temperature");
    assert_eq!(fogflow.delete(At::Designer, &format!("/subscription/{sid}")).status, 200);
    assert_eq!(fogflow.get(At::Broker, &format!("/ngsi10/subscription/{sid}")).status, 404);
    assert_error(&fogflow.delete(At::Designer, &format!("/subscription/{sid}")), 404, "subscription twice");
    // Deleting the device deletes the entity.
    assert_eq!(fogflow.delete(At::Designer, "/device/Device.Temp001").status, 200);
    assert!(fogflow.entity("Device.Temp001").is_none());
    assert_error(&fogflow.delete(At::Designer, "/device/Device.Temp001"), 404, "device twice");
}

#[test]
fn registry_survives_kill9_and_seeds_are_not_recreated() {
    let mut fogflow = FogFlow::start();
    let operator = json!([{"name": "keeper", "dockerimages": [{"name": "acme/keeper"}]}]);
    assert_eq!(fogflow.post(At::Designer, "/operator", &operator).status, 200);
    assert_eq!(fogflow.post(At::Designer, "/service", &json!([dummy_topology("kept", "keeper")])).status, 200);
    let intent = fogflow.post(At::Designer, "/intent", &json!({"id": "ServiceIntent.kept", "topology": "kept"}));
    assert_eq!(intent.status, 200, "{intent:?}");
    let enabled = fogflow.get(At::Designer, "/fogfunction/Convert/enable");
    assert_eq!(enabled.json()["status"], "enabled", "{enabled:?}");
    assert_eq!(fogflow.delete(At::Designer, "/fogfunction/Test").status, 200);
    assert_eq!(fogflow.post(At::Designer, "/device", &device("Device.Kept")).status, 200);
    let subscription = json!({"entity_type": "Temperature", "destination_broker": "NGSIv1",
        "reference_url": "http://127.0.0.1:9", "tenant": ""});
    assert_eq!(fogflow.post(At::Designer, "/subscription", &subscription).status, 200);
    // The broker loses the device entity; the designer re-creates it after its restart.
    assert_eq!(fogflow.delete(At::Broker, "/ngsi10/entity/Device.Kept").status, 200);

    fogflow.kill9();
    fogflow.restart();

    assert_eq!(fogflow.get(At::Designer, "/operator/keeper").json()["dockerimages"][0]["name"], "acme/keeper");
    assert_eq!(fogflow.get(At::Designer, "/topology/kept").json()["operators"][0]["name"], "keeper");
    assert_eq!(fogflow.get(At::Designer, "/intent/ServiceIntent.kept").json()["topology"], "kept");
    let functions = fogflow.get(At::Designer, "/fogfunction").json();
    assert_eq!(functions["Convert"]["status"], "enabled", "{functions}");
    assert!(functions.get("Test").is_none(), "a deleted seed is not re-created: {functions}");
    assert!(fogflow.get(At::Designer, "/device").json()["Device.Kept"].is_object());
    assert_eq!(fogflow.get(At::Designer, "/subscription").json().as_object().map(|s| s.len()), Some(1));
    wait_until(WAIT, "the device entity re-created at the broker", || fogflow.entity("Device.Kept"));

    let disabled = fogflow.get(At::Designer, "/fogfunction/Convert/disable");
    assert_eq!(disabled.json()["status"], "disabled");
    fogflow.kill9();
    fogflow.restart();
    assert_eq!(fogflow.get(At::Designer, "/fogfunction/Convert").json()["status"], "disabled");
    assert!(fogflow.get(At::Designer, "/fogfunction").json().get("Test").is_none());

    // A graceful stop flushes the store too.
    let enabled = fogflow.get(At::Designer, "/fogfunction/Convert/enable");
    assert_eq!(enabled.status, 200);
    let status = fogflow.terminate(Duration::from_secs(20)).expect("fogflow stops on SIGTERM");
    assert!(status.success(), "exit status {status}");
    fogflow.restart();
    assert_eq!(fogflow.get(At::Designer, "/fogfunction/Convert").json()["status"], "enabled");
    assert_eq!(fogflow.get(At::Designer, "/intent/ServiceIntent.kept").json()["topology"], "kept");
}

#[test]
fn master_and_worker_info_and_the_task_table_follow_a_fog_function() {
    let fogflow = FogFlow::start();
    let masters = wait_until(WAIT, "the master in /info/master", || {
        fogflow.get(At::Designer, "/info/master").json().as_array().filter(|l| !l.is_empty()).cloned()
    });
    assert_eq!(masters[0]["id"], "Master.001", "{masters:?}");
    let workers = wait_until(WAIT, "the worker in /info/worker", || {
        fogflow.get(At::Designer, "/info/worker").json().as_array().filter(|l| !l.is_empty()).cloned()
    });
    assert_eq!(workers[0]["id"], "Worker.001", "{workers:?}");
    // AT-3 as the designer sees it: enabling Convert and posting a temperature launches one task.
    assert_eq!(fogflow.get(At::Designer, "/fogfunction/Convert/enable").status, 200);
    let intent = fogflow.get(At::Designer, "/fogfunction/Convert").json()["intent"]["id"].as_str().unwrap().to_string();
    assert_eq!(fogflow.post(At::Designer, "/device", &device("Device.Temp001")).status, 200);
    let rows = wait_until(Duration::from_secs(30), "the Convert task in /info/task", || {
        let rows = fogflow.get(At::Designer, &format!("/info/task/{intent}")).json();
        rows.as_array().filter(|r| r.iter().any(|row| row["Status"] == "running")).cloned()
    });
    assert!(rows[0]["TaskID"].as_str().unwrap().starts_with("Task.Convert.Main."), "{rows:?}");
    assert_eq!(rows[0]["Worker"], "Worker.001", "{rows:?}");
    assert_eq!(rows[0]["ID"], rows[0]["TaskID"]);
    assert_eq!(fogflow.get(At::Designer, "/fogfunction/Convert/disable").status, 200);
    wait_until(Duration::from_secs(30), "the Convert task gone from /info/task", || {
        fogflow.get(At::Designer, "/info/task").json().as_array().filter(|rows| rows.is_empty()).map(drop)
    });
}

#[test]
fn restart_keeps_one_task_per_entity() {
    let mut fogflow = FogFlow::start();
    assert_eq!(fogflow.get(At::Designer, "/fogfunction/Convert/enable").status, 200);
    assert_eq!(fogflow.post(At::Designer, "/device", &device("Device.Temp009")).status, 200);
    let running = |fogflow: &FogFlow| {
        let rows = fogflow.get(At::Designer, "/info/task").json();
        rows.as_array().filter(|r| !r.is_empty() && r.iter().all(|row| row["Status"] == "running")).cloned()
    };
    let before = wait_until(Duration::from_secs(30), "the Convert task running", || running(&fogflow));
    assert_eq!(before.len(), 1, "{before:?}");
    fogflow.kill9();
    fogflow.restart();
    let after = wait_until(Duration::from_secs(30), "the Convert task running after the restart", || running(&fogflow));
    assert_eq!(after.len(), 1, "one task, not a duplicate: {after:?}");
    assert_eq!(after[0]["TaskID"], before[0]["TaskID"], "{before:?} {after:?}");
    std::thread::sleep(Duration::from_secs(2));
    let settled = fogflow.get(At::Designer, "/info/task").json();
    assert_eq!(settled.as_array().map(Vec::len), Some(1), "{settled}");
}
