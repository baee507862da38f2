//! The federated forms of `updateContext`, `queryContext` and `GET /ngsi10/entity/{eid}` for clients' requests
//! when federation is on: local entities are served here, the others through their owners (see
//! `roles/broker/federation.rs`). The NGSIv2 and NGSI-LD reads use [`get_remote`] and [`remote_entities`]
//! and render what they get in their own flavour. Broker-to-broker requests never come here.

use std::sync::Arc;

use axum::http::HeaderValue;
use axum::response::Response;
use futures_util::future::join_all;

use super::error::V1Error;
use crate::ngsi::scope::{keep_nearest, ScopeFilter};
use crate::ngsi::v1::{
    ContextElement, ContextElementResponse, EntityId, QueryContextRequest, StatusCode as NgsiStatus,
    UpdateContextRequest, UpdateContextResponse,
};
use crate::roles::broker::entities::{QueryPage, StoredEntity};
use crate::roles::broker::federation::{Federation, PARTIAL_RESULT_HEADER};
use crate::roles::broker::state::{acknowledgement, BrokerState, RequestMeta};

/// Applies the elements this broker holds (or that nobody else does) here and forwards the others to their
/// owners; answers one status per element, in request order.
pub async fn update(
    state: &BrokerState,
    federation: &Federation,
    meta: &RequestMeta,
    request: &UpdateContextRequest,
) -> Result<UpdateContextResponse, V1Error> {
    request.action()?;
    let action = request.update_action.clone().unwrap_or_default().to_ascii_uppercase();
    let owners = join_all(request.context_elements.iter().map(|element| async {
        if state.entities.get(&meta.tenant, &element.entity_id.id).is_some() {
            None
        } else {
            federation.owner_of(&element.entity_id.id).await
        }
    }))
    .await;
    let forwarded = join_all(request.context_elements.iter().zip(&owners).map(|(element, owner)| async {
        match owner {
            Some(owner) => {
                federation.forward_update(owner, &meta.tenant, meta.correlator.as_deref(), element, &action).await
            }
            None => false,
        }
    }))
    .await;
    let local_request = UpdateContextRequest {
        context_elements: request
            .context_elements
            .iter()
            .zip(&forwarded)
            .filter(|(_, done)| !**done)
            .map(|(element, _)| element.clone())
            .collect(),
        update_action: request.update_action.clone(),
    };
    let mut local_answers = if local_request.context_elements.is_empty() {
        Vec::new()
    } else {
        state.update(meta, &local_request).await?.context_responses
    }
    .into_iter();
    let mut responses = Vec::with_capacity(request.context_elements.len());
    for (element, done) in request.context_elements.iter().zip(forwarded) {
        let answer = if done {
            ContextElementResponse { context_element: acknowledgement(element), status_code: NgsiStatus::ok() }
        } else {
            match local_answers.next() {
                Some(answer) => answer,
                None => {
                    ContextElementResponse { context_element: acknowledgement(element), status_code: NgsiStatus::ok() }
                }
            }
        };
        responses.push(answer);
    }
    Ok(UpdateContextResponse { context_responses: responses })
}

/// A query page over this broker's and the other brokers' matching entities (ordered by id, or nearest first
/// for `nearby`), and who did not answer.
pub async fn query(
    state: &BrokerState,
    federation: &Federation,
    tenant: &str,
    request: &QueryContextRequest,
    offset: usize,
    limit: Option<usize>,
) -> Result<(QueryPage, Vec<String>), V1Error> {
    let page_size = match limit {
        Some(limit) => limit,
        None => state.max_query_results,
    };
    let local = state.query(tenant, request, 0, Some(state.max_query_results))?;
    let scopes = ScopeFilter::compile(request.restriction.as_ref())?;
    let remote = federation.query(tenant, request).await;
    let mut merged = local.elements;
    for element in remote.elements {
        if !merged.iter().any(|known| known.entity_id.id == element.entity_id.id) {
            merged.push(element);
        }
    }
    match scopes.nearby() {
        Some((landmark, nearest)) => keep_nearest(&mut merged, landmark, nearest, |element| element),
        None => merged.sort_by(|a, b| a.entity_id.id.cmp(&b.entity_id.id)),
    }
    let total = merged.len();
    let elements = merged.into_iter().skip(offset).take(page_size).collect();
    Ok((QueryPage { elements, total }, remote.unanswered))
}

/// An entity this broker does not hold, from its owner.
pub async fn get_remote(federation: &Federation, tenant: &str, id: &str) -> Option<ContextElement> {
    let owner = federation.owner_of(id).await?;
    federation.fetch(&owner, tenant, id).await
}

/// The creation and modification time of an entity held by another broker: not known here. Such entities sort
/// after this broker's own (which are in creation order) and are rendered without system attributes.
pub const HELD_ELSEWHERE: i64 = i64::MAX;

/// Whether a listed entity was fetched from another broker.
pub fn is_held_elsewhere(entity: &StoredEntity) -> bool {
    entity.created_at == HELD_ELSEWHERE
}

/// The entities other brokers hold that `entities` selects (whole: the NGSIv2 and NGSI-LD filters may test any
/// attribute, so no projection is forwarded), minus those this broker holds itself, as stored entities of
/// `tenant` marked [`HELD_ELSEWHERE`] and ordered by id; and who did not answer. The caller filters and pages
/// them together with its own.
pub async fn remote_entities(
    state: &BrokerState,
    federation: &Federation,
    tenant: &str,
    entities: Vec<EntityId>,
) -> (Vec<Arc<StoredEntity>>, Vec<String>) {
    let request = QueryContextRequest { entities, attributes: Vec::new(), restriction: None };
    let remote = federation.query(tenant, &request).await;
    let mut elements: Vec<ContextElement> = remote
        .elements
        .into_iter()
        .filter(|element| state.entities.get(tenant, &element.entity_id.id).is_none())
        .collect();
    elements.sort_by(|a, b| a.entity_id.id.cmp(&b.entity_id.id));
    elements.dedup_by(|a, b| a.entity_id.id == b.entity_id.id);
    let entities = elements.into_iter().map(|element| Arc::new(held_elsewhere(tenant, element))).collect();
    (entities, remote.unanswered)
}

/// An element fetched from another broker as a stored entity of `tenant`, marked [`HELD_ELSEWHERE`].
pub fn held_elsewhere(tenant: &str, element: ContextElement) -> StoredEntity {
    StoredEntity {
        tenant: tenant.to_string(),
        element,
        service_path: crate::ngsi::v2::service_path::ROOT.to_string(),
        created_at: HELD_ELSEWHERE,
        modified_at: HELD_ELSEWHERE,
        attribute_times: Vec::new(),
    }
}

/// Marks a response partial: the `FogFlow-Partial-Result` header names who did not answer (nothing when all did).
pub fn mark_partial(response: &mut Response, unanswered: &[String]) {
    if unanswered.is_empty() {
        return;
    }
    if let Ok(value) = HeaderValue::from_str(&unanswered.join(", ")) {
        response.headers_mut().insert(PARTIAL_RESULT_HEADER, value);
    }
}
