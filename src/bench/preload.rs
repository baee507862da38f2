//! The untimed setup before `update`, `get` and `notify`: creates `Bench.0` … `Bench.<N-1>` with
//! `updateContext` over many keep-alive connections at once, failing on the first entity the broker
//! does not accept.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::client::{ClientConnection, Target, SETUP_TIMEOUT};
use super::payload::EntityId;
use super::scenarios::{RequestPlan, Scenario};

/// Creates `entities` entities over up to `connections` connections; returns how many the broker
/// acknowledged (all of them, or an error).
pub async fn preload_entities(target: Arc<Target>, entities: u64, connections: usize) -> anyhow::Result<u64> {
    let plan = Arc::new(RequestPlan::new(Scenario::Update, target.clone(), entities)?);
    let next_index = Arc::new(AtomicU64::new(0));
    let created = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let loaders = usize::try_from(entities).unwrap_or(usize::MAX).min(connections).max(1);
    let mut tasks = JoinSet::new();
    for loader_index in 0..loaders {
        let shared = (target.clone(), plan.clone(), next_index.clone(), created.clone());
        tasks.spawn(async move {
            let (target, plan, next_index, created) = shared;
            load_entities(&target, &plan, loader_index, entities, &next_index, &created).await
        });
    }
    let progress_task = tokio::spawn(print_preload_progress(created.clone(), entities));
    let result = async {
        while let Some(joined) = tasks.join_next().await {
            joined.context("a preload task failed")??;
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    progress_task.abort();
    // On error, dropping `tasks` stops the other loaders.
    result.with_context(|| format!("preloading {entities} entities into {} failed", target.url()))?;
    let total = created.load(Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("preloaded {total} entities in {seconds:.1} s ({:.0}/s)", total as f64 / seconds.max(0.001));
    Ok(total)
}

/// One loader: takes the next index until all are taken, and creates that entity.
async fn load_entities(
    target: &Target,
    plan: &RequestPlan,
    loader_index: usize,
    entities: u64,
    next_index: &AtomicU64,
    created: &AtomicU64,
) -> anyhow::Result<()> {
    let mut generator = plan.generator(loader_index);
    let mut connection: Option<ClientConnection> = None;
    loop {
        let index = next_index.fetch_add(1, Ordering::Relaxed);
        if index >= entities {
            return Ok(());
        }
        let entity = EntityId::Preloaded(index);
        // A keep-alive connection the broker closed in between is worth one retry on a fresh one.
        let mut attempts_left = 2;
        let reply = loop {
            attempts_left -= 1;
            let request = generator.update_request(entity);
            let attempt = async {
                let live = match connection.as_mut() {
                    Some(live) => live,
                    None => connection.insert(ClientConnection::connect(target).await?),
                };
                live.exchange(request).await
            };
            let outcome = tokio::time::timeout(SETUP_TIMEOUT, attempt)
                .await
                .unwrap_or_else(|_| Err(anyhow!("no answer within {} s", SETUP_TIMEOUT.as_secs())));
            match outcome {
                Ok(reply) => break reply,
                Err(error) => {
                    connection = None;
                    if attempts_left == 0 {
                        return Err(error.context(format!("creating {entity} failed")));
                    }
                }
            }
        };
        if !reply.status.is_success() {
            bail!("creating {entity}: the broker answered {}: {}", reply.status, reply.body_excerpt());
        }
        created.fetch_add(1, Ordering::Relaxed);
    }
}

async fn print_preload_progress(created: Arc<AtomicU64>, entities: u64) {
    let mut ticker = tokio::time::interval_at(Instant::now() + Duration::from_secs(1), Duration::from_secs(1));
    loop {
        ticker.tick().await;
        eprintln!("[preload] {}/{entities} entities", created.load(Ordering::Relaxed));
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::super::runner::tests::constant_server;
    use super::*;

    #[tokio::test]
    async fn preload_creates_every_entity() {
        let target = Arc::new(Target::parse(&constant_server(StatusCode::OK).await).unwrap());
        assert_eq!(preload_entities(target, 250, 8).await.unwrap(), 250);
    }

    #[tokio::test]
    async fn preload_fails_on_the_first_refused_entity() {
        let target = Arc::new(Target::parse(&constant_server(StatusCode::BAD_REQUEST).await).unwrap());
        let error = format!("{:#}", preload_entities(target, 100, 4).await.unwrap_err());
        assert!(error.starts_with("preloading 100 entities into http://127.0.0.1:"), "{error}");
        assert!(error.contains("the broker answered 400 Bad Request"), "{error}");
    }
}
