//! `fogflow bench`: the load generator (being written).

/// Arguments of `fogflow bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Broker base URL.
    #[arg(long, default_value = "http://127.0.0.1:8070")]
    pub url: String,
}

/// Runs the benchmark.
pub async fn run(_args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("the bench harness is not written yet")
}
