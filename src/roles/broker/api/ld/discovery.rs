//! NGSI-LD discovery of what the store holds (clause 5.7): `GET /ngsi-ld/v1/types` (`EntityTypeList`, or with
//! `details=true` one `EntityType` per type with its attribute names), `GET /ngsi-ld/v1/types/{type}`
//! (`EntityTypeInformation`: entity count and attribute details), `GET /ngsi-ld/v1/attributes` (`AttributeList`,
//! or with `details=true` one `Attribute` each) and `GET /ngsi-ld/v1/attributes/{attr}` (`Attribute`: count,
//! kinds, types of the entities having it). Computed from the tenant's entities at each request.
//!
//! Type and attribute names are compacted with the request's context (a `Link` header, named back in the
//! answer's `Link`; or, for `application/ld+json`, echoed as `@context`), as entities are; `{type}` and `{attr}`
//! in the path are expanded with it. The `id`s are the full IRIs; lists are in the order of the names as shown.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde_json::{json, Value};

use super::error::LdError;
use super::negotiation::{accept, answer_compactor, link_only, respond_named, tenant};
use super::params::Params;
use super::tenant_exists;
use crate::ngsi::ld::context::{Compactor, Context};
use crate::ngsi::ld::entity::Kind;
use crate::ngsi::ld::render::view;
use crate::roles::broker::state::BrokerState;

/// What is known of one attribute name.
#[derive(Default)]
struct AttributeInfo {
    count: usize,
    kinds: BTreeSet<&'static str>,
    types: BTreeSet<String>,
}

/// What is known of one entity type.
#[derive(Default)]
struct TypeInfo {
    count: usize,
    attributes: BTreeMap<String, BTreeSet<&'static str>>,
}

/// The tenant's types and attributes.
struct Inventory {
    types: BTreeMap<String, TypeInfo>,
    attributes: BTreeMap<String, AttributeInfo>,
}

fn inventory(state: &BrokerState, tenant: &str) -> Result<Inventory, LdError> {
    if !tenant_exists(state, tenant) {
        return Err(LdError::nonexistent_tenant(tenant));
    }
    let mut inventory = Inventory { types: BTreeMap::new(), attributes: BTreeMap::new() };
    for entity in state.entities.list(tenant) {
        // An entity with several types counts once under each.
        let types: Vec<&str> = entity.element.types().collect();
        let attributes = view(&entity.element);
        for entity_type in &types {
            let type_info = inventory.types.entry(entity_type.to_string()).or_default();
            type_info.count += 1;
            for attribute in &attributes {
                let kind = Kind::of(&attribute.attribute_type).name();
                type_info.attributes.entry(attribute.name.clone()).or_default().insert(kind);
            }
        }
        let mut seen: BTreeSet<String> = BTreeSet::new();
        for attribute in attributes {
            let kind = Kind::of(&attribute.attribute_type).name();
            // The instances of a multi-attribute count once per entity.
            let first = seen.insert(attribute.name.clone());
            let info = inventory.attributes.entry(attribute.name).or_default();
            if first {
                info.count += 1;
            }
            info.kinds.insert(kind);
            info.types.extend(types.iter().map(|t| t.to_string()));
        }
    }
    Ok(inventory)
}

fn list_id(kind: &str) -> String {
    format!("urn:ngsi-ld:{kind}:{}", uuid::Uuid::new_v4())
}

/// `GET /ngsi-ld/v1/types[?details=true]`.
pub async fn types(State(state): State<BrokerState>, uri: Uri, headers: HeaderMap) -> Result<Response, LdError> {
    let media = accept(&headers)?;
    let context = link_only(&state.contexts, &headers).await?;
    let compactor = answer_compactor(media, &context);
    let details = Params::parse(&uri)?.flag("details")?;
    let inventory = inventory(&state, &tenant(&headers)?)?;
    let body = if details {
        let core = Context::core();
        by_name(
            inventory
                .types
                .iter()
                .map(|(name, info)| {
                    let shown = compactor.compact(name);
                    let details = json!({"id": core.expand(name), "type": "EntityType", "typeName": shown,
                        "attributeNames": compacted(&compactor, info.attributes.keys())});
                    (shown, details)
                })
                .collect(),
        )
    } else {
        json!({"id": list_id("EntityTypeList"), "type": "EntityTypeList",
            "typeList": compacted(&compactor, inventory.types.keys())})
    };
    Ok(respond_named(media, StatusCode::OK, body, &context))
}

