//! The mapping between the three flavours over one entity store (`docs/ngsi-mapping.md`), against the real
//! binary: an entity written through NGSI10, NGSIv2 or NGSI-LD is read through the other two with the mapped
//! shape (ids, types, values, metadata ↔ sub-properties, relationships, location), positions written in one
//! flavour drive the geo queries of the others, `Fiware-Service` and `NGSILD-Tenant` name the same tenants, and a
//! change made through each flavour notifies an NGSI10 and an NGSIv2 subscription, each in its own format.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{attr, elements, Broker, Recorded, Resp, Sink};

const WAIT: Duration = Duration::from_secs(10);
/// No request body.
const NO_BODY: Option<&str> = None;

fn send(broker: &Broker, method: &str, path: &str, body: &Value, headers: &[(&str, &str)]) -> Resp {
    broker.request(method, path, Some(&body.to_string()), headers)
}

/// `GET path` with headers, asserting `status`; answers the JSON body (Null when empty).
fn read(broker: &Broker, path: &str, headers: &[(&str, &str)], status: u16) -> Value {
    let response = broker.request("GET", path, NO_BODY, headers);
    assert_eq!(response.status, status, "GET {path}: {response:?}");
    if response.body.is_empty() {
        Value::Null
    } else {
        response.json()
    }
}

/// The NGSI10 element of entity `id` through `queryContext` (with `headers`).
fn ngsi10_element(broker: &Broker, id: &str, headers: &[(&str, &str)]) -> Value {
    let response = broker.post_with("/ngsi10/queryContext", &json!({"entities":[{"id":id}]}), headers);
    assert_eq!(response.status, 200, "{response:?}");
    let found = elements(&response.json());
    assert_eq!(found.len(), 1, "{response:?}");
    found[0].clone()
}

/// One attribute (or domain metadata, with `list = "domainMetadata"`) of an NGSI10 element, whole.
fn ngsi10_item(element: &Value, list: &str, name: &str) -> Value {
    let items = element[list].as_array().unwrap_or_else(|| panic!("no {list} in {element}"));
    items.iter().find(|a| a["name"] == name).cloned().unwrap_or_else(|| panic!("no {name} in {element}"))
}

/// The ids an NGSI-LD query answers.
fn ld_ids(broker: &Broker, query: &str) -> Vec<String> {
    let answer = read(broker, &format!("/ngsi-ld/v1/entities?{query}"), &[], 200);
    answer.as_array().expect("array").iter().map(|e| e["id"].as_str().unwrap_or_default().to_string()).collect()
}

/// The ids a v2 query answers.
fn v2_ids(broker: &Broker, query: &str) -> Vec<String> {
    let answer = read(broker, &format!("/v2/entities?{query}"), &[], 200);
    answer.as_array().expect("array").iter().map(|e| e["id"].as_str().unwrap_or_default().to_string()).collect()
}

/// The ids an NGSI10 circle scope of 1 km around (lat, lon) answers.
fn ngsi10_ids_near(broker: &Broker, lat: f64, lon: f64) -> Vec<String> {
    let scope = json!({"scopeType":"circle","scopeValue":{"centerLatitude":lat,"centerLongitude":lon,"radius":1000}});
    let answer = broker.query_ok(&json!({"entities":[{"id":".*","isPattern":true}],"restriction":{"scopes":[scope]}}));
    elements(&answer).iter().map(|e| e["entityId"]["id"].as_str().unwrap_or_default().to_string()).collect()
}

fn ngsi10_write(broker: &Broker, id: &str, temp: Value, headers: &[(&str, &str)]) {
    let element = json!({"entityId":{"id":id,"type":"Temperature"},
        "attributes":[{"name":"temp","type":"integer","value":temp,"metadata":[{"name":"unit","type":"string","value":"C"}]},
                      {"name":"owner","type":"relationship","value":"urn:ngsi-ld:Person:1"}],
        "domainMetadata":[{"name":"location","type":"point","value":{"latitude":49.4,"longitude":8.6}},
                          {"name":"city","type":"string","value":"Heidelberg"}]});
    broker.update_ok_with("UPDATE", &[element], headers);
}

