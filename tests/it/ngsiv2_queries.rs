//! NGSIv2 listing filters: the `q` simple query language on attribute values, and the geo queries
//! (`georel`/`geometry`/`coords`) over positions written through v2 (`geo:json`) and through NGSI10 (point
//! domain metadata), nearest first for `near`.

use serde_json::json;

use crate::common::{located_element, Broker};
use crate::ngsiv2_entities::{assert_v2_error, create};

#[test]
fn q_filters_on_attribute_values() {
    let broker = Broker::start();
    for (id, temp, name) in [("Room1", 18.0, "hall"), ("Room2", 21.5, "kitchen"), ("Room3", 25.0, "hall")] {
        create(&broker, &json!({"id": id, "type": "Room", "temp": {"value": temp}, "name": {"value": name}}));
    }
    create(&broker, &json!({"id": "Room4", "type": "Room"}));
    let ids = |q: &str| -> Vec<String> {
        let response = broker.get(&format!("/v2/entities?q={q}"));
        assert_eq!(response.status, 200, "{q}: {response:?}");
        response.json().as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(ids("temp%3E20"), ["Room2", "Room3"]);
    assert_eq!(ids("temp%3E20%3Bname==hall"), ["Room3"]);
    assert_eq!(ids("temp==18..22"), ["Room1", "Room2"]);
    assert_eq!(ids("name==%27kitchen%27,hall%3Btemp%3C25"), ["Room1", "Room2"]);
    assert_eq!(ids("name~=^ki"), ["Room2"]);
    assert_eq!(ids("!temp"), ["Room4"]);
    assert_eq!(ids("name!=hall"), ["Room2"], "!= needs the attribute");
    let counted = broker.get("/v2/entities?q=temp&options=count&limit=1");
    assert_eq!(counted.header("fiware-total-count"), Some("3"), "{counted:?}");
}

#[test]
fn geo_queries_see_v2_and_ngsi10_positions() {
    let broker = Broker::start();
    let point = |lat: f64, lon: f64| json!({"type":"geo:json","value":{"type":"Point","coordinates":[lon, lat]}});
    create(&broker, &json!({"id":"Mannheim","type":"City","location": point(49.4875, 8.466)}));
    create(&broker, &json!({"id":"Tokyo","type":"City","location": point(35.68, 139.69)}));
    create(&broker, &json!({"id":"Nowhere","type":"City"}));
    let heidelberg = located_element("Heidelberg", "City", &[], 49.4064, 8.6842, "Heidelberg");
    broker.update_ok("UPDATE", &[heidelberg]);
    let ids = |query: &str| -> Vec<String> {
        let response = broker.get(&format!("/v2/entities?{query}"));
        assert_eq!(response.status, 200, "{query}: {response:?}");
        response.json().as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
    };
    let near = "georel=near%3BmaxDistance%3A30000&geometry=point&coords=49.48,8.47";
    assert_eq!(ids(near), ["Mannheim", "Heidelberg"], "nearest first");
    let far = "georel=near%3BminDistance%3A30000&geometry=point&coords=49.48,8.47";
    assert_eq!(ids(far), ["Tokyo"]);
    assert_eq!(ids("georel=coveredBy&geometry=box&coords=49.3,8.6%3B49.5,8.8"), ["Heidelberg"]);
    let polygon = "georel=coveredBy&geometry=polygon&coords=30,130%3B40,130%3B40,140%3B30,140%3B30,130";
    assert_eq!(ids(polygon), ["Tokyo"]);
    assert_eq!(ids("georel=disjoint&geometry=box&coords=30,130%3B40,140&type=City"), ["Mannheim", "Heidelberg"]);
    let bad = broker.get("/v2/entities?georel=near%3BmaxDistance%3A10&geometry=box&coords=1,2%3B3,4");
    assert_v2_error(&bad, 400, "BadRequest");
}
