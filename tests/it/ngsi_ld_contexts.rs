//! Remote JSON-LD `@context`s of the NGSI-LD API, with no internet: a local static server plays the context host.
//! Fetched only from `context.allowlist` prefixes, then cached (the server counts its hits); expansion on writes
//! and compaction on reads with a `Link` context; `context.preload` working fully offline; every failure (not
//! allowed, an unreachable https host, 404, bad JSON, no `@context`, too large, a stalled server, a redirect to a URL
//! not allowlisted or a redirect loop) is 503 `LdContextNotAvailable`
//! naming the URL and the reason; concurrent requests share one fetch; subscriptions created with a remote context
//! notify compacted with it.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::static_server::{Serve, StaticServer};
use crate::common::{Broker, BrokerOptions, Recorded, Sink};
use crate::ngsi_ld_entities::{assert_problem, create, send};

const WAIT: Duration = Duration::from_secs(10);
const REL: &str = "rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\"";

/// The user context the tests serve or preload.
fn context_document() -> String {
    json!({"@context": {
        "Room": "https://example.org/ontology/Room",
        "temperature": "https://example.org/ontology/temperature",
        "brand": {"@id": "https://schema.org/brand"}
    }})
    .to_string()
}

fn link(url: &str) -> String {
    format!("<{url}>; {REL}")
}

fn room(id: &str, temperature: f64) -> Value {
    json!({"id": id, "type": "Room", "temperature": {"type": "Property", "value": temperature},
        "brand": {"type": "Property", "value": "Acme"}})
}

/// Asserts a 503 `LdContextNotAvailable` whose detail names `url` and contains `reason`.
fn assert_unavailable(response: &crate::common::Resp, url: &str, reason: &str) {
    let body = assert_problem(response, 503, "LdContextNotAvailable");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(url) && detail.contains(reason), "detail {detail:?} should name {url} and {reason:?}");
}

#[test]
fn allowlisted_contexts_are_fetched_once_expand_writes_and_compact_reads() {
    let server = StaticServer::start(&[("/ctx.jsonld", Serve::Body(200, context_document()))]);
    let ctx = server.url("/ctx.jsonld");
    let outer_document = json!({"@context": [ctx, {"humidity": "https://example.org/ontology/humidity"}]});
    let server_outer = StaticServer::start(&[("/outer.jsonld", Serve::Body(200, outer_document.to_string()))]);
    let broker = BrokerOptions::new()
        .env("FOGFLOW__CONTEXT__ALLOWLIST", format!("{},{}", server.url("/"), server_outer.url("/")))
        .start();
    let linked = link(&ctx);
    create(&broker, &room("urn:ngsi-ld:Room:1", 21.0), &[("Link", &linked)]);

    let plain = broker.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1").json();
    assert_eq!(plain["type"], "https://example.org/ontology/Room", "{plain}");
    assert_eq!(plain["https://example.org/ontology/temperature"]["value"], 21.0, "{plain}");
    assert_eq!(plain["https://schema.org/brand"]["value"], "Acme", "{plain}");

    let read = broker.request("GET", "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1", None, &[("Link", &linked)]);
    assert_eq!(read.status, 200, "{read:?}");
    assert!(read.header("link").is_some_and(|l| l.contains(&ctx)), "{read:?}");
    assert_eq!(read.json(), room("urn:ngsi-ld:Room:1", 21.0));
    let ld = broker.request(
        "GET",
        "/ngsi-ld/v1/entities?type=Room&attrs=temperature",
        None,
        &[("Link", &linked), ("Accept", "application/ld+json")],
    );
    assert_eq!(ld.status, 200, "{ld:?}");
    let listed = ld.json();
    assert_eq!(listed[0]["@context"], ctx, "{listed}");
    assert_eq!(listed[0]["type"], "Room", "{listed}");
    assert_eq!(listed[0]["temperature"]["value"], 21.0, "{listed}");
    assert!(listed[0].get("brand").is_none(), "{listed}");

    // A JSON-LD body naming the context among inline definitions; a nested remote context (outer → ctx).
    let body = json!({"id": "urn:ngsi-ld:Room:2", "type": "Room", "humidity": 40,
        "@context": [ctx, {"humidity": "https://example.org/ontology/humidity"}]});
    create(&broker, &body, &[("Content-Type", "application/ld+json")]);
    let outer = link(&server_outer.url("/outer.jsonld"));
    let read = broker.request("GET", "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:2", None, &[("Link", &outer)]);
    assert_eq!(
        read.json(),
        json!({"id": "urn:ngsi-ld:Room:2", "type": "Room",
        "humidity": {"type": "Property", "value": 40}})
    );
    assert_eq!(server.hits("/ctx.jsonld"), 1, "cached: one fetch for every request within the TTL");
    assert_eq!(server_outer.hits("/outer.jsonld"), 1);
}