fn v2_write(broker: &Broker, id: &str, temp: Value, headers: &[(&str, &str)]) {
    let entity = json!({"id":id,"type":"Room",
        "temp":{"type":"Number","value":temp,"metadata":{"unitCode":{"type":"Text","value":"CEL"},
            "observedAt":{"type":"DateTime","value":"2024-01-01T00:00:00Z"}}},
        "owner":{"type":"Relationship","value":"urn:ngsi-ld:Person:1"},
        "location":{"type":"geo:json","value":{"type":"Point","coordinates":[8.68,49.4]}},
        "name":{"value":"hall"}});
    let response = send(broker, "POST", "/v2/entities?options=upsert", &entity, headers);
    assert!(matches!(response.status, 201 | 204), "{response:?}");
}

fn ld_write(broker: &Broker, id: &str, temp: Value, headers: &[(&str, &str)]) {
    let entity = json!({"id":id,"type":"Room",
        "temp":{"type":"Property","value":temp,"unitCode":"CEL","observedAt":"2024-01-01T00:00:00Z",
            "datasetId":"urn:ngsi-ld:Dataset:a",
            "accuracy":{"type":"Property","value":0.5,"method":{"type":"Property","value":"dropped"}}},
        "owner":{"type":"Relationship","object":"urn:ngsi-ld:Person:1"},
        "location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[8.7,49.41]}},
        "name":{"type":"LanguageProperty","languageMap":{"en":"Room","de":"Raum"}}});
    let response = send(broker, "POST", "/ngsi-ld/v1/entityOperations/upsert", &json!([entity]), headers);
    assert!(matches!(response.status, 201 | 204), "{response:?}");
}

#[test]
fn an_ngsi10_element_reads_through_v2_as_is_and_through_ld_as_properties_relationship_and_geoproperty() {
    let broker = Broker::start();
    ngsi10_write(&broker, "Device.temp001", json!(10), &[]);

    let v2 = read(&broker, "/v2/entities/Device.temp001", &[], 200);
    assert_eq!((&v2["id"], &v2["type"]), (&json!("Device.temp001"), &json!("Temperature")));
    assert_eq!(v2["temp"], json!({"type":"integer","value":10,"metadata":{"unit":{"type":"string","value":"C"}}}));
    assert_eq!(v2["owner"], json!({"type":"relationship","value":"urn:ngsi-ld:Person:1","metadata":{}}));
    assert_eq!(v2["location"], json!({"type":"point","value":{"latitude":49.4,"longitude":8.6},"metadata":{}}));
    assert_eq!(v2["city"], json!({"type":"string","value":"Heidelberg","metadata":{}}));

    let listed = read(&broker, "/ngsi-ld/v1/entities?type=Temperature", &[], 200);
    let ld = &listed[0];
    assert_eq!(ld["id"], "Device.temp001", "a non-URI id is listed as stored, not made a URI");
    assert_eq!(ld["temp"], json!({"type":"Property","value":10,"unit":{"type":"Property","value":"C"}}));
    assert_eq!(ld["owner"], json!({"type":"Relationship","object":"urn:ngsi-ld:Person:1"}));
    assert_eq!(ld["location"], json!({"type":"GeoProperty","value":{"type":"Point","coordinates":[8.6,49.4]}}));
    assert_eq!(ld["city"], json!({"type":"Property","value":"Heidelberg"}));
    let by_id = read(&broker, "/ngsi-ld/v1/entities?id=Device.temp001", &[], 200);
    assert_eq!(by_id.as_array().map(Vec::len), Some(1), "{by_id}");
    let retrieve = read(&broker, "/ngsi-ld/v1/entities/Device.temp001", &[], 400);
    assert_eq!(retrieve["type"], "https://uri.etsi.org/ngsi-ld/errors/BadRequestData", "{retrieve}");
    read(&broker, "/ngsi-ld/v1/entities/urn:Device.temp001", &[], 404);
}

