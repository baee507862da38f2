//! The command line and configuration layering as seen from outside: role names, control-plane roles without a shared bus, `config
//! check`, `--print-config`, usage errors (exit code 64) and the `FOGFLOW__SECTION__KEY` environment override,
//! including a broker that really listens on the overridden port.

use std::time::Duration;

use serde_json::Value;

use crate::common::{free_port, run_cli, BrokerOptions};

fn stdout_json(output: &std::process::Output) -> Value {
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("stdout is not JSON ({error}): {text}"))
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

fn write_config(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new().suffix(".json").tempfile().expect("temp config");
    std::fs::write(file.path(), text).expect("write config");
    file
}

#[test]
fn unknown_role_exits_64_with_one_line_naming_it() {
    let output = run_cli(&["--role", "nosuch"], &[]);
    assert_eq!(output.status.code(), Some(64), "stderr: {}", stderr(&output));
    let text = stderr(&output);
    assert!(text.contains("nosuch"), "stderr does not name the role: {text}");
    assert_eq!(text.trim().lines().count(), 1, "expected a one-line error, got: {text}");
}

#[test]
fn control_plane_roles_apart_on_the_in_process_bus_exit_64_with_a_clear_message() {
    let output = run_cli(&["--role", "master"], &[("FOGFLOW__BUS", "memory")]);
    assert_eq!(output.status.code(), Some(64), "stderr: {}", stderr(&output));
    let text = stderr(&output);
    assert!(text.contains("master") && text.contains("in-process bus"), "unclear message: {text}");
    let output = run_cli(&["--role", "worker,designer"], &[("FOGFLOW__BUS", "memory")]);
    assert_eq!(output.status.code(), Some(64), "stderr: {}", stderr(&output));
    let output = run_cli(&["config", "check"], &[("FOGFLOW__BUS", "carrier-pigeon")]);
    assert_eq!(output.status.code(), Some(64), "an unknown bus is a usage error: {}", stderr(&output));
}

