//! System times of attribute instances (ETSI GS CIM 009 clause 4.8 `createdAt`/`modifiedAt` of Properties and
//! Relationships; Orion's `dateCreated`/`dateModified` attribute metadata): what an edit wrote ([`Written`]), how a
//! write changes the times of an element's instances ([`stamp`]), and the times of an instance as rendered
//! ([`EntityTimes`]). Times are milliseconds since the Unix epoch.
//!
//! An instance is an attribute, or one `datasetId` instance of a multi-attribute ([`same_instance`]). It keeps its
//! `createdAt` as long as it exists, across every write of it, including an overwrite by append or a replace of the
//! whole entity that still holds it (clause 5.6.18 keeps `createdAt`); its `modifiedAt` is its last write. An
//! instance deleted and written again is new. Sub-properties have no times of their own. An element stored without
//! times (an older build) shows its entity's times for every instance. Pure: no I/O.

use serde::{Deserialize, Serialize};

use super::ld::multi::same_instance;
use super::v1::{ContextAttribute, ContextElement};

/// When an attribute instance was first written and last written; stored compactly as `[created, modified]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "[i64; 2]", into = "[i64; 2]")]
pub struct InstanceTimes {
    /// When the instance was first written.
    pub created_at: i64,
    /// When it was last written.
    pub modified_at: i64,
}

impl From<[i64; 2]> for InstanceTimes {
    fn from([created_at, modified_at]: [i64; 2]) -> Self {
        InstanceTimes { created_at, modified_at }
    }
}

impl From<InstanceTimes> for [i64; 2] {
    fn from(times: InstanceTimes) -> Self {
        [times.created_at, times.modified_at]
    }
}

/// Which instances of the element after an edit the edit wrote (the others were only kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Every instance (a creation or a replacement of the whole entity).
    All,
    /// Every instance whose name the edit names as touched (edits by attribute name, as NGSIv2's).
    Touched,
    /// The instances at these indices of the element's attributes.
    Instances(Vec<usize>),
}

/// What an edit made of an entity: the new element, the attribute names it wrote or removed, and which of the
/// element's instances it wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Edited {
    /// The element after the edit.
    pub element: ContextElement,
    /// The attribute names written or removed.
    pub touched: Vec<String>,
    /// The instances of `element` written.
    pub written: Written,
}

impl Edited {
    /// An edit by attribute name: every instance of a touched name was written.
    pub fn by_name((element, touched): (ContextElement, Vec<String>)) -> Self {
        Edited { element, touched, written: Written::Touched }
    }
}

/// The system times of an entity and of the instances of its stored element, for rendering and for [`stamp`].
#[derive(Debug, Clone, Copy, Default)]
pub struct EntityTimes<'a> {
    /// When the entity was created.
    pub created_at: i64,
    /// When it last changed.
    pub modified_at: i64,
    /// The stored element (none: every instance shows the entity's times).
    element: Option<&'a ContextElement>,
    /// The times of `element`'s attributes, by index; empty when it has none (stored by an older build).
    attributes: &'a [InstanceTimes],
}

impl<'a> EntityTimes<'a> {
    /// Only the entity's times: every instance shows them.
    pub fn entity(created_at: i64, modified_at: i64) -> Self {
        EntityTimes { created_at, modified_at, element: None, attributes: &[] }
    }

    /// The times of a stored entity: `attributes` are those of `element`'s attributes, by index (when they are not,
    /// as for an entity stored by an older build without them, every instance shows the entity's times).
    pub fn stored(
        created_at: i64,
        modified_at: i64,
        element: &'a ContextElement,
        attributes: &'a [InstanceTimes],
    ) -> Self {
        let attributes = if element.attributes.len() == attributes.len() { attributes } else { &[] };
        EntityTimes { created_at, modified_at, element: Some(element), attributes }
    }

    fn of_entity(&self) -> InstanceTimes {
        InstanceTimes { created_at: self.created_at, modified_at: self.modified_at }
    }

    /// Where the stored element holds the instance `attribute` (found at `index` of the element rendered or
    /// written: `index` is tried first, where it is when that element is the stored one or an edit of it).
    fn position(&self, index: usize, attribute: &ContextAttribute) -> Option<usize> {
        let stored = &self.element?.attributes;
        match stored.get(index) {
            Some(at_index) if same_instance(at_index, attribute) => Some(index),
            _ => stored.iter().position(|candidate| same_instance(candidate, attribute)),
        }
    }

    /// The times of the stored instance at `position` (the entity's when there are no instance times).
    fn at(&self, position: usize) -> InstanceTimes {
        self.attributes.get(position).copied().unwrap_or_else(|| self.of_entity())
    }

    /// The times of `attribute`, the instance at `index` of the element rendered (the stored element, or a
    /// projection of it): those of the same instance of the stored element, else the entity's (an attribute
    /// derived from domain metadata, or an element stored without instance times).
    pub fn of(&self, index: usize, attribute: &ContextAttribute) -> InstanceTimes {
        match self.position(index, attribute) {
            Some(position) => self.at(position),
            None => self.of_entity(),
        }
    }
}

/// The times of the instances of `after` (by index) once an edit of the entity `before` (none: a creation) wrote
/// the `written` ones at `now`: a written instance is modified `now` and keeps the creation time it had before
/// (`now` when it is new); an instance not written keeps its times. `touched` are the edit's touched names (for
/// [`Written::Touched`]).
pub fn stamp(
    before: Option<&EntityTimes<'_>>,
    after: &ContextElement,
    touched: &[String],
    written: &Written,
    now: i64,
) -> Vec<InstanceTimes> {
    let mut times = Vec::with_capacity(after.attributes.len());
    for (index, attribute) in after.attributes.iter().enumerate() {
        let is_written = match written {
            Written::All => true,
            Written::Touched => touched.contains(&attribute.name),
            Written::Instances(indices) => indices.contains(&index),
        };
        let existing = before.and_then(|before| Some(before.at(before.position(index, attribute)?)));
        times.push(match existing {
            Some(kept) if !is_written => kept,
            Some(kept) => InstanceTimes { created_at: kept.created_at, modified_at: now },
            None => InstanceTimes { created_at: now, modified_at: now },
        });
    }
    times
}

#[cfg(test)]
mod tests;
