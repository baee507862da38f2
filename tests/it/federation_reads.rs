//! NGSIv2 and NGSI-LD reads federated through discovery, with discovery and two brokers as separate processes of
//! the real binary: a client's `GET` of an entity another broker holds is fetched from it and rendered in the
//! flavour asked, listings and queries merge the other broker's matching entities before filtering and paging,
//! broker-to-broker reads stay local, and a broker that no longer answers makes a listing partial.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{broker_at, fast_discovery, wait_registered, Broker, Resp};

const WAIT: Duration = Duration::from_secs(15);
const INTERNAL: (&str, &str) = ("User-Agent", "lightweight-iot-broker");

fn registered(discovery: &Broker, id: &str) {
    wait_registered(discovery, id, WAIT);
}

/// Creates a `Room` with a temperature and a position through NGSIv2.
fn room(broker: &Broker, id: &str, temperature: i64, longitude: f64) {
    let entity = json!({"id":id,"type":"Room",
        "temperature":{"type":"Number","value":temperature,"metadata":{"unitCode":{"type":"Text","value":"CEL"}}},
        "location":{"type":"geo:json","value":{"type":"Point","coordinates":[longitude,49.4]}}});
    let created = broker.post("/v2/entities", &entity);
    assert_eq!(created.status, 201, "{created:?}");
}

fn ids(response: &Resp) -> Vec<String> {
    assert_eq!(response.status, 200, "{response:?}");
    let answer = response.json();
    answer.as_array().unwrap_or_else(|| panic!("not an array: {answer}")).iter().map(|e| e["id"].to_string()).collect()
}

fn quoted(list: &[&str]) -> Vec<String> {
    list.iter().map(|id| Value::from(*id).to_string()).collect()
}

#[test]
fn v2_and_ld_reads_at_one_broker_see_the_other_brokers_entities() {
    let discovery = fast_discovery();
    let edge = broker_at(&discovery, "002");
    let cloud = broker_at(&discovery, "001");
    room(&edge, "urn:ngsi-ld:Room:edge", 20, 8.60);
    room(&cloud, "urn:ngsi-ld:Room:cloud", 30, 8.70);
    registered(&discovery, "urn:ngsi-ld:Room:edge");
    registered(&discovery, "urn:ngsi-ld:Room:cloud");
    let (edge_id, cloud_id) = ("\"urn:ngsi-ld:Room:edge\"", "\"urn:ngsi-ld:Room:cloud\"");

    let v2 = cloud.get("/v2/entities/urn:ngsi-ld:Room:edge?type=Room");
    assert_eq!(v2.status, 200, "{v2:?}");
    assert_eq!(v2.json()["temperature"]["value"], 20, "rendered as NGSIv2: {}", v2.body);
    assert_eq!(v2.json()["temperature"]["metadata"]["unitCode"]["value"], "CEL", "{}", v2.body);
    let key_values = cloud.get("/v2/entities/urn:ngsi-ld:Room:edge?options=keyValues&attrs=temperature");
    assert_eq!(key_values.json(), json!({"id":"urn:ngsi-ld:Room:edge","type":"Room","temperature":20}));
    assert_eq!(cloud.get("/v2/entities/urn:ngsi-ld:Room:edge?type=Other").status, 404, "the type is checked");
    let ld = cloud.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:edge?options=sysAttrs");
    assert_eq!(ld.status, 200, "{ld:?}");
    let ld = ld.json();
    assert_eq!(ld["temperature"]["type"], "Property", "rendered as NGSI-LD: {ld}");
    assert_eq!(ld["temperature"]["value"], 20, "{ld}");
    assert_eq!(ld["temperature"]["unitCode"], "CEL", "{ld}");
    assert_eq!(ld["location"]["type"], "GeoProperty", "{ld}");
    assert!(ld.get("createdAt").is_none(), "no invented system attributes for a remote entity: {ld}");
    assert_eq!(cloud.get("/v2/entities/urn:ngsi-ld:Room:nowhere").status, 404);
    assert_eq!(cloud.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:nowhere").status, 404);

    assert_eq!(ids(&cloud.get("/v2/entities?type=Room")), [cloud_id, edge_id], "own entities first, then others'");
    assert_eq!(ids(&cloud.get("/v2/entities?type=Room&q=temperature%3C25")), [edge_id], "filtered after the merge");
    let paged = cloud.get("/v2/entities?type=Room&limit=1&offset=1&options=count");
    assert_eq!(ids(&paged), [edge_id], "paged after the merge");
    assert_eq!(paged.header("fiware-total-count"), Some("2"));
    assert!(paged.header("fogflow-partial-result").is_none(), "everybody answered: {paged:?}");
    let near = "/v2/entities?type=Room&georel=near;maxDistance:50000&geometry=point&coords=49.4,8.59";
    assert_eq!(ids(&cloud.get(near)), [edge_id, cloud_id], "nearest first across brokers");
    let op_query = cloud.post("/v2/op/query", &json!({"entities":[{"idPattern":"^urn:ngsi-ld:Room:","type":"Room"}]}));
    assert_eq!(ids(&op_query), [cloud_id, edge_id]);

    assert_eq!(ids(&cloud.get("/ngsi-ld/v1/entities?type=Room")), [cloud_id, edge_id]);
    assert_eq!(ids(&cloud.get("/ngsi-ld/v1/entities?type=Room&q=temperature%3C25")), [edge_id]);
    let ld_paged = cloud.get("/ngsi-ld/v1/entities?idPattern=Room&limit=1&offset=1&count=true");
    assert_eq!(ids(&ld_paged), [edge_id]);
    assert_eq!(ld_paged.header("ngsild-results-count"), Some("2"));
    let ld_only_edge = cloud.get("/ngsi-ld/v1/entities?id=urn:ngsi-ld:Room:edge&type=Room");
    assert_eq!(ids(&ld_only_edge), [edge_id]);

    let internal = cloud.request("GET", "/v2/entities?type=Room", None, &[INTERNAL]);
    assert_eq!(ids(&internal), [cloud_id], "broker-to-broker listings are answered locally only");
    let internal = cloud.request("GET", "/ngsi-ld/v1/entities?type=Room", None, &[INTERNAL]);
    assert_eq!(ids(&internal), [cloud_id], "broker-to-broker queries are answered locally only");
    assert_eq!(cloud.request("GET", "/v2/entities/urn:ngsi-ld:Room:edge", None, &[INTERNAL]).status, 404);
    assert_eq!(cloud.request("GET", "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:edge", None, &[INTERNAL]).status, 404);
}

#[test]
fn a_dead_broker_makes_v2_and_ld_listings_partial_not_hang() {
    let discovery = fast_discovery();
    let mut edge = broker_at(&discovery, "002");
    let cloud = broker_at(&discovery, "001");
    room(&edge, "urn:ngsi-ld:Room:gone", 20, 8.60);
    room(&cloud, "urn:ngsi-ld:Room:here", 30, 8.70);
    registered(&discovery, "urn:ngsi-ld:Room:gone");
    let edge_url = edge.advertised_url();
    edge.kill9();
    for path in ["/v2/entities?type=Room", "/ngsi-ld/v1/entities?type=Room"] {
        let started = Instant::now();
        let answer = cloud.get(path);
        assert!(started.elapsed() < Duration::from_secs(10), "a dead owner must not stall {path}");
        assert_eq!(ids(&answer), quoted(&["urn:ngsi-ld:Room:here"]), "{path}");
        let partial = answer.header("fogflow-partial-result").unwrap_or_default();
        assert!(partial.contains(&edge_url), "{path}: the dead broker is named as unanswered: {answer:?}");
    }
}
