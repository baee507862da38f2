//! NGSI-LD queries (`GET /ngsi-ld/v1/entities`: `type`, `id`, `idPattern`, `attrs`, `q`, geo-queries `near` and
//! `within`, `limit`/`offset`, `count=true` → `NGSILD-Results-Count`, the required filter, limits: a `limit` over
//! the maximum is 403 `TooManyResults`), the query batch `POST /entityOperations/query`, batch operations
//! (`/entityOperations/create|upsert|update|delete`: 201/204 on full success, 207 with `success` and `errors`
//! otherwise), `/types` and `/attributes`, the GeoJSON representation (`Accept: application/geo+json`,
//! `geometryProperty`) and the `pick`/`omit` projections of retrieve, query and query batch.

use serde_json::{json, Value};

use crate::common::Broker;
use crate::ngsi_ld_entities::{assert_problem, create, room, send};

fn ids(broker: &Broker, query: &str) -> Vec<String> {
    let response = broker.get(&format!("/ngsi-ld/v1/entities?{query}"));
    assert_eq!(response.status, 200, "{query}: {response:?}");
    let body = response.json();
    body.as_array()
        .unwrap_or_else(|| panic!("{query}: {body}"))
        .iter()
        .map(|entity| entity["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn rooms(broker: &Broker) {
    // Heidelberg, Mannheim, Berlin.
    create(broker, &room("urn:ngsi-ld:Room:1", 19.0, 8.6842, 49.4064), &[]);
    create(broker, &room("urn:ngsi-ld:Room:2", 23.0, 8.4660, 49.4875), &[]);
    let mut berlin = room("urn:ngsi-ld:Room:3", 26.0, 13.405, 52.52);
    berlin["name"] = json!({"type": "Property", "value": "Kitchen"});
    create(broker, &berlin, &[]);
    create(
        broker,
        &json!({"id": "urn:ngsi-ld:Building:1", "type": "Building", "floors": {"type": "Property", "value": 3}}),
        &[],
    );
}

#[test]
fn queries_filter_by_type_id_pattern_attrs_and_q() {
    let broker = Broker::start();
    rooms(&broker);
    let all_rooms = ["urn:ngsi-ld:Room:1", "urn:ngsi-ld:Room:2", "urn:ngsi-ld:Room:3"];
    assert_eq!(ids(&broker, "type=Room"), all_rooms);
    assert_eq!(ids(&broker, "type=Room,Building").len(), 4);
    assert_eq!(
        ids(&broker, "id=urn:ngsi-ld:Room:2,urn:ngsi-ld:Building:1"),
        ["urn:ngsi-ld:Room:2", "urn:ngsi-ld:Building:1"]
    );
    assert_eq!(ids(&broker, "idPattern=%5Eurn:ngsi-ld:Room:%5B12%5D$"), ["urn:ngsi-ld:Room:1", "urn:ngsi-ld:Room:2"]);
    assert_eq!(ids(&broker, "attrs=floors"), ["urn:ngsi-ld:Building:1"]);
    assert_eq!(ids(&broker, "type=Room&q=temperature>20"), ["urn:ngsi-ld:Room:2", "urn:ngsi-ld:Room:3"]);
    assert_eq!(ids(&broker, "q=temperature>=19;temperature<=23"), ["urn:ngsi-ld:Room:1", "urn:ngsi-ld:Room:2"]);
    assert_eq!(ids(&broker, "q=temperature==19%7Cname==%22Kitchen%22"), ["urn:ngsi-ld:Room:1", "urn:ngsi-ld:Room:3"]);
    assert_eq!(ids(&broker, "q=(temperature>20%7Cfloors==3);temperature!=26"), ["urn:ngsi-ld:Room:2"]);
    assert_eq!(ids(&broker, "q=temperature.unitCode==%22CEL%22&type=Room").len(), 3);
    assert_eq!(ids(&broker, "q=inBuilding==urn:ngsi-ld:Building:1").len(), 3);
    assert_eq!(ids(&broker, "type=Nothing"), Vec::<String>::new());

    let projected = broker.get("/ngsi-ld/v1/entities?type=Room&attrs=temperature&options=keyValues&limit=1").json();
    assert_eq!(projected, json!([{"id": "urn:ngsi-ld:Room:1", "type": "Room", "temperature": 19.0}]));
    let bad =
        |query: &str| assert_problem(&broker.get(&format!("/ngsi-ld/v1/entities?{query}")), 400, "BadRequestData");
    bad("");
    bad("options=keyValues");
    bad("q=temperature>");
    bad("q=(temperature>1");
    bad("idPattern=(");
    assert_problem(&broker.get("/ngsi-ld/v1/entities?type=Room&limit=1001"), 403, "TooManyResults");
    bad("type=Room&offset=-1");
    bad("georel=near;maxDistance==10&geometry=Point");
}

#[test]
fn geo_queries_paging_and_count() {
    let broker = Broker::start();
    rooms(&broker);
    let near = "georel=near;maxDistance==30000&geometry=Point&coordinates=%5B8.60,49.45%5D";
    assert_eq!(ids(&broker, &format!("type=Room&{near}")), ["urn:ngsi-ld:Room:1", "urn:ngsi-ld:Room:2"]);
    let mannheim_first = "georel=near;maxDistance==30000&geometry=Point&coordinates=%5B8.47,49.48%5D";
    assert_eq!(ids(&broker, mannheim_first), ["urn:ngsi-ld:Room:2", "urn:ngsi-ld:Room:1"], "nearest first");
    let far = "georel=near;minDistance==100000&geometry=Point&coordinates=%5B8.60,49.45%5D";
    assert_eq!(ids(&broker, far), ["urn:ngsi-ld:Room:3"]);
    let germany_south_west =
        "georel=within&geometry=Polygon&coordinates=%5B%5B%5B8,49%5D,%5B9,49%5D,%5B9,50%5D,%5B8,50%5D,%5B8,49%5D%5D%5D";
    assert_eq!(ids(&broker, germany_south_west), ["urn:ngsi-ld:Room:1", "urn:ngsi-ld:Room:2"]);
    let bad_polygon = "georel=within&geometry=Polygon&coordinates=%5B%5B%5B8,49%5D,%5B9,49%5D,%5B9,50%5D%5D%5D";
    assert_problem(&broker.get(&format!("/ngsi-ld/v1/entities?{bad_polygon}")), 400, "BadRequestData");

    let page = broker.get("/ngsi-ld/v1/entities?type=Room&limit=2&offset=1&count=true");
    assert_eq!(page.header("ngsild-results-count"), Some("3"), "{page:?}");
    let page: Vec<Value> = page.json().as_array().cloned().unwrap_or_default();
    assert_eq!(
        page.iter().map(|e| e["id"].clone()).collect::<Vec<_>>(),
        [json!("urn:ngsi-ld:Room:2"), json!("urn:ngsi-ld:Room:3")]
    );
    let count_only = broker.get("/ngsi-ld/v1/entities?type=Room&limit=0&count=true");
    assert_eq!((count_only.header("ngsild-results-count"), count_only.json()), (Some("3"), json!([])));
}

#[test]
fn batch_operations_answer_201_204_or_207() {
    let broker = Broker::start();
    let batch = |operation: &str, body: &Value| {
        send(&broker, "POST", &format!("/ngsi-ld/v1/entityOperations/{operation}"), body, &[])
    };
    let two = json!([room("urn:ngsi-ld:Room:1", 20.0, 8.0, 49.0), room("urn:ngsi-ld:Room:2", 21.0, 8.0, 49.0)]);
    let created = batch("create", &two);
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.json(), json!(["urn:ngsi-ld:Room:1", "urn:ngsi-ld:Room:2"]));

    let mixed = json!([room("urn:ngsi-ld:Room:1", 20.0, 8.0, 49.0), room("urn:ngsi-ld:Room:3", 22.0, 8.0, 49.0),
        {"id": "not-a-uri", "type": "Room"}]);
    let partial = batch("create", &mixed);
    assert_eq!(partial.status, 207, "{partial:?}");
    let report = partial.json();
    assert_eq!(report["success"], json!(["urn:ngsi-ld:Room:3"]), "{report}");
    assert_eq!(report["errors"][0]["entityId"], "urn:ngsi-ld:Room:1", "{report}");
    assert_eq!(report["errors"][0]["error"]["type"], "https://uri.etsi.org/ngsi-ld/errors/AlreadyExists", "{report}");
    assert_eq!(report["errors"][1]["error"]["type"], "https://uri.etsi.org/ngsi-ld/errors/BadRequestData", "{report}");

    let existing =
        json!([{"id": "urn:ngsi-ld:Room:1", "type": "Room", "temperature": {"type": "Property", "value": 30}}]);
    assert_eq!(batch("upsert", &existing).status, 204);
    let read = broker.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1?options=keyValues").json();
    assert_eq!(
        read,
        json!({"id": "urn:ngsi-ld:Room:1", "type": "Room", "temperature": 30}),
        "upsert replaces by default"
    );
    let new = json!([{"id": "urn:ngsi-ld:Room:4", "type": "Room"}]);
    let upserted = batch("upsert", &new);
    assert_eq!((upserted.status, upserted.json()), (201, json!(["urn:ngsi-ld:Room:4"])));

    let update = json!([{"id": "urn:ngsi-ld:Room:2", "type": "Room", "temperature": {"type": "Property", "value": 25}},
        {"id": "urn:ngsi-ld:Room:404", "type": "Room", "temperature": {"type": "Property", "value": 25}}]);
    let updated = batch("update", &update);
    assert_eq!(updated.status, 207, "{updated:?}");
    let report = updated.json();
    assert_eq!(report["success"], json!(["urn:ngsi-ld:Room:2"]), "{report}");
    assert_eq!(
        report["errors"][0]["error"]["type"], "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound",
        "{report}"
    );
    let read = broker.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:2?options=keyValues").json();
    assert_eq!(read["temperature"], json!(25));
    assert!(read.get("location").is_some(), "update merges: {read}");

    let merge = json!([{"id": "urn:ngsi-ld:Room:2", "type": "Room", "humidity": {"type": "Property", "value": 40},
            "temperature": {"type": "Property", "value": 26}},
        {"id": "urn:ngsi-ld:Room:404", "type": "Room", "humidity": {"type": "Property", "value": 40}}]);
    let merged = batch("merge", &merge);
    assert_eq!(merged.status, 207, "{merged:?}");
    let report = merged.json();
    assert_eq!(report["success"], json!(["urn:ngsi-ld:Room:2"]), "{report}");
    assert_eq!(report["errors"][0]["entityId"], "urn:ngsi-ld:Room:404", "{report}");
    assert_eq!(
        report["errors"][0]["error"]["type"], "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound",
        "{report}"
    );
    let read = broker.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:2?options=keyValues").json();
    assert_eq!((read["temperature"].clone(), read["humidity"].clone()), (json!(26), json!(40)), "{read}");
    assert!(read.get("location").is_some(), "merge keeps what it does not name: {read}");
    assert_eq!(batch("merge", &json!([merge[0].clone()])).status, 204);
    let with_options = send(&broker, "POST", "/ngsi-ld/v1/entityOperations/merge?options=noOverwrite", &merge, &[]);
    assert_problem(&with_options, 400, "BadRequestData");

    assert_eq!(batch("delete", &json!(["urn:ngsi-ld:Room:1", "urn:ngsi-ld:Room:2"])).status, 204);
    let deleted = batch("delete", &json!(["urn:ngsi-ld:Room:3", "urn:ngsi-ld:Room:1"]));
    assert_eq!(deleted.status, 207, "{deleted:?}");
    assert_eq!(deleted.json()["success"], json!(["urn:ngsi-ld:Room:3"]));
    assert_problem(&batch("create", &json!({"id": "urn:a", "type": "T"})), 400, "BadRequestData");
    assert_problem(&batch("delete", &json!([])), 400, "BadRequestData");
}

#[test]
fn query_batches_select_with_entities_q_and_geo() {
    let broker = Broker::start();
    rooms(&broker);
    let query = |body: &Value, path: &str| {
        send(&broker, "POST", &format!("/ngsi-ld/v1/entityOperations/query{path}"), body, &[])
    };
    let body = json!({"type": "Query", "entities": [{"type": "Building"}, {"idPattern": "Room:[23]$"}],
        "attrs": ["temperature", "floors"], "q": "temperature>20|floors==3"});
    let answer = query(&body, "?options=keyValues&count=true");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.header("ngsild-results-count"), Some("3"), "{answer:?}");
    assert_eq!(
        answer.json(),
        json!([{"id": "urn:ngsi-ld:Room:2", "type": "Room", "temperature": 23.0},
            {"id": "urn:ngsi-ld:Room:3", "type": "Room", "temperature": 26.0},
            {"id": "urn:ngsi-ld:Building:1", "type": "Building", "floors": 3}])
    );
    let near = json!({"type": "Query", "geoQ": {"georel": "near;maxDistance==30000", "geometry": "Point", "coordinates": [8.47, 49.48]}});
    let ids: Vec<Value> =
        query(&near, "").json().as_array().cloned().unwrap_or_default().iter().map(|e| e["id"].clone()).collect();
    assert_eq!(ids, [json!("urn:ngsi-ld:Room:2"), json!("urn:ngsi-ld:Room:1")]);
    assert_problem(&query(&json!({"type": "Query"}), ""), 400, "BadRequestData");
    assert_problem(&query(&json!({"type": "Query", "q": "temperature>"}), ""), 400, "BadRequestData");
}

