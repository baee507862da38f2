//! The registry of context availability: which provider (broker) holds which entity, with the entity's
//! registered attributes and metadata. Registrations are keyed per provider (`provider`, `entity id`), so two
//! brokers holding the same id are two registrations (FogFlow kept one per id, last writer wins, spec §7.2);
//! an update merges attributes and metadata by name, so a partial registration never drops attributes (§12.3).
//!
//! Durable in the store; knows nothing of HTTP, subscriptions or leases.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::ngsi::v1::{ContextElement, ContextMetadata, EntityId};
use crate::ngsi::v9::{ContextRegistrationAttribute, RegistrationRecord};
use crate::store::{Store, StoreError, Tree};

/// One entity held by one provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Registration {
    /// The entity; `isPattern` only in a named registration (an NGSI-LD `idPattern`, or any id of a type).
    pub entity: EntityId,
    /// Its registered attributes, by name.
    pub attributes: Vec<ContextRegistrationAttribute>,
    /// Its registered metadata (e.g. `location`), by name.
    pub metadata: Vec<ContextMetadata>,
    /// The provider's NGSI10 URL (`…/ngsi10`).
    pub provider: String,
    /// The named registration (`registrationId`) this entry belongs to, when its registrant named one (NGSI-LD
    /// context source registrations do); empty for FogFlow's per-entity registrations.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub registration_id: String,
    /// When a named registration expires (milliseconds since the epoch, from its `duration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

impl Registration {
    /// The registration as an element, for scope matching on its metadata.
    pub fn as_element(&self) -> ContextElement {
        ContextElement {
            entity_id: self.entity.clone(),
            attributes: Vec::new(),
            domain_metadata: self.metadata.clone(),
            extra_types: Vec::new(),
        }
    }

    /// Whether every listed attribute is registered.
    pub fn has_attributes(&self, names: &[String]) -> bool {
        names.iter().all(|name| self.attributes.iter().any(|attribute| &attribute.name == name))
    }

    /// FogFlow's `EntityRegistration` record (`GET /ngsi9/registration/{id}`), with Go field names (and, for a
    /// named registration, its id, pattern flag and expiry).
    pub fn to_fogflow_record(&self) -> RegistrationRecord {
        RegistrationRecord {
            id: self.entity.id.clone(),
            entity_type: self.entity.entity_type.clone(),
            is_pattern: self.entity.is_pattern,
            attributes: self.attributes.iter().map(|a| (a.name.clone(), a.clone())).collect(),
            metadata: self.metadata.iter().map(|m| (m.name.clone(), m.clone())).collect(),
            provider: self.provider.clone(),
            registration_id: self.registration_id.clone(),
            expires_at: self.expires_at,
        }
    }

    fn key(&self) -> String {
        if self.registration_id.is_empty() {
            registration_key(&self.provider, &self.entity.id)
        } else {
            format!("{}\0{}", registration_key(&self.provider, &self.entity.id), self.registration_id)
        }
    }

    /// Merges a newer registration of the same entity and provider into this one.
    fn merged_with(&self, newer: &Registration) -> Registration {
        let mut merged = self.clone();
        if !newer.entity.entity_type.is_empty() {
            merged.entity.entity_type = newer.entity.entity_type.clone();
        }
        for attribute in &newer.attributes {
            match merged.attributes.iter_mut().find(|a| a.name == attribute.name) {
                Some(existing) => *existing = attribute.clone(),
                None => merged.attributes.push(attribute.clone()),
            }
        }
        for item in &newer.metadata {
            match merged.metadata.iter_mut().find(|m| m.name == item.name) {
                Some(existing) => *existing = item.clone(),
                None => merged.metadata.push(item.clone()),
            }
        }
        merged
    }
}

/// Store and map key: provider and entity id separated by NUL (neither may hold control characters); a named
/// registration's entries add its id after another NUL, so two named registrations never overwrite each other.
fn registration_key(provider: &str, entity_id: &str) -> String {
    format!("{provider}\0{entity_id}")
}

