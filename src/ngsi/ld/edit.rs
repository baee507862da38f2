//! The entity edits of the NGSI-LD API as pure functions over the stored element (run under the entity's lock
//! by the broker state): create, replace, batch upsert/update, append (`noOverwrite`), update of existing
//! attributes, partial update of one attribute (sub-properties merged), and deletion of one attribute
//! (`datasetId`, `deleteAll`). Each answers the new element, the names it wrote or removed and the instances it
//! wrote (for their system times, [`crate::ngsi::times`]), or a refusal.
//! Attributes are written instance by instance: an instance replaces the stored one of the same name and
//! `datasetId` only (multi-attributes, [`super::multi`]); a partial update edits the instance of the fragment's
//! `datasetId`.

use serde_json::{Map, Value};

use super::context::Context;
use super::entity::{parse_attribute_owned, refresh_location};
use super::multi::{dataset_id, has_instance, put, with_all};
use super::render::{render_attribute, Format};
use super::DATASET_ID;
use crate::ngsi::limits::MAX_TYPES_PER_ENTITY;
use crate::ngsi::times::{Edited, Written};
use crate::ngsi::v1::{ContextAttribute, ContextElement};
use crate::ngsi::ParseError;

/// Why an edit was refused; nothing is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The entity (or attribute) does not exist.
    NotFound(String),
    /// The entity exists already.
    AlreadyExists(String),
    /// No attribute of the request could be written (each is reported as not updated).
    NothingUpdated,
    /// The request's data is invalid.
    Invalid(ParseError),
}

impl From<ParseError> for Refusal {
    fn from(error: ParseError) -> Self {
        Refusal::Invalid(error)
    }
}

/// An edit of one entity.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Create; refused when it exists.
    Create(ContextElement),
    /// Replace the whole entity (type and attributes); refused when it does not exist.
    Replace(ContextElement),
    /// Create, or else replace (`replace`: attributes and types) or merge its attributes into the existing one
    /// (its types added to the entity's).
    Upsert {
        /// The entity.
        element: ContextElement,
        /// Replace all attributes rather than merge.
        replace: bool,
    },
    /// Add the attributes to an existing entity; with `no_overwrite`, existing ones are kept. The `types` the
    /// entity does not have yet are added to its types.
    Append {
        /// The attributes.
        attributes: Vec<ContextAttribute>,
        /// `options=noOverwrite`.
        no_overwrite: bool,
        /// Types to add (canonical; none when the fragment names no type).
        types: Vec<String>,
    },
    /// Replace the attributes that exist; the others are not updated. Refused when none exists.
    UpdateExisting(Vec<ContextAttribute>),
    /// Merge a fragment (`value`, sub-properties, …) into the existing attribute `name`.
    Patch {
        /// Canonical attribute name.
        name: String,
        /// The fragment as sent.
        fragment: Map<String, Value>,
        /// The request's context (for sub-property names).
        context: Context,
    },
    /// Delete the attribute `name`: only the instance with this `datasetId` when given, whatever it is with
    /// `delete_all`.
    DeleteAttribute {
        /// Canonical attribute name.
        name: String,
        /// `datasetId`.
        dataset_id: Option<String>,
        /// `deleteAll=true`.
        delete_all: bool,
    },
}

fn not_found(id: &str) -> Refusal {
    Refusal::NotFound(format!("entity `{id}` does not exist"))
}

/// The distinct names of attributes (instances of one multi-attribute share theirs).
fn names(attributes: &[ContextAttribute]) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(attributes.len());
    for attribute in attributes {
        if !names.contains(&attribute.name) {
            names.push(attribute.name.clone());
        }
    }
    names
}

