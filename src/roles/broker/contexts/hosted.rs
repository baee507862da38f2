//! The `@context`s clients host on the broker ("Add @context", ETSI GS CIM 009 clause 5.13.2): kept in the
//! broker's store (tree `jsonld_contexts`, one record per id, durable before the 201) and in memory, global to
//! the broker (not per tenant: a context URL names the same context for everyone, as Orion-LD hosts them).
//! At most `context.max_hosted` of them, each at most `context.max_bytes` long (its `@context` as JSON).
//!
//! The resolver ([`super::ContextResolver`]) asks here first for any URL of the shape
//! `http(s)://<any host>/ngsi-ld/v1/jsonldContexts/<id>` ([`hosted_id`]), so a hosted context resolves with no
//! network and no allowlist. Use counters (`numberOfHits`, `lastUsage`) are in memory and restart from zero.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{iso_time, Resolved};
use crate::ngsi::ld::context::hosted::{hosted_id, ContextInfo, ContextKind, CONTEXTS_PATH};
use crate::ngsi::ld::context::remote::{entries, Entry, Merged};
use crate::store::{Store, StoreError, Tree};

/// The store tree of hosted contexts.
const TREE: &str = "jsonld_contexts";

/// Why a context cannot be hosted.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The context is larger than `context.max_bytes`.
    #[error("the @context has {size} bytes, more than context.max_bytes ({limit})")]
    TooLarge {
        /// Its size as JSON.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// `context.max_hosted` contexts are hosted already.
    #[error("the broker hosts at most {0} @contexts (context.max_hosted); delete one first")]
    Full(usize),
    /// The store failed; nothing was hosted.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A hosted context as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostedRecord {
    /// The `@context` as given (an object, or an array of objects and URLs).
    pub context: Value,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

#[derive(Debug)]
struct Held {
    record: HostedRecord,
    /// The context resolved once, when it names no remote context (else it is resolved on each use, so the
    /// contexts it names follow the cache's rules).
    resolved: Option<Arc<Resolved>>,
    hits: u64,
    last_usage: Option<DateTime<Utc>>,
}

impl Held {
    fn new(record: HostedRecord) -> Held {
        let resolved = resolve_inline(&record.context);
        Held { record, resolved, hits: 0, last_usage: None }
    }
}

/// A context made of inline definitions (and core URLs) only, resolved; `None` when it names a remote context.
fn resolve_inline(context: &Value) -> Option<Arc<Resolved>> {
    let mut merged = Merged::default();
    for entry in entries(context).ok()? {
        match entry {
            Entry::Core => {}
            Entry::Inline(object) => merged.add(object).ok()?,
            Entry::Remote(_) => return None,
        }
    }
    Resolved::new(merged.into_value()).ok().map(Arc::new)
}

/// A hosted context to resolve a request with.
#[derive(Debug)]
pub(super) enum HostedUse {
    /// Its resolution, made once (it names no remote context).
    Resolved(Arc<Resolved>),
    /// Its `@context`, to resolve now (it names remote contexts, which follow the cache's rules).
    Document(Value),
}

/// The hosted contexts.
pub struct HostedContexts {
    held: Mutex<HashMap<String, Held>>,
    tree: Tree<HostedRecord>,
    store: Store,
    max_hosted: usize,
    max_bytes: usize,
}

impl std::fmt::Debug for HostedContexts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostedContexts").field("max_hosted", &self.max_hosted).finish_non_exhaustive()
    }
}