#[test]
fn a_v2_entity_reads_through_ngsi10_unchanged_and_through_ld_with_metadata_as_sub_properties() {
    let broker = Broker::start();
    v2_write(&broker, "urn:ngsi-ld:Room:v2", json!(21.5), &[]);

    let element = ngsi10_element(&broker, "urn:ngsi-ld:Room:v2", &[]);
    assert_eq!(element["entityId"]["type"], "Room");
    let temp = ngsi10_item(&element, "attributes", "temp");
    assert_eq!((&temp["type"], &temp["value"]), (&json!("Number"), &json!(21.5)));
    assert!(temp["metadata"].as_array().unwrap().contains(&json!({"name":"unitCode","type":"Text","value":"CEL"})));
    assert_eq!(ngsi10_item(&element, "attributes", "name")["type"], "Text", "Orion's inferred type is stored");
    assert_eq!(ngsi10_item(&element, "attributes", "location")["type"], "geo:json");
    let point = ngsi10_item(&element, "domainMetadata", "location");
    assert_eq!(point, json!({"name":"location","type":"point","value":{"latitude":49.4,"longitude":8.68}}));

    let ld = read(&broker, "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:v2", &[], 200);
    assert_eq!(
        ld["temp"],
        json!({"type":"Property","value":21.5,"unitCode":"CEL","observedAt":"2024-01-01T00:00:00Z"}),
        "v2 metadata named unitCode / observedAt become the LD sub-properties"
    );
    assert_eq!(ld["owner"], json!({"type":"Relationship","object":"urn:ngsi-ld:Person:1"}));
    assert_eq!(ld["location"], json!({"type":"GeoProperty","value":{"type":"Point","coordinates":[8.68,49.4]}}));
    assert_eq!(ld["name"], json!({"type":"Property","value":"hall"}));
    let concise = read(&broker, "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:v2?options=concise", &[], 200);
    assert_eq!(concise["location"], json!({"type":"Point","coordinates":[8.68,49.4]}));
}

#[test]
fn an_ld_entity_reads_through_v2_and_ngsi10_with_sub_properties_as_typed_metadata() {
    let broker = Broker::start();
    ld_write(&broker, "urn:ngsi-ld:Room:ld", json!(21.5), &[]);

    let v2 = read(&broker, "/v2/entities/urn:ngsi-ld:Room:ld", &[], 200);
    assert_eq!(
        v2["temp"],
        json!({"type":"Property","value":21.5,"metadata":{
            "unitCode":{"type":"Text","value":"CEL"},"observedAt":{"type":"DateTime","value":"2024-01-01T00:00:00Z"},
            "datasetId":{"type":"URI","value":"urn:ngsi-ld:Dataset:a"},"accuracy":{"type":"Property","value":0.5}}})
    );
    assert_eq!(v2["owner"], json!({"type":"Relationship","value":"urn:ngsi-ld:Person:1","metadata":{}}));
    assert_eq!(v2["location"]["type"], "GeoProperty", "the GeoProperty is shown as written, not as its point");
    assert_eq!(v2["name"], json!({"type":"LanguageProperty","value":{"en":"Room","de":"Raum"},"metadata":{}}));

    let element = ngsi10_element(&broker, "urn:ngsi-ld:Room:ld", &[]);
    assert_eq!(attr(&element, "owner"), Some(json!("urn:ngsi-ld:Person:1")));
    let point = ngsi10_item(&element, "domainMetadata", "location");
    assert_eq!(point["value"], json!({"latitude":49.41,"longitude":8.7}));

    let back = read(&broker, "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:ld", &[], 200);
    assert_eq!(back["temp"]["datasetId"], "urn:ngsi-ld:Dataset:a", "LD reads its own write back losslessly");
    assert_eq!(back["temp"]["accuracy"], json!({"type":"Property","value":0.5}), "sub-sub-properties are dropped");
    assert_eq!(back["name"], json!({"type":"LanguageProperty","languageMap":{"en":"Room","de":"Raum"}}));
}

