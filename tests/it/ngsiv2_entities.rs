//! The NGSIv2 (Orion-compatible) entity API under `/v2`: create (201 + `Location`, 422, `upsert`, `keyValues`),
//! list (filters, paging, `count`), retrieve and delete, the attribute routes (`/attrs`, `/attrs/{name}`,
//! `/attrs/{name}/value`), Orion's error bodies and statuses (400, 404, 405, 413, 415, 422), tenants, FogFlow's
//! `/v2/notify`, and the shared store: v2 writes notify NGSI10 subscriptions and are readable through NGSI10
//! (positions included), NGSI10 writes are readable through v2.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{attr, located_element, Broker, BrokerOptions, Resp, Sink};

const WAIT: Duration = Duration::from_secs(10);
const ENTITY_NOT_FOUND: &str = "The requested entity has not been found. Check type and id";

fn send(broker: &Broker, method: &str, path: &str, body: &Value) -> Resp {
    broker.request(method, path, Some(&body.to_string()), &[])
}

/// Asserts an NGSIv2 error: the status, the `error` name and a non-empty description; returns the body.
pub fn assert_v2_error(response: &Resp, status: u16, error: &str) -> Value {
    assert_eq!(response.status, status, "{response:?}");
    let body = response.json();
    assert_eq!(body["error"], error, "{response:?}");
    assert!(body["description"].as_str().is_some_and(|d| !d.is_empty()), "{response:?}");
    body
}

fn room(id: &str, temp: f64) -> Value {
    json!({"id": id, "type": "Room",
        "temperature": {"type": "Number", "value": temp, "metadata": {"unit": {"type": "Text", "value": "CEL"}}},
        "pressure": {"type": "Integer", "value": 720}})
}

/// `POST /v2/entities`, asserting 201.
pub fn create(broker: &Broker, entity: &Value) {
    let response = send(broker, "POST", "/v2/entities", entity);
    assert_eq!(response.status, 201, "create {entity}: {response:?}");
}

#[test]
fn create_answers_201_with_location_and_the_entity_reads_back_in_every_format() {
    let broker = Broker::start();
    let response = send(&broker, "POST", "/v2/entities", &room("Room1", 23.5));
    assert_eq!(response.status, 201, "{response:?}");
    assert_eq!(response.header("location"), Some("/v2/entities/Room1?type=Room"), "{response:?}");
    assert_eq!(response.body, "");

    let entity = broker.get("/v2/entities/Room1").json();
    assert_eq!(
        entity,
        json!({"id":"Room1","type":"Room",
            "temperature":{"type":"Number","value":23.5,"metadata":{"unit":{"type":"Text","value":"CEL"}}},
            "pressure":{"type":"Integer","value":720,"metadata":{}}})
    );
    let key_values = broker.get("/v2/entities/Room1?options=keyValues").json();
    assert_eq!(key_values, json!({"id":"Room1","type":"Room","temperature":23.5,"pressure":720}));
    let values = broker.get("/v2/entities/Room1?options=values&attrs=pressure,temperature").json();
    assert_eq!(values, json!([720, 23.5]));
    let projected = broker.get("/v2/entities/Room1?attrs=pressure&options=keyValues").json();
    assert_eq!(projected, json!({"id":"Room1","type":"Room","pressure":720}));
    assert_eq!(broker.get("/v2/entities/Room1?type=Room").status, 200);
    let wrong_type = assert_v2_error(&broker.get("/v2/entities/Room1?type=Car"), 404, "NotFound");
    assert_eq!(wrong_type["description"], ENTITY_NOT_FOUND);
    let missing = assert_v2_error(&broker.get("/v2/entities/Nope"), 404, "NotFound");
    assert_eq!(missing["description"], ENTITY_NOT_FOUND);
}

