//! Answer links (API.md, "Structures without an account: answer links"): how a structure
//! with no account answers an offer, from the link of an e-mail. A link is a capability
//! for one referral at one structure.
//!
//! - **Made at send time.** The notifications service asks for a link when it sends the
//!   e-mail ([`mint`]); the token is in that answer and in the e-mail, nowhere else. This
//!   service keeps only its SHA-256 (`referrals.answer_links.token_hash`) and finds a
//!   link by the hash of the token it is shown, never by the token. A new link replaces
//!   the structure's earlier ones for the referral.
//! - **Opened by the web app.** [`exchange`] trades a valid token for a bearer token of
//!   five minutes scoped to the link's referral and structure (`Scope::AnswerLink`), with
//!   which the page calls the endpoints a mediator of that structure calls
//!   ([`crate::callers::ForStructure`]).
//! - **Valid** ([`validity`]): while the referral is offered to the link's structure
//!   (the offer stage); then, once that structure accepted, until
//!   `AIGUILLAGE_ANSWER_LINK_TTL` after the latest of the acceptance, the link's last use
//!   and its making (the follow-up: a fresh link sent on request works at once). Anything else has ended: 410, renewable when the structure still
//!   holds the referral ([`renew`] then asks the notifications service for a fresh link).
//! - Neither a token nor its hash is ever logged, nor put on the bus.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use contracts::answer_links::{LinkSession, LinkToken, MintLink, MintedLink};
use contracts::{LinkStage, ReferralId, ReferralStatus, StructureId};
use platform::ApiError;
use platform::auth::Claims;
use platform::json::Json;
use platform::problem::PROBLEM_JSON;
use platform::problem::responses::{Authenticated, Forbidden, JsonBody, NotFound};
use rand::TryRngCore;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::callers::{FromService, Notify, Web};
use crate::store::{self, Referral};
use crate::{ReferralsState, lifecycle};

/// How long the bearer token of an opened link lasts: the page asks for another on each
/// visit.
pub const SESSION: Duration = Duration::minutes(5);

/// A fresh link is sent at most this often for a referral and structure.
pub const RENEWAL_EVERY: Duration = Duration::hours(1);

/// Random bytes of a token and of a link's CSRF token (256 bits).
const RANDOM_BYTES: usize = 32;

/// One link as stored (no token: its hash is only looked up by).
#[derive(Debug, Clone)]
pub struct Link {
    pub id: Uuid,
    pub referral_id: ReferralId,
    pub structure_id: StructureId,
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub replaced_at: Option<DateTime<Utc>>,
}

/// What a link opens now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    Open(LinkStage),
    /// Ended (answered 410): `renewable` when the structure still holds the referral
    /// (accepted or in progress), so that a fresh link may be sent to it.
    Ended {
        renewable: bool,
    },
}

/// Whether the referral is accepted or in progress at this structure.
fn held_by(r: &Referral, structure: &StructureId) -> bool {
    matches!(r.status, ReferralStatus::Accepted | ReferralStatus::InProgress)
        && r.structure_id.as_ref() == Some(structure)
}

/// Whether the referral is offered to this structure now.
fn offered_to(r: &Referral, structure: &StructureId) -> bool {
    r.offer.as_ref().is_some_and(|o| &o.structure_id == structure)
}

/// What `link` opens at `now`, for its referral `r`; `ttl` is `AIGUILLAGE_ANSWER_LINK_TTL`.
pub fn validity(r: &Referral, link: &Link, now: DateTime<Utc>, ttl: Duration) -> Validity {
    let held = held_by(r, &link.structure_id);
    if link.replaced_at.is_some() {
        return Validity::Ended { renewable: held };
    }
    if offered_to(r, &link.structure_id) {
        return Validity::Open(LinkStage::Offer);
    }
    if !held {
        return Validity::Ended { renewable: false };
    }
    // The later of the acceptance, the last use, and the link's making: a fresh link
    // sent on request (the last one had expired) opens the follow-up too.
    let since = [r.accepted_at, link.last_used_at].into_iter().flatten().fold(link.created_at, DateTime::max);
    if now < since + ttl { Validity::Open(LinkStage::FollowUp) } else { Validity::Ended { renewable: true } }
}

