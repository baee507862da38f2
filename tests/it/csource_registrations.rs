//! NGSI-LD context source registrations (`/ngsi-ld/v1/csourceRegistrations`) on brokers backed by discovery,
//! all separate processes of the real binary: created at one broker and seen at another, stored at discovery as
//! NGSI9 registrations of the endpoint (so discovery lookups, federated queries and federated subscriptions reach
//! a context source that is registered nowhere else), listed with the brokers' own registrations, filtered,
//! patched, deleted, expired, and bad input answered with ProblemDetails.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{broker_at, fast_discovery, wait_until, Broker, Resp};

const WAIT: Duration = Duration::from_secs(15);
const CSR: &str = "/ngsi-ld/v1/csourceRegistrations";

fn send(broker: &Broker, method: &str, path: &str, body: &Value) -> Resp {
    broker.request(method, path, Some(&body.to_string()), &[])
}

fn create_room(broker: &Broker, id: &str, temperature: i64) {
    let room = json!({"id":id,"type":"Room","temperature":{"type":"Property","value":temperature}});
    let created = broker.post("/ngsi-ld/v1/entities", &room);
    assert_eq!(created.status, 201, "{created:?}");
}

/// Asserts a ProblemDetails answer of `status` and ETSI `kind`.
fn assert_problem(response: &Resp, status: u16, kind: &str) {
    assert_eq!(response.status, status, "{response:?}");
    assert_eq!(response.json()["type"], format!("https://uri.etsi.org/ngsi-ld/errors/{kind}"), "{response:?}");
}

fn ids(response: &Resp) -> Vec<String> {
    assert_eq!(response.status, 200, "{response:?}");
    response.json().as_array().expect("an array").iter().map(|r| r["id"].as_str().unwrap_or("").to_string()).collect()
}

#[test]
fn registrations_are_kept_at_discovery_and_lead_queries_to_their_context_source() {
    let discovery = fast_discovery();
    let edge = broker_at(&discovery, "002");
    let cloud = broker_at(&discovery, "001");
    // A context source that is registered nowhere but through the registration below.
    let source = Broker::start();
    create_room(&source, "urn:ngsi-ld:Room:src1", 17);
    create_room(&cloud, "urn:ngsi-ld:Room:own1", 30);
    wait_until(WAIT, "the cloud's own room registered", || {
        (discovery.get("/ngsi9/registration/urn:ngsi-ld:Room:own1").status == 200).then_some(())
    });

    let id = "urn:ngsi-ld:ContextSourceRegistration:csr1";
    let registration = json!({"id":id,"type":"ContextSourceRegistration",
        "information":[{"entities":[{"type":"Room","idPattern":"^urn:ngsi-ld:Room:src"}],
            "propertyNames":["temperature"]}],
        "endpoint":source.advertised_url(),"location":{"type":"Point","coordinates":[8.6,49.4]},
        "name":"rooms of the source"});
    let created = cloud.post(CSR, &registration);
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.header("location"), Some(format!("{CSR}/{id}").as_str()));
    assert_problem(&cloud.post(CSR, &registration), 409, "AlreadyExists");

    let at_edge = edge.get(&format!("{CSR}/{id}"));
    assert_eq!(at_edge.status, 200, "another broker sees it through discovery: {at_edge:?}");
    assert_eq!(at_edge.json(), registration, "given back as written");
    let found = discovery.post(
        "/ngsi9/discoverContextAvailability",
        &json!({"entities":[{"id":"urn:ngsi-ld:Room:src1","type":"Room"}]}),
    );
    assert!(found.body.contains(&source.advertised_url()), "an NGSI9 lookup names the endpoint: {}", found.body);

    let rooms = cloud.get("/ngsi-ld/v1/entities?type=Room");
    assert_eq!(ids(&rooms), ["urn:ngsi-ld:Room:own1", "urn:ngsi-ld:Room:src1"], "the source answered the query");
    let v2 = edge.get("/v2/entities?type=Room&options=keyValues");
    assert!(v2.body.contains("urn:ngsi-ld:Room:src1"), "{v2:?}");

    let listed = ids(&cloud.get(&format!("{CSR}?type=Room")));
    assert!(listed.contains(&id.to_string()), "{listed:?}");
    let own = listed.iter().find(|r| r.contains("urn:ngsi-ld:Room:own1")).expect("the broker's own registration");
    let own_registration = cloud.get(&format!("{CSR}/{}", own.replace('/', "%2F")));
    assert_eq!(own_registration.status, 200, "{own_registration:?}");
    assert_eq!(own_registration.json()["endpoint"], cloud.advertised_url());
    assert_eq!(own_registration.json()["information"][0]["entities"][0]["id"], "urn:ngsi-ld:Room:own1");
    assert_problem(
        &cloud.request("DELETE", &format!("{CSR}/{}", own.replace('/', "%2F")), None, &[]),
        422,
        "OperationNotSupported",
    );
    assert_eq!(ids(&cloud.get(&format!("{CSR}?id=urn:ngsi-ld:Room:src9"))), [id], "the pattern selects it");
    assert!(!ids(&cloud.get(&format!("{CSR}?type=Hall"))).contains(&id.to_string()));
    let counted = cloud.get(&format!("{CSR}?type=Room&limit=1&count=true"));
    assert_eq!(ids(&counted).len(), 1);
    assert_eq!(counted.header("ngsild-results-count"), Some(listed.len().to_string().as_str()));

    let patched =
        send(&edge, "PATCH", &format!("{CSR}/{id}"), &json!({"information":[{"entities":[{"type":"Hall"}]}]}));
    assert_eq!(patched.status, 204, "{patched:?}");
    let after = cloud.get(&format!("{CSR}/{id}")).json();
    assert_eq!(after["information"][0]["entities"], json!([{"type":"Hall"}]), "{after}");
    assert_eq!(after["name"], "rooms of the source", "other members kept: {after}");
    assert!(!ids(&cloud.get(&format!("{CSR}?type=Room"))).contains(&id.to_string()));
    assert_eq!(ids(&cloud.get("/ngsi-ld/v1/entities?type=Room")), ["urn:ngsi-ld:Room:own1"], "no longer asked");

    assert_eq!(cloud.delete(&format!("{CSR}/{id}")).status, 204);
    assert_problem(&edge.get(&format!("{CSR}/{id}")), 404, "ResourceNotFound");
    assert_problem(&edge.delete(&format!("{CSR}/{id}")), 404, "ResourceNotFound");
    let gone = discovery.post("/ngsi9/registrations/query", &json!({"registrationId": id}));
    assert_eq!(gone.json(), json!([]), "{gone:?}");
}

