//! NGSIv2 subscriptions (Orion's `/v2/subscriptions`) against the real binary and a real HTTP sink: create,
//! list, retrieve, PATCH and delete with Orion's statuses and bodies; validation errors; the notification body
//! per `attrsFormat` with its headers; trigger attributes against projection, `exceptAttrs`; throttling;
//! `expires`; `status` inactive and back; `maxFailsLimit`; notifications across NGSI10 and NGSIv2 writes;
//! tenants; a restart after SIGKILL.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{element, wait_until, Broker, Recorded, Reply, Resp, Sink};
use crate::ngsiv2_entities::assert_v2_error;

const WAIT: Duration = Duration::from_secs(10);

fn send(broker: &Broker, method: &str, path: &str, body: &Value, headers: &[(&str, &str)]) -> Resp {
    broker.request(method, path, Some(&body.to_string()), headers)
}

/// A subscription body on the entities matching `pattern`, notifying `url`.
fn body(pattern: &str, url: &str) -> Value {
    json!({"subject":{"entities":[{"idPattern":pattern}]},"notification":{"http":{"url":url}}})
}

/// `POST /v2/subscriptions[query]`, asserting 201 with `Location`; answers the id.
fn subscribe_with(broker: &Broker, query: &str, body: &Value, headers: &[(&str, &str)]) -> String {
    let response = send(broker, "POST", &format!("/v2/subscriptions{query}"), body, headers);
    assert_eq!(response.status, 201, "{body}: {response:?}");
    let location = response.header("location").expect("Location header").to_string();
    let id = location.strip_prefix("/v2/subscriptions/").expect("Location names the subscription").to_string();
    assert!(!id.is_empty());
    id
}

fn subscribe(broker: &Broker, body: &Value) -> String {
    subscribe_with(broker, "?options=skipInitialNotification", body, &[])
}

/// Writes attributes of a v2 entity (created when missing) through `POST /v2/entities?options=upsert`.
fn upsert(broker: &Broker, entity: Value, headers: &[(&str, &str)]) {
    let response = send(broker, "POST", "/v2/entities?options=upsert", &entity, headers);
    assert!(matches!(response.status, 201 | 204), "{entity}: {response:?}");
}

/// The requests the sink received on `path`.
fn received(sink: &Sink, path: &str) -> Vec<Recorded> {
    sink.requests().into_iter().filter(|r| r.path == path).collect()
}

/// Waits until a notification on `path` satisfies `check`; returns every notification body on `path`.
fn wait_for(sink: &Sink, path: &str, what: &str, check: impl Fn(&Value) -> bool) -> Vec<Value> {
    sink.wait_until(WAIT, what, |requests| requests.iter().any(|r| r.path == path && check(&r.json())));
    received(sink, path).iter().map(Recorded::json).collect()
}

fn get_subscription(broker: &Broker, id: &str) -> Value {
    let response = broker.get(&format!("/v2/subscriptions/{id}"));
    assert_eq!(response.status, 200, "{response:?}");
    response.json()
}

