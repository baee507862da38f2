//! Entities with several types (ETSI GS CIM 009 clause 4.5.1, 5.2.4: `type` a string or an array of strings):
//! created, read in every representation (an array of the types, compacted with the request's context; one type
//! stays a string), queried and subscribed to by any of their types (deletions notified with every type), counted once per type in `/types`; append,
//! merge and upsert with update add types, replace sets them, an update of attributes keeps them; bad `type` values
//! answer 400 `BadRequestData`; NGSIv2 and NGSI10 show the first type and their writes keep the others; the types
//! survive a restart after SIGKILL; type selections with `;` (AND), `|` and parentheses in queries.

use serde_json::{json, Value};

use crate::common::{element, elements, Broker, Sink};
use crate::ngsi_ld_entities::{assert_problem, create, send};
use crate::ngsi_ld_subscriptions::{subscribe, subscription, wait_for};

const ENTITIES: &str = "/ngsi-ld/v1/entities";

/// The `type` of entity `id` as read back (normalized).
fn types_of(broker: &Broker, id: &str) -> Value {
    let read = broker.get(&format!("{ENTITIES}/{id}"));
    assert_eq!(read.status, 200, "{read:?}");
    read.json()["type"].clone()
}

/// The ids a query answers, in order.
fn ids(broker: &Broker, query: &str) -> Vec<String> {
    let response = broker.get(&format!("{ENTITIES}?{query}"));
    assert_eq!(response.status, 200, "{query}: {response:?}");
    response.json().as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
}

/// A request with a JSON body that must answer 204.
fn no_content(broker: &Broker, method: &str, path: &str, body: &Value) {
    let response = send(broker, method, path, body, &[]);
    assert_eq!(response.status, 204, "{method} {path} {body}: {response:?}");
}

