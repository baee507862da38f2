//! NGSI10 writes and entity reads: `updateContext` (UPDATE/APPEND merge, DELETE of attributes or of the whole
//! entity, the Orion flat element shape, the internal User-Agent, the `/v1/updateContext` alias) and the
//! `/ngsi10/entity[/{eid}[/{attr}]]` routes (list, one entity, one attribute, DELETE, 404s).

use serde_json::{json, Value};

use crate::common::{assert_ngsi_error, attr, attr_names, element, fogflow_sample, Broker};

#[test]
fn fogflow_sample_update_answers_json_and_is_readable() {
    let broker = Broker::start();
    let response = broker.post("/ngsi10/updateContext", &fogflow_sample());
    assert_eq!(response.status, 200, "{response:?}");
    assert!(response.content_type.as_deref().is_some_and(|t| t.contains("json")), "{response:?}");
    let answer = response.json();
    let responses = answer["contextResponses"].as_array().unwrap_or_else(|| panic!("no contextResponses: {answer}"));
    assert_eq!(responses.len(), 1, "{answer}");
    assert_eq!(responses[0]["contextElement"]["entityId"]["id"], "Device.temp001", "{answer}");
    assert_eq!(responses[0]["statusCode"]["code"], 200, "{answer}");

    let stored = broker.get("/ngsi10/entity/Device.temp001");
    assert_eq!(stored.status, 200, "{stored:?}");
    let entity = stored.json();
    assert_eq!(entity["entityId"]["id"], "Device.temp001");
    assert_eq!(entity["entityId"]["type"], "Temperature");
    assert_eq!(attr(&entity, "temp"), Some(json!(10)), "{entity}");
    let metadata = entity["domainMetadata"].as_array().unwrap_or_else(|| panic!("no domainMetadata: {entity}"));
    let location = metadata.iter().find(|m| m["name"] == "location").unwrap_or_else(|| panic!("no location: {entity}"));
    assert_eq!(location["type"], "point");
    assert_eq!(location["value"], json!({"latitude":49.406393,"longitude":8.684208}));
    assert!(metadata.iter().any(|m| m["name"] == "city" && m["value"] == "Heidelberg"), "{entity}");
}

#[test]
fn update_then_get_returns_merged_entity() {
    let broker = Broker::start();
    broker.update_ok(
        "UPDATE",
        &[element("Room.1", "Room", &[("temp", "integer", json!(20)), ("hum", "integer", json!(40))])],
    );
    broker.update_ok("UPDATE", &[element("Room.1", "Room", &[("temp", "float", json!(21.5))])]);
    let entity = broker.get("/ngsi10/entity/Room.1").json();
    assert_eq!(attr_names(&entity), ["hum", "temp"], "other attributes are kept: {entity}");
    assert_eq!(attr(&entity, "temp"), Some(json!(21.5)), "value replaced: {entity}");
    assert_eq!(attr(&entity, "hum"), Some(json!(40)));
    let temp = entity["attributes"].as_array().unwrap().iter().find(|a| a["name"] == "temp").unwrap().clone();
    assert_eq!(temp["type"], "float", "the attribute type is updated too (design): {entity}");
}

#[test]
fn append_adds_attributes_and_creates_missing_entities() {
    let broker = Broker::start();
    broker.update_ok("APPEND", &[element("Room.2", "Room", &[("temp", "integer", json!(1))])]);
    broker.update_ok("APPEND", &[element("Room.2", "Room", &[("co2", "integer", json!(400))])]);
    let entity = broker.get("/ngsi10/entity/Room.2").json();
    assert_eq!(attr_names(&entity), ["co2", "temp"], "{entity}");
    assert_eq!(attr(&entity, "co2"), Some(json!(400)));
}

#[test]
fn update_action_is_case_insensitive() {
    let broker = Broker::start();
    broker.update_ok("update", &[element("Room.3", "Room", &[("temp", "integer", json!(3))])]);
    assert_eq!(broker.get("/ngsi10/entity/Room.3").status, 200);
}

#[test]
fn delete_with_attributes_removes_only_those() {
    let broker = Broker::start();
    broker.update_ok(
        "UPDATE",
        &[element(
            "Room.4",
            "Room",
            &[("a", "integer", json!(1)), ("b", "integer", json!(2)), ("c", "integer", json!(3))],
        )],
    );
    let delete = json!({"entityId":{"id":"Room.4","type":"Room"},"attributes":[{"name":"a"},{"name":"c"}]});
    broker.update_ok("DELETE", &[delete]);
    let entity = broker.get("/ngsi10/entity/Room.4");
    assert_eq!(entity.status, 200, "the entity itself stays: {entity:?}");
    assert_eq!(attr_names(&entity.json()), ["b"], "{}", entity.body);
    assert_eq!(broker.get("/ngsi10/entity/Room.4/a").status, 404);
}

