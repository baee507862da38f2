//! The NGSIv2 attribute routes of one entity: `GET`/`POST`/`PATCH`/`PUT /v2/entities/{id}/attrs`,
//! `GET`/`PUT`/`DELETE /v2/entities/{id}/attrs/{name}` and `GET`/`PUT /v2/entities/{id}/attrs/{name}/value`
//! (JSON values, and `text/plain` as Orion reads and writes them).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use super::error::V2Error;
use super::params::Params;
use super::{apply, find, media_type, meta, read_body, read_json};
use crate::ngsi::v1::ContextAttribute;
use crate::ngsi::v2::{
    check_identifier, parse_attribute, parse_attributes, render_attribute, render_attributes_with, view, Edit, Format,
    Rejection,
};
use crate::roles::broker::state::BrokerState;

/// `GET /v2/entities/{id}/attrs[?type=&attrs=&metadata=&options=keyValues|values]`.
pub async fn list(
    State(state): State<BrokerState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, V2Error> {
    let meta = meta(&headers)?;
    let params = Params::parse(&uri)?;
    let entity = find(&state, &meta, &id, params.entity_type()?)?;
    let builtins = super::entities::builtins(&entity, &params);
    Ok(Json(render_attributes_with(&entity.element, &params.attrs, params.format, &builtins)).into_response())
}

/// Reads and parses an attributes body; `allow_empty` for `PUT` (which may remove every attribute).
async fn attributes_body(
    state: &BrokerState,
    headers: &HeaderMap,
    body: Body,
    params: &Params,
    allow_empty: bool,
) -> Result<Vec<crate::ngsi::v1::ContextAttribute>, V2Error> {
    let body = read_json(headers, body, state.max_body_bytes).await?;
    let attributes = parse_attributes(&body, params.format == Format::KeyValues)?;
    if attributes.is_empty() && !allow_empty {
        return Err(V2Error::bad_request("no attributes in the payload"));
    }
    Ok(attributes)
}

/// `POST /v2/entities/{id}/attrs[?options=append,keyValues]`: adds or updates; with `append`, 422 when one
/// exists. 204.
pub async fn append(
    State(state): State<BrokerState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, V2Error> {
    let meta = meta(&headers)?;
    let params = Params::parse(&uri)?;
    let attributes = attributes_body(&state, &headers, body, &params, false).await?;
    let edit = Edit::Append { attributes, strict: params.append };
    apply(&state, &meta, &id, params.entity_type()?, edit).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PATCH /v2/entities/{id}/attrs[?options=keyValues]`: updates existing attributes only; 404 (nothing
/// written) when one does not exist. 204.
pub async fn update(
    State(state): State<BrokerState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, V2Error> {
    let meta = meta(&headers)?;
    let params = Params::parse(&uri)?;
    let attributes = attributes_body(&state, &headers, body, &params, false).await?;
    apply(&state, &meta, &id, params.entity_type()?, Edit::Update(attributes)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PUT /v2/entities/{id}/attrs[?options=keyValues]`: the attributes replace all of the entity's. 204.
pub async fn replace(
    State(state): State<BrokerState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, V2Error> {
    let meta = meta(&headers)?;
    let params = Params::parse(&uri)?;
    let attributes = attributes_body(&state, &headers, body, &params, true).await?;
    apply(&state, &meta, &id, params.entity_type()?, Edit::Replace(attributes)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The attribute `name` of entity `id` as the v2 view shows it, or 404.
fn attribute(
    state: &BrokerState,
    headers: &HeaderMap,
    id: &str,
    name: &str,
    uri: &Uri,
) -> Result<ContextAttribute, V2Error> {
    let meta = meta(headers)?;
    let params = Params::parse(uri)?;
    check_identifier("attribute name", name)?;
    let entity = find(state, &meta, id, params.entity_type()?)?;
    view(&entity.element)
        .into_iter()
        .find(|attribute| attribute.name == name)
        .ok_or_else(|| Rejection::AttributesNotFound(vec![name.to_string()]).into())
}

/// `GET /v2/entities/{id}/attrs/{name}`: `{"type","value","metadata"}`.
pub async fn retrieve(
    State(state): State<BrokerState>,
    Path((id, name)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, V2Error> {
    let attribute = attribute(&state, &headers, &id, &name, &uri)?;
    Ok(Json(render_attribute(&attribute)).into_response())
}

/// `PUT /v2/entities/{id}/attrs/{name}`: new type, value and metadata of an existing attribute. 204.
pub async fn update_one(
    State(state): State<BrokerState>,
    Path((id, name)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, V2Error> {
    let meta = meta(&headers)?;
    let params = Params::parse(&uri)?;
    let body = read_json(&headers, body, state.max_body_bytes).await?;
    let attribute = parse_attribute(&name, &body, false)?;
    apply(&state, &meta, &id, params.entity_type()?, Edit::Update(vec![attribute])).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /v2/entities/{id}/attrs/{name}`: 204, or 404.
pub async fn delete(
    State(state): State<BrokerState>,
    Path((id, name)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, V2Error> {
    let meta = meta(&headers)?;
    let params = Params::parse(&uri)?;
    check_identifier("attribute name", &name)?;
    apply(&state, &meta, &id, params.entity_type()?, Edit::DeleteAttributes(vec![name])).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v2/entities/{id}/attrs/{name}/value`: objects and arrays as JSON; strings (quoted), numbers, booleans
/// and null as `text/plain`, as Orion answers them.
pub async fn value(
    State(state): State<BrokerState>,
    Path((id, name)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, V2Error> {
    let attribute = attribute(&state, &headers, &id, &name, &uri)?;
    Ok(match attribute.value {
        value @ (Value::Object(_) | Value::Array(_)) => Json(value).into_response(),
        scalar => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], scalar.to_string()).into_response(),
    })
}

/// A `text/plain` value as Orion reads it: `true`, `false`, `null`, a number, or a `"quoted"` string are JSON;
/// anything else is the text itself.
pub fn plain_value(text: &str) -> Value {
    let text = text.trim();
    match serde_json::from_str::<Value>(text) {
        Ok(value @ (Value::Bool(_) | Value::Null | Value::Number(_) | Value::String(_))) => value,
        _ => Value::String(text.to_string()),
    }
}

/// `PUT /v2/entities/{id}/attrs/{name}/value`: a JSON body (`application/json`) or a `text/plain` one; type and
/// metadata are kept. 204.
pub async fn set_value(
    State(state): State<BrokerState>,
    Path((id, name)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, V2Error> {
    let meta = meta(&headers)?;
    let params = Params::parse(&uri)?;
    check_identifier("attribute name", &name)?;
    let value = if media_type(&headers).as_deref() == Some("text/plain") {
        let bytes = read_body(&headers, body, state.max_body_bytes).await?;
        let text = std::str::from_utf8(&bytes).map_err(|_| V2Error::bad_request("the payload is not UTF-8"))?;
        plain_value(text)
    } else {
        read_json(&headers, body, state.max_body_bytes).await?
    };
    // The value is checked as a keyValues attribute would be (Orion's forbidden characters).
    parse_attribute(&name, &value, true)?;
    apply(&state, &meta, &id, params.entity_type()?, Edit::SetValue { name, value }).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn plain_text_values_are_read_as_orion_does() {
        assert_eq!(plain_value("21.5"), json!(21.5));
        assert_eq!(plain_value("true"), json!(true));
        assert_eq!(plain_value("null"), json!(null));
        assert_eq!(plain_value("\"hello\""), json!("hello"));
        assert_eq!(plain_value("hello world"), json!("hello world"));
        assert_eq!(plain_value("{\"a\":1}"), json!("{\"a\":1}"));
    }
}
