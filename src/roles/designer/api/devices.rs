//! Devices and persistent subscriptions (spec §6.3): a device is an entity the designer creates at the cloud
//! broker (`updateContext`) and remembers, so it can re-create it after a restart; a subscription forwards an
//! entity type to another NGSI system (`subscribeContext` with FogFlow's `Destination` header) and is stored
//! under the id the broker gave it. The broker is called first; the store is written only when it agreed.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use serde_json::{json, Value};

use super::ok_json;
use crate::clients::http_client::HttpClient;
use crate::ngsi::v1::{
    ContextAttribute, ContextElement, ContextMetadata, EntityId, SubscribeContextRequest, SubscribeContextResponse,
    UnsubscribeContextRequest, UpdateContextRequest,
};
use crate::roles::designer::error::{Answer, DesignerError};
use crate::roles::designer::state::{decode, DesignerState};
use crate::roles::designer::store::{DesignerStore, SubscriptionRecord};

/// `GET /device`: `{id: Device}`.
pub async fn list_devices(State(state): State<DesignerState>) -> Answer {
    Ok(ok_json(DesignerStore::all(&state.store.devices)?))
}

/// `POST /device`: `{id, type, attributes:{name:{type,value}}, metadata:{name:{type,value}}}` → the entity
/// is created at the broker, then the device (with `entityId`) is stored; answers the stored device.
pub async fn post_device(State(state): State<DesignerState>, headers: HeaderMap, body: Body) -> Answer {
    let mut device: Value = state.body(&headers, body).await?;
    let element = device_element(&device)?;
    if let Some(object) = device.as_object_mut() {
        let entity_id = &element.entity_id;
        object
            .insert("entityId".into(), json!({"id": entity_id.id, "type": entity_id.entity_type, "isPattern": false}));
        object.insert("id".into(), Value::String(element.entity_id.id.clone()));
        object.insert("type".into(), Value::String(element.entity_id.entity_type.clone()));
    }
    update_entity(&state.http, &state.broker_url(), element.clone(), "UPDATE").await?;
    let _writer = state.store.write_lock().await;
    state.store.devices.insert(&element.entity_id.id, &device)?;
    state.store.commit().await?;
    Ok(ok_json(device))
}

/// `DELETE /device/{id}`: 404 unknown; the entity is deleted at the broker, then the device forgotten.
pub async fn delete_device(State(state): State<DesignerState>, Path(id): Path<String>) -> Answer {
    let Some(device) = state.store.devices.get(&id)? else {
        return Err(DesignerError::NotFound(format!("device `{id}` does not exist")));
    };
    let entity_type = device.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
    let element = ContextElement {
        entity_id: EntityId { id: id.clone(), entity_type, is_pattern: false },
        ..ContextElement::default()
    };
    update_entity(&state.http, &state.broker_url(), element, "DELETE").await?;
    let _writer = state.store.write_lock().await;
    state.store.devices.remove(&id)?;
    state.store.commit().await?;
    Ok(ok_json(json!({})))
}

/// The NGSI10 element of a posted device (`id`/`type` or `entityId`; attributes and metadata as a name map
/// of `{type, value}` or of plain values, or as NGSI10 lists).
pub fn device_element(device: &Value) -> Result<ContextElement, DesignerError> {
    let Some(object) = device.as_object() else {
        return Err(DesignerError::Invalid("a device must be a JSON object".into()));
    };
    let entity_id = object.get("entityId");
    let text = |key: &str| {
        object
            .get(key)
            .or_else(|| entity_id.and_then(|e| e.get(key)))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (id, entity_type) = (text("id"), text("type"));
    crate::ngsi::limits::check_name("device id", &id).map_err(|e| DesignerError::Invalid(e.message().to_string()))?;
    crate::ngsi::limits::check_name("device type", &entity_type)
        .map_err(|e| DesignerError::Invalid(e.message().to_string()))?;
    let attributes = named_items(object.get("attributes"), "attributes")?
        .into_iter()
        .map(|(name, attribute_type, value)| ContextAttribute { name, attribute_type, value, metadata: Vec::new() })
        .collect();
    let domain_metadata = named_items(object.get("metadata").or_else(|| object.get("domainMetadata")), "metadata")?
        .into_iter()
        .map(|(name, metadata_type, value)| ContextMetadata { name, metadata_type, value })
        .collect();
    Ok(ContextElement {
        entity_id: EntityId { id, entity_type, is_pattern: false },
        attributes,
        domain_metadata,
        extra_types: Vec::new(),
    })
}

/// `(name, type, value)` of each item of a name map or an NGSI10 list.
fn named_items(value: Option<&Value>, what: &str) -> Result<Vec<(String, String, Value)>, DesignerError> {
    let item = |name: String, value: &Value| match value {
        Value::Object(fields) if fields.contains_key("value") => {
            let kind = fields.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
            (name, kind, fields["value"].clone())
        }
        other => (name, String::new(), other.clone()),
    };
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(map)) => Ok(map.iter().map(|(name, value)| item(name.clone(), value)).collect()),
        Some(Value::Array(list)) => list
            .iter()
            .map(|entry| match entry.get("name").and_then(Value::as_str) {
                Some(name) if !name.is_empty() => Ok(item(name.to_string(), entry)),
                _ => Err(DesignerError::Invalid(format!("every item of `{what}` needs a `name`"))),
            })
            .collect(),
        Some(_) => Err(DesignerError::Invalid(format!("`{what}` must be an object of name → {{type, value}}"))),
    }
}

