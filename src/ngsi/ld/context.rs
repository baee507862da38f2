//! JSON-LD `@context` handling for NGSI-LD, without any I/O: the NGSI-LD core context is embedded in the binary
//! (`core-context.jsonld`, written from the terms of ETSI GS CIM 009), and a request may add a user context
//! given inline (a body `@context` object, or an array of objects and context URLs). Remote context URLs are not
//! fetched here: the broker resolves them (allowlist, cache, preload map) into inline definitions with the pure
//! helpers of [`remote`] (which entries are URLs, reading a fetched context document, merging definitions) and
//! builds the [`Context`] from the merged object. A URL left unresolved is [`ContextError::NotAvailable`]
//! (`LdContextNotAvailable`).
//! The @context management API (contexts hosted on the broker, `/ngsi-ld/v1/jsonldContexts`) has its pure parts
//! in [`hosted`]: checking an "Add @context" body and recognizing the URL of a hosted context.
//!
//! Names (entity types, attribute and sub-property names) are stored in one canonical form: the term is expanded
//! with the request's context, then compacted against the core context alone ([`Context::canonical`]). A term of
//! the default vocabulary (`https://uri.etsi.org/ngsi-ld/default-context/temperature`) is thus stored as
//! `temperature`, a core term as itself, and a term that a user context maps elsewhere as its full IRI. Responses
//! with a user context (a `Link` on a read, a subscription's context in its notifications) are compacted back
//! with [`Context::compactor`].

pub mod hosted;
pub mod remote;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde_json::Value;

use super::super::ParseError;

/// The URL of the NGSI-LD core context.
pub const CORE_CONTEXT_URL: &str = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld";
/// Every versioned core context URL starts with this.
const CORE_CONTEXT_PREFIX: &str = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context";
/// The embedded core context document.
const CORE_CONTEXT: &str = include_str!("core-context.jsonld");
/// Most term definitions in a user context.
pub const MAX_TERMS: usize = 1_000;
/// Most entries in a `@context` array.
pub const MAX_CONTEXT_ENTRIES: usize = 32;
/// The default vocabulary, used when the core context cannot be read (never, but no panic).
const DEFAULT_VOCAB: &str = "https://uri.etsi.org/ngsi-ld/default-context/";

/// Why a request's context cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    /// A remote context that cannot be had: not preloaded, not allowed, unreachable, too large, invalid…
    #[error("the @context `{url}` is not available: {reason}")]
    NotAvailable {
        /// The context URL.
        url: String,
        /// Why it is not available.
        reason: String,
    },
    /// The context is malformed.
    #[error(transparent)]
    Invalid(#[from] ParseError),
}

/// Term definitions: term → IRI, and the vocabulary for other terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Terms {
    terms: HashMap<String, String>,
    vocab: Option<String>,
}

impl Terms {
    /// Reads the definitions of one context object (later definitions win).
    fn read(&mut self, object: &serde_json::Map<String, Value>) -> Result<(), ParseError> {
        for (term, definition) in object {
            if term == "@vocab" {
                self.vocab = definition.as_str().map(str::to_string);
                continue;
            }
            if term.starts_with('@') {
                continue;
            }
            let iri = match definition {
                Value::String(iri) => iri.clone(),
                Value::Object(expanded) => match expanded.get("@id").and_then(Value::as_str) {
                    Some(iri) => iri.to_string(),
                    None => continue,
                },
                Value::Null => {
                    self.terms.remove(term);
                    continue;
                }
                _ => return Err(ParseError::new(format!("invalid @context definition of `{term}`"))),
            };
            if self.terms.len() >= MAX_TERMS {
                return Err(ParseError::new(format!("more than {MAX_TERMS} terms in @context")));
            }
            self.terms.insert(term.clone(), iri);
        }
        Ok(())
    }
}

