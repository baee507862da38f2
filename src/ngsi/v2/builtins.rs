//! Orion's builtin attributes and metadata on NGSIv2 entity reads: `attrs=dateCreated,dateModified` shows the
//! entity's creation and last modification times as attributes, `metadata=dateCreated,dateModified` those of each
//! attribute as metadata, both `{"type":"DateTime","value":"…Z"}` (ISO 8601 UTC with milliseconds; see
//! [`crate::ngsi::times`]). As in Orion, builtins show only when named, and `metadata=` also names the user
//! metadata to show (`*`: all of them). Pure.

use serde_json::{Map, Value};

use super::{view, Format};
use crate::ngsi::ld::render::date_time;
use crate::ngsi::times::EntityTimes;
use crate::ngsi::v1::{ContextAttribute, ContextElement};

/// The builtin attribute and metadata holding a creation time.
pub const DATE_CREATED: &str = "dateCreated";
/// The builtin attribute and metadata holding a last modification time.
pub const DATE_MODIFIED: &str = "dateModified";
/// The type of both.
const DATE_TIME: &str = "DateTime";

/// What a read asks for beyond the user attributes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Builtins<'a> {
    /// The system times of the entity read (none: not known here, no builtin is shown).
    pub times: Option<EntityTimes<'a>>,
    /// `metadata=`: the metadata to show (none: every user metadata and no builtin).
    pub metadata: Option<&'a [String]>,
}

/// The builtin attribute `name` of an entity with these times.
fn builtin_attribute(name: &str, times: Option<&EntityTimes<'_>>) -> Option<ContextAttribute> {
    let times = times?;
    let millis = match name {
        DATE_CREATED => times.created_at,
        DATE_MODIFIED => times.modified_at,
        _ => return None,
    };
    Some(ContextAttribute {
        name: name.to_string(),
        attribute_type: DATE_TIME.to_string(),
        value: date_time(millis),
        metadata: Vec::new(),
    })
}

/// The attributes `attrs` names (in that order; all, then the builtins named, for none or `*`), each with whether
/// it is a builtin. An attribute of the element named like a builtin hides it.
fn select(
    element: &ContextElement,
    attrs: &[String],
    times: Option<&EntityTimes<'_>>,
) -> Vec<(ContextAttribute, bool)> {
    let all = view(element);
    if attrs.is_empty() || attrs.iter().any(|a| a == "*") {
        let mut attributes: Vec<(ContextAttribute, bool)> = all.into_iter().map(|a| (a, false)).collect();
        for name in attrs {
            if !attributes.iter().any(|(a, _)| &a.name == name) {
                attributes.extend(builtin_attribute(name, times).map(|b| (b, true)));
            }
        }
        return attributes;
    }
    attrs
        .iter()
        .filter_map(|name| match all.iter().find(|a| &a.name == name) {
            Some(attribute) => Some((attribute.clone(), false)),
            None => builtin_attribute(name, times).map(|b| (b, true)),
        })
        .collect()
}

/// One attribute normalized (`{"type","value","metadata"}`) with the metadata `builtins` asks for.
fn render_normalized(attribute: &ContextAttribute, index: usize, is_builtin: bool, builtins: &Builtins<'_>) -> Value {
    let named = |name: &str| builtins.metadata.is_some_and(|list| list.iter().any(|m| m == name));
    let shows_user = |name: &str| builtins.metadata.is_none() || named("*") || named(name);
    let mut metadata: Map<String, Value> = attribute
        .metadata
        .iter()
        .filter(|m| shows_user(&m.name))
        .map(|m| (m.name.clone(), serde_json::json!({ "type": m.metadata_type, "value": m.value })))
        .collect();
    if let Some(times) = builtins.times.as_ref().filter(|_| !is_builtin) {
        let instance = times.of(index, attribute);
        for (name, millis) in [(DATE_CREATED, instance.created_at), (DATE_MODIFIED, instance.modified_at)] {
            if named(name) {
                metadata.insert(name.to_string(), serde_json::json!({ "type": DATE_TIME, "value": date_time(millis) }));
            }
        }
    }
    serde_json::json!({ "type": attribute.attribute_type, "value": attribute.value, "metadata": metadata })
}

/// The attributes of an element (those in `attrs`, in that order; all when empty) in a format, with the builtins
/// asked for.
pub fn render_attributes_with(
    element: &ContextElement,
    attrs: &[String],
    format: Format,
    builtins: &Builtins<'_>,
) -> Value {
    let attributes = select(element, attrs, builtins.times.as_ref());
    match format {
        Format::Values => Value::Array(attributes.into_iter().map(|(a, _)| a.value).collect()),
        Format::KeyValues => Value::Object(attributes.into_iter().map(|(a, _)| (a.name, a.value)).collect()),
        Format::Normalized => Value::Object(
            attributes
                .iter()
                .enumerate()
                .map(|(index, (a, is_builtin))| (a.name.clone(), render_normalized(a, index, *is_builtin, builtins)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ngsi::times::InstanceTimes;
    use crate::ngsi::v2::{parse_entity, render_entity_with};

    #[test]
    fn builtins_show_only_when_named() {
        let element = parse_entity(
            &json!({"id": "e", "type": "T", "temp": {"value": 1, "metadata": {"unit": {"value": "C"}}}}),
            false,
        )
        .unwrap();
        let base = 1_700_000_000_000;
        let instance_times = [InstanceTimes { created_at: base + 1, modified_at: base + 5 }];
        let times = EntityTimes::stored(base, base + 5, &element, &instance_times);
        let names = |list: &[&str]| list.iter().map(|name| name.to_string()).collect::<Vec<_>>();
        let render = |attrs: &[&str], metadata: Option<&[String]>, format| {
            render_entity_with(&element, &names(attrs), format, &Builtins { times: Some(times), metadata })
        };
        let unit = json!({"type": "Text", "value": "C"});
        assert_eq!(render(&[], None, Format::Normalized)["temp"]["metadata"], json!({"unit": unit}), "nothing asked");
        let modified = json!({"type": "DateTime", "value": "2023-11-14T22:13:20.005Z"});
        let only_dates = names(&["dateModified"]);
        assert_eq!(
            render(&[], Some(&only_dates), Format::Normalized)["temp"]["metadata"],
            json!({"dateModified": modified}),
            "metadata= also filters the user metadata"
        );
        let all_and_created = names(&["*", "dateCreated"]);
        assert_eq!(
            render(&[], Some(&all_and_created), Format::Normalized)["temp"]["metadata"],
            json!({"unit": unit, "dateCreated": {"type": "DateTime", "value": "2023-11-14T22:13:20.001Z"}})
        );
        assert_eq!(
            render(&["dateCreated", "temp"], None, Format::KeyValues),
            json!({"id": "e", "type": "T", "dateCreated": "2023-11-14T22:13:20.000Z", "temp": 1})
        );
        assert_eq!(render(&["dateModified", "temp"], None, Format::Values), json!(["2023-11-14T22:13:20.005Z", 1]));
        let entity_level = render(&["*", "dateModified"], Some(&only_dates), Format::Normalized);
        assert_eq!(
            entity_level["dateModified"],
            json!({"type": "DateTime", "value": modified["value"], "metadata": {}})
        );
        assert!(entity_level["temp"]["metadata"]["dateModified"].is_object());
        let unknown = Builtins { times: None, metadata: None };
        let remote = render_entity_with(&element, &names(&["dateCreated"]), Format::Normalized, &unknown);
        assert_eq!(remote, json!({"id": "e", "type": "T"}), "no times known: no builtins");
    }
}