#[test]
fn entities_with_several_types_are_read_and_queried_by_each_type() {
    let broker = Broker::start();
    let shop = json!({"id": "urn:ngsi-ld:Thing:1", "type": ["Building", "Shop", "Building"],
        "name": {"type": "Property", "value": "corner shop"}});
    create(&broker, &shop, &[]);
    create(&broker, &json!({"id": "urn:ngsi-ld:Thing:2", "type": "Shop", "name": "kiosk"}), &[]);
    create(&broker, &json!({"id": "urn:ngsi-ld:Thing:3", "type": ["Office"], "name": "desk"}), &[]);

    assert_eq!(types_of(&broker, "urn:ngsi-ld:Thing:1"), json!(["Building", "Shop"]), "duplicates dropped");
    assert_eq!(types_of(&broker, "urn:ngsi-ld:Thing:2"), json!("Shop"), "one type stays a string");
    assert_eq!(types_of(&broker, "urn:ngsi-ld:Thing:3"), json!("Office"), "an array of one is one type");
    for options in ["keyValues", "concise", "sysAttrs"] {
        let read = broker.get(&format!("{ENTITIES}/urn:ngsi-ld:Thing:1?options={options}")).json();
        assert_eq!(read["type"], json!(["Building", "Shop"]), "{options}: {read}");
    }
    let feature =
        broker.request("GET", &format!("{ENTITIES}/urn:ngsi-ld:Thing:1"), None, &[("Accept", "application/geo+json")]);
    assert_eq!(feature.status, 200, "{feature:?}");
    assert_eq!(feature.json()["properties"]["type"], json!(["Building", "Shop"]));

    assert_eq!(ids(&broker, "type=Building"), ["urn:ngsi-ld:Thing:1"]);
    assert_eq!(ids(&broker, "type=Shop"), ["urn:ngsi-ld:Thing:1", "urn:ngsi-ld:Thing:2"]);
    let both = broker.get(&format!("{ENTITIES}?type=Building,Shop&count=true"));
    assert_eq!(both.header("ngsild-results-count"), Some("2"), "listed once although both types match");
    assert_eq!(ids(&broker, "type=Building,Shop,Office&limit=2"), ["urn:ngsi-ld:Thing:1", "urn:ngsi-ld:Thing:2"]);
    let batch = send(
        &broker,
        "POST",
        "/ngsi-ld/v1/entityOperations/query",
        &json!({"type": "Query", "entities": [{"type": "Shop"}, {"type": "Building"}]}),
        &[],
    );
    let found: Vec<Value> = batch.json().as_array().unwrap().iter().map(|e| e["id"].clone()).collect();
    assert_eq!(found, [json!("urn:ngsi-ld:Thing:1"), json!("urn:ngsi-ld:Thing:2")], "{batch:?}");

    let list = broker.get("/ngsi-ld/v1/types").json();
    assert_eq!(list["typeList"], json!(["Building", "Office", "Shop"]), "{list}");
    assert_eq!(broker.get("/ngsi-ld/v1/types/Shop").json()["entityCount"], 2);
    assert_eq!(broker.get("/ngsi-ld/v1/types/Building").json()["entityCount"], 1);
    let name = broker.get("/ngsi-ld/v1/attributes/name").json();
    assert_eq!((&name["attributeCount"], &name["typeNames"]), (&json!(3), &json!(["Building", "Office", "Shop"])));

    // Each type is expanded with the request's context and compacted with the answer's (JSON-LD, naming it).
    let context = json!({"Store": "https://example.org/Store"});
    let ld = [("Content-Type", "application/ld+json")];
    let store = json!({"id": "urn:ngsi-ld:Thing:4", "type": ["Building", "Store"], "@context": context});
    create(&broker, &store, &ld);
    assert_eq!(types_of(&broker, "urn:ngsi-ld:Thing:4"), json!(["Building", "https://example.org/Store"]));
    let query = json!({"type": "Query", "entities": [{"type": "Store"}], "@context": context});
    let ld_answer = [("Content-Type", "application/ld+json"), ("Accept", "application/ld+json")];
    let compacted = send(&broker, "POST", "/ngsi-ld/v1/entityOperations/query", &query, &ld_answer).json();
    assert_eq!(compacted[0]["type"], json!(["Building", "Store"]), "{compacted}");
}

#[test]
fn a_subscription_on_the_second_type_is_notified() {
    let broker = Broker::start();
    let sink = Sink::start();
    subscribe(&broker, &subscription("Shop", &format!("{}/shop", sink.url())), &[]);
    let mut key_values = subscription("Building", &format!("{}/kv", sink.url()));
    key_values["notification"]["format"] = json!("keyValues");
    subscribe(&broker, &key_values, &[]);
    create(&broker, &json!({"id": "urn:ngsi-ld:Thing:1", "type": ["Building", "Shop"], "floors": 3}), &[]);
    let shop = wait_for(&sink, "/shop", "the shop notified", |e| e["id"] == "urn:ngsi-ld:Thing:1");
    assert_eq!(shop.json()["data"][0]["type"], json!(["Building", "Shop"]));
    assert_eq!(shop.json()["data"][0]["floors"], json!({"type": "Property", "value": 3}));
    let kv = wait_for(&sink, "/kv", "the building notified", |e| e["floors"] == 3);
    assert_eq!(kv.json()["data"][0]["type"], json!(["Building", "Shop"]));
    // An entity gaining the type by an append is notified to the subscription on it.
    create(&broker, &json!({"id": "urn:ngsi-ld:Thing:2", "type": "Hotel", "floors": 9}), &[]);
    no_content(
        &broker,
        "POST",
        &format!("{ENTITIES}/urn:ngsi-ld:Thing:2/attrs"),
        &json!({"type": "Shop", "floors": 10}),
    );
    let gained = wait_for(&sink, "/shop", "the hotel notified once a shop", |e| e["id"] == "urn:ngsi-ld:Thing:2");
    assert_eq!(gained.json()["data"][0]["type"], json!(["Hotel", "Shop"]));
    // A deletion is notified with every type.
    let mut deleted = subscription("Shop", &format!("{}/deleted", sink.url()));
    deleted["notificationTrigger"] = json!(["entityDeleted"]);
    subscribe(&broker, &deleted, &[]);
    assert_eq!(broker.delete(&format!("{ENTITIES}/urn:ngsi-ld:Thing:1")).status, 204);
    let gone = wait_for(&sink, "/deleted", "the deletion notified", |e| e["id"] == "urn:ngsi-ld:Thing:1");
    assert_eq!(gone.json()["data"][0]["type"], json!(["Building", "Shop"]));
}

