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

pub mod domain;
mod http;
pub mod messaging;
pub mod notifications;
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
}

impl FromRef<AccountsState> for Authenticator {
    fn from_ref(s: &AccountsState) -> Self {
        s.auth.clone()
    }
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    platform::db::migrate(pool, SCHEMA, sqlx::migrate!("./migrations")).await?;
    bus::schema::migrate(pool, SCHEMA).await?;
    Ok(())
}

pub fn router(state: AccountsState) -> Router {
    http::router(state)
}

/// This service's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    http::routes().into_openapi()
}

/// Starts the consumer of the directory's public records.
pub fn start(ctx: &bus::ServiceContext) -> AccountsState {
    ctx.spawn_consumer(SCHEMA, SERVICE, messaging::AccountsHandler);
    ctx.spawn_housekeeping(SCHEMA);
    AccountsState { pool: ctx.pool.clone(), auth: ctx.auth.clone(), config: Arc::clone(&ctx.config) }
}
