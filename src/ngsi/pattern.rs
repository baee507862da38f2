//! Entity selection: which entities an NGSI10 `entities` list (ids, `isPattern` regexes, types) selects.
//!
//! Id patterns are Rust `regex` expressions matched unanchored, as FogFlow's RE2 and Orion do (`Device.*`
//! matches `Device.temp001`); users who want anchoring write `^…$`. Types are always compared exactly — FogFlow
//! also treated the type as a regex when `isPattern` was set, so `Temperature` matched `Temperature2` (spec §12.21).
//! Pattern length and compiled size are capped, so no pattern can cost unbounded time or memory (B7).

use regex::{Regex, RegexBuilder};

use super::limits::{self, MAX_PATTERN_LEN, MAX_REGEX_SIZE};
use super::v1::EntityId;
use super::ParseError;

/// One compiled [`EntityId`].
#[derive(Debug, Clone)]
pub struct EntityMatcher {
    id: IdMatch,
    entity_type: Option<String>,
}

#[derive(Debug, Clone)]
enum IdMatch {
    Any,
    Exact(String),
    Pattern(Regex),
}

impl EntityMatcher {
    /// Validates and compiles one entity id of a query or subscription.
    pub fn compile(entity: &EntityId) -> Result<Self, ParseError> {
        limits::check_optional_name("entity type", &entity.entity_type)?;
        let id = if entity.is_pattern {
            compile_pattern(&entity.id)?
        } else if entity.id.is_empty() && !entity.entity_type.is_empty() {
            // `{"type":"T"}` without an id selects every entity of that type, as `isPattern` would.
            IdMatch::Any
        } else {
            limits::check_name("entity id", &entity.id)?;
            IdMatch::Exact(entity.id.clone())
        };
        let entity_type = (!entity.entity_type.is_empty()).then(|| entity.entity_type.clone());
        Ok(EntityMatcher { id, entity_type })
    }

    /// Whether an entity with this id and type is selected.
    pub fn matches(&self, id: &str, entity_type: &str) -> bool {
        if let Some(wanted) = &self.entity_type {
            if wanted != entity_type {
                return false;
            }
        }
        match &self.id {
            IdMatch::Any => true,
            IdMatch::Exact(exact) => exact == id,
            IdMatch::Pattern(regex) => regex.is_match(id),
        }
    }

    /// The id, when this matcher selects exactly one id (no pattern).
    pub fn exact_id(&self) -> Option<&str> {
        match &self.id {
            IdMatch::Exact(exact) => Some(exact),
            _ => None,
        }
    }

    /// The type this matcher requires, if any.
    pub fn entity_type(&self) -> Option<&str> {
        self.entity_type.as_deref()
    }
}

/// A list of [`EntityMatcher`]s; an entity is selected when any of them matches.
#[derive(Debug, Clone, Default)]
pub struct EntitySelector {
    matchers: Vec<EntityMatcher>,
}

impl EntitySelector {
    /// Compiles a non-empty `entities` list.
    pub fn compile(entities: &[EntityId]) -> Result<Self, ParseError> {
        if entities.is_empty() {
            return Err(ParseError::new("entities is empty: give at least one entity id, pattern or type"));
        }
        if entities.len() > limits::MAX_ELEMENTS_PER_REQUEST {
            return Err(ParseError::new(format!(
                "{} entities requested, the limit is {}",
                entities.len(),
                limits::MAX_ELEMENTS_PER_REQUEST
            )));
        }
        let matchers = entities.iter().map(EntityMatcher::compile).collect::<Result<_, _>>()?;
        Ok(EntitySelector { matchers })
    }

    /// Whether any matcher selects this entity.
    pub fn matches(&self, id: &str, entity_type: &str) -> bool {
        self.matchers.iter().any(|matcher| matcher.matches(id, entity_type))
    }

    /// Whether some entity of type `entity_type` whose id matches `pattern` may be selected: a matcher must
    /// select the type, and an exact id of it must match the pattern; an id pattern is taken to overlap (whether
    /// two regular expressions share a match is not decided). An invalid `pattern` selects nothing.
    pub fn may_select_pattern(&self, pattern: &str, entity_type: &str) -> bool {
        let Ok(registered) = compile_pattern(pattern) else { return false };
        self.matchers.iter().any(|matcher| {
            matcher.entity_type.as_deref().is_none_or(|wanted| wanted == entity_type)
                && match (&matcher.id, &registered) {
                    (IdMatch::Exact(id), IdMatch::Pattern(regex)) => regex.is_match(id),
                    _ => true,
                }
        })
    }