#[test]
fn create_list_get_patch_and_delete_follow_orion() {
    let broker = Broker::start();
    let first = subscribe(
        &broker,
        &json!({"description":"rooms","subject":{"entities":[{"idPattern":"^Room","type":"Room"}],
            "condition":{"attrs":["temperature"],"expression":{"q":"temperature>20"}}},
            "notification":{"http":{"url":"http://127.0.0.1:9/notify"},"attrs":["temperature"],"attrsFormat":"keyValues"},
            "throttling":5,"expires":"2099-01-01T00:00:00.000Z"}),
    );
    let shown = get_subscription(&broker, &first);
    assert_eq!(shown["id"], first.as_str());
    assert_eq!(shown["description"], "rooms");
    assert_eq!(shown["status"], "active");
    assert_eq!(shown["subject"]["entities"], json!([{"idPattern":"^Room","type":"Room"}]));
    assert_eq!(shown["subject"]["condition"], json!({"attrs":["temperature"],"expression":{"q":"temperature>20"}}));
    assert_eq!(shown["notification"]["http"]["url"], "http://127.0.0.1:9/notify");
    assert_eq!(shown["notification"]["attrs"], json!(["temperature"]));
    assert_eq!(shown["notification"]["attrsFormat"], "keyValues");
    assert_eq!(shown["notification"]["timesSent"], 0);
    assert_eq!((shown["throttling"].clone(), shown["expires"].clone()), (json!(5), json!("2099-01-01T00:00:00.000Z")));
    let second = subscribe(&broker, &body(".*", "http://127.0.0.1:9/other"));

    let listed = broker.request("GET", "/v2/subscriptions?options=count&limit=1&offset=1", None, &[]);
    assert_eq!(listed.status, 200, "{listed:?}");
    assert_eq!(listed.header("fiware-total-count"), Some("2"));
    assert_eq!(listed.json().as_array().unwrap().len(), 1);
    assert_eq!(listed.json()[0]["id"], second.as_str(), "creation order");
    assert_eq!(broker.get("/v2/subscriptions").json().as_array().unwrap().len(), 2);

    let patch = json!({"description":"changed","status":"inactive","throttling":1});
    let patched = send(&broker, "PATCH", &format!("/v2/subscriptions/{first}"), &patch, &[]);
    assert_eq!(patched.status, 204, "{patched:?}");
    assert_eq!(patched.body, "");
    let shown = get_subscription(&broker, &first);
    assert_eq!((shown["description"].clone(), shown["status"].clone()), (json!("changed"), json!("inactive")));
    assert_eq!(shown["throttling"], 1);
    assert_eq!(shown["notification"]["attrsFormat"], "keyValues", "fields not in the PATCH are kept");
    assert_v2_error(&send(&broker, "PATCH", "/v2/subscriptions/nope", &patch, &[]), 404, "NotFound");
    assert_v2_error(
        &send(&broker, "PATCH", &format!("/v2/subscriptions/{first}"), &json!({"x":1}), &[]),
        400,
        "BadRequest",
    );

    assert_eq!(broker.delete(&format!("/v2/subscriptions/{first}")).status, 204);
    assert_v2_error(&broker.delete(&format!("/v2/subscriptions/{first}")), 404, "NotFound");
    assert_v2_error(&broker.get(&format!("/v2/subscriptions/{first}")), 404, "NotFound");
    assert_eq!(broker.get("/v2/subscriptions").json(), json!([get_subscription(&broker, &second)]));
}

#[test]
fn invalid_subscriptions_are_400_bad_request() {
    let broker = Broker::start();
    let good = body(".*", "http://127.0.0.1:9/n");
    let mut cases = vec![
        json!({"notification":good["notification"]}),
        json!({"subject":good["subject"]}),
        json!({"subject":{"entities":[{"id":"a","idPattern":"b"}]},"notification":good["notification"]}),
        json!({"subject":{"entities":[]},"notification":good["notification"]}),
    ];
    for notification in [
        json!({"http":{"url":"ftp://127.0.0.1/n"}}),
        json!({"http":{"url":"not a url"}}),
        json!({"http":{"url":"http://127.0.0.1:9/n"},"attrsFormat":"xml"}),
        json!({"http":{"url":"http://127.0.0.1:9/n"},"attrs":["a"],"exceptAttrs":["b"]}),
    ] {
        let mut bad = good.clone();
        bad["notification"] = notification;
        cases.push(bad);
    }
    for (key, value) in [("throttling", json!(-1)), ("expires", json!("next tuesday")), ("status", json!("sleeping"))] {
        let mut bad = good.clone();
        bad[key] = value;
        cases.push(bad);
    }
    for expression in [json!({"q":"temperature>"}), json!({"georel":"near","geometry":"point","coords":"1,2"})] {
        let mut bad = good.clone();
        bad["subject"]["condition"] = json!({ "expression": expression });
        cases.push(bad);
    }
    for bad in cases {
        assert_v2_error(&send(&broker, "POST", "/v2/subscriptions", &bad, &[]), 400, "BadRequest");
    }
    assert_v2_error(&broker.post_raw("/v2/subscriptions", "{"), 400, "ParseError");
    assert_eq!(broker.get("/v2/subscriptions").json(), json!([]), "nothing was created");
}