#[test]
fn a_point_written_in_any_flavour_drives_the_geo_queries_of_all_three() {
    let broker = Broker::start();
    ngsi10_write(&broker, "Device.temp001", json!(1), &[]);
    v2_write(&broker, "urn:ngsi-ld:Room:v2", json!(1), &[]);
    ld_write(&broker, "urn:ngsi-ld:Room:ld", json!(1), &[]);
    let point = send(
        &broker,
        "POST",
        "/v2/entities",
        &json!({"id":"Pole1","pos":{"type":"geo:point","value":"49.4, 8.68"}}),
        &[],
    );
    assert_eq!(point.status, 201, "{point:?}");

    let near = |lat: f64, lon: f64| {
        let ld = ld_ids(
            &broker,
            &format!(
                "type=Temperature,Room,Thing&georel=near;maxDistance==500&geometry=Point&coordinates=[{lon},{lat}]"
            ),
        );
        let v2 = v2_ids(&broker, &format!("georel=near;maxDistance:500&geometry=point&coords={lat},{lon}"));
        (ld, v2, ngsi10_ids_near(&broker, lat, lon))
    };
    let everyone = |ids: &[String], id: &str| ids.iter().any(|i| i == id);
    let (ld, v2, ngsi10) = near(49.4, 8.6);
    for (name, ids) in [("LD", &ld), ("v2", &v2), ("NGSI10", &ngsi10)] {
        assert!(everyone(ids, "Device.temp001"), "{name} sees the NGSI10 point: {ids:?}");
    }
    let (ld, v2, ngsi10) = near(49.4, 8.68);
    for (name, ids) in [("LD", &ld), ("v2", &v2), ("NGSI10", &ngsi10)] {
        assert!(everyone(ids, "urn:ngsi-ld:Room:v2"), "{name} sees the v2 geo:json point: {ids:?}");
        assert!(everyone(ids, "Pole1"), "{name} sees the v2 geo:point: {ids:?}");
    }
    let (ld, v2, ngsi10) = near(49.41, 8.7);
    for (name, ids) in [("LD", &ld), ("v2", &v2), ("NGSI10", &ngsi10)] {
        assert!(everyone(ids, "urn:ngsi-ld:Room:ld"), "{name} sees the LD GeoProperty point: {ids:?}");
    }
    let pole = read(&broker, "/ngsi-ld/v1/entities?id=Pole1", &[], 200);
    assert_eq!(pole[0]["pos"], json!({"type":"Property","value":"49.4, 8.68"}), "geo:point is a string Property");
    assert_eq!(pole[0]["location"]["type"], "GeoProperty", "its derived point reads as a location GeoProperty");
}

#[test]
fn fiware_service_and_ngsild_tenant_name_the_same_tenants_and_the_default_one_is_shared() {
    let broker = Broker::start();
    ld_write(&broker, "urn:ngsi-ld:Cow:1", json!(1), &[("NGSILD-Tenant", "Farm1")]);
    v2_write(&broker, "urn:ngsi-ld:Cow:2", json!(2), &[("Fiware-Service", "farm1")]);
    ngsi10_write(&broker, "urn:ngsi-ld:Cow:3", json!(3), &[("Fiware-Service", "FARM1")]);

    let ld = [("NGSILD-Tenant", "farm1")];
    let service = [("Fiware-Service", "farm1")];
    for id in ["urn:ngsi-ld:Cow:1", "urn:ngsi-ld:Cow:2", "urn:ngsi-ld:Cow:3"] {
        read(&broker, &format!("/ngsi-ld/v1/entities/{id}"), &ld, 200);
        read(&broker, &format!("/v2/entities/{id}"), &service, 200);
        ngsi10_element(&broker, id, &service);
        read(&broker, &format!("/v2/entities/{id}"), &[], 404);
        read(&broker, &format!("/ngsi-ld/v1/entities/{id}"), &[], 404);
    }
    let other = read(&broker, "/v2/entities/urn:ngsi-ld:Cow:1", &[("NGSILD-Tenant", "farm1")], 404);
    assert_eq!(other["error"], "NotFound", "v2 reads Fiware-Service only: {other}");
    let missing = read(&broker, "/ngsi-ld/v1/entities/urn:ngsi-ld:Cow:1", &[("NGSILD-Tenant", "farm2")], 404);
    assert_eq!(missing["type"], "https://uri.etsi.org/ngsi-ld/errors/NonexistentTenant", "{missing}");

    ngsi10_write(&broker, "urn:ngsi-ld:Default:1", json!(4), &[]);
    read(&broker, "/ngsi-ld/v1/entities/urn:ngsi-ld:Default:1", &[], 200);
    read(&broker, "/v2/entities/urn:ngsi-ld:Default:1", &[("Fiware-Service", "")], 200);
}