/// The core context, parsed once, with its reverse map and the canonical names that need no expansion.
struct Core {
    terms: Terms,
    reverse: HashMap<String, String>,
    /// Each core term's canonical form with the core context alone.
    canonical: HashMap<String, String>,
    /// The core terms whose IRI is in the default vocabulary, by the rest of their IRI.
    by_vocab_suffix: HashMap<String, String>,
}

fn core() -> &'static Core {
    static CORE: OnceLock<Core> = OnceLock::new();
    CORE.get_or_init(|| {
        let mut terms = Terms::default();
        if let Ok(document) = serde_json::from_str::<Value>(CORE_CONTEXT) {
            if let Some(object) = document.get("@context").and_then(Value::as_object) {
                // The embedded document is checked by a unit test; a failure leaves the vocabulary only.
                let _ = terms.read(object);
            }
        }
        let mut core =
            Core { terms, reverse: HashMap::new(), canonical: HashMap::new(), by_vocab_suffix: HashMap::new() };
        let expanded: Vec<(String, String)> =
            core.terms.terms.keys().map(|term| (expand_with(&core.terms, None, term), term.clone())).collect();
        core.reverse = expanded.into_iter().filter(|(iri, _)| !iri.starts_with('@')).collect();
        core.canonical = core
            .terms
            .terms
            .keys()
            .map(|term| (term.clone(), compact_against(&core, &expand_with(&core.terms, None, term))))
            .collect();
        let vocab = core.terms.vocab.as_deref().unwrap_or(DEFAULT_VOCAB);
        core.by_vocab_suffix = core
            .reverse
            .iter()
            .filter_map(|(iri, term)| Some((iri.strip_prefix(vocab)?.to_string(), term.clone())))
            .collect();
        core
    })
}

/// Whether a URL names the NGSI-LD core context (any version).
pub fn is_core_context(url: &str) -> bool {
    url.starts_with(CORE_CONTEXT_PREFIX)
}

/// Expands a term against `user` (when given) then `core` definitions, resolving compact IRIs (`prefix:suffix`).
fn expand_with(core: &Terms, user: Option<&Terms>, term: &str) -> String {
    let lookup = |name: &str| user.and_then(|user| user.terms.get(name)).or_else(|| core.terms.get(name)).cloned();
    let resolve = |iri: String| match iri.split_once(':') {
        Some((prefix, suffix)) if !suffix.starts_with("//") => match lookup(prefix) {
            Some(base) if base != iri => format!("{base}{suffix}"),
            _ => iri,
        },
        _ => iri,
    };
    if let Some(iri) = lookup(term) {
        return resolve(iri);
    }
    if term.contains(':') {
        return resolve(term.to_string());
    }
    let vocab = user.and_then(|user| user.vocab.clone()).or_else(|| core.vocab.clone());
    format!("{}{term}", vocab.as_deref().unwrap_or(DEFAULT_VOCAB))
}

impl ContextError {
    /// A context URL that is not available, and why.
    pub fn not_available(url: &str, reason: impl Into<String>) -> Self {
        ContextError::NotAvailable { url: url.to_string(), reason: reason.into() }
    }
}

/// A request's context: the core context plus the user's definitions (shared: cheap to clone).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    user: Arc<Terms>,
}

impl Context {
    /// The core context alone (shared: no allocation).
    pub fn core() -> Self {
        static CORE_ONLY: OnceLock<Context> = OnceLock::new();
        CORE_ONLY.get_or_init(Context::default).clone()
    }

    /// The context named by a `Link` header URL: the core context; any other URL must be resolved by the
    /// caller (it is not available here).
    pub fn from_link(url: &str) -> Result<Self, ContextError> {
        if is_core_context(url) {
            Ok(Context::core())
        } else {
            Err(ContextError::not_available(url, "remote contexts are resolved by the broker, not here"))
        }
    }

    /// The context of a body `@context` with no remote URL left: a core URL, an object, or an array of them.
    pub fn from_body(context: &Value) -> Result<Self, ContextError> {
        let mut user = Terms::default();
        for entry in remote::entries(context)? {
            match entry {
                remote::Entry::Core => {}
                remote::Entry::Remote(url) => {
                    return Err(ContextError::not_available(
                        url,
                        "remote contexts are resolved by the broker, not here",
                    ))
                }
                remote::Entry::Inline(object) => user.read(object)?,
            }
        }
        Ok(Context { user: Arc::new(user) })
    }

