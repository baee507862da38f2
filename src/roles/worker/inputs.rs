//! The worker's calls to its broker on a task's behalf (spec §4.5, §4.6): subscribe an input with the task's
//! `Fiware-Correlator` and `Require-Reliability: true` so notifications reach `<refURL>/notifyContext`,
//! unsubscribe it, and delete a task's output entity. Behind the [`TaskBroker`] trait so the executor can be
//! tested without a broker.
//!
//! Must not: keep state about tasks (the executor does) or retry forever (callers decide).

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Value};

use crate::bus::BoxFuture;
use crate::clients::http_client::{HttpClient, OutboundError};
use crate::model::InputEntity;

/// Why a broker call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BrokerError {
    /// The broker could not be reached in time.
    #[error(transparent)]
    Unreachable(#[from] OutboundError),
    /// It answered with an error status or an unreadable body.
    #[error("broker {url} answered {status}")]
    Refused {
        /// The URL called.
        url: String,
        /// The status.
        status: u16,
    },
}

/// The broker operations the worker needs.
pub trait TaskBroker: Send + Sync + 'static {
    /// Subscribes `input` for the task `task_id`, notifications going to `reference`; the subscription id.
    fn subscribe<'a>(
        &'a self,
        task_id: &'a str,
        input: &'a InputEntity,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<String, BrokerError>>;

    /// Cancels a subscription (an unknown id counts as done).
    fn unsubscribe<'a>(&'a self, subscription_id: &'a str) -> BoxFuture<'a, Result<(), BrokerError>>;

    /// Deletes an entity (a task's configured output).
    fn delete_entity<'a>(&'a self, entity_type: &'a str, id: &'a str) -> BoxFuture<'a, Result<(), BrokerError>>;
}