impl Edit {
    /// Applies the edit to the stored element of entity `id` (None when it does not exist).
    pub fn apply(self, id: &str, stored: Option<&ContextElement>) -> Result<Edited, Refusal> {
        let (mut element, touched, written) = match (self, stored) {
            (Edit::Create(element), None) => {
                let touched = names(&element.attributes);
                (element, touched, Written::All)
            }
            (Edit::Create(_), Some(_)) => return Err(Refusal::AlreadyExists(format!("entity `{id}` already exists"))),
            (Edit::Upsert { element, .. }, None) => {
                let touched = names(&element.attributes);
                (element, touched, Written::All)
            }
            (Edit::Replace(element), Some(before)) | (Edit::Upsert { element, replace: true }, Some(before)) => {
                let mut touched = names(&element.attributes);
                let removed: Vec<String> =
                    names(&before.attributes).into_iter().filter(|n| !touched.contains(n)).collect();
                touched.extend(removed);
                (element, touched, Written::All)
            }
            (Edit::Upsert { element: update, replace: false }, Some(before)) => {
                let touched = names(&update.attributes);
                let ContextElement { entity_id, attributes, extra_types, .. } = update;
                let (mut element, written) = with_all(before, attributes);
                element.add_types(
                    std::iter::once(entity_id.entity_type.as_str()).chain(extra_types.iter().map(String::as_str)),
                );
                (element, touched, Written::Instances(written))
            }
            (_, None) => return Err(not_found(id)),
            (Edit::Append { attributes, no_overwrite, types }, Some(before)) => {
                let mut element = before.clone();
                let typed = element.add_types(types.iter().map(String::as_str));
                let mut touched = Vec::new();
                let mut written = Vec::with_capacity(attributes.len());
                for attribute in attributes {
                    if no_overwrite && has_instance(before, &attribute) {
                        continue;
                    }
                    if !touched.contains(&attribute.name) {
                        touched.push(attribute.name.clone());
                    }
                    written.push(put(&mut element, attribute));
                }
                if touched.is_empty() && !typed {
                    return Err(Refusal::NothingUpdated);
                }
                (element, touched, Written::Instances(written))
            }
            (Edit::UpdateExisting(attributes), Some(before)) => {
                let mut element = before.clone();
                let mut touched = Vec::new();
                let mut written = Vec::with_capacity(attributes.len());
                for attribute in attributes {
                    if has_instance(before, &attribute) {
                        if !touched.contains(&attribute.name) {
                            touched.push(attribute.name.clone());
                        }
                        written.push(put(&mut element, attribute));
                    }
                }
                if touched.is_empty() {
                    return Err(Refusal::NothingUpdated);
                }
                (element, touched, Written::Instances(written))
            }
            (Edit::Patch { name, fragment, context }, Some(before)) => {
                // The instance of the fragment's `datasetId` (the default instance without one).
                let dataset = fragment.get(DATASET_ID).and_then(Value::as_str);
                let Some(existing) = before.attributes.iter().find(|a| a.name == name && dataset_id(a) == dataset)
                else {
                    return Err(Refusal::NotFound(format!(
                        "entity `{id}` has no attribute `{name}` (of that datasetId)"
                    )));
                };
                let Value::Object(mut merged) = render_attribute(existing, Format::Normalized) else {
                    return Err(Refusal::Invalid(ParseError::new("the stored attribute cannot be patched")));
                };
                for (key, value) in fragment {
                    let key = match key.as_str() {
                        "type" | "value" | "object" | "languageMap" => key,
                        _ => context.canonical(&key),
                    };
                    merged.insert(key, value);
                }
                // Sub-property keys are canonical already; parse them against the core context.
                let attribute = parse_attribute_owned(&Context::core(), name.clone(), Value::Object(merged))?;
                let mut element = before.clone();
                let index = put(&mut element, attribute);
                (element, vec![name], Written::Instances(vec![index]))
            }
            (Edit::DeleteAttribute { name, dataset_id, delete_all }, Some(before)) => {
                let matches = |attribute: &ContextAttribute| {
                    attribute.name == name
                        && (delete_all
                            || attribute.metadata.iter().find(|m| m.name == DATASET_ID).map(|m| m.value.as_str())
                                == dataset_id.as_deref().map(Some))
                };
                if !before.attributes.iter().any(matches) {
                    return Err(Refusal::NotFound(format!(
                        "entity `{id}` has no attribute `{name}` (of that datasetId)"
                    )));
                }
                let mut element = before.clone();
                element.attributes.retain(|a| !matches(a));
                (element, vec![name], Written::Instances(Vec::new()))
            }
        };
        if element.extra_types.len() >= MAX_TYPES_PER_ENTITY {
            return Err(Refusal::Invalid(ParseError::new(format!(
                "entity `{id}` would have more than {MAX_TYPES_PER_ENTITY} types"
            ))));
        }
        refresh_location(stored, &mut element);
        Ok(Edited { element, touched, written })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ngsi::ld::entity::{parse_attribute, parse_entity};

    fn room() -> ContextElement {
        parse_entity(
            &Context::core(),
            &json!({"id": "urn:r", "type": "Room", "t": {"type": "Property", "value": 1, "unitCode": "CEL"},
                "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [1.0, 2.0]}}}),
        )
        .unwrap()
    }

    fn attribute(name: &str, value: Value) -> ContextAttribute {
        parse_attribute(&Context::core(), name, &json!({"type": "Property", "value": value})).unwrap()
    }

    #[test]
    fn creation_and_replacement_check_existence() {
        assert!(Edit::Create(room()).apply("urn:r", None).is_ok());
        assert!(matches!(Edit::Create(room()).apply("urn:r", Some(&room())), Err(Refusal::AlreadyExists(_))));
        assert!(matches!(Edit::Replace(room()).apply("urn:r", None), Err(Refusal::NotFound(_))));
        let mut bare = room();
        bare.attributes.clear();
        let Edited { element: replaced, touched, .. } = Edit::Replace(bare).apply("urn:r", Some(&room())).unwrap();
        assert!(replaced.attributes.is_empty() && replaced.domain_metadata.is_empty(), "{replaced:?}");
        assert_eq!(touched, ["location", "t"], "attributes in name order");
    }

    #[test]
    fn append_update_patch_and_delete() {
        let append = Edit::Append {
            attributes: vec![attribute("t", json!(2)), attribute("h", json!(3))],
            no_overwrite: true,
            types: Vec::new(),
        };
        let Edited { element, touched, .. } = append.apply("urn:r", Some(&room())).unwrap();
        assert_eq!(touched, ["h"]);
        assert_eq!(element.attributes.iter().find(|a| a.name == "t").unwrap().value, json!(1));
        let update = Edit::UpdateExisting(vec![attribute("x", json!(2))]);
        assert_eq!(update.apply("urn:r", Some(&room())), Err(Refusal::NothingUpdated));
        let fragment = json!({"value": 5, "observedAt": "2024-01-01T00:00:00Z"}).as_object().unwrap().clone();
        let patch = Edit::Patch { name: "t".into(), fragment, context: Context::core() };
        let Edited { element, .. } = patch.apply("urn:r", Some(&room())).unwrap();
        let t = element.attributes.iter().find(|a| a.name == "t").unwrap();
        assert_eq!((t.attribute_type.as_str(), &t.value, t.metadata.len()), ("Property", &json!(5), 2));
        let delete = |dataset_id: Option<&str>, delete_all| Edit::DeleteAttribute {
            name: "location".into(),
            dataset_id: dataset_id.map(str::to_string),
            delete_all,
        };
        let Edited { element, .. } = delete(None, false).apply("urn:r", Some(&room())).unwrap();
        assert!(element.domain_metadata.is_empty(), "the location point goes with the GeoProperty");
        assert!(matches!(delete(Some("urn:d"), false).apply("urn:r", Some(&room())), Err(Refusal::NotFound(_))));
        assert!(delete(Some("urn:d"), true).apply("urn:r", Some(&room())).is_ok());
    }

    #[test]
    fn instances_are_written_patched_and_deleted_by_dataset_id() {
        let gps = |value: i64| {
            parse_attribute(&Context::core(), "t", &json!({"type": "Property", "value": value, "datasetId": "urn:gps"}))
                .unwrap()
        };
        let Edited { element, touched, written } =
            Edit::Append { attributes: vec![gps(7)], no_overwrite: false, types: Vec::new() }
                .apply("urn:r", Some(&room()))
                .unwrap();
        let gps_at = element.attributes.len() - 1;
        assert_eq!(written, Written::Instances(vec![gps_at]), "the new instance only");
        let values = |element: &ContextElement| -> Vec<Value> {
            element.attributes.iter().filter(|a| a.name == "t").map(|a| a.value.clone()).collect()
        };
        assert_eq!((values(&element), touched), (vec![json!(1), json!(7)], vec!["t".to_string()]));
        let no_overwrite = Edit::Append { attributes: vec![gps(8)], no_overwrite: true, types: Vec::new() };
        assert_eq!(no_overwrite.apply("urn:r", Some(&element)), Err(Refusal::NothingUpdated));
        let Edited { element: updated, written, .. } =
            Edit::UpdateExisting(vec![gps(9)]).apply("urn:r", Some(&element)).unwrap();
        assert_eq!(values(&updated), [json!(1), json!(9)], "only the instance of that datasetId");
        assert_eq!(written, Written::Instances(vec![gps_at]));
        let fragment = json!({"value": 10, "datasetId": "urn:gps"}).as_object().unwrap().clone();
        let Edited { element: patched, written, .. } =
            Edit::Patch { name: "t".into(), fragment, context: Context::core() }
                .apply("urn:r", Some(&element))
                .unwrap();
        assert_eq!(values(&patched), [json!(1), json!(10)]);
        assert_eq!(written, Written::Instances(vec![gps_at]));
        let other = json!({"value": 10, "datasetId": "urn:other"}).as_object().unwrap().clone();
        let patch = Edit::Patch { name: "t".into(), fragment: other, context: Context::core() };
        assert!(matches!(patch.apply("urn:r", Some(&element)), Err(Refusal::NotFound(_))));
        let delete = Edit::DeleteAttribute { name: "t".into(), dataset_id: Some("urn:gps".into()), delete_all: false };
        let Edited { element: deleted, written, .. } = delete.apply("urn:r", Some(&element)).unwrap();
        assert_eq!(values(&deleted), [json!(1)], "the default instance stays");
        assert_eq!(written, Written::Instances(Vec::new()), "a deletion writes no instance");
    }

    #[test]
    fn appends_and_merging_upserts_add_types_replacements_set_them() {
        let types = |element: &ContextElement| element.types().map(str::to_string).collect::<Vec<_>>();
        let append = |names: &[&str]| Edit::Append {
            attributes: Vec::new(),
            no_overwrite: true,
            types: names.iter().map(|n| n.to_string()).collect(),
        };
        let Edited { element, touched, .. } = append(&["Shop", "Room"]).apply("urn:r", Some(&room())).unwrap();
        assert_eq!((types(&element), touched), (vec!["Room".to_string(), "Shop".to_string()], Vec::<String>::new()));
        assert_eq!(append(&["Room"]).apply("urn:r", Some(&room())), Err(Refusal::NothingUpdated), "nothing new");
        let mut other = room();
        other.set_types(vec!["Office".into(), "Shop".into()]);
        let merged = Edit::Upsert { element: other.clone(), replace: false }.apply("urn:r", Some(&element)).unwrap();
        assert_eq!(types(&merged.element), ["Room", "Shop", "Office"]);
        let replaced = Edit::Replace(other.clone()).apply("urn:r", Some(&merged.element)).unwrap();
        assert_eq!(types(&replaced.element), ["Office", "Shop"]);
        let upserted = Edit::Upsert { element: room(), replace: true }.apply("urn:r", Some(&replaced.element)).unwrap();
        assert_eq!(types(&upserted.element), ["Room"]);
        let updated = Edit::UpdateExisting(vec![attribute("t", json!(3))]).apply("urn:r", Some(&element)).unwrap();
        assert_eq!(types(&updated.element), ["Room", "Shop"], "an update keeps the types");
        let many: Vec<String> = (0..MAX_TYPES_PER_ENTITY).map(|n| format!("T{n}")).collect();
        let too_many = Edit::Append { attributes: Vec::new(), no_overwrite: false, types: many };
        assert!(matches!(too_many.apply("urn:r", Some(&room())), Err(Refusal::Invalid(_))), "at most 100 in all");
    }
}
