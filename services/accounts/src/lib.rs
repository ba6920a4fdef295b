//! Accounts: the agents who sign in (an OpenID identity, with a name and an e-mail
//! address, which are personal data and stay here), their memberships (a role over an
//! organisation, a structure or départements), their requests for one, invitations by
//! e-mail, and the audit of every sign-in and membership change.

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use platform::Config;
use platform::auth::Authenticator;
use sqlx::PgPool;

pub mod announce;
pub mod domain;
mod http;
pub mod messaging;
pub mod preferences;
pub mod privacy;
pub mod service;
mod store;

pub const SCHEMA: &str = "accounts";
pub const SERVICE: &str = "accounts";

pub use messaging::queue;

#[derive(Clone)]
pub struct AccountsState {
    pub pool: PgPool,
    pub auth: Authenticator,
    pub config: Arc<Config>,
    /// Seals and opens agents' names and e-mail addresses (`accounts.data_keys`).
    pub vault: platform::vault::Vault,
}

impl FromRef<AccountsState> for Authenticator {
    fn from_ref(s: &AccountsState) -> Self {
        s.auth.clone()
    }
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    platform::db::migrate(pool, SCHEMA, sqlx::migrate!("./migrations")).await?;
    bus::schema::migrate(pool, SCHEMA).await?;
    platform::vault::migrate(pool, SCHEMA).await?;
    Ok(())
}

pub fn router(state: AccountsState) -> Router {
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
        tracing::info!(rows = sealed, "sealed agents' data stored in plain text before encryption");
    }
    Ok(vault)
}

/// Starts the consumer of the directory's public records, the relay of this service's
/// events (after announcing the accounts of a database from before them), the daily
/// account purge and the data keys' refresh.
pub fn start(ctx: &bus::ServiceContext, vault: platform::vault::Vault) -> AccountsState {
    ctx.spawn_consumer(SCHEMA, SERVICE, messaging::AccountsHandler);
    ctx.spawn_relay(SCHEMA, SERVICE);
    ctx.tasks.spawn(announce_backlog(ctx.pool.clone(), ctx.shutdown.clone()));
    ctx.spawn_housekeeping(SCHEMA);
    let retention = ctx.config.account_retention;
    ctx.tasks.spawn(platform::jobs::run_daily(
        ctx.pool.clone(),
        SCHEMA,
        "account_purge",
        ctx.shutdown.clone(),
        move |pool| async move { privacy::purge(&pool, retention, false).await },
    ));
    ctx.tasks.spawn(vault.clone().keep_fresh(ctx.pool.clone(), ctx.config.auth_refresh, ctx.shutdown.clone()));
    AccountsState { pool: ctx.pool.clone(), auth: ctx.auth.clone(), config: Arc::clone(&ctx.config), vault }
}

/// [`announce::backlog`], retried until the database answers.
async fn announce_backlog(pool: PgPool, shutdown: tokio_util::sync::CancellationToken) {
    let mut wait = std::time::Duration::from_millis(500);
    loop {
        match announce::backlog(&pool).await {
            Ok(0) => return,
            Ok(n) => {
                tracing::info!(accounts = n, "announced the accounts of a database from before account events");
                return;
            }
            Err(err) => tracing::warn!(error = %err, "could not announce the accounts yet; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(std::time::Duration::from_secs(30));
    }
}
