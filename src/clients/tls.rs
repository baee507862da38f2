//! Trust for outgoing `https://` requests: the rustls client configuration (ring provider, TLS 1.2/1.3,
//! certificate verification always on) that [`super::http_client::HttpClient`] uses for `https://` URLs.
//!
//! Owns the trust roots: the system CA bundle (`rustls-native-certs`: `SSL_CERT_FILE`, else the usual system
//! locations such as `/etc/ssl/certs/ca-certificates.crt`) plus the optional extra CA file of `tls.ca_file`.
//! [`install`] is called once at start-up (by `roles::run`) and replaces the process-wide configuration; a client
//! that needs TLS before any install gets the system roots alone. Reading and checking a CA file is
//! [`read_ca_file`], which config validation uses too. This module must not open connections, and it offers no
//! way to turn verification off.

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// Why a TLS client configuration cannot be built.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TlsError {
    /// The extra CA file cannot be read.
    #[error("tls.ca_file {path} cannot be read: {reason}")]
    CaFileUnreadable {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The extra CA file holds no usable PEM certificate.
    #[error("tls.ca_file {path} is not a PEM CA bundle: {reason}")]
    CaFileInvalid {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("cannot configure TLS: {0}")]
    Config(String),
}

static INSTALLED: RwLock<Option<Arc<ClientConfig>>> = RwLock::new(None);

/// Reads a PEM file of CA certificates (`-----BEGIN CERTIFICATE-----` blocks), refusing a file that cannot be read,
/// that holds a malformed block, or that holds no certificate at all.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path)
        .map_err(|error| TlsError::CaFileUnreadable { path: shown.clone(), reason: error.to_string() })?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::CaFileInvalid { path: shown.clone(), reason: error.to_string() })?;
    if certificates.is_empty() {
        return Err(TlsError::CaFileInvalid { path: shown, reason: "it holds no CERTIFICATE block".into() });
    }
    let mut store = RootCertStore::empty();
    let (_, ignored) = store.add_parsable_certificates(certificates.iter().cloned());
    if store.is_empty() {
        return Err(TlsError::CaFileInvalid {
            path: shown,
            reason: format!("none of its {ignored} certificates can be used as a trust anchor"),
        });
    }
    Ok(certificates)
}

/// Builds the client configuration (system roots plus `ca_file`, if given) and makes it the one every
/// [`super::http_client::HttpClient`] created afterwards uses. Called at start-up.
pub fn install(ca_file: Option<&Path>) -> Result<(), TlsError> {
    let extra = match ca_file {
        Some(path) => read_ca_file(path)?,
        None => Vec::new(),
    };
    let config = build(extra)?;
    *INSTALLED.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(config);
    Ok(())
}

/// The installed client configuration, else one with the system roots alone (built once, then kept).
pub fn client_config() -> Result<Arc<ClientConfig>, TlsError> {
    if let Some(config) = INSTALLED.read().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref() {
        return Ok(config.clone());
    }
    let config = build(Vec::new())?;
    let mut installed = INSTALLED.write().unwrap_or_else(std::sync::PoisonError::into_inner);
    Ok(installed.get_or_insert(config).clone())
}

fn build(extra: Vec<CertificateDer<'static>>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::warn!(%error, "a system CA certificate location cannot be read");
    }
    let (system, _) = roots.add_parsable_certificates(native.certs);
    let (added, _) = roots.add_parsable_certificates(extra);
    if roots.is_empty() {
        tracing::warn!("no trusted CA certificate: every https:// request will fail certificate verification");
    }
    tracing::debug!(system, extra = added, "TLS trust roots loaded");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::Config(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Whether `error` (or one of its causes) is a TLS failure (a certificate refused, a handshake failed), and why.
/// An `std::io::Error` wrapping another error is looked into (its `source()` skips the wrapped error itself, and
/// hyper-rustls wraps the rustls error twice).
pub fn tls_failure(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    find_tls(error, 0)
}

fn find_tls(error: &(dyn std::error::Error + 'static), depth: usize) -> Option<String> {
    if depth > 16 {
        return None;
    }
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return Some(tls.to_string());
    }
    if let Some(inner) = error.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref) {
        let inner: &(dyn std::error::Error + 'static) = inner;
        if let Some(found) = find_tls(inner, depth + 1) {
            return Some(found);
        }
    }
    error.source().and_then(|source| find_tls(source, depth + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_files_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let error = read_ca_file(&missing).unwrap_err();
        assert!(matches!(error, TlsError::CaFileUnreadable { .. }), "{error}");
        assert!(error.to_string().contains("tls.ca_file") && error.to_string().contains("missing.pem"), "{error}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let error = read_ca_file(&empty).unwrap_err();
        assert!(matches!(error, TlsError::CaFileInvalid { .. }), "{error}");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
        assert!(read_ca_file(&garbage).is_err());
        assert!(install(Some(&missing)).is_err());
    }

    #[test]
    fn a_generated_ca_is_read_and_installed() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, ca.pem()).unwrap();
        assert_eq!(read_ca_file(&file).unwrap().len(), 1);
        install(Some(&file)).unwrap();
        assert!(client_config().is_ok());
    }

    #[test]
    fn tls_failures_are_found_among_causes() {
        let cause = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, cause);
        let reason = tls_failure(&io).unwrap();
        assert!(reason.contains("certificate"), "{reason}");
        let twice = std::io::Error::other(io);
        assert_eq!(tls_failure(&twice), Some(reason));
        assert!(tls_failure(&std::io::Error::other("refused")).is_none());
    }
}
