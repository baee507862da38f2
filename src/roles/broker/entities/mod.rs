//! The broker's entities: an in-memory map (the working set every read is served from) backed by the store
//! (the durable copy, written before a write is acknowledged). Applies NGSI10 updates, deletions and queries.
//!
//! Knows nothing of HTTP or subscriptions: it reports each change as an [`EntityChange`] and lets the caller
//! decide whom to notify and what to register.

mod element;
mod index;
mod read;
mod stored;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use serde::Deserialize;

use crate::ngsi::limits::MAX_ATTRIBUTES_PER_ENTITY;
use crate::ngsi::times::{stamp, Edited, EntityTimes, InstanceTimes, Written};
use crate::ngsi::v1::{ContextElement, UpdateAction};
use crate::ngsi::v2::service_path::ROOT;
use crate::ngsi::ParseError;
use crate::store::{Store, StoreError, Tree};

pub use self::element::{has_all_attributes, project};
use self::element::{merge, normalized_new, same_registration, validate_update};
use self::index::Index;

/// An entity as stored: its element plus system timestamps (milliseconds since the Unix epoch), its own and those of
/// each attribute instance (see [`crate::ngsi::times`]).
///
/// Serialized with the element's extra types as a member of its own (see [`stored`]): the element's NGSI10 form
/// does not carry them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "stored::Decoded")]
pub struct StoredEntity {
    /// Tenant (`Fiware-Service`), empty for the default one.
    pub tenant: String,
    /// The entity.
    pub element: ContextElement,
    /// Its NGSIv2 `Fiware-ServicePath` (`/` for entities written through NGSI10 or NGSI-LD, and for those stored
    /// before service paths were kept).
    pub service_path: String,
    /// When it was created.
    pub created_at: i64,
    /// When it last changed.
    pub modified_at: i64,
    /// The times of `element`'s attributes, by index (empty for an entity stored by an older build: its attributes
    /// show the entity's times).
    pub attribute_times: Vec<InstanceTimes>,
}

impl StoredEntity {
    /// Its system times and those of its attribute instances.
    pub fn times(&self) -> EntityTimes<'_> {
        EntityTimes::stored(self.created_at, self.modified_at, &self.element, &self.attribute_times)
    }
}

fn root_path() -> String {
    ROOT.to_string()
}

/// What one element of an update did.
#[derive(Debug, Clone)]
pub struct EntityChange {
    /// The entity before the change (None when created).
    pub before: Option<Arc<StoredEntity>>,
    /// The entity after the change (None when deleted).
    pub after: Option<Arc<StoredEntity>>,
    /// Names of the attributes the update wrote or removed.
    pub touched: Vec<String>,
    /// Whether the entity's registration (type, attribute names, domain metadata) changed.
    pub registration_changed: bool,
}

/// The outcome of one element of an `updateContext`.
#[derive(Debug, Clone)]
pub enum ElementOutcome {
    /// Applied.
    Applied(EntityChange),
    /// The entity (or an attribute to delete) does not exist.
    NotFound(String),
}

/// Why a repository operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The client's input is invalid.
    #[error(transparent)]
    Invalid(#[from] ParseError),
    /// The store failed; nothing was acknowledged.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The entity exists in another NGSIv2 service path than the one the write names (nothing written).
    #[error("entity `{id}` exists in service path {path}")]
    OtherServicePath {
        /// The entity id.
        id: String,
        /// The service path it lives in.
        path: String,
    },
}

/// A page of query results.
#[derive(Debug, Clone, Default)]
pub struct QueryPage {
    /// The elements of the page.
    pub elements: Vec<ContextElement>,
    /// How many matched in all.
    pub total: usize,
}

/// The entity repository.
#[derive(Clone)]
pub struct Entities {
    map: Arc<DashMap<String, Arc<StoredEntity>>>,
    /// The latest creation time handed out: creation times are unique and increasing within the store, so
    /// "creation order" (NGSIv2's and NGSI-LD's default order) is a total order even for entities created in
    /// the same millisecond.
    last_created: Arc<std::sync::atomic::AtomicI64>,
    /// Per tenant, the entities in creation order, overall and per type (see [`index`]).
    index: Arc<Index>,
    tree: Tree<StoredEntity>,
    store: Store,
}

