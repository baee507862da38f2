//! The bodies the bench sends and the few it reads: FogFlow's NGSI10 `updateContext` shape for one
//! entity, `subscribeContext` / `unsubscribeContext`, the subscription id in a subscribe response, the
//! element count of a `notifyContext` the sink receives, and the NGSI-LD entity batches of the `ld-*`
//! scenarios ([`ld_batch_body`]).

use std::fmt;

use anyhow::Context;
use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::json;

/// Type of every bench entity.
pub const ENTITY_TYPE: &str = "BenchSensor";

/// The id pattern (a regex) that matches every preloaded entity, used by the `notify` subscription.
pub const PRELOADED_ID_PATTERN: &str = r"Bench\..*";

/// The answer a notification receiver gives.
pub const NOTIFY_OK_BODY: &[u8] = br#"{"responseCode":{"code":200,"reasonPhrase":"OK"}}"#;

/// Everything after the attribute value in an update body: FogFlow's location metadata and the action.
const UPDATE_BODY_TAIL: &str = concat!(
    r#"}],"domainMetadata":[{"name":"location","type":"point","#,
    r#""value":{"latitude":49.4,"longitude":8.6}}]}],"updateAction":"UPDATE"}"#
);

/// A bench entity id: `Bench.<index>` for preloaded ones, `BenchNew.<run>.<connection>.<sequence>` for created
/// ones (the run tag keeps a second `create` run on the same store from updating the first run's entities).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityId {
    /// One of the `--entities` preloaded entities.
    Preloaded(u64),
    /// A new entity, unique per connection and request.
    New {
        /// Tag of this bench run.
        run: u32,
        /// Index of the connection that creates it.
        connection: usize,
        /// Request number on that connection.
        sequence: u64,
    },
}

impl fmt::Display for EntityId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Preloaded(index) => write!(formatter, "Bench.{index}"),
            Self::New { run, connection, sequence } => write!(formatter, "BenchNew.{run}.{connection}.{sequence}"),
        }
    }
}

/// An `updateContext` body (action `UPDATE`) setting the float attribute `temp` of one entity.
pub fn update_context_body(entity: EntityId, temperature: f64) -> Bytes {
    Bytes::from(format!(
        r#"{{"contextElements":[{{"entityId":{{"id":"{entity}","type":"{ENTITY_TYPE}","isPattern":false}},"attributes":[{{"name":"temp","type":"float","value":{temperature:.2}{UPDATE_BODY_TAIL}"#
    ))
}

/// A `subscribeContext` body for every preloaded entity, notifying `reference`.
pub fn subscribe_context_body(reference: &str) -> Bytes {
    let body = json!({
        "entities": [{ "id": PRELOADED_ID_PATTERN, "isPattern": true }],
        "reference": reference,
    });
    Bytes::from(body.to_string())
}

/// An `unsubscribeContext` body.
pub fn unsubscribe_context_body(subscription_id: &str) -> Bytes {
    Bytes::from(json!({ "subscriptionId": subscription_id }).to_string())
}

/// The id of preloaded NGSI-LD entity `index`: `urn:ngsi-ld:Bench:<index>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LdEntityId(pub u64);

impl fmt::Display for LdEntityId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "urn:ngsi-ld:Bench:{}", self.0)
    }
}

/// Everything after the temperature value in an NGSI-LD bench entity: the fixed `location` GeoProperty.
const LD_ENTITY_TAIL: &str =
    r#"},"location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[8.6,49.4]}}}"#;

/// An NGSI-LD batch body (`application/json`, so no `@context`) for `entityOperations/upsert`: one entity
/// of type [`ENTITY_TYPE`] per `(index, temperature)`, with the Property `temperature` and the GeoProperty
/// `location`.
pub fn ld_batch_body(entities: impl IntoIterator<Item = (u64, f64)>) -> Bytes {
    let mut body = String::with_capacity(192);
    body.push('[');
    for (position, (index, temperature)) in entities.into_iter().enumerate() {
        if position > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"id":"{}","type":"{ENTITY_TYPE}","temperature":{{"type":"Property","value":{temperature:.2}{LD_ENTITY_TAIL}"#,
            LdEntityId(index)
        ));
    }
    body.push(']');
    Bytes::from(body)
}

#[derive(Deserialize)]
struct SubscribeContextResponse {
    #[serde(rename = "subscribeResponse")]
    subscribe_response: SubscribeResponse,
}

#[derive(Deserialize)]
struct SubscribeResponse {
    #[serde(rename = "subscriptionId")]
    subscription_id: String,
}

/// The subscription id in a `subscribeContext` response.
pub fn parse_subscription_id(body: &[u8]) -> anyhow::Result<String> {
    let response: SubscribeContextResponse =
        serde_json::from_slice(body).context("the subscribe response has no subscribeResponse.subscriptionId")?;
    anyhow::ensure!(!response.subscribe_response.subscription_id.is_empty(), "the subscription id is empty");
    Ok(response.subscribe_response.subscription_id)
}

