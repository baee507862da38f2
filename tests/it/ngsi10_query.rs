//! NGSI10 `queryContext` on one broker loaded with a small fixture: by id, by unanchored id pattern, by type,
//! attribute filtering and projection, the restriction scopes (circle, polygon, simplegeolocation,
//! stringQuery, nearby), the empty answer, and `limit`/`offset` paging.

use serde_json::{json, Value};

use crate::common::{attr, attr_names, element, ids, located_element, sorted_ids, Broker};

const HEIDELBERG: (f64, f64) = (49.406393, 8.684208);
const HEIDELBERG_NEAR: (f64, f64) = (49.41, 8.69);
const TOKYO: (f64, f64) = (35.692221, 139.709059);

/// Device.temp001 (Heidelberg, temp+status), Device.temp002 (Tokyo, temp), Device.hum001 (near Heidelberg,
/// hum), Sensor.noloc (no position, temp), MyDevice.9 (Berlin, type Other).
fn loaded_broker() -> Broker {
    let broker = Broker::start();
    broker.update_ok(
        "UPDATE",
        &[
            located_element(
                "Device.temp001",
                "Temperature",
                &[("temp", "integer", json!(10)), ("status", "string", json!("ok"))],
                HEIDELBERG.0,
                HEIDELBERG.1,
                "Heidelberg",
            ),
            located_element(
                "Device.temp002",
                "Temperature",
                &[("temp", "integer", json!(20))],
                TOKYO.0,
                TOKYO.1,
                "Tokyo",
            ),
            located_element(
                "Device.hum001",
                "Humidity",
                &[("hum", "integer", json!(50))],
                HEIDELBERG_NEAR.0,
                HEIDELBERG_NEAR.1,
                "Heidelberg",
            ),
            element("Sensor.noloc", "Temperature", &[("temp", "integer", json!(5))]),
            located_element("MyDevice.9", "Other", &[("x", "integer", json!(1))], 52.52, 13.405, "Berlin"),
        ],
    );
    broker
}

fn query_ids(broker: &Broker, body: Value) -> Vec<String> {
    sorted_ids(&broker.query_ok(&body))
}

fn everything() -> Value {
    json!([{"id": ".*", "isPattern": true}])
}

#[test]
fn query_by_id_pattern_and_type() {
    let broker = loaded_broker();
    let answer = broker.query_ok(&json!({"entities":[{"id":"Device.temp001"}]}));
    assert_eq!(ids(&answer), ["Device.temp001"], "{answer}");
    let element = &answer["contextResponses"][0];
    assert_eq!(element["statusCode"]["code"], 200, "{answer}");
    assert_eq!(attr(&element["contextElement"], "temp"), Some(json!(10)));
    assert_eq!(element["contextElement"]["entityId"]["type"], "Temperature");

    assert_eq!(
        query_ids(&broker, json!({"entities":[{"id":"Device.*","isPattern":true}]})),
        ["Device.hum001", "Device.temp001", "Device.temp002", "MyDevice.9"],
        "patterns are unanchored regexes"
    );
    assert_eq!(
        query_ids(&broker, json!({"entities":[{"id":"^Device\\.temp","isPattern":true}]})),
        ["Device.temp001", "Device.temp002"]
    );
    assert_eq!(
        query_ids(&broker, json!({"entities":[{"id":"","type":"Temperature","isPattern":true}]})),
        ["Device.temp001", "Device.temp002", "Sensor.noloc"],
        "type with an empty pattern selects every entity of that type"
    );
    assert_eq!(
        query_ids(&broker, json!({"entities":[{"id":"Device.*","type":"Temperature","isPattern":true}]})),
        ["Device.temp001", "Device.temp002"]
    );
    assert_eq!(
        query_ids(&broker, json!({"entities":[{"id":"Device.temp001"},{"id":"Sensor.noloc"}]})),
        ["Device.temp001", "Sensor.noloc"],
        "several entity ids are a union"
    );
}

#[test]
fn query_attributes_filter_and_project() {
    let broker = loaded_broker();
    let answer = broker.query_ok(&json!({"entities": everything(), "attributes": ["temp"]}));
    assert_eq!(
        sorted_ids(&answer),
        ["Device.temp001", "Device.temp002", "Sensor.noloc"],
        "entities lacking temp are excluded"
    );
    for element in crate::common::elements(&answer) {
        assert_eq!(attr_names(&element), ["temp"], "only listed attributes are returned: {element}");
    }
    let located =
        crate::common::elements(&answer).into_iter().find(|e| e["entityId"]["id"] == "Device.temp001").unwrap();
    assert!(located["domainMetadata"].is_array(), "domain metadata is kept in projections: {located}");

    assert_eq!(
        query_ids(&broker, json!({"entities": everything(), "attributes": ["temp", "status"]})),
        ["Device.temp001"],
        "an entity must have all listed attributes"
    );
}

