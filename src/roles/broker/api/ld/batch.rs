//! NGSI-LD batch operations `POST /ngsi-ld/v1/entityOperations/{create,upsert,update,merge,delete}`: each entity is
//! applied on its own (through the broker state, as single writes are); on full success 201 with the created
//! ids (create, and upsert when it created some) or 204; otherwise 207
//! `{"success":[ids],"errors":[{"entityId","error":ProblemDetails}]}`. A body that is not an array, or an entity
//! the codec refuses, fails only that entity (the array itself must be valid). Handlers take the request whole
//! (its headers and URI are read in place, not copied).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::error::LdError;
use super::negotiation::{body_context, read_body, respond, tenant, Media};
use super::params::Params;
use super::{apply, meta};
use crate::ngsi::ld::check_uri;
use crate::ngsi::ld::edit::{Edit, Refusal};
use crate::ngsi::ld::entity::parse_entity_owned;
use crate::ngsi::limits::MAX_ELEMENTS_PER_REQUEST;
use crate::ngsi::v1::ContextElement;
use crate::roles::broker::state::{BrokerState, RequestMeta};

/// What a batch did.
#[derive(Default)]
struct Outcome {
    success: Vec<String>,
    created: Vec<String>,
    errors: Vec<Value>,
}

impl Outcome {
    fn fail(&mut self, id: &str, error: &LdError) {
        self.errors.push(json!({"entityId": id, "error": error.body()}));
    }

    fn answer(self, created_status: bool) -> Response {
        if !self.errors.is_empty() {
            let body = json!({"success": self.success, "errors": self.errors});
            return respond(Media::Json, StatusCode::MULTI_STATUS, body);
        }
        if created_status {
            return respond(Media::Json, StatusCode::CREATED, json!(self.created));
        }
        StatusCode::NO_CONTENT.into_response()
    }
}

/// Reads the array body of a batch.
async fn read_batch(state: &BrokerState, headers: &HeaderMap, body: Body) -> Result<(Vec<Value>, Media), LdError> {
    let (body, media) = read_body(headers, body, state.max_body_bytes).await?;
    let Value::Array(items) = body else { return Err(LdError::bad_data("a batch payload must be a JSON array")) };
    if items.is_empty() {
        return Err(LdError::bad_data("the batch is empty"));
    }
    if items.len() > MAX_ELEMENTS_PER_REQUEST {
        return Err(LdError::bad_data(format!("more than {MAX_ELEMENTS_PER_REQUEST} entities in one batch")));
    }
    Ok((items, media))
}

/// The id of a batch item, for its error report.
fn item_id(item: &Value) -> String {
    item.get("id").and_then(Value::as_str).unwrap_or_default().to_string()
}

/// Applies `make(element)` to every entity of the batch.
async fn entity_batch(
    state: &BrokerState,
    headers: &HeaderMap,
    body: Body,
    make: impl Fn(ContextElement) -> Edit,
) -> Result<Outcome, LdError> {
    let meta: RequestMeta = meta(tenant(headers)?);
    let (items, media) = read_batch(state, headers, body).await?;
    let mut outcome = Outcome::default();
    for item in items {
        let id = item_id(&item);
        let parsed = match body_context(&state.contexts, headers, media, &item).await {
            Ok(context) => parse_entity_owned(&context, item).map_err(LdError::from),
            Err(error) => Err(error),
        };
        let element = match parsed {
            Ok(element) => element,
            Err(error) => {
                outcome.fail(&id, &error);
                continue;
            }
        };
        match apply(state, &meta, &id, make(element)).await {
            Err(error) => outcome.fail(&id, &error),
            Ok(Ok((created, _))) => {
                if created {
                    outcome.created.push(id.clone());
                }
                outcome.success.push(id);
            }
            Ok(Err(Refusal::NothingUpdated)) => outcome.success.push(id),
            Ok(Err(refusal)) => outcome.fail(&id, &refusal.into()),
        }
    }
    Ok(outcome)
}

/// `POST /ngsi-ld/v1/entityOperations/create`: 201 with the ids, or 207.
pub async fn create(State(state): State<BrokerState>, request: Request) -> Result<Response, LdError> {
    let (parts, body) = request.into_parts();
    Ok(entity_batch(&state, &parts.headers, body, Edit::Create).await?.answer(true))
}

/// `POST /ngsi-ld/v1/entityOperations/upsert[?options=replace|update]`: 201 with the created ids when some were
/// created, 204 when all existed, or 207.
pub async fn upsert(State(state): State<BrokerState>, request: Request) -> Result<Response, LdError> {
    let (parts, body) = request.into_parts();
    let options = Params::parse(&parts.uri)?.options(&["replace", "update"])?;
    if options.len() > 1 {
        return Err(LdError::bad_data("options replace and update exclude each other"));
    }
    let replace = !options.iter().any(|o| o == "update");
    let outcome = entity_batch(&state, &parts.headers, body, |element| Edit::Upsert { element, replace }).await?;
    let created = !outcome.created.is_empty();
    Ok(outcome.answer(created))
}

/// `POST /ngsi-ld/v1/entityOperations/update[?options=noOverwrite]`: merges attributes into existing entities;
/// 204, or 207.
pub async fn update(State(state): State<BrokerState>, request: Request) -> Result<Response, LdError> {
    let (parts, body) = request.into_parts();
    let no_overwrite = Params::parse(&parts.uri)?.options(&["noOverwrite"])?.iter().any(|o| o == "noOverwrite");
    // As today for one type: the entity's types are kept (a `type` in the payload is checked, not added).
    let make =
        |element: ContextElement| Edit::Append { attributes: element.attributes, no_overwrite, types: Vec::new() };
    Ok(entity_batch(&state, &parts.headers, body, make).await?.answer(false))
}

/// `POST /ngsi-ld/v1/entityOperations/merge` (V1.6+ Batch Entity Merge): each entity is merged as by
/// `PATCH /ngsi-ld/v1/entities/{id}` (its attributes written over the existing entity's, the others kept, its types
/// added to the entity's; an unknown entity fails with `ResourceNotFound`); 204, or 207.
pub async fn merge(State(state): State<BrokerState>, request: Request) -> Result<Response, LdError> {
    let (parts, body) = request.into_parts();
    Params::parse(&parts.uri)?.options(&[])?;
    let make = |element: ContextElement| {
        let types = element.types().map(str::to_string).collect();
        Edit::Append { attributes: element.attributes, no_overwrite: false, types }
    };
    Ok(entity_batch(&state, &parts.headers, body, make).await?.answer(false))
}

/// `POST /ngsi-ld/v1/entityOperations/delete`: a JSON array of entity ids; 204, or 207.
pub async fn delete(State(state): State<BrokerState>, request: Request) -> Result<Response, LdError> {
    let (parts, body) = request.into_parts();
    let tenant = tenant(&parts.headers)?;
    let (items, _) = read_batch(&state, &parts.headers, body).await?;
    let mut outcome = Outcome::default();
    for item in items {
        let Value::String(id) = item else {
            outcome.fail("", &LdError::bad_data("a batch delete payload is an array of entity ids"));
            continue;
        };
        if let Err(error) = check_uri("entity id", &id) {
            outcome.fail(&id, &error.into());
            continue;
        }
        match state.delete_entity(&tenant, &id).await {
            Ok(()) => outcome.success.push(id),
            Err(error) => outcome.fail(&id, &error.into()),
        }
    }
    Ok(outcome.answer(false))
}
