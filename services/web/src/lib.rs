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
mod assets;
mod coordinator;
mod csrf;
mod error;
mod journal;
mod mediator;
mod oidc;
mod pages;
mod preferences;
mod referrer;
pub mod session;
mod structures;
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
    /// `AIGUILLAGE_STATE_BRAND=true`: the operator is a State entity, entitled to the
    /// DSFR's "République française" block and the Marianne font. Off by default: DSFR
    /// components with a neutral header and system fonts.
    pub state_brand: bool,
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
        let state_brand = state_brand(std::env::var("AIGUILLAGE_STATE_BRAND").ok().as_deref())?;
        Ok(Self { public_url, oidc, session_idle: config.session_idle, session_max: config.session_max, state_brand })
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

/// `AIGUILLAGE_STATE_BRAND`: unset or empty is off; anything but a yes or a no is refused,
/// so a typo does not silently show (or hide) the State's brand.
fn state_brand(raw: Option<&str>) -> anyhow::Result<bool> {
    match raw.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("" | "false" | "0" | "no" | "off") => Ok(false),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some(other) => anyhow::bail!("invalid AIGUILLAGE_STATE_BRAND: expected true or false, got {other:?}"),
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
    assets::set_state_brand(config.state_brand);
    let oidc =
        config.oidc.clone().map(|settings| Arc::new(oidc::Provider::new(settings, config.url("/auth/callback"))));
    ctx.tasks.spawn(session::sweep(ctx.pool.clone(), ctx.shutdown.clone()));
    WebState { pool: ctx.pool.clone(), auth: ctx.auth.clone(), api, config, oidc }
}

/// The pages, and `api` for everything else (the API, health, metrics).
pub fn router(state: WebState, api: Router) -> Router {
    pages::router(state, api)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_state_brand_switch_takes_a_yes_or_a_no() {
        for off in [None, Some(""), Some("false"), Some("0"), Some(" No ")] {
            assert!(!super::state_brand(off).unwrap(), "{off:?}");
        }
        for on in [Some("true"), Some("1"), Some("TRUE"), Some("yes")] {
            assert!(super::state_brand(on).unwrap(), "{on:?}");
        }
        let err = super::state_brand(Some("vrai")).unwrap_err().to_string();
        assert!(err.contains("AIGUILLAGE_STATE_BRAND"), "{err}");
    }
}