#[test]
fn types_and_attributes_are_discovered() {
    let broker = Broker::start();
    rooms(&broker);
    let types = broker.get("/ngsi-ld/v1/types").json();
    assert_eq!(
        (types["type"].clone(), types["typeList"].clone()),
        (json!("EntityTypeList"), json!(["Building", "Room"]))
    );
    let details = broker.get("/ngsi-ld/v1/types?details=true").json();
    assert_eq!(details[1]["typeName"], "Room", "{details}");
    assert_eq!(details[1]["attributeNames"], json!(["inBuilding", "location", "name", "temperature"]), "{details}");
    let room = broker.get("/ngsi-ld/v1/types/Room").json();
    assert_eq!(
        (room["type"].clone(), room["entityCount"].clone()),
        (json!("EntityTypeInformation"), json!(3)),
        "{room}"
    );
    assert_problem(&broker.get("/ngsi-ld/v1/types/Nothing"), 404, "ResourceNotFound");
    let attributes = broker.get("/ngsi-ld/v1/attributes").json();
    assert_eq!(
        attributes["attributeList"],
        json!(["floors", "inBuilding", "location", "name", "temperature"]),
        "{attributes}"
    );
    let temperature = broker.get("/ngsi-ld/v1/attributes/temperature").json();
    assert_eq!(
        (
            temperature["attributeCount"].clone(),
            temperature["attributeTypes"].clone(),
            temperature["typeNames"].clone()
        ),
        (json!(3), json!(["Property"]), json!(["Room"])),
        "{temperature}"
    );
    assert_problem(&broker.get("/ngsi-ld/v1/attributes/nothing"), 404, "ResourceNotFound");
    let unknown = broker.request("GET", "/ngsi-ld/v1/types", None, &[("NGSILD-Tenant", "nobody")]);
    assert_problem(&unknown, 404, "NonexistentTenant");
}