#[test]
fn initial_notifications_follow_attrs_format_with_orion_headers() {
    let broker = Broker::start();
    let sink = Sink::start();
    let tenant = [("Fiware-Service", "farm")];
    upsert(&broker, json!({"id":"Room1","type":"Room","temp":{"value":21},"hum":{"value":40}}), &tenant);
    let mut ids = Vec::new();
    for format in ["normalized", "keyValues", "values", "legacy"] {
        let mut subscription = body("^Room", &format!("{}/{format}", sink.url()));
        subscription["notification"]["attrsFormat"] = json!(format);
        ids.push(subscribe_with(&broker, "", &subscription, &tenant));
    }
    sink.wait_until(WAIT, "four initial notifications", |requests| requests.len() >= 4);
    let only = |path: &str| {
        let requests = received(&sink, path);
        assert_eq!(requests.len(), 1, "{path}: {requests:?}");
        requests[0].clone()
    };
    let normalized = only("/normalized");
    assert_eq!(normalized.header("fiware-service"), Some("farm"));
    assert_eq!(normalized.header("ngsiv2-attrsformat"), Some("normalized"));
    assert!(normalized.header("fiware-correlator").is_some_and(|c| !c.is_empty()));
    assert_eq!(
        normalized.json(),
        json!({"subscriptionId":ids[0],"data":[{"id":"Room1","type":"Room",
            "hum":{"type":"Number","value":40,"metadata":{}},"temp":{"type":"Number","value":21,"metadata":{}}}]})
    );
    let key_values = only("/keyValues");
    assert_eq!(key_values.header("ngsiv2-attrsformat"), Some("keyValues"));
    assert_eq!(
        key_values.json(),
        json!({"subscriptionId":ids[1],"data":[{"id":"Room1","type":"Room","hum":40,"temp":21}]})
    );
    assert_eq!(only("/values").json(), json!({"subscriptionId":ids[2],"data":[[40, 21]]}));
    let legacy = only("/legacy").json();
    assert_eq!(legacy["subscriptionId"], ids[3].as_str());
    let element = &legacy["contextResponses"][0]["contextElement"];
    assert_eq!(element["entityId"]["id"], "Room1", "{legacy}");
    assert_eq!(element["attributes"].as_array().map(Vec::len), Some(2), "{legacy}");
    assert_v2_error(&broker.get(&format!("/v2/subscriptions/{}", ids[0])), 404, "NotFound");
    assert_eq!(broker.get("/v2/subscriptions").json(), json!([]), "another tenant's subscriptions are not listed");
    wait_until(WAIT, "timesSent 1", || {
        let shown = broker.request("GET", &format!("/v2/subscriptions/{}", ids[0]), None, &tenant).json();
        (shown["notification"]["timesSent"] == 1 && shown["notification"]["lastSuccess"].is_string()).then_some(())
    });
}

#[test]
fn condition_attrs_trigger_while_notification_attrs_only_project() {
    let broker = Broker::start();
    let sink = Sink::start();
    let mut projected = body("^Room", &format!("{}/projected", sink.url()));
    projected["subject"]["condition"] = json!({"attrs":["temp"]});
    projected["notification"]["attrs"] = json!(["hum", "missing"]);
    projected["notification"]["attrsFormat"] = json!("keyValues");
    subscribe(&broker, &projected);
    let mut except = body("^Room", &format!("{}/except", sink.url()));
    except["notification"]["exceptAttrs"] = json!(["temp"]);
    except["notification"]["attrsFormat"] = json!("keyValues");
    subscribe(&broker, &except);

    upsert(&broker, json!({"id":"Room1","type":"Room","hum":{"value":40}}), &[]);
    wait_for(&sink, "/except", "hum without temp", |n| n["data"][0] == json!({"id":"Room1","type":"Room","hum":40}));
    upsert(&broker, json!({"id":"Room1","type":"Room","hum":{"value":41}}), &[]);
    upsert(&broker, json!({"id":"Room1","type":"Room","temp":{"value":22}}), &[]);
    let notified = wait_for(&sink, "/projected", "the temp change", |_| true);
    assert_eq!(
        notified,
        [json!({"subscriptionId":notified[0]["subscriptionId"],
        "data":[{"id":"Room1","type":"Room","hum":41}]})],
        "hum changes do not trigger; temp is not projected"
    );
    let excepted = wait_for(&sink, "/except", "three changes", |n| n["data"][0]["hum"] == 41);
    assert!(excepted.iter().all(|n| n["data"][0].get("temp").is_none()), "{excepted:?}");

    // An entity without the projected attributes is still notified (attrs never filter).
    upsert(&broker, json!({"id":"Room2","type":"Room","temp":{"value":5}}), &[]);
    wait_for(&sink, "/projected", "Room2", |n| n["data"][0] == json!({"id":"Room2","type":"Room"}));
}