#[test]
fn config_check_prints_effective_config_with_secrets_masked() {
    let file = write_config(r#"{"site_id":"007","broker":{"http_port":8061},"rabbitmq":{"password":"s3cret-pass"}}"#);
    let path = file.path().to_str().unwrap();
    let output = run_cli(&["config", "check", path], &[]);
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    let raw = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(!raw.contains("s3cret-pass"), "the secret leaked: {raw}");
    let config = stdout_json(&output);
    assert_eq!(config["rabbitmq"]["password"], "********");
    assert_eq!(config["site_id"], "007");
    assert_eq!(config["broker"]["http_port"], 8061);
    assert_eq!(config["discovery"]["http_port"], 8090, "defaults fill what the file leaves out");
}

#[test]
fn config_with_a_wrong_type_exits_64_naming_the_key() {
    let file = write_config(r#"{"broker":{"http_port":"x"}}"#);
    let output = run_cli(&["config", "check", file.path().to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(64), "stdout: {}", String::from_utf8_lossy(&output.stdout));
    let text = stderr(&output);
    assert!(text.contains("http_port"), "error does not name the key: {text}");

    let output = run_cli(&["--role", "broker", "--config", file.path().to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(64), "a server start with a bad config must fail too");
    assert!(stderr(&output).contains("http_port"), "{}", stderr(&output));
}

#[test]
fn unreadable_config_path_exits_64_naming_the_file() {
    let output = run_cli(&["config", "check", "/nonexistent/fogflow-it/config.json"], &[]);
    assert_eq!(output.status.code(), Some(64));
    let text = stderr(&output);
    assert!(text.contains("/nonexistent/fogflow-it/config.json"), "error does not name the file: {text}");

    let output = run_cli(&["--role", "broker", "-f", "/nonexistent/fogflow-it/config.json"], &[]);
    assert_eq!(output.status.code(), Some(64));
    assert!(stderr(&output).contains("/nonexistent/fogflow-it/config.json"), "{}", stderr(&output));
}

#[test]
fn config_that_is_not_a_json_object_exits_64() {
    let file = write_config("[1, 2, 3]");
    let output = run_cli(&["config", "check", file.path().to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(64));
    assert!(!stderr(&output).trim().is_empty());
}

#[test]
fn env_override_wins_over_the_file_in_config_check() {
    let file = write_config(r#"{"broker":{"http_port":8061},"discovery":{"http_port":8091}}"#);
    let output = run_cli(
        &["config", "check", file.path().to_str().unwrap()],
        &[("FOGFLOW__BROKER__HTTP_PORT", "9123"), ("FOGFLOW__BROKER__NOTIFICATION__MAX_ATTEMPTS", "7")],
    );
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    let config = stdout_json(&output);
    assert_eq!(config["broker"]["http_port"], 9123);
    assert_eq!(config["broker"]["notification"]["max_attempts"], 7);
    assert_eq!(config["discovery"]["http_port"], 8091, "keys not overridden keep the file's value");
}

#[test]
fn env_override_out_of_range_exits_64() {
    let output = run_cli(&["config", "check"], &[("FOGFLOW__BROKER__HTTP_PORT", "99999")]);
    assert_eq!(output.status.code(), Some(64), "stdout: {}", String::from_utf8_lossy(&output.stdout));
    assert!(stderr(&output).contains("http_port"), "{}", stderr(&output));
}

#[test]
fn a_missing_tls_ca_file_exits_64_naming_it() {
    let missing = [("FOGFLOW__TLS__CA_FILE", "/nonexistent/fogflow-ca.pem")];
    for args in [&["config", "check"][..], &["--role", "broker"][..]] {
        let output = run_cli(args, &missing);
        assert_eq!(output.status.code(), Some(64), "{args:?}: {}", stderr(&output));
        let text = stderr(&output);
        assert!(text.contains("tls.ca_file") && text.contains("/nonexistent/fogflow-ca.pem"), "{text}");
    }
}

#[test]
fn print_config_shows_command_line_overrides_and_masks_secrets() {
    let output = run_cli(
        &["--print-config", "--data-dir", "/tmp/fogflow-it-data", "--log-format", "json"],
        &[("FOGFLOW__RABBITMQ__PASSWORD", "env-secret")],
    );
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    assert!(!String::from_utf8_lossy(&output.stdout).contains("env-secret"));
    let config = stdout_json(&output);
    assert_eq!(config["data_dir"], "/tmp/fogflow-it-data");
    assert_eq!(config["logging"]["format"], "json");
    assert_eq!(config["rabbitmq"]["password"], "********");
    assert_eq!(config["broker"]["http_port"], 8070, "built-in default");
}

#[test]
fn broker_listens_on_the_env_port_not_the_file_port() {
    let file_port = free_port();
    let file = write_config(&format!(r#"{{"broker":{{"http_port":{file_port}}}}}"#));
    let broker = BrokerOptions::new().arg("--config").arg(file.path().display()).start();
    assert_ne!(broker.port, file_port);
    assert_eq!(broker.get("/health").status, 200, "the broker answers on the env port");
    let refused = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], file_port)),
        Duration::from_secs(2),
    );
    assert!(refused.is_err(), "nothing should listen on the file's port {file_port}");
}

#[test]
fn version_flag_prints_the_version() {
    let output = run_cli(&["--version"], &[]);
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn taken_port_fails_fast_naming_the_address() {
    let holder = std::net::TcpListener::bind("0.0.0.0:0").expect("bind a port to hold");
    let port = holder.local_addr().unwrap().port().to_string();
    let data = tempfile::tempdir().unwrap();
    let output = run_cli(
        &["--role", "broker", "--data-dir", data.path().to_str().unwrap()],
        &[("FOGFLOW__BROKER__HTTP_PORT", &port), ("FOGFLOW__BROKER__USE_DISCOVERY", "false")],
    );
    assert!(!output.status.success(), "started on a taken port");
    assert!(stderr(&output).contains(&port), "error does not name the port: {}", stderr(&output));
}

#[test]
fn unusable_data_dir_fails_with_a_message_naming_it() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let path = file.path().to_str().unwrap().to_string();
    let port = free_port().to_string();
    let output = run_cli(
        &["--role", "broker", "--data-dir", &path],
        &[("FOGFLOW__BROKER__HTTP_PORT", &port), ("FOGFLOW__BROKER__USE_DISCOVERY", "false")],
    );
    assert!(!output.status.success(), "started with a data dir that is a file");
    let text = format!("{}{}", stderr(&output), String::from_utf8_lossy(&output.stdout));
    assert!(text.contains(&path), "error does not name the data dir: {text}");
}