#[test]
fn registrations_expire_and_bad_ones_are_refused_with_problem_details() {
    let discovery = fast_discovery();
    let broker = broker_at(&discovery, "001");
    let expires = chrono::Utc::now() + chrono::Duration::seconds(2);
    let short = json!({"type":"ContextSourceRegistration","information":[{"entities":[{"type":"Room"}]}],
        "endpoint":"http://10.0.0.9:8070/ngsi10","expiresAt":expires.to_rfc3339()});
    let created = broker.post(CSR, &short);
    assert_eq!(created.status, 201, "{created:?}");
    let location = created.header("location").expect("Location").to_string();
    assert!(location.starts_with(&format!("{CSR}/urn:ngsi-ld:ContextSourceRegistration:")), "{location}");
    assert_eq!(broker.get(&location).status, 200);
    wait_until(WAIT, "the registration expired at discovery", || (broker.get(&location).status == 404).then_some(()));

    let valid = json!({"type":"ContextSourceRegistration","information":[{"entities":[{"type":"Room"}]}],
        "endpoint":"http://10.0.0.9:8070/ngsi10"});
    for (field, value) in [
        ("type", json!("Registration")),
        ("endpoint", json!("not a url")),
        ("information", json!([])),
        ("information", json!([{"entities":[{"id":"urn:x"}]}])),
        ("information", json!([{"entities":[{"type":"Room","idPattern":"("}]}])),
        ("expiresAt", json!("2001-01-01T00:00:00Z")),
        ("id", json!("not a uri")),
    ] {
        let mut bad = valid.clone();
        bad[field] = value;
        assert_problem(&broker.post(CSR, &bad), 400, "BadRequestData");
    }
    assert_problem(&broker.post_raw(CSR, "{"), 400, "InvalidRequest");
    assert_problem(&broker.get(&format!("{CSR}?id=a&idPattern=b")), 400, "BadRequestData");
    assert_problem(&broker.get(&format!("{CSR}?limit=0")), 400, "BadRequestData");
    assert_problem(
        &send(&broker, "PATCH", &format!("{CSR}/urn:nope"), &json!({"endpoint":"http://x/ngsi10"})),
        404,
        "ResourceNotFound",
    );

    let alone = Broker::start();
    assert_problem(&alone.post(CSR, &valid), 422, "OperationNotSupported");
    assert_problem(&alone.get(CSR), 422, "OperationNotSupported");
}

#[test]
fn a_subscription_reaches_a_context_source_known_only_by_its_registration() {
    let discovery = fast_discovery();
    let cloud = broker_at(&discovery, "001");
    let source = Broker::start();
    create_room(&source, "urn:ngsi-ld:Room:src1", 17);
    let registration = json!({"type":"ContextSourceRegistration",
        "information":[{"entities":[{"type":"Room","idPattern":"^urn:ngsi-ld:Room:src"}]}],
        "endpoint":source.advertised_url()});
    assert_eq!(cloud.post(CSR, &registration).status, 201);
    let sink = crate::common::Sink::start();
    cloud.subscribe_ok(
        &json!({"entities":[{"id":"urn:ngsi-ld:Room:.*","isPattern":true,"type":"Room"}],"reference":sink.url()}),
    );
    wait_until(WAIT, "the internal subscription at the context source", || {
        source.get("/ngsi10/subscription").json().as_object().is_some_and(|all| all.len() == 1).then_some(())
    });
    let changed = send(
        &source,
        "PATCH",
        "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:src1/attrs",
        &json!({"temperature":{"type":"Property","value":18}}),
    );
    assert_eq!(changed.status, 204, "{changed:?}");
    wait_until(WAIT, "the source's change relayed to the cloud's subscriber", || {
        let notified = sink.notifications();
        let elements: Vec<Value> = notified.iter().flat_map(crate::common::elements).collect();
        elements
            .iter()
            .any(|e| {
                e["entityId"]["id"] == "urn:ngsi-ld:Room:src1"
                    && crate::common::attr(e, "temperature") == Some(json!(18))
            })
            .then_some(())
    });
}