#[test]
fn create_of_an_existing_entity_is_422_and_upsert_updates_with_204() {
    let broker = Broker::start();
    create(&broker, &room("Room1", 20.0));
    let again = assert_v2_error(&send(&broker, "POST", "/v2/entities", &room("Room1", 21.0)), 422, "Unprocessable");
    assert_eq!(again["description"], "Already Exists");
    assert_eq!(broker.get("/v2/entities/Room1?options=keyValues").json()["temperature"], 20.0);

    let upsert = json!({"id":"Room1","type":"Room","temperature":{"value":25},"co2":{"value":400}});
    let response = send(&broker, "POST", "/v2/entities?options=upsert", &upsert);
    assert_eq!(response.status, 204, "{response:?}");
    let entity = broker.get("/v2/entities/Room1?options=keyValues").json();
    assert_eq!(entity, json!({"id":"Room1","type":"Room","temperature":25,"pressure":720,"co2":400}));
    let response = send(&broker, "POST", "/v2/entities?options=upsert", &room("Room2", 1.0));
    assert_eq!(response.status, 201, "an upsert of a new entity creates it: {response:?}");
}

#[test]
fn key_values_create_infers_orion_types() {
    let broker = Broker::start();
    let body = json!({"id":"Car1","type":"Car","speed":98,"name":"Beetle","electric":false,
        "tags":["a","b"],"owner":{"name":"x"},"note":null});
    let response = send(&broker, "POST", "/v2/entities?options=keyValues", &body);
    assert_eq!(response.status, 201, "{response:?}");
    let entity = broker.get("/v2/entities/Car1").json();
    let types: Vec<(&str, &str)> = ["speed", "name", "electric", "tags", "owner", "note"]
        .iter()
        .map(|name| (*name, entity[*name]["type"].as_str().unwrap_or("?")))
        .collect();
    assert_eq!(
        types,
        [
            ("speed", "Number"),
            ("name", "Text"),
            ("electric", "Boolean"),
            ("tags", "StructuredValue"),
            ("owner", "StructuredValue"),
            ("note", "None")
        ],
        "{entity}"
    );
    let untyped = send(&broker, "POST", "/v2/entities?options=keyValues", &json!({"id":"Thing1","a":1}));
    assert_eq!(untyped.status, 201, "{untyped:?}");
    assert_eq!(untyped.header("location"), Some("/v2/entities/Thing1?type=Thing"), "default type: {untyped:?}");
}

#[test]
fn bad_requests_get_orion_errors() {
    let broker = BrokerOptions::new().env("FOGFLOW__BROKER__MAX_BODY_BYTES", 2048).start();
    assert_v2_error(&broker.request("POST", "/v2/entities", Some("{\"id\":"), &[]), 400, "ParseError");
    let xml = broker.request("POST", "/v2/entities", Some("<id/>"), &[("Content-Type", "application/xml")]);
    assert_v2_error(&xml, 415, "UnsupportedMediaType");
    let big = json!({"id":"Big","blob":{"value":"x".repeat(4096)}});
    assert_v2_error(&send(&broker, "POST", "/v2/entities", &big), 413, "RequestEntityTooLarge");
    for bad in [
        json!({"type":"Room"}),
        json!({"id":"Room 1"}),
        json!({"id":"Room/1"}),
        json!({"id":"Room1","type":"a(b)"}),
        json!({"id":"x".repeat(257)}),
        json!({"id":"Room1","temperature":21}),
        json!({"id":"Room1","temperature":{"value":"<b>"}}),
        json!({"id":"Room1","temperature":{"value":1,"metadata":{"unit":"C"}}}),
        json!([{"id":"Room1"}]),
    ] {
        assert_v2_error(&send(&broker, "POST", "/v2/entities", &bad), 400, "BadRequest");
    }
    assert_v2_error(&broker.get("/v2/entities?limit=1001"), 400, "BadRequest");
    assert_v2_error(&broker.get("/v2/entities?limit=0"), 400, "BadRequest");
    assert_v2_error(&broker.get("/v2/entities?offset=-1"), 400, "BadRequest");
    assert_v2_error(&broker.get("/v2/entities?options=bogus"), 400, "BadRequest");
    assert_v2_error(&broker.get("/v2/entities?q=temperature%3E"), 400, "BadRequest");
    assert_v2_error(&broker.get("/v2/entities?georel=near%3BmaxDistance%3A1000"), 400, "BadRequest");
    assert_v2_error(&broker.get("/v2/entities/a%3Cb"), 400, "BadRequest");
    assert_eq!(broker.get("/v2/entities").json(), json!([]), "nothing was stored");
}

