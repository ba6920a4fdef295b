//! Notifications: tells the right people, at the right time, with no personal data of
//! the person. A consumer derives e-mails and webhook deliveries from events into an
//! outbox (with its inbox, so a replayed event sends nothing more); a sender delivers
//! e-mails over SMTP with retries and backoff; durable timers send reminders and digests;
//! a deliverer posts signed webhooks.
//!
//! Agents' e-mail addresses stay in `accounts`: notify learns who holds which membership
//! and what they chose from accounts' events (its own read model, [`agents`]), the
//! outbox holds account ids, and the sender asks accounts' API for the address at send
//! time ([`peers`]); a structure without an account answers its offers through the link of an
//! e-mail, which referrals makes when the e-mail goes.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use platform::Config;
use platform::auth::Authenticator;
use sqlx::PgPool;

pub mod agents;
mod http;
pub mod mailer;
pub mod messaging;
pub mod peers;
pub mod render;
pub mod store;
pub mod timers;
pub mod webhooks;

pub const SCHEMA: &str = "notify";
pub const SERVICE: &str = "notify";

pub use messaging::queue;

/// What notifications need from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub site: render::Site,
    pub offer_reminder_after: Duration,
    pub contact_reminder_after: Duration,
    pub webhook_allow_private: bool,
    /// A mediator who signed in within this time answers offers on their pages; a
    /// structure with none is sent its offers by e-mail, with an answer link.
    pub mediator_active_within: Duration,
}

impl Settings {
    pub fn from_config(config: &Config) -> Self {
        let public_url = config.public_url.clone().unwrap_or_else(|| format!("http://{}", config.listen));
        Self {
            site: render::Site { public_url },
            offer_reminder_after: config.offer_reminder_after,
            contact_reminder_after: config.contact_reminder_after,
            webhook_allow_private: config.webhook_allow_private,
            mediator_active_within: config.mediator_active_within,
        }
    }

    /// Who signed in after this counts as an active mediator.
    pub fn active_since(&self, now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        now - chrono::Duration::from_std(self.mediator_active_within).unwrap_or(chrono::Duration::MAX)
    }
}

#[derive(Clone)]
pub struct NotifyState {
    pub pool: PgPool,
    pub auth: Authenticator,
    pub settings: Arc<Settings>,
}

impl FromRef<NotifyState> for Authenticator {
    fn from_ref(s: &NotifyState) -> Self {
        s.auth.clone()
    }
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    platform::db::migrate(pool, SCHEMA, sqlx::migrate!("./migrations")).await?;
    bus::schema::migrate(pool, SCHEMA).await?;
    Ok(())
}

pub fn router(state: NotifyState) -> Router {
    http::router(state)
}

/// This service's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    http::routes().into_openapi()
}

/// Starts the consumer, the e-mail sender (when `AIGUILLAGE_SMTP_URL` is set), the
/// timers and the webhook deliverer. `accounts` and `referrals` reach those services'
/// API: agents' addresses and answer links are asked for when an e-mail goes.
pub fn start(
    ctx: &bus::ServiceContext,
    accounts: platform::client::ApiClient,
    referrals: platform::client::ApiClient,
) -> anyhow::Result<NotifyState> {
    let settings = Arc::new(Settings::from_config(&ctx.config));
    ctx.spawn_consumer(SCHEMA, SERVICE, messaging::Notifier { settings: Arc::clone(&settings) });
    ctx.spawn_housekeeping(SCHEMA);
    match mailer::Mailer::from_config(&ctx.config)? {
        Some(mailer) => {
            let peers = peers::Peers::new(accounts, referrals, ctx.auth.clone());
            let site = settings.site.clone();
            ctx.tasks.spawn(mailer::run(ctx.pool.clone(), Arc::new(mailer), peers, site, ctx.shutdown.clone()));
        }
        None => tracing::warn!("AIGUILLAGE_SMTP_URL is not set: e-mails are queued but not sent"),
    }
    ctx.tasks.spawn(timers::run(ctx.pool.clone(), Arc::clone(&settings), ctx.shutdown.clone()));
    let client = webhooks::client(settings.webhook_allow_private)?;
    ctx.tasks.spawn(webhooks::run(ctx.pool.clone(), client, ctx.shutdown.clone()));
    Ok(NotifyState { pool: ctx.pool.clone(), auth: ctx.auth.clone(), settings })
}