/// FogFlow's `subscribeContext` body for one task input.
pub fn subscription_body(input: &InputEntity, reference: &str) -> Value {
    let entity = if input.id.is_empty() {
        json!({"type": input.r#type, "isPattern": true})
    } else {
        json!({"type": input.r#type, "id": input.id})
    };
    let mut body = json!({"entities": [entity], "reference": reference});
    if !input.attribute_list.is_empty() {
        body["attributes"] = json!(input.attribute_list);
    }
    body
}

/// The broker's NGSI10 API over HTTP.
#[derive(Debug, Clone)]
pub struct HttpTaskBroker {
    http: HttpClient,
    base: String,
}

impl HttpTaskBroker {
    /// Calls the broker at `broker_url` (ending in `/ngsi10`).
    pub fn new(http: HttpClient, broker_url: &str) -> Self {
        HttpTaskBroker { http, base: broker_url.trim_end_matches('/').to_string() }
    }

    async fn post(&self, path: &str, headers: HeaderMap, body: &Value) -> Result<(String, Bytes), BrokerError> {
        let url = format!("{}/{path}", self.base);
        let response =
            self.http.post_json(&url, headers, Bytes::from(serde_json::to_vec(body).unwrap_or_default())).await?;
        if response.is_success() {
            Ok((url, response.body))
        } else {
            Err(BrokerError::Refused { url, status: response.status })
        }
    }

    async fn do_subscribe(&self, task_id: &str, input: &InputEntity, reference: &str) -> Result<String, BrokerError> {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(task_id) {
            headers.insert(HeaderName::from_static("fiware-correlator"), value);
        }
        headers.insert(HeaderName::from_static("require-reliability"), HeaderValue::from_static("true"));
        let (url, body) = self.post("subscribeContext", headers, &subscription_body(input, reference)).await?;
        let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        match answer.pointer("/subscribeResponse/subscriptionId").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => Ok(id.to_string()),
            _ => Err(BrokerError::Refused { url, status: 200 }),
        }
    }

    async fn do_unsubscribe(&self, subscription_id: &str) -> Result<(), BrokerError> {
        match self.post("unsubscribeContext", HeaderMap::new(), &json!({"subscriptionId": subscription_id})).await {
            Err(BrokerError::Refused { status: 404, .. }) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    async fn do_delete(&self, entity_type: &str, id: &str) -> Result<(), BrokerError> {
        let body = json!({"contextElements": [{"entityId": {"id": id, "type": entity_type, "isPattern": false}}],
            "updateAction": "DELETE"});
        match self.post("updateContext", HeaderMap::new(), &body).await {
            Err(BrokerError::Refused { status: 404, .. }) => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

impl TaskBroker for HttpTaskBroker {
    fn subscribe<'a>(
        &'a self,
        task_id: &'a str,
        input: &'a InputEntity,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<String, BrokerError>> {
        Box::pin(self.do_subscribe(task_id, input, reference))
    }

    fn unsubscribe<'a>(&'a self, subscription_id: &'a str) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(self.do_unsubscribe(subscription_id))
    }

    fn delete_entity<'a>(&'a self, entity_type: &'a str, id: &'a str) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(self.do_delete(entity_type, id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use axum::extract::State;
    use axum::http::HeaderMap as Headers;
    use axum::routing::post;
    use axum::{Json, Router};

    type Seen = Arc<Mutex<Vec<(String, Headers, Value)>>>;

    async fn record(path: &'static str, seen: Seen, headers: Headers, body: Value) -> Json<Value> {
        seen.lock().unwrap().push((path.to_string(), headers, body));
        Json(json!({"subscribeResponse": {"subscriptionId": "sid-1"}}))
    }

    #[test]
    fn fogflow_subscription_body() {
        let input = InputEntity { r#type: "Temperature".into(), id: "Device.T1".into(), attribute_list: vec![] };
        assert_eq!(
            subscription_body(&input, "http://h:1"),
            json!({"entities":[{"type":"Temperature","id":"Device.T1"}],"reference":"http://h:1"})
        );
        let pattern =
            InputEntity { r#type: "Rule".into(), id: String::new(), attribute_list: vec!["threshold".into()] };
        assert_eq!(
            subscription_body(&pattern, "http://h:1"),
            json!({"entities":[{"type":"Rule","isPattern":true}],"attributes":["threshold"],"reference":"http://h:1"})
        );
    }

    #[tokio::test]
    async fn calls_the_broker_with_fogflow_headers() {
        let seen: Seen = Arc::default();
        let app = Router::new()
            .route(
                "/ngsi10/subscribeContext",
                post(|State(s): State<Seen>, h: Headers, Json(b): Json<Value>| record("subscribe", s, h, b)),
            )
            .route(
                "/ngsi10/unsubscribeContext",
                post(|State(s): State<Seen>, h: Headers, Json(b): Json<Value>| record("unsubscribe", s, h, b)),
            )
            .route(
                "/ngsi10/updateContext",
                post(|State(s): State<Seen>, h: Headers, Json(b): Json<Value>| record("update", s, h, b)),
            )
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let broker = HttpTaskBroker::new(
            HttpClient::new(Duration::from_secs(1), Duration::from_secs(2)),
            &format!("http://{addr}/ngsi10/"),
        );
        let input = InputEntity { r#type: "Temperature".into(), id: "Device.T1".into(), attribute_list: vec![] };
        assert_eq!(broker.subscribe("Task.X", &input, "http://10.0.0.5:4000").await.unwrap(), "sid-1");
        broker.unsubscribe("sid-1").await.unwrap();
        broker.delete_entity("Out", "Out.1.1").await.unwrap();
        let seen = seen.lock().unwrap();
        let (_, headers, body) = &seen[0];
        assert_eq!(headers["fiware-correlator"], "Task.X");
        assert_eq!(headers["require-reliability"], "true");
        assert_eq!(body["reference"], "http://10.0.0.5:4000");
        assert_eq!(seen[1].2, json!({"subscriptionId": "sid-1"}));
        assert_eq!(seen[2].2["updateAction"], "DELETE");
        assert_eq!(seen[2].2["contextElements"][0]["entityId"]["id"], "Out.1.1");
    }
}
