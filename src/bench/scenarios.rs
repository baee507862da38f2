//! The scenarios (`--scenario`) and the request stream each one sends: [`RequestPlan`] holds what is
//! shared by all connections, [`RequestGenerator`] makes one connection's next request.

use std::fmt;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::client::{RequestBody, Target};
use super::payload::{ld_batch_body, update_context_body, EntityId, LdEntityId};

/// Path of NGSI10 `updateContext` below the broker URL.
pub const UPDATE_CONTEXT_PATH: &str = "/ngsi10/updateContext";

/// NGSI-LD batch upsert (replacing) below the broker URL, used by the `ld-*` preload.
pub const LD_UPSERT_PATH: &str = "/ngsi-ld/v1/entityOperations/upsert";

/// NGSI-LD batch upsert merging into existing entities, the request of `ld-upsert`.
pub const LD_UPSERT_UPDATE_PATH: &str = "/ngsi-ld/v1/entityOperations/upsert?options=update";

/// The NGSI-LD query of `ld-query`: about half of the preloaded entities match, the first 20 are returned.
pub const LD_QUERY_PATH: &str = "/ngsi-ld/v1/entities?type=BenchSensor&q=temperature%3E50&limit=20";

/// Path of one NGSI-LD entity (append the id).
pub const LD_ENTITY_PATH_PREFIX: &str = "/ngsi-ld/v1/entities/";

/// Range of the random `temp` values.
const TEMPERATURE_RANGE: std::ops::Range<f64> = -20.0..45.0;

/// Range of the random NGSI-LD `temperature` values (so that `temperature>50` matches about half).
pub const LD_TEMPERATURE_RANGE: std::ops::Range<f64> = 0.0..100.0;

/// What each timed request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// `updateContext` of a random preloaded entity.
    Update,
    /// `updateContext` creating a new entity per request.
    Create,
    /// `GET /ngsi10/entity/<id>` of a random preloaded entity.
    Get,
    /// `update` with a subscription on all preloaded entities and a local notification sink.
    Notify,
    /// NGSI-LD `entityOperations/upsert?options=update` of one random preloaded entity.
    LdUpsert,
    /// NGSI-LD `GET /ngsi-ld/v1/entities?type=BenchSensor&q=temperature>50&limit=20`.
    LdQuery,
    /// NGSI-LD `GET /ngsi-ld/v1/entities/<id>` of a random preloaded entity.
    LdGet,
}

impl Scenario {
    /// Whether the scenario needs `--entities` entities created before the timed run.
    pub fn needs_preload(self) -> bool {
        !matches!(self, Self::Create)
    }

    /// Whether the scenario works on NGSI-LD entities (`urn:ngsi-ld:Bench:<i>`, preloaded through NGSI-LD).
    pub fn is_ld(self) -> bool {
        matches!(self, Self::LdUpsert | Self::LdQuery | Self::LdGet)
    }

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Update => "update",
            Self::Create => "create",
            Self::Get => "get",
            Self::Notify => "notify",
            Self::LdUpsert => "ld-upsert",
            Self::LdQuery => "ld-query",
            Self::LdGet => "ld-get",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// The kind of request a plan makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestKind {
    UpdatePreloaded { entities: u64 },
    CreateNew,
    GetPreloaded { entities: u64 },
    LdUpsertPreloaded { entities: u64 },
    LdQuery,
    LdGetPreloaded { entities: u64 },
}

/// What every connection of one run shares: the target, the kind of request and the parsed fixed URIs.
#[derive(Debug)]
pub struct RequestPlan {
    target: Arc<Target>,
    kind: RequestKind,
    update_uri: Uri,
    ld_upsert_uri: Uri,
    ld_query_uri: Uri,
    run_tag: u32,
}