    /// When every matcher names one exact id, those ids (so a lookup can replace a scan).
    pub fn exact_ids(&self) -> Option<Vec<&str>> {
        self.matchers.iter().map(EntityMatcher::exact_id).collect()
    }

    /// When every matcher requires a type, those types (so only entities of them can be selected).
    pub fn required_types(&self) -> Option<Vec<String>> {
        if self.matchers.is_empty() {
            return None;
        }
        self.matchers.iter().map(|matcher| matcher.entity_type.clone()).collect()
    }

    /// The matchers.
    pub fn matchers(&self) -> &[EntityMatcher] {
        &self.matchers
    }
}

fn compile_pattern(pattern: &str) -> Result<IdMatch, ParseError> {
    if pattern.is_empty() || pattern == ".*" {
        return Ok(IdMatch::Any);
    }
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(ParseError::new(format!(
            "id pattern is {} bytes long, the limit is {MAX_PATTERN_LEN}",
            pattern.len()
        )));
    }
    RegexBuilder::new(pattern)
        .size_limit(MAX_REGEX_SIZE)
        .dfa_size_limit(MAX_REGEX_SIZE)
        .build()
        .map(IdMatch::Pattern)
        .map_err(|error| {
            ParseError::new(format!(
                "id pattern `{pattern}` is not a valid regular expression: {}",
                first_line(&error.to_string())
            ))
        })
}

fn first_line(text: &str) -> String {
    text.lines().rfind(|line| !line.trim().is_empty()).unwrap_or(text).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(id: &str, entity_type: &str, is_pattern: bool) -> EntityId {
        EntityId { id: id.into(), entity_type: entity_type.into(), is_pattern }
    }

    #[test]
    fn patterns_match_unanchored_and_types_exactly() {
        let matcher = EntityMatcher::compile(&entity("Device.*", "", true)).unwrap();
        assert!(matcher.matches("Device.temp001", "Temperature"));
        assert!(matcher.matches("MyDevice.1", "x"));
        let typed = EntityMatcher::compile(&entity("", "Temperature", true)).unwrap();
        assert!(typed.matches("anything", "Temperature"));
        assert!(!typed.matches("anything", "Temperature2"));
        let anchored = EntityMatcher::compile(&entity("^Result[0-9]+$", "", true)).unwrap();
        assert!(anchored.matches("Result12", ""));
        assert!(!anchored.matches("Result12x", ""));
    }

    #[test]
    fn exact_ids_are_listed_for_lookups() {
        let selector = EntitySelector::compile(&[entity("a", "", false), entity("b", "T", false)]).unwrap();
        assert_eq!(selector.exact_ids(), Some(vec!["a", "b"]));
        let mixed = EntitySelector::compile(&[entity("a", "", false), entity("b.*", "", true)]).unwrap();
        assert_eq!(mixed.exact_ids(), None);
    }

    #[test]
    fn required_types_are_listed_only_when_every_matcher_has_one() {
        let typed = EntitySelector::compile(&[entity("a", "T", false), entity(".*", "U", true)]).unwrap();
        assert_eq!(typed.required_types(), Some(vec!["T".to_string(), "U".to_string()]));
        let untyped = EntitySelector::compile(&[entity("a", "T", false), entity("b", "", false)]).unwrap();
        assert_eq!(untyped.required_types(), None);
    }

    #[test]
    fn bad_patterns_and_ids_are_rejected() {
        assert!(EntityMatcher::compile(&entity("*.*", "", true)).is_err());
        assert!(EntityMatcher::compile(&entity(&"a".repeat(2000), "", true)).is_err());
        assert!(EntityMatcher::compile(&entity("(a{1000}){1000}", "", true)).is_err());
        assert!(EntityMatcher::compile(&entity("", "", false)).is_err());
        assert!(EntityMatcher::compile(&entity("", "T", false)).unwrap().matches("any", "T"));
        assert!(EntitySelector::compile(&[]).is_err());
    }
}
