//! Brokers federated through discovery, all separate processes of the real binary: a client's query and `GET`
//! at one broker see the entities another broker holds (with the attribute projection forwarded, spec §12.9),
//! a client's update of an entity another broker owns is forwarded there (with its action and correlator, so
//! loop prevention crosses brokers, §12.12), subscriptions are linked once per owner (§12.7) and follow 410s
//! (§12.8), and a broker that no longer answers makes a query partial instead of hanging. Tests of §12 bugs are
//! named `spec12_<n>_…`.

use std::time::Duration;

use serde_json::json;

use crate::common::{broker_at, element, fast_discovery, sorted_ids, wait_registered, wait_until, Broker};

const WAIT: Duration = Duration::from_secs(15);

fn registered(discovery: &Broker, id: &str) {
    wait_registered(discovery, id, WAIT);
}

#[test]
fn spec12_9_queries_and_gets_at_one_broker_see_the_other_brokers_entities_projected() {
    let discovery = fast_discovery();
    let edge = broker_at(&discovery, "002");
    let cloud = broker_at(&discovery, "001");
    edge.update_ok(
        "UPDATE",
        &[element("Fed.edge", "Sensor", &[("t", "integer", json!(1)), ("h", "integer", json!(50))])],
    );
    cloud.update_ok("UPDATE", &[element("Fed.cloud", "Sensor", &[("t", "integer", json!(2))])]);
    registered(&discovery, "Fed.edge");
    registered(&discovery, "Fed.cloud");

    let answer = cloud.query_ok(&json!({"entities":[{"id":"Fed\\..*","isPattern":true}]}));
    assert_eq!(sorted_ids(&answer), ["Fed.cloud", "Fed.edge"], "{answer}");
    let projected = cloud.query_ok(&json!({"entities":[{"id":"Fed.edge"}],"attributes":["h"]}));
    let attributes = &projected["contextResponses"][0]["contextElement"]["attributes"];
    assert_eq!(attributes.as_array().map(Vec::len), Some(1), "projection forwarded to the owner: {projected}");
    assert_eq!(attributes[0]["name"], "h");

    let fetched = cloud.get("/ngsi10/entity/Fed.edge");
    assert_eq!(fetched.status, 200, "{}", fetched.body);
    assert_eq!(fetched.json()["attributes"][0]["value"], 1);

    let internal = cloud.post_with(
        "/ngsi10/queryContext",
        &json!({"entities":[{"id":"Fed\\..*","isPattern":true}]}),
        &[("User-Agent", "lightweight-iot-broker")],
    );
    assert_eq!(sorted_ids(&internal.json()), ["Fed.cloud"], "broker-to-broker queries are answered locally only");
}

#[test]
fn spec12_12_an_update_at_another_broker_is_forwarded_to_the_owner_with_its_action() {
    let discovery = fast_discovery();
    let owner = broker_at(&discovery, "002");
    let other = broker_at(&discovery, "001");
    owner.update_ok("UPDATE", &[element("Moving.1", "Sensor", &[("t", "integer", json!(1))])]);
    registered(&discovery, "Moving.1");

    other.update_ok(
        "APPEND",
        &[element("Moving.1", "Sensor", &[("t", "integer", json!(7)), ("extra", "string", json!("x"))])],
    );
    let at_owner = owner.get("/ngsi10/entity/Moving.1").json();
    let names: Vec<&str> =
        at_owner["attributes"].as_array().unwrap().iter().filter_map(|a| a["name"].as_str()).collect();
    assert!(names.contains(&"extra"), "APPEND reached the owner (FogFlow only forwarded UPDATE): {at_owner}");
    assert_eq!(at_owner["attributes"][0]["value"], 7, "{at_owner}");
    let local_only = other.post_with(
        "/ngsi10/queryContext",
        &json!({"entities":[{"id":"Moving.1"}]}),
        &[("User-Agent", "lightweight-iot-broker")],
    );
    assert!(
        sorted_ids(&local_only.json()).is_empty(),
        "the forwarding broker did not keep a copy: {}",
        local_only.body
    );
}

