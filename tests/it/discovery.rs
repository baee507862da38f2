//! The discovery role as a separate process of the real binary: NGSI9 registration, discovery (patterns,
//! types, attributes, per-provider registrations, `nearby` order), availability subscriptions with 201 / 301 /
//! 410 notifications, broker leases expiring after `kill -9`, restarts with and without the data folder, and
//! the FogFlow bugs of spec §12.16–§12.24 gone: each has a test named `spec12_<n>_…`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{assert_ngsi_error, element, free_port, Broker, BrokerOptions, Recorded, Reply, Sink};

const WAIT: Duration = Duration::from_secs(15);

fn discovery() -> Broker {
    BrokerOptions::discovery().env("FOGFLOW__BROKER__HEARTBEAT_INTERVAL", 1).start()
}

fn register(
    discovery: &Broker,
    id: &str,
    entity_type: &str,
    attributes: &[&str],
    provider: &str,
    location: Option<(f64, f64)>,
) {
    let metadata: Vec<Value> = location
        .map(|(latitude, longitude)| json!({"name":"location","type":"point","value":{"latitude":latitude,"longitude":longitude}}))
        .into_iter()
        .collect();
    let body = json!({"contextRegistrations":[{
        "entities":[{"id":id,"type":entity_type}],
        "attributes": attributes.iter().map(|name| json!({"name":name,"type":"integer","isDomain":false})).collect::<Vec<_>>(),
        "contextMetadata": metadata,
        "providingApplication": provider}],"duration":"PT10M"});
    let answer = discovery.post("/ngsi9/registerContext", &body);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["errorCode"]["code"], 200, "{}", answer.body);
}

