//! The NGSI-LD @context management API (`/ngsi-ld/v1/jsonldContexts`, ETSI GS CIM 009 clause 5.13): contexts
//! are hosted (201 + `Location`), listed (URLs, `details=true` metadata, `kind` filter), served as
//! `application/ld+json` and deleted; bad requests get ProblemDetails; a hosted context's URL (under any host)
//! resolves locally in a `Link` header or a body `@context` with no allowlist and no network; hosted contexts
//! survive a restart; fetched contexts are listed as `Cached`, evicted and reloaded.

use serde_json::{json, Value};

use crate::common::static_server::{Serve, StaticServer};
use crate::common::{raw_exchange, Broker, BrokerOptions, Resp};
use crate::ngsi_ld_entities::{assert_problem, create, send};

const CONTEXTS: &str = "/ngsi-ld/v1/jsonldContexts";
const CORE: &str = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld";
const REL: &str = "rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\"";

fn user_context() -> Value {
    json!({
        "Room": "https://example.org/ontology/Room",
        "temperature": "https://example.org/ontology/temperature",
        "brand": {"@id": "https://schema.org/brand"}
    })
}

fn link(url: &str) -> String {
    format!("<{url}>; {REL}")
}

/// Hosts `context` (a `{"@context": …}` body sent as `content_type`); the new id.
fn host(broker: &Broker, body: &Value, content_type: &str) -> String {
    let response = send(broker, "POST", CONTEXTS, body, &[("Content-Type", content_type)]);
    assert_eq!(response.status, 201, "{response:?}");
    let location = response.header("location").expect("a Location header").to_string();
    let id = location.strip_prefix(&format!("{CONTEXTS}/")).unwrap_or_else(|| panic!("Location {location}"));
    assert!(!id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{id}");
    id.to_string()
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().unwrap().iter().map(|item| item.as_str().unwrap().to_string()).collect()
}

/// A URL as one path segment.
fn encoded(url: &str) -> String {
    url.replace('%', "%25").replace(':', "%3A").replace('/', "%2F")
}

fn room(id: &str, temperature: f64) -> Value {
    json!({"id": id, "type": "Room", "temperature": {"type": "Property", "value": temperature},
        "brand": {"type": "Property", "value": "Acme"}})
}

#[test]
fn contexts_are_hosted_listed_served_and_deleted() {
    let broker = Broker::start();
    let first = host(&broker, &json!({"@context": user_context()}), "application/json");
    let array = json!([CORE, {"humidity": "https://example.org/ontology/humidity"}]);
    let second = host(&broker, &json!({"@context": array}), "application/ld+json");
    assert_ne!(first, second);
    let url = |id: &str| broker.url(&format!("{CONTEXTS}/{id}"));

    let listed = broker.get(CONTEXTS);
    assert_eq!(listed.status, 200, "{listed:?}");
    assert_eq!(strings(&listed.json()), [url(&first), url(&second), CORE.to_string()], "hosted first, then cached");
    assert_eq!(strings(&broker.get(&format!("{CONTEXTS}?kind=Hosted")).json()), [url(&first), url(&second)]);
    assert_eq!(strings(&broker.get(&format!("{CONTEXTS}?kind=Cached")).json()), [CORE]);
    assert_eq!(broker.get(&format!("{CONTEXTS}?kind=ImplicitlyCreated")).json(), json!([]));
    let details = broker.get(&format!("{CONTEXTS}?details=true&kind=Hosted")).json();
    assert_eq!(details.as_array().unwrap().len(), 2, "{details}");
    assert_eq!(
        (details[0]["URL"].clone(), details[0]["localId"].clone(), details[0]["kind"].clone()),
        (json!(url(&first)), json!(first), json!("Hosted"))
    );
    assert!(details[0]["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{details}");
    assert_eq!(details[0]["numberOfHits"], 0, "{details}");
    let core = broker.get(&format!("{CONTEXTS}?details=true&kind=Cached")).json();
    assert_eq!(core, json!([{"URL": CORE, "localId": "core", "kind": "Cached", "timestamp": core[0]["timestamp"]}]));
    let forwarded = broker.request(
        "GET",
        &format!("{CONTEXTS}?kind=Hosted"),
        None,
        &[("X-Forwarded-Host", "fogflow.example"), ("X-Forwarded-Proto", "https")],
    );
    assert_eq!(strings(&forwarded.json())[0], format!("https://fogflow.example{CONTEXTS}/{first}"));

    let served = broker.get(&format!("{CONTEXTS}/{first}"));
    assert_eq!(served.status, 200, "{served:?}");
    assert_eq!(served.content_type.as_deref(), Some("application/ld+json"));
    assert_eq!(served.json(), json!({"@context": user_context()}));
    assert_eq!(broker.get(&format!("{CONTEXTS}/{second}")).json(), json!({"@context": array}));
    let info = broker.get(&format!("{CONTEXTS}/{first}?details=true")).json();
    assert_eq!((info["localId"].clone(), info["kind"].clone()), (json!(first), json!("Hosted")), "{info}");
    let core_info = broker.get(&format!("{CONTEXTS}/core?details=true")).json();
    assert_eq!((core_info["URL"].clone(), core_info["kind"].clone()), (json!(CORE), json!("Cached")));
    assert_problem(&broker.get(&format!("{CONTEXTS}/core")), 422, "OperationNotSupported");

    assert_eq!(broker.delete(&format!("{CONTEXTS}/{first}")).status, 204);
    assert_problem(&broker.get(&format!("{CONTEXTS}/{first}")), 404, "ResourceNotFound");
    assert_problem(&broker.delete(&format!("{CONTEXTS}/{first}")), 404, "ResourceNotFound");
    assert_eq!(strings(&broker.get(&format!("{CONTEXTS}?kind=Hosted")).json()), [url(&second)]);
    assert_problem(&broker.delete(&format!("{CONTEXTS}/core")), 400, "BadRequestData");
    assert_problem(&broker.delete(&format!("{CONTEXTS}/{}", encoded(CORE))), 400, "BadRequestData");
    assert_problem(&broker.delete(&format!("{CONTEXTS}/{second}?reload=true")), 400, "BadRequestData");
    assert_eq!(broker.get(&format!("{CONTEXTS}/{second}")).status, 200, "a refused delete deletes nothing");
}

#[test]
fn bad_requests_to_the_context_api_get_problem_details() {
    let broker = BrokerOptions::new()
        .env("FOGFLOW__CONTEXT__MAX_HOSTED", 2)
        .env("FOGFLOW__CONTEXT__MAX_BYTES", 1024)
        .env("FOGFLOW__BROKER__MAX_BODY_BYTES", 4096)
        .start();
    for body in [
        json!({"@context": 42}),
        json!({"@context": "https://example.org/ctx.jsonld"}),
        json!({"@context": []}),
        json!({"@context": {"Room": 1}}),
        json!({"@context": {}, "id": "urn:x"}),
        json!({"context": {}}),
        json!([{"@context": {}}]),
    ] {
        assert_problem(&send(&broker, "POST", CONTEXTS, &body, &[]), 400, "BadRequestData");
    }
    assert_problem(&broker.request("POST", CONTEXTS, Some("{not json"), &[]), 400, "InvalidRequest");
    let text = broker.request("POST", CONTEXTS, Some("{}"), &[("Content-Type", "text/plain")]);
    assert_problem(&text, 415, "UnsupportedMediaType");
    let big = |bytes: usize| json!({"@context": {"a": format!("https://example.org/{}", "x".repeat(bytes))}});
    // Over broker.max_body_bytes: sent raw, reading the answer even if the broker stops reading the body first.
    let body = big(8192).to_string().into_bytes();
    let head = format!(
        "POST {CONTEXTS} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let (status, text) = raw_exchange(broker.port, &head, body);
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("https://uri.etsi.org/ngsi-ld/errors/InvalidRequest"), "{text}");
    let too_large = assert_problem(&send(&broker, "POST", CONTEXTS, &big(2048), &[]), 413, "InvalidRequest");
    assert!(too_large["detail"].as_str().unwrap().contains("context.max_bytes"), "{too_large}");
    host(&broker, &json!({"@context": {}}), "application/json");
    host(&broker, &json!({"@context": {}}), "application/json");
    let full =
        assert_problem(&send(&broker, "POST", CONTEXTS, &json!({"@context": {}}), &[]), 422, "OperationNotSupported");
    assert!(full["detail"].as_str().unwrap().contains("context.max_hosted"), "{full}");

    for query in ["kind=Other", "details=maybe", "limit=1"] {
        assert_problem(&broker.get(&format!("{CONTEXTS}?{query}")), 400, "BadRequestData");
    }
    assert_problem(&broker.get(&format!("{CONTEXTS}/core?details=yes")), 400, "BadRequestData");
    assert_problem(&broker.get(&format!("{CONTEXTS}/unknown")), 404, "ResourceNotFound");
    assert_problem(&broker.delete(&format!("{CONTEXTS}/unknown")), 404, "ResourceNotFound");
    let accept = broker.request("GET", CONTEXTS, None, &[("Accept", "text/html")]);
    assert_problem(&accept, 406, "NotAcceptable");
    assert_problem(&broker.request("PUT", &format!("{CONTEXTS}/core"), Some("{}"), &[]), 405, "OperationNotSupported");
}

#[test]
fn hosted_contexts_resolve_locally_in_link_headers_and_bodies_with_no_network() {
    // No context.allowlist: any fetch would be refused, and `fogflow.invalid` cannot be reached anyway.
    let broker = Broker::start();
    let id = host(&broker, &json!({"@context": user_context()}), "application/json");
    let here = broker.url(&format!("{CONTEXTS}/{id}"));
    create(&broker, &room("urn:ngsi-ld:Room:1", 21.0), &[("Link", &link(&here))]);
    let plain = broker.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1").json();
    assert_eq!(plain["type"], "https://example.org/ontology/Room", "expanded with the hosted context: {plain}");
    assert_eq!(plain["https://schema.org/brand"]["value"], "Acme", "{plain}");

    let elsewhere = format!("http://fogflow.invalid{CONTEXTS}/{id}");
    let read = broker.request("GET", "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1", None, &[("Link", &link(&elsewhere))]);
    assert_eq!(read.status, 200, "{read:?}");
    assert!(read.header("link").is_some_and(|l| l.contains(&elsewhere)), "{read:?}");
    assert_eq!(read.json(), room("urn:ngsi-ld:Room:1", 21.0), "compacted with the hosted context");

    // A JSON-LD body naming the hosted context, and a hosted context naming another one.
    let body = json!({"id": "urn:ngsi-ld:Room:2", "type": "Room", "temperature": 18, "@context": elsewhere});
    create(&broker, &body, &[("Content-Type", "application/ld+json")]);
    let outer = host(&broker, &json!({"@context": [here, {"humidity": "https://example.org/h"}]}), "application/json");
    let outer_url = broker.url(&format!("{CONTEXTS}/{outer}"));
    let ld = broker.request(
        "GET",
        "/ngsi-ld/v1/entities?type=Room&attrs=temperature",
        None,
        &[("Link", &link(&outer_url)), ("Accept", "application/ld+json")],
    );
    assert_eq!(ld.status, 200, "{ld:?}");
    let listed = ld.json();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert_eq!((listed[1]["type"].clone(), listed[1]["temperature"]["value"].clone()), (json!("Room"), json!(18)));
    let info = broker.get(&format!("{CONTEXTS}/{id}?details=true")).json();
    assert!(info["numberOfHits"].as_u64().is_some_and(|hits| hits >= 4), "every use is counted: {info}");
    assert!(info["lastUsage"].is_string(), "{info}");

    // Deleted, the URL is an ordinary remote context again: not allowlisted, not fetched.
    assert_eq!(broker.delete(&format!("{CONTEXTS}/{id}")).status, 204);
    let gone = broker.request("GET", "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1", None, &[("Link", &link(&here))]);
    let detail = assert_problem(&gone, 503, "LdContextNotAvailable")["detail"].as_str().unwrap().to_string();
    assert!(detail.contains(&here) && detail.contains("allowlist"), "{detail}");
}

#[test]
fn hosted_contexts_survive_a_restart() {
    let mut broker = Broker::start();
    let id = host(&broker, &json!({"@context": user_context()}), "application/json");
    let before = broker.url(&format!("{CONTEXTS}/{id}"));
    broker.kill9();
    broker.restart();
    let served = broker.get(&format!("{CONTEXTS}/{id}"));
    assert_eq!(served.status, 200, "hosted context lost: {served:?}");
    assert_eq!(served.json(), json!({"@context": user_context()}));
    assert_eq!(
        strings(&broker.get(&format!("{CONTEXTS}?kind=Hosted")).json()),
        [broker.url(&format!("{CONTEXTS}/{id}"))]
    );
    // The URL written before the restart names another port now; it still resolves here.
    assert_ne!(before, broker.url(&format!("{CONTEXTS}/{id}")));
    create(&broker, &room("urn:ngsi-ld:Room:3", 20.0), &[("Link", &link(&before))]);
    assert_eq!(
        broker.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:3").json()["type"],
        "https://example.org/ontology/Room"
    );
}

#[test]
fn fetched_contexts_are_listed_as_cached_evicted_and_reloaded() {
    let document = json!({"@context": user_context()}).to_string();
    let server = StaticServer::start(&[
        ("/ctx.jsonld", Serve::Body(200, document)),
        ("/gone.jsonld", Serve::Body(404, String::new())),
    ]);
    let other = StaticServer::start(&[("/other.jsonld", Serve::Body(200, json!({"@context": {}}).to_string()))]);
    let allowlist = format!("{},{}", server.url("/"), other.url("/"));
    let broker = BrokerOptions::new().env("FOGFLOW__CONTEXT__ALLOWLIST", allowlist).start();
    let ctx = server.url("/ctx.jsonld");
    let read =
        |url: &str| -> Resp { broker.request("GET", "/ngsi-ld/v1/entities?type=Room", None, &[("Link", &link(url))]) };
    assert_eq!(read(&ctx).status, 200);
    assert_eq!(strings(&broker.get(&format!("{CONTEXTS}?kind=Cached")).json()), [CORE.to_string(), ctx.clone()]);
    let details = broker.get(&format!("{CONTEXTS}?kind=Cached&details=true")).json();
    let local_id = details[1]["localId"].as_str().unwrap().to_string();
    assert_eq!((details[1]["kind"].clone(), details[1]["numberOfHits"].clone()), (json!("Cached"), json!(1)));
    assert_problem(&broker.get(&format!("{CONTEXTS}/{local_id}")), 422, "OperationNotSupported");
    assert_eq!(broker.get(&format!("{CONTEXTS}/{}?details=true", encoded(&ctx))).json()["localId"], local_id.as_str());

    assert_eq!(broker.delete(&format!("{CONTEXTS}/{}?reload=true", encoded(&ctx))).status, 204);
    assert_eq!(server.hits("/ctx.jsonld"), 2, "reloaded: fetched again");
    assert_eq!(broker.delete(&format!("{CONTEXTS}/{local_id}")).status, 204);
    assert_eq!(strings(&broker.get(&format!("{CONTEXTS}?kind=Cached")).json()), [CORE]);
    assert_problem(&broker.delete(&format!("{CONTEXTS}/{local_id}")), 404, "ResourceNotFound");
    assert_eq!(read(&ctx).status, 200);
    assert_eq!(server.hits("/ctx.jsonld"), 3, "evicted: fetched again on the next use");
    assert_eq!(read(&server.url("/gone.jsonld")).status, 503, "never cached");

    // A reload that cannot fetch: 504, and the context is no longer cached.
    let other_url = other.url("/other.jsonld");
    assert_eq!(read(&other_url).status, 200);
    drop(other);
    let failed = broker.delete(&format!("{CONTEXTS}/{}?reload=true", encoded(&other_url)));
    assert_problem(&failed, 504, "LdContextNotAvailable");
    assert_eq!(strings(&broker.get(&format!("{CONTEXTS}?kind=Cached")).json()), [CORE, ctx.as_str()]);
}