#[test]
fn unknown_paths_and_methods_under_v2_answer_in_the_v2_shape() {
    let broker = Broker::start();
    let unknown = assert_v2_error(&broker.get("/v2/nothing/here"), 400, "BadRequest");
    assert!(unknown["description"].as_str().unwrap().starts_with("service not found"), "as Orion: {unknown}");
    assert_v2_error(&broker.request("PATCH", "/v2/entities", Some("{}"), &[]), 405, "MethodNotAllowed");
    assert_v2_error(&broker.request("POST", "/v2/entities/Room1", Some("{}"), &[]), 405, "MethodNotAllowed");
    let v1 = broker.get("/ngsi10/nothing");
    assert_eq!(v1.status, 404);
    assert_eq!(v1.json()["errorCode"]["code"], "404", "NGSI10 keeps its shape: {v1:?}");
}

#[test]
fn list_filters_pages_and_counts() {
    let broker = Broker::start();
    for (id, kind) in [("Car1", "Car"), ("Car2", "Car"), ("Room1", "Room"), ("Room2", "Room"), ("Room3", "Room")] {
        create(&broker, &json!({"id": id, "type": kind, "n": {"value": 1}}));
    }
    let ids = |path: &str| -> Vec<String> {
        let response = broker.get(path);
        assert_eq!(response.status, 200, "{path}: {response:?}");
        response.json().as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
    };
    // Creation order (millisecond timestamps, ties by id): created here in id order so that the test is exact.
    assert_eq!(ids("/v2/entities"), ["Car1", "Car2", "Room1", "Room2", "Room3"]);
    assert_eq!(ids("/v2/entities?type=Car"), ["Car1", "Car2"]);
    assert_eq!(ids("/v2/entities?id=Room1,Car2"), ["Car2", "Room1"]);
    assert_eq!(ids("/v2/entities?idPattern=^Room&type=Room"), ["Room1", "Room2", "Room3"]);
    assert_eq!(ids("/v2/entities?idPattern=2$"), ["Car2", "Room2"]);
    assert_eq!(ids("/v2/entities?type=Room,Car&limit=2&offset=1"), ["Car2", "Room1"]);
    let counted = broker.get("/v2/entities?type=Room&limit=1&options=count");
    assert_eq!(counted.header("fiware-total-count"), Some("3"), "{counted:?}");
    assert_eq!(broker.get("/v2/entities").header("fiware-total-count"), None, "count only when asked");
    let key_values = broker.get("/v2/entities?id=Car1&options=keyValues").json();
    assert_eq!(key_values, json!([{"id":"Car1","type":"Car","n":1}]));
    for index in 0..25 {
        create(&broker, &json!({"id": format!("Bulk{index:02}"), "type": "Bulk"}));
    }
    assert_eq!(ids("/v2/entities?type=Bulk").len(), 20, "default limit");
}

#[test]
fn delete_entity_answers_204_then_404() {
    let broker = Broker::start();
    create(&broker, &room("Room1", 1.0));
    assert_v2_error(&broker.delete("/v2/entities/Room1?type=Car"), 404, "NotFound");
    let deleted = broker.delete("/v2/entities/Room1");
    assert_eq!((deleted.status, deleted.body.as_str()), (204, ""), "{deleted:?}");
    assert_v2_error(&broker.get("/v2/entities/Room1"), 404, "NotFound");
    assert_v2_error(&broker.delete("/v2/entities/Room1"), 404, "NotFound");
}