#[test]
fn append_merge_and_upsert_add_types_replace_sets_them() {
    let broker = Broker::start();
    let id = "urn:ngsi-ld:Thing:1";
    let path = format!("{ENTITIES}/{id}");
    create(&broker, &json!({"id": id, "type": "Building", "floors": 1}), &[]);

    no_content(&broker, "POST", &format!("{path}/attrs"), &json!({"type": "Shop", "floors": 2}));
    assert_eq!(types_of(&broker, id), json!(["Building", "Shop"]), "append adds");
    no_content(&broker, "POST", &format!("{path}/attrs"), &json!({"type": ["Shop", "Cafe"]}));
    assert_eq!(types_of(&broker, id), json!(["Building", "Shop", "Cafe"]), "a type alone is appended");
    no_content(&broker, "PATCH", &path, &json!({"type": ["Office"], "floors": 3}));
    assert_eq!(types_of(&broker, id), json!(["Building", "Shop", "Cafe", "Office"]), "merge adds");
    let upsert = "/ngsi-ld/v1/entityOperations/upsert?options=update";
    no_content(&broker, "POST", upsert, &json!([{"id": id, "type": "Hotel", "floors": 4}]));
    assert_eq!(types_of(&broker, id), json!(["Building", "Shop", "Cafe", "Office", "Hotel"]), "upsert-update adds");
    no_content(&broker, "POST", "/ngsi-ld/v1/entityOperations/merge", &json!([{"id": id, "type": ["Museum"]}]));
    let all = json!(["Building", "Shop", "Cafe", "Office", "Hotel", "Museum"]);
    assert_eq!(types_of(&broker, id), all, "batch merge adds");
    assert_eq!(broker.get(&format!("{path}?options=keyValues")).json()["floors"], 4);

    // Updates of existing attributes keep the types (a `type` in their payload is checked, not added).
    no_content(&broker, "PATCH", &format!("{path}/attrs"), &json!({"type": "Ignored", "floors": 5}));
    let update = "/ngsi-ld/v1/entityOperations/update";
    no_content(&broker, "POST", update, &json!([{"id": id, "type": "Ignored", "floors": 6}]));
    assert_eq!(types_of(&broker, id), all);
    assert_eq!(ids(&broker, "type=Ignored"), Vec::<String>::new());

    no_content(&broker, "PUT", &path, &json!({"type": ["Shop", "Depot"], "floors": 7}));
    assert_eq!(types_of(&broker, id), json!(["Shop", "Depot"]), "replace sets");
    assert_eq!(ids(&broker, "type=Building"), Vec::<String>::new());
    assert_eq!(ids(&broker, "type=Depot"), [id]);
    assert_eq!(broker.get("/ngsi-ld/v1/types/Building").status, 404);
    no_content(&broker, "POST", "/ngsi-ld/v1/entityOperations/upsert", &json!([{"id": id, "type": "Building"}]));
    assert_eq!(types_of(&broker, id), json!("Building"), "upsert with replace sets");
    assert_eq!(broker.get("/ngsi-ld/v1/types").json()["typeList"], json!(["Building"]));
}

