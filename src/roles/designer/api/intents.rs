//! Service intents and fog functions (spec §2.3, §2.4, §6.3). Every change is stored durably together with
//! its announcements (ADD / DELETE) before the answer; an intent that changes is announced as DELETE of the
//! old one, then ADD of the new one (FogFlow's master leaked the old tasks).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{json, Value};

use super::ok_json;
use crate::model::{FogFunction, IntentAction, ServiceIntent};
use crate::roles::designer::announcer::Staged;
use crate::roles::designer::error::{Answer, DesignerError};
use crate::roles::designer::state::{decode, one_or_many, DesignerState};
use crate::roles::designer::store::DesignerStore;

/// `GET /intent`: `{id: ServiceIntent}`.
pub async fn list_intents(State(state): State<DesignerState>) -> Answer {
    Ok(ok_json(DesignerStore::all(&state.store.intents)?))
}

/// `GET /intent/{id}`.
pub async fn get_intent(State(state): State<DesignerState>, Path(id): Path<String>) -> Answer {
    match state.store.intents.get(&id)? {
        Some(intent) => Ok(ok_json(intent)),
        None => Err(DesignerError::NotFound(format!("intent `{id}` does not exist"))),
    }
}

/// `GET /intent/topology/{topology}`: the intents of that topology (FogFlow always answered `[]`).
pub async fn intents_of_topology(State(state): State<DesignerState>, Path(topology): Path<String>) -> Answer {
    let intents: Vec<ServiceIntent> =
        DesignerStore::all(&state.store.intents)?.into_values().filter(|intent| intent.topology == topology).collect();
    Ok(ok_json(intents))
}

/// `POST /intent`: `{}` is a no-op (FogFlow); otherwise the intent gets an id when it has none, must name a
/// stored topology and a valid geoscope, is stored and announced (ADD). Answers the stored intent.
pub async fn post_intent(State(state): State<DesignerState>, headers: HeaderMap, body: Body) -> Answer {
    let value: Value = state.body(&headers, body).await?;
    if value.as_object().is_some_and(|object| object.is_empty()) {
        return Ok(ok_json(json!({})));
    }
    let mut intent: ServiceIntent = decode("service intent", value)?;
    intent.action = None;
    intent.normalize()?;
    let _writer = state.store.write_lock().await;
    if state.store.topologies.get(&intent.topology)?.is_none() {
        return Err(DesignerError::Invalid(format!(
            "intent names topology `{}`, which does not exist",
            intent.topology
        )));
    }
    let mut staged = Staged::default();
    if let Some(old) = state.store.intents.get(&intent.id)? {
        if old != intent {
            state.announcer.stage(&mut staged, &old, IntentAction::Delete)?;
        }
    }
    state.announcer.stage(&mut staged, &intent, IntentAction::Add)?;
    state.store.intents.insert(&intent.id, &intent)?;
    state.store.commit().await?;
    state.announcer.release(staged);
    Ok(ok_json(intent))
}

/// `DELETE /intent/{id}`: 404 unknown; announced (DELETE) and removed.
pub async fn delete_intent(State(state): State<DesignerState>, Path(id): Path<String>) -> Answer {
    let _writer = state.store.write_lock().await;
    let Some(intent) = state.store.intents.get(&id)? else {
        return Err(DesignerError::NotFound(format!("intent `{id}` does not exist")));
    };
    let mut staged = Staged::default();
    state.announcer.stage(&mut staged, &intent, IntentAction::Delete)?;
    state.store.intents.remove(&id)?;
    state.store.commit().await?;
    state.announcer.release(staged);
    Ok(ok_json(json!({})))
}

/// `GET /fogfunction`: `{name: FogFunction}`.
pub async fn list_fogfunctions(State(state): State<DesignerState>) -> Answer {
    Ok(ok_json(DesignerStore::all(&state.store.fogfunctions)?))
}

/// `GET /fogfunction/{name}`.
pub async fn get_fogfunction(State(state): State<DesignerState>, Path(name): Path<String>) -> Answer {
    Ok(ok_json(find_fogfunction(&state, &name)?))
}