#[test]
fn attrs_append_update_and_replace() {
    let broker = Broker::start();
    create(&broker, &room("Room1", 20.0));
    let key_values = |broker: &Broker| broker.get("/v2/entities/Room1?options=keyValues").json();

    let response =
        send(&broker, "POST", "/v2/entities/Room1/attrs", &json!({"co2":{"value":400},"pressure":{"value":1}}));
    assert_eq!(response.status, 204, "{response:?}");
    assert_eq!(key_values(&broker), json!({"id":"Room1","type":"Room","temperature":20.0,"pressure":1,"co2":400}));
    let strict =
        send(&broker, "POST", "/v2/entities/Room1/attrs?options=append", &json!({"co2":{"value":1},"x":{"value":1}}));
    assert_v2_error(&strict, 422, "Unprocessable");
    assert_eq!(key_values(&broker)["co2"], 400, "nothing written by a refused append");
    let missing_entity = send(&broker, "POST", "/v2/entities/Nope/attrs", &json!({"a":{"value":1}}));
    assert_v2_error(&missing_entity, 404, "NotFound");

    let patch = send(&broker, "PATCH", "/v2/entities/Room1/attrs", &json!({"temperature":{"value":22.5}}));
    assert_eq!(patch.status, 204, "{patch:?}");
    let temperature = broker.get("/v2/entities/Room1/attrs/temperature").json();
    assert_eq!(
        temperature,
        json!({"type":"Number","value":22.5,"metadata":{"unit":{"type":"Text","value":"CEL"}}}),
        "metadata kept, type inferred"
    );
    let partial =
        send(&broker, "PATCH", "/v2/entities/Room1/attrs", &json!({"temperature":{"value":1},"nope":{"value":1}}));
    assert_v2_error(&partial, 404, "NotFound");
    assert_eq!(key_values(&broker)["temperature"], 22.5, "no partial write");
    let kv_patch = send(&broker, "PATCH", "/v2/entities/Room1/attrs?options=keyValues", &json!({"co2":410}));
    assert_eq!(kv_patch.status, 204, "{kv_patch:?}");
    assert_v2_error(&send(&broker, "PATCH", "/v2/entities/Room1/attrs", &json!({})), 400, "BadRequest");

    let put = send(&broker, "PUT", "/v2/entities/Room1/attrs", &json!({"humidity":{"type":"Number","value":40}}));
    assert_eq!(put.status, 204, "{put:?}");
    assert_eq!(key_values(&broker), json!({"id":"Room1","type":"Room","humidity":40}));
    let attrs = broker.get("/v2/entities/Room1/attrs").json();
    assert_eq!(attrs, json!({"humidity":{"type":"Number","value":40,"metadata":{}}}));
    assert_eq!(broker.get("/v2/entities/Room1/attrs?options=keyValues").json(), json!({"humidity":40}));
    assert_v2_error(&broker.get("/v2/entities/Nope/attrs"), 404, "NotFound");
}

