//! The untimed setup before `update`, `get` and `notify`: creates `Bench.0` … `Bench.<N-1>` with
//! `updateContext` over many keep-alive connections at once, failing on the first entity the broker
//! does not accept. Before the `ld-*` scenarios it creates `urn:ngsi-ld:Bench:0` … through NGSI-LD
//! batch upserts of [`LD_PRELOAD_BATCH`] entities instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use http::{Method, StatusCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::client::{ClientConnection, Target, SETUP_TIMEOUT};
use super::payload::{ld_batch_body, EntityId, LdEntityId};
use super::scenarios::{RequestPlan, Scenario, LD_TEMPERATURE_RANGE, LD_UPSERT_PATH};

/// Entities per NGSI-LD batch upsert of the preload.
pub const LD_PRELOAD_BATCH: u64 = 100;

/// How the preload creates the entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// NGSI10 `updateContext` of `Bench.<i>`, one entity per request.
    Ngsi10,
    /// NGSI-LD `entityOperations/upsert` of `urn:ngsi-ld:Bench:<i>`, [`LD_PRELOAD_BATCH`] per request.
    LdBatch,
}

impl Style {
    fn batch(self) -> u64 {
        match self {
            Self::Ngsi10 => 1,
            Self::LdBatch => LD_PRELOAD_BATCH,
        }
    }
}

/// Creates `entities` NGSI10 entities over up to `connections` connections; returns how many the broker
/// acknowledged (all of them, or an error).
pub async fn preload_entities(target: Arc<Target>, entities: u64, connections: usize) -> anyhow::Result<u64> {
    preload(target, entities, connections, Style::Ngsi10).await
}

/// Creates `entities` NGSI-LD entities (`urn:ngsi-ld:Bench:<i>`, type `BenchSensor`) with batch upserts over
/// up to `connections` connections; returns how many the broker acknowledged (all of them, or an error).
pub async fn preload_ld_entities(target: Arc<Target>, entities: u64, connections: usize) -> anyhow::Result<u64> {
    preload(target, entities, connections, Style::LdBatch).await
}

async fn preload(target: Arc<Target>, entities: u64, connections: usize, style: Style) -> anyhow::Result<u64> {
    let plan = Arc::new(RequestPlan::new(Scenario::Update, target.clone(), entities)?);
    let next_index = Arc::new(AtomicU64::new(0));
    let created = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let loaders = usize::try_from(entities.div_ceil(style.batch())).unwrap_or(usize::MAX).min(connections).max(1);
    let mut tasks = JoinSet::new();
    for loader_index in 0..loaders {
        let shared = (target.clone(), plan.clone(), next_index.clone(), created.clone());
        tasks.spawn(async move {
            let (target, plan, next_index, created) = shared;
            load_entities(&target, &plan, style, loader_index, entities, &next_index, &created).await
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

/// One loader: takes the next indices until all are taken, and creates those entities.
async fn load_entities(
    target: &Target,
    plan: &RequestPlan,
    style: Style,
    loader_index: usize,
    entities: u64,
    next_index: &AtomicU64,
    created: &AtomicU64,
) -> anyhow::Result<()> {
    let mut generator = plan.generator(loader_index);
    let mut rng = StdRng::from_entropy();
    let ld_upsert_uri = target.uri(LD_UPSERT_PATH)?;
    let mut connection: Option<ClientConnection> = None;
    loop {
        let start = next_index.fetch_add(style.batch(), Ordering::Relaxed);
        if start >= entities {
            return Ok(());
        }
        let end = (start + style.batch()).min(entities);
        let (entity, ld_body) = match style {
            Style::Ngsi10 => (EntityId::Preloaded(start).to_string(), Bytes::new()),
            Style::LdBatch => {
                let body = ld_batch_body((start..end).map(|index| (index, rng.gen_range(LD_TEMPERATURE_RANGE))));
                let last = LdEntityId(end - 1);
                (format!("{} … {last}", LdEntityId(start)), body)
            }
        };
        // A keep-alive connection the broker closed in between is worth one retry on a fresh one.
        let mut attempts_left = 2;
        let reply = loop {
            attempts_left -= 1;
            let request = match style {
                Style::Ngsi10 => generator.update_request(EntityId::Preloaded(start)),
                Style::LdBatch => target.request(Method::POST, ld_upsert_uri.clone(), ld_body.clone()),
            };
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
        let accepted = match style {
            Style::Ngsi10 => reply.status.is_success(),
            // 207 reports entities that failed.
            Style::LdBatch => matches!(reply.status, StatusCode::CREATED | StatusCode::NO_CONTENT),
        };
        if !accepted {
            bail!("creating {entity}: the broker answered {}: {}", reply.status, reply.body_excerpt());
        }
        created.fetch_add(end - start, Ordering::Relaxed);
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

    #[tokio::test]
    async fn ld_preload_creates_every_entity_in_batches() {
        let target = Arc::new(Target::parse(&constant_server(StatusCode::CREATED).await).unwrap());
        assert_eq!(preload_ld_entities(target, 250, 8).await.unwrap(), 250);
    }

    #[tokio::test]
    async fn ld_preload_refuses_a_partial_batch() {
        let target = Arc::new(Target::parse(&constant_server(StatusCode::MULTI_STATUS).await).unwrap());
        let error = format!("{:#}", preload_ld_entities(target, 100, 4).await.unwrap_err());
        assert!(error.contains("creating urn:ngsi-ld:Bench:0 … urn:ngsi-ld:Bench:99"), "{error}");
        assert!(error.contains("the broker answered 207 Multi-Status"), "{error}");
    }
}
