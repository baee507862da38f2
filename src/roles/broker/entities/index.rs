//! The secondary index of the entity repository: per tenant, every entity in creation order and, per entity type,
//! the entities of that type in creation order, so a query naming types (or paging in creation order) visits
//! only those and can stop once it has a page. An entity with several types is under each of them.
//!
//! It holds the same `Arc`s as the map and is updated by the repository while it holds the entity's map entry
//! (shard) lock, right after the map, so once a write returns the index and the map agree. Lock order is always
//! map shard, then index; readers take only the index lock, and only long enough to copy out a chunk of `Arc`s,
//! so they never wait on a shard while holding it and a long scan does not block writers.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, PoisonError, RwLock};

use super::StoredEntity;

/// Creation order: creation time, ties by id (creation times are unique, but entities stored by older versions
/// may share one).
pub(super) type Key = (i64, String);

type Ordered = BTreeMap<Key, Arc<StoredEntity>>;

/// How many entities a reader copies out per hold of the lock.
const CHUNK: usize = 256;

#[derive(Default)]
struct TenantIndex {
    all: Ordered,
    by_type: HashMap<String, Ordered>,
}

/// The index of every tenant.
#[derive(Default)]
pub(super) struct Index {
    tenants: RwLock<HashMap<String, TenantIndex>>,
}

pub(super) fn key(entity: &StoredEntity) -> Key {
    (entity.created_at, entity.element.entity_id.id.clone())
}

impl Index {
    /// Records `after`, replacing `before` (the same entity before the write) when given. An entity that keeps
    /// its place (tenant, creation time, id and types: any update that does not change the types) is swapped in
    /// place, without reordering or allocating.
    pub(super) fn put(&self, before: Option<&StoredEntity>, after: &Arc<StoredEntity>) {
        let mut tenants = self.tenants.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(before) = before {
            if same_place(before, after) && replace_in(&mut tenants, after) {
                return;
            }
            remove_from(&mut tenants, before);
        }
        let tenant = tenants.entry(after.tenant.clone()).or_default();
        let key = key(after);
        for entity_type in after.element.types() {
            tenant.by_type.entry(entity_type.to_string()).or_default().insert(key.clone(), after.clone());
        }
        tenant.all.insert(key, after.clone());
    }

    /// Forgets `entity`.
    pub(super) fn remove(&self, entity: &StoredEntity) {
        let mut tenants = self.tenants.write().unwrap_or_else(PoisonError::into_inner);
        remove_from(&mut tenants, entity);
    }

    /// Whether the tenant holds some entity.
    pub(super) fn has_tenant(&self, tenant: &str) -> bool {
        let tenants = self.tenants.read().unwrap_or_else(PoisonError::into_inner);
        tenants.get(tenant).is_some_and(|index| !index.all.is_empty())
    }

    /// Up to [`CHUNK`] entities of `tenant` (of `entity_type` when given) that come after `after` in creation
    /// order, in that order.
    pub(super) fn chunk(&self, tenant: &str, entity_type: Option<&str>, after: Option<&Key>) -> Vec<Arc<StoredEntity>> {
        let tenants = self.tenants.read().unwrap_or_else(PoisonError::into_inner);
        let Some(index) = tenants.get(tenant) else { return Vec::new() };
        let ordered = match entity_type {
            Some(entity_type) => match index.by_type.get(entity_type) {
                Some(ordered) => ordered,
                None => return Vec::new(),
            },
            None => &index.all,
        };
        let start = match after {
            Some(after) => Bound::Excluded(after),
            None => Bound::Unbounded,
        };
        ordered.range::<Key, _>((start, Bound::Unbounded)).take(CHUNK).map(|(_, entity)| entity.clone()).collect()
    }

    /// Number of entities indexed for `tenant` (all types), for tests.
    #[cfg(test)]
    pub(super) fn len(&self, tenant: &str) -> usize {
        let tenants = self.tenants.read().unwrap_or_else(PoisonError::into_inner);
        tenants.get(tenant).map_or(0, |index| index.all.len())
    }

    /// Number of entities indexed under `entity_type` for `tenant`, for tests.
    #[cfg(test)]
    pub(super) fn type_len(&self, tenant: &str, entity_type: &str) -> usize {
        let tenants = self.tenants.read().unwrap_or_else(PoisonError::into_inner);
        tenants.get(tenant).and_then(|index| index.by_type.get(entity_type)).map_or(0, BTreeMap::len)
    }
}

/// Whether two versions of an entity sit at the same place in the index.
fn same_place(before: &StoredEntity, after: &StoredEntity) -> bool {
    before.created_at == after.created_at
        && before.tenant == after.tenant
        && before.element.entity_id.id == after.element.entity_id.id
        && before.element.entity_id.entity_type == after.element.entity_id.entity_type
        && before.element.extra_types == after.element.extra_types
}

/// Swaps `entity` in for the version at its place; false (nothing changed) when that place is not indexed.
fn replace_in(tenants: &mut HashMap<String, TenantIndex>, entity: &Arc<StoredEntity>) -> bool {
    let Some(index) = tenants.get_mut(&entity.tenant) else { return false };
    let key = key(entity);
    let indexed = |index: &TenantIndex| {
        index.all.contains_key(&key)
            && entity.element.types().all(|t| index.by_type.get(t).is_some_and(|typed| typed.contains_key(&key)))
    };
    if !indexed(index) {
        return false;
    }
    for entity_type in entity.element.types() {
        if let Some(in_type) = index.by_type.get_mut(entity_type).and_then(|typed| typed.get_mut(&key)) {
            *in_type = entity.clone();
        }
    }
    if let Some(in_all) = index.all.get_mut(&key) {
        *in_all = entity.clone();
    }
    true
}

fn remove_from(tenants: &mut HashMap<String, TenantIndex>, entity: &StoredEntity) {
    let Some(index) = tenants.get_mut(&entity.tenant) else { return };
    let key = key(entity);
    index.all.remove(&key);
    for entity_type in entity.element.types() {
        if let Some(ordered) = index.by_type.get_mut(entity_type) {
            ordered.remove(&key);
            if ordered.is_empty() {
                index.by_type.remove(entity_type);
            }
        }
    }
    if index.all.is_empty() {
        tenants.remove(&entity.tenant);
    }
}