#[test]
fn a_dead_broker_makes_a_query_partial_not_hang() {
    let discovery = fast_discovery();
    let mut edge = broker_at(&discovery, "002");
    let cloud = broker_at(&discovery, "001");
    edge.update_ok("UPDATE", &[element("Gone.1", "Sensor", &[("t", "integer", json!(1))])]);
    cloud.update_ok("UPDATE", &[element("Here.1", "Sensor", &[("t", "integer", json!(2))])]);
    registered(&discovery, "Gone.1");
    edge.kill9();
    let started = std::time::Instant::now();
    let answer = cloud.post("/ngsi10/queryContext", &json!({"entities":[{"type":"Sensor","isPattern":true}]}));
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(started.elapsed() < Duration::from_secs(10), "a dead owner must not stall the query");
    assert_eq!(sorted_ids(&answer.json()), ["Here.1"], "{}", answer.body);
    let partial = answer.header("fogflow-partial-result").unwrap_or_default();
    assert!(partial.contains("/ngsi10"), "the dead broker is named as unanswered: {answer:?}");
}

/// The values of attribute `t` of entity `id` in the sink's notifications, in arrival order.
fn notified_values(sink: &crate::common::Sink, id: &str) -> Vec<serde_json::Value> {
    sink.notifications()
        .iter()
        .flat_map(crate::common::elements)
        .filter(|e| e["entityId"]["id"] == id)
        .filter_map(|e| crate::common::attr(&e, "t"))
        .collect()
}

#[test]
fn spec12_7_a_subscription_at_one_broker_hears_other_brokers_changes_exactly_once_and_in_order() {
    let discovery = fast_discovery();
    let edge = broker_at(&discovery, "002");
    let cloud = broker_at(&discovery, "001");
    // An entity that exists before the subscription: discovery's 201 and the subscribing broker's own lookup both
    // announce its owner, and still only one internal subscription may be made there.
    edge.update_ok("UPDATE", &[element("Sub.before", "Sensor", &[("t", "integer", json!(0))])]);
    registered(&discovery, "Sub.before");
    let sink = crate::common::Sink::start();
    let sid = cloud.subscribe_ok(&json!({"entities":[{"id":"Sub\\..*","isPattern":true}],"reference":sink.url()}));
    wait_until(WAIT, "the availability subscription at discovery", || {
        let all = discovery.get("/ngsi9/subscription").json();
        (all.as_object().map_or(0, |o| o.len()) == 1).then_some(())
    });

    edge.update_ok("UPDATE", &[element("Sub.edge", "Sensor", &[("t", "integer", json!(1))])]);
    wait_until(WAIT, "the first edge value relayed", || {
        (notified_values(&sink, "Sub.edge") == [json!(1)]).then_some(())
    });
    edge.update_ok("UPDATE", &[element("Sub.edge", "Sensor", &[("t", "integer", json!(2))])]);
    edge.update_ok("UPDATE", &[element("Sub.edge", "Sensor", &[("t", "integer", json!(3))])]);
    cloud.update_ok("UPDATE", &[element("Sub.cloud", "Sensor", &[("t", "integer", json!(10))])]);
    wait_until(WAIT, "every change notified", || {
        (notified_values(&sink, "Sub.edge").len() >= 3 && !notified_values(&sink, "Sub.cloud").is_empty()).then_some(())
    });
    // A barrier: one more local change; delivery per subscription is ordered, so duplicates would precede it.
    cloud.update_ok("UPDATE", &[element("Sub.cloud", "Sensor", &[("t", "integer", json!(11))])]);
    wait_until(WAIT, "the barrier", || (notified_values(&sink, "Sub.cloud").len() >= 2).then_some(()));
    assert_eq!(notified_values(&sink, "Sub.edge"), [json!(1), json!(2), json!(3)], "each remote change once, in order");
    assert_eq!(notified_values(&sink, "Sub.cloud"), [json!(10), json!(11)]);
    assert_eq!(notified_values(&sink, "Sub.before"), [json!(0)], "one internal subscription, one initial state");
    let bodies = sink.notifications();
    assert!(bodies.iter().all(|b| b["subscriptionId"] == sid.as_str()), "relayed under the client's subscription id");

    let cancelled = cloud.post("/ngsi10/unsubscribeContext", &json!({"subscriptionId": sid}));
    assert_eq!(cancelled.status, 200);
    wait_until(WAIT, "the internal subscription at the edge cancelled", || {
        (edge.get("/ngsi10/subscription").json().as_object().is_some_and(|o| o.is_empty())).then_some(())
    });
}