/// A change of the registry, for availability notifications.
#[derive(Debug, Clone, PartialEq)]
pub enum RegistryChange {
    /// Created or changed (301).
    Upserted(Registration),
    /// Removed (410).
    Removed(Registration),
}

/// The registry.
#[derive(Clone)]
pub struct Registry {
    entries: Arc<RwLock<BTreeMap<String, Registration>>>,
    /// Serializes writers, so that the map changes only after the store has the change durably.
    writer: Arc<tokio::sync::Mutex<()>>,
    tree: Tree<Registration>,
    store: Store,
}

impl Registry {
    /// Loads every stored registration.
    pub fn open(store: &Store) -> Result<Registry, StoreError> {
        let tree = store.tree::<Registration>("registrations")?;
        let mut entries = BTreeMap::new();
        for entry in tree.iter() {
            let (key, registration) = entry?;
            entries.insert(key, registration);
        }
        Ok(Registry { entries: Arc::new(RwLock::new(entries)), writer: Arc::default(), tree, store: store.clone() })
    }

    /// Number of registrations.
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Creates or merges registrations, durably; returns what actually changed.
    pub async fn upsert(&self, registrations: Vec<Registration>) -> Result<Vec<RegistryChange>, StoreError> {
        let _writer = self.writer.lock().await;
        let mut merged_by_key: Vec<(String, Registration)> = Vec::new();
        {
            let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
            for registration in registrations {
                let key = registration.key();
                let current = merged_by_key.iter().rev().find(|(k, _)| *k == key).map(|(_, r)| r).or(entries.get(&key));
                let merged = match current {
                    Some(existing) => existing.merged_with(&registration),
                    None => registration,
                };
                if current == Some(&merged) {
                    continue;
                }
                self.tree.insert(&key, &merged)?;
                merged_by_key.push((key, merged));
            }
        }
        // Readers see a registration only once it is durable.
        self.store.commit().await?;
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let mut changes = Vec::with_capacity(merged_by_key.len());
        for (key, merged) in merged_by_key {
            entries.insert(key, merged.clone());
            changes.push(RegistryChange::Upserted(merged));
        }
        Ok(changes)
    }

    /// Replaces the entries of the named registration `registration_id` by `registrations` (each carrying that id),
    /// durably: entries no longer listed are removed, the others written whole (not merged). Returns what changed.
    pub async fn replace(
        &self,
        registration_id: &str,
        registrations: Vec<Registration>,
    ) -> Result<Vec<RegistryChange>, StoreError> {
        let _writer = self.writer.lock().await;
        let fresh: BTreeMap<String, Registration> = registrations.into_iter().map(|r| (r.key(), r)).collect();
        let (stale, changed): (Vec<String>, Vec<(String, Registration)>) = {
            let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
            let stale = entries
                .iter()
                .filter(|(key, r)| r.registration_id == registration_id && !fresh.contains_key(*key))
                .map(|(key, _)| key.clone())
                .collect();
            let changed = fresh.into_iter().filter(|(key, r)| entries.get(key) != Some(r)).collect();
            (stale, changed)
        };
        for key in &stale {
            self.tree.remove(key)?;
        }
        for (key, registration) in &changed {
            self.tree.insert(key, registration)?;
        }
        self.store.commit().await?;
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let mut changes: Vec<RegistryChange> =
            stale.iter().filter_map(|key| entries.remove(key)).map(RegistryChange::Removed).collect();
        for (key, registration) in changed {
            entries.insert(key, registration.clone());
            changes.push(RegistryChange::Upserted(registration));
        }
        Ok(changes)
    }

