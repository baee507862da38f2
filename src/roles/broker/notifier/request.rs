//! The HTTP request of one notification batch in the subscription's flavour: NGSIv1 `notifyContext`, NGSIv2 and
//! FogFlow's NGSI-LD `Destination`s, Orion's NGSIv2 notification in its `attrsFormat`, and the NGSI-LD
//! Notification of NGSI-LD subscriptions, with their headers (correlator, tenant, service paths, `Link`).

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::json;

use super::{Destination, Pending, Target};
use crate::ngsi::convert::{to_ngsi_ld, to_ngsiv2};
use crate::ngsi::ld::subscription::{notification_body as ld_notification_body, Accept, LdNotice, LdSubscription};
use crate::ngsi::times::EntityTimes;
use crate::ngsi::v1::{ContextElement, ContextElementResponse, NotifyContextRequest, StatusCode};
use crate::ngsi::v2::subscription::notification_body;

/// The core @context FogFlow links on NGSI-LD notifications.
const LD_CORE_CONTEXT_LINK: &str = "<https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.3.jsonld>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\"";

/// The URL, headers and body of the notification of `batch`.
pub(super) fn build_request(target: &Target, batch: &[Pending]) -> (String, HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    let first = batch.first().and_then(|p| p.correlator.as_deref());
    if let Some(correlator) = first.filter(|c| batch.iter().all(|p| p.correlator.as_deref() == Some(*c))) {
        if let Ok(value) = HeaderValue::from_str(correlator) {
            headers.insert(HeaderName::from_static("fiware-correlator"), value);
        }
    }
    let elements = batch.iter().map(|p| &p.element);
    let (url, body) = match target.destination {
        Destination::NgsiV1 => {
            let request = NotifyContextRequest {
                subscription_id: target.subscription_id.clone(),
                originator: String::new(),
                context_responses: elements
                    .map(|element| ContextElementResponse {
                        context_element: element.clone(),
                        status_code: StatusCode::ok(),
                    })
                    .collect(),
            };
            (format!("{}/notifyContext", target.reference), serde_json::to_vec(&request))
        }
        Destination::NgsiV2 => {
            let data: Vec<_> = elements.map(to_ngsiv2).collect();
            (
                target.reference.clone(),
                serde_json::to_vec(&json!({ "subscriptionId": target.subscription_id, "data": data })),
            )
        }
        Destination::NgsiLd => {
            headers.insert(http::header::LINK, HeaderValue::from_static(LD_CORE_CONTEXT_LINK));
            // Only a named tenant is sent (FogFlow sent an empty header for the default one).
            if let Some(tenant) = HeaderValue::from_str(&target.ld_tenant).ok().filter(|_| !target.ld_tenant.is_empty())
            {
                headers.insert(HeaderName::from_static("ngsild-tenant"), tenant);
            }
            let data: Vec<_> = elements.map(to_ngsi_ld).collect();
            (format!("{}/ngsi-ld/v1/entityOperations/upsert", target.reference), serde_json::to_vec(&data))
        }
        Destination::Orion(format) => {
            if !headers.contains_key("fiware-correlator") {
                let fresh = uuid::Uuid::new_v4().to_string();
                if let Ok(value) = HeaderValue::from_str(&fresh) {
                    headers.insert(HeaderName::from_static("fiware-correlator"), value);
                }
            }
            if let Ok(tenant) = HeaderValue::from_str(&target.tenant) {
                if !target.tenant.is_empty() {
                    headers.insert(HeaderName::from_static("fiware-service"), tenant);
                }
            }
            let mut paths: Vec<&str> = Vec::new();
            for pending in batch {
                if !paths.contains(&pending.service_path.as_str()) {
                    paths.push(&pending.service_path);
                }
            }
            if let Ok(paths) = HeaderValue::from_str(&paths.join(",")) {
                headers.insert(HeaderName::from_static("fiware-servicepath"), paths);
            }
            headers.insert(HeaderName::from_static("ngsiv2-attrsformat"), HeaderValue::from_static(format.name()));
            let body = notification_body(&target.subscription_id, elements, format);
            (target.reference.clone(), serde_json::to_vec(&body))
        }
        Destination::LdSubscription => {
            let body = match &target.ld {
                Some(ld) => {
                    let timed = batch.iter().map(|pending| {
                        let times = match (&pending.entity, &pending.notice) {
                            (Some(entity), _) => entity.times(),
                            (None, Some(notice)) => EntityTimes::entity(notice.created_at, notice.modified_at),
                            (None, None) => EntityTimes::default(),
                        };
                        (&pending.element, times, pending.notice.as_deref())
                    });
                    ld_notification(target, ld, &mut headers, timed)
                }
                None => serde_json::Value::Null,
            };
            (target.reference.clone(), serde_json::to_vec(&body))
        }
    };
    (url, headers, Bytes::from(body.unwrap_or_default()))
}

/// The Notification of an NGSI-LD subscription, with its media type, context `Link` (for `application/json`)
/// and `NGSILD-Tenant` (for a named tenant) headers.
fn ld_notification<'a>(
    target: &Target,
    ld: &LdSubscription,
    headers: &mut HeaderMap,
    elements: impl Iterator<Item = (&'a ContextElement, EntityTimes<'a>, Option<&'a LdNotice>)>,
) -> serde_json::Value {
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ld.accept.media_type()));
    if ld.accept == Accept::Json {
        let link = ld.context_link().and_then(|url| {
            HeaderValue::from_str(&format!(
                "<{url}>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\""
            ))
            .ok()
        });
        headers.insert(http::header::LINK, link.unwrap_or(HeaderValue::from_static(LD_CORE_CONTEXT_LINK)));
    }
    if let Some(tenant) = HeaderValue::from_str(&target.tenant).ok().filter(|_| !target.tenant.is_empty()) {
        headers.insert(HeaderName::from_static("ngsild-tenant"), tenant);
    }
    let id = format!("urn:ngsi-ld:Notification:{}", uuid::Uuid::new_v4());
    ld_notification_body(ld, &target.subscription_id, &id, chrono::Utc::now().timestamp_millis(), elements)
}