impl RequestPlan {
    /// The plan of `scenario` against `target`, picking among `entities` preloaded entities.
    pub fn new(scenario: Scenario, target: Arc<Target>, entities: u64) -> anyhow::Result<Self> {
        let kind = match scenario {
            Scenario::Update | Scenario::Notify => RequestKind::UpdatePreloaded { entities },
            Scenario::Create => RequestKind::CreateNew,
            Scenario::Get => RequestKind::GetPreloaded { entities },
            Scenario::LdUpsert => RequestKind::LdUpsertPreloaded { entities },
            Scenario::LdQuery => RequestKind::LdQuery,
            Scenario::LdGet => RequestKind::LdGetPreloaded { entities },
        };
        anyhow::ensure!(
            !(scenario.needs_preload() && entities == 0),
            "the {scenario} scenario needs at least one entity"
        );
        let update_uri = target.uri(UPDATE_CONTEXT_PATH)?;
        let ld_upsert_uri = target.uri(LD_UPSERT_UPDATE_PATH)?;
        let ld_query_uri = target.uri(LD_QUERY_PATH)?;
        let run_tag = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| (elapsed.as_millis() % 1_000_000_000) as u32)
            .unwrap_or_default();
        Ok(Self { target, kind, update_uri, ld_upsert_uri, ld_query_uri, run_tag })
    }

    /// Whether a response status counts as success: any 2xx, except that the NGSI-LD batch answers a
    /// partial failure with 207, which is an error here.
    pub fn accepts(&self, status: StatusCode) -> bool {
        let batch = matches!(self.kind, RequestKind::LdUpsertPreloaded { .. });
        status.is_success() && !(batch && status == StatusCode::MULTI_STATUS)
    }

    /// The request stream of connection `connection_index`.
    pub fn generator(&self, connection_index: usize) -> RequestGenerator<'_> {
        RequestGenerator { plan: self, connection_index, sequence: 0, rng: StdRng::from_entropy() }
    }
}

/// Makes one connection's requests, one after the other.
pub struct RequestGenerator<'plan> {
    plan: &'plan RequestPlan,
    connection_index: usize,
    sequence: u64,
    rng: StdRng,
}