const CORE: &str = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld";
const GEOJSON: (&str, &str) = ("Accept", "application/geo+json");

/// A GeoJSON answer: 200, `application/geo+json`, the core context in the `Link` header; returns the body.
fn geojson(response: &crate::common::Resp) -> Value {
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.content_type.as_deref(), Some("application/geo+json"), "{response:?}");
    assert!(response.header("link").is_some_and(|link| link.contains(CORE)), "{response:?}");
    response.json()
}

fn park() -> Value {
    json!({"id": "urn:ngsi-ld:Park:1", "type": "Park",
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [8.7, 49.41]}},
        "area": {"type": "GeoProperty", "value": {"type": "Polygon",
            "coordinates": [[[8.7, 49.4], [8.72, 49.4], [8.72, 49.42], [8.7, 49.4]]]}},
        "name": {"type": "Property", "value": "Castle park"}})
}

#[test]
fn geojson_answers_features_with_the_geometry_asked_for() {
    let broker = Broker::start();
    create(&broker, &park(), &[]);
    let square =
        json!({"id": "urn:ngsi-ld:Square:1", "type": "Square", "name": {"type": "Property", "value": "Bismarck"}});
    create(&broker, &square, &[]);
    let get = |path: &str| broker.request("GET", &format!("/ngsi-ld/v1/{path}"), None, &[GEOJSON]);

    let feature = geojson(&get("entities/urn:ngsi-ld:Park:1"));
    let mut properties = park();
    properties.as_object_mut().map(|members| members.remove("id"));
    assert_eq!(
        feature,
        json!({"id": "urn:ngsi-ld:Park:1", "type": "Feature", "geometry": park()["location"]["value"],
            "properties": properties, "@context": CORE})
    );
    let area = geojson(&get("entities/urn:ngsi-ld:Park:1?geometryProperty=area&options=keyValues&attrs=name"));
    assert_eq!(
        area,
        json!({"id": "urn:ngsi-ld:Park:1", "type": "Feature", "geometry": park()["area"]["value"],
            "properties": {"type": "Park", "name": "Castle park"}, "@context": CORE})
    );
    let no_location = geojson(&get("entities/urn:ngsi-ld:Square:1?options=concise"));
    assert_eq!(
        no_location,
        json!({"id": "urn:ngsi-ld:Square:1", "type": "Feature", "geometry": null,
            "properties": {"type": "Square", "name": "Bismarck"}, "@context": CORE})
    );
    let not_geo = geojson(&get("entities/urn:ngsi-ld:Park:1?geometryProperty=name&pick=id"));
    assert_eq!(
        not_geo,
        json!({"id": "urn:ngsi-ld:Park:1", "type": "Feature", "geometry": null,
        "properties": {}, "@context": CORE}),
        "a Property is no geometry"
    );

    let collection = geojson(&get("entities?type=Park,Square&options=keyValues&pick=id,name"));
    assert_eq!(
        collection,
        json!({"type": "FeatureCollection", "features": [
            {"id": "urn:ngsi-ld:Park:1", "type": "Feature", "geometry": park()["location"]["value"],
                "properties": {"name": "Castle park"}},
            {"id": "urn:ngsi-ld:Square:1", "type": "Feature", "geometry": null, "properties": {"name": "Bismarck"}}],
            "@context": CORE})
    );
    let query = json!({"type": "Query", "entities": [{"type": "Park"}]});
    let batch = send(
        &broker,
        "POST",
        "/ngsi-ld/v1/entityOperations/query?options=keyValues&omit=location,area&geometryProperty=area",
        &query,
        &[GEOJSON],
    );
    assert_eq!(
        geojson(&batch),
        json!({"type": "FeatureCollection", "features": [{"id": "urn:ngsi-ld:Park:1", "type": "Feature",
            "geometry": park()["area"]["value"], "properties": {"type": "Park", "name": "Castle park"}}],
            "@context": CORE})
    );

    let json_with_geometry = broker.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Park:1?geometryProperty=area");
    assert_problem(&json_with_geometry, 400, "BadRequestData");
    assert_problem(&broker.get("/ngsi-ld/v1/entities?type=Park&geometryProperty=location"), 400, "BadRequestData");
    assert_problem(&get("entities/urn:ngsi-ld:Park:1?geometryProperty="), 400, "BadRequestData");
    assert_problem(&get("types"), 406, "NotAcceptable");
    assert_problem(&get("entities/urn:ngsi-ld:Park:404"), 404, "ResourceNotFound");
}