#[test]
fn bad_type_values_are_refused() {
    let broker = Broker::start();
    for bad in [json!([]), json!(["A", 3]), json!(3), json!(null), json!({"A": 1}), json!(["A", ""])] {
        let response = send(&broker, "POST", ENTITIES, &json!({"id": "urn:ngsi-ld:Thing:1", "type": bad}), &[]);
        assert_problem(&response, 400, "BadRequestData");
    }
    assert_eq!(broker.get(&format!("{ENTITIES}/urn:ngsi-ld:Thing:1")).status, 404, "nothing was created");
    create(&broker, &json!({"id": "urn:ngsi-ld:Thing:1", "type": ["A", "B"]}), &[]);
    let path = format!("{ENTITIES}/urn:ngsi-ld:Thing:1");
    for (method, path, body) in [
        ("POST", format!("{path}/attrs"), json!({"type": [], "p": 1})),
        ("PATCH", path.clone(), json!({"type": [3]})),
        ("PUT", path.clone(), json!({"type": []})),
        ("PATCH", format!("{path}/attrs"), json!({"type": 3, "p": 1})),
    ] {
        assert_problem(&send(&broker, method, &path, &body, &[]), 400, "BadRequestData");
    }
    assert_eq!(types_of(&broker, "urn:ngsi-ld:Thing:1"), json!(["A", "B"]), "nothing changed");
    let batch = send(
        &broker,
        "POST",
        "/ngsi-ld/v1/entityOperations/create",
        &json!([{"id": "urn:ngsi-ld:Thing:2", "type": []}, {"id": "urn:ngsi-ld:Thing:3", "type": ["C", "D"]}]),
        &[],
    );
    assert_eq!(batch.status, 207, "{batch:?}");
    let body = batch.json();
    assert_eq!(body["success"], json!(["urn:ngsi-ld:Thing:3"]));
    assert_eq!(body["errors"][0]["entityId"], "urn:ngsi-ld:Thing:2");
    assert_eq!(body["errors"][0]["error"]["type"], "https://uri.etsi.org/ngsi-ld/errors/BadRequestData");
}

#[test]
fn ngsiv2_and_ngsi10_show_the_first_type_and_keep_the_others() {
    let broker = Broker::start();
    let id = "urn:ngsi-ld:Thing:1";
    create(&broker, &json!({"id": id, "type": ["Building", "Shop"], "floors": 1}), &[]);
    let v2 = broker.get(&format!("/v2/entities/{id}"));
    assert_eq!((v2.status, v2.json()["type"].clone()), (200, json!("Building")), "{v2:?}");
    let v1 = broker.get(&format!("/ngsi10/entity/{id}"));
    assert_eq!(v1.json()["entityId"]["type"], "Building", "{v1:?}");
    assert!(v1.json().get("extra_types").is_none() && v1.json().get("extraTypes").is_none(), "{v1:?}");
    // They select it by its first type only.
    assert_eq!(broker.get("/v2/entities?type=Building").json()[0]["id"], id);
    assert_eq!(broker.get("/v2/entities?type=Shop").json(), json!([]));
    assert_eq!(broker.get(&format!("/v2/entities/{id}?type=Shop")).status, 404);
    let query = |entity_type: &str| {
        elements(&broker.query_ok(&json!({"entities": [{"id": ".*", "isPattern": true, "type": entity_type}]}))).len()
    };
    assert_eq!((query("Building"), query("Shop")), (1, 0));
    broker.update_ok("UPDATE", &[element(id, "Building", &[("floors", "integer", json!(2))])]);
    broker.update_ok("UPDATE", &[element(id, "Shop", &[("floors", "integer", json!(3))])]);
    let patched = broker.request(
        "PATCH",
        &format!("/v2/entities/{id}/attrs"),
        Some(&json!({"floors": {"value": 4, "type": "Number"}}).to_string()),
        &[("Content-Type", "application/json")],
    );
    assert_eq!(patched.status, 204, "{patched:?}");
    assert_eq!(types_of(&broker, id), json!(["Building", "Shop"]), "NGSI10 and NGSIv2 writes keep the types");
    assert_eq!(broker.get(&format!("{ENTITIES}/{id}?options=keyValues")).json()["floors"], 4);
}

