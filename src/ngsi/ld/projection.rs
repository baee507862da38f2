//! The `pick` and `omit` projections of entities (ETSI GS CIM 009 V1.8 clause 4.21): lists of entity member names
//! (`id`, `type`, attribute names, `createdAt`/`modifiedAt`) separated by `,` (or `|`); `pick` keeps only the
//! members it names, `omit` removes the ones it names. A member named by both is refused, as are empty names and
//! the nested projections of linked entities (`attr{sub}`), which need linked-entity retrieval (`join`), not
//! supported. Attribute names are expanded with the request's context by the caller; `id` and `type` stay as
//! they are. Applied to a rendered entity, before compaction (its names are canonical).

use serde_json::Value;

use crate::ngsi::limits::check_name;
use crate::ngsi::ParseError;

/// The entity members that are never expanded with a context.
const CORE_MEMBERS: [&str; 4] = ["id", "type", "createdAt", "modifiedAt"];

/// A `pick` / `omit` projection (both empty: everything is kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Projection {
    pick: Vec<String>,
    omit: Vec<String>,
}

/// The member names of one `pick` or `omit` list, each attribute name expanded with `expand`.
fn members(
    parameter: &str,
    list: &str,
    max: usize,
    expand: &impl Fn(&str) -> String,
) -> Result<Vec<String>, ParseError> {
    let items: Vec<&str> = list.split([',', '|']).map(str::trim).collect();
    if items.len() > max {
        return Err(ParseError::new(format!("more than {max} items in {parameter}")));
    }
    let mut names = Vec::with_capacity(items.len());
    for item in items {
        if item.is_empty() {
            return Err(ParseError::new(format!("{parameter} holds an empty member name")));
        }
        if item.contains(['{', '}']) {
            return Err(ParseError::new(format!(
                "{parameter}: `{item}` projects linked entities, which are not supported (no join)"
            )));
        }
        let name = if CORE_MEMBERS.contains(&item) { item.to_string() } else { expand(item) };
        check_name(parameter, &name)?;
        names.push(name);
    }
    Ok(names)
}

impl Projection {
    /// Reads the `pick` and `omit` parameters (at most `max` names each); a member in both is refused.
    pub fn parse(
        pick: Option<&str>,
        omit: Option<&str>,
        max: usize,
        expand: impl Fn(&str) -> String,
    ) -> Result<Projection, ParseError> {
        let pick = pick.map(|list| members("pick", list, max, &expand)).transpose()?.unwrap_or_default();
        let omit = omit.map(|list| members("omit", list, max, &expand)).transpose()?.unwrap_or_default();
        if let Some(both) = pick.iter().find(|name| omit.contains(name)) {
            return Err(ParseError::new(format!("`{both}` is both picked and omitted")));
        }
        Ok(Projection { pick, omit })
    }

    /// Whether it keeps every member.
    pub fn is_empty(&self) -> bool {
        self.pick.is_empty() && self.omit.is_empty()
    }

    /// The picked members (canonical names).
    pub fn picked(&self) -> &[String] {
        &self.pick
    }

    /// A rendered entity with only the members picked (all when nothing is picked), less the ones omitted.
    pub fn apply(&self, entity: Value) -> Value {
        if self.is_empty() {
            return entity;
        }
        let Value::Object(mut members) = entity else { return entity };
        members.retain(|name, _| (self.pick.is_empty() || self.pick.contains(name)) && !self.omit.contains(name));
        Value::Object(members)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(pick: Option<&str>, omit: Option<&str>) -> Result<Projection, ParseError> {
        Projection::parse(pick, omit, 100, |name| format!("https://e.org/{name}"))
    }

    fn entity() -> Value {
        json!({"id": "urn:a", "type": "Room", "https://e.org/name": {"type": "Property", "value": "Hall"},
            "https://e.org/size": {"type": "Property", "value": 3}})
    }

    #[test]
    fn pick_keeps_only_the_members_named() {
        let id_and_name = parse(Some("id, name"), None).unwrap();
        assert_eq!(id_and_name.picked(), ["id", "https://e.org/name"], "attributes expanded, id as it is");
        assert_eq!(
            id_and_name.apply(entity()),
            json!({"id": "urn:a", "https://e.org/name": {"type": "Property", "value": "Hall"}})
        );
        assert_eq!(parse(Some("type|size"), None).unwrap().apply(entity())["type"], "Room", "| separates too");
        assert_eq!(parse(Some("name"), None).unwrap().apply(entity()).as_object().map(|o| o.len()), Some(1));
    }

    #[test]
    fn omit_removes_the_members_named() {
        assert_eq!(
            parse(None, Some("type,name")).unwrap().apply(entity()),
            json!({"id": "urn:a", "https://e.org/size": {"type": "Property", "value": 3}})
        );
        let both = parse(Some("id,name"), Some("type")).unwrap();
        assert_eq!(both.apply(entity()).as_object().map(|o| o.len()), Some(2), "pick and omit of other members");
        assert_eq!(parse(None, None).unwrap().apply(entity()), entity(), "no projection");
    }

    #[test]
    fn invalid_projections_are_refused() {
        for (pick, omit) in [
            (Some("name"), Some("name")),
            (Some("id"), Some("type,id")),
            (Some(""), None),
            (Some("id,,name"), None),
            (None, Some("name,")),
            (Some("locatedAt{name}"), None),
            (Some("id,locatedAt{name"), None),
            (Some("a\u{1}"), None),
        ] {
            assert!(parse(pick, omit).is_err(), "{pick:?} {omit:?}");
        }
        let many = vec!["a"; 101].join(",");
        assert!(parse(Some(&many), None).is_err());
    }
}
