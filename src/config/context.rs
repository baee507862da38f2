//! Validation of the `context` section (remote JSON-LD contexts of the NGSI-LD API): ranges, allowlist prefixes,
//! and every `context.preload` file read and checked to be a context document, so `config check` and start-up
//! refuse a missing or invalid file with a message naming it. Reads files; never fetches anything.

use super::{ConfigError, ContextConfig};

/// Checks the `context` section, reading every `context.preload` file.
pub(super) fn validate(context: &ContextConfig) -> Result<(), ConfigError> {
    let invalid = |message: String| Err(ConfigError::Invalid(message));
    if !(1024..=64 * 1024 * 1024).contains(&context.max_bytes) {
        return invalid(format!("context.max_bytes {} must be 1 KiB..64 MiB", context.max_bytes));
    }
    if !(1..=60_000).contains(&context.timeout_ms) {
        return invalid(format!("context.timeout_ms {} must be 1..60000", context.timeout_ms));
    }
    if !(1..=100_000).contains(&context.cache_entries) {
        return invalid(format!("context.cache_entries {} must be 1..100000", context.cache_entries));
    }
    if !(1..=7 * 24 * 3600).contains(&context.cache_ttl_secs) {
        return invalid(format!("context.cache_ttl_secs {} must be 1..604800", context.cache_ttl_secs));
    }
    if context.max_hosted > 10_000 {
        return invalid(format!("context.max_hosted {} must be 0..10000", context.max_hosted));
    }
    for prefix in &context.allowlist {
        let rest = prefix.strip_prefix("http://").or_else(|| prefix.strip_prefix("https://"));
        let host_ends_with_slash = rest.and_then(|rest| rest.find('/')).is_some_and(|slash| slash > 0);
        if !host_ends_with_slash {
            return invalid(format!(
                "context.allowlist entry `{prefix}` must be an http:// or https:// URL prefix whose host ends \
                 with / (e.g. https://example.org/contexts/)"
            ));
        }
    }
    for (url, file) in &context.preload {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return invalid(format!("context.preload key `{url}` must be an http:// or https:// URL"));
        }
        let bytes = std::fs::read(file).map_err(|error| {
            ConfigError::Invalid(format!("context.preload file {} (for {url}) cannot be read: {error}", file.display()))
        })?;
        crate::ngsi::ld::context::remote::document_context(&bytes).map_err(|error| {
            ConfigError::Invalid(format!(
                "context.preload file {} (for {url}) is not a JSON-LD context document: {error}",
                file.display()
            ))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::load_text as load;
    use super::*;

    #[test]
    fn context_settings_are_checked_and_preload_files_read() {
        let defaults = load("{}", &[]).unwrap().context;
        assert!(defaults.allowlist.is_empty() && defaults.preload.is_empty());
        assert_eq!((defaults.max_bytes, defaults.timeout_ms), (1024 * 1024, 3000));
        assert_eq!((defaults.cache_entries, defaults.cache_ttl_secs), (256, 3600));
        assert_eq!(defaults.max_hosted, 200);
        let error = load(r#"{"context":{"max_hosted":10001}}"#, &[]).unwrap_err();
        assert!(error.to_string().contains("context.max_hosted"), "{error}");
        let listed = load("{}", &[("FOGFLOW__CONTEXT__ALLOWLIST", "http://a.org/x/, https://B.org/")]).unwrap();
        assert_eq!(listed.context.allowlist, vec!["http://a.org/x/", "https://B.org/"]);
        let error = load(r#"{"context":{"allowlist":["http://evil"]}}"#, &[]).unwrap_err();
        assert!(error.to_string().contains("context.allowlist"), "{error}");
        let error = load(r#"{"context":{"timeout_ms":0}}"#, &[]).unwrap_err();
        assert!(error.to_string().contains("context.timeout_ms"), "{error}");

        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("ctx.jsonld");
        std::fs::write(&good, r#"{"@context": {"Room": "https://e.org/Room"}}"#).unwrap();
        let text = format!(r#"{{"context":{{"preload":{{"https://Example.org/a.b/Ctx.jsonld":{:?}}}}}}}"#, good);
        let preloaded = load(&text, &[]).unwrap();
        assert_eq!(preloaded.context.preload.get("https://Example.org/a.b/Ctx.jsonld"), Some(&good));
        let missing = text.replace("ctx.jsonld\"", "missing.jsonld\"");
        let error = load(&missing, &[]).unwrap_err();
        assert!(error.to_string().contains("cannot be read"), "{error}");
        std::fs::write(&good, "[]").unwrap();
        let error = load(&text, &[]).unwrap_err();
        assert!(error.to_string().contains("not a JSON-LD context document"), "{error}");
    }

    #[test]
    fn defaults_are_valid() {
        assert!(validate(&ContextConfig::default()).is_ok());
    }
}