#[test]
fn several_types_survive_a_restart() {
    let mut broker = Broker::start();
    let id = "urn:ngsi-ld:Thing:1";
    create(&broker, &json!({"id": id, "type": ["Building", "Shop"], "floors": 1}), &[]);
    no_content(&broker, "POST", &format!("{ENTITIES}/{id}/attrs"), &json!({"type": "Cafe"}));
    create(&broker, &json!({"id": "urn:ngsi-ld:Thing:2", "type": "Cafe"}), &[]);

    broker.kill9();
    broker.restart();

    assert_eq!(types_of(&broker, id), json!(["Building", "Shop", "Cafe"]));
    assert_eq!(types_of(&broker, "urn:ngsi-ld:Thing:2"), json!("Cafe"));
    assert_eq!(ids(&broker, "type=Shop"), [id], "the type index is rebuilt with every type");
    assert_eq!(ids(&broker, "type=Cafe"), [id, "urn:ngsi-ld:Thing:2"]);
    assert_eq!(broker.get("/ngsi-ld/v1/types/Cafe").json()["entityCount"], 2);
}

#[test]
fn type_expressions_select_entities_having_every_type_of_a_conjunction() {
    let broker = Broker::start();
    create(&broker, &json!({"id": "urn:ngsi-ld:Home:1", "type": ["Building", "Home"], "floors": 2}), &[]);
    create(&broker, &json!({"id": "urn:ngsi-ld:Home:2", "type": "Building", "floors": 9}), &[]);
    create(&broker, &json!({"id": "urn:ngsi-ld:Car:1", "type": "Vehicle", "seats": 4}), &[]);

    // `;` is AND, `,` and `|` are OR, parentheses group (clause 4.17); sent percent-encoded and raw.
    assert_eq!(ids(&broker, "type=Building;Home"), ["urn:ngsi-ld:Home:1"]);
    assert_eq!(ids(&broker, "type=Building%3BHome"), ["urn:ngsi-ld:Home:1"]);
    assert_eq!(ids(&broker, "type=%28Building%3BHome%29%7CVehicle"), ["urn:ngsi-ld:Home:1", "urn:ngsi-ld:Car:1"]);
    assert_eq!(ids(&broker, "type=Home;Vehicle"), Vec::<String>::new());
    assert_eq!(ids(&broker, "type=Building;(Home%7CVehicle)&q=floors%3E1"), ["urn:ngsi-ld:Home:1"]);
    let counted = broker.get(&format!("{ENTITIES}?type=Building;Home%7CBuilding&count=true"));
    assert_eq!(counted.header("ngsild-results-count"), Some("2"), "{counted:?}");

    let batch = send(
        &broker,
        "POST",
        "/ngsi-ld/v1/entityOperations/query",
        &json!({"type": "Query", "entities": [{"type": "(Building;Home)|Vehicle"}]}),
        &[],
    );
    assert_eq!(batch.status, 200, "{batch:?}");
    let found: Vec<Value> = batch.json().as_array().unwrap().iter().map(|e| e["id"].clone()).collect();
    assert_eq!(found, [json!("urn:ngsi-ld:Home:1"), json!("urn:ngsi-ld:Car:1")]);

    for bad in ["Building;", "%28Building", "Building%29", "Building;;Home", "%28%29"] {
        let response = broker.get(&format!("{ENTITIES}?type={bad}"));
        assert_problem(&response, 400, "BadRequestData");
    }
    let bad_body = send(
        &broker,
        "POST",
        "/ngsi-ld/v1/entityOperations/query",
        &json!({"type": "Query", "entities": [{"type": "(Building"}]}),
        &[],
    );
    assert_problem(&bad_body, 400, "BadRequestData");
}