/// `GET /ngsi-ld/v1/types/{type}`: 404 when no entity has it.
pub async fn entity_type(
    State(state): State<BrokerState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, LdError> {
    let media = accept(&headers)?;
    let context = link_only(&state.contexts, &headers).await?;
    let name = context.canonical(&name);
    let inventory = inventory(&state, &tenant(&headers)?)?;
    let Some(info) = inventory.types.get(&name) else {
        return Err(LdError::not_found(format!("no entity has the type `{name}`")));
    };
    let core = Context::core();
    let compactor = answer_compactor(media, &context);
    let attributes = by_name(
        info.attributes
            .iter()
            .map(|(attribute, kinds)| {
                let shown = compactor.compact(attribute);
                let detail = json!({"id": core.expand(attribute), "type": "Attribute", "attributeName": shown,
                    "attributeTypes": kinds});
                (shown, detail)
            })
            .collect(),
    );
    let body = json!({"id": core.expand(&name), "type": "EntityTypeInformation", "typeName": compactor.compact(&name),
        "entityCount": info.count, "attributeDetails": attributes});
    Ok(respond_named(media, StatusCode::OK, body, &context))
}

/// The details of each name, in the order of the names as shown.
fn by_name(mut details: Vec<(String, Value)>) -> Value {
    details.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Array(details.into_iter().map(|(_, detail)| detail).collect())
}

/// Names compacted, in the order of their compacted form.
fn compacted<'a>(compactor: &Compactor, names: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut shown: Vec<String> = names.map(|name| compactor.compact(name)).collect();
    shown.sort();
    shown
}

fn attribute_body(compactor: &Compactor, name: &str, info: &AttributeInfo) -> Value {
    json!({"id": Context::core().expand(name), "type": "Attribute", "attributeName": compactor.compact(name),
        "attributeCount": info.count, "attributeTypes": info.kinds,
        "typeNames": compacted(compactor, info.types.iter())})
}

/// `GET /ngsi-ld/v1/attributes[?details=true]`.
pub async fn attributes(State(state): State<BrokerState>, uri: Uri, headers: HeaderMap) -> Result<Response, LdError> {
    let media = accept(&headers)?;
    let context = link_only(&state.contexts, &headers).await?;
    let compactor = answer_compactor(media, &context);
    let details = Params::parse(&uri)?.flag("details")?;
    let inventory = inventory(&state, &tenant(&headers)?)?;
    let body = if details {
        by_name(
            inventory
                .attributes
                .iter()
                .map(|(name, info)| (compactor.compact(name), attribute_body(&compactor, name, info)))
                .collect(),
        )
    } else {
        json!({"id": list_id("EntityAttributeList"), "type": "AttributeList",
            "attributeList": compacted(&compactor, inventory.attributes.keys())})
    };
    Ok(respond_named(media, StatusCode::OK, body, &context))
}

/// `GET /ngsi-ld/v1/attributes/{attr}`: 404 when no entity has it.
pub async fn attribute(
    State(state): State<BrokerState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, LdError> {
    let media = accept(&headers)?;
    let context = link_only(&state.contexts, &headers).await?;
    let name = context.canonical(&name);
    let inventory = inventory(&state, &tenant(&headers)?)?;
    let compactor = answer_compactor(media, &context);
    match inventory.attributes.get(&name) {
        Some(info) => Ok(respond_named(media, StatusCode::OK, attribute_body(&compactor, &name, info), &context)),
        None => Err(LdError::not_found(format!("no entity has the attribute `{name}`"))),
    }
}