impl HostedContexts {
    /// Loads the hosted contexts from `store`; at most `max_hosted` more may be added, each at most `max_bytes`.
    pub fn open(store: &Store, max_hosted: usize, max_bytes: usize) -> Result<HostedContexts, StoreError> {
        let tree = store.tree::<HostedRecord>(TREE)?;
        let mut held = HashMap::new();
        for entry in tree.iter() {
            let (id, record) = entry?;
            held.insert(id, Held::new(record));
        }
        tracing::info!(hosted = held.len(), "hosted @contexts loaded");
        Ok(HostedContexts { held: Mutex::new(held), tree, store: store.clone(), max_hosted, max_bytes })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Hosts a checked `@context` (see `ngsi::ld::context::hosted::parse_add`) under a new id, durably; the id.
    pub async fn add(&self, context: Value) -> Result<String, HostError> {
        let size = serde_json::to_vec(&context).map(|bytes| bytes.len()).unwrap_or(usize::MAX);
        if size > self.max_bytes {
            return Err(HostError::TooLarge { size, limit: self.max_bytes });
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let record = HostedRecord { context, created_at: Utc::now() };
        {
            let mut held = self.lock();
            if held.len() >= self.max_hosted {
                return Err(HostError::Full(self.max_hosted));
            }
            self.tree.insert(&id, &record)?;
            held.insert(id.clone(), Held::new(record));
        }
        if let Err(error) = self.store.commit().await {
            self.lock().remove(&id);
            if let Err(undo) = self.tree.remove(&id) {
                tracing::error!(%undo, context = %id, "cannot undo a hosted @context that was not made durable");
            }
            return Err(error.into());
        }
        tracing::info!(context = %id, bytes = size, "hosting a new @context");
        Ok(id)
    }

    /// The `@context` hosted under `id`.
    pub fn get(&self, id: &str) -> Option<Value> {
        self.lock().get(id).map(|held| held.record.context.clone())
    }

    /// The hosted context a URL names (counted as a use), if it is held here.
    pub(super) fn use_url(&self, url: &str) -> Option<HostedUse> {
        let id = hosted_id(url)?;
        let mut held = self.lock();
        let entry = held.get_mut(id)?;
        entry.hits += 1;
        entry.last_usage = Some(Utc::now());
        Some(match &entry.resolved {
            Some(resolved) => HostedUse::Resolved(resolved.clone()),
            None => HostedUse::Document(entry.record.context.clone()),
        })
    }

    /// Removes the context `id`, durably; whether it was hosted.
    pub async fn remove(&self, id: &str) -> Result<bool, StoreError> {
        if self.lock().remove(id).is_none() {
            return Ok(false);
        }
        self.tree.remove(id)?;
        self.store.commit().await?;
        tracing::info!(context = %id, "hosted @context deleted");
        Ok(true)
    }

    /// The metadata of the context `id`, its URL under `base` (`http://host:port`).
    pub fn info(&self, id: &str, base: &str) -> Option<ContextInfo> {
        self.lock().get(id).map(|held| info(id, held, base))
    }

    /// The metadata of every hosted context, oldest first, their URLs under `base`.
    pub fn infos(&self, base: &str) -> Vec<ContextInfo> {
        let held = self.lock();
        let mut all: Vec<(&String, &Held)> = held.iter().collect();
        all.sort_by(|a, b| (a.1.record.created_at, a.0).cmp(&(b.1.record.created_at, b.0)));
        all.into_iter().map(|(id, held)| info(id, held, base)).collect()
    }
}

/// The URL of the hosted context `id` under `base`.
pub fn hosted_url(base: &str, id: &str) -> String {
    format!("{}{CONTEXTS_PATH}/{id}", base.trim_end_matches('/'))
}

fn info(id: &str, held: &Held, base: &str) -> ContextInfo {
    ContextInfo {
        url: hosted_url(base, id),
        local_id: id.to_string(),
        kind: ContextKind::Hosted,
        timestamp: iso_time(&held.record.created_at),
        last_usage: held.last_usage.as_ref().map(iso_time),
        number_of_hits: Some(held.hits),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn hosted_contexts_are_added_used_listed_and_removed_within_limits() {
        let store = Store::temporary().unwrap();
        let hosted = HostedContexts::open(&store, 2, 64).unwrap();
        let a = hosted.add(json!({"a": "https://e.org/a"})).await.unwrap();
        assert!(crate::ngsi::ld::context::hosted::is_valid_id(&a), "{a}");
        let too_large = hosted.add(json!({"b": "https://e.org/".repeat(10)})).await.unwrap_err();
        assert!(matches!(too_large, HostError::TooLarge { limit: 64, .. }), "{too_large}");
        let b = hosted.add(json!([{"b": "https://e.org/b"}])).await.unwrap();
        assert!(matches!(hosted.add(json!({})).await.unwrap_err(), HostError::Full(2)));

        let url = format!("http://anywhere:1/ngsi-ld/v1/jsonldContexts/{a}");
        let Some(HostedUse::Resolved(resolved)) = hosted.use_url(&url) else { panic!("resolved once, when added") };
        assert_eq!(hosted.get(&a), Some(json!({"a": "https://e.org/a"})));
        assert_eq!(resolved.context.canonical("a"), "https://e.org/a", "resolved once, when added");
        assert!(hosted.use_url("http://anywhere:1/ngsi-ld/v1/jsonldContexts/unknown").is_none());
        let infos = hosted.infos("http://h:1/");
        assert_eq!(infos.len(), 2);
        let first = infos.iter().find(|info| info.local_id == a).unwrap();
        assert_eq!(first.url, format!("http://h:1/ngsi-ld/v1/jsonldContexts/{a}"));
        assert_eq!(
            (first.kind, first.number_of_hits, first.last_usage.is_some()),
            (ContextKind::Hosted, Some(1), true)
        );
        assert_eq!(hosted.info(&b, "http://h:1").unwrap().number_of_hits, Some(0));

        assert!(hosted.remove(&a).await.unwrap());
        assert!(!hosted.remove(&a).await.unwrap());
        assert_eq!(hosted.get(&a), None);
        assert!(hosted.use_url(&url).is_none());
        let remote = hosted.add(json!(["https://e.org/ctx.jsonld"])).await.unwrap();
        let remote_url = format!("http://h{}/{remote}", CONTEXTS_PATH);
        let used = hosted.use_url(&remote_url).unwrap();
        assert!(matches!(used, HostedUse::Document(_)), "naming a remote context: resolved on use");
        assert!(hosted.remove(&remote).await.unwrap());
        hosted.add(json!({})).await.unwrap();
        let reopened = HostedContexts::open(&store, 2, 64).unwrap();
        assert_eq!(reopened.get(&b), Some(json!([{"b": "https://e.org/b"}])));
        assert_eq!(reopened.infos("http://h").len(), 2);
    }
}