/// `n` bytes from the operating system's generator, URL-safe base64 without padding.
fn random_text(n: usize) -> Result<String, ApiError> {
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.try_fill_bytes(&mut bytes).map_err(ApiError::internal)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The only form in which a token is kept, and looked up.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn ttl(state: &ReferralsState) -> Duration {
    Duration::from_std(state.config.answer_link_ttl).unwrap_or(Duration::days(8))
}

/// Make a link for a structure to answer a referral (the notifications service, when it
/// sends the e-mail): while the referral is offered to that structure, or accepted (or
/// in progress) by it. The structure's earlier links for the referral end. The token is
/// in this answer only: it is kept as a hash.
#[utoipa::path(
    post,
    path = "/api/v1/answer-links",
    operation_id = "mintAnswerLink",
    tag = "referrals",
    request_body = MintLink,
    responses(
        (status = 201, description = "A fresh link (`Cache-Control: no-store`)", body = MintedLink),
        (status = 409, description = "The offer ended: the referral is neither offered to nor held by the structure",
            body = platform::ApiError, content_type = "application/problem+json"),
        Authenticated, Forbidden, NotFound, JsonBody,
    )
)]
pub async fn mint(
    State(state): State<ReferralsState>,
    _caller: FromService<Notify>,
    Json(body): Json<MintLink>,
) -> Result<Response, ApiError> {
    let MintLink { referral_id, structure_id } = body;
    let mut tx = state.pool.begin().await?;
    // Locked: two links made at once for the same structure would not replace each other.
    let r = store::lock(&mut tx, referral_id).await?.ok_or_else(ApiError::not_found)?;
    if !offered_to(&r, &structure_id) && !held_by(&r, &structure_id) {
        return Err(ApiError::conflict(format!(
            "the offer ended: the referral is {}, and neither offered to nor accepted by {structure_id}",
            r.status
        )));
    }
    let token = random_text(RANDOM_BYTES)?;
    let csrf = random_text(RANDOM_BYTES)?;
    insert(&mut tx, r.id, &structure_id, &token_hash(&token), &csrf).await?;
    tx.commit().await?;
    tracing::info!(referral_id = %r.id, structure_id = %structure_id, "answer link made");
    let minted = MintedLink { path: format!("/reponse/{token}"), token };
    Ok((StatusCode::CREATED, no_store(), axum::Json(minted)).into_response())
}

/// Open a link (the web app, for the page `/reponse/{token}`): a bearer token of five
/// minutes for the link's referral and structure, what the link opens (`offer` or
/// `follow_up`) and the CSRF token of its forms. Opening the follow-up counts as a use:
/// the link then lasts `AIGUILLAGE_ANSWER_LINK_TTL` from now.
#[utoipa::path(
    post,
    path = "/api/v1/answer-links/exchange",
    operation_id = "openAnswerLink",
    tag = "referrals",
    request_body = LinkToken,
    responses(
        (status = 200, description = "What the link opens (`Cache-Control: no-store`)", body = LinkSession),
        (status = 410, description = "The link ended (replaced, answered, expired, or the referral moved on). \
            The problem has the extension member `renewable`: `true` when a fresh link can be asked for",
            body = platform::ApiError, content_type = "application/problem+json"),
        Authenticated, Forbidden, NotFound, JsonBody,
    )
)]
pub async fn exchange(
    State(state): State<ReferralsState>,
    _caller: FromService<Web>,
    Json(body): Json<LinkToken>,
) -> Result<Response, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let link = find(&mut conn, &token_hash(&body.token)).await?.ok_or_else(ApiError::not_found)?;
    let r = store::get(&mut conn, link.referral_id).await?.ok_or_else(ApiError::not_found)?;
    let now = Utc::now();
    let stage = match validity(&r, &link, now, ttl(&state)) {
        Validity::Ended { renewable } => return Ok(ended(renewable)),
        Validity::Open(stage) => stage,
    };
    if stage == LinkStage::FollowUp {
        mark_used(&mut conn, link.id, now).await?;
    }
    let structure_name = match store::structure_contact(&mut conn, &link.structure_id).await? {
        Some(s) => s.name,
        None => r.offer.map(|o| o.structure_name).or(r.structure_name).unwrap_or_else(|| link.structure_id.to_string()),
    };
    let claims = Claims::for_answer_link(r.id, link.structure_id.clone(), SESSION);
    let session = LinkSession {
        access_token: state.auth.ring().issue(&claims),
        referral_id: r.id,
        structure_id: link.structure_id,
        structure_name,
        stage,
        csrf: link.csrf,
    };
    tracing::info!(referral_id = %session.referral_id, structure_id = %session.structure_id, stage = %stage, "answer link opened");
    Ok((no_store(), axum::Json(session)).into_response())
}

