//! The NGSIv2 batch operations: `POST /v2/op/update` (append, appendStrict, update, replace, delete of attributes
//! and of entities; every entity tried, the first failure answered) and `POST /v2/op/query` (ids, patterns,
//! types, `attrs`, `expression` `q` and geo, formats, paging and `count`), with Orion's error bodies.

use serde_json::{json, Value};

use crate::common::{Broker, Resp};

fn post(broker: &Broker, path: &str, body: &Value) -> Resp {
    broker.request("POST", path, Some(&body.to_string()), &[])
}

fn update(broker: &Broker, action: &str, entities: Value) -> Resp {
    post(broker, "/v2/op/update", &json!({"actionType": action, "entities": entities}))
}

fn key_values(broker: &Broker, id: &str) -> Value {
    let response = broker.get(&format!("/v2/entities/{id}?options=keyValues"));
    if response.status == 404 {
        return Value::Null;
    }
    response.json()
}

fn assert_error(response: &Resp, status: u16, error: &str) {
    assert_eq!(response.status, status, "{response:?}");
    assert_eq!(response.json()["error"], error, "{response:?}");
}

#[test]
fn op_update_runs_every_action() {
    let broker = Broker::start();
    let appended = update(
        &broker,
        "append",
        json!([{"id":"Room1","type":"Room","temp":{"value":20}},{"id":"Room2","type":"Room","temp":{"value":10}}]),
    );
    assert_eq!(appended.status, 204, "{appended:?}");
    assert_eq!(key_values(&broker, "Room1"), json!({"id":"Room1","type":"Room","temp":20}));

    let strict =
        update(&broker, "appendStrict", json!([{"id":"Room1","temp":{"value":1}},{"id":"Room2","hum":{"value":50}}]));
    assert_error(&strict, 422, "Unprocessable");
    assert_eq!(key_values(&broker, "Room1")["temp"], 20, "the refused entity is untouched");
    assert_eq!(key_values(&broker, "Room2")["hum"], 50, "the other entity was still processed");

    assert_eq!(update(&broker, "update", json!([{"id":"Room1","temp":{"value":21}}])).status, 204);
    assert_eq!(key_values(&broker, "Room1")["temp"], 21);
    assert_error(&update(&broker, "update", json!([{"id":"Nope","temp":{"value":1}}])), 404, "NotFound");
    assert_error(&update(&broker, "update", json!([{"id":"Room1","type":"Car","temp":{"value":1}}])), 404, "NotFound");

    assert_eq!(update(&broker, "replace", json!([{"id":"Room2","co2":{"value":400}}])).status, 204);
    assert_eq!(key_values(&broker, "Room2"), json!({"id":"Room2","type":"Room","co2":400}));

    assert_eq!(update(&broker, "delete", json!([{"id":"Room2","co2":{}}])).status, 204);
    assert_eq!(key_values(&broker, "Room2"), json!({"id":"Room2","type":"Room"}));
    assert_eq!(update(&broker, "delete", json!([{"id":"Room2"}])).status, 204);
    assert_eq!(key_values(&broker, "Room2"), Value::Null);
    assert_error(&update(&broker, "delete", json!([{"id":"Room2"}])), 404, "NotFound");

    let kv = post(
        &broker,
        "/v2/op/update?options=keyValues",
        &json!({"actionType":"append","entities":[{"id":"Car1","type":"Car","speed":90}]}),
    );
    assert_eq!(kv.status, 204, "{kv:?}");
    assert_eq!(broker.get("/v2/entities/Car1/attrs/speed").json()["type"], "Number");

    assert_error(&update(&broker, "APPEND", json!([{"id":"X"}])), 400, "BadRequest");
    assert_error(&update(&broker, "append", json!([])), 400, "BadRequest");
    assert_error(&update(&broker, "append", json!([{"id":"ok"},{"id":"bad id"}])), 400, "BadRequest");
    assert_eq!(key_values(&broker, "ok"), Value::Null, "a bad batch writes nothing");
}

#[test]
fn op_query_selects_projects_and_pages() {
    let broker = Broker::start();
    let entities = json!([
        {"id":"Car1","type":"Car","speed":{"value":1},"colour":{"value":"red"}},
        {"id":"Car2","type":"Car","speed":{"value":2}},
        {"id":"Room1","type":"Room","temp":{"value":3}}
    ]);
    assert_eq!(update(&broker, "append", entities).status, 204);
    let query = |path: &str, body: Value| {
        let response = post(&broker, path, &body);
        assert_eq!(response.status, 200, "{body}: {response:?}");
        response
    };
    let cars = query("/v2/op/query?options=keyValues", json!({"entities":[{"idPattern":".*","type":"Car"}]}));
    assert_eq!(
        cars.json(),
        json!([{"id":"Car1","type":"Car","speed":1,"colour":"red"},{"id":"Car2","type":"Car","speed":2}])
    );
    let projected =
        query("/v2/op/query?options=keyValues", json!({"entities":[{"id":"Car1"},{"id":"Room1"}],"attrs":["speed"]}));
    assert_eq!(projected.json(), json!([{"id":"Car1","type":"Car","speed":1},{"id":"Room1","type":"Room"}]));
    let paged = query("/v2/op/query?limit=1&offset=1&options=count,values", json!({"attrs":["speed"]}));
    assert_eq!(paged.json(), json!([[2]]));
    assert_eq!(paged.header("fiware-total-count"), Some("3"), "{paged:?}");
    let normalized = query("/v2/op/query", json!({"entities":[{"id":"Room1"}]}));
    assert_eq!(normalized.json()[0]["temp"], json!({"type":"Number","value":3,"metadata":{}}));

    assert_error(&post(&broker, "/v2/op/query", &json!({"entities":[{"type":"Car"}]})), 400, "BadRequest");
    let filtered = query("/v2/op/query?options=keyValues", json!({"attrs":["speed"],"expression":{"q":"speed>1"}}));
    assert_eq!(filtered.json(), json!([{"id":"Car2","type":"Car","speed":2}]));
    let located = json!([{"id":"Car3","type":"Car",
        "location":{"type":"geo:json","value":{"type":"Point","coordinates":[8.68,49.41]}}}]);
    assert_eq!(update(&broker, "append", located).status, 204);
    let georel = json!({"attrs":["speed"],
        "expression":{"georel":"near;maxDistance:5000","geometry":"point","coords":"49.4,8.68"}});
    let near = query("/v2/op/query?options=keyValues", georel);
    assert_eq!(near.json(), json!([{"id":"Car3","type":"Car"}]));
    let incomplete = json!({"expression":{"georel":"near;maxDistance:1000","geometry":"point"}});
    assert_error(&post(&broker, "/v2/op/query", &incomplete), 400, "BadRequest");
    assert_error(&post(&broker, "/v2/op/query", &json!({"expression":{"mq":"a.b==1"}})), 400, "BadRequest");
    assert_error(&post(&broker, "/v2/op/query", &json!({"expression":{"q":"speed>"}})), 400, "BadRequest");
    assert_error(&post(&broker, "/v2/op/query", &json!({"attrs":"speed"})), 400, "BadRequest");
    assert_error(&post(&broker, "/v2/op/query?limit=5000", &json!({})), 400, "BadRequest");
    let parse_error = broker.request("POST", "/v2/op/query", Some("{"), &[]);
    assert_error(&parse_error, 400, "ParseError");
}
