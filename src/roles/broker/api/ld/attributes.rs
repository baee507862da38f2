//! The NGSI-LD attribute routes of one entity: `POST /ngsi-ld/v1/entities/{id}/attrs` (append,
//! `options=noOverwrite`; a `type` in the payload adds its types to the entity's), `PATCH /ngsi-ld/v1/entities/{id}/attrs` (update existing attributes),
//! `PATCH`/`DELETE /ngsi-ld/v1/entities/{id}/attrs/{attr}` (partial update; delete with `datasetId`/`deleteAll`).
//! 204 when every attribute was written, 207 `{"updated":[…],"notUpdated":[{"attributeName","reason"}]}`
//! otherwise, 404 for an unknown entity or attribute.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::error::LdError;
use super::negotiation::{body_context, link_only, read_body, respond, tenant, Media};
use super::params::Params;
use super::{apply, find, meta};
use crate::ngsi::ld::check_uri;
use crate::ngsi::ld::edit::{Edit, Refusal};
use crate::ngsi::ld::entity::{fragment_types, parse_attributes_owned};
use crate::ngsi::limits::check_name;
use crate::roles::broker::state::BrokerState;

/// Answers an attribute edit: 204 when every requested attribute was written, 207 with what was not.
async fn edit_attributes(
    state: &BrokerState,
    headers: &HeaderMap,
    id: &str,
    body: Body,
    make: impl FnOnce(Vec<crate::ngsi::v1::ContextAttribute>, Vec<String>) -> Edit,
    reason: &str,
) -> Result<Response, LdError> {
    let tenant = tenant(headers)?;
    check_uri("entity id", id)?;
    let (body, media) = read_body(headers, body, state.max_body_bytes).await?;
    let context = body_context(&state.contexts, headers, media, &body).await?;
    let Value::Object(object) = body else { return Err(LdError::bad_data("the attributes must be a JSON object")) };
    let types = fragment_types(&context, &object)?;
    let attributes = parse_attributes_owned(&context, object)?;
    if attributes.is_empty() && types.is_empty() {
        return Err(LdError::bad_data("no attributes in the payload"));
    }
    let requested: Vec<String> = attributes.iter().map(|a| a.name.clone()).collect();
    find(state, &tenant, id)?;
    let updated = match apply(state, &meta(tenant), id, make(attributes, types)).await? {
        Ok((_, touched)) => touched,
        Err(Refusal::NothingUpdated) => Vec::new(),
        Err(refusal) => return Err(refusal.into()),
    };
    let not_updated: Vec<Value> = requested
        .iter()
        .filter(|name| !updated.contains(name))
        .map(|name| json!({"attributeName": name, "reason": reason}))
        .collect();
    if not_updated.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(respond(Media::Json, StatusCode::MULTI_STATUS, json!({"updated": updated, "notUpdated": not_updated})))
}

/// `POST /ngsi-ld/v1/entities/{id}/attrs[?options=noOverwrite]`: adds or replaces attributes.
pub async fn append(
    State(state): State<BrokerState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, LdError> {
    let no_overwrite = Params::parse(&uri)?.options(&["noOverwrite"])?.iter().any(|o| o == "noOverwrite");
    let make = |attributes, types| Edit::Append { attributes, no_overwrite, types };
    edit_attributes(&state, &headers, &id, body, make, "attribute exists and noOverwrite was asked").await
}

/// `PATCH /ngsi-ld/v1/entities/{id}/attrs`: replaces the attributes that exist.
pub async fn update(
    State(state): State<BrokerState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, LdError> {
    // A `type` in the payload is checked, and changes nothing (this updates existing attributes only).
    let make = |attributes, _types| Edit::UpdateExisting(attributes);
    edit_attributes(&state, &headers, &id, body, make, "attribute does not exist").await
}

/// `PATCH /ngsi-ld/v1/entities/{id}/attrs/{attr}`: merges the fragment into the attribute; 204, or 404.
pub async fn patch(
    State(state): State<BrokerState>,
    Path((id, attr)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, LdError> {
    let tenant = tenant(&headers)?;
    check_uri("entity id", &id)?;
    let (body, media) = read_body(&headers, body, state.max_body_bytes).await?;
    let context = body_context(&state.contexts, &headers, media, &body).await?;
    let Value::Object(mut fragment) = body else {
        return Err(LdError::bad_data("the attribute fragment must be a JSON object"));
    };
    fragment.remove("@context");
    if fragment.is_empty() {
        return Err(LdError::bad_data("the attribute fragment is empty"));
    }
    let name = context.canonical(&attr);
    check_name("attribute name", &name)?;
    find(&state, &tenant, &id)?;
    apply(&state, &meta(tenant), &id, Edit::Patch { name, fragment, context: context.context }).await??;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /ngsi-ld/v1/entities/{id}/attrs/{attr}[?datasetId=&deleteAll=true]`: 204, or 404.
pub async fn delete(
    State(state): State<BrokerState>,
    Path((id, attr)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, LdError> {
    let tenant = tenant(&headers)?;
    let context = link_only(&state.contexts, &headers).await?;
    let params = Params::parse(&uri)?;
    let delete_all = params.flag("deleteAll")?;
    let dataset_id = params.get("datasetId").map(str::to_string);
    if let Some(dataset_id) = &dataset_id {
        check_uri("datasetId", dataset_id)?;
    }
    let name = context.canonical(&attr);
    check_name("attribute name", &name)?;
    find(&state, &tenant, &id)?;
    apply(&state, &meta(tenant), &id, Edit::DeleteAttribute { name, dataset_id, delete_all }).await??;
    Ok(StatusCode::NO_CONTENT.into_response())
}
