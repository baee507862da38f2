//! The pure parts of the NGSI-LD @context management API (ETSI GS CIM 009 V1.6+ clause 5.13, HTTP 6.30–6.31,
//! `/ngsi-ld/v1/jsonldContexts`): reading the body of "Add @context" (a JSON object whose only member is
//! `@context`: an object, or an array of objects and URLs), recognizing the URL of a context hosted here, the
//! `kind`s of stored contexts and the metadata object of `details=true`. Storing, serving and resolving are the
//! broker's (`roles::broker::contexts`); this module does no I/O.
//!
//! **Which URLs are "hosted here".** Any `http://` or `https://` URL whose path is
//! `/ngsi-ld/v1/jsonldContexts/<id>` (no query, no fragment) names the hosted context `<id>`, whatever its host
//! and port: behind nginx, a Kubernetes service or a port mapping the broker cannot know the host clients use.
//! An id that is not held here is not special: the URL resolves like any other remote context.

use serde_json::{json, Map, Value};

use super::remote::{entries, Entry, Merged, MAX_URL_LEN};
use crate::ngsi::ParseError;

/// The path under which hosted contexts are served, without the trailing `/`.
pub const CONTEXTS_PATH: &str = "/ngsi-ld/v1/jsonldContexts";
/// Longest local identifier accepted in a path.
pub const MAX_ID_LEN: usize = 64;

/// The kind of a stored @context (clause 5.13.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextKind {
    /// Given by a client with "Add @context" and served by the broker.
    Hosted,
    /// Downloaded from its URL (or preloaded), kept in the broker's cache; the core context too.
    Cached,
    /// Created by the broker from an inline @context of a request (this broker creates none).
    ImplicitlyCreated,
}

impl ContextKind {
    /// The name of the kind on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ContextKind::Hosted => "Hosted",
            ContextKind::Cached => "Cached",
            ContextKind::ImplicitlyCreated => "ImplicitlyCreated",
        }
    }

    /// The kind a `kind` URL parameter names.
    pub fn parse(text: &str) -> Result<ContextKind, ParseError> {
        match text {
            "Hosted" => Ok(ContextKind::Hosted),
            "Cached" => Ok(ContextKind::Cached),
            "ImplicitlyCreated" => Ok(ContextKind::ImplicitlyCreated),
            other => Err(ParseError::new(format!("kind must be Hosted, Cached or ImplicitlyCreated, not `{other}`"))),
        }
    }
}

/// The `@context` of an "Add @context" body, checked: the body is a JSON object with one member, `@context`,
/// an object or an array of objects and URLs (a lone URL string is refused: there is nothing to host), at most
/// [`super::MAX_CONTEXT_ENTRIES`] entries and [`super::MAX_TERMS`] terms, each definition a string, an object
/// or null. URLs inside it are kept as written and resolved when the hosted context is used.
pub fn parse_add(body: &Value) -> Result<Value, ParseError> {
    let Value::Object(object) = body else {
        return Err(ParseError::new("the payload must be a JSON object with an @context member"));
    };
    let Some(context) = object.get("@context") else {
        return Err(ParseError::new("the payload must carry an @context member"));
    };
    if let Some(other) = object.keys().find(|key| *key != "@context") {
        return Err(ParseError::new(format!("the payload may only carry @context, not `{other}`")));
    }
    if !matches!(context, Value::Object(_) | Value::Array(_)) {
        return Err(ParseError::new("@context must be an object or an array of objects and URLs"));
    }
    let found = entries(context)?;
    if found.is_empty() {
        return Err(ParseError::new("@context must not be an empty array"));
    }
    let mut merged = Merged::default();
    for entry in found {
        match entry {
            Entry::Inline(object) => merged.add(object)?,
            Entry::Remote(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                return Err(ParseError::new(format!("@context URL `{url}` must be an http:// or https:// URL")));
            }
            Entry::Core | Entry::Remote(_) => {}
        }
    }
    if !merged.is_empty() {
        super::Context::from_body(&merged.into_value()).map_err(|error| ParseError::new(error.to_string()))?;
    }
    Ok(context.clone())
}

/// The id of the hosted context a URL names: `<id>` of `http(s)://<any host>/ngsi-ld/v1/jsonldContexts/<id>`
/// (see the module documentation), if the URL has that shape and `<id>` is a valid id.
pub fn hosted_id(url: &str) -> Option<&str> {
    if url.len() > MAX_URL_LEN {
        return None;
    }
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"))?;
    let path = &rest[rest.find('/')?..];
    let id = path.strip_prefix(CONTEXTS_PATH)?.strip_prefix('/')?;
    is_valid_id(id).then_some(id)
}