#[test]
fn single_attribute_and_value_routes() {
    let broker = Broker::start();
    create(
        &broker,
        &json!({"id":"Room1","type":"Room","temperature":{"value":20},"name":{"value":"hall"},
        "shape":{"value":{"w":2,"h":3}}}),
    );
    let put = send(&broker, "PUT", "/v2/entities/Room1/attrs/temperature", &json!({"type":"Float","value":21.5}));
    assert_eq!(put.status, 204, "{put:?}");
    assert_eq!(
        broker.get("/v2/entities/Room1/attrs/temperature").json(),
        json!({"type":"Float","value":21.5,"metadata":{}})
    );
    let missing = send(&broker, "PUT", "/v2/entities/Room1/attrs/nope", &json!({"value":1}));
    assert_v2_error(&missing, 404, "NotFound");
    assert_v2_error(&broker.get("/v2/entities/Room1/attrs/nope"), 404, "NotFound");

    let number = broker.get("/v2/entities/Room1/attrs/temperature/value");
    assert_eq!(number.body, "21.5", "{number:?}");
    assert!(number.content_type.as_deref().is_some_and(|t| t.starts_with("text/plain")), "{number:?}");
    assert_eq!(broker.get("/v2/entities/Room1/attrs/name/value").body, "\"hall\"");
    let object = broker.get("/v2/entities/Room1/attrs/shape/value");
    assert_eq!(object.json(), json!({"w":2,"h":3}));
    assert!(object.content_type.as_deref().is_some_and(|t| t.contains("json")), "{object:?}");

    let set_json = send(&broker, "PUT", "/v2/entities/Room1/attrs/shape/value", &json!({"w":5}));
    assert_eq!(set_json.status, 204, "{set_json:?}");
    let plain = [("Content-Type", "text/plain")];
    let set_text = broker.request("PUT", "/v2/entities/Room1/attrs/temperature/value", Some("30"), &plain);
    assert_eq!(set_text.status, 204, "{set_text:?}");
    let set_string = broker.request("PUT", "/v2/entities/Room1/attrs/name/value", Some("\"lobby\""), &plain);
    assert_eq!(set_string.status, 204, "{set_string:?}");
    let entity = broker.get("/v2/entities/Room1").json();
    assert_eq!(entity["temperature"], json!({"type":"Float","value":30,"metadata":{}}), "type kept");
    assert_eq!(entity["name"]["value"], "lobby");
    assert_eq!(entity["shape"]["value"], json!({"w":5}));
    let missing = broker.request("PUT", "/v2/entities/Room1/attrs/nope/value", Some("1"), &plain);
    assert_v2_error(&missing, 404, "NotFound");

    let deleted = broker.delete("/v2/entities/Room1/attrs/name");
    assert_eq!(deleted.status, 204, "{deleted:?}");
    assert_v2_error(&broker.delete("/v2/entities/Room1/attrs/name"), 404, "NotFound");
    assert!(broker.get("/v2/entities/Room1").json().get("name").is_none());
}

#[test]
fn tenants_are_isolated() {
    let broker = Broker::start();
    let tenant = [("Fiware-Service", "smartcity")];
    let response = broker.request("POST", "/v2/entities", Some(&room("Room1", 1.0).to_string()), &tenant);
    assert_eq!(response.status, 201, "{response:?}");
    assert_v2_error(&broker.get("/v2/entities/Room1"), 404, "NotFound");
    assert_eq!(broker.get("/v2/entities").json(), json!([]));
    let other = broker.request("GET", "/v2/entities", None, &[("Fiware-Service", "other")]);
    assert_eq!(other.json(), json!([]));
    let own = broker.request("GET", "/v2/entities/Room1?options=keyValues", None, &tenant);
    assert_eq!(own.json()["pressure"], 720, "{own:?}");
    let ngsi10 = broker.request("GET", "/ngsi10/entity/Room1", None, &tenant);
    assert_eq!(ngsi10.status, 200, "same tenant through NGSI10: {ngsi10:?}");
    let bad = broker.request("GET", "/v2/entities", None, &[("Fiware-Service", "bad/tenant")]);
    assert_v2_error(&bad, 400, "BadRequest");
    let path = broker.request("GET", "/v2/entities", None, &[("Fiware-ServicePath", "/park/#")]);
    assert_eq!(path.status, 200, "a valid service path is accepted: {path:?}");
    let bad_path = broker.request("GET", "/v2/entities", None, &[("Fiware-ServicePath", "park")]);
    assert_v2_error(&bad_path, 400, "BadRequest");
}

