//! The NGSI-LD core API under `/ngsi-ld/v1`: entity create / retrieve / replace / merge / delete with ProblemDetails
//! errors, options (`keyValues`, `concise`, `sysAttrs`, `attrs`), content negotiation (415, 406, `Link` with an
//! `application/ld+json` body, `LdContextNotAvailable`), inline user contexts, attribute append / update / partial
//! update / delete (204, 207), tenants (`NonexistentTenant`), and the shared store: LD writes are readable through
//! NGSI10 (positions included) and notify NGSI10 subscriptions. Queries and batches are in `ngsi_ld_queries`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{attr, raw_exchange, Broker, Resp, Sink};

const WAIT: Duration = Duration::from_secs(10);
const CORE: &str = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld";

/// A request with a JSON body (`application/json` unless `headers` say otherwise).
pub fn send(broker: &Broker, method: &str, path: &str, body: &Value, headers: &[(&str, &str)]) -> Resp {
    broker.request(method, path, Some(&body.to_string()), headers)
}

/// Asserts a ProblemDetails answer: status, type URI, a detail; returns the body.
pub fn assert_problem(response: &Resp, status: u16, kind: &str) -> Value {
    assert_eq!(response.status, status, "{response:?}");
    assert_eq!(response.content_type.as_deref(), Some("application/json"), "{response:?}");
    let body = response.json();
    assert_eq!(body["type"], format!("https://uri.etsi.org/ngsi-ld/errors/{kind}"), "{response:?}");
    assert!(body["title"].is_string() && body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{response:?}");
    body
}

/// A room entity (normalized).
pub fn room(id: &str, temperature: f64, longitude: f64, latitude: f64) -> Value {
    json!({"id": id, "type": "Room",
        "temperature": {"type": "Property", "value": temperature, "unitCode": "CEL"},
        "inBuilding": {"type": "Relationship", "object": "urn:ngsi-ld:Building:1"},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [longitude, latitude]}}})
}

/// `POST /ngsi-ld/v1/entities`, asserting 201.
pub fn create(broker: &Broker, entity: &Value, headers: &[(&str, &str)]) {
    let response = send(broker, "POST", "/ngsi-ld/v1/entities", entity, headers);
    assert_eq!(response.status, 201, "create {entity}: {response:?}");
}

