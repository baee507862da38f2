//! The read side of [`Entities`]: lookups, tenant listings, creation-order scans over the type index and NGSI10
//! queries. Reads only the in-memory map and index; never writes or touches the store.

use std::sync::Arc;

use super::element::{has_all_attributes, project};
use super::index;
use super::{entity_key, Entities, QueryPage, StoredEntity};
use crate::ngsi::pattern::EntitySelector;
use crate::ngsi::scope::{keep_nearest, ScopeFilter};
use crate::ngsi::v1::ContextElement;

impl Entities {
    /// One entity.
    pub fn get(&self, tenant: &str, id: &str) -> Option<Arc<StoredEntity>> {
        self.map.get(&entity_key(tenant, id)).map(|entry| entry.value().clone())
    }

    /// Every entity of a tenant, ordered by id.
    pub fn list(&self, tenant: &str) -> Vec<Arc<StoredEntity>> {
        let mut all = self.select(tenant, |_| true);
        all.sort_by(|a, b| a.element.entity_id.id.cmp(&b.element.entity_id.id));
        all
    }

    /// The entities of a tenant that `keep` accepts, in no particular order (filter before sorting).
    pub fn select(&self, tenant: &str, keep: impl Fn(&StoredEntity) -> bool) -> Vec<Arc<StoredEntity>> {
        self.map
            .iter()
            .filter(|entry| entry.value().tenant == tenant && keep(entry.value()))
            .map(|entry| entry.value().clone())
            .collect()
    }

    /// Whether the tenant holds some entity.
    pub fn has_tenant(&self, tenant: &str) -> bool {
        self.index.has_tenant(tenant)
    }

    /// The entities of a tenant that `keep` accepts, in creation order (creation time, ties by id), visiting only
    /// the entities of `types` when given (any of them) and stopping once `stop_after` have been accepted. Use it
    /// instead of [`Entities::select`] when the types are known or only the first page in creation order is
    /// needed: it does not scan the other tenants or types.
    pub fn select_in_creation_order(
        &self,
        tenant: &str,
        types: Option<&[String]>,
        keep: impl Fn(&StoredEntity) -> bool,
        stop_after: Option<usize>,
    ) -> Vec<Arc<StoredEntity>> {
        let Some(types) = types else {
            return self.scan_ordered(tenant, None, &keep, stop_after);
        };
        let mut wanted: Vec<&str> = types.iter().map(String::as_str).collect();
        wanted.sort_unstable();
        wanted.dedup();
        if let [single] = wanted[..] {
            return self.scan_ordered(tenant, Some(single), &keep, stop_after);
        }
        // The first `stop_after` of the types' union are among the first `stop_after` of each; an entity of several
        // of the types is in several sets, and listed once.
        let mut found: Vec<Arc<StoredEntity>> = wanted
            .into_iter()
            .flat_map(|entity_type| self.scan_ordered(tenant, Some(entity_type), &keep, stop_after))
            .collect();
        found.sort_by(|a, b| {
            a.created_at.cmp(&b.created_at).then_with(|| a.element.entity_id.id.cmp(&b.element.entity_id.id))
        });
        found.dedup_by(|a, b| a.created_at == b.created_at && a.element.entity_id.id == b.element.entity_id.id);
        if let Some(stop_after) = stop_after {
            found.truncate(stop_after);
        }
        found
    }

    /// The accepted entities of a tenant (of one type when given) in creation order, at most `stop_after`.
    fn scan_ordered(
        &self,
        tenant: &str,
        entity_type: Option<&str>,
        keep: &impl Fn(&StoredEntity) -> bool,
        stop_after: Option<usize>,
    ) -> Vec<Arc<StoredEntity>> {
        let mut found = Vec::new();
        if stop_after == Some(0) {
            return found;
        }
        let mut cursor: Option<index::Key> = None;
        loop {
            let chunk = self.index.chunk(tenant, entity_type, cursor.as_ref());
            let Some(last) = chunk.last() else { return found };
            cursor = Some(index::key(last));
            for entity in chunk {
                if keep(&entity) {
                    found.push(entity);
                    if stop_after.is_some_and(|stop_after| found.len() >= stop_after) {
                        return found;
                    }
                }
            }
        }
    }

    /// Entities of `tenant` selected by `selector` and `scopes` that have every attribute in `attributes`,
    /// projected to those attributes, ordered by id (or by distance for `nearby`), paged.
    pub fn query(
        &self,
        tenant: &str,
        selector: &EntitySelector,
        scopes: &ScopeFilter,
        attributes: &[String],
        offset: usize,
        limit: usize,
    ) -> QueryPage {
        let candidates: Vec<Arc<StoredEntity>> = match selector.exact_ids() {
            Some(ids) => {
                let mut found: Vec<Arc<StoredEntity>> = Vec::new();
                for id in ids {
                    if let Some(entity) = self.get(tenant, id) {
                        if !found.iter().any(|f| Arc::ptr_eq(f, &entity)) {
                            found.push(entity);
                        }
                    }
                }
                found
            }
            None => match selector.required_types() {
                // Only the entities of the named types, then by id as below.
                Some(types) => {
                    let mut typed = self.select_in_creation_order(tenant, Some(&types), |_| true, None);
                    typed.sort_by(|a, b| a.element.entity_id.id.cmp(&b.element.entity_id.id));
                    typed
                }
                None => self.list(tenant),
            },
        };
        let mut matching: Vec<ContextElement> = candidates
            .iter()
            .filter(|entity| {
                let element = &entity.element;
                selector.matches(&element.entity_id.id, &element.entity_id.entity_type)
                    && has_all_attributes(element, attributes)
                    && scopes.matches(element)
            })
            .map(|entity| project(&entity.element, attributes))
            .collect();
        if let Some((landmark, nearest)) = scopes.nearby() {
            keep_nearest(&mut matching, landmark, nearest, |element| element);
        }
        let total = matching.len();
        let elements = matching.into_iter().skip(offset).take(limit).collect();
        QueryPage { elements, total }
    }
}