impl RequestGenerator<'_> {
    /// The next request to send.
    pub fn next_request(&mut self) -> anyhow::Result<Request<RequestBody>> {
        let plan = self.plan;
        match plan.kind {
            RequestKind::UpdatePreloaded { entities } => {
                let entity = EntityId::Preloaded(self.rng.gen_range(0..entities));
                Ok(self.update_request(entity))
            }
            RequestKind::CreateNew => {
                let entity =
                    EntityId::New { run: plan.run_tag, connection: self.connection_index, sequence: self.sequence };
                self.sequence += 1;
                Ok(self.update_request(entity))
            }
            RequestKind::GetPreloaded { entities } => {
                let entity = EntityId::Preloaded(self.rng.gen_range(0..entities));
                let uri = plan.target.uri(&format!("/ngsi10/entity/{entity}")).context("cannot build a get request")?;
                Ok(plan.target.request(Method::GET, uri, Bytes::new()))
            }
            RequestKind::LdUpsertPreloaded { entities } => {
                let index = self.rng.gen_range(0..entities);
                let body = ld_batch_body([(index, self.rng.gen_range(LD_TEMPERATURE_RANGE))]);
                Ok(plan.target.request(Method::POST, plan.ld_upsert_uri.clone(), body))
            }
            RequestKind::LdQuery => Ok(plan.target.request(Method::GET, plan.ld_query_uri.clone(), Bytes::new())),
            RequestKind::LdGetPreloaded { entities } => {
                let entity = LdEntityId(self.rng.gen_range(0..entities));
                let uri = plan
                    .target
                    .uri(&format!("{LD_ENTITY_PATH_PREFIX}{entity}"))
                    .context("cannot build a get request")?;
                Ok(plan.target.request(Method::GET, uri, Bytes::new()))
            }
        }
    }

    /// An `updateContext` of `entity` with a random temperature.
    pub fn update_request(&mut self, entity: EntityId) -> Request<RequestBody> {
        let body = update_context_body(entity, self.rng.gen_range(TEMPERATURE_RANGE));
        self.plan.target.request(Method::POST, self.plan.update_uri.clone(), body)
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use serde_json::Value;

    use super::*;

    fn plan(scenario: Scenario, entities: u64) -> RequestPlan {
        let target = Arc::new(Target::parse("http://127.0.0.1:8070").unwrap());
        RequestPlan::new(scenario, target, entities).unwrap()
    }

    async fn body_json(request: Request<RequestBody>) -> Value {
        let bytes = request.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn update_picks_preloaded_entities() {
        let plan = plan(Scenario::Update, 5);
        let mut generator = plan.generator(0);
        for _ in 0..50 {
            let request = generator.next_request().unwrap();
            assert_eq!(request.method(), Method::POST);
            assert_eq!(request.uri(), "/ngsi10/updateContext");
            assert_eq!(request.headers()["content-type"], "application/json");
            let body = body_json(request).await;
            let id = body["contextElements"][0]["entityId"]["id"].as_str().unwrap().to_owned();
            let index: u64 = id.strip_prefix("Bench.").unwrap().parse().unwrap();
            assert!(index < 5);
        }
    }

    #[tokio::test]
    async fn create_makes_unique_ids_per_connection() {
        let plan = plan(Scenario::Create, 0);
        let mut generator = plan.generator(7);
        let first = body_json(generator.next_request().unwrap()).await;
        let second = body_json(generator.next_request().unwrap()).await;
        let tag = plan.run_tag;
        assert_eq!(first["contextElements"][0]["entityId"]["id"], format!("BenchNew.{tag}.7.0"));
        assert_eq!(second["contextElements"][0]["entityId"]["id"], format!("BenchNew.{tag}.7.1"));
    }

    #[test]
    fn get_reads_one_preloaded_entity() {
        let plan = plan(Scenario::Get, 1);
        let request = plan.generator(0).next_request().unwrap();
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri(), "/ngsi10/entity/Bench.0");
        assert!(request.headers().get("content-type").is_none());
    }

    #[tokio::test]
    async fn ld_upsert_updates_one_preloaded_entity() {
        let plan = plan(Scenario::LdUpsert, 5);
        let mut generator = plan.generator(0);
        for _ in 0..50 {
            let request = generator.next_request().unwrap();
            assert_eq!(request.method(), Method::POST);
            assert_eq!(request.uri(), "/ngsi-ld/v1/entityOperations/upsert?options=update");
            assert_eq!(request.headers()["content-type"], "application/json");
            let body = body_json(request).await;
            assert_eq!(body.as_array().unwrap().len(), 1);
            let id = body[0]["id"].as_str().unwrap();
            let index: u64 = id.strip_prefix("urn:ngsi-ld:Bench:").unwrap().parse().unwrap();
            assert!(index < 5);
            let temperature = body[0]["temperature"]["value"].as_f64().unwrap();
            assert!((0.0..=100.0).contains(&temperature), "{temperature}");
        }
    }

    #[test]
    fn ld_query_and_get_are_bodiless() {
        let request = plan(Scenario::LdQuery, 10).generator(0).next_request().unwrap();
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri(), "/ngsi-ld/v1/entities?type=BenchSensor&q=temperature%3E50&limit=20");
        assert!(request.headers().get("content-type").is_none());
        let request = plan(Scenario::LdGet, 1).generator(0).next_request().unwrap();
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri(), "/ngsi-ld/v1/entities/urn:ngsi-ld:Bench:0");
    }

    #[test]
    fn a_multi_status_is_an_ld_upsert_error_only() {
        assert!(plan(Scenario::LdUpsert, 1).accepts(StatusCode::NO_CONTENT));
        assert!(!plan(Scenario::LdUpsert, 1).accepts(StatusCode::MULTI_STATUS));
        assert!(!plan(Scenario::LdUpsert, 1).accepts(StatusCode::BAD_REQUEST));
        assert!(plan(Scenario::Update, 1).accepts(StatusCode::MULTI_STATUS));
        assert!(plan(Scenario::LdQuery, 1).accepts(StatusCode::OK));
    }

    #[test]
    fn preloading_scenarios_need_entities() {
        let target = Arc::new(Target::parse("http://127.0.0.1:8070").unwrap());
        assert!(RequestPlan::new(Scenario::Get, target.clone(), 0).is_err());
        assert!(RequestPlan::new(Scenario::LdQuery, target.clone(), 0).is_err());
        assert!(RequestPlan::new(Scenario::Create, target, 0).is_ok());
        assert!(Scenario::Notify.needs_preload() && !Scenario::Create.needs_preload());
    }
}