#[test]
fn contexts_not_allowlisted_are_not_fetched() {
    let server = StaticServer::start(&[("/ctx.jsonld", Serve::Body(200, context_document()))]);
    let broker = Broker::start();
    let ctx = server.url("/ctx.jsonld");
    let response = send(&broker, "POST", "/ngsi-ld/v1/entities", &room("urn:a", 1.0), &[("Link", &link(&ctx))]);
    assert_unavailable(&response, &ctx, "allowlist");
    let read = broker.request("GET", "/ngsi-ld/v1/entities", None, &[("Link", &link(&ctx))]);
    assert_unavailable(&read, &ctx, "allowlist");
    assert_eq!(server.hits("/ctx.jsonld"), 0, "nothing is fetched without an allowlist");
}

/// An offline context URL that the broker of [`broker_with_preloaded_context`] has preloaded from a file.
const PRELOADED: &str = "http://contexts.invalid/ngsi/ctx.jsonld";

/// A broker whose `context.preload` maps [`PRELOADED`] to a local copy of [`context_document`] (in the returned
/// directory, which must outlive the broker).
fn broker_with_preloaded_context() -> (tempfile::TempDir, Broker) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ctx.jsonld");
    std::fs::write(&file, context_document()).unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, json!({"context": {"preload": {PRELOADED: file}}}).to_string()).unwrap();
    let broker = BrokerOptions::new().arg("--config").arg(config.display()).start();
    (dir, broker)
}

#[test]
fn preloaded_contexts_work_offline() {
    let (dir, broker) = broker_with_preloaded_context();
    let url = PRELOADED;
    create(&broker, &room("urn:ngsi-ld:Room:9", 19.5), &[("Link", &link(url))]);
    let plain = broker.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:9").json();
    assert_eq!(plain["type"], "https://example.org/ontology/Room", "{plain}");
    let read = broker.request("GET", "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:9", None, &[("Link", &link(url))]);
    assert_eq!(read.json(), room("urn:ngsi-ld:Room:9", 19.5));
    let geo_headers = [("Link", link(url)), ("Accept", "application/geo+json".to_string())];
    let geo_headers: Vec<(&str, &str)> = geo_headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let geo =
        broker.request("GET", "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:9?pick=type,temperature", None, &geo_headers);
    assert_eq!(geo.content_type.as_deref(), Some("application/geo+json"), "{geo:?}");
    assert!(geo.header("link").is_some_and(|l| l.contains(url)), "the context is named back: {geo:?}");
    assert_eq!(
        geo.json(),
        json!({"type": "Feature", "geometry": null,
            "properties": {"type": "Room", "temperature": {"type": "Property", "value": 19.5}}, "@context": url}),
        "GeoJSON: pick expanded and properties compacted with the Link context, which the Feature carries"
    );
    let body = json!({"id": "urn:ngsi-ld:Room:10", "type": "Room", "@context": url});
    create(&broker, &body, &[("Content-Type", "application/ld+json")]);

    std::fs::write(
        dir.path().join("bad.json"),
        json!({"context": {"preload": {url: dir.path().join("none")}}}).to_string(),
    )
    .unwrap();
    let output = crate::common::run_cli(&["config", "check", &dir.path().join("bad.json").display().to_string()], &[]);
    assert_eq!(output.status.code(), Some(64), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("context.preload") && stderr.contains(url), "{stderr}");
}