/// `updateContext` of one element at the broker (`broker` ends in `/ngsi10`); a DELETE of an entity the broker
/// does not hold counts as done.
pub async fn update_entity(
    http: &HttpClient,
    broker: &str,
    element: ContextElement,
    action: &str,
) -> Result<(), DesignerError> {
    let url = format!("{broker}/updateContext");
    let request = UpdateContextRequest { context_elements: vec![element], update_action: Some(action.into()) };
    let body = Bytes::from(serde_json::to_vec(&request).unwrap_or_default());
    let response = http
        .post_json(&url, HeaderMap::new(), body)
        .await
        .map_err(|error| DesignerError::Upstream(format!("the broker is not reachable: {error}")))?;
    match response.status {
        status if (200..300).contains(&status) => Ok(()),
        404 if action == "DELETE" => Ok(()),
        status if (400..500).contains(&status) => Err(DesignerError::Invalid(format!(
            "the broker refused the entity ({status}): {}",
            String::from_utf8_lossy(&response.body)
        ))),
        status => Err(DesignerError::Upstream(format!("the broker answered {status} to updateContext"))),
    }
}

/// `GET /subscription`: `{sid: {entity_type, destination_broker, reference_url, tenant}}`.
pub async fn list_subscriptions(State(state): State<DesignerState>) -> Answer {
    Ok(ok_json(DesignerStore::all(&state.store.subscriptions)?))
}

/// `POST /subscription`: subscribes the entity type at the broker and stores it under the new id; answers
/// `{"subscriptionId": sid}`.
pub async fn post_subscription(State(state): State<DesignerState>, headers: HeaderMap, body: Body) -> Answer {
    let record: SubscriptionRecord = decode("subscription", state.body::<Value>(&headers, body).await?)?;
    check_subscription(&record)?;
    let sid = subscribe(&state.http, &state.broker_url(), &record).await?;
    let _writer = state.store.write_lock().await;
    state.store.subscriptions.insert(&sid, &record)?;
    state.store.commit().await?;
    Ok(ok_json(json!({ "subscriptionId": sid })))
}

fn check_subscription(record: &SubscriptionRecord) -> Result<(), DesignerError> {
    crate::ngsi::limits::check_name("entity_type", &record.entity_type)
        .map_err(|e| DesignerError::Invalid(e.message().to_string()))?;
    if !record.reference_url.starts_with("http://") && !record.reference_url.starts_with("https://") {
        return Err(DesignerError::Invalid("reference_url must be an http:// or https:// URL".into()));
    }
    match record.destination_broker.to_ascii_lowercase().as_str() {
        "" | "ngsiv1" | "ngsiv2" | "ngsi-ld" => Ok(()),
        other => Err(DesignerError::Invalid(format!("destination_broker `{other}` must be NGSIv1, NGSIv2 or NGSI-LD"))),
    }
}

