//! Insights: consumes every event into per-referral facts and serves the coordinators'
//! view of queues, waitlists, the funnel and outcomes, by territory. No personal data
//! ever reaches it.

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use platform::Config;
use platform::auth::Authenticator;
use sqlx::PgPool;

mod http;
pub mod open_data;
pub mod projection;
mod queries;
pub mod secrecy;
mod store;

pub const SCHEMA: &str = "insights";
pub const SERVICE: &str = "insights";

pub use projection::queue;

#[derive(Clone)]
pub struct InsightsState {
    pub pool: PgPool,
    pub auth: Authenticator,
    pub config: Arc<Config>,
}

impl FromRef<InsightsState> for Authenticator {
    fn from_ref(s: &InsightsState) -> Self {
        s.auth.clone()
    }
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    platform::db::migrate(pool, SCHEMA, sqlx::migrate!("./migrations")).await?;
    bus::schema::migrate(pool, SCHEMA).await?;
    Ok(())
}

pub fn router(state: InsightsState) -> Router {
    http::router(state)
}

/// This service's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    http::routes().into_openapi()
}

/// Starts the consumer. Insights publishes nothing, so it has no relay.
pub fn start(ctx: &bus::ServiceContext) -> InsightsState {
    ctx.spawn_consumer(SCHEMA, SERVICE, projection::Projector);
    ctx.spawn_housekeeping(SCHEMA);
    ctx.tasks.spawn(open_data::refresh_periodically(ctx.pool.clone(), ctx.shutdown.clone().cancelled_owned()));
    InsightsState { pool: ctx.pool.clone(), auth: ctx.auth.clone(), config: Arc::clone(&ctx.config) }
}