    /// Whether this is the core context alone (no user definitions).
    pub fn is_core(&self) -> bool {
        self.user.terms.is_empty() && self.user.vocab.is_none()
    }

    /// The full IRI of a term.
    pub fn expand(&self, term: &str) -> String {
        expand_with(&core().terms, Some(&self.user), term)
    }

    /// The stored (canonical) form of a term: expanded with this context, compacted against the core context.
    pub fn canonical(&self, term: &str) -> String {
        if term.is_empty() {
            return String::new();
        }
        if let Some(canonical) = self.canonical_without_expansion(term) {
            return canonical;
        }
        compact_core(&self.expand(term))
    }

    /// [`Context::canonical`] of the common terms, without building their IRI: a core term with the core context
    /// alone, or a plain term (no `:`, `/`, `#`) that neither context defines and that no user `@vocab` moves
    /// (it expands in the default vocabulary and compacts back to itself, or to the core term of that IRI).
    fn canonical_without_expansion(&self, term: &str) -> Option<String> {
        if self.user.vocab.is_some() || term.contains([':', '/', '#']) || self.user.terms.contains_key(term) {
            return None;
        }
        let core = core();
        if let Some(canonical) = core.canonical.get(term) {
            // With user terms, a core definition's prefix could resolve differently.
            return self.is_core().then(|| canonical.clone());
        }
        Some(core.by_vocab_suffix.get(term).map_or_else(|| term.to_string(), Clone::clone))
    }
}

/// Compacts stored (canonical) names with a user context, for notifications sent with that context: a name whose
/// IRI a user term maps is shown as that term (the shortest, when several are), any other name as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compactor {
    reverse: HashMap<String, String>,
}

impl Compactor {
    /// The name to show for a stored name.
    pub fn compact(&self, canonical: &str) -> String {
        if self.reverse.is_empty() {
            return canonical.to_string();
        }
        let iri = expand_with(&core().terms, None, canonical);
        self.reverse.get(&iri).cloned().unwrap_or_else(|| canonical.to_string())
    }
}

impl Context {
    /// The compactor of this context's user terms.
    pub fn compactor(&self) -> Compactor {
        let mut reverse: HashMap<String, String> = HashMap::new();
        for term in self.user.terms.keys() {
            let iri = self.expand(term);
            let better = reverse.get(&iri).is_none_or(|known| (term.len(), term) < (known.len(), known));
            if better && !iri.starts_with('@') {
                reverse.insert(iri, term.clone());
            }
        }
        Compactor { reverse }
    }
}

/// Compacts an IRI against the core context: a core term, a default-vocabulary term, or the IRI itself.
pub fn compact_core(iri: &str) -> String {
    compact_against(core(), iri)
}

