//! The matcher: keeps a read model of structures and each open referral's matching
//! profile (no personal data), picks a structure for each referral, reserves its
//! capacity, waitlists what does not fit, and re-matches when capacity appears.

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use platform::Config;
use platform::auth::Authenticator;
use sqlx::PgPool;

pub mod domain;
mod http;
pub mod messaging;
pub mod routing;
mod simulation;
mod store;
pub mod worker;

pub const SCHEMA: &str = "matcher";
pub const SERVICE: &str = "matcher";

pub use messaging::queue;

#[derive(Clone)]
pub struct MatcherState {
    pub pool: PgPool,
    pub auth: Authenticator,
    pub config: Arc<Config>,
    pub matcher: Arc<routing::Matcher>,
    /// The what-if periods loaded last ([`simulation::Periods`]).
    pub periods: Arc<simulation::Periods>,
    /// The program a simulation runs in ([`Config::simulation_worker`]).
    pub simulation_worker: Option<Arc<std::path::Path>>,
}

impl FromRef<MatcherState> for Authenticator {
    fn from_ref(s: &MatcherState) -> Self {
        s.auth.clone()
    }
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    platform::db::migrate(pool, SCHEMA, sqlx::migrate!("./migrations")).await?;
    bus::schema::migrate(pool, SCHEMA).await?;
    Ok(())
}

pub fn router(state: MatcherState) -> Router {
    http::router(state)
}

/// This service's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    http::routes().into_openapi()
}

/// Starts the consumer, the relay and the waitlist worker.
pub fn start(ctx: &bus::ServiceContext) -> MatcherState {
    let matcher = Arc::new(routing::Matcher::from_config(&ctx.config));
    ctx.spawn_relay(SCHEMA, SERVICE);
    ctx.spawn_housekeeping(SCHEMA);
    ctx.spawn_consumer(SCHEMA, SERVICE, messaging::MatcherHandler { matcher: Arc::clone(&matcher) });
    ctx.tasks.spawn(worker::run(ctx.pool.clone(), Arc::clone(&matcher), ctx.shutdown.clone()));
    MatcherState {
        pool: ctx.pool.clone(),
        auth: ctx.auth.clone(),
        config: Arc::clone(&ctx.config),
        matcher,
        periods: Arc::default(),
        simulation_worker: ctx.config.simulation_worker.as_deref().map(Arc::from),
    }
}

/// `aiguillage simulation-worker`: replays one what-if job read from stdin, in the
/// background, and writes the answer to stdout (see `simulation`).
pub fn simulation_worker() -> anyhow::Result<()> {
    simulation::worker(std::io::stdin().lock(), std::io::stdout().lock())
}

pub use simulation::WORKER_COMMAND as SIMULATION_WORKER_COMMAND;