#[test]
fn entities_are_created_retrieved_in_every_format_and_deleted() {
    let broker = Broker::start();
    let entity = room("urn:ngsi-ld:Room:1", 21.5, 8.68, 49.4);
    let response = send(&broker, "POST", "/ngsi-ld/v1/entities", &entity, &[]);
    assert_eq!(response.status, 201, "{response:?}");
    assert_eq!(response.header("location"), Some("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1"));
    let again = send(&broker, "POST", "/ngsi-ld/v1/entities", &entity, &[]);
    assert_problem(&again, 409, "AlreadyExists");

    let read = broker.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1");
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(read.content_type.as_deref(), Some("application/json"));
    assert!(read.header("link").is_some_and(|link| link.contains(CORE)), "{read:?}");
    assert_eq!(read.json(), entity);
    let ld =
        broker.request("GET", "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1", None, &[("Accept", "application/ld+json")]);
    assert_eq!(ld.content_type.as_deref(), Some("application/ld+json"));
    assert_eq!(ld.json()["@context"], CORE);

    let simple = broker.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1?options=keyValues").json();
    assert_eq!(simple["temperature"], json!(21.5));
    assert_eq!(simple["inBuilding"], "urn:ngsi-ld:Building:1");
    let concise = broker.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1?options=concise").json();
    assert_eq!(concise["temperature"], json!({"value": 21.5, "unitCode": "CEL"}));
    // `format` (V1.8) names the representation too and wins over `options`.
    let by_format = |format: &str| {
        broker.get(&format!("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1?format={format}&options=keyValues")).json()
    };
    assert_eq!(
        (by_format("simplified"), by_format("concise"), by_format("normalized")),
        (simple.clone(), concise.clone(), entity.clone())
    );
    let bad_format = broker.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1?format=geojson");
    assert_problem(&bad_format, 400, "BadRequestData");
    let sys = broker.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1?options=sysAttrs&attrs=temperature").json();
    assert!(sys["createdAt"].as_str().is_some_and(|t| t.ends_with('Z')), "{sys}");
    assert!(sys["modifiedAt"].is_string() && sys.get("location").is_none(), "{sys}");
    let none = broker.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1?attrs=humidity");
    assert_problem(&none, 404, "ResourceNotFound");
    assert_problem(&broker.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1?options=bogus"), 400, "BadRequestData");

    assert_eq!(broker.delete("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1").status, 204);
    assert_problem(&broker.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1"), 404, "ResourceNotFound");
    assert_problem(&broker.delete("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1"), 404, "ResourceNotFound");
}

#[test]
fn entities_are_replaced_and_merged() {
    let broker = Broker::start();
    create(&broker, &room("urn:ngsi-ld:Room:2", 20.0, 8.0, 49.0), &[]);
    let replacement = json!({"type": "Office", "seats": {"type": "Property", "value": 4}});
    let put = send(&broker, "PUT", "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:2", &replacement, &[]);
    assert_eq!(put.status, 204, "{put:?}");
    let read = broker.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:2").json();
    assert_eq!(read, json!({"id": "urn:ngsi-ld:Room:2", "type": "Office", "seats": {"type": "Property", "value": 4}}));
    let merge = json!({"seats": {"type": "Property", "value": 6}, "desk": {"type": "Property", "value": true}});
    assert_eq!(send(&broker, "PATCH", "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:2", &merge, &[]).status, 204);
    let read = broker.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:2?options=keyValues").json();
    assert_eq!(read, json!({"id": "urn:ngsi-ld:Room:2", "type": "Office", "seats": 6, "desk": true}));
    let merge_missing = send(&broker, "PATCH", "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:9", &merge, &[]);
    assert_problem(&merge_missing, 404, "ResourceNotFound");
    let missing = send(&broker, "PUT", "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:9", &replacement, &[]);
    assert_problem(&missing, 404, "ResourceNotFound");
    let other_id = json!({"id": "urn:x", "type": "Office"});
    assert_problem(
        &send(&broker, "PUT", "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:2", &other_id, &[]),
        400,
        "BadRequestData",
    );
}

#[test]
fn bad_requests_get_problem_details() {
    let broker = Broker::start();
    let path = "/ngsi-ld/v1/entities";
    assert_problem(&send(&broker, "POST", path, &json!({"id": "room1", "type": "Room"}), &[]), 400, "BadRequestData");
    assert_problem(&send(&broker, "POST", path, &json!({"id": "urn:a"}), &[]), 400, "BadRequestData");
    let bad_attribute = json!({"id": "urn:a", "type": "T", "p": {"type": "Property"}});
    assert_problem(&send(&broker, "POST", path, &bad_attribute, &[]), 400, "BadRequestData");
    assert_problem(&broker.request("POST", path, Some("{not json"), &[]), 400, "InvalidRequest");
    let entity = json!({"id": "urn:a", "type": "T"});
    let text = send(&broker, "POST", path, &entity, &[("Content-Type", "text/plain")]);
    assert_problem(&text, 415, "UnsupportedMediaType");
    let xml = broker.request("GET", "/ngsi-ld/v1/entities/urn:a", None, &[("Accept", "application/xml")]);
    assert_problem(&xml, 406, "NotAcceptable");
    let link = format!("<{CORE}>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\"");
    let with_context = json!({"id": "urn:a", "type": "T", "@context": CORE});
    let both = send(&broker, "POST", path, &with_context, &[("Content-Type", "application/ld+json"), ("Link", &link)]);
    assert_problem(&both, 400, "BadRequestData");
    let no_context = send(&broker, "POST", path, &entity, &[("Content-Type", "application/ld+json")]);
    assert_problem(&no_context, 400, "BadRequestData");
    assert_problem(&send(&broker, "POST", path, &with_context, &[]), 400, "BadRequestData");
    let remote = "<https://example.org/context.jsonld>; rel=\"http://www.w3.org/ns/json-ld#context\"";
    let unavailable = broker.request("GET", "/ngsi-ld/v1/entities/urn:a", None, &[("Link", remote)]);
    assert_problem(&unavailable, 503, "LdContextNotAvailable");
    let remote_body = json!({"id": "urn:a", "type": "T", "@context": ["https://example.org/context.jsonld"]});
    let unavailable = send(&broker, "POST", path, &remote_body, &[("Content-Type", "application/ld+json")]);
    assert_problem(&unavailable, 503, "LdContextNotAvailable");
    let huge = json!({"id": "urn:big", "type": "T", "p": {"type": "Property", "value": "x".repeat(2 * 1024 * 1024)}});
    let body = huge.to_string().into_bytes();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let (status, text) = raw_exchange(broker.port, &head, body);
    assert_eq!(status, 413, "{}", &text[..text.len().min(500)]);
    assert!(text.contains("https://uri.etsi.org/ngsi-ld/errors/InvalidRequest"), "{}", &text[..text.len().min(500)]);
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_problem(&broker.request("POST", path, Some(&deep), &[]), 400, "InvalidRequest");
    assert_problem(&broker.get("/ngsi-ld/v1/nothing"), 404, "ResourceNotFound");
    assert_problem(&broker.request("PATCH", "/ngsi-ld/v1/entities", None, &[]), 405, "OperationNotSupported");
    // The core context in a Link is fine, and so is the core context inline.
    let linked = send(&broker, "POST", path, &entity, &[("Link", &link)]);
    assert_eq!(linked.status, 201, "{linked:?}");
    let inline = json!({"id": "urn:b", "type": "T", "@context": CORE});
    assert_eq!(send(&broker, "POST", path, &inline, &[("Content-Type", "application/ld+json")]).status, 201);
}

#[test]
fn user_contexts_expand_terms_and_the_default_vocabulary_compacts() {
    let broker = Broker::start();
    let entity = json!({"id": "urn:ngsi-ld:Sensor:1", "type": "Sensor",
        "@context": [{"schema": "https://schema.org/", "brand": "schema:brand"}, CORE],
        "brand": {"type": "Property", "value": "ACME"},
        "https://uri.etsi.org/ngsi-ld/default-context/speed": {"type": "Property", "value": 3}});
    create(&broker, &entity, &[("Content-Type", "application/ld+json")]);
    let read = broker.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Sensor:1?options=keyValues").json();
    assert_eq!(
        read,
        json!({"id": "urn:ngsi-ld:Sensor:1", "type": "Sensor", "https://schema.org/brand": "ACME", "speed": 3})
    );
}

#[test]
fn attributes_are_appended_updated_patched_and_deleted() {
    let broker = Broker::start();
    let id = "urn:ngsi-ld:Room:3";
    create(&broker, &room(id, 20.0, 8.0, 49.0), &[]);
    let attrs = format!("/ngsi-ld/v1/entities/{id}/attrs");
    let humidity = json!({"humidity": {"type": "Property", "value": 40}});
    assert_eq!(send(&broker, "POST", &attrs, &humidity, &[]).status, 204);
    let both = json!({"humidity": {"type": "Property", "value": 50}, "co2": {"type": "Property", "value": 400}});
    let kept = send(&broker, "POST", &format!("{attrs}?options=noOverwrite"), &both, &[]);
    assert_eq!(kept.status, 207, "{kept:?}");
    let report = kept.json();
    assert_eq!(report["updated"], json!(["co2"]), "{report}");
    assert_eq!(report["notUpdated"][0]["attributeName"], "humidity", "{report}");

    let update = json!({"humidity": {"type": "Property", "value": 60}, "noise": {"type": "Property", "value": 1}});
    let patched = send(&broker, "PATCH", &attrs, &update, &[]);
    assert_eq!(patched.status, 207, "{patched:?}");
    assert_eq!(patched.json()["notUpdated"][0]["attributeName"], "noise");
    let exact = json!({"humidity": {"type": "Property", "value": 61}});
    assert_eq!(send(&broker, "PATCH", &attrs, &exact, &[]).status, 204);

    let fragment = json!({"value": 22.5, "observedAt": "2024-05-01T10:00:00Z"});
    assert_eq!(send(&broker, "PATCH", &format!("{attrs}/temperature"), &fragment, &[]).status, 204);
    let read = broker.get(&format!("/ngsi-ld/v1/entities/{id}")).json();
    assert_eq!(
        read["temperature"],
        json!({"type": "Property", "value": 22.5, "unitCode": "CEL", "observedAt": "2024-05-01T10:00:00Z"})
    );
    assert_eq!(read["humidity"]["value"], json!(61));
    assert_problem(&send(&broker, "PATCH", &format!("{attrs}/nothing"), &fragment, &[]), 404, "ResourceNotFound");
    let missing = "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:404/attrs";
    assert_problem(&send(&broker, "POST", missing, &humidity, &[]), 404, "ResourceNotFound");

    assert_eq!(broker.delete(&format!("{attrs}/humidity")).status, 204);
    assert_problem(&broker.delete(&format!("{attrs}/humidity")), 404, "ResourceNotFound");
    let dataset = broker.delete(&format!("{attrs}/co2?datasetId=urn:ngsi-ld:Dataset:1"));
    assert_problem(&dataset, 404, "ResourceNotFound");
    assert_eq!(broker.delete(&format!("{attrs}/co2?datasetId=urn:ngsi-ld:Dataset:1&deleteAll=true")).status, 204);
    let read = broker.get(&format!("/ngsi-ld/v1/entities/{id}?options=keyValues")).json();
    assert!(read.get("humidity").is_none() && read.get("co2").is_none(), "{read}");
}

#[test]
fn tenants_are_created_on_first_write_and_unknown_ones_are_refused() {
    let broker = Broker::start();
    let tenant = [("NGSILD-Tenant", "farm1")];
    let unknown = broker.request("GET", "/ngsi-ld/v1/entities/urn:ngsi-ld:Cow:1", None, &tenant);
    assert_problem(&unknown, 404, "NonexistentTenant");
    assert_eq!(unknown.header("ngsild-tenant"), Some("farm1"), "{unknown:?}");
    let query = broker.request("GET", "/ngsi-ld/v1/entities?type=Cow", None, &tenant);
    assert_problem(&query, 404, "NonexistentTenant");

    create(&broker, &json!({"id": "urn:ngsi-ld:Cow:1", "type": "Cow"}), &tenant);
    let read = broker.request("GET", "/ngsi-ld/v1/entities/urn:ngsi-ld:Cow:1", None, &tenant);
    assert_eq!(read.status, 200, "{read:?}");
    assert_problem(&broker.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Cow:1"), 404, "ResourceNotFound");
    let other = broker.request("GET", "/ngsi-ld/v1/entities/urn:ngsi-ld:Cow:2", None, &tenant);
    assert_problem(&other, 404, "ResourceNotFound");
    let ngsi10 = broker.request("GET", "/ngsi10/entity/urn:ngsi-ld:Cow:1", None, &[("Fiware-Service", "farm1")]);
    assert_eq!(ngsi10.status, 200, "NGSILD-Tenant and Fiware-Service share tenant names: {ngsi10:?}");
}

#[test]
fn ld_writes_are_read_through_ngsi10_and_notify_ngsi10_subscribers() {
    let broker = Broker::start();
    let sink = Sink::start();
    broker.subscribe_ok(
        &json!({"entities": [{"id": "urn:ngsi-ld:Room:.*", "isPattern": true}], "reference": sink.url()}),
    );
    create(&broker, &room("urn:ngsi-ld:Room:7", 21.0, 8.684208, 49.406393), &[]);
    let notified = |value: f64| {
        move |notification: &Value| {
            let element = &notification["contextResponses"][0]["contextElement"];
            element["entityId"]["id"] == "urn:ngsi-ld:Room:7" && attr(element, "temperature") == Some(json!(value))
        }
    };
    sink.wait_notification(WAIT, "the LD creation", notified(21.0));
    let fragment = json!({"value": 23.0});
    let patch = send(&broker, "PATCH", "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:7/attrs/temperature", &fragment, &[]);
    assert_eq!(patch.status, 204, "{patch:?}");
    sink.wait_notification(WAIT, "the LD partial update", notified(23.0));

    let element = broker.get("/ngsi10/entity/urn:ngsi-ld:Room:7").json();
    assert_eq!(element["entityId"], json!({"id": "urn:ngsi-ld:Room:7", "type": "Room"}), "{element}");
    assert_eq!(attr(&element, "temperature"), Some(json!(23.0)), "{element}");
    let location = &element["domainMetadata"][0];
    assert_eq!(location["name"], "location", "{element}");
    assert_eq!(location["value"], json!({"latitude": 49.406393, "longitude": 8.684208}), "{element}");
    let circle = json!({"entities": [{"id": ".*", "isPattern": true}], "restriction": {"scopes": [{"scopeType": "circle",
        "scopeValue": {"centerLatitude": 49.4, "centerLongitude": 8.68, "radius": 5000}}]}});
    let answer = broker.query_ok(&circle);
    assert_eq!(answer["contextResponses"][0]["contextElement"]["entityId"]["id"], "urn:ngsi-ld:Room:7", "{answer}");

    // An NGSI10 write reads through LD as Properties, its position as a location GeoProperty.
    broker.update_ok(
        "UPDATE",
        &[json!({"entityId": {"id": "urn:ngsi-ld:Device:1", "type": "Device"},
            "attributes": [{"name": "on", "type": "boolean", "value": true}],
            "domainMetadata": [{"name": "location", "type": "point", "value": {"latitude": 49.0, "longitude": 8.0}}]})],
    );
    let device = broker.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Device:1").json();
    assert_eq!(device["on"], json!({"type": "Property", "value": true}), "{device}");
    assert_eq!(device["location"]["value"], json!({"type": "Point", "coordinates": [8.0, 49.0]}), "{device}");
    assert_eq!(broker.delete("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:7").status, 204);
    assert_eq!(broker.get("/ngsi10/entity/urn:ngsi-ld:Room:7").status, 404);
}

#[test]
fn language_properties_are_shown_in_the_language_asked() {
    let broker = Broker::start();
    let museum = json!({"id": "urn:ngsi-ld:Museum:1", "type": "Museum",
        "name": {"type": "LanguageProperty", "languageMap": {"en": "Museum", "fr": "Musée", "de-CH": "Museum CH"}},
        "motto": {"type": "LanguageProperty", "languageMap": {"@none": "Ars longa", "en": "Art lasts"}},
        "visitors": {"type": "Property", "value": 10}});
    create(&broker, &museum, &[]);
    let get = |path: &str| {
        let response = broker.get(path);
        assert_eq!(response.status, 200, "{path}: {response:?}");
        response.json()
    };
    let french = get("/ngsi-ld/v1/entities/urn:ngsi-ld:Museum:1?lang=fr");
    assert_eq!(french["name"], json!({"type": "Property", "value": "Musée", "lang": "fr"}));
    assert_eq!(french["motto"], json!({"type": "Property", "value": "Ars longa", "lang": "@none"}), "@none fallback");
    assert_eq!(french["visitors"], json!({"type": "Property", "value": 10}));
    let weighted = get("/ngsi-ld/v1/entities/urn:ngsi-ld:Museum:1?lang=it,de;q=0.5,en;q=0.4");
    assert_eq!(weighted["name"]["value"], "Museum CH", "{weighted}");
    assert_eq!(weighted["name"]["lang"], "de-CH", "{weighted}");
    let concise = get("/ngsi-ld/v1/entities/urn:ngsi-ld:Museum:1?lang=en&options=concise");
    assert_eq!(concise["name"], json!({"value": "Museum", "lang": "en"}));
    let key_values = get("/ngsi-ld/v1/entities?type=Museum&lang=fr&options=keyValues");
    assert_eq!(
        key_values,
        json!([{"id": "urn:ngsi-ld:Museum:1", "type": "Museum", "name": "Musée",
        "motto": "Ars longa", "visitors": 10}])
    );
    let any = get("/ngsi-ld/v1/entities?type=Museum&lang=it&attrs=name");
    assert_eq!(any[0]["name"], json!({"type": "Property", "value": "Museum CH", "lang": "de-CH"}), "else any entry");
    let queried = broker.request(
        "POST",
        "/ngsi-ld/v1/entityOperations/query?lang=fr",
        Some(&json!({"type": "Query", "entities": [{"type": "Museum"}]}).to_string()),
        &[],
    );
    assert_eq!(queried.json()[0]["name"]["value"], "Musée", "{queried:?}");
    let stored = get("/ngsi-ld/v1/entities/urn:ngsi-ld:Museum:1");
    assert_eq!(stored["name"], museum["name"], "without lang the LanguageProperty is shown");
    assert_problem(&broker.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Museum:1?lang=fr;q=2"), 400, "BadRequestData");
    assert_problem(&broker.get("/ngsi-ld/v1/entities?type=Museum&lang=not%20a%20tag"), 400, "BadRequestData");
}

#[test]
fn multi_attributes_keep_one_instance_per_dataset_id() {
    let broker = Broker::start();
    let car = json!({"id": "urn:ngsi-ld:Car:1", "type": "Car",
        "speed": [{"type": "Property", "value": 50},
            {"type": "Property", "value": 52, "datasetId": "urn:ngsi-ld:Dataset:gps"}]});
    create(&broker, &car, &[]);
    let path = "/ngsi-ld/v1/entities/urn:ngsi-ld:Car:1";
    assert_eq!(broker.get(path).json(), car, "every instance, as written");
    let ngsi10 =
        broker.query_ok(&json!({"entities": [{"id": "urn:ngsi-ld:Car:1", "type": "Car", "isPattern": false}]}));
    let attributes = &ngsi10["contextResponses"][0]["contextElement"]["attributes"];
    assert_eq!(attributes.as_array().map(Vec::len), Some(2), "NGSI10 lists one attribute per instance: {ngsi10}");
    let v2 = broker.get("/v2/entities/urn:ngsi-ld:Car:1?options=keyValues").json();
    assert!(v2["speed"] == 50 || v2["speed"] == 52, "NGSIv2, keyed by name, shows one instance: {v2}");
    let speeds = |entity: &Value| -> Vec<(Value, Value)> {
        entity["speed"]
            .as_array()
            .expect("instances")
            .iter()
            .map(|i| (i["value"].clone(), i["datasetId"].clone()))
            .collect()
    };

    let radar = json!({"speed": {"type": "Property", "value": 49, "datasetId": "urn:ngsi-ld:Dataset:radar"}});
    assert_eq!(send(&broker, "POST", &format!("{path}/attrs"), &radar, &[]).status, 204);
    let patch = json!({"value": 55, "datasetId": "urn:ngsi-ld:Dataset:gps"});
    assert_eq!(send(&broker, "PATCH", &format!("{path}/attrs/speed"), &patch, &[]).status, 204);
    let default = json!({"speed": {"type": "Property", "value": 51}});
    assert_eq!(send(&broker, "PATCH", &format!("{path}/attrs"), &default, &[]).status, 204);
    assert_eq!(
        speeds(&broker.get(path).json()),
        vec![
            (json!(51), Value::Null),
            (json!(55), json!("urn:ngsi-ld:Dataset:gps")),
            (json!(49), json!("urn:ngsi-ld:Dataset:radar"))
        ],
        "each write touched only the instance of its datasetId"
    );
    let other = json!({"value": 1, "datasetId": "urn:ngsi-ld:Dataset:none"});
    assert_problem(&send(&broker, "PATCH", &format!("{path}/attrs/speed"), &other, &[]), 404, "ResourceNotFound");

    let key_values = broker.get(&format!("{path}?options=keyValues")).json();
    assert_eq!(key_values["speed"], json!([51, 55, 49]));
    let found = broker.get("/ngsi-ld/v1/entities?type=Car&q=speed==49").json();
    assert_eq!(found.as_array().map(Vec::len), Some(1), "q holds when one instance does: {found}");
    assert_eq!(broker.get("/ngsi-ld/v1/entities?type=Car&q=speed==30").json(), json!([]));
    let attribute = broker.get("/ngsi-ld/v1/attributes/speed").json();
    assert_eq!(attribute["attributeCount"], 1, "an entity counts once: {attribute}");

    let deleted = broker.delete(&format!("{path}/attrs/speed?datasetId=urn:ngsi-ld:Dataset:radar"));
    assert_eq!(deleted.status, 204, "{deleted:?}");
    assert_eq!(speeds(&broker.get(path).json()).len(), 2);
    assert_eq!(broker.delete(&format!("{path}/attrs/speed")).status, 204, "the default instance");
    let left = broker.get(path).json();
    assert_eq!(left["speed"]["datasetId"], "urn:ngsi-ld:Dataset:gps", "one instance left shows as an object: {left}");

    let twice = json!({"id": "urn:ngsi-ld:Car:2", "type": "Car",
        "speed": [{"type": "Property", "value": 1, "datasetId": "urn:d"}, {"type": "Property", "value": 2, "datasetId": "urn:d"}]});
    assert_problem(&send(&broker, "POST", "/ngsi-ld/v1/entities", &twice, &[]), 400, "BadRequestData");
    let defaults = json!({"id": "urn:ngsi-ld:Car:2", "type": "Car", "speed": [{"value": 1}, {"value": 2}]});
    assert_problem(&send(&broker, "POST", "/ngsi-ld/v1/entities", &defaults, &[]), 400, "BadRequestData");
}
