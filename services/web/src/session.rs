//! Browser sessions and sign-in flows, kept in PostgreSQL (schema `web`).
//!
//! A cookie carries a random value; the database keeps only its SHA-256. A session is
//! created at sign-in and never before, so its id cannot be fixed by anyone; it ends
//! after `AIGUILLAGE_SESSION_IDLE` without use, after `AIGUILLAGE_SESSION_MAX` in any
//! case, and at sign-out.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::{Cookie, SameSite};
use http::HeaderMap;
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A sign-in must come back within this time.
pub const FLOW_TTL: Duration = Duration::from_secs(600);
const SWEEP_EVERY: Duration = Duration::from_secs(300);

/// 32 random bytes, URL-safe base64: 43 characters.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn digest(value: &str) -> Vec<u8> {
    Sha256::digest(value.as_bytes()).to_vec()
}

/// Equal strings, in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The cookies' names: `__Host-` prefixed when the site is served over https.
#[derive(Clone, Copy, Debug)]
pub struct Cookies {
    pub secure: bool,
}

impl Cookies {
    pub fn session_name(self) -> &'static str {
        if self.secure { "__Host-aiguillage_session" } else { "aiguillage_session" }
    }

    pub fn flow_name(self) -> &'static str {
        if self.secure { "__Host-aiguillage_signin" } else { "aiguillage_signin" }
    }

    fn build(self, name: &'static str, value: String, max_age: Option<Duration>) -> String {
        let mut cookie =
            Cookie::build((name, value)).path("/").http_only(true).same_site(SameSite::Lax).secure(self.secure);
        if let Some(age) = max_age {
            cookie = cookie.max_age(cookie::time::Duration::seconds(age.as_secs() as i64));
        }
        cookie.build().to_string()
    }

    pub fn session(self, value: String, max_age: Duration) -> String {
        self.build(self.session_name(), value, Some(max_age))
    }

    pub fn flow(self, value: String) -> String {
        self.build(self.flow_name(), value, Some(FLOW_TTL))
    }

    pub fn clear(self, name: &'static str) -> String {
        self.build(name, String::new(), Some(Duration::ZERO))
    }

    /// The value of cookie `name` in the request, if any.
    pub fn read(headers: &HeaderMap, name: &str) -> Option<String> {
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| Cookie::split_parse(v.to_string()))
            .filter_map(Result::ok)
            .find(|c| c.name() == name && !c.value().is_empty())
            .map(|c| c.value().to_string())
    }
}

/// A live session.
#[derive(Clone, sqlx::FromRow)]
pub struct Session {
    pub account_id: Uuid,
    pub membership_id: Option<Uuid>,
    pub csrf: String,
    pub id_token: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("account_id", &self.account_id).finish_non_exhaustive()
    }
}

/// Creates a session; returns the cookie value.
pub async fn create(
    pool: &PgPool,
    account: Uuid,
    membership: Option<Uuid>,
    id_token: &str,
    max: Duration,
) -> sqlx::Result<String> {
    let value = random_token();
    sqlx::query(
        "INSERT INTO web.sessions (id_hash, account_id, membership_id, csrf, id_token, expires_at)
         VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))",
    )
    .bind(digest(&value))
    .bind(account)
    .bind(membership)
    .bind(random_token())
    .bind(id_token)
    .bind(max.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(value)
}

/// How precisely the idle timeout is kept: a session's last use is written at most this
/// often, so most requests only read it.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

#[derive(sqlx::FromRow)]
struct Live {
    #[sqlx(flatten)]
    session: Session,
    stale: bool,
}

/// The session of that cookie value, if it is live; marks it used.
pub async fn touch(pool: &PgPool, value: &str, idle: Duration) -> sqlx::Result<Option<Session>> {
    let hash = digest(value);
    let live: Option<Live> = sqlx::query_as(
        "SELECT account_id, membership_id, csrf, id_token, last_seen_at < now() - make_interval(secs => $3) AS stale
         FROM web.sessions
         WHERE id_hash = $1 AND expires_at > now() AND last_seen_at > now() - make_interval(secs => $2)",
    )
    .bind(&hash)
    .bind(idle.as_secs_f64())
    .bind(TOUCH_EVERY.as_secs_f64())
    .fetch_optional(pool)
    .await?;
    let Some(live) = live else { return Ok(None) };
    if live.stale {
        sqlx::query("UPDATE web.sessions SET last_seen_at = now() WHERE id_hash = $1")
            .bind(&hash)
            .execute(pool)
            .await?;
    }
    Ok(Some(live.session))
}

