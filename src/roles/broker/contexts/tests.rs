use std::path::PathBuf;

use serde_json::json;

use super::*;
use crate::ngsi::ld::context::CORE_CONTEXT_URL;

/// A resolver preloading `documents` (URL → document) from files in `dir`.
fn resolver(dir: &tempfile::TempDir, documents: &[(&str, Value)], allowlist: &[&str]) -> ContextResolver {
    let mut config =
        ContextConfig { allowlist: allowlist.iter().map(|s| s.to_string()).collect(), ..Default::default() };
    for (index, (url, document)) in documents.iter().enumerate() {
        let file: PathBuf = dir.path().join(format!("{index}.jsonld"));
        std::fs::write(&file, document.to_string()).unwrap();
        config.preload.insert(url.to_string(), file);
    }
    ContextResolver::new(&config).unwrap()
}

fn reason(error: ContextError) -> String {
    match error {
        ContextError::NotAvailable { reason, .. } => reason,
        other => panic!("not NotAvailable: {other:?}"),
    }
}

#[tokio::test]
async fn preloaded_contexts_resolve_with_no_network() {
    let dir = tempfile::tempdir().unwrap();
    let a = "https://example.org/a.jsonld";
    let b = "https://example.org/b.jsonld";
    let contexts = resolver(
        &dir,
        &[
            (a, json!({"@context": [b, CORE_CONTEXT_URL, {"Room": "https://e.org/Room"}]})),
            (b, json!({"@context": {"temperature": "https://e.org/temp", "Room": "https://b.org/Room"}})),
        ],
        &[],
    );
    let linked = contexts.link(a).await.unwrap();
    assert_eq!(linked.canonical("Room"), "https://e.org/Room");
    assert_eq!(linked.canonical("temperature"), "https://e.org/temp");
    assert_eq!(linked.link_url(), Some(a));
    assert_eq!(linked.compactor().compact("https://e.org/temp"), "temperature");
    assert_eq!(linked.inline["Room"], "https://e.org/Room");

    let body = contexts.body(&json!([b, {"humidity": "https://e.org/hum"}])).await.unwrap();
    assert_eq!(body.canonical("humidity"), "https://e.org/hum");
    assert_eq!(body.canonical("Room"), "https://b.org/Room");
    assert_eq!(body.written, json!([b, {"humidity": "https://e.org/hum"}]));
    let inline = contexts.body(&json!({"x": "https://e.org/x"})).await.unwrap();
    assert_eq!((inline.written.clone(), inline.link_url()), (Value::Null, None));
    assert_eq!(*inline.inline, json!({"x": "https://e.org/x"}));
    let core = contexts.link(CORE_CONTEXT_URL).await.unwrap();
    assert!(core.context.is_core() && core.inline.is_null());
}

#[tokio::test]
async fn contexts_not_preloaded_or_allowed_are_not_available() {
    let dir = tempfile::tempdir().unwrap();
    let contexts = resolver(&dir, &[], &["https://127.0.0.1:9/"]);
    let denied = contexts.link("http://127.0.0.1:9/ctx.jsonld").await.unwrap_err();
    assert!(reason(denied).contains("context.allowlist"));
    let https = contexts.link("https://127.0.0.1:9/ctx.jsonld").await.unwrap_err();
    assert!(reason(https).contains("unreachable"), "an allowlisted https:// context is fetched");
    let body = contexts.body(&json!(["http://other.org/c", {"a": "https://e.org/a"}])).await.unwrap_err();
    assert!(matches!(body, ContextError::NotAvailable { url, .. } if url == "http://other.org/c"));
    assert!(matches!(contexts.body(&json!(42)).await, Err(ContextError::Invalid(_))));
}

#[tokio::test]
async fn cycles_and_deep_nesting_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = ("https://e.org/a", "https://e.org/b");
    let cyclic = resolver(&dir, &[(a, json!({"@context": b})), (b, json!({"@context": [a]}))], &[]);
    assert!(reason(cyclic.link(a).await.unwrap_err()).contains("names itself"));
    let chain: Vec<(String, Value)> = (0..=MAX_DEPTH + 1)
        .map(|i| {
            (
                format!("https://e.org/{i}"),
                json!({"@context": [format!("https://e.org/{}", i + 1), {"t": "https://e.org/t"}]}),
            )
        })
        .collect();
    let mut documents: Vec<(&str, Value)> = chain.iter().map(|(url, doc)| (url.as_str(), doc.clone())).collect();
    let last = format!("https://e.org/{}", MAX_DEPTH + 2);
    documents.push((&last, json!({"@context": {}})));
    let deep = resolver(&dir, &documents, &[]);
    assert!(reason(deep.link("https://e.org/0").await.unwrap_err()).contains("deeper"));
    assert!(deep.link("https://e.org/2").await.is_ok());
}

#[test]
fn bad_preload_files_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.jsonld");
    std::fs::write(&file, r#"{"@context": {"a": 42}}"#).unwrap();
    let mut config = ContextConfig::default();
    config.preload.insert("https://e.org/bad".into(), file);
    let error = ContextResolver::new(&config).unwrap_err().to_string();
    assert!(error.contains("https://e.org/bad") && error.contains("bad.jsonld"), "{error}");
    config.preload.insert("https://e.org/bad".into(), dir.path().join("missing"));
    assert!(ContextResolver::new(&config).unwrap_err().to_string().contains("cannot be read"));
}

#[test]
fn the_cache_is_bounded() {
    let config = ContextConfig { cache_entries: 2, ..Default::default() };
    let contexts = ContextResolver::new(&config).unwrap();
    for i in 0..5 {
        let resolved = Arc::new(Resolved::new(json!({"t": format!("https://e.org/{i}")})).unwrap());
        contexts.store(&format!("https://e.org/{i}"), resolved);
    }
    assert_eq!(contexts.cache.lock().unwrap().len(), 2);
    assert!(contexts.cached("https://e.org/4").is_some());
    assert!(contexts.cached("https://e.org/0").is_none());
}

#[test]
fn redirect_locations_resolve_against_the_url_that_answered() {
    let base = "https://ctx.example.org/ld/v1/ctx.jsonld?x=1";
    let cases = [
        ("http://other.org/a.jsonld", Some("http://other.org/a.jsonld")),
        ("//cdn.example.org/c.jsonld", Some("https://cdn.example.org/c.jsonld")),
        ("/root.jsonld", Some("https://ctx.example.org/root.jsonld")),
        ("v2.jsonld", Some("https://ctx.example.org/ld/v1/v2.jsonld")),
        ("../v2/ctx.jsonld", Some("https://ctx.example.org/ld/v2/ctx.jsonld")),
        ("./a/../b.jsonld?q=1", Some("https://ctx.example.org/ld/v1/b.jsonld?q=1")),
        ("/../../top.jsonld", Some("https://ctx.example.org/top.jsonld")),
        ("", None),
        ("ftp://files.example.org/ctx.jsonld", None),
    ];
    for (location, expected) in cases {
        assert_eq!(super::resolve_location(base, location).as_deref(), expected, "{location}");
    }
    assert_eq!(super::resolve_location("http://h:1", "x.jsonld").as_deref(), Some("http://h:1/x.jsonld"));
}