/// Whether `id` can be a local identifier of a hosted context: 1 to [`MAX_ID_LEN`] ASCII letters, digits, `-`
/// or `_` (URL-safe, so the path and the `Location` need no encoding).
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The metadata of one stored @context (clause 5.13.3.5 / 5.13.4.5, `details=true`).
#[derive(Debug, Clone, PartialEq)]
pub struct ContextInfo {
    /// The URL the context is (or was downloaded) at.
    pub url: String,
    /// Its local identifier in the broker.
    pub local_id: String,
    /// Its kind.
    pub kind: ContextKind,
    /// When it was stored (ISO 8601 UTC).
    pub timestamp: String,
    /// When it was last used to resolve a request, if ever (ISO 8601 UTC).
    pub last_usage: Option<String>,
    /// How many requests it resolved.
    pub number_of_hits: Option<u64>,
}

impl ContextInfo {
    /// The JSON object of `details=true`: `URL`, `localId`, `kind`, `timestamp`, and when known `lastUsage` and
    /// `numberOfHits`.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("URL".into(), json!(self.url));
        object.insert("localId".into(), json!(self.local_id));
        object.insert("kind".into(), json!(self.kind.as_str()));
        object.insert("timestamp".into(), json!(self.timestamp));
        if let Some(last_usage) = &self.last_usage {
            object.insert("lastUsage".into(), json!(last_usage));
        }
        if let Some(hits) = self.number_of_hits {
            object.insert("numberOfHits".into(), json!(hits));
        }
        Value::Object(object)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{CORE_CONTEXT_URL, MAX_TERMS};
    use super::*;

    #[test]
    fn add_bodies_must_hold_a_valid_context_and_nothing_else() {
        let object = json!({"Room": "https://e.org/Room", "brand": {"@id": "https://schema.org/brand"}});
        assert_eq!(parse_add(&json!({"@context": object})).unwrap(), object);
        let array = json!([CORE_CONTEXT_URL, "https://e.org/ctx.jsonld", {"a": "https://e.org/a"}]);
        assert_eq!(parse_add(&json!({"@context": array})).unwrap(), array);
        assert_eq!(parse_add(&json!({"@context": {}})).unwrap(), json!({}));
        let bad = [
            json!([]),
            json!("text"),
            json!({}),
            json!({"context": {}}),
            json!({"@context": {}, "id": "x"}),
            json!({"@context": "https://e.org/ctx.jsonld"}),
            json!({"@context": 42}),
            json!({"@context": []}),
            json!({"@context": [42]}),
            json!({"@context": ["ftp://e.org/ctx"]}),
            json!({"@context": [""]}),
            json!({"@context": {"a": 1}}),
            json!({"@context": {"a": true}}),
        ];
        for body in bad {
            assert!(parse_add(&body).is_err(), "{body}");
        }
        let many: Map<String, Value> = (0..=MAX_TERMS).map(|i| (format!("t{i}"), json!("https://e.org/"))).collect();
        assert!(parse_add(&json!({"@context": many})).is_err());
    }

    #[test]
    fn hosted_urls_are_recognized_whatever_their_host() {
        assert_eq!(hosted_id("http://127.0.0.1:8070/ngsi-ld/v1/jsonldContexts/abc-1_2"), Some("abc-1_2"));
        assert_eq!(hosted_id("https://fogflow.example/ngsi-ld/v1/jsonldContexts/X"), Some("X"));
        for url in [
            "http://h/ngsi-ld/v1/jsonldContexts/",
            "http://h/ngsi-ld/v1/jsonldContexts",
            "http://h/ngsi-ld/v1/jsonldContexts/a/b",
            "http://h/ngsi-ld/v1/jsonldContexts/a?x=1",
            "http://h/ngsi-ld/v1/jsonldContexts/a#f",
            "http://h/prefix/ngsi-ld/v1/jsonldContexts/a",
            "ftp://h/ngsi-ld/v1/jsonldContexts/a",
            "http:/ngsi-ld/v1/jsonldContexts/a",
            "urn:x",
            CORE_CONTEXT_URL,
        ] {
            assert_eq!(hosted_id(url), None, "{url}");
        }
        assert!(!is_valid_id(&"a".repeat(MAX_ID_LEN + 1)));
        assert!(is_valid_id(&"a".repeat(MAX_ID_LEN)));
    }

    #[test]
    fn kinds_and_details_render_as_the_spec_names_them() {
        for kind in [ContextKind::Hosted, ContextKind::Cached, ContextKind::ImplicitlyCreated] {
            assert_eq!(ContextKind::parse(kind.as_str()).unwrap(), kind);
        }
        assert!(ContextKind::parse("hosted").is_err());
        let info = ContextInfo {
            url: "http://h/ngsi-ld/v1/jsonldContexts/a".into(),
            local_id: "a".into(),
            kind: ContextKind::Hosted,
            timestamp: "2026-01-01T00:00:00.000Z".into(),
            last_usage: None,
            number_of_hits: Some(0),
        };
        assert_eq!(
            info.to_json(),
            json!({"URL": "http://h/ngsi-ld/v1/jsonldContexts/a", "localId": "a", "kind": "Hosted",
                "timestamp": "2026-01-01T00:00:00.000Z", "numberOfHits": 0})
        );
    }
}