pub async fn set_membership(pool: &PgPool, value: &str, membership: Option<Uuid>) -> sqlx::Result<()> {
    sqlx::query("UPDATE web.sessions SET membership_id = $2 WHERE id_hash = $1")
        .bind(digest(value))
        .bind(membership)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn delete(pool: &PgPool, value: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM web.sessions WHERE id_hash = $1").bind(digest(value)).execute(pool).await?;
    Ok(())
}

/// A sign-in in progress.
pub struct Flow {
    pub nonce: String,
    pub pkce_verifier: String,
    pub next: String,
}

pub async fn save_flow(
    pool: &PgPool,
    state: &str,
    browser: &str,
    nonce: &str,
    pkce_verifier: &str,
    next: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO web.sign_in_flows (state_hash, browser_hash, nonce, pkce_verifier, next) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(digest(state))
    .bind(digest(browser))
    .bind(nonce)
    .bind(pkce_verifier)
    .bind(next)
    .execute(pool)
    .await?;
    Ok(())
}

/// Why a callback's `state` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowRefused {
    Unknown,
    Expired,
    OtherBrowser,
}

/// Takes the flow of `state`: it is deleted whatever the outcome, so a state is used once.
pub async fn take_flow(pool: &PgPool, state: &str, browser: Option<&str>) -> sqlx::Result<Result<Flow, FlowRefused>> {
    let row: Option<(Vec<u8>, String, String, String, bool)> = sqlx::query_as(
        "DELETE FROM web.sign_in_flows WHERE state_hash = $1
         RETURNING browser_hash, nonce, pkce_verifier, next, created_at > now() - make_interval(secs => $2)",
    )
    .bind(digest(state))
    .bind(FLOW_TTL.as_secs_f64())
    .fetch_optional(pool)
    .await?;
    let Some((browser_hash, nonce, pkce_verifier, next, fresh)) = row else { return Ok(Err(FlowRefused::Unknown)) };
    if !fresh {
        return Ok(Err(FlowRefused::Expired));
    }
    if browser.map(digest).as_deref() != Some(browser_hash.as_slice()) {
        return Ok(Err(FlowRefused::OtherBrowser));
    }
    Ok(Ok(Flow { nonce, pkce_verifier, next }))
}

/// Deletes ended sessions and abandoned sign-ins, every few minutes.
pub async fn sweep(pool: PgPool, shutdown: CancellationToken) {
    loop {
        let swept = sqlx::query(
            "WITH s AS (DELETE FROM web.sessions WHERE expires_at < now() RETURNING 1),
                  f AS (DELETE FROM web.sign_in_flows WHERE created_at < now() - interval '1 hour' RETURNING 1)
             SELECT (SELECT count(*) FROM s) + (SELECT count(*) FROM f)",
        )
        .execute(&pool)
        .await;
        if let Err(err) = swept {
            tracing::warn!(error = %err, "could not sweep ended sessions");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
        }
    }
}

/// `next=`: only a path on this site. Anything else (`//evil.example`,
/// `https://evil.example`, `/\evil.example`) is `/`.
pub fn safe_next(next: Option<&str>) -> String {
    let Some(next) = next.map(str::trim) else { return "/".into() };
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control() || c == '\\')
        && next.len() <= 512;
    if local && !next.starts_with("/auth/") { next.to_string() } else { "/".into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn next_stays_on_the_site() {
        assert_eq!(safe_next(Some("/compte")), "/compte");
        assert_eq!(safe_next(Some("/orientations?statut=offered")), "/orientations?statut=offered");
        for evil in
            ["//evil.example", "https://evil.example", "/\\evil.example", "\\\\evil", "evil", "", " //x", "/a\\b"]
        {
            assert_eq!(safe_next(Some(evil)), "/", "{evil}");
        }
        assert_eq!(safe_next(None), "/");
        assert_eq!(safe_next(Some("/auth/login")), "/");
    }

    proptest! {
        #[test]
        fn next_is_always_a_local_path(s in ".{0,40}") {
            let next = safe_next(Some(&s));
            prop_assert!(next.starts_with('/'));
            prop_assert!(!next.starts_with("//") && !next.contains('\\'));
            prop_assert!(url::Url::parse("https://site.example").unwrap().join(&next).unwrap().host_str() == Some("site.example"));
        }
    }

    #[test]
    fn tokens_are_long_enough_for_proconnect() {
        let (a, b) = (random_token(), random_token());
        assert!(a.len() >= 32 && a != b);
        assert!(same_secret(&a, &a.clone()) && !same_secret(&a, &b));
    }

    #[test]
    fn cookies_are_http_only_and_lax_and_host_prefixed_under_https() {
        let plain = Cookies { secure: false }.session("v".into(), Duration::from_secs(60));
        assert!(
            plain.starts_with("aiguillage_session=v") && plain.contains("HttpOnly") && plain.contains("SameSite=Lax")
        );
        assert!(!plain.contains("Secure"));
        let secure = Cookies { secure: true }.session("v".into(), Duration::from_secs(60));
        assert!(
            secure.starts_with("__Host-aiguillage_session=v") && secure.contains("Secure") && secure.contains("Path=/")
        );
        let mut headers = HeaderMap::new();
        headers.insert(http::header::COOKIE, "a=1; aiguillage_session=xyz".parse().unwrap());
        assert_eq!(Cookies::read(&headers, "aiguillage_session").as_deref(), Some("xyz"));
        assert_eq!(Cookies::read(&headers, "b"), None);
    }
}