#[test]
fn throttling_sends_the_latest_state_at_most_once_per_interval() {
    let broker = Broker::start();
    let sink = Sink::start();
    let mut throttled = body("^Room", &format!("{}/throttled", sink.url()));
    throttled["throttling"] = json!(4);
    throttled["notification"]["attrsFormat"] = json!("keyValues");
    subscribe(&broker, &throttled);
    for temp in 1..=5 {
        upsert(&broker, json!({"id":"Room1","type":"Room","temp":{"value":temp}}), &[]);
    }
    let notified = wait_for(&sink, "/throttled", "the latest state", |n| n["data"][0]["temp"] == 5);
    assert!(notified.len() <= 2, "five quick changes give the first and the latest: {notified:?}");
}

#[test]
fn expired_and_inactive_subscriptions_are_not_notified_until_active_again() {
    let broker = Broker::start();
    let sink = Sink::start();
    let control = subscribe(&broker, &body("^Room", &format!("{}/control", sink.url())));
    let soon = chrono::Utc::now() + chrono::Duration::seconds(4);
    let mut expiring = body("^Room", &format!("{}/expiring", sink.url()));
    expiring["expires"] = json!(soon.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let expiring = subscribe(&broker, &expiring);
    let mut inactive = body("^Room", &format!("{}/inactive", sink.url()));
    inactive["status"] = json!("inactive");
    let inactive = subscribe(&broker, &inactive);
    assert_eq!(get_subscription(&broker, &inactive)["status"], "inactive");

    upsert(&broker, json!({"id":"Room1","type":"Room","temp":{"value":1}}), &[]);
    wait_for(&sink, "/expiring", "a notification before expiry", |_| true);
    wait_until(WAIT, "status expired", || (get_subscription(&broker, &expiring)["status"] == "expired").then_some(()));
    upsert(&broker, json!({"id":"Room1","type":"Room","temp":{"value":2}}), &[]);
    wait_for(&sink, "/control", "the second change", |n| n["data"][0]["temp"]["value"] == 2);
    assert_eq!(received(&sink, "/expiring").len(), 1, "no notification after expiry");
    assert!(received(&sink, "/inactive").is_empty(), "an inactive subscription is not notified");
    assert_eq!(get_subscription(&broker, &control)["status"], "active");

    let activate = send(&broker, "PATCH", &format!("/v2/subscriptions/{inactive}"), &json!({"status":"active"}), &[]);
    assert_eq!(activate.status, 204, "{activate:?}");
    upsert(&broker, json!({"id":"Room1","type":"Room","temp":{"value":3}}), &[]);
    let notified = wait_for(&sink, "/inactive", "a notification once active", |_| true);
    assert_eq!(notified.last().unwrap()["data"][0]["temp"]["value"], 3, "{notified:?}");
    assert_eq!(get_subscription(&broker, &inactive)["status"], "active");
}

#[test]
fn max_fails_limit_makes_a_failing_subscription_inactive() {
    let broker = Broker::start();
    let sink = Sink::with_reply(Reply::Status(500));
    upsert(&broker, json!({"id":"Room1","type":"Room","temp":{"value":1}}), &[]);
    let mut limited = body("^Room", &format!("{}/limited", sink.url()));
    limited["notification"]["maxFailsLimit"] = json!(1);
    let limited = subscribe_with(&broker, "", &limited, &[]);
    let failing = subscribe_with(&broker, "", &body("^Room", &format!("{}/failing", sink.url())), &[]);

    let shown = wait_until(WAIT, "status inactive", || {
        let shown = get_subscription(&broker, &limited);
        (shown["status"] == "inactive").then_some(shown)
    });
    assert_eq!(shown["notification"]["maxFailsLimit"], 1, "{shown}");
    assert!(shown["notification"]["failsCounter"].as_u64().is_some_and(|n| n >= 1), "{shown}");
    assert!(shown["notification"]["lastFailureReason"].as_str().is_some_and(|r| r.contains("500")), "{shown}");
    let shown = wait_until(WAIT, "status failed", || {
        let shown = get_subscription(&broker, &failing);
        (shown["status"] == "failed").then_some(shown)
    });
    assert!(shown["notification"]["lastFailure"].is_string(), "{shown}");

    // Inactive for good: later changes are not sent, even to a healthy subscriber.
    sink.set_reply(Reply::Ok);
    let attempts = received(&sink, "/limited").len();
    upsert(&broker, json!({"id":"Room1","type":"Room","temp":{"value":2}}), &[]);
    wait_for(&sink, "/failing", "the change, delivered", |n| n["data"][0]["temp"]["value"] == 2);
    assert_eq!(received(&sink, "/limited").len(), attempts, "an inactive subscription is not notified");
    assert_eq!(get_subscription(&broker, &limited)["status"], "inactive");
    wait_until(WAIT, "status active again", || {
        (get_subscription(&broker, &failing)["status"] == "active").then_some(())
    });
}

#[test]
fn ngsi10_and_ngsiv2_writes_notify_subscriptions_of_the_other_flavour() {
    let broker = Broker::start();
    let sink = Sink::start();
    let mut v2 = body("^Device", &format!("{}/v2", sink.url()));
    v2["notification"]["attrsFormat"] = json!("keyValues");
    subscribe(&broker, &v2);
    broker.subscribe_ok(&json!({"entities":[{"id":"Car.*","isPattern":true}],"reference":sink.url()}));

    broker.update_ok("UPDATE", &[element("Device.1", "Sensor", &[("temp", "integer", json!(7))])]);
    wait_for(&sink, "/v2", "the NGSI10 write", |n| n["data"][0] == json!({"id":"Device.1","type":"Sensor","temp":7}));
    upsert(&broker, json!({"id":"Car.1","type":"Car","speed":{"value":50}}), &[]);
    let notifications = sink.wait_notification(WAIT, "the v2 write, as NGSI10", |n| {
        n["contextResponses"][0]["contextElement"]["entityId"]["id"] == "Car.1"
    });
    let car = &notifications.last().unwrap()["contextResponses"][0]["contextElement"];
    assert_eq!(car["attributes"][0]["name"], "speed", "{car}");
    assert_eq!(car["attributes"][0]["value"], 50, "{car}");
}

#[test]
fn subscriptions_are_per_tenant() {
    let broker = Broker::start();
    let sink = Sink::start();
    let tenant = [("Fiware-Service", "t1")];
    let id = subscribe_with(
        &broker,
        "?options=skipInitialNotification",
        &body(".*", &format!("{}/t1", sink.url())),
        &tenant,
    );
    subscribe(&broker, &body(".*", &format!("{}/default", sink.url())));
    upsert(&broker, json!({"id":"Room1","type":"Room","temp":{"value":1}}), &[]);
    wait_for(&sink, "/default", "the default tenant's change", |_| true);
    upsert(&broker, json!({"id":"Room1","type":"Room","temp":{"value":2}}), &tenant);
    let notified = wait_for(&sink, "/t1", "the tenant's change", |_| true);
    assert_eq!(notified.len(), 1, "only the tenant's write: {notified:?}");
    assert_eq!(notified[0]["data"][0]["temp"]["value"], 2);
    assert_eq!(received(&sink, "/t1")[0].header("fiware-service"), Some("t1"));
    assert_eq!(received(&sink, "/default").len(), 1, "the tenant's write is not the default tenant's");
    assert_v2_error(&broker.delete(&format!("/v2/subscriptions/{id}")), 404, "NotFound");
    assert_eq!(broker.request("DELETE", &format!("/v2/subscriptions/{id}"), None, &tenant).status, 204);
}

#[test]
fn subscriptions_survive_a_sigkill_restart() {
    let mut broker = Broker::start();
    let sink = Sink::start();
    let mut durable = body("^Room", &format!("{}/durable", sink.url()));
    durable["notification"]["attrsFormat"] = json!("keyValues");
    durable["description"] = json!("kept");
    let id = subscribe(&broker, &durable);
    let before = get_subscription(&broker, &id);
    broker.kill9();
    broker.restart();
    let after = get_subscription(&broker, &id);
    assert_eq!(after["description"], "kept");
    assert_eq!(after["subject"], before["subject"]);
    assert_eq!(after["notification"]["attrsFormat"], "keyValues");
    upsert(&broker, json!({"id":"Room1","type":"Room","temp":{"value":9}}), &[]);
    wait_for(&sink, "/durable", "a notification after the restart", |n| {
        n["data"][0] == json!({"id":"Room1","type":"Room","temp":9})
    });
}