#[test]
fn delete_without_attributes_removes_the_entity() {
    let broker = Broker::start();
    broker.update_ok("UPDATE", &[element("Room.5", "Room", &[("a", "integer", json!(1))])]);
    broker.update_ok("DELETE", &[json!({"entityId":{"id":"Room.5"}})]);
    let gone = broker.get("/ngsi10/entity/Room.5");
    assert_ngsi_error(&gone, 404);
    let listed = broker.get("/ngsi10/entity").json();
    assert!(!listed.to_string().contains("Room.5"), "deleted entity still listed: {listed}");
}

#[test]
fn orion_flat_element_is_stored_under_its_id() {
    let broker = Broker::start();
    let body = json!({"contextElements":[{"id":"Room1","type":"Room","isPattern":"false",
        "attributes":[{"name":"temperature","type":"float","value":23.5},{"name":"pressure","type":"integer","value":720}]}],
        "updateAction":"APPEND"});
    let response = broker.post("/ngsi10/updateContext", &body);
    assert_eq!(response.status, 200, "{response:?}");
    let entity = broker.get("/ngsi10/entity/Room1");
    assert_eq!(entity.status, 200, "flat element not stored under its id: {entity:?}");
    let entity = entity.json();
    assert_eq!(entity["entityId"]["id"], "Room1");
    assert_eq!(entity["entityId"]["type"], "Room");
    assert_eq!(attr(&entity, "temperature"), Some(json!(23.5)));
    assert_eq!(attr_names(&entity), ["pressure", "temperature"]);
    let listed = broker.get("/ngsi10/entity").json();
    let ids: Vec<&str> = listed.as_array().unwrap().iter().filter_map(|e| e["entityId"]["id"].as_str()).collect();
    assert!(!ids.contains(&""), "something was stored under an empty id: {listed}");
}

#[test]
fn internal_user_agent_update_also_gets_a_json_answer() {
    let broker = Broker::start();
    let response = broker.request(
        "POST",
        "/ngsi10/updateContext",
        Some(&fogflow_sample().to_string()),
        &[("User-Agent", "lightweight-iot-broker")],
    );
    assert_eq!(response.status, 200, "{response:?}");
    let answer = response.json();
    assert_eq!(answer["contextResponses"][0]["contextElement"]["entityId"]["id"], "Device.temp001", "{answer}");
    assert_eq!(broker.get("/ngsi10/entity/Device.temp001").status, 200);
}

#[test]
fn v1_update_context_alias_writes_like_ngsi10() {
    let broker = Broker::start();
    let response = broker.post("/v1/updateContext", &fogflow_sample());
    assert_eq!(response.status, 200, "{response:?}");
    assert!(response.json()["contextResponses"].is_array(), "{}", response.body);
    assert_eq!(attr(&broker.get("/ngsi10/entity/Device.temp001").json(), "temp"), Some(json!(10)));
}