#[derive(Deserialize)]
struct NotifyContextRequest {
    #[serde(rename = "contextResponses", default)]
    context_responses: Vec<IgnoredAny>,
}

/// How many context elements a `notifyContext` body carries (its `contextResponses`).
pub fn count_notified_elements(body: &[u8]) -> anyhow::Result<usize> {
    let request: NotifyContextRequest = serde_json::from_slice(body).context("invalid notifyContext body")?;
    Ok(request.context_responses.len())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn update_body_is_fogflow_shaped_json() {
        let body = update_context_body(EntityId::Preloaded(42), 21.254);
        let value: Value = serde_json::from_slice(&body).unwrap();
        let expected = json!({
            "contextElements": [{
                "entityId": { "id": "Bench.42", "type": "BenchSensor", "isPattern": false },
                "attributes": [{ "name": "temp", "type": "float", "value": 21.25 }],
                "domainMetadata": [{
                    "name": "location", "type": "point",
                    "value": { "latitude": 49.4, "longitude": 8.6 }
                }]
            }],
            "updateAction": "UPDATE"
        });
        assert_eq!(value, expected);
    }

    #[test]
    fn new_entity_ids_name_connection_and_sequence() {
        let body = update_context_body(EntityId::New { run: 9, connection: 3, sequence: 17 }, -4.0);
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["contextElements"][0]["entityId"]["id"], "BenchNew.9.3.17");
        assert_eq!(value["contextElements"][0]["attributes"][0]["value"], -4.0);
    }

    #[test]
    fn subscribe_body_matches_preloaded_ids() {
        let body = subscribe_context_body("http://127.0.0.1:4000");
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["entities"][0]["id"], r"Bench\..*");
        assert_eq!(value["entities"][0]["isPattern"], true);
        assert_eq!(value["reference"], "http://127.0.0.1:4000");
        let pattern = regex::Regex::new(&format!("^{PRELOADED_ID_PATTERN}$")).unwrap();
        assert!(pattern.is_match(&EntityId::Preloaded(7).to_string()));
        assert!(!pattern.is_match(&EntityId::New { run: 0, connection: 0, sequence: 0 }.to_string()));
    }

    #[test]
    fn unsubscribe_body_names_the_subscription() {
        let value: Value = serde_json::from_slice(&unsubscribe_context_body("abc")).unwrap();
        assert_eq!(value, json!({ "subscriptionId": "abc" }));
    }

    #[test]
    fn reads_the_subscription_id() {
        let id = parse_subscription_id(br#"{"subscribeResponse":{"subscriptionId":"s-1","duration":""}}"#);
        assert_eq!(id.unwrap(), "s-1");
        assert!(parse_subscription_id(br#"{"subscribeError":{}}"#).is_err());
        assert!(parse_subscription_id(br#"{"subscribeResponse":{"subscriptionId":""}}"#).is_err());
    }

    #[test]
    fn ld_batch_body_is_an_array_of_ld_entities_without_context() {
        let value: Value = serde_json::from_slice(&ld_batch_body([(42, 71.254)])).unwrap();
        let expected = json!([{
            "id": "urn:ngsi-ld:Bench:42",
            "type": "BenchSensor",
            "temperature": { "type": "Property", "value": 71.25 },
            "location": { "type": "GeoProperty", "value": { "type": "Point", "coordinates": [8.6, 49.4] } }
        }]);
        assert_eq!(value, expected);
        assert!(value[0].get("@context").is_none());
    }

    #[test]
    fn ld_batch_body_holds_every_entity_in_order() {
        let value: Value = serde_json::from_slice(&ld_batch_body((10..13).map(|i| (i, -3.0)))).unwrap();
        let ids: Vec<&str> = value.as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["urn:ngsi-ld:Bench:10", "urn:ngsi-ld:Bench:11", "urn:ngsi-ld:Bench:12"]);
        assert_eq!(value[2]["temperature"]["value"], -3.0);
        assert_eq!(&ld_batch_body([])[..], b"[]");
    }

    #[test]
    fn counts_batched_notification_elements() {
        let body = br#"{"subscriptionId":"s","originator":"","contextResponses":[
            {"contextElement":{"entityId":{"id":"Bench.1"}},"statusCode":{"code":200}},
            {"contextElement":{"entityId":{"id":"Bench.2"}},"statusCode":{"code":200}}]}"#;
        assert_eq!(count_notified_elements(body).unwrap(), 2);
        assert_eq!(count_notified_elements(br#"{"subscriptionId":"s"}"#).unwrap(), 0);
        assert!(count_notified_elements(b"not json").is_err());
    }
}