#[test]
fn system_attributes_show_in_ld_and_as_orion_builtins_in_v2() {
    let broker = Broker::start();
    v2_write(&broker, "urn:ngsi-ld:Room:sys", json!(1), &[]);
    let ld = read(&broker, "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:sys?options=sysAttrs", &[], 200);
    assert!(ld["createdAt"].is_string() && ld["modifiedAt"].is_string(), "{ld}");
    read(&broker, "/v2/entities/urn:ngsi-ld:Room:sys?options=sysAttrs", &[], 400);
    let v2 = read(&broker, "/v2/entities/urn:ngsi-ld:Room:sys?attrs=dateCreated,dateModified", &[], 200);
    let date = |value: &Value| json!({"type":"DateTime","value":value,"metadata":{}});
    assert_eq!(
        v2,
        json!({"id":"urn:ngsi-ld:Room:sys","type":"Room",
            "dateCreated":date(&ld["createdAt"]),"dateModified":date(&ld["modifiedAt"])}),
        "Orion's builtin attributes, the entity's times"
    );
    let path = "/v2/entities/urn:ngsi-ld:Room:sys?attrs=temp&metadata=dateCreated,dateModified";
    let v2 = read(&broker, path, &[], 200);
    let stamp = |value: &Value| json!({"type":"DateTime","value":value});
    assert_eq!(
        v2["temp"]["metadata"],
        json!({"dateCreated":stamp(&ld["temp"]["createdAt"]),"dateModified":stamp(&ld["temp"]["modifiedAt"])}),
        "the attribute's times as Orion's builtin metadata (user metadata not named are left out): {v2}"
    );
    let all = read(&broker, "/v2/entities/urn:ngsi-ld:Room:sys/attrs?metadata=*,dateModified", &[], 200);
    assert_eq!(all["temp"]["metadata"]["unitCode"], json!({"type":"Text","value":"CEL"}), "{all}");
    assert_eq!(all["temp"]["metadata"]["dateModified"], stamp(&ld["temp"]["modifiedAt"]), "{all}");
    let plain = read(&broker, "/v2/entities/urn:ngsi-ld:Room:sys?attrs=temp", &[], 200);
    assert_eq!(plain["temp"]["metadata"].as_object().map(|m| m.len()), Some(2), "no builtins unless asked: {plain}");
}

/// Subscribes an NGSI10 and an NGSIv2 subscription (both on every entity) to one sink; v2 notifications arrive
/// on `/v2sub`.
fn subscribe_both(broker: &Broker, sink: &Sink, headers: &[(&str, &str)]) {
    let ngsi10 = json!({"entities":[{"id":".*","isPattern":true}],"reference":sink.url()});
    broker.subscribe_ok_with(&ngsi10, headers);
    let v2 = json!({"subject":{"entities":[{"idPattern":".*"}]},
        "notification":{"http":{"url":format!("{}/v2sub", sink.url())}}});
    let response = send(broker, "POST", "/v2/subscriptions?options=skipInitialNotification", &v2, headers);
    assert_eq!(response.status, 201, "{response:?}");
}

/// Waits for an NGSI10 notification of `id` with `temp` = `value` and a v2 one; answers (NGSI10 element, v2
/// entity, v2 request).
fn both_notified(sink: &Sink, id: &str, value: &Value) -> (Value, Value, Recorded) {
    let ngsi10_of = |r: &Recorded| {
        let found = if r.path == "/notifyContext" { elements(&r.json()) } else { Vec::new() };
        found.into_iter().find(|e| e["entityId"]["id"] == id && attr(e, "temp").as_ref() == Some(value))
    };
    let v2_of = |r: &Recorded| {
        let data = if r.path == "/v2sub" { r.json()["data"].as_array().cloned().unwrap_or_default() } else { vec![] };
        data.into_iter().find(|e| e["id"] == id && &e["temp"]["value"] == value)
    };
    let requests = sink.wait_until(WAIT, &format!("NGSI10 and v2 notifications of {id}"), |requests| {
        requests.iter().any(|r| ngsi10_of(r).is_some()) && requests.iter().any(|r| v2_of(r).is_some())
    });
    let ngsi10 = requests.iter().find_map(ngsi10_of).expect("NGSI10 notification");
    let v2_request = requests.iter().find(|r| v2_of(r).is_some()).expect("v2 notification").clone();
    (ngsi10, v2_of(&v2_request).expect("v2 entity"), v2_request)
}