#[test]
fn entity_list_and_attribute_routes() {
    let broker = Broker::start();
    assert_eq!(broker.get("/ngsi10/entity").json(), json!([]), "empty store lists nothing");
    broker.post("/ngsi10/updateContext", &fogflow_sample());
    broker.update_ok("UPDATE", &[element("Device.temp002", "Temperature", &[("temp", "integer", json!(11))])]);
    let listed = broker.get("/ngsi10/entity");
    assert_eq!(listed.status, 200);
    let mut ids: Vec<String> = listed
        .json()
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {}", listed.body))
        .iter()
        .map(|e| e["entityId"]["id"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["Device.temp001", "Device.temp002"]);

    let attribute = broker.get("/ngsi10/entity/Device.temp001/temp");
    assert_eq!(attribute.status, 200, "{attribute:?}");
    let attribute = attribute.json();
    assert_eq!(attribute["name"], "temp");
    assert_eq!(attribute["type"], "integer");
    assert_eq!(attribute["value"], 10);

    assert_ngsi_error(&broker.get("/ngsi10/entity/Device.temp001/nosuch"), 404);
    assert_ngsi_error(&broker.get("/ngsi10/entity/Nobody/temp"), 404);
    assert_ngsi_error(&broker.get("/ngsi10/entity/Nobody"), 404);
}

#[test]
fn delete_entity_route_removes_it_and_unknown_ids_are_404() {
    let broker = Broker::start();
    broker.post("/ngsi10/updateContext", &fogflow_sample());
    let deleted = broker.delete("/ngsi10/entity/Device.temp001");
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert_ngsi_error(&broker.get("/ngsi10/entity/Device.temp001"), 404);
    assert_ngsi_error(&broker.delete("/ngsi10/entity/Device.temp001"), 404);
    assert_ngsi_error(&broker.delete("/ngsi10/entity/NeverExisted"), 404);
}

#[test]
fn one_request_may_write_several_entities() {
    let broker = Broker::start();
    let answer = broker.update_ok(
        "UPDATE",
        &[
            element("Multi.1", "M", &[("v", "integer", json!(1))]),
            element("Multi.2", "M", &[("v", "integer", json!(2))]),
            element("Multi.3", "M", &[("v", "integer", json!(3))]),
        ],
    );
    assert_eq!(answer["contextResponses"].as_array().map(Vec::len), Some(3), "one response per element: {answer}");
    for n in 1..=3 {
        assert_eq!(attr(&broker.get(&format!("/ngsi10/entity/Multi.{n}")).json(), "v"), Some(json!(n)));
    }
}

#[test]
fn entities_are_separated_by_fiware_service_tenant() {
    let broker = Broker::start();
    let body =
        json!({"contextElements":[element("Tenant.1", "T", &[("v", "integer", json!(1))])],"updateAction":"UPDATE"});
    let response = broker.post_with("/ngsi10/updateContext", &body, &[("Fiware-Service", "tenanta")]);
    assert_eq!(response.status, 200, "{response:?}");
    let own = broker.request("GET", "/ngsi10/entity/Tenant.1", None, &[("Fiware-Service", "tenanta")]);
    assert_eq!(own.status, 200, "{own:?}");
    assert_eq!(broker.get("/ngsi10/entity/Tenant.1").status, 404, "the default tenant does not see tenanta's entity");
}

#[test]
fn concurrent_updates_of_one_entity_lose_no_attribute() {
    let broker = Broker::start();
    std::thread::scope(|scope| {
        for writer in 0..4 {
            let broker = &broker;
            scope.spawn(move || {
                for n in 0..20 {
                    let name = format!("a{writer}");
                    broker.update_ok("UPDATE", &[element("Shared.1", "S", &[(name.as_str(), "integer", json!(n))])]);
                }
            });
        }
    });
    let entity = broker.get("/ngsi10/entity/Shared.1").json();
    assert_eq!(attr_names(&entity), ["a0", "a1", "a2", "a3"], "{entity}");
    for writer in 0..4 {
        assert_eq!(attr(&entity, &format!("a{writer}")), Some(json!(19)), "{entity}");
    }
}

#[test]
fn ids_with_colons_and_encoded_characters_round_trip() {
    let broker = Broker::start();
    broker.update_ok("UPDATE", &[element("urn:ngsi-ld:Vehicle:A100", "Vehicle", &[("speed", "float", json!(80.5))])]);
    let entity = broker.get("/ngsi10/entity/urn:ngsi-ld:Vehicle:A100");
    assert_eq!(entity.status, 200, "{entity:?}");
    assert_eq!(entity.json()["entityId"]["id"], "urn:ngsi-ld:Vehicle:A100");
    assert_eq!(broker.get("/ngsi10/entity/urn%3Angsi-ld%3AVehicle%3AA100/speed").status, 200);
    assert_eq!(broker.delete("/ngsi10/entity/urn:ngsi-ld:Vehicle:A100").status, 200);
    assert_eq!(broker.get("/ngsi10/entity/urn:ngsi-ld:Vehicle:A100").status, 404);
}

#[test]
fn per_element_status_reports_what_could_not_be_deleted() {
    let broker = Broker::start();
    broker.update_ok("UPDATE", &[element("Here.1", "H", &[("x", "integer", json!(1))])]);
    let answer =
        broker.update_ok("DELETE", &[json!({"entityId":{"id":"Missing.1"}}), json!({"entityId":{"id":"Here.1"}})]);
    let statuses: Vec<&Value> = answer["contextResponses"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .map(|r| &r["statusCode"]["code"])
        .collect();
    assert_eq!(statuses, [&json!(404), &json!(200)], "{answer}");
    assert_eq!(broker.get("/ngsi10/entity/Here.1").status, 404);
}
