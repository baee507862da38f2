//! What the entity repository does to one element, without storage: validate an update, merge it into the
//! stored element, project and filter by attributes, and what discovery registers of it. Pure.

use crate::ngsi::limits::{self, MAX_ATTRIBUTES_PER_ENTITY, MAX_ELEMENTS_PER_REQUEST};
use crate::ngsi::v1::{ContextAttribute, ContextElement, ContextMetadata, UpdateAction};
use crate::ngsi::ParseError;

/// Whether two elements register the same with discovery: type, attribute names and types (in order), domain
/// metadata. Allocation-free: it runs on every write.
pub(super) fn same_registration(a: &ContextElement, b: &ContextElement) -> bool {
    a.entity_id.entity_type == b.entity_id.entity_type
        && a.attributes.len() == b.attributes.len()
        && a.attributes.iter().zip(&b.attributes).all(|(x, y)| x.name == y.name && x.attribute_type == y.attribute_type)
        && a.domain_metadata == b.domain_metadata
}

/// Whether the element has every listed attribute (an empty list asks for nothing).
pub fn has_all_attributes(element: &ContextElement, attributes: &[String]) -> bool {
    attributes.iter().all(|name| element.attributes.iter().any(|attribute| &attribute.name == name))
}

/// The element with only the listed attributes (all when the list is empty); domain metadata always kept.
pub fn project(element: &ContextElement, attributes: &[String]) -> ContextElement {
    if attributes.is_empty() {
        return element.clone();
    }
    ContextElement {
        entity_id: element.entity_id.clone(),
        attributes: element.attributes.iter().filter(|a| attributes.contains(&a.name)).cloned().collect(),
        domain_metadata: element.domain_metadata.clone(),
        extra_types: element.extra_types.clone(),
    }
}

pub(super) fn validate_update(elements: &[ContextElement], action: UpdateAction) -> Result<(), ParseError> {
    if elements.is_empty() {
        return Err(ParseError::new("contextElements is empty"));
    }
    if elements.len() > MAX_ELEMENTS_PER_REQUEST {
        return Err(ParseError::new(format!(
            "{} context elements, the limit is {MAX_ELEMENTS_PER_REQUEST}",
            elements.len()
        )));
    }
    for element in elements {
        let entity = &element.entity_id;
        if entity.is_pattern {
            return Err(ParseError::new(format!("entity `{}`: isPattern cannot be true in an update", entity.id)));
        }
        limits::check_name("entity id", &entity.id)?;
        limits::check_optional_name("entity type", &entity.entity_type)?;
        if element.attributes.len() > MAX_ATTRIBUTES_PER_ENTITY {
            return Err(ParseError::new(format!(
                "entity `{}` has {} attributes, the limit is {MAX_ATTRIBUTES_PER_ENTITY}",
                entity.id,
                element.attributes.len()
            )));
        }
        for attribute in &element.attributes {
            limits::check_name("attribute name", &attribute.name)?;
            limits::check_optional_name("attribute type", &attribute.attribute_type)?;
            check_metadata(&attribute.metadata)?;
        }
        if action == UpdateAction::Delete && !element.domain_metadata.is_empty() && element.attributes.is_empty() {
            // Deleting a whole entity: domain metadata in the request are irrelevant but harmless.
        }
        check_metadata(&element.domain_metadata)?;
    }
    Ok(())
}

pub(super) fn check_metadata(metadata: &[ContextMetadata]) -> Result<(), ParseError> {
    for item in metadata {
        limits::check_name("metadata name", &item.name)?;
        limits::check_optional_name("metadata type", &item.metadata_type)?;
    }
    Ok(())
}

/// A new entity as received, with duplicate attribute and metadata names collapsed (last one wins).
pub(super) fn normalized_new(element: &ContextElement) -> ContextElement {
    merge(&ContextElement { entity_id: element.entity_id.clone(), ..Default::default() }, element).0
}

/// Merges an update into the stored element: attributes and domain metadata by name (value, type and
/// attribute metadata replaced by name; new ones appended). A type the entity does not have replaces its first
/// type (its other types, NGSI-LD's, are kept); one of its types changes nothing. Returns the result and whether
/// its registration (type, attribute names and types, domain metadata) changed.
pub(super) fn merge(stored: &ContextElement, update: &ContextElement) -> (ContextElement, bool) {
    let mut merged = stored.clone();
    let mut registration_changed = false;
    if !update.entity_id.entity_type.is_empty() && !merged.has_type(&update.entity_id.entity_type) {
        merged.entity_id.entity_type = update.entity_id.entity_type.clone();
        registration_changed = true;
    }
    for attribute in &update.attributes {
        match merged.attributes.iter_mut().find(|a| a.name == attribute.name) {
            Some(existing) => {
                if !attribute.attribute_type.is_empty() && existing.attribute_type != attribute.attribute_type {
                    existing.attribute_type = attribute.attribute_type.clone();
                    registration_changed = true;
                }
                existing.value = attribute.value.clone();
                merge_metadata(&mut existing.metadata, &attribute.metadata);
            }
            None => {
                let mut fresh = ContextAttribute { metadata: Vec::new(), ..attribute.clone() };
                merge_metadata(&mut fresh.metadata, &attribute.metadata);
                merged.attributes.push(fresh);
                registration_changed = true;
            }
        }
    }
    let metadata_before = merged.domain_metadata.clone();
    merge_metadata(&mut merged.domain_metadata, &update.domain_metadata);
    if merged.domain_metadata != metadata_before {
        registration_changed = true;
    }
    (merged, registration_changed)
}

pub(super) fn merge_metadata(stored: &mut Vec<ContextMetadata>, update: &[ContextMetadata]) {
    for item in update {
        match stored.iter_mut().find(|m| m.name == item.name) {
            Some(existing) => {
                if !item.metadata_type.is_empty() {
                    existing.metadata_type = item.metadata_type.clone();
                }
                existing.value = item.value.clone();
            }
            None => stored.push(item.clone()),
        }
    }
}
