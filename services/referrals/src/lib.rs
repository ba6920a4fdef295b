//! Referrals: the referral state machine, the people referred (personal data lives only
//! here), offers and their durable timers, history and idempotency keys. It consumes the
//! matcher's decisions and publishes `referral.*`.

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use futures::future::BoxFuture;
use platform::Config;
use platform::auth::Authenticator;
use sqlx::PgPool;

pub mod answer_links;
pub mod appointments;
pub mod callers;
pub mod domain;
mod http;
pub mod lifecycle;
pub mod messaging;
pub mod person_messages;
pub mod privacy;
mod store;
pub mod timers;
mod view;

pub const SCHEMA: &str = "referrals";
pub const SERVICE: &str = "referrals";

pub use messaging::queue;
pub use store::DUPLICATES_LOOKBACK;

#[derive(Clone)]
pub struct ReferralsState {
    pub pool: PgPool,
    pub auth: Authenticator,
    pub config: Arc<Config>,
    /// Seals and opens the person's data and comments (`referrals.data_keys`).
    pub vault: platform::vault::Vault,
    /// The process's broker, when it has one: intake is refused while it is blocked.
    pub broker: Option<Arc<bus::Broker>>,
}

impl FromRef<ReferralsState> for Authenticator {
    fn from_ref(s: &ReferralsState) -> Self {
        s.auth.clone()
    }
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    platform::db::migrate(pool, SCHEMA, sqlx::migrate!("./migrations")).await?;
    bus::schema::migrate(pool, SCHEMA).await?;
    platform::vault::migrate(pool, SCHEMA).await?;
    Ok(())
}

pub fn router(state: ReferralsState) -> Router {
    http::router(state)
}

/// This service's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    http::routes().into_openapi()
}

/// Opens this service's vault (creating its first data keys on first use) and seals any
/// row a database migrated from before encryption still holds in plain text.
pub async fn open_vault(
    pool: &PgPool,
    master: platform::vault::MasterKey,
    previous: Option<platform::vault::MasterKey>,
) -> anyhow::Result<platform::vault::Vault> {
    let vault = platform::vault::Vault::open(pool, SCHEMA, master, previous).await?;
    let sealed = privacy::seal_legacy(pool, &vault).await?;
    if sealed > 0 {
        tracing::info!(values = sealed, "sealed personal data stored in plain text before encryption");
    }
    Ok(vault)
}

/// Starts the consumer, the relay, the offer timers, the daily retention purge and the
/// data keys' refresh.
pub fn start(ctx: &bus::ServiceContext, vault: platform::vault::Vault) -> ReferralsState {
    ctx.spawn_relay(SCHEMA, SERVICE);
    ctx.spawn_housekeeping(SCHEMA);
    ctx.spawn_consumer(SCHEMA, SERVICE, messaging::ReferralsHandler { offer_ttl: ctx.config.offer_ttl });
    ctx.tasks.spawn(timers::run(ctx.pool.clone(), ctx.shutdown.clone()));
    // The person's messages (SMS, e-mail); a configuration error is refused at start-up
    // (Config::from_env checks both), so this only logs.
    match person_messages::Senders::from_config(&ctx.config) {
        Ok(senders) => {
            ctx.tasks.spawn(person_messages::run(ctx.pool.clone(), vault.clone(), senders, ctx.shutdown.clone()));
        }
        Err(err) => tracing::error!(error = %err, "messages to persons cannot be sent"),
    };
    let retention = ctx.config.retention;
    ctx.tasks.spawn(platform::jobs::run_daily(
        ctx.pool.clone(),
        SCHEMA,
        "retention_purge",
        ctx.shutdown.clone(),
        move |pool| async move { privacy::purge(&pool, retention, false).await },
    ));
    ctx.tasks.spawn(vault.clone().keep_fresh(ctx.pool.clone(), ctx.config.auth_refresh, ctx.shutdown.clone()));
    platform::metrics::metrics().add_collector(Arc::new(Gauges(ctx.pool.clone(), Default::default())));
    ReferralsState {
        pool: ctx.pool.clone(),
        auth: ctx.auth.clone(),
        config: Arc::clone(&ctx.config),
        vault,
        broker: Some(Arc::clone(&ctx.broker)),
    }
}

/// Pending offers and waitlist per territory, read at scrape time. Only the territories
/// it reported before and no longer sees are removed, never the whole family: the
/// families are process-wide, and other collectors (other apps in one test process)
/// report into them too.
struct Gauges(PgPool, std::sync::Mutex<Vec<String>>);

impl platform::metrics::Collector for Gauges {
    fn collect(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let Ok(mut conn) = self.0.acquire().await else { return };
            let Ok(rows) = store::gauges(&mut conn).await else { return };
            let m = platform::metrics::metrics();
            let mut reported = self.1.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for territory in reported.iter().filter(|t| !rows.iter().any(|(r, _, _)| r == *t)) {
                let labels = platform::metrics::TerritoryLabels { territory: territory.clone() };
                m.pending_offers.remove(&labels);
                m.waitlist.remove(&labels);
            }
            reported.clear();
            for (territory, offered, waitlisted) in rows {
                let labels = platform::metrics::TerritoryLabels { territory: territory.clone() };
                m.pending_offers.get_or_create(&labels).set(offered);
                m.waitlist.get_or_create(&labels).set(waitlisted);
                reported.push(territory);
            }
        })
    }
}