/// The map and store key of an entity: tenant and id separated by NUL (ids cannot hold control characters).
pub fn entity_key(tenant: &str, id: &str) -> String {
    let mut key = String::with_capacity(tenant.len() + id.len() + 1);
    key.push_str(tenant);
    key.push('\0');
    key.push_str(id);
    key
}

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Entities {
    /// Loads every stored entity into memory.
    pub fn open(store: &Store) -> Result<Entities, StoreError> {
        let tree = store.tree::<StoredEntity>("entities")?;
        let map = DashMap::new();
        let index = Index::default();
        let mut last_created = 0;
        for entry in tree.iter() {
            let (key, entity) = entry?;
            last_created = last_created.max(entity.created_at);
            let entity = Arc::new(entity);
            index.put(None, &entity);
            map.insert(key, entity);
        }
        let last_created = Arc::new(std::sync::atomic::AtomicI64::new(last_created));
        Ok(Entities { map: Arc::new(map), last_created, index: Arc::new(index), tree, store: store.clone() })
    }

    /// A creation time for a new entity: `now`, or one millisecond after the previous one when that is later.
    fn next_creation_time(&self, now: i64) -> i64 {
        let previous = self
            .last_created
            .fetch_update(std::sync::atomic::Ordering::SeqCst, std::sync::atomic::Ordering::SeqCst, |last| {
                Some(now.max(last + 1))
            })
            .unwrap_or(now);
        now.max(previous + 1)
    }

    /// Number of entities (all tenants).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Validates every element, then applies them in order and makes the result durable before returning.
    pub async fn apply_update(
        &self,
        tenant: &str,
        elements: &[ContextElement],
        action: UpdateAction,
    ) -> Result<Vec<ElementOutcome>, RepoError> {
        validate_update(elements, action)?;
        if action != UpdateAction::Delete {
            self.check_merged_sizes(tenant, elements)?;
        }
        let mut outcomes = Vec::with_capacity(elements.len());
        for element in elements {
            let outcome = match action {
                UpdateAction::Update | UpdateAction::Append => self.upsert(tenant, element)?,
                UpdateAction::Delete => self.delete_element(tenant, element)?,
            };
            outcomes.push(outcome);
        }
        self.store.commit().await?;
        Ok(outcomes)
    }

    /// Refuses an update that would leave an entity with more than [`MAX_ATTRIBUTES_PER_ENTITY`] attributes,
    /// before anything is applied.
    fn check_merged_sizes(&self, tenant: &str, elements: &[ContextElement]) -> Result<(), ParseError> {
        let new_attributes: usize = elements.iter().map(|element| element.attributes.len()).sum();
        let cannot_exceed = elements.iter().all(|element| {
            let stored = self.map.get(&entity_key(tenant, &element.entity_id.id));
            stored.map_or(0, |entity| entity.element.attributes.len()) + new_attributes <= MAX_ATTRIBUTES_PER_ENTITY
        });
        if cannot_exceed {
            return Ok(());
        }
        let mut names_by_entity: HashMap<&str, HashSet<&str>> = HashMap::new();
        for element in elements {
            let id = element.entity_id.id.as_str();
            let names = names_by_entity.entry(id).or_default();
            names.extend(element.attributes.iter().map(|a| a.name.as_str()));
        }
        for (id, new_names) in names_by_entity {
            let stored = self.get(tenant, id);
            let existing = stored.as_ref().map(|e| e.element.attributes.as_slice()).unwrap_or_default();
            let added = new_names.iter().filter(|name| !existing.iter().any(|a| a.name == **name)).count();
            if existing.len() + added > MAX_ATTRIBUTES_PER_ENTITY {
                return Err(ParseError::new(format!(
                    "entity `{id}` would have {} attributes, the limit is {MAX_ATTRIBUTES_PER_ENTITY}",
                    existing.len() + added
                )));
            }
        }
        Ok(())
    }

    /// Replaces one entity by what `edit` makes of it (given the stored element, or `None` when there is none),
    /// under the entity's lock, validates the result as an update, stores it and makes it durable. `edit` also
    /// returns the attribute names it wrote or removed and the instances it wrote (they are stamped modified now,
    /// see [`stamp`]). `Ok(Err(_))` is `edit`'s refusal, nothing written.
    /// With a `service_path` (NGSIv2 writes), an entity living in another path is not touched
    /// ([`RepoError::OtherServicePath`]) and a new one is created in it; without, an entity keeps its path and a new
    /// one is created in `/`.
    pub async fn edit<E>(
        &self,
        tenant: &str,
        id: &str,
        service_path: Option<&str>,
        edit: impl FnOnce(Option<&ContextElement>) -> Result<Edited, E>,
    ) -> Result<Result<EntityChange, E>, RepoError> {
        let entry = self.map.entry(entity_key(tenant, id));
        // A slot with `created_at == 0` is the placeholder of a creation in progress or failed (see `upsert`).
        let before = match &entry {
            Entry::Occupied(occupied) if occupied.get().created_at != 0 => Some(occupied.get().clone()),
            _ => None,
        };
        if let (Some(path), Some(before)) = (service_path, &before) {
            if before.service_path != path {
                return Err(RepoError::OtherServicePath { id: id.to_string(), path: before.service_path.clone() });
            }
        }
        let Edited { element, touched, written } = match edit(before.as_ref().map(|entity| &entity.element)) {
            Ok(edited) => edited,
            Err(refusal) => return Ok(Err(refusal)),
        };
        validate_update(std::slice::from_ref(&element), UpdateAction::Update)?;
        let registration_changed = before.as_ref().is_none_or(|b| !same_registration(&b.element, &element));
        let now = now_millis();
        let path = match &before {
            Some(before) => before.service_path.clone(),
            None => service_path.unwrap_or(ROOT).to_string(),
        };
        let attribute_times = stamp(before.as_ref().map(|b| b.times()).as_ref(), &element, &touched, &written, now);
        let stored = Arc::new(StoredEntity {
            tenant: tenant.to_string(),
            element,
            service_path: path,
            created_at: before.as_ref().map_or_else(|| self.next_creation_time(now), |b| b.created_at),
            modified_at: now,
            attribute_times,
        });
        self.tree.insert(entry.key(), &stored)?;
        match entry {
            Entry::Occupied(mut occupied) => {
                occupied.insert(stored.clone());
                self.index.put(before.as_deref(), &stored);
            }
            Entry::Vacant(vacant) => {
                // Still under the entry's lock: the index changes with the map.
                let _slot = vacant.insert(stored.clone());
                self.index.put(before.as_deref(), &stored);
            }
        }
        let change = EntityChange { before, after: Some(stored), touched, registration_changed };
        self.store.commit().await?;
        Ok(Ok(change))
    }

    /// Deletes one entity and makes that durable; None when it did not exist.
    pub async fn delete(&self, tenant: &str, id: &str) -> Result<Option<EntityChange>, RepoError> {
        let element = ContextElement {
            entity_id: crate::ngsi::v1::EntityId { id: id.into(), ..Default::default() },
            ..Default::default()
        };
        let outcome = self.delete_element(tenant, &element)?;
        self.store.commit().await?;
        Ok(match outcome {
            ElementOutcome::Applied(change) => Some(change),
            ElementOutcome::NotFound(_) => None,
        })
    }

    fn upsert(&self, tenant: &str, element: &ContextElement) -> Result<ElementOutcome, StoreError> {
        let key = entity_key(tenant, &element.entity_id.id);
        let now = now_millis();
        let mut slot = self.map.entry(key.clone()).or_insert_with(|| {
            Arc::new(StoredEntity {
                tenant: tenant.to_string(),
                element: ContextElement::default(),
                service_path: ROOT.to_string(),
                created_at: 0,
                modified_at: 0,
                attribute_times: Vec::new(),
            })
        });
        let existing = slot.value().clone();
        let before = (existing.created_at != 0).then(|| existing.clone());
        let (merged, registration_changed) = match &before {
            Some(before) => merge(&before.element, element),
            None => (normalized_new(element), true),
        };
        let attribute_times = match &before {
            // `merge` writes the first attribute of each name of the update.
            Some(before) => {
                let written = element
                    .attributes
                    .iter()
                    .filter_map(|update| merged.attributes.iter().position(|a| a.name == update.name))
                    .collect();
                stamp(Some(&before.times()), &merged, &[], &Written::Instances(written), now)
            }
            None => stamp(None, &merged, &[], &Written::All, now),
        };
        let stored = Arc::new(StoredEntity {
            tenant: tenant.to_string(),
            element: merged,
            service_path: before.as_ref().map_or_else(root_path, |b| b.service_path.clone()),
            created_at: before.as_ref().map_or_else(|| self.next_creation_time(now), |b| b.created_at),
            modified_at: now,
            attribute_times,
        });
        if let Err(error) = self.tree.insert(&key, &stored) {
            if before.is_none() {
                drop(slot);
                self.map.remove(&key);
            }
            return Err(error);
        }
        *slot.value_mut() = stored.clone();
        self.index.put(before.as_deref(), &stored);
        drop(slot);
        let touched = element.attributes.iter().map(|a| a.name.clone()).collect();
        Ok(ElementOutcome::Applied(EntityChange { before, after: Some(stored), touched, registration_changed }))
    }

    fn delete_element(&self, tenant: &str, element: &ContextElement) -> Result<ElementOutcome, StoreError> {
        let id = &element.entity_id.id;
        let key = entity_key(tenant, id);
        if element.attributes.is_empty() {
            let Some(before) = self.map.get(&key).map(|entry| entry.value().clone()) else {
                return Ok(ElementOutcome::NotFound(format!("entity `{id}` does not exist")));
            };
            self.tree.remove(&key)?;
            if let Entry::Occupied(occupied) = self.map.entry(key) {
                let removed = occupied.remove();
                self.index.remove(&removed);
            }
            let touched = before.element.attributes.iter().map(|a| a.name.clone()).collect();
            return Ok(ElementOutcome::Applied(EntityChange {
                before: Some(before),
                after: None,
                touched,
                registration_changed: true,
            }));
        }
        let Some(mut slot) = self.map.get_mut(&key) else {
            return Ok(ElementOutcome::NotFound(format!("entity `{id}` does not exist")));
        };
        let before = slot.value().clone();
        let names: Vec<&str> = element.attributes.iter().map(|a| a.name.as_str()).collect();
        if let Some(missing) = names.iter().find(|name| !before.element.attributes.iter().any(|a| a.name == **name)) {
            return Ok(ElementOutcome::NotFound(format!("entity `{id}` has no attribute `{missing}`")));
        }
        let mut remaining = before.element.clone();
        remaining.attributes.retain(|attribute| !names.contains(&attribute.name.as_str()));
        let now = now_millis();
        let attribute_times = stamp(Some(&before.times()), &remaining, &[], &Written::Instances(Vec::new()), now);
        let stored = Arc::new(StoredEntity {
            tenant: tenant.to_string(),
            element: remaining,
            service_path: before.service_path.clone(),
            created_at: before.created_at,
            modified_at: now,
            attribute_times,
        });
        self.tree.insert(&key, &stored)?;
        *slot.value_mut() = stored.clone();
        self.index.put(Some(&before), &stored);
        drop(slot);
        let touched = names.iter().map(|name| name.to_string()).collect();
        Ok(ElementOutcome::Applied(EntityChange {
            before: Some(before),
            after: Some(stored),
            touched,
            registration_changed: true,
        }))
    }
}

#[cfg(test)]
mod tests;
