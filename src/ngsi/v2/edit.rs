//! The entity edits of the NGSIv2 API as pure functions over the stored element: create (or upsert), append
//! (strict or not), update of existing attributes, replace, new value, attribute deletion. Each answers the
//! element after the edit and the attribute names it wrote or removed, or why it was refused (Orion's
//! 404/422 cases); the `location` domain metadata is refreshed after every edit.

use serde_json::Value;

use super::{has_attribute, is_derived, refresh_location, view};
use crate::ngsi::v1::{ContextAttribute, ContextElement};

/// Why a v2 edit was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The entity does not exist (or has another type than the one asked for).
    EntityNotFound,
    /// These attributes do not exist.
    AttributesNotFound(Vec<String>),
    /// The request conflicts with the entity's state (Orion's `Unprocessable`).
    Unprocessable(String),
}

/// Writes one attribute into the element: an attribute of that name gets the new type and value and its
/// metadata merged by name; else a domain metadata item of that name (other than a derived `location`) gets the
/// type and value; else it is added.
fn write(element: &mut ContextElement, attribute: &ContextAttribute) {
    if let Some(existing) = element.attributes.iter_mut().find(|a| a.name == attribute.name) {
        existing.attribute_type = attribute.attribute_type.clone();
        existing.value = attribute.value.clone();
        for item in &attribute.metadata {
            match existing.metadata.iter_mut().find(|m| m.name == item.name) {
                Some(old) => *old = item.clone(),
                None => existing.metadata.push(item.clone()),
            }
        }
        return;
    }
    if !is_derived(element, &attribute.name) {
        if let Some(metadata) = element.domain_metadata.iter_mut().find(|m| m.name == attribute.name) {
            metadata.metadata_type = attribute.attribute_type.clone();
            metadata.value = attribute.value.clone();
            return;
        }
    }
    element.attributes.push(attribute.clone());
}

fn names(attributes: &[ContextAttribute]) -> Vec<String> {
    attributes.iter().map(|a| a.name.clone()).collect()
}

fn finish(before: &ContextElement, mut after: ContextElement, touched: Vec<String>) -> (ContextElement, Vec<String>) {
    refresh_location(Some(before), &mut after);
    (after, touched)
}

/// What [`Edit::Create`] does with an entity that exists already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfExists {
    /// 422 `Already Exists`.
    Refuse,
    /// Write the attributes (`options=upsert`, `append`).
    Append,
    /// Write the attributes, none of which may exist yet (`appendStrict`).
    AppendStrict,
}

/// An entity's edit for the v2 API, applied to the stored element (or `None`) by [`Edit::apply`].
#[derive(Debug, Clone)]
pub enum Edit {
    /// `POST /v2/entities`, `/v2/op/update` `append`/`appendStrict`: create the entity, or do `if_exists`.
    Create {
        /// The new entity.
        element: ContextElement,
        /// What to do when it exists.
        if_exists: IfExists,
    },
    /// `POST /attrs`: write the attributes; with `strict` (`options=append`) none may exist yet.
    Append {
        /// The attributes.
        attributes: Vec<ContextAttribute>,
        /// `options=append`.
        strict: bool,
    },
    /// `PATCH /attrs`, `PUT /attrs/{name}`: write the attributes, all of which must exist.
    Update(Vec<ContextAttribute>),
    /// `PUT /attrs`: the attributes replace the whole v2 view (attributes and domain metadata).
    Replace(Vec<ContextAttribute>),
    /// `PUT /attrs/{name}/value`: a new value for an existing attribute, type and metadata kept.
    SetValue {
        /// Attribute name.
        name: String,
        /// New value.
        value: Value,
    },
    /// `DELETE /attrs/{name}`, `/v2/op/update` `delete` with attributes: all must exist.
    DeleteAttributes(Vec<String>),
}

impl Edit {
    /// The element after the edit and the attribute names it wrote or removed. `entity_type`, when given, must
    /// be the stored entity's type.
    pub fn apply(
        self,
        stored: Option<&ContextElement>,
        entity_type: Option<&str>,
    ) -> Result<(ContextElement, Vec<String>), Rejection> {
        let stored = stored.filter(|s| entity_type.is_none_or(|t| t == s.entity_id.entity_type));
        let Some(before) = stored else {
            return match self {
                Edit::Create { element, .. } => {
                    let touched = names(&element.attributes);
                    Ok((element, touched))
                }
                _ => Err(Rejection::EntityNotFound),
            };
        };
        let (after, touched) = match self {
            Edit::Create { if_exists: IfExists::Refuse, .. } => {
                return Err(Rejection::Unprocessable("Already Exists".into()))
            }
            // One entity per id here: an upsert keeps the stored type (Orion would keep a second entity).
            Edit::Create { element, if_exists } => {
                let strict = if_exists == IfExists::AppendStrict;
                Edit::Append { attributes: element.attributes, strict }.apply_to(before)?
            }
            edit => edit.apply_to(before)?,
        };
        Ok(finish(before, after, touched))
    }