#[test]
fn discovery_and_subscriptions_are_compacted_with_the_link_context() {
    let (_dir, broker) = broker_with_preloaded_context();
    let url = PRELOADED;
    let linked = link(url);
    create(&broker, &room("urn:ngsi-ld:Room:1", 20.0), &[("Link", &linked)]);
    let get = |path: &str| broker.request("GET", path, None, &[("Link", &linked)]);

    let types = get("/ngsi-ld/v1/types");
    assert_eq!(types.status, 200, "{types:?}");
    assert!(types.header("link").is_some_and(|l| l.contains(url)), "the context is named back: {types:?}");
    assert_eq!(types.json()["typeList"], json!(["Room"]));
    assert_eq!(broker.get("/ngsi-ld/v1/types").json()["typeList"], json!(["https://example.org/ontology/Room"]));
    let details = get("/ngsi-ld/v1/types?details=true").json();
    assert_eq!(details[0]["typeName"], "Room", "{details}");
    assert_eq!(details[0]["id"], "https://example.org/ontology/Room", "{details}");
    assert_eq!(details[0]["attributeNames"], json!(["brand", "temperature"]), "{details}");
    let info = get("/ngsi-ld/v1/types/Room");
    assert_eq!(info.status, 200, "the short name is expanded with the Link context: {info:?}");
    let info = info.json();
    assert_eq!((info["typeName"].clone(), info["entityCount"].clone()), (json!("Room"), json!(1)), "{info}");
    let names: Vec<&str> =
        info["attributeDetails"].as_array().unwrap().iter().filter_map(|a| a["attributeName"].as_str()).collect();
    assert_eq!(names, ["brand", "temperature"], "{info}");
    assert_problem(&broker.get("/ngsi-ld/v1/types/Room"), 404, "ResourceNotFound");

    assert_eq!(get("/ngsi-ld/v1/attributes").json()["attributeList"], json!(["brand", "temperature"]));
    let temperature = get("/ngsi-ld/v1/attributes/temperature");
    assert_eq!(temperature.status, 200, "{temperature:?}");
    let temperature = temperature.json();
    assert_eq!(
        (temperature["attributeName"].clone(), temperature["typeNames"].clone(), temperature["id"].clone()),
        (json!("temperature"), json!(["Room"]), json!("https://example.org/ontology/temperature"))
    );
    let details = get("/ngsi-ld/v1/attributes?details=true").json();
    assert_eq!(details[0]["attributeName"], "brand", "{details}");
    let ld = broker.request("GET", "/ngsi-ld/v1/types", None, &[("Link", &linked), ("Accept", "application/ld+json")]);
    assert_eq!((ld.json()["typeList"].clone(), ld.json()["@context"].clone()), (json!(["Room"]), json!(url)));

    let subscription = json!({"type": "Subscription", "entities": [{"type": "Room"}],
        "watchedAttributes": ["temperature"], "notification": {"attributes": ["brand"],
        "endpoint": {"uri": "http://127.0.0.1:9/n"}}});
    let created = send(&broker, "POST", "/ngsi-ld/v1/subscriptions", &subscription, &[("Link", &linked)]);
    assert_eq!(created.status, 201, "{created:?}");
    let location = created.header("location").expect("Location").to_string();
    let shown = get(&location);
    assert!(shown.header("link").is_some_and(|l| l.contains(url)), "{shown:?}");
    let shown = shown.json();
    assert_eq!(shown["entities"], json!([{"type": "Room"}]), "{shown}");
    assert_eq!(shown["watchedAttributes"], json!(["temperature"]), "{shown}");
    assert_eq!(shown["notification"]["attributes"], json!(["brand"]), "{shown}");
    let listed = get("/ngsi-ld/v1/subscriptions").json();
    assert_eq!(listed[0]["entities"], json!([{"type": "Room"}]), "{listed}");
    let plain = broker.get(&location).json();
    assert_eq!(plain["entities"], json!([{"type": "https://example.org/ontology/Room"}]), "{plain}");
    assert_eq!(plain["notification"]["attributes"], json!(["https://schema.org/brand"]), "{plain}");
}

