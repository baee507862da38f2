//! The broker's JSON-LD `@context` resolver (ETSI GS CIM 009 clause 5.5.7): turns the `@context` of an NGSI-LD
//! request (a `Link` header URL, or a body `@context` mixing URLs and inline objects) into a [`Context`] for
//! expansion and compaction, and into an inline equivalent that subscriptions store (so notifying never fetches).
//!
//! Owns all the I/O of context handling: the core context URLs resolve to the embedded copy with no network;
//! the URL of a context hosted here (`…/ngsi-ld/v1/jsonldContexts/<id>`, any host; [`hosted`]) resolves from the
//! broker's store with no network and no allowlist; another URL resolves from `context.preload` (files read at
//! start-up), else from the in-memory cache (bounded, with a TTL), else by a fetch — only if the URL starts with a
//! `context.allowlist` prefix (empty by default: nothing is fetched), `http://` or `https://` (certificates
//! verified against the system roots and `tls.ca_file`; at most [`MAX_REDIRECTS`] redirects, each target
//! allowlisted too), capped in size and time (each hop), one fetch for concurrent requests of the same URL. Nested
//! remote contexts resolve the same way, at most [`MAX_DEPTH`] deep. Anything that fails is
//! [`ContextError::NotAvailable`] naming the URL and the reason (`LdContextNotAvailable` 503); never a panic.
//! Parsing and merging are pure, in [`crate::ngsi::ld::context`]; this module must not know HTTP routes or
//! entities. What the @context management API lists and deletes of the cache is in [`catalog`].

pub mod catalog;
pub mod hosted;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use http::{HeaderMap, HeaderValue};
use serde_json::Value;
use tokio::sync::OnceCell;

use self::hosted::{HostedContexts, HostedUse};
use crate::clients::http_client::{HttpClient, OutboundError, OutboundResponse};
use crate::config::ContextConfig;
use crate::ngsi::ld::context::remote::{document_context, entries, Entry, Merged};
use crate::ngsi::ld::context::{is_core_context, Compactor, Context, ContextError};

/// Deepest chain of remote contexts naming remote contexts.
pub const MAX_DEPTH: usize = 4;
/// Most redirects one context fetch follows (each target must be allowed like the first URL).
pub const MAX_REDIRECTS: usize = 5;

/// Why the resolver cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ContextSetupError {
    /// A `context.preload` file cannot be used.
    #[error("context.preload file {file} (for {url}): {reason}")]
    Preload {
        /// The context URL.
        url: String,
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
}

/// A remote context resolved: its definitions merged into one inline object, and what is built from them.
#[derive(Debug)]
struct Resolved {
    inline: Arc<Value>,
    context: Context,
    compactor: Arc<Compactor>,
}

impl Resolved {
    fn new(inline: Value) -> Result<Resolved, ContextError> {
        let context = Context::from_body(&inline)?;
        let compactor = Arc::new(context.compactor());
        Ok(Resolved { inline: Arc::new(inline), context, compactor })
    }
}

/// The context of one request.
#[derive(Debug, Clone)]
pub struct LdContext {
    /// The context, for expansion.
    pub context: Context,
    /// The `@context` with no remote URL left (null: the core context), as a subscription stores it.
    pub inline: Arc<Value>,
    /// The `@context` as written when it named remote contexts (a `Link` URL, a body `@context`), else null.
    pub written: Value,
    compactor: Option<Arc<Compactor>>,
}

impl std::ops::Deref for LdContext {
    type Target = Context;

    fn deref(&self) -> &Context {
        &self.context
    }
}

impl LdContext {
    /// The core context alone (shared: no allocation per request).
    pub fn core() -> LdContext {
        static CORE: std::sync::OnceLock<LdContext> = std::sync::OnceLock::new();
        CORE.get_or_init(|| LdContext {
            context: Context::core(),
            inline: Arc::new(Value::Null),
            written: Value::Null,
            compactor: None,
        })
        .clone()
    }

    /// The remote context URL that names this context in a `Link` header (`None`: the core context, or a
    /// context that no single URL names).
    pub fn link_url(&self) -> Option<&str> {
        self.written.as_str()
    }

    /// The compactor of this context's user terms.
    pub fn compactor(&self) -> Arc<Compactor> {
        match &self.compactor {
            Some(compactor) => compactor.clone(),
            None => Arc::new(self.context.compactor()),
        }
    }
}

