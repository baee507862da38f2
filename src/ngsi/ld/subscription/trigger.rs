//! `notificationTrigger` (ETSI GS CIM 009 clause 5.2.12): which kinds of change notify an NGSI-LD subscription,
//! how a change of an entity reads as those kinds (entity created / updated / deleted, and per attribute written
//! or removed: created / updated / deleted), and what a notification adds to the entity's state for
//! `showChanges`, `sysAttrs` and deletions ([`LdNotice`]).
//!
//! Absent, the triggers are the spec's default `attributeCreated` + `attributeUpdated`; `entityUpdated` is any
//! attribute created, updated or deleted. `watchedAttributes` narrow every trigger to changes of the attributes
//! they name. The creation of an entity creates each of its attributes and its deletion deletes them (so a
//! default subscription is notified of creations, and an `attributeDeleted` one of deletions); an entity created
//! or deleted with no attribute counts for the attribute triggers when no attribute is watched.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::LdSubscription;
use crate::ngsi::v1::{ContextAttribute, ContextElement};

/// One `notificationTrigger` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `entityCreated`.
    EntityCreated,
    /// `entityUpdated`: any attribute created, updated or deleted.
    EntityUpdated,
    /// `entityDeleted`.
    EntityDeleted,
    /// `attributeCreated`.
    AttributeCreated,
    /// `attributeUpdated`.
    AttributeUpdated,
    /// `attributeDeleted`.
    AttributeDeleted,
}

impl Trigger {
    /// Every trigger, in the spec's order.
    pub const ALL: [Trigger; 6] = [
        Trigger::EntityCreated,
        Trigger::EntityUpdated,
        Trigger::EntityDeleted,
        Trigger::AttributeCreated,
        Trigger::AttributeUpdated,
        Trigger::AttributeDeleted,
    ];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Trigger::EntityCreated => "entityCreated",
            Trigger::EntityUpdated => "entityUpdated",
            Trigger::EntityDeleted => "entityDeleted",
            Trigger::AttributeCreated => "attributeCreated",
            Trigger::AttributeUpdated => "attributeUpdated",
            Trigger::AttributeDeleted => "attributeDeleted",
        }
    }

    /// The trigger of a name.
    pub fn parse(name: &str) -> Option<Trigger> {
        Trigger::ALL.into_iter().find(|trigger| trigger.name() == name)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of triggers, stored and shown as the list of their names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Triggers(u8);

impl Default for Triggers {
    /// The spec's default: `attributeCreated` and `attributeUpdated`.
    fn default() -> Self {
        Triggers::of(&[Trigger::AttributeCreated, Trigger::AttributeUpdated])
    }
}

impl Triggers {
    /// The set of `triggers`.
    pub fn of(triggers: &[Trigger]) -> Self {
        Triggers(triggers.iter().fold(0, |bits, trigger| bits | trigger.bit()))
    }

    /// Whether it holds `trigger`.
    pub fn has(self, trigger: Trigger) -> bool {
        self.0 & trigger.bit() != 0
    }

    /// Its names, in the spec's order.
    pub fn names(self) -> Vec<&'static str> {
        Trigger::ALL.into_iter().filter(|trigger| self.has(*trigger)).map(Trigger::name).collect()
    }

    /// Whether a notification shows the attributes a change deleted (with an NGSI-LD Null value).
    fn shows_deletions(self) -> bool {
        self.has(Trigger::AttributeDeleted) || self.has(Trigger::EntityUpdated)
    }
}

impl Serialize for Triggers {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Triggers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(deserializer)?;
        let triggers = names
            .iter()
            .map(|name| Trigger::parse(name).ok_or_else(|| serde::de::Error::custom(format!("unknown trigger {name}"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Triggers::of(&triggers))
    }
}

/// What happened to one attribute name in a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AttributeEvent {
    Created,
    Updated,
    Deleted,
}

impl AttributeEvent {
    fn trigger(self) -> Trigger {
        match self {
            AttributeEvent::Created => Trigger::AttributeCreated,
            AttributeEvent::Updated => Trigger::AttributeUpdated,
            AttributeEvent::Deleted => Trigger::AttributeDeleted,
        }
    }
}

fn holds(element: Option<&ContextElement>, name: &str) -> bool {
    element.is_some_and(|element| element.attributes.iter().any(|attribute| attribute.name == name))
}

/// A change of one entity as a subscription sees it: its state before (None: created) and after (None:
/// deleted), and the attribute names the write touched.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    /// The entity before.
    pub before: Option<&'a ContextElement>,
    /// The entity after.
    pub after: Option<&'a ContextElement>,
    /// The names written or removed.
    pub touched: &'a [String],
}