#[test]
fn unusable_contexts_are_ld_context_not_available() {
    let big = json!({"@context": {"t": "x".repeat(4096)}}).to_string();
    let server = StaticServer::start(&[
        ("/big.jsonld", Serve::Body(200, big)),
        ("/stall.jsonld", Serve::Stall),
        ("/bad.jsonld", Serve::Body(200, "{not json".into())),
        ("/bare.jsonld", Serve::Body(200, r#"{"Room": "https://e.org/Room"}"#.into())),
        ("/ctx.jsonld", Serve::Body(200, context_document())),
    ]);
    let closed = format!("http://127.0.0.1:{}/", crate::common::free_port());
    let closed_tls = closed.replace("http://", "https://");
    let broker = BrokerOptions::new()
        .env("FOGFLOW__CONTEXT__ALLOWLIST", format!("{},{closed},{closed_tls}", server.url("/")))
        .env("FOGFLOW__CONTEXT__MAX_BYTES", 2048)
        .env("FOGFLOW__CONTEXT__TIMEOUT_MS", 500)
        .env("FOGFLOW__CONTEXT__CACHE_TTL_SECS", 1)
        .start();
    let get = |url: &str| broker.request("GET", "/ngsi-ld/v1/entities?type=Room", None, &[("Link", &link(url))]);
    for (path, reason) in [
        ("/big.jsonld", "context.max_bytes"),
        ("/bad.jsonld", "not JSON"),
        ("/bare.jsonld", "no @context"),
        ("/missing.jsonld", "HTTP 404"),
    ] {
        assert_unavailable(&get(&server.url(path)), &server.url(path), reason);
    }
    let started = Instant::now();
    assert_unavailable(&get(&server.url("/stall.jsonld")), &server.url("/stall.jsonld"), "context.timeout_ms");
    assert!(started.elapsed() < Duration::from_secs(5), "the fetch is bounded by timeout_ms");
    let secure = format!("{closed_tls}ctx.jsonld");
    assert_unavailable(&get(&secure), &secure, "unreachable");
    let unreachable = format!("{closed}ctx.jsonld");
    assert_unavailable(&get(&unreachable), &unreachable, "unreachable");
    let failed_again = get(&server.url("/missing.jsonld"));
    assert_unavailable(&failed_again, &server.url("/missing.jsonld"), "HTTP 404");
    assert_eq!(server.hits("/missing.jsonld"), 2, "failures are not cached");

    let ctx = server.url("/ctx.jsonld");
    assert_eq!(get(&ctx).status, 200);
    assert_eq!(get(&ctx).status, 200);
    assert_eq!(server.hits("/ctx.jsonld"), 1, "within the TTL the cached context is used");
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(get(&ctx).status, 200);
    assert_eq!(server.hits("/ctx.jsonld"), 2, "after the TTL the context is fetched again");
}

#[test]
fn subscriptions_keep_their_remote_context_for_notifications() {
    let server = StaticServer::start(&[("/ctx.jsonld", Serve::Body(200, context_document()))]);
    let ctx = server.url("/ctx.jsonld");
    let broker = BrokerOptions::new().env("FOGFLOW__CONTEXT__ALLOWLIST", server.url("/")).start();
    let sink = Sink::start();
    let linked = link(&ctx);
    let json_subscription = json!({"type": "Subscription", "entities": [{"type": "Room"}],
        "watchedAttributes": ["temperature"], "q": "temperature>20",
        "notification": {"format": "keyValues", "endpoint": {"uri": format!("{}/json", sink.url())}}});
    let response = send(&broker, "POST", "/ngsi-ld/v1/subscriptions", &json_subscription, &[("Link", &linked)]);
    assert_eq!(response.status, 201, "{response:?}");
    let mut ld_subscription = json_subscription.clone();
    ld_subscription["notification"]["endpoint"] =
        json!({"uri": format!("{}/ld", sink.url()), "accept": "application/ld+json"});
    ld_subscription["@context"] = json!([ctx]);
    let response = send(
        &broker,
        "POST",
        "/ngsi-ld/v1/subscriptions",
        &ld_subscription,
        &[("Content-Type", "application/ld+json")],
    );
    assert_eq!(response.status, 201, "{response:?}");

    create(&broker, &room("urn:ngsi-ld:Room:1", 25.0), &[("Link", &linked)]);
    let expected = json!({"id": "urn:ngsi-ld:Room:1", "type": "Room", "temperature": 25.0, "brand": "Acme"});
    let json_request = wait_for(&sink, "/json");
    assert!(json_request.header("link").is_some_and(|l| l.contains(&ctx)), "{json_request:?}");
    assert_eq!(json_request.json()["data"][0], expected);
    let ld_request = wait_for(&sink, "/ld");
    assert_eq!(ld_request.header("content-type"), Some("application/ld+json"));
    assert_eq!(ld_request.json()["@context"], json!([ctx]));
    assert_eq!(ld_request.json()["data"][0], expected);
    assert_eq!(server.hits("/ctx.jsonld"), 1, "notifying never fetches the context again");
}

#[test]
fn concurrent_requests_for_one_context_share_one_fetch() {
    let server = StaticServer::start(&[("/slow.jsonld", Serve::Slow(700, context_document()))]);
    let broker = BrokerOptions::new().env("FOGFLOW__CONTEXT__ALLOWLIST", server.url("/")).start();
    let linked = link(&server.url("/slow.jsonld"));
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let readers: Vec<_> = (0..6)
            .map(|_| {
                scope.spawn(|| {
                    broker.request("GET", "/ngsi-ld/v1/entities?type=Room", None, &[("Link", &linked)]).status
                })
            })
            .collect();
        readers.into_iter().map(|reader| reader.join().expect("reader")).collect()
    });
    assert_eq!(statuses, vec![200; 6]);
    assert_eq!(server.hits("/slow.jsonld"), 1, "one fetch served every concurrent request");
}

