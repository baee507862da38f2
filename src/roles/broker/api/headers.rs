//! NGSI10 request headers: tenant (`Fiware-Service`), `Fiware-Correlator`, and the subscriber headers FogFlow
//! reads at subscribe time (`User-Agent: lightweight-iot-broker`, `Require-Reliability`, `Destination`,
//! `NGSILD-Tenant`), validated (B11, B16).

use axum::http::HeaderMap;

use super::error::V1Error;
use crate::roles::broker::state::RequestMeta;
use crate::roles::broker::subscriptions::Subscriber;

/// The `User-Agent` FogFlow brokers use for broker-to-broker traffic.
pub const INTERNAL_USER_AGENT: &str = "lightweight-iot-broker";
/// Longest tenant name (Orion's limit).
pub const MAX_TENANT_LEN: usize = 50;
/// Longest correlator accepted.
pub const MAX_CORRELATOR_LEN: usize = 256;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, V1Error> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(V1Error::bad_request(format!("header {name} is given more than once")));
    }
    let text = first.to_str().map_err(|_| V1Error::bad_request(format!("header {name} is not visible ASCII")))?;
    Ok(Some(text.trim()))
}

/// Reads and validates the request's NGSI10 headers.
pub fn request_meta(headers: &HeaderMap) -> Result<RequestMeta, V1Error> {
    let tenant = match header(headers, "fiware-service")? {
        None | Some("") => String::new(),
        Some(service) => {
            if service.len() > MAX_TENANT_LEN || !service.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(V1Error::bad_request(format!(
                    "Fiware-Service `{service}` must be at most {MAX_TENANT_LEN} letters, digits or _"
                )));
            }
            service.to_ascii_lowercase()
        }
    };
    let correlator = match header(headers, "fiware-correlator")? {
        None | Some("") => None,
        Some(value) if value.len() > MAX_CORRELATOR_LEN => {
            return Err(V1Error::bad_request(format!(
                "Fiware-Correlator is longer than {MAX_CORRELATOR_LEN} characters"
            )))
        }
        Some(value) => Some(value.to_string()),
    };
    let is_internal = header(headers, "user-agent")?.is_some_and(|agent| agent == INTERNAL_USER_AGENT);
    let require_reliability =
        header(headers, "require-reliability")?.is_some_and(|value| value.eq_ignore_ascii_case("true"));
    let destination_type = header(headers, "destination")?.unwrap_or_default().to_string();
    let ld_tenant = header(headers, "ngsild-tenant")?.unwrap_or_default().to_string();
    if ld_tenant.len() > MAX_TENANT_LEN {
        return Err(V1Error::bad_request(format!("NGSILD-Tenant is longer than {MAX_TENANT_LEN} characters")));
    }
    Ok(RequestMeta {
        tenant,
        correlator: correlator.clone(),
        subscriber: Subscriber {
            is_internal,
            require_reliability,
            broker_url: String::new(),
            notify_cache: Vec::new(),
            destination_type,
            tenant: ld_tenant,
            correlator: correlator.unwrap_or_default(),
        },
        service_path: None,
    })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn headers_are_read_and_validated() {
        let mut headers = HeaderMap::new();
        headers.insert("fiware-service", HeaderValue::from_static("OpenIoT"));
        headers.insert("fiware-correlator", HeaderValue::from_static("c1"));
        headers.insert("user-agent", HeaderValue::from_static("lightweight-iot-broker"));
        headers.insert("require-reliability", HeaderValue::from_static("true"));
        headers.insert("destination", HeaderValue::from_static("NGSI-LD"));
        let meta = request_meta(&headers).unwrap();
        assert_eq!(meta.tenant, "openiot");
        assert_eq!(meta.correlator.as_deref(), Some("c1"));
        assert!(meta.subscriber.is_internal && meta.subscriber.require_reliability);
        assert_eq!(meta.subscriber.destination_type, "NGSI-LD");
        headers.insert("fiware-service", HeaderValue::from_static("bad/tenant"));
        assert!(request_meta(&headers).is_err());
        let mut twice = HeaderMap::new();
        twice.append("fiware-service", HeaderValue::from_static("a"));
        twice.append("fiware-service", HeaderValue::from_static("b"));
        assert!(request_meta(&twice).is_err());
    }
}