fn subscriptions_at(broker: &Broker) -> usize {
    broker.get("/ngsi10/subscription").json().as_object().map_or(0, |all| all.len())
}

#[test]
fn spec12_8_internal_subscriptions_follow_their_owner_410s_and_their_client_subscription() {
    let discovery = fast_discovery();
    let edge = broker_at(&discovery, "002");
    let cloud = broker_at(&discovery, "001");
    edge.update_ok("UPDATE", &[element("Del.1", "Sensor", &[("t", "integer", json!(1))])]);
    edge.update_ok("UPDATE", &[element("Exp.1", "Sensor", &[("t", "integer", json!(1))])]);
    registered(&discovery, "Del.1");
    registered(&discovery, "Exp.1");
    let sink = crate::common::Sink::start();
    cloud.subscribe_ok(&json!({"entities":[{"id":"Del\\..*","isPattern":true}],"reference":sink.url()}));
    cloud.subscribe_ok(
        &json!({"entities":[{"id":"Exp\\..*","isPattern":true}],"reference":sink.url(),"duration":"PT2S"}),
    );
    wait_until(WAIT, "both linked at the edge", || (subscriptions_at(&edge) == 2).then_some(()));

    let deleted = edge.delete("/ngsi10/entity/Del.1");
    assert_eq!(deleted.status, 200);
    wait_until(WAIT, "the expired subscription and the one whose entity left the edge unlinked", || {
        (subscriptions_at(&edge) == 0).then_some(())
    });
    wait_until(WAIT, "only the live subscription's availability subscription left at discovery", || {
        let all = discovery.get("/ngsi9/subscription").json();
        (all.as_object().map_or(0, |o| o.len()) == 1).then_some(())
    });
}

#[test]
fn spec12_12_forwarded_updates_keep_their_correlator_so_loop_prevention_crosses_brokers() {
    let discovery = fast_discovery();
    let owner = broker_at(&discovery, "002");
    let other = broker_at(&discovery, "001");
    owner.update_ok("UPDATE", &[element("Corr.1", "Sensor", &[("t", "integer", json!(0))])]);
    registered(&discovery, "Corr.1");
    let sink = crate::common::Sink::start();
    owner.subscribe_ok_with(
        &json!({"entities":[{"id":"Corr.1"}],"reference":sink.url()}),
        &[("Fiware-Correlator", "operator-x")],
    );
    wait_until(WAIT, "the initial state", || (notified_values(&sink, "Corr.1") == [json!(0)]).then_some(()));
    other.update_ok_with(
        "UPDATE",
        &[element("Corr.1", "Sensor", &[("t", "integer", json!(1))])],
        &[("Fiware-Correlator", "operator-x")],
    );
    other.update_ok_with(
        "UPDATE",
        &[element("Corr.1", "Sensor", &[("t", "integer", json!(2))])],
        &[("Fiware-Correlator", "someone-else")],
    );
    wait_until(WAIT, "the change of another correlator", || {
        notified_values(&sink, "Corr.1").contains(&json!(2)).then_some(())
    });
    assert_eq!(
        notified_values(&sink, "Corr.1"),
        [json!(0), json!(2)],
        "the subscriber's own change came back through the other broker (FogFlow dropped the correlator)"
    );
    assert_eq!(owner.get("/ngsi10/entity/Corr.1").json()["attributes"][0]["value"], 2);
}