#[test]
fn pick_and_omit_project_entity_members() {
    let broker = Broker::start();
    rooms(&broker);
    let get = |query: &str| broker.get(&format!("/ngsi-ld/v1/entities{query}"));
    let read = |query: &str| {
        let response = get(query);
        assert_eq!(response.status, 200, "{query}: {response:?}");
        response.json()
    };
    assert_eq!(read("/urn:ngsi-ld:Room:3?pick=name"), json!({"name": {"type": "Property", "value": "Kitchen"}}));
    assert_eq!(
        read("/urn:ngsi-ld:Room:1?pick=id,temperature&options=keyValues"),
        json!({"id": "urn:ngsi-ld:Room:1", "temperature": 19.0})
    );
    assert_eq!(
        read("/urn:ngsi-ld:Room:1?omit=type,location,inBuilding"),
        json!({"id": "urn:ngsi-ld:Room:1", "temperature": {"type": "Property", "value": 19.0, "unitCode": "CEL"}})
    );
    assert_eq!(
        read("/urn:ngsi-ld:Room:1?pick=id,temperature&omit=type&options=keyValues"),
        json!({"id": "urn:ngsi-ld:Room:1", "temperature": 19.0}),
        "pick and omit of different members"
    );
    assert_eq!(read("?type=Room&pick=id&limit=2"), json!([{"id": "urn:ngsi-ld:Room:1"}, {"id": "urn:ngsi-ld:Room:2"}]));
    let batch = send(
        &broker,
        "POST",
        "/ngsi-ld/v1/entityOperations/query?pick=id&options=keyValues",
        &json!({"type": "Query", "entities": [{"type": "Building"}]}),
        &[],
    );
    assert_eq!((batch.status, batch.json()), (200, json!([{"id": "urn:ngsi-ld:Building:1"}])));

    for refused in [
        "/urn:ngsi-ld:Room:1?pick=name&omit=name",
        "/urn:ngsi-ld:Room:1?pick=name&attrs=temperature",
        "/urn:ngsi-ld:Room:1?omit=name&attrs=temperature",
        "/urn:ngsi-ld:Room:1?pick=id,,name",
        "/urn:ngsi-ld:Room:1?pick=inBuilding%7Bname%7D",
        "?type=Room&pick=",
    ] {
        assert_problem(&get(refused), 400, "BadRequestData");
    }
    let with_body_attrs = send(
        &broker,
        "POST",
        "/ngsi-ld/v1/entityOperations/query?omit=location",
        &json!({"type": "Query", "attrs": ["temperature"]}),
        &[],
    );
    assert_problem(&with_body_attrs, 400, "BadRequestData");
}

#[test]
fn a_limit_over_the_maximum_is_too_many_results() {
    let broker = Broker::start();
    rooms(&broker);
    let over = "/ngsi-ld/v1/entities?type=Room&limit=1001";
    let body = assert_problem(&broker.get(over), 403, "TooManyResults");
    assert_eq!(body["status"], 403, "{body}");
    assert_eq!(body["detail"], "limit 1001 is over the maximum of 1000", "{body}");
    let batch = send(
        &broker,
        "POST",
        "/ngsi-ld/v1/entityOperations/query?limit=5000",
        &json!({"type": "Query", "entities": [{"type": "Room"}]}),
        &[],
    );
    assert_problem(&batch, 403, "TooManyResults");
    assert_problem(&broker.get("/ngsi-ld/v1/subscriptions?limit=1001"), 403, "TooManyResults");
    assert_eq!(ids(&broker, "type=Room&limit=1000").len(), 3, "the maximum itself is allowed");
}
