//! The `fogflow` executable: parse the command line, load the configuration, start logging and the signal
//! watcher, then run the chosen roles or subcommand. Everything else lives in the library.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use fogflow::cli::{Cli, Command, ConfigCommand};
use fogflow::config::{Config, ConfigOverrides, LogFormat, LoggingConfig};
use fogflow::operators::OperatorName;
use fogflow::role::RoleSet;
use fogflow::RunError;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `EX_USAGE`: bad command line or configuration.
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => {
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Some(Command::Operator { name }) = cli.command {
        return run_operator(name, cli.log_format);
    }
    let env: HashMap<String, String> = std::env::vars().collect();
    let overrides = ConfigOverrides { data_dir: cli.data_dir.clone(), log_format: cli.log_format };
    let config_file = match &cli.command {
        Some(Command::Config { action: ConfigCommand::Check { file: Some(file) } }) => Some(file.clone()),
        _ => cli.config.clone(),
    };
    let config = match Config::load(config_file.as_deref(), &env, &overrides) {
        Ok(config) => config,
        Err(error) => return usage_error(&error.to_string()),
    };
    if cli.print_config || matches!(cli.command, Some(Command::Config { .. })) {
        println!("{}", config.to_masked_json());
        return ExitCode::SUCCESS;
    }
    fogflow::telemetry::init(&config.logging, env.get("RUST_LOG").map(String::as_str));
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return failure(&format!("cannot start the async runtime: {error}")),
    };
    if let Some(Command::Bench(args)) = cli.command {
        return match runtime.block_on(fogflow::bench::run(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => failure(&format!("bench failed: {error:#}")),
        };
    }
    let roles = match RoleSet::parse(&cli.roles) {
        Ok(roles) => roles,
        Err(message) => return usage_error(&message),
    };
    let result = runtime.block_on(async {
        let shutdown = fogflow::shutdown::install().map_err(|error| RunError::Startup(error.to_string()))?;
        fogflow::run(Arc::new(config), roles, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is_usage() => usage_error(&error.to_string()),
        Err(error) => failure(&error.to_string()),
    }
}

/// `fogflow operator <name>`: configured only by its environment (FogFlow's task contract), not by
/// `config.json`, so a stray config file in the task's directory cannot stop it.
fn run_operator(name: OperatorName, log_format: Option<LogFormat>) -> ExitCode {
    let env: HashMap<String, String> = std::env::vars_os()
        .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)))
        .collect();
    let logging = LoggingConfig { format: log_format.unwrap_or_default(), ..LoggingConfig::default() };
    fogflow::telemetry::init(&logging, env.get("RUST_LOG").map(String::as_str));
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return failure(&format!("cannot start the async runtime: {error}")),
    };
    let code = runtime.block_on(async {
        let shutdown = match fogflow::shutdown::install() {
            Ok(shutdown) => shutdown,
            Err(error) => return failure(&format!("cannot install signal handlers: {error}")),
        };
        match fogflow::operators::run(name, &env, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) if error.is_usage() => usage_error(&format!("operator {name}: {error}")),
            Err(error) => failure(&format!("operator {name}: {error}")),
        }
    });
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    code
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("fogflow: {message}");
    ExitCode::from(EXIT_USAGE)
}

fn failure(message: &str) -> ExitCode {
    eprintln!("fogflow: {message}");
    ExitCode::FAILURE
}
