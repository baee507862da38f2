//! Operators, docker images, topologies and services (spec §6.3): upserts with validation (names, images,
//! operators a topology uses must exist, no cycles), `DELETE /operator` refused with FogFlow's 501 while a
//! topology uses the operator, and `GET /topology/<name>` with the full operators — the master's source.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{json, Value};

use super::ok_json;
use crate::model::operator::validate_image;
use crate::model::{DockerImage, IntentAction, Operator, Service, ServiceIntent, Topology};
use crate::roles::designer::announcer::Staged;
use crate::roles::designer::error::{Answer, DesignerError};
use crate::roles::designer::state::{decode, one_or_many, DesignerState};
use crate::roles::designer::store::DesignerStore;

/// `GET /operator`: `{name: Operator}`.
pub async fn list_operators(State(state): State<DesignerState>) -> Answer {
    Ok(ok_json(DesignerStore::all(&state.store.operators)?))
}

/// `GET /operator/{name}`: the operator, 404 when unknown (FogFlow answered an empty body).
pub async fn get_operator(State(state): State<DesignerState>, Path(name): Path<String>) -> Answer {
    Ok(ok_json(find_operator(&state, &name)?))
}

fn find_operator(state: &DesignerState, name: &str) -> Result<Operator, DesignerError> {
    state.store.operators.get(name)?.ok_or_else(|| DesignerError::NotFound(format!("operator `{name}` does not exist")))
}

/// `POST /operator`: a list of operators, each upserted by name (all or none). An operator posted without a
/// `dockerimages` key keeps the images it has.
pub async fn post_operators(State(state): State<DesignerState>, headers: HeaderMap, body: Body) -> Answer {
    let items = one_or_many(state.body::<Value>(&headers, body).await?)?;
    let mut operators = Vec::with_capacity(items.len());
    for item in items {
        let keeps_images = item.get("dockerimages").is_none();
        let mut operator: Operator = decode("operator", item)?;
        operator.validate()?;
        operators.push((operator, keeps_images));
    }
    let _writer = state.store.write_lock().await;
    let mut stored = Vec::with_capacity(operators.len());
    for (mut operator, keeps_images) in operators {
        if keeps_images {
            if let Some(existing) = state.store.operators.get(&operator.name)? {
                operator.dockerimages = existing.dockerimages;
            }
        }
        state.store.operators.insert(&operator.name, &operator)?;
        stored.push(operator);
    }
    state.store.commit().await?;
    Ok(ok_json(stored))
}

/// `DELETE /operator/{name}`: 404 unknown, 501 (FogFlow's answer) while a topology uses it.
pub async fn delete_operator(State(state): State<DesignerState>, Path(name): Path<String>) -> Answer {
    let _writer = state.store.write_lock().await;
    find_operator(&state, &name)?;
    if let Some(topology) = state.store.operator_user(&name)? {
        return Err(DesignerError::InUse(format!("operator `{name}` is used by topology `{topology}`")));
    }
    state.store.operators.remove(&name)?;
    state.store.commit().await?;
    Ok(ok_json(json!({})))
}

/// `GET /dockerimage/{operator}`: its images.
pub async fn list_images(State(state): State<DesignerState>, Path(operator): Path<String>) -> Answer {
    Ok(ok_json(find_operator(&state, &operator)?.dockerimages))
}

/// `POST /dockerimage/{operator}`: one image, appended (an image with the same name, tag, hardware and OS is
/// replaced rather than repeated).
pub async fn post_image(
    State(state): State<DesignerState>,
    Path(operator): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let mut image: DockerImage = decode("docker image", state.body::<Value>(&headers, body).await?)?;
    validate_image(&operator, &mut image)?;
    let _writer = state.store.write_lock().await;
    let mut stored = find_operator(&state, &operator)?;
    let same = |i: &DockerImage| {
        i.name == image.name && i.tag == image.tag && i.hw_type == image.hw_type && i.os_type == image.os_type
    };
    match stored.dockerimages.iter_mut().find(|i| same(i)) {
        Some(existing) => *existing = image,
        None => stored.dockerimages.push(image),
    }
    state.store.operators.insert(&operator, &stored)?;
    state.store.commit().await?;
    Ok(ok_json(stored.dockerimages))
}

/// The query of `DELETE /dockerimage/{operator}`.
#[derive(Debug, Deserialize)]
pub struct ImageQuery {
    image: Option<String>,
}