fn compact_against(core: &Core, iri: &str) -> String {
    if let Some(term) = core.reverse.get(iri) {
        return term.clone();
    }
    let vocab = core.terms.vocab.as_deref().unwrap_or(DEFAULT_VOCAB);
    match iri.strip_prefix(vocab) {
        Some(term) if !term.is_empty() && !term.contains([':', '/', '#']) && !core.terms.terms.contains_key(term) => {
            term.to_string()
        }
        _ => iri.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_embedded_core_context_is_valid() {
        let document: Value = serde_json::from_str(CORE_CONTEXT).unwrap();
        assert!(document["@context"].is_object());
        assert!(core().terms.terms.len() > 20);
        assert_eq!(Context::core().expand("location"), "https://uri.etsi.org/ngsi-ld/location");
        assert_eq!(Context::core().expand("Point"), "https://purl.org/geojson/vocab#Point");
        assert_eq!(Context::core().expand("temperature"), "https://uri.etsi.org/ngsi-ld/default-context/temperature");
    }

    #[test]
    fn names_are_stored_compacted_against_the_core_context() {
        let core = Context::core();
        assert_eq!(core.canonical("temperature"), "temperature");
        assert_eq!(core.canonical("location"), "location");
        assert_eq!(core.canonical("observedAt"), "observedAt");
        assert_eq!(core.canonical("https://uri.etsi.org/ngsi-ld/default-context/speed"), "speed");
        assert_eq!(core.canonical("https://schema.org/name"), "https://schema.org/name");
        let user = Context::from_body(&json!([
            {"schema": "https://schema.org/", "temperature": "schema:temperature", "Room": {"@id": "https://example.org/Room"}},
            CORE_CONTEXT_URL
        ]))
        .unwrap();
        assert_eq!(user.canonical("temperature"), "https://schema.org/temperature");
        assert_eq!(user.canonical("Room"), "https://example.org/Room");
        assert_eq!(user.canonical("schema:color"), "https://schema.org/color");
        assert_eq!(user.canonical("humidity"), "humidity");
        let vocab = Context::from_body(&json!({"@vocab": "https://example.org/"})).unwrap();
        assert_eq!(vocab.canonical("humidity"), "https://example.org/humidity");
    }

    #[test]
    fn canonical_names_without_expansion_are_the_expanded_ones() {
        let slow = |context: &Context, term: &str| compact_core(&context.expand(term));
        let user =
            Context::from_body(&json!({"temperature": "https://schema.org/temperature", "ngsi-ld": "https://e.org/"}))
                .unwrap();
        let vocab = Context::from_body(&json!({"@vocab": "https://example.org/"})).unwrap();
        let mut terms: Vec<String> = core().terms.terms.keys().cloned().collect();
        terms.extend(core().reverse.keys().filter_map(|iri| iri.rsplit(['/', '#']).next().map(str::to_string)));
        terms.extend(
            ["temperature", "speed", "a/b", "a#b", "x:y", "@id", "location", "https://e.org/a", "Ünïcode"]
                .map(String::from),
        );
        terms.retain(|term| !term.is_empty());
        for context in [&Context::core(), &user, &vocab] {
            for term in &terms {
                assert_eq!(context.canonical(term), slow(context, term), "{term} with {context:?}");
            }
        }
    }

    #[test]
    fn user_contexts_compact_stored_names_back_to_their_terms() {
        let user = Context::from_body(&json!({"brand": "https://schema.org/brand", "b2": "https://schema.org/brand"}))
            .unwrap();
        let compactor = user.compactor();
        assert_eq!(compactor.compact(&user.canonical("brand")), "b2");
        assert_eq!(compactor.compact("temperature"), "temperature");
        assert_eq!(compactor.compact("location"), "location");
        assert_eq!(Context::core().compactor().compact("https://schema.org/brand"), "https://schema.org/brand");
    }

    #[test]
    fn only_the_core_context_is_available() {
        assert_eq!(Context::from_link(CORE_CONTEXT_URL), Ok(Context::core()));
        assert!(Context::from_link("https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld").is_ok());
        let remote = "https://example.org/context.jsonld";
        assert!(matches!(Context::from_link(remote), Err(ContextError::NotAvailable { url, .. }) if url == remote));
        assert!(matches!(Context::from_body(&json!(remote)), Err(ContextError::NotAvailable { .. })));
        assert!(Context::core().is_core());
        assert!(!Context::from_body(&json!({"@vocab": "https://e.org/"})).unwrap().is_core());
        assert!(matches!(Context::from_body(&json!(42)), Err(ContextError::Invalid(_))));
        assert!(matches!(Context::from_body(&json!({"a": 1})), Err(ContextError::Invalid(_))));
        let many: serde_json::Map<String, Value> =
            (0..=MAX_TERMS).map(|i| (format!("t{i}"), json!(format!("https://e.org/{i}")))).collect();
        assert!(Context::from_body(&Value::Object(many)).is_err());
    }
}
