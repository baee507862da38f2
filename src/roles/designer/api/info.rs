//! System information for the dashboard (spec §6.3 `/info/*`), `GET /config.js` and the placeholder page at
//! `/`. Information read from the master and discovery is passed through as they give it; when either is
//! down the answer is `[]`, never an error.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use serde_json::{json, Value};

use super::ok_json;
use crate::roles::designer::state::DesignerState;

/// The NGSI-LD agent port FogFlow's dashboard expects in `config.js` (declared, nothing listens on it).
const LD_AGENT_PORT: u16 = 1090;

/// GETs `url` and parses the answer as JSON; `None` when the peer is down or answers otherwise.
async fn fetch(state: &DesignerState, url: &str) -> Option<Value> {
    match state.http.send_empty(http::Method::GET, url).await {
        Ok(response) if response.is_success() => serde_json::from_slice(&response.body).ok(),
        Ok(response) => {
            tracing::debug!(%url, status = response.status, "info source answered an error");
            None
        }
        Err(error) => {
            tracing::debug!(%error, "info source unreachable");
            None
        }
    }
}

/// An object's values (FogFlow keeps these lists as maps by id), an array as is, anything else empty.
fn as_list(value: Option<Value>) -> Vec<Value> {
    match value {
        Some(Value::Object(map)) => map.into_iter().map(|(_, value)| value).collect(),
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    }
}

fn discovery_base(state: &DesignerState) -> String {
    let url = state.config.discovery_url();
    url.strip_suffix("/ngsi9").map(str::to_string).unwrap_or(url)
}

/// `GET /info/master`: `[MasterProfile]` from the master's `/status`, or `[]`.
pub async fn master(State(state): State<DesignerState>) -> Response {
    let url = format!("{}/status", state.config.master_rest_url());
    let list = match fetch(&state, &url).await {
        Some(profile @ Value::Object(_)) => vec![profile],
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    ok_json(list)
}

/// `GET /info/worker`: the master's `/workers` as a list, or `[]`.
pub async fn workers(State(state): State<DesignerState>) -> Response {
    let url = format!("{}/workers", state.config.master_rest_url());
    ok_json(as_list(fetch(&state, &url).await))
}

/// `GET /info/broker`: discovery's live brokers as a list, or `[]`.
pub async fn brokers(State(state): State<DesignerState>) -> Response {
    let url = format!("{}/broker", state.config.discovery_url());
    ok_json(as_list(fetch(&state, &url).await))
}

/// `GET /info/type`: discovery's `/etype`, or `[]`.
pub async fn entity_types(State(state): State<DesignerState>) -> Response {
    let url = format!("{}/etype", discovery_base(&state));
    ok_json(as_list(fetch(&state, &url).await))
}

/// `GET /info/task`: the task table.
pub async fn tasks(State(state): State<DesignerState>) -> Response {
    ok_json(state.tasks.list(None))
}

/// `GET /info/task/{intent}`: the tasks of one intent.
pub async fn tasks_of_intent(State(state): State<DesignerState>, Path(intent): Path<String>) -> Response {
    ok_json(state.tasks.list(Some(&intent)))
}

/// `GET /config.js`: `var config = {...};` for FogFlow's dashboard scripts.
pub async fn config_js(State(state): State<DesignerState>) -> Response {
    let config = &state.config;
    let host = config.designer.host_ip.clone().unwrap_or_else(|| config.my_hostip.clone());
    let body = json!({
        "host_ip": host,
        "webSrvPort": config.designer.web_srv_port,
        "agentPort": config.designer.agent_port,
        "agentIP": host,
        "ldAgentPort": LD_AGENT_PORT,
        "discoveryURL": "./ngsi9",
        "brokerURL": "./ngsi10",
        "LdbrokerURL": "./ngsi-ld",
    });
    ([(header::CONTENT_TYPE, "application/javascript; charset=utf-8")], format!("var config = {body};\n"))
        .into_response()
}

/// `GET /`: the dashboard is not bundled yet; a page listing the REST paths.
pub async fn index() -> Html<&'static str> {
    Html(INDEX)
}

const INDEX: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>FogFlow designer</title></head>
<body>
<h1>FogFlow designer</h1>
<p>The dashboard is not bundled in this release yet. The designer's REST API is available:</p>
<ul>
<li><a href="/operator">/operator</a> — operators (and <code>/dockerimage/&lt;operator&gt;</code>)</li>
<li><a href="/topology">/topology</a> — service topologies (<a href="/service">/service</a>)</li>
<li><a href="/intent">/intent</a> — service intents</li>
<li><a href="/fogfunction">/fogfunction</a> — fog functions (<code>/fogfunction/&lt;name&gt;/enable</code>, <code>/disable</code>)</li>
<li><a href="/device">/device</a> — devices, <a href="/subscription">/subscription</a> — subscriptions</li>
<li><a href="/info/master">/info/master</a>, <a href="/info/worker">/info/worker</a>,
<a href="/info/broker">/info/broker</a>, <a href="/info/task">/info/task</a>, <a href="/info/type">/info/type</a></li>
<li><a href="/config.js">/config.js</a>, <code>/ngsi10/*</code>, <code>/ngsi-ld/*</code>, <code>/ngsi9/*</code> (proxies)</li>
<li><a href="/health">/health</a>, <a href="/ready">/ready</a>, <a href="/metrics">/metrics</a>, <a href="/version">/version</a></li>
</ul>
</body></html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_from_maps_and_arrays() {
        assert_eq!(as_list(Some(json!({"a": 1, "b": 2}))), vec![json!(1), json!(2)]);
        assert_eq!(as_list(Some(json!([3]))), vec![json!(3)]);
        assert!(as_list(Some(json!("x"))).is_empty());
        assert!(as_list(None).is_empty());
    }
}