fn wait_for(sink: &Sink, path: &str) -> Recorded {
    let has = |r: &Recorded| r.path == path;
    let requests = sink.wait_until(WAIT, &format!("a notification at {path}"), |requests| requests.iter().any(has));
    requests.into_iter().find(has).expect("found")
}

/// A context host that moved its document: redirects (relative or absolute, several in a row) are followed to
/// allowlisted URLs only, at most five, and the document found expands terms as if linked directly.
#[test]
fn context_redirects_are_followed_only_to_allowlisted_urls() {
    let elsewhere = StaticServer::start(&[("/ctx.jsonld", Serve::Body(200, context_document()))]);
    let server = StaticServer::start(&[
        ("/ctx.jsonld", Serve::Body(200, context_document())),
        ("/moved.jsonld", Serve::Redirect(301, "/v2/old.jsonld".into())),
        ("/v2/old.jsonld", Serve::Redirect(307, "../ctx.jsonld".into())),
        ("/away.jsonld", Serve::Redirect(302, elsewhere.url("/ctx.jsonld"))),
        ("/loop.jsonld", Serve::Redirect(302, "/loop.jsonld".into())),
        ("/nowhere.jsonld", Serve::Redirect(302, String::new())),
    ]);
    let broker = BrokerOptions::new().env("FOGFLOW__CONTEXT__ALLOWLIST", server.url("/")).start();
    let moved = server.url("/moved.jsonld");
    create(&broker, &room("urn:ngsi-ld:Room:R", 20.5), &[("Link", &link(&moved))]);
    let plain = broker.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:R").json();
    assert_eq!(plain["type"], "https://example.org/ontology/Room", "{plain}");
    assert_eq!(plain["https://example.org/ontology/temperature"]["value"], 20.5, "{plain}");
    assert_eq!(
        (server.hits("/moved.jsonld"), server.hits("/v2/old.jsonld"), server.hits("/ctx.jsonld")),
        (1, 1, 1),
        "each hop fetched once"
    );

    let get = |url: &str| broker.request("GET", "/ngsi-ld/v1/entities?type=Room", None, &[("Link", &link(url))]);
    let away = server.url("/away.jsonld");
    assert_unavailable(&get(&away), &away, "which no context.allowlist prefix allows");
    assert_eq!(elsewhere.hits("/ctx.jsonld"), 0, "a redirect does not reach a host the allowlist leaves out");
    let looping = server.url("/loop.jsonld");
    assert_unavailable(&get(&looping), &looping, "more than 5 redirects");
    assert_eq!(server.hits("/loop.jsonld"), 6, "the first request and five redirects");
    let nowhere = server.url("/nowhere.jsonld");
    assert_unavailable(&get(&nowhere), &nowhere, "without a usable Location");
}
