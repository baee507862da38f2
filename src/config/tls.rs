//! The `tls` section (ours): trust for outgoing `https://` requests (remote `@context`s, notifications). Its
//! validation reads the extra CA file so `config check` and start-up refuse a missing or invalid one with a
//! message naming it. Serving TLS is not this section's (see `https`, FogFlow's keys); nothing here connects.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// (ours) How outgoing `https://` requests are verified. Certificates are always verified: against the system
/// CA bundle, plus the certificates of `ca_file` when given.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsConfig {
    /// A PEM file of extra CA certificates to trust (e.g. a private CA), besides the system ones. Default none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

/// Checks the `tls` section, reading `tls.ca_file`.
pub(super) fn validate(tls: &TlsConfig) -> Result<(), ConfigError> {
    match &tls.ca_file {
        Some(path) if path.as_os_str().is_empty() => Err(ConfigError::Invalid("tls.ca_file is empty".into())),
        Some(path) => {
            crate::clients::tls::read_ca_file(path).map(|_| ()).map_err(|error| ConfigError::Invalid(error.to_string()))
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::load_text as load;

    #[test]
    fn the_ca_file_is_optional_and_read_when_given() {
        assert!(load("{}", &[]).unwrap().tls.ca_file.is_none());
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing-ca.pem");
        let error = load("{}", &[("FOGFLOW__TLS__CA_FILE", missing.to_str().unwrap())]).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("tls.ca_file") && text.contains("missing-ca.pem") && text.contains("cannot be read"));
        let not_pem = dir.path().join("not.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let error = load(&format!(r#"{{"tls":{{"ca_file":{not_pem:?}}}}}"#), &[]).unwrap_err();
        assert!(error.to_string().contains("not a PEM CA bundle"), "{error}");
        let error = load(r#"{"tls":{"ca_file":""}}"#, &[]).unwrap_err();
        assert!(error.to_string().contains("tls.ca_file is empty"), "{error}");

        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, params.self_signed(&key).unwrap().pem()).unwrap();
        let config = load("{}", &[("FOGFLOW__TLS__CA_FILE", ca.to_str().unwrap())]).unwrap();
        assert_eq!(config.tls.ca_file.as_deref(), Some(ca.as_path()));
    }
}