struct Cached {
    resolved: Arc<Resolved>,
    at: Instant,
    /// When it was stored, for the @context management API.
    stored: DateTime<Utc>,
    /// Requests it resolved since it was stored.
    hits: u64,
    /// When it last resolved a request.
    last_usage: Option<DateTime<Utc>>,
}

type Pending = Arc<OnceCell<Result<Arc<Resolved>, ContextError>>>;

/// Resolves request contexts; shared by the broker's handlers.
pub struct ContextResolver {
    allowlist: Vec<String>,
    preload: HashMap<String, Value>,
    max_bytes: usize,
    ttl: Duration,
    cache_entries: usize,
    cache: Mutex<HashMap<String, Cached>>,
    pending: Mutex<HashMap<String, Pending>>,
    client: HttpClient,
    hosted: Option<Arc<HostedContexts>>,
    started: DateTime<Utc>,
}

impl std::fmt::Debug for ContextResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextResolver").field("allowlist", &self.allowlist).finish_non_exhaustive()
    }
}

/// A time as the @context management API shows it (ISO 8601 UTC, milliseconds).
fn iso_time(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl ContextResolver {
    /// A resolver with the `context` settings, reading every `context.preload` file now.
    pub fn new(config: &ContextConfig) -> Result<ContextResolver, ContextSetupError> {
        let mut preload = HashMap::new();
        for (url, file) in &config.preload {
            let failed = |reason: String| ContextSetupError::Preload {
                url: url.clone(),
                file: file.display().to_string(),
                reason,
            };
            let bytes = std::fs::read(file).map_err(|error| failed(format!("cannot be read: {error}")))?;
            let context = document_context(&bytes).map_err(|error| failed(error.to_string()))?;
            if entries(&context).is_ok_and(|found| !found.iter().any(|entry| matches!(entry, Entry::Remote(_)))) {
                Context::from_body(&context).map_err(|error| failed(error.to_string()))?;
            }
            preload.insert(url.clone(), context);
        }
        let timeout = Duration::from_millis(config.timeout_ms);
        Ok(ContextResolver {
            allowlist: config.allowlist.clone(),
            preload,
            max_bytes: config.max_bytes,
            ttl: Duration::from_secs(config.cache_ttl_secs),
            cache_entries: config.cache_entries.max(1),
            cache: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            client: HttpClient::new(timeout, timeout),
            hosted: None,
            started: Utc::now(),
        })
    }

    /// This resolver, resolving the URLs of the contexts hosted here from `hosted`.
    pub fn with_hosted(self, hosted: Arc<HostedContexts>) -> ContextResolver {
        ContextResolver { hosted: Some(hosted), ..self }
    }

    /// The hosted contexts, if hosting is set up.
    pub fn hosted(&self) -> Option<&Arc<HostedContexts>> {
        self.hosted.as_ref()
    }

    /// The context hosted here that `url` names (counted as a use).
    fn hosted_context(&self, url: &str) -> Option<hosted::HostedUse> {
        self.hosted.as_ref().and_then(|hosted| hosted.use_url(url))
    }

    /// The context a `Link` header names.
    pub async fn link(&self, url: &str) -> Result<LdContext, ContextError> {
        if is_core_context(url) {
            return Ok(LdContext::core());
        }
        let resolved = self.top(url).await?;
        Ok(LdContext {
            context: resolved.context.clone(),
            inline: resolved.inline.clone(),
            written: Value::String(url.to_string()),
            compactor: Some(resolved.compactor.clone()),
        })
    }

    /// The context of a body `@context` (a URL, an object, or an array of them).
    pub async fn body(&self, context: &Value) -> Result<LdContext, ContextError> {
        let found = entries(context)?;
        if !found.iter().any(|entry| matches!(entry, Entry::Remote(_))) {
            let parsed = Context::from_body(context)?;
            return Ok(LdContext {
                context: parsed,
                inline: Arc::new(context.clone()),
                written: Value::Null,
                compactor: None,
            });
        }
        if let [Entry::Remote(url)] = found.as_slice() {
            return Ok(LdContext { written: context.clone(), ..self.link(url).await? });
        }
        let mut merged = Merged::default();
        for entry in found {
            match entry {
                Entry::Core => {}
                Entry::Inline(object) => merged.add(object)?,
                Entry::Remote(url) => {
                    let resolved = self.top(url).await?;
                    if let Some(object) = resolved.inline.as_object() {
                        merged.add(object)?;
                    }
                }
            }
        }
        let inline = merged.into_value();
        let parsed = Context::from_body(&inline)?;
        Ok(LdContext { context: parsed, inline: Arc::new(inline), written: context.clone(), compactor: None })
    }

    /// A remote context of a request, concurrent requests for the same URL sharing one resolution.
    async fn top(&self, url: &str) -> Result<Arc<Resolved>, ContextError> {
        match self.hosted_context(url) {
            Some(HostedUse::Resolved(resolved)) => return Ok(resolved),
            Some(HostedUse::Document(context)) => return self.merge(url, context, 0, Vec::new()).await,
            None => {}
        }
        if let Some(hit) = self.cached(url) {
            return Ok(hit);
        }
        if let Some(refusal) = self.refusal(url) {
            return Err(refusal);
        }
        let cell = self.lock_pending().entry(url.to_string()).or_default().clone();
        let result = cell.get_or_init(|| self.load(url.to_string(), 0, Vec::new())).await.clone();
        let mut pending = self.lock_pending();
        if pending.get(url).is_some_and(|current| Arc::ptr_eq(current, &cell)) {
            pending.remove(url);
        }
        result
    }

    /// Resolves `url` (preload, cache, fetch) and the remote contexts it names, `depth` levels down a `chain`.
    fn load(
        &self,
        url: String,
        depth: usize,
        chain: Vec<String>,
    ) -> Pin<Box<dyn Future<Output = Result<Arc<Resolved>, ContextError>> + Send + '_>> {
        Box::pin(async move {
            let hosted = self.hosted_context(&url);
            if hosted.is_none() {
                if let Some(hit) = self.cached(&url) {
                    return Ok(hit);
                }
            }
            if chain.contains(&url) {
                return Err(ContextError::not_available(
                    &url,
                    format!("it names itself through {}", chain.join(" → ")),
                ));
            }
            if depth > MAX_DEPTH {
                return Err(ContextError::not_available(&url, format!("remote contexts nest deeper than {MAX_DEPTH}")));
            }
            let is_hosted = hosted.is_some();
            let raw = match hosted {
                Some(HostedUse::Resolved(resolved)) => return Ok(resolved),
                Some(HostedUse::Document(context)) => context,
                None => match self.preload.get(&url) {
                    Some(raw) => raw.clone(),
                    None => self.fetch(&url).await?,
                },
            };
            let resolved = self.merge(&url, raw, depth, chain).await?;
            if !is_hosted {
                self.store(&url, resolved.clone());
            }
            Ok(resolved)
        })
    }

    /// Resolves the `@context` `raw` of the document at `url` (`depth` levels down a `chain`): its inline
    /// definitions and the remote contexts it names, merged in order.
    async fn merge(
        &self,
        url: &str,
        raw: Value,
        depth: usize,
        mut chain: Vec<String>,
    ) -> Result<Arc<Resolved>, ContextError> {
        let invalid = |reason: String| ContextError::not_available(url, reason);
        chain.push(url.to_string());
        let mut merged = Merged::default();
        for entry in entries(&raw).map_err(|e| invalid(format!("invalid context document: {e}")))? {
            match entry {
                Entry::Core => {}
                Entry::Inline(object) => merged.add(object).map_err(|e| invalid(format!("invalid @context: {e}")))?,
                Entry::Remote(nested) => {
                    let resolved = self
                        .load(nested.to_string(), depth + 1, chain.clone())
                        .await
                        .map_err(|e| invalid(format!("it names a context that is not available ({e})")))?;
                    if let Some(object) = resolved.inline.as_object() {
                        merged.add(object).map_err(|e| invalid(format!("invalid @context: {e}")))?;
                    }
                }
            }
        }
        Ok(Arc::new(Resolved::new(merged.into_value()).map_err(|e| invalid(format!("invalid @context: {e}")))?))
    }

    /// Why `url` can be neither preloaded nor fetched, if so.
    fn refusal(&self, url: &str) -> Option<ContextError> {
        if self.preload.contains_key(url) {
            return None;
        }
        if !self.allowlist.iter().any(|prefix| url.starts_with(prefix.as_str())) {
            return Some(ContextError::not_available(
                url,
                "it is not in context.preload and no context.allowlist prefix allows fetching it \
                 (remote contexts are not fetched by default)",
            ));
        }
        None
    }

    /// Fetches a context document and answers its `@context`, if the allowlist allows the URL, following
    /// redirects to URLs the allowlist allows too.
    async fn fetch(&self, url: &str) -> Result<Value, ContextError> {
        let mut target = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            if let Some(refusal) = self.refusal(&target) {
                return Err(if target == url {
                    refusal
                } else {
                    ContextError::not_available(
                        url,
                        format!("it redirects to {target}, which no context.allowlist prefix allows"),
                    )
                });
            }
            let response = self.get(&target).await.map_err(|reason| ContextError::not_available(url, reason))?;
            if matches!(response.status, 301 | 302 | 303 | 307 | 308) {
                let Some(next) = response.location.as_deref().and_then(|location| resolve_location(&target, location))
                else {
                    return Err(ContextError::not_available(
                        url,
                        format!("its server answered HTTP {} without a usable Location", response.status),
                    ));
                };
                tracing::debug!(%url, from = %target, to = %next, "following a redirect of a remote @context");
                target = next;
                continue;
            }
            if !response.is_success() {
                return Err(ContextError::not_available(url, format!("its server answered HTTP {}", response.status)));
            }
            tracing::info!(%url, bytes = response.body.len(), "fetched a remote @context");
            return document_context(&response.body)
                .map_err(|error| ContextError::not_available(url, format!("invalid context document: {error}")));
        }
        Err(ContextError::not_available(url, format!("more than {MAX_REDIRECTS} redirects")))
    }

    /// One GET of a context document; the reason of a failure.
    async fn get(&self, url: &str) -> Result<OutboundResponse, String> {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::ACCEPT, HeaderValue::from_static("application/ld+json, application/json;q=0.9"));
        self.client.get_capped(url, headers, self.max_bytes).await.map_err(|error| match error {
            OutboundError::InvalidUrl { reason, .. } => format!("invalid URL: {reason}"),
            OutboundError::Transport { reason, .. } => format!("unreachable: {reason}"),
            OutboundError::Tls { reason, .. } => format!("TLS failed: {reason}"),
            OutboundError::TooLarge { limit, .. } => format!("larger than context.max_bytes ({limit} bytes)"),
            OutboundError::Timeout { timeout, .. } => {
                format!("no answer within context.timeout_ms ({} ms)", timeout.as_millis())
            }
        })
    }

    fn cached(&self, url: &str) -> Option<Arc<Resolved>> {
        let mut cache = self.lock_cache();
        let cached = cache.get_mut(url).filter(|cached| cached.at.elapsed() < self.ttl)?;
        cached.hits += 1;
        cached.last_usage = Some(Utc::now());
        Some(cached.resolved.clone())
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps a resolution, evicting the expired entries, then the oldest, when the cache is full.
    fn store(&self, url: &str, resolved: Arc<Resolved>) {
        let mut cache = self.lock_cache();
        if cache.len() >= self.cache_entries && !cache.contains_key(url) {
            cache.retain(|_, cached| cached.at.elapsed() < self.ttl);
            while cache.len() >= self.cache_entries {
                let oldest = cache.iter().min_by_key(|(_, cached)| cached.at).map(|(key, _)| key.clone());
                match oldest {
                    Some(key) => cache.remove(&key),
                    None => break,
                };
            }
        }
        let now = Utc::now();
        let cached = Cached { resolved, at: Instant::now(), stored: now, hits: 1, last_usage: Some(now) };
        cache.insert(url.to_string(), cached);
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The absolute `http(s)` URL a `Location` header names, resolved against the URL that answered it (RFC 3986
/// reference resolution, by the `url` crate).
fn resolve_location(base: &str, location: &str) -> Option<String> {
    let location = location.trim();
    if location.is_empty() {
        return None;
    }
    let resolved = url::Url::parse(base).ok()?.join(location).ok()?;
    matches!(resolved.scheme(), "http" | "https").then(|| resolved.into())
}

#[cfg(test)]
mod tests;
