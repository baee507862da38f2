//! The command line: server roles (`--role`), and the subcommands that are not servers (`config check`,
//! `bench`, `operator <name>`).
//!
//! Parsing only; `main` acts on the result. Usage errors exit with code 64 (`EX_USAGE`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::bench::BenchArgs;
use crate::config::LogFormat;
use crate::operators::OperatorName;

/// FogFlow, the FIWARE fog-computing framework, as one binary.
#[derive(Debug, Parser)]
#[command(name = "fogflow", version, about, long_about = None)]
pub struct Cli {
    /// Roles to run: broker, discovery, master, worker, designer or all (comma list or repeated).
    #[arg(long = "role", alias = "roles", value_delimiter = ',', value_name = "ROLE")]
    pub roles: Vec<String>,

    /// Config file (FogFlow's config.json); default ./config.json when present, else built-in defaults.
    #[arg(long, short = 'f', value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Directory of the persistent stores (overrides `data_dir`).
    #[arg(long, value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,

    /// Log format (overrides `logging.format`).
    #[arg(long, value_enum, value_name = "FORMAT", global = true)]
    pub log_format: Option<LogFormat>,

    /// Print the effective configuration (secrets masked) and exit.
    #[arg(long)]
    pub print_config: bool,

    /// A subcommand instead of running roles.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands that are not server roles.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Configuration tools.
    Config {
        /// What to do with the configuration.
        #[command(subcommand)]
        action: ConfigCommand,
    },
    /// Load generator: drives a running broker and reports throughput and latency.
    Bench(BenchArgs),
    /// Run a built-in operator as a FogFlow task instance: listens on `$myport`, configured by `$adminCfg`
    /// (or `$brokerURL`) and by operator parameters given as environment variables.
    ///
    /// Parameters: counter `window_seconds` (default 5); anomaly `threshold` (default 30, until a Rule entity
    /// sets it). dummy and converter take none.
    Operator {
        /// Which operator.
        #[arg(value_enum)]
        name: OperatorName,
    },
}

/// `fogflow config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a config file and print the effective configuration with secrets masked.
    Check {
        /// The file (default: --config, else ./config.json, else built-in defaults).
        file: Option<PathBuf>,
    },
}
