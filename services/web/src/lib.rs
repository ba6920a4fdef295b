//! The web app: French, accessible pages rendered on the server, for the agents who
//! sign in with OpenID Connect (ProConnect in production).
//!
//! It owns only browser sessions (schema `web`). Everything a page shows or changes goes
//! through the public API ([`api::Api`]), with a short-lived bearer token minted for the
//! session's active membership: a page can do nothing the same membership could not do
//! with a token, and the API needs neither cookies nor CSRF.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use platform::auth::Authenticator;
use sqlx::PgPool;
use url::Url;

mod admin;
pub mod api;
mod coordinator;
mod csrf;
mod error;
mod mediator;
mod oidc;
mod pages;
mod preferences;
mod referrer;
pub mod session;
mod views;

pub use api::Api;
pub use oidc::OidcSettings;

pub const SCHEMA: &str = "web";
pub const SERVICE: &str = "web";

/// How the web app is set up (`AIGUILLAGE_PUBLIC_URL`, `AIGUILLAGE_OIDC_*`,
/// `AIGUILLAGE_SESSION_*`).
#[derive(Clone, Debug)]
pub struct WebConfig {
    /// The site's external base URL: the redirect URI and the origin forms must come from.
    pub public_url: Url,
    /// `None`: sign-in is off, and `/connexion` says so.
    pub oidc: Option<OidcSettings>,
    pub session_idle: Duration,
    pub session_max: Duration,
}

impl WebConfig {
    /// From the process's configuration; `listening` is where this process serves,
    /// the public URL when none is configured.
    pub fn from_config(config: &platform::Config, listening: std::net::SocketAddr) -> anyhow::Result<Self> {
        let public = config.public_url.clone().unwrap_or_else(|| format!("http://{listening}"));
        let public_url = Url::parse(&public)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                anyhow::anyhow!("invalid AIGUILLAGE_PUBLIC_URL: expected http(s)://host[:port], got {public:?}")
            })?;
        let oidc = OidcSettings::from_lookup(|k| config.oidc_value(k)).map_err(|e| anyhow::anyhow!("invalid {e}"))?;
        Ok(Self { public_url, oidc, session_idle: config.session_idle, session_max: config.session_max })
    }

    /// Cookies are `Secure` and `__Host-` prefixed under an https public URL.
    pub fn secure(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    pub fn origin(&self) -> String {
        self.public_url.origin().ascii_serialization()
    }

    /// `path` on this site, as an absolute URL.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.public_url.as_str().trim_end_matches('/'))
    }
}

#[derive(Clone)]
pub struct WebState {
    pub pool: PgPool,
    pub auth: Authenticator,
    pub api: Api,
    pub config: Arc<WebConfig>,
    oidc: Option<Arc<oidc::Provider>>,
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    platform::db::migrate(pool, SCHEMA, sqlx::migrate!("./migrations")).await?;
    Ok(())
}

/// The web app's state; starts the sweep of ended sessions and abandoned sign-ins.
pub fn start(ctx: &bus::ServiceContext, api: Api, config: WebConfig) -> WebState {
    let config = Arc::new(config);
    let oidc =
        config.oidc.clone().map(|settings| Arc::new(oidc::Provider::new(settings, config.url("/auth/callback"))));
    ctx.tasks.spawn(session::sweep(ctx.pool.clone(), ctx.shutdown.clone()));
    WebState { pool: ctx.pool.clone(), auth: ctx.auth.clone(), api, config, oidc }
}

/// The pages, and `api` for everything else (the API, health, metrics).
pub fn router(state: WebState, api: Router) -> Router {
    pages::router(state, api)
}
