//! Unit tests of notification requests (formats, headers, correlators; NGSI-LD Notifications) and retry backoff.

use super::*;
use crate::ngsi::ld::subscription::Accept;
use crate::ngsi::v1::EntityId;

fn pending(id: &str, correlator: Option<&str>) -> Pending {
    Pending {
        element: ContextElement {
            entity_id: EntityId { id: id.into(), ..EntityId::default() },
            ..ContextElement::default()
        },
        notice: None,
        correlator: correlator.map(str::to_string),
        service_path: "/".into(),
        entity: None,
    }
}

fn target(destination: Destination) -> Target {
    Target {
        subscription_id: "s1".into(),
        reference: "http://127.0.0.1:9/sink".into(),
        destination,
        ld_tenant: "t".into(),
        tenant: "farm".into(),
        reliable: false,
        throttling: None,
        ld: None,
    }
}

#[test]
fn v1_batches_go_to_notify_context_with_a_shared_correlator() {
    let (url, headers, body) =
        build_request(&target(Destination::NgsiV1), &[pending("a", Some("c")), pending("b", Some("c"))]);
    assert_eq!(url, "http://127.0.0.1:9/sink/notifyContext");
    assert_eq!(headers.get("fiware-correlator").unwrap(), "c");
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["subscriptionId"], "s1");
    assert_eq!(body["contextResponses"][1]["contextElement"]["entityId"]["id"], "b");
    let (_, headers, _) = build_request(&target(Destination::NgsiV1), &[pending("a", Some("c")), pending("b", None)]);
    assert!(headers.get("fiware-correlator").is_none());
}

#[test]
fn v2_and_ld_destinations_use_their_shapes() {
    let (url, _, body) = build_request(&target(Destination::NgsiV2), &[pending("a", None)]);
    assert_eq!(url, "http://127.0.0.1:9/sink");
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&body).unwrap()["data"][0]["id"], "a");
    let (url, headers, body) = build_request(&target(Destination::NgsiLd), &[pending("a", None)]);
    assert!(url.ends_with("/ngsi-ld/v1/entityOperations/upsert"));
    assert_eq!(headers.get("ngsild-tenant").unwrap(), "t");
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&body).unwrap()[0]["id"], "urn:a");
}

#[test]
fn orion_destination_sends_its_format_and_headers_to_the_url_as_given() {
    let mut target = target(Destination::Orion(AttrsFormat::KeyValues));
    target.reference = "http://127.0.0.1:9/sink/".into();
    let (url, headers, body) = build_request(&target, &[pending("a", None)]);
    assert_eq!(url, "http://127.0.0.1:9/sink/");
    assert_eq!(headers.get("fiware-service").unwrap(), "farm");
    assert_eq!(headers.get("ngsiv2-attrsformat").unwrap(), "keyValues");
    assert!(headers.get("fiware-correlator").is_some());
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["data"][0]["id"], "a");
    assert_eq!(body["subscriptionId"], "s1");
    assert_eq!(headers.get("fiware-servicepath").unwrap(), "/", "the entity's service path");
    let mut batch = vec![pending("a", None), pending("b", None), pending("c", None)];
    batch[0].service_path = "/x".into();
    batch[2].service_path = "/x/y".into();
    let (_, headers, _) = build_request(&target, &batch);
    assert_eq!(headers.get("fiware-servicepath").unwrap(), "/x,/,/x/y", "a batch: its entities' distinct paths");
}

#[test]
fn ld_subscriptions_get_the_notification_with_their_media_type_context_and_tenant() {
    let mut target = target(Destination::LdSubscription);
    target.reference = "http://127.0.0.1:9/ld/".into();
    let ld = LdSubscription { accept: Accept::Json, uri: target.reference.clone(), ..LdSubscription::default() };
    target.ld = Some(Arc::new(ld.clone()));
    let (url, headers, body) = build_request(&target, &[pending("urn:a", None)]);
    assert_eq!(url, "http://127.0.0.1:9/ld/", "the endpoint as given");
    assert_eq!(headers.get("content-type").unwrap(), "application/json");
    assert!(headers.get("link").is_some_and(|link| link.to_str().unwrap().contains("ngsi-ld-core-context")));
    assert_eq!(headers.get("ngsild-tenant").unwrap(), "farm", "the subscription's tenant");
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((body["type"].as_str(), body["subscriptionId"].as_str()), (Some("Notification"), Some("s1")));
    assert_eq!(body["data"][0]["id"], "urn:a");
    target.ld = Some(Arc::new(LdSubscription { accept: Accept::LdJson, ..ld }));
    target.tenant = String::new();
    let (_, headers, body) = build_request(&target, &[pending("urn:a", None)]);
    assert_eq!(headers.get("content-type").unwrap(), "application/ld+json");
    assert!(headers.get("link").is_none() && headers.get("ngsild-tenant").is_none());
    assert!(serde_json::from_slice::<serde_json::Value>(&body).unwrap()["@context"].is_string());
}

#[test]
fn backoff_is_capped() {
    assert!(retry_backoff(1) < Duration::from_secs(1));
    assert!(retry_backoff(30) <= MAX_RETRY_BACKOFF + MAX_RETRY_BACKOFF / 4);
}