/// `subscribeContext` at the broker with FogFlow's `Destination` (and `NGSILD-Tenant`) headers; the new id.
pub async fn subscribe(http: &HttpClient, broker: &str, record: &SubscriptionRecord) -> Result<String, DesignerError> {
    let request = SubscribeContextRequest {
        entities: vec![EntityId { id: String::new(), entity_type: record.entity_type.clone(), is_pattern: true }],
        reference: record.reference_url.clone(),
        ..SubscribeContextRequest::default()
    };
    let mut headers = HeaderMap::new();
    let destination = match record.destination_broker.to_ascii_lowercase().as_str() {
        "ngsi-ld" => Some("NGSI-LD"),
        "ngsiv2" => Some("NGSIv2"),
        _ => None,
    };
    if let Some(destination) = destination {
        headers.insert(HeaderName::from_static("destination"), HeaderValue::from_static(destination));
    }
    if destination == Some("NGSI-LD") && !record.tenant.is_empty() {
        if let Ok(tenant) = HeaderValue::from_str(&record.tenant) {
            headers.insert(HeaderName::from_static("ngsild-tenant"), tenant);
        }
    }
    let url = format!("{broker}/subscribeContext");
    let body = Bytes::from(serde_json::to_vec(&request).unwrap_or_default());
    let response = http
        .post_json(&url, headers, body)
        .await
        .map_err(|error| DesignerError::Upstream(format!("the broker is not reachable: {error}")))?;
    if (400..500).contains(&response.status) {
        return Err(DesignerError::Invalid(format!(
            "the broker refused the subscription ({}): {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        )));
    }
    let answer: Option<SubscribeContextResponse> =
        response.is_success().then(|| serde_json::from_slice(&response.body).ok()).flatten();
    answer
        .map(|answer| answer.subscribe_response.subscription_id)
        .ok_or_else(|| DesignerError::Upstream(format!("the broker answered {} to subscribeContext", response.status)))
}

/// `DELETE /subscription/{id}`: 404 unknown; unsubscribed at the broker (an id it no longer knows is fine),
/// then forgotten.
pub async fn delete_subscription(State(state): State<DesignerState>, Path(id): Path<String>) -> Answer {
    if state.store.subscriptions.get(&id)?.is_none() {
        return Err(DesignerError::NotFound(format!("subscription `{id}` does not exist")));
    }
    let url = format!("{}/unsubscribeContext", state.broker_url());
    let request = UnsubscribeContextRequest { subscription_id: id.clone() };
    let body = Bytes::from(serde_json::to_vec(&request).unwrap_or_default());
    let response = state
        .http
        .post_json(&url, HeaderMap::new(), body)
        .await
        .map_err(|error| DesignerError::Upstream(format!("the broker is not reachable: {error}")))?;
    if !response.is_success() && response.status != 404 {
        return Err(DesignerError::Upstream(format!("the broker answered {} to unsubscribeContext", response.status)));
    }
    let _writer = state.store.write_lock().await;
    state.store.subscriptions.remove(&id)?;
    state.store.commit().await?;
    Ok(ok_json(json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn attributes_map(items: &[(&str, &str, Value)]) -> Value {
        let map: Map<String, Value> =
            items.iter().map(|(name, kind, value)| (name.to_string(), json!({"type": kind, "value": value}))).collect();
        Value::Object(map)
    }

    #[test]
    fn device_to_element() {
        let device = json!({"id":"Device.Temp001","type":"Temperature",
            "attributes": attributes_map(&[("temperature", "float", json!(21.5))]),
            "metadata": {"location": {"type":"point","value":{"latitude":35.1,"longitude":139.1}}}});
        let element = device_element(&device).unwrap();
        assert_eq!(element.entity_id.id, "Device.Temp001");
        assert_eq!(element.attributes[0].name, "temperature");
        assert_eq!(element.attributes[0].value, json!(21.5));
        assert_eq!(element.domain_metadata[0].metadata_type, "point");
        let listed = json!({"entityId":{"id":"D","type":"T"},"attributes":[{"name":"a","type":"t","value":1}]});
        assert_eq!(device_element(&listed).unwrap().attributes[0].value, json!(1));
        assert!(device_element(&json!({"type":"T"})).is_err());
        assert!(device_element(&json!({"id":"D","type":"T","attributes":[{"value":1}]})).is_err());
        assert!(device_element(&json!([1])).is_err());
    }

    #[test]
    fn subscription_checks() {
        let ok = SubscriptionRecord {
            entity_type: "Temperature".into(),
            destination_broker: "NGSIv2".into(),
            reference_url: "http://x:1/v2".into(),
            tenant: String::new(),
        };
        assert!(check_subscription(&ok).is_ok());
        assert!(check_subscription(&SubscriptionRecord { reference_url: "x".into(), ..ok.clone() }).is_err());
        assert!(check_subscription(&SubscriptionRecord { destination_broker: "mqtt".into(), ..ok }).is_err());
    }
}