    fn apply_to(self, before: &ContextElement) -> Result<(ContextElement, Vec<String>), Rejection> {
        let mut after = before.clone();
        match self {
            Edit::Create { .. } => Err(Rejection::Unprocessable("Already Exists".into())),
            Edit::Append { attributes, strict } => {
                if strict {
                    let existing: Vec<&str> =
                        attributes.iter().map(|a| a.name.as_str()).filter(|n| has_attribute(before, n)).collect();
                    if !existing.is_empty() {
                        return Err(Rejection::Unprocessable(format!(
                            "one or more of the attributes in the request already exist: [{}]",
                            existing.join(", ")
                        )));
                    }
                }
                attributes.iter().for_each(|a| write(&mut after, a));
                Ok((after, names(&attributes)))
            }
            Edit::Update(attributes) => {
                let missing: Vec<String> =
                    attributes.iter().map(|a| a.name.clone()).filter(|n| !has_attribute(before, n)).collect();
                if !missing.is_empty() {
                    return Err(Rejection::AttributesNotFound(missing));
                }
                attributes.iter().for_each(|a| write(&mut after, a));
                Ok((after, names(&attributes)))
            }
            Edit::Replace(attributes) => {
                let mut touched = names(&view(before));
                for name in names(&attributes) {
                    if !touched.contains(&name) {
                        touched.push(name);
                    }
                }
                after.domain_metadata.clear();
                after.attributes.clear();
                attributes.iter().for_each(|a| write(&mut after, a));
                Ok((after, touched))
            }
            Edit::SetValue { name, value } => {
                let Some(mut attribute) = view(before).into_iter().find(|a| a.name == name) else {
                    return Err(Rejection::AttributesNotFound(vec![name]));
                };
                attribute.value = value;
                attribute.metadata.clear();
                write(&mut after, &attribute);
                Ok((after, vec![name]))
            }
            Edit::DeleteAttributes(names) => {
                let missing: Vec<String> = names.iter().filter(|n| !has_attribute(before, n)).cloned().collect();
                if !missing.is_empty() {
                    return Err(Rejection::AttributesNotFound(missing));
                }
                for name in &names {
                    if after.attributes.iter().any(|a| &a.name == name) {
                        after.attributes.retain(|a| &a.name != name);
                    } else {
                        after.domain_metadata.retain(|m| &m.name != name);
                    }
                }
                Ok((after, names))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ngsi::v2::{parse_attributes, parse_entity};

    fn stored() -> ContextElement {
        parse_entity(
            &json!({"id":"e","type":"T","a":{"value":1,"metadata":{"m":{"value":"x"}}},"b":{"value":2}}),
            false,
        )
        .unwrap()
    }

    fn attrs(body: serde_json::Value) -> Vec<ContextAttribute> {
        parse_attributes(&body, true).unwrap()
    }

    #[test]
    fn create_refuses_existing_entities_unless_upsert() {
        let element = parse_entity(&json!({"id":"e","c":{"value":3}}), false).unwrap();
        let create = Edit::Create { element: element.clone(), if_exists: IfExists::Refuse };
        assert_eq!(create.clone().apply(None, None).unwrap().0, element);
        assert_eq!(create.apply(Some(&stored()), None), Err(Rejection::Unprocessable("Already Exists".into())));
        let (after, touched) =
            Edit::Create { element, if_exists: IfExists::Append }.apply(Some(&stored()), None).unwrap();
        assert_eq!(after.attributes.len(), 3);
        assert_eq!(after.entity_id.entity_type, "T", "an upsert keeps the stored type");
        assert_eq!(touched, ["c"]);
    }

    #[test]
    fn append_update_and_replace() {
        let strict = Edit::Append { attributes: attrs(json!({"a":5,"z":1})), strict: true };
        assert!(matches!(strict.apply(Some(&stored()), None), Err(Rejection::Unprocessable(_))));
        let (after, _) =
            Edit::Append { attributes: attrs(json!({"a":5})), strict: false }.apply(Some(&stored()), None).unwrap();
        let a = &after.attributes[0];
        assert_eq!((a.value.clone(), a.metadata.len()), (json!(5), 1), "metadata are merged, not dropped");
        let missing = Edit::Update(attrs(json!({"a":5,"z":1}))).apply(Some(&stored()), None);
        assert_eq!(missing, Err(Rejection::AttributesNotFound(vec!["z".into()])));
        let (after, touched) = Edit::Replace(attrs(json!({"z":1}))).apply(Some(&stored()), None).unwrap();
        assert_eq!(after.attributes.len(), 1);
        assert_eq!(touched, ["a", "b", "z"]);
        assert_eq!(Edit::Update(vec![]).apply(None, None), Err(Rejection::EntityNotFound));
        assert_eq!(Edit::Update(vec![]).apply(Some(&stored()), Some("U")), Err(Rejection::EntityNotFound));
    }

    #[test]
    fn values_and_deletions() {
        let set = Edit::SetValue { name: "a".into(), value: json!("new") };
        let (after, _) = set.apply(Some(&stored()), None).unwrap();
        assert_eq!(after.attributes[0].value, json!("new"));
        assert_eq!(after.attributes[0].attribute_type, "Number", "the type is kept");
        assert_eq!(after.attributes[0].metadata.len(), 1, "metadata are kept");
        let (after, _) = Edit::DeleteAttributes(vec!["a".into()]).apply(Some(&stored()), None).unwrap();
        assert_eq!(after.attributes.len(), 1);
        let missing = Edit::DeleteAttributes(vec!["z".into()]).apply(Some(&stored()), None);
        assert_eq!(missing, Err(Rejection::AttributesNotFound(vec!["z".into()])));
    }

    #[test]
    fn removing_the_geo_attribute_removes_the_derived_location() {
        let located = parse_entity(
            &json!({"id":"e","location":{"type":"geo:json","value":{"type":"Point","coordinates":[8.0,49.0]}}}),
            false,
        )
        .unwrap();
        assert_eq!(located.domain_metadata.len(), 1);
        let (after, _) = Edit::DeleteAttributes(vec!["location".into()]).apply(Some(&located), None).unwrap();
        assert!(after.domain_metadata.is_empty() && after.attributes.is_empty());
        let moved = Edit::Update(
            parse_attributes(
                &json!({"location":{"type":"geo:json","value":{"type":"Point","coordinates":[9.0,50.0]}}}),
                false,
            )
            .unwrap(),
        );
        let (after, _) = moved.apply(Some(&located), None).unwrap();
        assert_eq!(after.domain_metadata[0].value, json!({"latitude":50.0,"longitude":9.0}));
    }

    #[test]
    fn a_derived_location_is_not_written_in_place() {
        let located = parse_entity(
            &json!({"id":"e","position":{"type":"geo:json","value":{"type":"Point","coordinates":[8.0,49.0]}}}),
            false,
        )
        .unwrap();
        let update = Edit::Update(attrs(json!({"location":"here"}))).apply(Some(&located), None);
        assert_eq!(update, Err(Rejection::AttributesNotFound(vec!["location".into()])), "hidden from the view");
        let append = Edit::Append { attributes: attrs(json!({"location":"here"})), strict: true };
        let (after, _) = append.apply(Some(&located), None).unwrap();
        assert_eq!(after.attributes[1].value, json!("here"), "added as an attribute");
        assert_eq!(after.domain_metadata[0].value, json!({"latitude":49.0,"longitude":8.0}), "still derived");
    }

    #[test]
    fn domain_metadata_are_written_in_place() {
        let element: ContextElement = serde_json::from_value(json!({"entityId":{"id":"e","type":"T"},
            "domainMetadata":[{"name":"city","type":"string","value":"Heidelberg"}]}))
        .unwrap();
        let (after, _) = Edit::Update(attrs(json!({"city":"Tokyo"}))).apply(Some(&element), None).unwrap();
        assert!(after.attributes.is_empty());
        assert_eq!(after.domain_metadata[0].value, json!("Tokyo"));
        let (after, _) = Edit::DeleteAttributes(vec!["city".into()]).apply(Some(&element), None).unwrap();
        assert!(after.domain_metadata.is_empty());
    }
}
