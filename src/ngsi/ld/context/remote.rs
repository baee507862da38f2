//! The pure parts of resolving remote `@context`s (ETSI GS CIM 009 clause 5.5.7; JSON-LD 1.1 "remote context"):
//! splitting a `@context` value into its entries (core URLs, other URLs, inline objects), reading the `@context`
//! of a fetched context document, and merging the definitions of resolved entries, in order, into one inline
//! context object that [`super::Context::from_body`] reads. Fetching, caching and the allowlist are the broker's
//! (`roles::broker::contexts`); this module does no I/O.

use serde_json::{Map, Value};

use super::{is_core_context, MAX_CONTEXT_ENTRIES, MAX_TERMS};
use crate::ngsi::ParseError;

/// Longest context URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// One entry of a `@context`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry<'a> {
    /// A URL of the NGSI-LD core context (embedded).
    Core,
    /// Another URL: a remote context.
    Remote(&'a str),
    /// Inline term definitions.
    Inline(&'a Map<String, Value>),
}

/// The entries of a `@context` value: a URL, an object, or an array of them (at most
/// [`MAX_CONTEXT_ENTRIES`]); `null` means none.
pub fn entries(context: &Value) -> Result<Vec<Entry<'_>>, ParseError> {
    let items = match context {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) if items.len() > MAX_CONTEXT_ENTRIES => {
            return Err(ParseError::new(format!("more than {MAX_CONTEXT_ENTRIES} entries in @context")))
        }
        Value::Array(items) => items.as_slice(),
        single => std::slice::from_ref(single),
    };
    items
        .iter()
        .map(|item| match item {
            Value::String(url) if is_core_context(url) => Ok(Entry::Core),
            Value::String(url) if url.is_empty() || url.len() > MAX_URL_LEN => {
                Err(ParseError::new(format!("a @context URL must have 1 to {MAX_URL_LEN} characters")))
            }
            Value::String(url) => Ok(Entry::Remote(url)),
            Value::Object(object) => Ok(Entry::Inline(object)),
            _ => Err(ParseError::new("@context must be a URL, an object or an array of them")),
        })
        .collect()
}

/// The remote (non-core) URLs a `@context` names directly, in order.
pub fn remote_urls(context: &Value) -> Result<Vec<&str>, ParseError> {
    Ok(entries(context)?
        .into_iter()
        .filter_map(|entry| match entry {
            Entry::Remote(url) => Some(url),
            _ => None,
        })
        .collect())
}

/// The `@context` member of a fetched (or preloaded) context document: the bytes must be a JSON object with a
/// `@context` that is a URL, an object or an array of them.
pub fn document_context(bytes: &[u8]) -> Result<Value, ParseError> {
    let document: Value =
        serde_json::from_slice(bytes).map_err(|e| ParseError::new(format!("the document is not JSON: {e}")))?;
    let Value::Object(mut document) = document else {
        return Err(ParseError::new("the document is not a JSON object"));
    };
    let context = document.remove("@context").ok_or_else(|| ParseError::new("the document has no @context"))?;
    entries(&context)?;
    Ok(context)
}

/// Term definitions merged in order (a later definition of a term replaces an earlier one, as JSON-LD context
/// processing does), checked as they come: the inline equivalent of a list of resolved contexts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Merged {
    object: Map<String, Value>,
}

impl Merged {
    /// Adds the definitions of one context object.
    pub fn add(&mut self, object: &Map<String, Value>) -> Result<(), ParseError> {
        for (term, definition) in object {
            let valid =
                term.starts_with('@') || matches!(definition, Value::String(_) | Value::Null | Value::Object(_));
            if !valid {
                return Err(ParseError::new(format!("invalid @context definition of `{term}`")));
            }
            if !self.object.contains_key(term) && self.object.len() >= MAX_TERMS {
                return Err(ParseError::new(format!("more than {MAX_TERMS} terms in @context")));
            }
            self.object.insert(term.clone(), definition.clone());
        }
        Ok(())
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.object.is_empty()
    }

    /// The merged definitions as one inline context object.
    pub fn into_value(self) -> Value {
        Value::Object(self.object)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{Context, CORE_CONTEXT_URL};
    use super::*;

    #[test]
    fn entries_split_core_remote_and_inline() {
        let context = json!([CORE_CONTEXT_URL, "http://example.org/ctx.jsonld", {"a": "https://e.org/a"}]);
        let found = entries(&context).unwrap();
        assert_eq!(found.len(), 3);
        assert_eq!(found[0], Entry::Core);
        assert_eq!(found[1], Entry::Remote("http://example.org/ctx.jsonld"));
        assert!(matches!(found[2], Entry::Inline(object) if object.contains_key("a")));
        assert_eq!(remote_urls(&context).unwrap(), vec!["http://example.org/ctx.jsonld"]);
        assert!(entries(&Value::Null).unwrap().is_empty());
        assert!(entries(&json!(42)).is_err());
        assert!(entries(&json!([""])).is_err());
        assert!(entries(&json!(vec!["http://e.org/"; MAX_CONTEXT_ENTRIES + 1])).is_err());
    }

    #[test]
    fn context_documents_must_carry_a_context() {
        assert_eq!(
            document_context(br#"{"@context": {"a": "https://e.org/a"}}"#).unwrap(),
            json!({"a": "https://e.org/a"})
        );
        assert_eq!(document_context(br#"{"@context": "http://e.org/c"}"#).unwrap(), json!("http://e.org/c"));
        for bad in [&b"not json"[..], b"[1]", br#"{"a": 1}"#, br#"{"@context": 42}"#, b""] {
            assert!(document_context(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn merged_definitions_keep_the_last_one() {
        let mut merged = Merged::default();
        assert!(merged.is_empty());
        merged.add(json!({"a": "https://e.org/a", "b": "https://e.org/b"}).as_object().unwrap()).unwrap();
        merged.add(json!({"a": {"@id": "https://f.org/a", "@type": "@id"}, "b": null}).as_object().unwrap()).unwrap();
        let context = Context::from_body(&merged.clone().into_value()).unwrap();
        assert_eq!(context.canonical("a"), "https://f.org/a");
        assert_eq!(context.canonical("b"), "b");
        assert!(merged.add(json!({"c": 1}).as_object().unwrap()).is_err());
        let many: Map<String, Value> = (0..=MAX_TERMS).map(|i| (format!("t{i}"), json!("https://e.org/"))).collect();
        assert!(Merged::default().add(&many).is_err());
    }
}
