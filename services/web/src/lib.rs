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
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use platform::auth::Authenticator;
use sqlx::PgPool;
use tower::ServiceExt;
use url::Url;

mod account;
mod admin;
pub mod api;
mod assets;
pub mod client;
mod coordinator;
mod csrf;
mod error;
mod extract;
mod form;
mod journal;
mod link;
mod mediator;
mod oidc;
mod public;
mod referrer;
pub mod session;
mod sign_in;
mod statistics;
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
    /// The answer links' failures per client, slowed down (`link::guard`).
    links: Arc<link::guard::Failures>,
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    platform::db::migrate(pool, SCHEMA, sqlx::migrate!("./migrations")).await?;
    Ok(())
}

impl WebState {
    /// The web app's state, without its background work (tests drive the router with
    /// `oneshot`; without OIDC settings, sign-in is off).
    pub fn new(pool: PgPool, auth: Authenticator, api: Api, config: WebConfig) -> Self {
        let config = Arc::new(config);
        let oidc =
            config.oidc.clone().map(|settings| Arc::new(oidc::Provider::new(settings, config.url("/auth/callback"))));
        WebState { pool, auth, api, config, oidc, links: Arc::new(link::guard::Failures::default()) }
    }

    /// The API as the web service itself (recording a sign-in, opening an answer link).
    pub(crate) fn as_service(&self) -> client::Client {
        let claims = platform::auth::Claims::for_service(SERVICE, extract::PAGE_TOKEN_TTL);
        client::Client::new(self.api.clone(), self.auth.ring().issue(&claims))
    }
}

/// The web app's state; starts the sweep of ended sessions and abandoned sign-ins.
pub fn start(ctx: &bus::ServiceContext, api: Api, config: WebConfig) -> WebState {
    assets::set_state_brand(config.state_brand);
    ctx.tasks.spawn(session::sweep(ctx.pool.clone(), ctx.shutdown.clone()));
    WebState::new(ctx.pool.clone(), ctx.auth.clone(), api, config)
}

/// The pages, and `api` for everything else (the API, health, metrics).
pub fn router(state: WebState, api: Router) -> Router {
    let csp = content_security_policy(&state);
    let pages = Router::new()
        .merge(sign_in::routes())
        .merge(account::routes())
        .merge(public::routes())
        .merge(statistics::routes())
        .merge(assets::routes())
        .merge(referrer::routes())
        .merge(mediator::routes())
        .merge(coordinator::routes())
        .merge(admin::routes())
        .merge(journal::routes())
        .merge(link::routes(state.links.clone()))
        .layer(middleware::from_fn(move |request: Request, next: Next| security_headers(csp.clone(), request, next)))
        .with_state(state);
    // Everything else is the API's (and health, metrics); a browser asking for an
    // unknown page gets a page, not problem+json.
    pages.fallback(move |request: Request| {
        let api = api.clone();
        async move {
            let path = request.uri().path();
            let api_path = path.starts_with("/api/") || matches!(path, "/healthz" | "/readyz" | "/metrics");
            if !api_path && wants_html(request.headers()) {
                return error::PageError::not_found().into_response();
            }
            match api.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    })
}

/// Scripts, styles and forms from this site only. Chromium applies `form-action` to the
/// redirects that follow a form: sign-out's goes to the provider's end_session_endpoint.
fn content_security_policy(state: &WebState) -> HeaderValue {
    let provider = state
        .oidc
        .as_ref()
        .and_then(|p| Url::parse(p.issuer()).ok())
        .map(|u| format!(" {}", u.origin().ascii_serialization()))
        .unwrap_or_default();
    HeaderValue::from_str(&format!(
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'{provider}; base-uri 'none'"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; base-uri 'none'"))
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"))
}

/// No framing, no script or style from elsewhere, no referrer beyond this site.
async fn security_headers(csp: HeaderValue, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
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