fn find_fogfunction(state: &DesignerState, name: &str) -> Result<FogFunction, DesignerError> {
    state
        .store
        .fogfunctions
        .get(name)?
        .ok_or_else(|| DesignerError::NotFound(format!("fog function `{name}` does not exist")))
}

/// `POST /fogfunction`: a list of fog functions (all or none). Each is validated (its topology takes its
/// name), keeps the intent id it had when it comes without one, is stored with its topology, and announced:
/// the old intent is withdrawn (DELETE) when it changed, the new one added (ADD) when enabled. A missing
/// `status` means `enabled`, as FogFlow posts them.
pub async fn post_fogfunctions(State(state): State<DesignerState>, headers: HeaderMap, body: Body) -> Answer {
    let items = one_or_many(state.body::<Value>(&headers, body).await?)?;
    let mut functions: Vec<FogFunction> =
        items.into_iter().map(|item| decode("fog function", item)).collect::<Result<_, _>>()?;
    let _writer = state.store.write_lock().await;
    let exists = |operator: &str| state.store.operators.get(operator).ok().flatten().is_some();
    let mut olds = Vec::with_capacity(functions.len());
    for function in &mut functions {
        function.topology.name = function.name.clone();
        let old = state.store.fogfunctions.get(&function.name)?;
        if function.intent.id.is_empty() {
            if let Some(old) = &old {
                function.intent.id = old.intent.id.clone();
            }
        }
        function.normalize(exists)?;
        if state.store.services.get(&function.name)?.is_some() {
            return Err(DesignerError::Conflict(format!(
                "`{}` is the name of a service topology; choose another fog function name",
                function.name
            )));
        }
        olds.push(old);
    }
    let mut staged = Staged::default();
    for (function, old) in functions.iter().zip(olds) {
        if let Some(old) = old.filter(FogFunction::is_enabled) {
            if old.intent != function.intent || old.topology != function.topology || !function.is_enabled() {
                state.announcer.stage(&mut staged, &old.intent, IntentAction::Delete)?;
            }
        }
        if function.is_enabled() {
            state.announcer.stage(&mut staged, &function.intent, IntentAction::Add)?;
        }
        state.store.fogfunctions.insert(&function.name, function)?;
        state.store.topologies.insert(&function.name, &function.topology)?;
    }
    state.store.commit().await?;
    state.announcer.release(staged);
    Ok(ok_json(functions))
}

/// `GET /fogfunction/{name}/enable`: status `enabled`, intent announced (ADD); answers the fog function.
pub async fn enable_fogfunction(State(state): State<DesignerState>, Path(name): Path<String>) -> Answer {
    set_status(&state, &name, true).await
}

/// `GET /fogfunction/{name}/disable`: status `disabled`, intent withdrawn (DELETE); answers the fog function.
pub async fn disable_fogfunction(State(state): State<DesignerState>, Path(name): Path<String>) -> Answer {
    set_status(&state, &name, false).await
}

async fn set_status(state: &DesignerState, name: &str, enabled: bool) -> Answer {
    let _writer = state.store.write_lock().await;
    let mut function = find_fogfunction(state, name)?;
    function.status = if enabled { "enabled" } else { "disabled" }.into();
    let action = if enabled { IntentAction::Add } else { IntentAction::Delete };
    let mut staged = Staged::default();
    state.announcer.stage(&mut staged, &function.intent, action)?;
    state.store.fogfunctions.insert(name, &function)?;
    state.store.commit().await?;
    state.announcer.release(staged);
    Ok(ok_json(function))
}

/// `DELETE /fogfunction/{name}`: 404 unknown; its intent withdrawn (DELETE), the fog function and its
/// topology removed.
pub async fn delete_fogfunction(State(state): State<DesignerState>, Path(name): Path<String>) -> Answer {
    let _writer = state.store.write_lock().await;
    let function = find_fogfunction(&state, &name)?;
    let mut staged = Staged::default();
    state.announcer.stage(&mut staged, &function.intent, IntentAction::Delete)?;
    state.store.fogfunctions.remove(&name)?;
    state.store.topologies.remove(&name)?;
    state.store.commit().await?;
    state.announcer.release(staged);
    Ok(ok_json(json!({})))
}
