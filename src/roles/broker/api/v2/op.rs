//! The NGSIv2 batch operations: `POST /v2/op/update` (`actionType` `append`, `appendStrict`, `update`, `delete`,
//! `replace` over a list of entities; every entity is tried, as Orion does, and the first failure is answered)
//! and `POST /v2/op/query` (`entities` with `id`/`idPattern` and `type`, `attrs`, `expression` `q` and
//! `georel`/`geometry`/`coords`; paging, `count` and formats as `GET /v2/entities`, federated as it is). Every body
//! is parsed and checked before anything is written.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::Value;

use super::entities::page;
use super::error::V2Error;
use super::params::{Filter, Params};
use super::{apply, find_for_write, meta, paths, read_json};
use crate::ngsi::limits::MAX_ELEMENTS_PER_REQUEST;
use crate::ngsi::pattern::EntitySelector;
use crate::ngsi::v1::{ContextElement, EntityId};
use crate::ngsi::v2::geo::GeoQuery;
use crate::ngsi::v2::query::Query;
use crate::ngsi::v2::{check_identifier, parse_entity, Edit, Format, IfExists};
use crate::ngsi::ParseError;
use crate::roles::broker::api::federated;
use crate::roles::broker::federation::FederationHandle;
use crate::roles::broker::state::BrokerState;

/// An `actionType` of `/v2/op/update`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Append,
    AppendStrict,
    Update,
    Delete,
    Replace,
}

fn entities_of(body: &Value) -> Result<&[Value], ParseError> {
    let entities = match body.get("entities") {
        Some(Value::Array(entities)) => entities.as_slice(),
        Some(_) => return Err(ParseError::new("entities must be an array")),
        None => return Err(ParseError::new("entities is missing")),
    };
    if entities.len() > MAX_ELEMENTS_PER_REQUEST {
        return Err(ParseError::new(format!(
            "{} entities in one request, the limit is {MAX_ELEMENTS_PER_REQUEST}",
            entities.len()
        )));
    }
    Ok(entities)
}

fn parse_update(body: &Value, key_values: bool) -> Result<(Action, Vec<(ContextElement, bool)>), ParseError> {
    let action = match body.get("actionType").and_then(Value::as_str) {
        Some("append") => Action::Append,
        Some("appendStrict") => Action::AppendStrict,
        Some("update") => Action::Update,
        Some("delete") => Action::Delete,
        Some("replace") => Action::Replace,
        Some(other) => return Err(ParseError::new(format!("invalid actionType `{other}`"))),
        None => return Err(ParseError::new("actionType is missing")),
    };
    let entities = entities_of(body)?;
    if entities.is_empty() {
        return Err(ParseError::new("entities is empty"));
    }
    let elements = entities
        .iter()
        .map(|entity| Ok((parse_entity(entity, key_values)?, entity.get("type").is_some())))
        .collect::<Result<_, ParseError>>()?;
    Ok((action, elements))
}