impl Change<'_> {
    /// What happened to attribute `name` (touched by the change).
    fn event(&self, name: &str) -> Option<AttributeEvent> {
        match (holds(self.before, name), holds(self.after, name)) {
            (false, true) => Some(AttributeEvent::Created),
            (true, true) => Some(AttributeEvent::Updated),
            (true, false) => Some(AttributeEvent::Deleted),
            (false, false) => None,
        }
    }

    /// The names the change deleted (each once).
    fn deleted(&self) -> impl Iterator<Item = &str> {
        self.touched
            .iter()
            .enumerate()
            .filter(|(index, name)| !self.touched[..*index].contains(name))
            .map(|(_, name)| name.as_str())
            .filter(|name| self.event(name) == Some(AttributeEvent::Deleted))
    }
}

/// What an NGSI-LD notification of one entity adds to the entity's (projected) state: its system times
/// (`sysAttrs`), its deletion time (an entity deletion), the attributes the change deleted (notified with an
/// NGSI-LD Null value) and, for `showChanges`, the previous state of the attributes it updated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LdNotice {
    /// `createdAt` of the entity (ms since the epoch).
    pub created_at: i64,
    /// `modifiedAt` of the entity.
    pub modified_at: i64,
    /// When the change happened, for `deletedAt`.
    pub changed_at: i64,
    /// Whether the entity was deleted (then it is notified with its id, type and `deletedAt`).
    pub entity_deleted: bool,
    /// The attributes the change deleted, as they were, to notify with an NGSI-LD Null value.
    pub deleted: Vec<ContextAttribute>,
    /// `showChanges`: the previous state of the attributes the change updated (a deleted one shows its own).
    pub previous: Vec<ContextAttribute>,
}

impl LdSubscription {
    fn watches(&self, name: &str) -> bool {
        self.watched_attributes.is_empty() || self.watched_attributes.iter().any(|watched| watched == name)
    }

    /// Whether `change` fires one of the subscription's `notificationTrigger`s (`watchedAttributes` applied).
    pub fn is_triggered_by(&self, change: &Change) -> bool {
        let triggers = self.notification_trigger;
        let whole = match (change.before, change.after) {
            (None, Some(_)) => Some((Trigger::EntityCreated, Trigger::AttributeCreated)),
            (Some(_), None) => Some((Trigger::EntityDeleted, Trigger::AttributeDeleted)),
            _ => None,
        };
        if let Some((entity_trigger, attribute_trigger)) = whole {
            // Every attribute touched was created (deleted) with the entity.
            let no_attribute = self.watched_attributes.is_empty() && change.touched.is_empty();
            let watched = change.touched.iter().any(|name| self.watches(name));
            return (triggers.has(entity_trigger) || triggers.has(attribute_trigger)) && (no_attribute || watched);
        }
        change
            .touched
            .iter()
            .filter(|name| self.watches(name))
            .filter_map(|name| change.event(name))
            .any(|event| triggers.has(event.trigger()) || triggers.has(Trigger::EntityUpdated))
    }

    /// What the notification of `change` (which fired the subscription) adds to the entity's state, or None
    /// when nothing: `created_at` / `modified_at` are the entity's, `changed_at` the time of the change.
    pub fn notice(&self, change: &Change, created_at: i64, modified_at: i64, changed_at: i64) -> Option<Box<LdNotice>> {
        let entity_deleted = change.after.is_none();
        let shown = |name: &str| self.attributes.is_empty() || self.attributes.iter().any(|a| a == name);
        let mut deleted = Vec::new();
        if self.show_changes || self.notification_trigger.shows_deletions() {
            for name in change.deleted().filter(|name| self.watches(name) && shown(name)) {
                let before = change.before.map(|element| element.attributes.as_slice()).unwrap_or_default();
                deleted.extend(before.iter().filter(|attribute| attribute.name == name).cloned());
            }
        }
        let mut previous = Vec::new();
        if self.show_changes {
            if let (Some(before), Some(_)) = (change.before, change.after) {
                for (index, name) in change.touched.iter().enumerate() {
                    if change.touched[..index].contains(name)
                        || change.event(name) != Some(AttributeEvent::Updated)
                        || !shown(name)
                    {
                        continue;
                    }
                    previous.extend(before.attributes.iter().filter(|attribute| &attribute.name == name).cloned());
                }
            }
        }
        if !self.sys_attrs && !entity_deleted && deleted.is_empty() && previous.is_empty() {
            return None;
        }
        Some(Box::new(LdNotice { created_at, modified_at, changed_at, entity_deleted, deleted, previous }))
    }

    /// What a notification of an entity's current state (not of a change: periodic notifications) adds to it:
    /// its system times for `sysAttrs`, else nothing.
    pub fn state_notice(&self, created_at: i64, modified_at: i64) -> Option<Box<LdNotice>> {
        self.sys_attrs.then(|| Box::new(LdNotice { created_at, modified_at, ..LdNotice::default() }))
    }
}
