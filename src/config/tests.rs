//! Unit tests of `src/config/mod.rs`.

use std::io::Write;

use super::*;

/// Loads a config file holding `text`, with `env` as the environment (also for the sections' own tests).
pub(super) fn load_text(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut handle = tempfile::NamedTempFile::new().unwrap();
    handle.write_all(text.as_bytes()).unwrap();
    Config::load(Some(handle.path()), &env, &ConfigOverrides::default())
}

fn load(file: Option<&str>, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    match file {
        Some(text) => load_text(text, env),
        None => {
            let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            Config::load(Some(Path::new("/nonexistent/ignored")), &env, &ConfigOverrides::default()).or_else(|_| {
                let mut handle = tempfile::NamedTempFile::new().unwrap();
                handle.write_all(b"{}").unwrap();
                Config::load(Some(handle.path()), &env, &ConfigOverrides::default())
            })
        }
    }
}

#[test]
fn defaults_match_fogflow_ports() {
    let config = load(None, &[]).unwrap();
    assert_eq!(config.broker.http_port, 8070);
    assert_eq!(config.discovery.http_port, 8090);
    assert_eq!(config.broker_id(), "Broker.001");
    assert_eq!(config.broker_url(), "http://127.0.0.1:8070/ngsi10");
}

#[test]
fn file_then_env_then_cli_layering() {
    let text = r#"{"my_hostip":"10.0.0.5","site_id":"002","broker":{"http_port":8060},
                   "designer":{"webSrvPort":8081},"rabbitmq":{"password":"s3cret"}}"#;
    let config = load(
        Some(text),
        &[("FOGFLOW__BROKER__HTTP_PORT", "9000"), ("OTHER", "x"), ("FOGFLOW__DESIGNER__WEBSRVPORT", "8082")],
    )
    .unwrap();
    assert_eq!(config.my_hostip, "10.0.0.5");
    assert_eq!(config.broker.http_port, 9000);
    assert_eq!(config.designer.web_srv_port, 8082);
    assert_eq!(config.broker_id(), "Broker.002");
    let replica = load(Some(text), &[("FOGFLOW__BROKER__INSTANCE", "fogflow-broker-1")]).unwrap();
    assert_eq!(replica.broker_id(), "Broker.002.fogflow-broker-1");
    assert!(load(Some(text), &[("FOGFLOW__BROKER__INSTANCE", "a/b")]).is_err());
    let printed = config.to_masked_json();
    assert!(!printed.contains("s3cret") && printed.contains("********"), "{printed}");
    let env: HashMap<String, String> = HashMap::new();
    let overrides = ConfigOverrides { data_dir: Some("/tmp/x".into()), log_format: Some(LogFormat::Json) };
    let mut handle = tempfile::NamedTempFile::new().unwrap();
    handle.write_all(b"{}").unwrap();
    let config = Config::load(Some(handle.path()), &env, &overrides).unwrap();
    assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
    assert_eq!(config.logging.format, LogFormat::Json);
}

#[test]
fn bad_values_are_named() {
    let error = load(Some(r#"{"broker":{"http_port":"eighty"}}"#), &[]).unwrap_err();
    assert!(error.to_string().contains("http_port"), "{error}");
    let numeric_text =
        load(Some("{}"), &[("FOGFLOW__SITE_ID", "002"), ("FOGFLOW__RABBITMQ__PASSWORD", "007")]).unwrap();
    assert_eq!(numeric_text.site_id, "002");
    assert_eq!(numeric_text.rabbitmq.password, "007");
    let flag = load(Some("{}"), &[("FOGFLOW__BROKER__USE_DISCOVERY", "false")]).unwrap();
    assert!(!flag.broker.use_discovery);
    let error = load(Some(r#"{"site_id":""}"#), &[]).unwrap_err();
    assert!(error.to_string().contains("site_id"), "{error}");
    let error = load(Some("[1,2]"), &[]).unwrap_err();
    assert!(error.to_string().contains("not a JSON object"), "{error}");
    let error = load(Some("{}"), &[("FOGFLOW__BROKER__HTTP_PORT", "99999")]).unwrap_err();
    assert!(error.to_string().contains("http_port"), "{error}");
}

#[test]
fn bus_and_rabbitmq_keys() {
    let env: HashMap<String, String> = [
        ("FOGFLOW__BUS", "rabbitmq"),
        ("FOGFLOW__RABBITMQ__PASSWORD", "from-env"),
        ("FOGFLOW__RABBITMQ__PREFETCH", "4"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = Config::load(None, &env, &ConfigOverrides::default()).unwrap();
    assert_eq!(config.bus, BusKind::Rabbitmq);
    assert_eq!(config.rabbitmq.password, "from-env");
    assert_eq!(config.rabbitmq.prefetch, 4);
    assert_eq!(config.rabbitmq_host(), "127.0.0.1");
    let core = Config { coreservice_ip: Some("10.0.0.9".into()), ..Config::default() };
    assert_eq!(core.rabbitmq_host(), "10.0.0.9");
    assert!(!config.to_masked_json().contains("from-env"));
    assert_eq!(Config::default().bus, BusKind::Auto);
    let mut bad = Config::default();
    bad.rabbitmq.prefetch = 0;
    assert!(bad.validate().is_err());
    let env: HashMap<String, String> = [("FOGFLOW__BUS".to_string(), "pigeon".to_string())].into();
    assert!(matches!(Config::load(None, &env, &ConfigOverrides::default()), Err(ConfigError::Parse(_))));
}