/// `POST /v2/op/update[?options=keyValues]`: 204 when every entity was processed, else the first error.
pub async fn update(
    State(state): State<BrokerState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, V2Error> {
    let meta = meta(&headers)?;
    paths(&meta).update_path()?;
    let params = Params::parse(&uri)?;
    let body = read_json(&headers, body, state.max_body_bytes).await?;
    let (action, elements) = parse_update(&body, params.format == Format::KeyValues)?;
    let mut first_error = None;
    for (element, typed) in elements {
        let id = element.entity_id.id.clone();
        let entity_type = typed.then(|| element.entity_id.entity_type.clone());
        let entity_type = entity_type.as_deref();
        let attributes = element.attributes.clone();
        let outcome = match action {
            Action::Append => apply(&state, &meta, &id, None, Edit::Create { element, if_exists: IfExists::Append }),
            Action::AppendStrict => {
                apply(&state, &meta, &id, None, Edit::Create { element, if_exists: IfExists::AppendStrict })
            }
            Action::Update => apply(&state, &meta, &id, entity_type, Edit::Update(attributes)),
            Action::Replace => apply(&state, &meta, &id, entity_type, Edit::Replace(attributes)),
            Action::Delete if attributes.is_empty() => {
                let deleted = match find_for_write(&state, &meta, &id, entity_type) {
                    Ok(_) => state.delete_entity(&meta.tenant, &id).await.map_err(V2Error::from),
                    Err(error) => Err(error),
                };
                if let Err(error) = deleted {
                    first_error.get_or_insert(error);
                }
                continue;
            }
            Action::Delete => {
                let names = attributes.into_iter().map(|a| a.name).collect();
                apply(&state, &meta, &id, entity_type, Edit::DeleteAttributes(names))
            }
        };
        if let Err(error) = outcome.await {
            first_error.get_or_insert(error);
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// The selector of an `/v2/op/query` body: each entity gives `id` or `idPattern`, and maybe `type`; no
/// `entities` selects all.
#[cfg(test)]
fn query_selector(body: &Value) -> Result<EntitySelector, ParseError> {
    EntitySelector::compile(&query_entities(body)?)
}

/// The entities an `/v2/op/query` body selects, as NGSI10 entity ids (validated).
fn query_entities(body: &Value) -> Result<Vec<EntityId>, ParseError> {
    let text = |entity: &Value, key: &str| -> Result<Option<String>, ParseError> {
        match entity.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(ParseError::new(format!("{key} must be a string"))),
        }
    };
    let entities = match body.get("entities") {
        None => &[] as &[Value],
        Some(_) => entities_of(body)?,
    };
    let mut ids = Vec::with_capacity(entities.len().max(1));
    for entity in entities {
        if entity.get("typePattern").is_some() {
            return Err(ParseError::new("typePattern is not supported by this broker yet"));
        }
        let entity_type = text(entity, "type")?.unwrap_or_default();
        if !entity_type.is_empty() {
            check_identifier("entity type", &entity_type)?;
        }
        let (id, is_pattern) = match (text(entity, "id")?, text(entity, "idPattern")?) {
            (Some(id), None) => {
                check_identifier("entity id", &id)?;
                (id, false)
            }
            (None, Some(pattern)) => (pattern, true),
            (None, None) => return Err(ParseError::new("an entity needs id or idPattern")),
            (Some(_), Some(_)) => return Err(ParseError::new("an entity cannot have both id and idPattern")),
        };
        ids.push(EntityId { id, entity_type, is_pattern });
    }
    if ids.is_empty() {
        ids.push(EntityId { id: ".*".into(), entity_type: String::new(), is_pattern: true });
    }
    EntitySelector::compile(&ids)?;
    Ok(ids)
}

/// The `expression` of an `/v2/op/query` body: `q`, and `georel` with `geometry` and `coords`.
fn expression(body: &Value) -> Result<(Option<Query>, Option<GeoQuery>), ParseError> {
    let expression = match body.get("expression") {
        None => return Ok((None, None)),
        Some(Value::Object(expression)) => expression,
        Some(_) => return Err(ParseError::new("expression must be a JSON object")),
    };
    let mut texts = [None; 4];
    for (key, value) in expression {
        let slot = match key.as_str() {
            "q" => 0,
            "georel" => 1,
            "geometry" => 2,
            "coords" => 3,
            other => return Err(ParseError::new(format!("expression {other} is not supported by this broker yet"))),
        };
        texts[slot] =
            Some(value.as_str().ok_or_else(|| ParseError::new(format!("expression {key} must be a string")))?);
    }
    let q = texts[0].map(Query::parse).transpose()?;
    Ok((q, GeoQuery::parse(texts[1], texts[2], texts[3])?))
}

/// `POST /v2/op/query[?limit=&offset=&options=count,keyValues|values]`; with federation, a client's query also
/// gets the other brokers' matching entities, as `GET /v2/entities` does.
pub async fn query(
    State(state): State<BrokerState>,
    Extension(federation): Extension<FederationHandle>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, V2Error> {
    let meta = meta(&headers)?;
    let params = Params::parse(&uri)?;
    let body = read_json(&headers, body, state.max_body_bytes).await?;
    if !body.is_object() {
        return Err(ParseError::new("the payload must be a JSON object").into());
    }
    let (q, geo) = expression(&body)?;
    let entities = query_entities(&body)?;
    let selector = EntitySelector::compile(&entities)?;
    let attrs: Vec<String> = match body.get("attrs") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item.as_str() {
                Some(name) => check_identifier("attribute name", name).map(|()| name.to_string()),
                None => Err(ParseError::new("attrs must be an array of strings")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(ParseError::new("attrs must be an array of strings").into()),
    };
    let (remote, unanswered) = match federation.for_client(&headers) {
        Some(federation) => federated::remote_entities(&state, federation, &meta.tenant, entities).await,
        None => (Vec::new(), Vec::new()),
    };
    let mut response = page(&state, &meta, &Filter { selector, q, geo }, &attrs, &params, remote);
    federated::mark_partial(&mut response, &unanswered);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn update_bodies_are_checked_before_anything_is_written() {
        let (action, elements) =
            parse_update(&json!({"actionType":"append","entities":[{"id":"a","t":{"value":1}}]}), false).unwrap();
        assert_eq!(action, Action::Append);
        assert!(!elements[0].1, "no type given");
        for bad in [
            json!({"entities":[]}),
            json!({"actionType":"APPEND","entities":[{"id":"a"}]}),
            json!({"actionType":"append","entities":[]}),
            json!({"actionType":"append","entities":{}}),
            json!({"actionType":"append","entities":[{"id":"a"},{"id":"b c"}]}),
        ] {
            assert!(parse_update(&bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_bodies_select_by_id_pattern_and_type() {
        let selector = query_selector(&json!({"entities":[{"id":"a","type":"T"},{"idPattern":"^b"}]})).unwrap();
        assert!(selector.matches("a", "T") && selector.matches("bx", "U"));
        assert!(!selector.matches("a", "U") && !selector.matches("c", "T"));
        assert!(query_selector(&json!({})).unwrap().matches("anything", "T"));
        assert!(query_selector(&json!({"entities":[{"type":"T"}]})).is_err());
        assert!(query_selector(&json!({"entities":[{"id":"a","idPattern":"b"}]})).is_err());
        assert!(query_selector(&json!({"entities":[{"idPattern":"a","typePattern":"b"}]})).is_err());
    }
}