#[test]
fn an_ngsi10_change_notifies_ngsi10_and_v2_subscribers_each_in_its_own_format() {
    let broker = Broker::start();
    let sink = Sink::start();
    subscribe_both(&broker, &sink, &[]);
    ngsi10_write(&broker, "Device.temp001", json!(10), &[]);
    let (ngsi10, v2, _) = both_notified(&sink, "Device.temp001", &json!(10));
    assert_eq!(ngsi10["entityId"]["type"], "Temperature");
    assert_eq!(ngsi10_item(&ngsi10, "domainMetadata", "location")["value"], json!({"latitude":49.4,"longitude":8.6}));
    assert_eq!(v2["type"], "Temperature");
    assert_eq!(v2["temp"], json!({"type":"integer","value":10,"metadata":{"unit":{"type":"string","value":"C"}}}));
    assert_eq!(v2["location"], json!({"type":"point","value":{"latitude":49.4,"longitude":8.6},"metadata":{}}));
}

#[test]
fn a_v2_change_notifies_ngsi10_and_v2_subscribers_each_in_its_own_format() {
    let broker = Broker::start();
    let sink = Sink::start();
    subscribe_both(&broker, &sink, &[]);
    v2_write(&broker, "urn:ngsi-ld:Room:v2", json!(21.5), &[]);
    let (ngsi10, v2, _) = both_notified(&sink, "urn:ngsi-ld:Room:v2", &json!(21.5));
    assert_eq!(ngsi10_item(&ngsi10, "attributes", "temp")["type"], "Number");
    assert_eq!(ngsi10_item(&ngsi10, "domainMetadata", "location")["value"], json!({"latitude":49.4,"longitude":8.68}));
    assert_eq!(v2["temp"]["metadata"]["unitCode"], json!({"type":"Text","value":"CEL"}));
    assert_eq!(
        v2["location"],
        json!({"type":"geo:json","value":{"type":"Point","coordinates":[8.68,49.4]},"metadata":{}})
    );
}

#[test]
fn an_ld_change_in_a_tenant_notifies_that_tenants_ngsi10_and_v2_subscribers_each_in_its_own_format() {
    let broker = Broker::start();
    let sink = Sink::start();
    subscribe_both(&broker, &sink, &[("Fiware-Service", "farm1")]);
    ld_write(&broker, "urn:ngsi-ld:Room:ld", json!(7), &[("NGSILD-Tenant", "farm1")]);
    let (ngsi10, v2, request) = both_notified(&sink, "urn:ngsi-ld:Room:ld", &json!(7));
    assert_eq!(ngsi10_item(&ngsi10, "attributes", "owner")["type"], "Relationship");
    assert_eq!(ngsi10_item(&ngsi10, "domainMetadata", "location")["value"], json!({"latitude":49.41,"longitude":8.7}));
    assert_eq!(v2["temp"]["metadata"]["observedAt"], json!({"type":"DateTime","value":"2024-01-01T00:00:00Z"}));
    assert_eq!(v2["owner"]["type"], "Relationship");
    assert_eq!(request.header("fiware-service"), Some("farm1"));
}

