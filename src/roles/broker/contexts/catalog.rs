//! What the @context management API (ETSI GS CIM 009 clause 5.13) sees of the resolver: the contexts of kind
//! `Cached` — the core context (embedded, local id [`CORE_LOCAL_ID`], never deleted), the `context.preload`
//! contexts (from the configuration, never deleted) and the fetched contexts in the cache (until their TTL) —
//! with their metadata, and deleting (evicting) or reloading (fetching again) a fetched one. Hosted contexts are
//! in [`super::hosted`].

use super::{iso_time, ContextResolver};
use crate::ngsi::ld::context::hosted::{ContextInfo, ContextKind};
use crate::ngsi::ld::context::{is_core_context, ContextError, CORE_CONTEXT_URL};

/// The local id of the core context.
pub const CORE_LOCAL_ID: &str = "core";

/// A context of kind `Cached`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CachedContext {
    /// The NGSI-LD core context (embedded).
    Core,
    /// A `context.preload` context, by URL.
    Preloaded(String),
    /// A fetched context in the cache, by URL.
    Fetched(String),
}

/// The local id of a cached context URL: `cached-` and a 64-bit FNV-1a hash of the URL in hex (stable, URL-safe;
/// the URL itself is accepted too wherever a local id is).
pub fn cached_local_id(url: &str) -> String {
    let hash = url
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3));
    format!("cached-{hash:016x}")
}

impl ContextResolver {
    /// The metadata of every context of kind `Cached`: the core context, the preloaded ones, then the fetched
    /// ones still fresh (each in URL order).
    pub fn cached_infos(&self) -> Vec<ContextInfo> {
        let mut infos = vec![self.cached_info(&CachedContext::Core)];
        let mut preloaded: Vec<&String> = self.preload.keys().collect();
        preloaded.sort();
        infos.extend(preloaded.into_iter().map(|url| self.cached_info(&CachedContext::Preloaded(url.clone()))));
        let mut fetched: Vec<String> = {
            let cache = self.lock_cache();
            cache
                .iter()
                .filter(|(url, cached)| cached.at.elapsed() < self.ttl && !self.preload.contains_key(*url))
                .map(|(url, _)| url.clone())
                .collect()
        };
        fetched.sort();
        infos.extend(fetched.into_iter().map(|url| self.cached_info(&CachedContext::Fetched(url))));
        infos
    }

    /// The cached context whose local id or URL is `id`.
    pub fn find_cached(&self, id: &str) -> Option<CachedContext> {
        if id == CORE_LOCAL_ID || is_core_context(id) {
            return Some(CachedContext::Core);
        }
        if let Some(url) = self.preload.keys().find(|url| url.as_str() == id || cached_local_id(url) == id) {
            return Some(CachedContext::Preloaded(url.clone()));
        }
        let cache = self.lock_cache();
        cache
            .iter()
            .find(|(url, cached)| cached.at.elapsed() < self.ttl && (url.as_str() == id || cached_local_id(url) == id))
            .map(|(url, _)| CachedContext::Fetched(url.clone()))
    }

    /// The metadata of a cached context.
    pub fn cached_info(&self, context: &CachedContext) -> ContextInfo {
        let url = match context {
            CachedContext::Core => CORE_CONTEXT_URL,
            CachedContext::Preloaded(url) | CachedContext::Fetched(url) => url.as_str(),
        };
        let local_id = if *context == CachedContext::Core { CORE_LOCAL_ID.to_string() } else { cached_local_id(url) };
        let cache = self.lock_cache();
        let entry = cache.get(url);
        ContextInfo {
            url: url.to_string(),
            local_id,
            kind: ContextKind::Cached,
            timestamp: iso_time(entry.map_or(&self.started, |cached| &cached.stored)),
            last_usage: entry.and_then(|cached| cached.last_usage.as_ref()).map(iso_time),
            number_of_hits: entry.map(|cached| cached.hits),
        }
    }

    /// Drops a fetched context from the cache (the next request naming it fetches it again); whether it was there.
    pub fn evict(&self, url: &str) -> bool {
        self.lock_cache().remove(url).is_some()
    }

    /// Drops a fetched context from the cache and fetches it again now (clause 5.13.5, `reload=true`).
    pub async fn reload(&self, url: &str) -> Result<(), ContextError> {
        self.evict(url);
        self.top(url).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;

    use super::*;
    use crate::config::ContextConfig;

    #[tokio::test]
    async fn cached_contexts_are_listed_found_and_evicted() {
        let dir = tempfile::tempdir().unwrap();
        let file: PathBuf = dir.path().join("p.jsonld");
        std::fs::write(&file, json!({"@context": {"a": "https://e.org/a"}}).to_string()).unwrap();
        let preloaded = "https://example.org/p.jsonld";
        let mut config = ContextConfig::default();
        config.preload.insert(preloaded.to_string(), file);
        let contexts = ContextResolver::new(&config).unwrap();

        let infos = contexts.cached_infos();
        let urls: Vec<&str> = infos.iter().map(|info| info.url.as_str()).collect();
        assert_eq!(urls, [CORE_CONTEXT_URL, preloaded]);
        assert_eq!((infos[0].local_id.as_str(), infos[0].number_of_hits), (CORE_LOCAL_ID, None));
        contexts.link(preloaded).await.unwrap();
        contexts.link(preloaded).await.unwrap();
        let info = contexts.cached_info(&CachedContext::Preloaded(preloaded.into()));
        assert_eq!((info.kind, info.number_of_hits, info.last_usage.is_some()), (ContextKind::Cached, Some(2), true));
        assert_eq!(contexts.cached_infos().len(), 2, "a preloaded context in the cache is listed once");

        assert_eq!(contexts.find_cached("core"), Some(CachedContext::Core));
        assert_eq!(contexts.find_cached(CORE_CONTEXT_URL), Some(CachedContext::Core));
        assert_eq!(contexts.find_cached(preloaded), Some(CachedContext::Preloaded(preloaded.into())));
        assert_eq!(contexts.find_cached(&cached_local_id(preloaded)), Some(CachedContext::Preloaded(preloaded.into())));
        assert_eq!(contexts.find_cached("cached-0000000000000000"), None);
        assert!(contexts.evict(preloaded));
        assert!(!contexts.evict(preloaded));
        contexts.reload(preloaded).await.unwrap();
        assert_eq!(contexts.cached_info(&CachedContext::Preloaded(preloaded.into())).number_of_hits, Some(1));
        let unknown = contexts.reload("https://example.org/unknown.jsonld").await.unwrap_err();
        assert!(matches!(unknown, ContextError::NotAvailable { .. }), "{unknown:?}");
        assert_ne!(cached_local_id("a"), cached_local_id("b"));
        assert!(crate::ngsi::ld::context::hosted::is_valid_id(&cached_local_id("a")));
    }
}