/// `DELETE /dockerimage/{operator}?image=<name>`: removes the first image with that name.
pub async fn delete_image(
    State(state): State<DesignerState>,
    Path(operator): Path<String>,
    Query(query): Query<ImageQuery>,
) -> Answer {
    let Some(name) = query.image.filter(|name| !name.is_empty()) else {
        return Err(DesignerError::Invalid("query parameter `image` (the image name) is required".into()));
    };
    let _writer = state.store.write_lock().await;
    let mut stored = find_operator(&state, &operator)?;
    let Some(position) = stored.dockerimages.iter().position(|image| image.name == name) else {
        return Err(DesignerError::NotFound(format!("operator `{operator}` has no image `{name}`")));
    };
    stored.dockerimages.remove(position);
    state.store.operators.insert(&operator, &stored)?;
    state.store.commit().await?;
    Ok(ok_json(stored.dockerimages))
}

/// `GET /topology`: every topology (services' and fog functions').
pub async fn list_topologies(State(state): State<DesignerState>) -> Answer {
    let all: Vec<Topology> = DesignerStore::all(&state.store.topologies)?.into_values().collect();
    Ok(ok_json(all))
}

/// `GET /topology/{name}`: the topology plus `operators` (each operator its tasks use, with its images), or
/// `{}` when unknown — FogFlow's answer, which the master relies on.
pub async fn get_topology(State(state): State<DesignerState>, Path(name): Path<String>) -> Answer {
    let Some(topology) = state.store.topologies.get(&name)? else {
        return Ok(ok_json(json!({})));
    };
    let mut operators = Vec::new();
    for operator in topology.operators() {
        if let Some(found) = state.store.operators.get(operator)? {
            operators.push(found);
        }
    }
    let mut answer = serde_json::to_value(&topology).unwrap_or_else(|_| json!({}));
    if let Some(object) = answer.as_object_mut() {
        object.insert("operators".into(), serde_json::to_value(operators).unwrap_or_default());
    }
    Ok(ok_json(answer))
}

/// `GET /service`: `{name: {topology, designboard}}`.
pub async fn list_services(State(state): State<DesignerState>) -> Answer {
    Ok(ok_json(DesignerStore::all(&state.store.services)?))
}

/// `GET /service/{name}`.
pub async fn get_service(State(state): State<DesignerState>, Path(name): Path<String>) -> Answer {
    match state.store.services.get(&name)? {
        Some(service) => Ok(ok_json(service)),
        None => Err(DesignerError::NotFound(format!("service `{name}` does not exist"))),
    }
}

/// `POST /service`: a list of `{topology, designboard}`; each topology is validated and stored under its
/// name. When a stored topology changes, the intents that run it are announced again (DELETE, then ADD) so
/// that the master rebuilds their tasks from the new topology.
pub async fn post_services(State(state): State<DesignerState>, headers: HeaderMap, body: Body) -> Answer {
    let items = one_or_many(state.body::<Value>(&headers, body).await?)?;
    let services: Vec<Service> = items.into_iter().map(|item| decode("service", item)).collect::<Result<_, _>>()?;
    let _writer = state.store.write_lock().await;
    let exists = |operator: &str| state.store.operators.get(operator).ok().flatten().is_some();
    for service in &services {
        service.topology.validate(exists)?;
        if state.store.fogfunctions.get(&service.topology.name)?.is_some() {
            return Err(DesignerError::Conflict(format!(
                "`{}` is the name of a fog function; choose another topology name",
                service.topology.name
            )));
        }
    }
    let intents: BTreeMap<String, ServiceIntent> = DesignerStore::all(&state.store.intents)?;
    let mut staged = Staged::default();
    for service in &services {
        let name = &service.topology.name;
        let changed = state.store.topologies.get(name)?.is_some_and(|old| old != service.topology);
        if changed {
            for intent in intents.values().filter(|intent| &intent.topology == name) {
                state.announcer.stage(&mut staged, intent, IntentAction::Delete)?;
                state.announcer.stage(&mut staged, intent, IntentAction::Add)?;
            }
        }
        state.store.services.insert(name, service)?;
        state.store.topologies.insert(name, &service.topology)?;
    }
    state.store.commit().await?;
    state.announcer.release(staged);
    Ok(ok_json(services))
}

/// `DELETE /service/{name}`: the service and its topology; refused (409) while intents run it.
pub async fn delete_service(State(state): State<DesignerState>, Path(name): Path<String>) -> Answer {
    let _writer = state.store.write_lock().await;
    if state.store.services.get(&name)?.is_none() {
        return Err(DesignerError::NotFound(format!("service `{name}` does not exist")));
    }
    for entry in state.store.intents.iter() {
        let (id, intent) = entry?;
        if intent.topology == name {
            return Err(DesignerError::Conflict(format!(
                "service `{name}` is run by intent `{id}`; delete its intents first"
            )));
        }
    }
    state.store.services.remove(&name)?;
    state.store.topologies.remove(&name)?;
    state.store.commit().await?;
    Ok(ok_json(json!({})))
}