#[test]
fn ld_q_reads_v2_and_ngsi10_attribute_metadata_as_sub_properties() {
    let broker = Broker::start();
    ngsi10_write(&broker, "Device.temp001", json!(10), &[]);
    v2_write(&broker, "urn:ngsi-ld:Room:v2", json!(21.5), &[]);
    assert_eq!(ld_ids(&broker, "type=Temperature&q=temp.unit==%22C%22"), ["Device.temp001"]);
    assert_eq!(ld_ids(&broker, "type=Room&q=temp.unitCode==%22CEL%22"), ["urn:ngsi-ld:Room:v2"]);
    let observed = "type=Room&q=temp.observedAt>=%222023-01-01T00:00:00Z%22";
    assert_eq!(ld_ids(&broker, observed), ["urn:ngsi-ld:Room:v2"]);
    assert_eq!(v2_ids(&broker, "type=Room&q=temp>20"), ["urn:ngsi-ld:Room:v2"]);
}

#[test]
fn a_term_of_an_inline_ld_context_is_an_iri_attribute_name_in_v2_and_ngsi10() {
    let broker = Broker::start();
    let car = json!({"@context":[{"brand":"https://schema.org/brand"},"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"],
        "id":"urn:ngsi-ld:Car:1","type":"Car","brand":{"type":"Property","value":"Volvo"}});
    let created = send(&broker, "POST", "/ngsi-ld/v1/entities", &car, &[("Content-Type", "application/ld+json")]);
    assert_eq!(created.status, 201, "{created:?}");
    let v2 = read(&broker, "/v2/entities/urn:ngsi-ld:Car:1", &[], 200);
    assert_eq!(v2["https://schema.org/brand"], json!({"type":"Property","value":"Volvo","metadata":{}}));
    read(&broker, "/v2/entities/urn:ngsi-ld:Car:1/attrs/https%3A%2F%2Fschema.org%2Fbrand", &[], 400);
    let element = ngsi10_element(&broker, "urn:ngsi-ld:Car:1", &[]);
    assert_eq!(attr(&element, "https://schema.org/brand"), Some(json!("Volvo")));
}

#[test]
fn an_ld_change_reaches_an_ngsi10_subscriber_asking_for_ngsi_ld_as_an_ld_upsert() {
    let broker = Broker::start();
    let sink = Sink::start();
    let subscription = json!({"entities":[{"id":"urn:ngsi-ld:Room:.*","isPattern":true}],"reference":sink.url()});
    broker.subscribe_ok_with(&subscription, &[("Destination", "NGSI-LD")]);
    ld_write(&broker, "urn:ngsi-ld:Room:ld", json!(3), &[]);
    let path = "/ngsi-ld/v1/entityOperations/upsert";
    let requests = sink.wait_until(WAIT, "an NGSI-LD upsert", |requests| requests.iter().any(|r| r.path == path));
    let upsert = requests.iter().find(|r| r.path == path).expect("upsert").json();
    let entity = &upsert[0];
    assert_eq!((&entity["id"], &entity["type"]), (&json!("urn:ngsi-ld:Room:ld"), &json!("Room")));
    assert_eq!(entity["temp"]["value"], 3);
    assert_eq!(entity["owner"], json!({"type":"Relationship","object":"urn:ngsi-ld:Person:1"}));
    assert_eq!(entity["location"], json!({"type":"GeoProperty","value":{"type":"Point","coordinates":[8.7,49.41]}}));
}

#[test]
fn non_point_geometries_are_seen_by_ld_geo_queries_only() {
    let broker = Broker::start();
    let polygon = json!({"type":"Polygon","coordinates":[[[8,49],[9,49],[9,50],[8,49]]]});
    let field = json!({"id":"urn:ngsi-ld:Field:1","type":"Field","location":{"type":"geo:json","value":polygon}});
    assert_eq!(send(&broker, "POST", "/v2/entities", &field, &[]).status, 201);
    let farm = json!({"id":"urn:ngsi-ld:Field:2","type":"Field","area":{"type":"GeoProperty","value":polygon}});
    assert_eq!(send(&broker, "POST", "/ngsi-ld/v1/entities", &farm, &[]).status, 201);
    let pole = json!({"id":"urn:ngsi-ld:Pole:1","type":"Field","pos":{"type":"geo:point","value":"49.2, 8.8"}});
    assert_eq!(send(&broker, "POST", "/v2/entities", &pole, &[]).status, 201);

    let inside = "type=Field&georel=intersects&geometry=Point&coordinates=[8.8,49.2]";
    assert_eq!(ld_ids(&broker, inside), ["urn:ngsi-ld:Field:1", "urn:ngsi-ld:Pole:1"]);
    assert_eq!(ld_ids(&broker, &format!("{inside}&geoproperty=area")), ["urn:ngsi-ld:Field:2"]);
    assert!(ld_ids(&broker, &format!("{inside}&geoproperty=pos")).is_empty(), "geo:point is no GeoProperty");
    assert_eq!(v2_ids(&broker, "georel=coveredBy&geometry=box&coords=48,7;51,10"), ["urn:ngsi-ld:Pole:1"]);
    assert_eq!(ngsi10_ids_near(&broker, 49.2, 8.8), ["urn:ngsi-ld:Pole:1"]);
    let element = ngsi10_element(&broker, "urn:ngsi-ld:Field:1", &[]);
    assert!(element.get("domainMetadata").is_none(), "a Polygon gives no position: {element}");
}