/// Ask for a fresh link (the web app, from the page of an ended link): when the
/// structure still holds the referral (accepted or in progress), the notifications
/// service sends a fresh link to its public address (`referral.answer_link_requested`),
/// at most once an hour for a referral and structure.
#[utoipa::path(
    post,
    path = "/api/v1/answer-links/renewals",
    operation_id = "renewAnswerLink",
    tag = "referrals",
    request_body = LinkToken,
    responses(
        (status = 202, description = "A fresh link will be sent to the structure's public address"),
        (status = 410, description = "Not renewable: the structure does not hold the referral (`renewable`: false)",
            body = platform::ApiError, content_type = "application/problem+json"),
        (status = 429, description = "A fresh link was asked for less than an hour ago",
            body = platform::ApiError, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds until one may be asked for again"))),
        Authenticated, Forbidden, NotFound, JsonBody,
    )
)]
pub async fn renew(
    State(state): State<ReferralsState>,
    _caller: FromService<Web>,
    Json(body): Json<LinkToken>,
) -> Result<Response, ApiError> {
    let mut tx = state.pool.begin().await?;
    let link = find(&mut tx, &token_hash(&body.token)).await?.ok_or_else(ApiError::not_found)?;
    // Locked: its event sequence moves on, and two requests at once send one link.
    let mut r = store::lock(&mut tx, link.referral_id).await?.ok_or_else(ApiError::not_found)?;
    if !held_by(&r, &link.structure_id) {
        return Ok(ended(false));
    }
    let now = Utc::now();
    if let Some(last) = last_renewal(&mut tx, r.id, &link.structure_id).await?
        && now < last + RENEWAL_EVERY
    {
        return Ok(too_soon(last + RENEWAL_EVERY - now));
    }
    record_renewal(&mut tx, link.id, now).await?;
    lifecycle::request_answer_link(&mut tx, &mut r, &link.structure_id, now).await?;
    tx.commit().await?;
    tracing::info!(referral_id = %r.id, structure_id = %link.structure_id, "fresh answer link asked for");
    Ok(StatusCode::ACCEPTED.into_response())
}

fn no_store() -> [(header::HeaderName, &'static str); 1] {
    [(header::CACHE_CONTROL, "no-store")]
}

/// 410, with the problem's extension member `renewable`.
fn ended(renewable: bool) -> Response {
    #[derive(serde::Serialize)]
    struct Ended {
        #[serde(flatten)]
        problem: ApiError,
        renewable: bool,
    }
    let detail = if renewable {
        "this link has ended; a fresh one can be sent to the structure's address"
    } else {
        "this link has ended"
    };
    let problem = ApiError::new(StatusCode::GONE, "link-ended", "Link ended", detail);
    let body = serde_json::to_vec(&Ended { problem, renewable }).unwrap_or_default();
    (StatusCode::GONE, [(header::CONTENT_TYPE, PROBLEM_JSON)], body).into_response()
}

/// 429, with `Retry-After` in whole seconds (at least one).
fn too_soon(wait: Duration) -> Response {
    let seconds = (wait.num_milliseconds().max(0) as u64).div_ceil(1000).max(1);
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too-many-requests",
        "Too many requests",
        "a fresh link was asked for less than an hour ago",
    )
    .into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// Stores a link, ending the structure's earlier ones for the referral.
async fn insert(
    conn: &mut PgConnection,
    referral: ReferralId,
    structure: &StructureId,
    hash: &[u8],
    csrf: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE referrals.answer_links SET replaced_at = now()
         WHERE referral_id = $1 AND structure_id = $2 AND replaced_at IS NULL",
        referral.as_uuid(),
        structure.as_str()
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "INSERT INTO referrals.answer_links (id, referral_id, structure_id, token_hash, csrf)
         VALUES ($1, $2, $3, $4, $5)",
        Uuid::now_v7(),
        referral.as_uuid(),
        structure.as_str(),
        hash,
        csrf
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The link whose token has this hash.
async fn find(conn: &mut PgConnection, hash: &[u8]) -> sqlx::Result<Option<Link>> {
    sqlx::query_as!(
        Link,
        r#"SELECT id, referral_id AS "referral_id: ReferralId", structure_id AS "structure_id: StructureId", csrf,
                  created_at, last_used_at, replaced_at
           FROM referrals.answer_links WHERE token_hash = $1"#,
        hash
    )
    .fetch_optional(conn)
    .await
}

async fn mark_used(conn: &mut PgConnection, id: Uuid, at: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query!("UPDATE referrals.answer_links SET last_used_at = greatest(last_used_at, $2) WHERE id = $1", id, at)
        .execute(conn)
        .await?;
    Ok(())
}

/// The last time a fresh link was asked for, through any link of this referral and
/// structure.
async fn last_renewal(
    conn: &mut PgConnection,
    referral: ReferralId,
    structure: &StructureId,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!(
        "SELECT max(renewal_requested_at) FROM referrals.answer_links WHERE referral_id = $1 AND structure_id = $2",
        referral.as_uuid(),
        structure.as_str()
    )
    .fetch_one(conn)
    .await
}

async fn record_renewal(conn: &mut PgConnection, id: Uuid, at: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query!("UPDATE referrals.answer_links SET renewal_requested_at = $2 WHERE id = $1", id, at)
        .execute(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_256_random_bits_in_url_safe_text() {
        let a = random_text(RANDOM_BYTES).unwrap();
        let b = random_text(RANDOM_BYTES).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'), "{a}");
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
    }

    #[test]
    fn a_token_is_kept_as_its_sha_256() {
        let h = token_hash("abc");
        assert_eq!(h.len(), 32);
        assert_eq!(h[..4], [0xba, 0x78, 0x16, 0xbf]);
    }

    #[test]
    fn too_soon_says_when_to_come_back_in_whole_seconds() {
        let r = too_soon(Duration::milliseconds(59 * 60 * 1000 + 1));
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "3541");
        assert_eq!(too_soon(Duration::zero()).headers()[header::RETRY_AFTER], "1");
    }
}
