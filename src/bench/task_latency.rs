//! `fogflow bench task-latency`: how fast the orchestration reacts. Against a running FogFlow (designer,
//! broker, master, worker — e.g. `fogflow --role all`), it registers a probe fog function (the built-in
//! `converter`, one task per entity), then, one launch at a time, creates an input entity and measures
//! entity-appears → task-configured (the master's `/tasks` shows the worker reported it `running`: process
//! started, inputs subscribed) and → first-output (the task's output entity is at the broker with the
//! converted value); it deletes the entity and waits for the task to go before the next launch. Prints
//! p50/p99/max of both; launches that time out are counted, not hidden.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http::{HeaderMap, Method};
use serde_json::{json, Value};

use crate::clients::http_client::HttpClient;

/// Arguments of `fogflow bench task-latency`.
#[derive(Debug, Clone, clap::Args)]
pub struct TaskLatencyArgs {
    /// Designer base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub designer: String,
    /// Broker base URL (NGSI10 under `<url>/ngsi10`).
    #[arg(long, default_value = "http://127.0.0.1:8070")]
    pub broker: String,
    /// Master REST base URL.
    #[arg(long, default_value = "http://127.0.0.1:8010")]
    pub master: String,
    /// Launches measured.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub launches: u32,
    /// Seconds one launch may take before it counts as failed.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Also print the figures as one JSON line.
    #[arg(long)]
    pub json: bool,
}

const PROBE: &str = "LatencyProbe";
const POLL: Duration = Duration::from_millis(5);

struct Client {
    http: HttpClient,
}

impl Client {
    async fn call(&self, method: Method, url: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let response = self
            .http
            .send(method.clone(), url, HeaderMap::new(), bytes)
            .await
            .with_context(|| format!("{method} {url}"))?;
        let value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        Ok((response.status, value))
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn entity(id: &str, celsius: f64) -> Value {
    json!({"contextElements": [{"entityId": {"id": id, "type": PROBE, "isPattern": false},
        "attributes": [{"name": "temperature", "type": "float", "value": celsius}]}], "updateAction": "UPDATE"})
}

/// Runs the measurement and prints the report.
pub async fn run(args: TaskLatencyArgs) -> anyhow::Result<()> {
    let client = Client { http: HttpClient::new(Duration::from_secs(2), Duration::from_secs(10)) };
    let function = json!([{"name": PROBE, "topology": {"name": PROBE, "description": "fogflow bench task-latency",
        "tasks": [{"name": "Main", "operator": "converter",
            "input_streams": [{"selected_type": PROBE, "selected_attributes": [], "groupby": "EntityID", "scoped": false}],
            "output_streams": [{"entity_type": format!("{PROBE}Out")}]}]}}]);
    let (status, answer) = client.call(Method::POST, &format!("{}/fogfunction", args.designer), Some(function)).await?;
    if status != 200 {
        bail!("the designer refused the probe fog function: {status} {answer}");
    }
    let run = uuid::Uuid::new_v4().simple().to_string();
    let timeout = Duration::from_secs(args.timeout);
    let (mut configured, mut output, mut failed) = (Vec::new(), Vec::new(), 0u32);
    for launch in 0..args.launches {
        let id = format!("Probe.{}.{launch}", &run[..8]);
        let celsius = f64::from(launch);
        let started = Instant::now();
        let (status, answer) = client
            .call(Method::POST, &format!("{}/ngsi10/updateContext", args.broker), Some(entity(&id, celsius)))
            .await?;
        if status != 200 {
            bail!("the broker refused the probe entity: {status} {answer}");
        }
        let measured = measure(&client, &args, &id, celsius * 9.0 / 5.0 + 32.0, started, timeout).await;
        match measured {
            Ok((to_running, to_output)) => {
                configured.push(to_running);
                output.push(to_output);
            }
            Err(error) => {
                failed += 1;
                eprintln!("launch {launch}: {error:#}");
            }
        }
        let delete = json!({"contextElements": [{"entityId": {"id": id, "type": PROBE}}], "updateAction": "DELETE"});
        client.call(Method::POST, &format!("{}/ngsi10/updateContext", args.broker), Some(delete)).await?;
        wait_task_gone(&client, &args, &id, timeout).await;
        eprintln!("launch {}/{}", launch + 1, args.launches);
    }
    let _ = client.call(Method::DELETE, &format!("{}/fogfunction/{PROBE}", args.designer), None).await;
    configured.sort();
    output.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("task-latency: {} launches, {} failed", args.launches, failed);
    for (name, list) in [("entity -> task configured", &configured), ("entity -> first output", &output)] {
        println!(
            "  {name:28} p50 {:8.1} ms   p99 {:8.1} ms   max {:8.1} ms",
            ms(percentile(list, 50.0)),
            ms(percentile(list, 99.0)),
            ms(list.last().copied().unwrap_or_default())
        );
    }
    if args.json {
        println!(
            "{}",
            json!({"scenario": "task-latency", "launches": args.launches, "failed": failed,
                "configured_ms": {"p50": ms(percentile(&configured, 50.0)), "p99": ms(percentile(&configured, 99.0))},
                "first_output_ms": {"p50": ms(percentile(&output, 50.0)), "p99": ms(percentile(&output, 99.0))}})
        );
    }
    Ok(())
}

/// Polls until the probe's task runs and then until its output carries `expected`.
async fn measure(
    client: &Client,
    args: &TaskLatencyArgs,
    id: &str,
    expected: f64,
    started: Instant,
    timeout: Duration,
) -> anyhow::Result<(Duration, Duration)> {
    let (to_running, output_id) = loop {
        if started.elapsed() > timeout {
            bail!("no running task for {id} within {timeout:?}");
        }
        let (_, tasks) = client.call(Method::GET, &format!("{}/tasks", args.master), None).await?;
        let task = tasks
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["Inputs"].as_array().is_some_and(|inputs| inputs.iter().any(|i| i["ID"] == id)));
        if let Some(task) = task.filter(|t| t["Status"] == "running") {
            let output_id = task["Outputs"][0]["StreamID"].as_str().unwrap_or_default().to_string();
            break (started.elapsed(), output_id);
        }
        tokio::time::sleep(POLL).await;
    };
    loop {
        if started.elapsed() > timeout {
            bail!("no output {output_id} for {id} within {timeout:?}");
        }
        let (status, element) =
            client.call(Method::GET, &format!("{}/ngsi10/entity/{output_id}", args.broker), None).await?;
        let value = element["attributes"]
            .as_array()
            .and_then(|list| list.iter().find(|a| a["name"] == "temperature_f"))
            .and_then(|a| a["value"].as_f64());
        if status == 200 && value.is_some_and(|v| (v - expected).abs() < 1e-6) {
            return Ok((to_running, started.elapsed()));
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn wait_task_gone(client: &Client, args: &TaskLatencyArgs, id: &str, timeout: Duration) {
    let started = Instant::now();
    while started.elapsed() < timeout {
        let Ok((_, tasks)) = client.call(Method::GET, &format!("{}/tasks", args.master), None).await else { return };
        let present = tasks
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["Inputs"].as_array().is_some_and(|inputs| inputs.iter().any(|i| i["ID"] == id)));
        if !present {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let list: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&list, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&list, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
        assert_eq!(percentile(&list[..1], 99.0), Duration::from_millis(1));
    }
}