fn providers(answer: &Value) -> Vec<String> {
    answer["contextRegistrationResponses"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|r| r["contextRegistration"]["providingApplication"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn discover(discovery: &Broker, body: Value) -> Value {
    let answer = discovery.post("/ngsi9/discoverContextAvailability", &body);
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()
}

fn availability(requests: &[Recorded], code: u16, entity: &str) -> bool {
    requests.iter().map(Recorded::json).any(|body| {
        body["errorCode"]["code"] == code
            && body["contextRegistrationResponses"].as_array().is_some_and(|all| {
                all.iter().any(|r| r["contextRegistration"]["entities"].to_string().contains(entity))
            })
    })
}

#[test]
fn spec12_21_registrations_are_found_by_id_pattern_exact_type_and_attributes_per_provider() {
    let discovery = discovery();
    register(&discovery, "Device.temp001", "Temperature", &["temp"], "http://10.0.0.1:8070/ngsi10", None);
    register(&discovery, "Device.temp001", "Temperature", &["hum"], "http://10.0.0.1:8070/ngsi10", None);
    register(&discovery, "Device.temp001", "Temperature", &["temp"], "http://10.0.0.2:8070/ngsi10", None);
    register(&discovery, "Other.1", "Temperature2", &["temp"], "http://10.0.0.2:8070/ngsi10", None);

    let record = discovery.get("/ngsi9/registration/Device.temp001").json();
    assert_eq!(record["ID"], "Device.temp001", "{record}");
    assert!(record["AttributesList"].get("temp").is_some(), "{record}");

    let by_pattern = discover(&discovery, json!({"entities":[{"id":"Device.*","isPattern":true}]}));
    assert_eq!(providers(&by_pattern).len(), 2, "one registration per provider: {by_pattern}");
    let by_type = discover(&discovery, json!({"entities":[{"type":"Temperature","isPattern":true}]}));
    assert!(!by_type.to_string().contains("Other.1"), "types are exact, not regexes: {by_type}");
    let with_both = discover(&discovery, json!({"entities":[{"id":"Device.temp001"}],"attributes":["temp","hum"]}));
    assert_eq!(
        providers(&with_both),
        ["http://10.0.0.1:8070/ngsi10"],
        "a partial registration keeps attributes: {with_both}"
    );
    assert_eq!(discovery.get("/etype").json(), json!(["Temperature", "Temperature2"]));
    let metrics = discovery.metrics();
    assert!(metrics.contains("fogflow_discovery_registrations 3"), "three registrations in /metrics:\n{metrics}");
}

#[test]
fn spec12_16_discovery_get_registration_and_subscription_unknown_is_404() {
    let discovery = discovery();
    assert_ngsi_error(&discovery.get("/ngsi9/registration/Nope"), 404);
    assert_ngsi_error(&discovery.get("/ngsi9/ngsi-ld/registration/Nope"), 404);
    assert_ngsi_error(&discovery.get("/ngsi9/subscription/nope"), 404);
    assert_ngsi_error(&discovery.delete("/ngsi9/registration/Nope"), 404);
    assert_eq!(discovery.get("/ngsi9/status").status, 200, "discovery survives the lookups that crashed FogFlow's");
}

#[test]
fn spec12_18_nearby_returns_the_nearest_brokers_first_with_a_default_limit() {
    let discovery = discovery();
    register(&discovery, "Broker.paris", "IoTBroker", &[], "http://paris:8070/ngsi10", Some((48.85, 2.35)));
    register(&discovery, "Broker.tokyo", "IoTBroker", &[], "http://tokyo:8070/ngsi10", Some((35.69, 139.70)));
    register(&discovery, "Broker.osaka", "IoTBroker", &[], "http://osaka:8070/ngsi10", Some((34.69, 135.50)));
    let near_tokyo = |limit: Value| {
        let mut value = json!({"latitude":35.692221,"longitude":139.709059});
        if !limit.is_null() {
            value["limit"] = limit;
        }
        json!({"entities":[{"type":"IoTBroker","isPattern":true}],"restriction":{"scopes":[{"scopeType":"nearby","scopeValue":value}]}})
    };
    let two = discover(&discovery, near_tokyo(json!(2)));
    assert_eq!(providers(&two), ["http://tokyo:8070/ngsi10", "http://osaka:8070/ngsi10"], "{two}");
    let unlimited = discover(&discovery, near_tokyo(Value::Null));
    assert_eq!(providers(&unlimited).len(), 3, "no limit means a default limit, not nothing: {unlimited}");
    assert_eq!(providers(&unlimited)[2], "http://paris:8070/ngsi10");
}

#[test]
fn spec12_24_availability_subscribers_hear_create_update_and_delete_but_no_unchanged_upsert() {
    let discovery = discovery();
    let sink = Sink::start();
    register(&discovery, "Room.1", "Room", &["t"], "http://10.0.0.1:8070/ngsi10", None);
    let answer = discovery.post(
        "/ngsi9/subscribeContextAvailability",
        &json!({"entities":[{"id":"Room.*","isPattern":true}],"reference":format!("{}/avail", sink.url())}),
    );
    let sid = answer.json()["subscribeId"].as_str().expect("subscribeId").to_string();
    sink.wait_until(WAIT, "a 201 for the existing Room.1", |requests| availability(requests, 201, "Room.1"));
    register(&discovery, "Room.2", "Room", &["t"], "http://10.0.0.1:8070/ngsi10", None);
    sink.wait_until(WAIT, "a 301 for the new Room.2", |requests| availability(requests, 301, "Room.2"));
    let before = sink.requests().len();
    register(&discovery, "Room.2", "Room", &["t"], "http://10.0.0.1:8070/ngsi10", None);
    assert_eq!(discovery.delete("/ngsi9/registration/Room.1").status, 200);
    let requests = sink.wait_until(WAIT, "a 410 for Room.1", |requests| availability(requests, 410, "Room.1"));
    assert!(
        !availability(&requests[before..], 301, "Room.2"),
        "an unchanged re-registration announces nothing (FogFlow announced every upsert)"
    );
    assert!(requests.iter().all(|r| r.path == "/avail"), "availability goes to the exact reference");
    assert_eq!(discovery.get(&format!("/ngsi9/subscription/{sid}")).status, 200);
    let cancelled = discovery.post("/ngsi9/unsubscribeContextAvailability", &json!({"subscriptionId": sid}));
    assert_eq!(cancelled.json()["subscriptionId"], sid.as_str());
    assert_ngsi_error(&discovery.post("/ngsi9/unsubscribeContextAvailability", &json!({"subscriptionId": sid})), 404);
}

#[test]
fn spec12_17_a_killed_brokers_registrations_expire_with_its_lease_and_subscribers_hear_410s() {
    let discovery = discovery();
    let sink = Sink::start();
    let broker = BrokerOptions::new()
        .with_discovery()
        .env("FOGFLOW__DISCOVERY__HTTP_PORT", discovery.port)
        .env("FOGFLOW__DISCOVERY__HOST_IP", "127.0.0.1")
        .env("FOGFLOW__BROKER__HEARTBEAT_INTERVAL", 1)
        .start();
    broker.update_ok("UPDATE", &[element("Lease.1", "L", &[("v", "integer", json!(1))])]);
    crate::common::wait_until(WAIT, "Lease.1 registered", || {
        (discovery.get("/ngsi9/registration/Lease.1").status == 200).then_some(())
    });
    discovery.post(
        "/ngsi9/subscribeContextAvailability",
        &json!({"entities":[{"id":"Lease.*","isPattern":true}],"reference":format!("{}/avail", sink.url())}),
    );
    sink.wait_until(WAIT, "the 201", |requests| availability(requests, 201, "Lease.1"));
    assert!(discovery.get("/ngsi9/broker").json().get("Broker.001").is_some());
    let mut broker = broker;
    broker.kill9();
    sink.wait_until(WAIT, "a 410 once the lease (3 heartbeats) ran out", |requests| {
        availability(requests, 410, "Lease.1")
    });
    assert_eq!(discovery.get("/ngsi9/registration/Lease.1").status, 404);
    assert_eq!(discovery.get("/ngsi9/broker").json(), json!({}), "the dead broker is no longer listed");
    let nearby = json!({"entities":[{"type":"IoTBroker","isPattern":true}],
        "restriction":{"scopes":[{"scopeType":"nearby","scopeValue":{"latitude":0.0,"longitude":0.0,"limit":5}}]}});
    assert!(providers(&discover(&discovery, nearby)).is_empty(), "nearby no longer names the dead broker");
}

#[test]
fn spec12_17_restarted_discovery_keeps_its_registry_and_a_wiped_one_is_refilled_by_the_brokers() {
    let discovery_port = free_port();
    let mut discovery =
        BrokerOptions::discovery().port(discovery_port).env("FOGFLOW__BROKER__HEARTBEAT_INTERVAL", 1).start();
    let broker = BrokerOptions::new()
        .with_discovery()
        .env("FOGFLOW__DISCOVERY__HTTP_PORT", discovery_port)
        .env("FOGFLOW__DISCOVERY__HOST_IP", "127.0.0.1")
        .env("FOGFLOW__BROKER__HEARTBEAT_INTERVAL", 1)
        .start();
    broker.update_ok("UPDATE", &[element("Kept.1", "K", &[("v", "integer", json!(1))])]);
    crate::common::wait_until(WAIT, "Kept.1 registered", || {
        (discovery.get("/ngsi9/registration/Kept.1").status == 200).then_some(())
    });

    discovery.kill9();
    discovery.restart();
    assert_eq!(discovery.get("/ngsi9/registration/Kept.1").status, 200, "registrations survive kill -9");

    discovery.kill9();
    std::fs::remove_dir_all(discovery.data_dir()).expect("wipe discovery's data");
    discovery.restart();
    crate::common::wait_until(
        Duration::from_secs(10),
        "the broker re-registered everything after the epoch changed",
        || {
            let entity = discovery.get("/ngsi9/registration/Kept.1").status == 200;
            let itself = discovery.get("/ngsi9/registration/Broker.001").status == 200;
            (entity && itself).then_some(())
        },
    );
    drop(broker);
}

#[test]
fn spec12_16_misspelt_scope_types_and_bad_input_are_400_and_duplicate_broker_ids_409() {
    let discovery = discovery();
    let heartbeat = |url: &str| {
        discovery.post(
            "/ngsi9/broker/heartbeat",
            &json!({"id":"Broker.001","myURL":url,"Last_Heartbeat_Update":"0001-01-01T00:00:00Z"}),
        )
    };
    let first = heartbeat("http://10.0.0.1:8070/ngsi10");
    assert_eq!(first.status, 200);
    assert!(first.json()["epoch"].is_string(), "heartbeat answers carry the epoch: {}", first.body);
    assert_ngsi_error(&heartbeat("http://10.0.0.2:8070/ngsi10"), 409);
    for bad in [
        json!({"contextRegistrations":[{"entities":[{"id":"a"}],"providingApplication":"not a url"}]}),
        json!({"contextRegistrations":[{"entities":[],"providingApplication":"http://x/ngsi10"}]}),
        json!({"contextRegistrations":[{"entities":[{"id":"a.*","isPattern":true}],"providingApplication":"http://x/ngsi10"}]}),
    ] {
        assert_ngsi_error(&discovery.post("/ngsi9/registerContext", &bad), 400);
    }
    let scope = json!({"entities":[{"id":"a"}],"restriction":{"scopes":[{"scopeType":"Circle","scopeValue":"x"}]}});
    assert_ngsi_error(&discovery.post("/ngsi9/discoverContextAvailability", &scope), 400);
    assert_ngsi_error(&discovery.post("/ngsi9/subscribeContextAvailability", &json!({"entities":[{"id":"a"}]})), 400);
    assert_eq!(discovery.get("/ngsi9/status").status, 200);
}

#[test]
fn spec12_20_a_failing_availability_subscriber_later_gets_only_the_newest_state() {
    let discovery = discovery();
    let sink = Sink::with_reply(Reply::Status(500));
    discovery.post(
        "/ngsi9/subscribeContextAvailability",
        &json!({"entities":[{"id":"Flap.*","isPattern":true}],"reference":format!("{}/avail", sink.url())}),
    );
    register(&discovery, "Flap.1", "F", &["v"], "http://10.0.0.1:8070/ngsi10", None);
    sink.wait_until(WAIT, "a first (failed) attempt", |requests| availability(requests, 301, "Flap.1"));
    assert_eq!(discovery.delete("/ngsi9/registration/Flap.1").status, 200);
    let failed_so_far = sink.requests().len();
    sink.set_reply(Reply::Ok);
    let requests = sink.wait_until(WAIT, "the 410 delivered once the subscriber recovers", |requests| {
        requests.iter().any(|r| r.answered == Some(200) && availability(std::slice::from_ref(r), 410, "Flap.1"))
    });
    let after_recovery: Vec<&Recorded> = requests[failed_so_far..].iter().filter(|r| r.answered == Some(200)).collect();
    assert!(
        after_recovery.iter().all(|r| !availability(std::slice::from_ref(*r), 301, "Flap.1")),
        "the superseded 301 is never re-sent after the 410 (FogFlow re-sent stale copies forever)"
    );
}

#[test]
fn a_second_broker_with_the_same_id_is_refused_and_instances_tell_replicas_apart() {
    let discovery = discovery();
    let broker = |instance: Option<&str>| {
        let mut options = BrokerOptions::new()
            .with_discovery()
            .env("FOGFLOW__DISCOVERY__HTTP_PORT", discovery.port)
            .env("FOGFLOW__DISCOVERY__HOST_IP", "127.0.0.1")
            .env("FOGFLOW__BROKER__HEARTBEAT_INTERVAL", 1);
        if let Some(instance) = instance {
            options = options.env("FOGFLOW__BROKER__INSTANCE", instance);
        }
        options.start()
    };
    let first = broker(None);
    crate::common::wait_until(WAIT, "the first broker's lease", || {
        discovery.get("/ngsi9/broker").json().get("Broker.001").is_some().then_some(())
    });
    let second = broker(None);
    crate::common::wait_until(WAIT, "the refusal logged by the second broker", || {
        second.log().contains("discovery refuses this broker id").then_some(())
    });
    let listed = discovery.get("/ngsi9/broker").json();
    assert_eq!(listed["Broker.001"]["myURL"], first.advertised_url(), "the first broker keeps its id: {listed}");
    let replica = broker(Some("replica-2"));
    crate::common::wait_until(WAIT, "the replica's own lease", || {
        discovery.get("/ngsi9/broker").json().get("Broker.001.replica-2").is_some().then_some(())
    });
    assert_eq!(discovery.get("/ngsi9/broker").json()["Broker.001.replica-2"]["myURL"], replica.advertised_url());
}

#[test]
fn spec12_19_a_broker_without_a_configured_heartbeat_interval_stays_listed() {
    let discovery = BrokerOptions::discovery().start();
    let _broker = BrokerOptions::new()
        .with_discovery()
        .env("FOGFLOW__DISCOVERY__HTTP_PORT", discovery.port)
        .env("FOGFLOW__DISCOVERY__HOST_IP", "127.0.0.1")
        .start();
    crate::common::wait_until(WAIT, "the broker listed", || {
        discovery.get("/ngsi9/broker").json().get("Broker.001").is_some().then_some(())
    });
    // FogFlow's shipped configs had no heartbeat interval: the threshold was 0 and brokers left the list every 2 s.
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(500));
        assert!(discovery.get("/ngsi9/broker").json().get("Broker.001").is_some(), "the broker flapped out");
    }
}

#[test]
fn spec12_20_a_cancelled_availability_subscription_is_never_retried() {
    let discovery = discovery();
    let sink = Sink::with_reply(Reply::Status(500));
    let answer = discovery.post(
        "/ngsi9/subscribeContextAvailability",
        &json!({"entities":[{"id":"Retry.*","isPattern":true}],"reference":format!("{}/avail", sink.url())}),
    );
    let sid = answer.json()["subscribeId"].as_str().expect("subscribeId").to_string();
    register(&discovery, "Retry.1", "R", &["v"], "http://10.0.0.1:8070/ngsi10", None);
    sink.wait_until(WAIT, "a failing delivery", |requests| availability(requests, 301, "Retry.1"));
    let cancelled = discovery.post("/ngsi9/unsubscribeContextAvailability", &json!({"subscriptionId": sid}));
    assert_eq!(cancelled.status, 200);
    std::thread::sleep(Duration::from_millis(1000));
    let settled = sink.requests().len();
    register(&discovery, "Retry.2", "R", &["v"], "http://10.0.0.1:8070/ngsi10", None);
    std::thread::sleep(Duration::from_millis(3000));
    assert_eq!(
        sink.requests().len(),
        settled,
        "a cancelled subscription was retried or notified (FogFlow retried forever)"
    );
}

#[test]
fn spec12_22_scopes_test_the_location_keep_circle_metadata_and_compare_numbers() {
    let discovery = discovery();
    let body = json!({"contextRegistrations":[{
        "entities":[{"id":"Shop.1","type":"Shop"}],
        "contextMetadata":[
            {"name":"location","type":"point","value":{"latitude":49.40,"longitude":8.68}},
            {"name":"warehouse","type":"point","value":{"latitude":35.69,"longitude":139.70}},
            {"name":"area","type":"circle","value":{"centerLatitude":49.4,"centerLongitude":8.68,"radius":500}},
            {"name":"floor","type":"integer","value":3}],
        "providingApplication":"http://10.0.0.1:8070/ngsi10"}]});
    assert_eq!(discovery.post("/ngsi9/registerContext", &body).status, 200);
    let area = &discovery.get("/ngsi9/registration/Shop.1").json()["MetadataList"]["area"]["value"];
    assert_eq!(area["centerLatitude"], 49.4, "circle metadata keeps its centre: {area}");
    let scoped = |scope: Value| {
        let query = json!({"entities":[{"type":"Shop","isPattern":true}],"restriction":{"scopes":[scope]}});
        providers(&discover(&discovery, query)).len()
    };
    let near_heidelberg =
        json!({"scopeType":"circle","scopeValue":{"centerLatitude":49.41,"centerLongitude":8.69,"radius":5000}});
    assert_eq!(scoped(near_heidelberg), 1, "only the location is tested, not every point metadata");
    let near_tokyo =
        json!({"scopeType":"circle","scopeValue":{"centerLatitude":35.69,"centerLongitude":139.70,"radius":5000}});
    assert_eq!(scoped(near_tokyo), 0);
    assert_eq!(scoped(json!({"scopeType":"stringQuery","scopeValue":"floor=3"})), 1, "numbers compare too");
    assert_eq!(scoped(json!({"scopeType":"stringQuery","scopeValue":"floor=4"})), 0);
}

#[test]
fn spec12_23_ld_geo_restriction_uses_metres_and_geojson_order() {
    let discovery = discovery();
    register(&discovery, "Paris.1", "Spot", &[], "http://10.0.0.1:8070/ngsi10", Some((48.8566, 2.3522)));
    let matched = |geometry: &str, geo_rel: &str, coordinates: Value| {
        let query = json!({"entities":[{"type":"Spot","isPattern":true}],
            "restriction":{"restrictionType":"ld","geometry":geometry,"geoRel":geo_rel,"cordinates":coordinates}});
        !providers(&discover(&discovery, query)).is_empty()
    };
    // Versailles is about 17 km from Paris: 17 000 metres, or some 10.6 statute miles.
    let versailles = json!([2.1301, 48.8049]);
    assert!(matched("point", "near;maxDistance==20000", versailles.clone()));
    assert!(!matched("point", "near;maxDistance==15000", versailles), "metres, not miles");
    assert!(!matched("point", "near;maxDistance==20000", json!([48.8566, 2.3522])), "GeoJSON order, not swapped");
    let around_paris = json!([[[2.2, 48.8], [2.5, 48.8], [2.5, 48.9], [2.2, 48.9], [2.2, 48.8]]]);
    assert!(matched("polygon", "within", around_paris.clone()));
    assert!(matched("polygon", "intersects", around_paris), "intersects is implemented");
    let bad = json!({"entities":[{"type":"Spot","isPattern":true}],
        "restriction":{"restrictionType":"ld","geometry":"circle","geoRel":"within","cordinates":[1,2]}});
    assert_ngsi_error(&discovery.post("/ngsi9/discoverContextAvailability", &bad), 400);
}