    /// Removes every registration selected by `remove`, durably; returns them.
    pub async fn remove_where(&self, remove: impl Fn(&Registration) -> bool) -> Result<Vec<Registration>, StoreError> {
        let _writer = self.writer.lock().await;
        let keys: Vec<String> = {
            let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
            entries.iter().filter(|(_, r)| remove(r)).map(|(key, _)| key.clone()).collect()
        };
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        for key in &keys {
            self.tree.remove(key)?;
        }
        self.store.commit().await?;
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        Ok(keys.iter().filter_map(|key| entries.remove(key)).collect())
    }

    /// The registrations of one entity id (one per provider).
    pub fn of_entity(&self, entity_id: &str) -> Vec<Registration> {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|r| r.entity.id == entity_id)
            .cloned()
            .collect()
    }

    /// Every registration selected by `keep`, in key order (provider, then id).
    pub fn select(&self, keep: impl Fn(&Registration) -> bool) -> Vec<Registration> {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).values().filter(|r| keep(r)).cloned().collect()
    }

    /// The distinct entity types registered.
    pub fn types(&self) -> BTreeSet<String> {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|r| r.entity.entity_type.clone())
            .filter(|t| !t.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn registration(id: &str, provider: &str, attributes: &[&str]) -> Registration {
        Registration {
            entity: EntityId { id: id.into(), entity_type: "T".into(), is_pattern: false },
            attributes: attributes
                .iter()
                .map(|name| ContextRegistrationAttribute {
                    name: name.to_string(),
                    attribute_type: String::new(),
                    is_domain: false,
                })
                .collect(),
            metadata: vec![ContextMetadata { name: "city".into(), metadata_type: "string".into(), value: json!("x") }],
            provider: provider.into(),
            ..Registration::default()
        }
    }

    #[tokio::test]
    async fn registrations_are_per_provider_merge_attributes_and_report_real_changes_only() {
        let store = Store::temporary().unwrap();
        let registry = Registry::open(&store).unwrap();
        let changes = registry.upsert(vec![registration("e", "http://a/ngsi10", &["t"])]).await.unwrap();
        assert_eq!(changes.len(), 1);
        let changes = registry.upsert(vec![registration("e", "http://a/ngsi10", &["h"])]).await.unwrap();
        let RegistryChange::Upserted(merged) = &changes[0] else { panic!("expected an upsert") };
        assert_eq!(merged.attributes.len(), 2, "a partial registration keeps the other attributes");
        assert!(registry.upsert(vec![registration("e", "http://a/ngsi10", &["t"])]).await.unwrap().is_empty());
        registry.upsert(vec![registration("e", "http://b/ngsi10", &["t"])]).await.unwrap();
        assert_eq!(registry.of_entity("e").len(), 2);
        let removed = registry.remove_where(|r| r.provider == "http://a/ngsi10").await.unwrap();
        assert_eq!(removed.len(), 1);
        assert_eq!(Registry::open(&store).unwrap().len(), 1);
        assert_eq!(merged.to_fogflow_record().attributes["h"].name, "h");
    }

    #[tokio::test]
    async fn a_named_registration_is_replaced_whole() {
        let store = Store::temporary().unwrap();
        let registry = Registry::open(&store).unwrap();
        let named = |id: &str, attributes: &[&str]| Registration {
            registration_id: "csr1".into(),
            ..registration(id, "http://a/ngsi10", attributes)
        };
        registry.upsert(vec![registration("a", "http://a/ngsi10", &["t"])]).await.unwrap();
        let changes = registry.replace("csr1", vec![named("a", &["t"]), named("b", &["t"])]).await.unwrap();
        assert_eq!(changes.len(), 2);
        assert_eq!(registry.len(), 3, "the named entry of `a` does not overwrite the broker's own");
        let changes = registry.replace("csr1", vec![named("a", &["h"])]).await.unwrap();
        assert!(changes.iter().any(|c| matches!(c, RegistryChange::Removed(r) if r.entity.id == "b")));
        let a = registry.select(|r| r.registration_id == "csr1");
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].attributes.len(), 1, "replaced, not merged");
        assert!(registry.replace("csr1", vec![named("a", &["h"])]).await.unwrap().is_empty());
    }
}