#[test]
fn an_attribute_hides_the_domain_metadata_of_the_same_name_in_v2_and_ld() {
    let broker = Broker::start();
    let element = json!({"entityId":{"id":"urn:ngsi-ld:Shop:1","type":"Shop"},
        "attributes":[{"name":"city","type":"string","value":"Tokyo"}],
        "domainMetadata":[{"name":"city","type":"string","value":"Heidelberg"}]});
    broker.update_ok("UPDATE", &[element]);
    let v2 = read(&broker, "/v2/entities/urn:ngsi-ld:Shop:1", &[], 200);
    assert_eq!(v2["city"]["value"], "Tokyo");
    let ld = read(&broker, "/ngsi-ld/v1/entities/urn:ngsi-ld:Shop:1", &[], 200);
    assert_eq!(ld["city"], json!({"type":"Property","value":"Tokyo"}));
}

#[test]
fn ld_upsert_notifications_carry_what_the_ld_api_shows() {
    let broker = Broker::start();
    let sink = Sink::start();
    let subscription = json!({"entities":[{"id":"Shop\\..*","isPattern":true}],"reference":sink.url()});
    broker.subscribe_ok_with(&subscription, &[("Destination", "NGSI-LD")]);
    let room = json!({"id":"urn:ngsi-ld:Shop.1","type":"Shop",
        "temperature":{"type":"Property","value":21,"unitCode":"CEL"},
        "area":{"type":"GeoProperty","value":{"type":"Polygon","coordinates":[[[8,49],[9,49],[9,50],[8,49]]]}}});
    assert_eq!(send(&broker, "POST", "/ngsi-ld/v1/entities", &room, &[]).status, 201);
    let element = json!({"entityId":{"id":"Shop.2","type":"Shop"},
        "attributes":[{"name":"city","type":"string","value":"Tokyo"}],
        "domainMetadata":[{"name":"city","type":"string","value":"Heidelberg"}]});
    broker.update_ok("UPDATE", &[element]);
    let path = "/ngsi-ld/v1/entityOperations/upsert";
    let requests =
        sink.wait_until(WAIT, "both upserts", |requests| requests.iter().filter(|r| r.path == path).count() >= 2);
    let entities: Vec<serde_json::Value> = requests
        .iter()
        .filter(|r| r.path == path)
        .flat_map(|r| r.json().as_array().cloned().unwrap_or_default())
        .collect();
    let ld = entities.iter().find(|e| e["id"] == "urn:ngsi-ld:Shop.1").expect("the LD entity");
    assert_eq!(ld["temperature"]["unitCode"], "CEL", "sub-properties kept: {ld}");
    assert_eq!(ld["area"]["type"], "GeoProperty", "{ld}");
    let v1 = entities.iter().find(|e| e["id"] == "urn:Shop.2").expect("the NGSI10 entity, with FogFlow's urn: prefix");
    assert_eq!(v1["city"]["value"], "Tokyo", "the attribute wins over domain metadata: {v1}");
    assert!(
        requests.iter().all(|r| r.header("ngsild-tenant").is_none()),
        "no empty tenant header for the default tenant"
    );
}