#[test]
fn v2_writes_notify_ngsi10_subscribers_and_read_through_ngsi10() {
    let broker = Broker::start();
    let sink = Sink::start();
    broker.subscribe_ok(&json!({"entities":[{"id":"Room.*","isPattern":true}],"reference":sink.url()}));
    let located = json!({"id":"Room1","type":"Room","temperature":{"value":21},
        "location":{"type":"geo:json","value":{"type":"Point","coordinates":[8.684208,49.406393]}}});
    create(&broker, &located);
    let notified = |value: i64| {
        move |notification: &Value| {
            let element = &notification["contextResponses"][0]["contextElement"];
            element["entityId"]["id"] == "Room1" && attr(element, "temperature") == Some(json!(value))
        }
    };
    sink.wait_notification(WAIT, "the v2 creation", notified(21));
    let patch = send(&broker, "PATCH", "/v2/entities/Room1/attrs", &json!({"temperature":{"value":22}}));
    assert_eq!(patch.status, 204, "{patch:?}");
    sink.wait_notification(WAIT, "the v2 update", notified(22));

    let element = broker.get("/ngsi10/entity/Room1").json();
    assert_eq!(element["entityId"], json!({"id":"Room1","type":"Room"}), "{element}");
    assert_eq!(attr(&element, "temperature"), Some(json!(22)), "{element}");
    let location = &element["domainMetadata"][0];
    assert_eq!(location["name"], "location", "{element}");
    assert_eq!(location["value"], json!({"latitude":49.406393,"longitude":8.684208}), "{element}");
    let circle = json!({"entities":[{"id":".*","isPattern":true}],"restriction":{"scopes":[{"scopeType":"circle",
        "scopeValue":{"centerLatitude":49.4,"centerLongitude":8.68,"radius":5000}}]}});
    let answer = broker.query_ok(&circle);
    assert_eq!(answer["contextResponses"][0]["contextElement"]["entityId"]["id"], "Room1", "{answer}");
    let v2 = broker.get("/v2/entities/Room1?options=keyValues").json();
    assert_eq!(
        v2["location"],
        json!({"type":"Point","coordinates":[8.684208,49.406393]}),
        "the derived point stays hidden"
    );

    assert_eq!(broker.delete("/v2/entities/Room1/attrs/location").status, 204);
    let element = broker.get("/ngsi10/entity/Room1").json();
    assert!(element.get("domainMetadata").is_none(), "the derived location goes with its attribute: {element}");
}

#[test]
fn ngsi10_entities_read_through_v2() {
    let broker = Broker::start();
    let element =
        located_element("Device.temp001", "Temperature", &[("temp", "integer", json!(10))], 49.4, 8.68, "Heidelberg");
    broker.update_ok("UPDATE", &[element]);
    let entity = broker.get("/v2/entities/Device.temp001").json();
    assert_eq!(entity["type"], "Temperature", "{entity}");
    assert_eq!(entity["temp"], json!({"type":"integer","value":10,"metadata":{}}), "{entity}");
    assert_eq!(entity["city"]["value"], "Heidelberg", "domain metadata show as attributes: {entity}");
    assert_eq!(entity["location"]["value"], json!({"latitude":49.4,"longitude":8.68}), "{entity}");
    let patch = send(&broker, "PATCH", "/v2/entities/Device.temp001/attrs?options=keyValues", &json!({"city":"Tokyo"}));
    assert_eq!(patch.status, 204, "{patch:?}");
    let element = broker.get("/ngsi10/entity/Device.temp001").json();
    let city = element["domainMetadata"].as_array().unwrap().iter().find(|m| m["name"] == "city").cloned();
    assert_eq!(city.map(|m| m["value"].clone()), Some(json!("Tokyo")), "written in place: {element}");
}

#[test]
fn fogflow_v2_notify_upserts_every_entity() {
    let broker = Broker::start();
    create(&broker, &room("Room1", 1.0));
    let notification = json!({"subscriptionId":"sub1","data":[
        {"id":"Room1","type":"Room","temperature":{"type":"Number","value":30}},
        {"id":"Room9","type":"Room","temperature":{"type":"Number","value":9}}]});
    let response = send(&broker, "POST", "/v2/notify", &notification);
    assert_eq!(response.status, 200, "{response:?}");
    let room1 = broker.get("/v2/entities/Room1?options=keyValues").json();
    assert_eq!(room1, json!({"id":"Room1","type":"Room","temperature":30,"pressure":720}), "merged");
    assert_eq!(broker.get("/v2/entities/Room9?options=keyValues").json()["temperature"], 9);
    assert_v2_error(&send(&broker, "POST", "/v2/notify", &json!({"subscriptionId":"s"})), 400, "BadRequest");
    assert_eq!(send(&broker, "POST", "/v2/op/notify", &notification).status, 200);
}