#[test]
fn query_geo_scopes() {
    let broker = loaded_broker();
    let circle = json!({"entities": everything(), "restriction": {"scopes": [{"scopeType":"circle",
        "scopeValue":{"centerLatitude":HEIDELBERG.0,"centerLongitude":HEIDELBERG.1,"radius":5000}}]}});
    assert_eq!(query_ids(&broker, circle), ["Device.hum001", "Device.temp001"]);

    let tight = json!({"entities": everything(), "restriction": {"scopes": [{"scopeType":"circle",
        "scopeValue":{"centerLatitude":HEIDELBERG.0,"centerLongitude":HEIDELBERG.1,"radius":100}}]}});
    assert_eq!(query_ids(&broker, tight), ["Device.temp001"], "radius is in metres");

    let polygon = json!({"entities": everything(), "restriction": {"scopes": [{"scopeType":"polygon",
        "scopeValue":{"vertices":[{"latitude":35.0,"longitude":139.0},{"latitude":36.0,"longitude":139.0},
                                  {"latitude":36.0,"longitude":140.0},{"latitude":35.0,"longitude":140.0}]}}]}});
    assert_eq!(query_ids(&broker, polygon), ["Device.temp002"]);

    let rectangle = json!({"entities": everything(), "restriction": {"scopes": [{"scopeType":"simplegeolocation",
        "scopeValue":{"nw_Corner":"50,8","se_Corner":"49,9"}}]}});
    assert_eq!(query_ids(&broker, rectangle), ["Device.hum001", "Device.temp001"]);

    let combined = json!({"entities":[{"id":"","type":"Temperature","isPattern":true}], "restriction": {"scopes": [{"scopeType":"circle",
        "scopeValue":{"centerLatitude":HEIDELBERG.0,"centerLongitude":HEIDELBERG.1,"radius":5000}}]}});
    assert_eq!(query_ids(&broker, combined), ["Device.temp001"], "scopes and entity selection combine");
}

#[test]
fn query_string_query_scope_matches_domain_metadata() {
    let broker = loaded_broker();
    let heidelberg = json!({"entities": everything(), "restriction": {"scopes": [{"scopeType":"stringQuery","scopeValue":"city=Heidelberg"}]}});
    assert_eq!(query_ids(&broker, heidelberg), ["Device.hum001", "Device.temp001"]);
    let nowhere = json!({"entities": everything(), "restriction": {"scopes": [{"scopeType":"stringQuery","scopeValue":"city=Paris"}]}});
    assert!(query_ids(&broker, nowhere).is_empty());
}

#[test]
fn query_nearby_returns_nearest_first_up_to_limit() {
    let broker = loaded_broker();
    let nearby = json!({"entities": everything(), "restriction": {"scopes": [{"scopeType":"nearby",
        "scopeValue":{"latitude":HEIDELBERG_NEAR.0,"longitude":HEIDELBERG_NEAR.1,"limit":2}}]}});
    assert_eq!(ids(&broker.query_ok(&nearby)), ["Device.hum001", "Device.temp001"]);

    let from_tokyo = json!({"entities": everything(), "restriction": {"scopes": [{"scopeType":"nearby",
        "scopeValue":{"latitude":TOKYO.0,"longitude":TOKYO.1,"limit":3}}]}});
    let order = ids(&broker.query_ok(&from_tokyo));
    assert_eq!(order.len(), 3, "{order:?}");
    assert_eq!(order[0..2], ["Device.temp002", "MyDevice.9"], "Tokyo, then Berlin: {order:?}");
    assert!(!order.contains(&"Sensor.noloc".to_string()), "entities without a position come last: {order:?}");
}

#[test]
fn query_without_match_answers_200_with_error_code_ok_only() {
    let broker = loaded_broker();
    let response = broker.post("/ngsi10/queryContext", &json!({"entities":[{"id":"Nobody.here"}]}));
    assert_eq!(response.status, 200, "{response:?}");
    let answer = response.json();
    assert!(
        match answer.get("contextResponses") {
            None => true,
            Some(list) => list.as_array().is_some_and(Vec::is_empty),
        },
        "{answer}"
    );
    assert_eq!(answer["errorCode"]["code"], 200, "{answer}");
    assert_eq!(answer["errorCode"]["reasonPhrase"], "OK", "{answer}");
}

#[test]
fn query_limit_and_offset_page_through_results() {
    let broker = loaded_broker();
    let body = json!({"entities":[{"id":"Device.*","isPattern":true}]});
    let all = ids(&broker.query_ok(&body));
    assert_eq!(all.len(), 4);
    let page = |limit: usize, offset: usize| {
        let response = broker.post(&format!("/ngsi10/queryContext?limit={limit}&offset={offset}"), &body);
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(response.header("fiware-total-count"), Some("4"), "every page reports the total: {response:?}");
        ids(&response.json())
    };
    let first = page(3, 0);
    let second = page(3, 3);
    assert_eq!(first.len(), 3, "{first:?}");
    assert_eq!(second.len(), 1, "{second:?}");
    let mut joined: Vec<String> = first.into_iter().chain(second).collect();
    joined.sort();
    let mut expected = all.clone();
    expected.sort();
    assert_eq!(joined, expected, "pages are disjoint and cover everything");
    assert!(page(3, 10).is_empty());
}

#[test]
fn query_with_internal_user_agent_reads_local_entities() {
    let broker = loaded_broker();
    let response = broker.request(
        "POST",
        "/ngsi10/queryContext",
        Some(&json!({"entities":[{"id":"Device.temp002"}]}).to_string()),
        &[("User-Agent", "lightweight-iot-broker")],
    );
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(ids(&response.json()), ["Device.temp002"]);
}
