//! Bearer tokens (JWT, HS256, signed and checked by `jsonwebtoken`) carrying a role and a
//! scope, and the axum extractors that check them.
//!
//! - **Keys have ids.** Each token names the key that signed it (`kid`). A rotation adds
//!   a key that signs from then on and gives the previous ones a retirement time, so
//!   tokens signed before keep working for an overlap.
//! - **Tokens can be revoked.** Tokens issued for machine clients are recorded in
//!   `platform.tokens`; each process reloads the revoked ids (and the keys) every
//!   [`REFRESH_EVERY`], so a revocation takes effect on every replica within a minute.
//! - **One authorisation model.** The web app calls the API with short-lived tokens for
//!   the signed-in agent's active membership ([`Claims::for_membership`]): a page can do
//!   nothing the same membership could not do with a bearer token.
//! - **Authorisation lives in handler signatures.** A handler takes [`Caller`] (any
//!   authenticated caller) or [`Authorized<R>`] (one of the roles `R` names, else 403
//!   before the handler runs), so it cannot forget the check or make it after locking a
//!   row.

use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;
use std::sync::{Arc, RwLock};
use std::time::Duration as StdDuration;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use chrono::{DateTime, Duration, Utc};
use contracts::audit::{self, Actor};
use contracts::{OrganisationId, ReferralId, Role, StructureId, Territory};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::problem::ApiError;

/// How often each process reloads signing keys and revoked tokens. A revoked token is
/// refused everywhere within this time (the contract says: within a minute).
pub const REFRESH_EVERY: StdDuration = StdDuration::from_secs(20);

/// What a caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Admin: everything.
    All,
    /// Referrer: the referrals of one organisation.
    Organisation(OrganisationId),
    /// Mediator: the offers and referrals of one structure.
    Structure(StructureId),
    /// Coordinator: aggregates of some départements.
    Territories(Vec<Territory>),
    /// The data protection officer: the audit log of access to personal data, and no
    /// personal data itself.
    Dpo,
    /// A signed-in agent with no active membership: may read who they are and ask for
    /// a membership, nothing else.
    Pending,
    /// One of Aiguillage's own services (the web app recording a sign-in).
    Service(String),
    /// A structure answering one offer through the link of its e-mail, without an
    /// account: what a mediator of that structure may do, on that one referral only.
    AnswerLink { referral: ReferralId, structure: StructureId },
}

impl Scope {
    /// The scope a role takes, from what the command line or a membership names.
    pub fn for_role(
        role: Role,
        organisation: Option<OrganisationId>,
        structure: Option<StructureId>,
        territories: Vec<Territory>,
    ) -> Result<Scope, String> {
        let given =
            [organisation.is_some(), structure.is_some(), !territories.is_empty()].iter().filter(|g| **g).count();
        let scope = match role {
            Role::Admin => Scope::All,
            Role::Referrer => Scope::Organisation(organisation.ok_or("a referrer needs an organisation")?),
            Role::Mediator => Scope::Structure(structure.ok_or("a mediator needs a structure")?),
            Role::Coordinator if territories.is_empty() => return Err("a coordinator needs territories".into()),
            Role::Coordinator => Scope::Territories(territories),
            Role::Dpo => Scope::Dpo,
        };
        let expected = usize::from(!matches!(role, Role::Admin | Role::Dpo));
        if given != expected {
            return Err(format!(
                "a {role} takes {} and nothing else",
                match role {
                    Role::Admin | Role::Dpo => "no organisation, structure or territory",
                    Role::Referrer => "one organisation",
                    Role::Mediator => "one structure",
                    Role::Coordinator => "territories",
                }
            ));
        }
        Ok(scope)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The token's own id.
    pub sub: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organisation: Option<OrganisationId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structure: Option<StructureId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub territories: Vec<Territory>,
    /// The signed-in agent's account, for tokens the web app mints.
    #[serde(default, rename = "acct", skip_serializing_if = "Option::is_none")]
    pub account: Option<Uuid>,
    /// The active membership those tokens act for.
    #[serde(default, rename = "mbr", skip_serializing_if = "Option::is_none")]
    pub membership: Option<Uuid>,
    #[serde(default, rename = "svc", skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The referral of an answer link's token (with `structure`, and no role).
    #[serde(default, rename = "lnk", skip_serializing_if = "Option::is_none")]
    pub answer_link: Option<ReferralId>,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("invalid token signature")]
    BadSignature,
    #[error("invalid token signature: unknown or retired signing key")]
    UnknownKey,
    #[error("token expired")]
    Expired,
    #[error("token revoked")]
    Revoked,
    #[error("the token's scope does not match its role")]
    BadScope,
}

/// One HMAC key and its id.
#[derive(Clone)]
pub struct Key {
    pub kid: String,
    secret: Arc<[u8]>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({}, ***)", self.kid)
    }
}

/// The key that signs new tokens and every key still accepted.
#[derive(Clone, Debug)]
pub struct KeyRing {
    current: Key,
    accepted: HashMap<String, Key>,
}

/// Kept for the many call sites that only issue: a key ring is what signs tokens.
pub type TokenKey = KeyRing;

const KEY_BYTES: usize = 32;

impl KeyRing {
    /// A ring of one key (tests, and `AIGUILLAGE_TOKEN_SECRET`).
    pub fn single(kid: impl Into<String>, secret: impl AsRef<[u8]>) -> Self {
        let key = Key { kid: kid.into(), secret: Arc::from(secret.as_ref()) };
        Self { accepted: HashMap::from([(key.kid.clone(), key.clone())]), current: key }
    }

    /// A ring of one key whose id is derived from the secret.
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(secret.as_ref());
        let kid: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        Self::single(format!("env-{kid}"), secret)
    }

    /// The key from `AIGUILLAGE_TOKEN_SECRET`, or else the keys kept in the database
    /// (the first created on first use), so that `token issue` and `serve` on the same
    /// database agree without setup.
    pub async fn load(pool: &PgPool, configured: Option<&str>) -> Result<Self, sqlx::Error> {
        if let Some(secret) = configured {
            return Ok(Self::new(secret.as_bytes()));
        }
        let mut fresh = [0u8; KEY_BYTES];
        rand::Rng::fill(&mut rand::rng(), &mut fresh);
        // The first key, once: a no-op when any key exists.
        sqlx::query(
            "INSERT INTO platform.signing_keys (kid, secret)
             SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM platform.signing_keys)
             ON CONFLICT DO NOTHING",
        )
        .bind(new_kid())
        .bind(fresh.as_slice())
        .execute(pool)
        .await?;
        let rows: Vec<(String, Vec<u8>, Option<DateTime<Utc>>)> = sqlx::query_as(
            "SELECT kid, secret, retires_at FROM platform.signing_keys
             WHERE retires_at IS NULL OR retires_at > now() ORDER BY created_at DESC, kid DESC",
        )
        .fetch_all(pool)
        .await?;
        let keys: Vec<Key> = rows
            .iter()
            .map(|(kid, secret, _)| Key { kid: kid.clone(), secret: Arc::from(secret.as_slice()) })
            .collect();
        // The newest key that no rotation has retired signs; the others only verify.
        let current = rows
            .iter()
            .zip(&keys)
            .find(|((_, _, retires), _)| retires.is_none())
            .or_else(|| rows.iter().zip(&keys).next())
            .map(|(_, k)| k.clone())
            .ok_or_else(|| sqlx::Error::RowNotFound)?;
        Ok(Self { current, accepted: keys.into_iter().map(|k| (k.kid.clone(), k)).collect() })
    }

    /// Adds a key that signs from now on; tokens signed with the previous keys stay
    /// valid for `overlap`. Returns the new key's id.
    pub async fn rotate(pool: &PgPool, overlap: StdDuration) -> Result<String, sqlx::Error> {
        let mut fresh = [0u8; KEY_BYTES];
        rand::Rng::fill(&mut rand::rng(), &mut fresh);
        let kid = new_kid();
        let overlap = Duration::from_std(overlap).unwrap_or(Duration::days(7));
        let mut tx = pool.begin().await?;
        sqlx::query("UPDATE platform.signing_keys SET retires_at = $1 WHERE retires_at IS NULL OR retires_at > $1")
            .bind(Utc::now() + overlap)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO platform.signing_keys (kid, secret) VALUES ($1, $2)")
            .bind(&kid)
            .bind(fresh.as_slice())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(kid)
    }

    /// The id of the key that signs new tokens.
    pub fn current_kid(&self) -> &str {
        &self.current.kid
    }

    pub fn issue(&self, claims: &Claims) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.current.kid.clone());
        // An HMAC key of any length, and plain claims: neither step can fail.
        EncodingKey::from_secret(&self.current.secret)
            .and_then(|key| jsonwebtoken::encode(&header, claims, &key))
            .unwrap_or_default()
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        // Only HS256: `alg: none` and every public-key algorithm are refused before any
        // signature is checked.
        if header.alg != Algorithm::HS256 {
            return Err(TokenError::Malformed);
        }
        let key = match &header.kid {
            Some(kid) => self.accepted.get(kid).ok_or(TokenError::UnknownKey)?,
            // Tokens from before key ids: only the oldest accepted key can have signed them.
            None => self.accepted.values().min_by_key(|k| k.kid.clone()).ok_or(TokenError::UnknownKey)?,
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.required_spec_claims = ["exp".to_string()].into();
        let decoding = DecodingKey::from_secret(&key.secret).map_err(|_| TokenError::UnknownKey)?;
        let data = jsonwebtoken::decode::<Claims>(token, &decoding, &validation).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
            _ => TokenError::Malformed,
        })?;
        let claims = data.claims;
        if claims.exp <= Utc::now().timestamp() {
            return Err(TokenError::Expired);
        }
        claims.scope()?;
        Ok(claims)
    }
}

fn new_kid() -> String {
    format!("k{}", Utc::now().format("%Y%m%d%H%M%S%3f"))
}

impl Claims {
    fn blank(ttl: Duration) -> Self {
        let now = Utc::now();
        Self {
            sub: Uuid::now_v7(),
            role: None,
            organisation: None,
            structure: None,
            territories: Vec::new(),
            account: None,
            membership: None,
            service: None,
            answer_link: None,
            iat: now.timestamp(),
            exp: (now + ttl).timestamp(),
        }
    }

    /// Claims for a new token of `role` over `scope`, valid for `ttl`.
    pub fn new(role: Role, scope: Scope, ttl: Duration) -> Result<Self, TokenError> {
        let mut claims = Self::blank(ttl);
        claims.role = Some(role);
        match scope {
            Scope::All | Scope::Dpo => {}
            Scope::Organisation(o) => claims.organisation = Some(o),
            Scope::Structure(s) => claims.structure = Some(s),
            Scope::Territories(t) => claims.territories = t,
            Scope::Pending | Scope::Service(_) | Scope::AnswerLink { .. } => return Err(TokenError::BadScope),
        }
        claims.scope()?;
        Ok(claims)
    }

    /// A short-lived token the web app mints for a signed-in agent's active membership.
    pub fn for_membership(
        account: Uuid,
        membership: Uuid,
        role: Role,
        scope: Scope,
        ttl: Duration,
    ) -> Result<Self, TokenError> {
        let mut claims = Self::new(role, scope, ttl)?;
        claims.account = Some(account);
        claims.membership = Some(membership);
        Ok(claims)
    }

    /// A signed-in agent with no active membership.
    pub fn for_pending_account(account: Uuid, ttl: Duration) -> Self {
        let mut claims = Self::blank(ttl);
        claims.account = Some(account);
        claims
    }

    /// A structure answering one referral through the link of its e-mail (minted by
    /// `referrals` when the link is opened, for minutes).
    pub fn for_answer_link(referral: ReferralId, structure: StructureId, ttl: Duration) -> Self {
        let mut claims = Self::blank(ttl);
        claims.answer_link = Some(referral);
        claims.structure = Some(structure);
        claims
    }

    /// One of Aiguillage's own services.
    pub fn for_service(name: &str, ttl: Duration) -> Self {
        let mut claims = Self::blank(ttl);
        claims.service = Some(name.to_string());
        claims
    }

    /// The scope the claims imply; claims that do not fit together are refused.
    pub fn scope(&self) -> Result<Scope, TokenError> {
        if let Some(referral) = self.answer_link {
            // An answer link: its structure and nothing else, no role, no agent.
            let alone = self.role.is_none()
                && self.organisation.is_none()
                && self.territories.is_empty()
                && self.account.is_none()
                && self.membership.is_none()
                && self.service.is_none();
            return match (&self.structure, alone) {
                (Some(s), true) => Ok(Scope::AnswerLink { referral, structure: s.clone() }),
                _ => Err(TokenError::BadScope),
            };
        }
        let unscoped = self.organisation.is_none() && self.structure.is_none() && self.territories.is_empty();
        match (self.role, &self.organisation, &self.structure, self.territories.is_empty()) {
            (None, ..) if unscoped && self.membership.is_none() => match (&self.service, self.account) {
                (Some(s), None) => Ok(Scope::Service(s.clone())),
                (None, Some(_)) => Ok(Scope::Pending),
                _ => Err(TokenError::BadScope),
            },
            (None, ..) => Err(TokenError::BadScope),
            _ if self.service.is_some() => Err(TokenError::BadScope),
            (Some(Role::Admin), None, None, true) => Ok(Scope::All),
            (Some(Role::Dpo), None, None, true) => Ok(Scope::Dpo),
            (Some(Role::Referrer), Some(o), None, true) => Ok(Scope::Organisation(*o)),
            (Some(Role::Mediator), None, Some(s), true) => Ok(Scope::Structure(s.clone())),
            (Some(Role::Coordinator), None, None, false) => Ok(Scope::Territories(self.territories.clone())),
            _ => Err(TokenError::BadScope),
        }
    }

    /// The scope as stored in the token registry.
    pub fn scope_json(&self) -> serde_json::Value {
        match (&self.organisation, &self.structure) {
            (Some(o), _) => serde_json::json!({ "organisation": o }),
            (_, Some(s)) => serde_json::json!({ "structure": s }),
            _ if !self.territories.is_empty() => serde_json::json!({ "territories": self.territories }),
            _ => serde_json::json!({}),
        }
    }
}

/// A bearer token in the registry, as `token list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedToken {
    pub id: Uuid,
    pub role: String,
    pub scope: serde_json::Value,
    pub label: Option<String>,
    pub kid: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Issues a bearer token for a machine client and records it, so it can be listed and
/// revoked.
pub async fn issue_recorded(
    pool: &PgPool,
    ring: &KeyRing,
    claims: &Claims,
    label: Option<&str>,
) -> Result<String, sqlx::Error> {
    let role = claims.role.map(|r| r.slug()).unwrap_or("none");
    let expires_at = DateTime::from_timestamp(claims.exp, 0).unwrap_or_else(Utc::now);
    sqlx::query(
        "INSERT INTO platform.tokens (id, role, scope, label, kid, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(claims.sub)
    .bind(role)
    .bind(claims.scope_json())
    .bind(label)
    .bind(ring.current_kid())
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(ring.issue(claims))
}

pub async fn list_tokens(pool: &PgPool) -> Result<Vec<IssuedToken>, sqlx::Error> {
    type Row =
        (Uuid, String, serde_json::Value, Option<String>, String, DateTime<Utc>, DateTime<Utc>, Option<DateTime<Utc>>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, role, scope, label, kid, issued_at, expires_at, revoked_at FROM platform.tokens
             ORDER BY issued_at DESC, id DESC",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, role, scope, label, kid, issued_at, expires_at, revoked_at)| IssuedToken {
            id,
            role,
            scope,
            label,
            kid,
            issued_at,
            expires_at,
            revoked_at,
        })
        .collect())
}

/// Revokes a recorded token. Returns whether it was found (revoking twice is fine).
pub async fn revoke_token(pool: &PgPool, id: Uuid) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE platform.tokens SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// What every service's extractors check tokens against: the keys and the revoked ids,
/// reloaded from the database every [`REFRESH_EVERY`].
#[derive(Clone, Debug)]
pub struct Authenticator {
    state: Arc<RwLock<Trust>>,
}

#[derive(Debug)]
struct Trust {
    ring: KeyRing,
    revoked: HashSet<Uuid>,
}

impl Authenticator {
    pub fn new(ring: KeyRing) -> Self {
        Self { state: Arc::new(RwLock::new(Trust { ring, revoked: HashSet::new() })) }
    }

    /// The current key ring (to issue tokens).
    pub fn ring(&self) -> KeyRing {
        self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner).ring.clone()
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let trust = self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let claims = trust.ring.verify(token)?;
        if trust.revoked.contains(&claims.sub) {
            return Err(TokenError::Revoked);
        }
        Ok(claims)
    }

    /// Reloads keys and revocations. The keys from `AIGUILLAGE_TOKEN_SECRET` never
    /// change, so only revocations are reloaded for them.
    pub async fn refresh(&self, pool: &PgPool, configured: Option<&str>) -> Result<(), sqlx::Error> {
        let ring = KeyRing::load(pool, configured).await?;
        let revoked: Vec<Uuid> =
            sqlx::query_scalar("SELECT id FROM platform.tokens WHERE revoked_at IS NOT NULL AND expires_at > now()")
                .fetch_all(pool)
                .await?;
        let mut trust = self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        trust.ring = ring;
        trust.revoked = revoked.into_iter().collect();
        Ok(())
    }

    /// Refreshes every `every` (by default [`REFRESH_EVERY`]) until `shutdown`.
    pub async fn keep_fresh(
        self,
        pool: PgPool,
        configured: Option<String>,
        every: StdDuration,
        shutdown: CancellationToken,
    ) {
        loop {
            if let Err(err) = self.refresh(&pool, configured.as_deref()).await {
                tracing::warn!(error = %err, "could not reload signing keys and revoked tokens");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    /// A bearer token for a machine client (or the command line).
    Token(Uuid),
    /// A signed-in agent, through the web app.
    Agent { account: Uuid, membership: Option<Uuid> },
    /// One of Aiguillage's services.
    Service,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token_id: Uuid,
    pub role: Option<Role>,
    pub scope: Scope,
    pub principal: Principal,
}

impl Caller {
    pub fn from_claims(claims: &Claims) -> Result<Self, TokenError> {
        let scope = claims.scope()?;
        let principal = match (claims.account, &claims.service) {
            (Some(account), _) => Principal::Agent { account, membership: claims.membership },
            (None, Some(_)) => Principal::Service,
            (None, None) => Principal::Token(claims.sub),
        };
        Ok(Caller { token_id: claims.sub, role: claims.role, scope, principal })
    }

    pub fn is_admin(&self) -> bool {
        self.scope == Scope::All
    }

    /// 403 unless the caller has one of these roles.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        match self.role {
            Some(role) if roles.contains(&role) => Ok(()),
            _ => Err(ApiError::forbidden()),
        }
    }

    /// The signed-in agent's account, if the caller is one.
    pub fn account(&self) -> Option<Uuid> {
        match self.principal {
            Principal::Agent { account, .. } => Some(account),
            _ => None,
        }
    }

    /// The organisation of a referrer.
    pub fn organisation(&self) -> Option<OrganisationId> {
        match &self.scope {
            Scope::Organisation(o) => Some(*o),
            _ => None,
        }
    }

    /// The structure of a mediator.
    pub fn structure(&self) -> Option<&StructureId> {
        match &self.scope {
            Scope::Structure(s) => Some(s),
            _ => None,
        }
    }

    /// Whether this caller may see aggregates of a territory.
    pub fn covers_territory(&self, territory: &str) -> bool {
        match &self.scope {
            Scope::All => true,
            Scope::Territories(t) => t.iter().any(|t| t.as_str() == territory),
            _ => false,
        }
    }

    /// The territories a coordinator covers (`None` for admin: all of them).
    pub fn territories(&self) -> Option<&[Territory]> {
        match &self.scope {
            Scope::Territories(t) => Some(t),
            _ => None,
        }
    }

    /// Who is behind the request, as an audit entry records it.
    pub fn audit_principal(&self) -> audit::Principal {
        match self.principal {
            Principal::Agent { account, .. } => audit::Principal::Account(account),
            Principal::Token(id) => audit::Principal::Token(id),
            Principal::Service => audit::Principal::Service,
        }
    }

    /// Who acted, for histories and audit records: ids only, never a name.
    pub fn actor(&self) -> Actor {
        let who = self.audit_principal();
        match &self.scope {
            Scope::All => Actor::Admin(who),
            Scope::Organisation(o) => Actor::Referrer(*o, who),
            Scope::Structure(s) => Actor::Mediator(s.clone(), who),
            Scope::Territories(t) => Actor::Coordinator(t.clone(), who),
            Scope::Pending => Actor::Pending(who),
            Scope::Dpo => Actor::Dpo(who),
            Scope::Service(s) => Actor::Service(s.clone()),
            Scope::AnswerLink { structure, .. } => Actor::AnswerLink(structure.clone()),
        }
    }

    /// The referral and structure of an answer link's caller.
    pub fn answer_link(&self) -> Option<(ReferralId, &StructureId)> {
        match &self.scope {
            Scope::AnswerLink { referral, structure } => Some((*referral, structure)),
            _ => None,
        }
    }
}

impl<S> FromRequestParts<S> for Caller
where
    Authenticator: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Authenticator::from_ref(state);
        let value =
            parts.headers.get(header::AUTHORIZATION).ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or_else(|| ApiError::unauthorized("expected `Authorization: Bearer <token>`"))?;
        let claims = auth.verify(token).map_err(|e| ApiError::unauthorized(e.to_string()))?;
        Caller::from_claims(&claims).map_err(|e| ApiError::unauthorized(e.to_string()))
    }
}

/// A set of roles allowed to call an endpoint.
pub trait Roles: Send + Sync + 'static {
    const ROLES: &'static [Role];
}

/// A caller with one of the roles `R` names; any other gets 403 before the handler runs.
#[derive(Debug, Clone)]
pub struct Authorized<R: Roles>(pub Caller, PhantomData<R>);

impl<R: Roles> std::ops::Deref for Authorized<R> {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.0
    }
}

impl<S, R> FromRequestParts<S> for Authorized<R>
where
    Authenticator: FromRef<S>,
    S: Send + Sync,
    R: Roles,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(R::ROLES)?;
        Ok(Authorized(caller, PhantomData))
    }
}

/// Declares role sets: `roles! { pub Referrers = [Referrer, Admin]; }`.
#[macro_export]
macro_rules! roles {
    ($( $(#[$meta:meta])* $vis:vis $name:ident = [$($role:ident),+ $(,)?]; )+) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Clone, Copy)]
            $vis struct $name;
            impl $crate::auth::Roles for $name {
                const ROLES: &'static [contracts::Role] = &[$(contracts::Role::$role),+];
            }
        )+
    };
}

/// The role sets the services' endpoints take.
pub mod roles {
    crate::roles! {
        /// Administrators only.
        pub Admins = [Admin];
        /// Coordinators (within their territories) and administrators.
        pub Coordinators = [Coordinator, Admin];
        /// Referrers only: a referral is submitted by a social service.
        pub Referrers = [Referrer];
        pub ReferrersOrAdmins = [Referrer, Admin];
        /// Mediators (of the structure concerned) and administrators.
        pub Mediators = [Mediator, Admin];
        /// Who keeps a structure's record: its mediators, its territory's coordinators, administrators.
        pub StructureKeepers = [Mediator, Coordinator, Admin];
        /// Who may preview where a referral could go.
        pub Previewers = [Referrer, Coordinator, Admin];
        /// Who may read the audit log of access to personal data.
        pub Auditors = [Admin, Dpo];
    }
}

/// A caller that is one of Aiguillage's own services.
#[derive(Debug, Clone)]
pub struct ServiceCaller(pub String);

impl<S> FromRequestParts<S> for ServiceCaller
where
    Authenticator: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Caller::from_request_parts(parts, state).await?.scope {
            Scope::Service(name) => Ok(ServiceCaller(name)),
            _ => Err(ApiError::forbidden()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn key() -> KeyRing {
        KeyRing::single("k1", b"test secret")
    }

    #[test]
    fn a_token_round_trips_its_role_and_scope() {
        let org = OrganisationId::new();
        let claims = Claims::new(Role::Referrer, Scope::Organisation(org), Duration::days(1)).unwrap();
        let token = key().issue(&claims);
        let back = key().verify(&token).unwrap();
        assert_eq!(back, claims);
        assert_eq!(back.scope().unwrap(), Scope::Organisation(org));
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some("k1"));
    }

    #[test]
    fn a_token_signed_with_another_key_is_refused() {
        let claims = Claims::new(Role::Admin, Scope::All, Duration::days(1)).unwrap();
        let token = KeyRing::single("k1", b"other").issue(&claims);
        assert_eq!(key().verify(&token), Err(TokenError::BadSignature));
        let token = KeyRing::single("k9", b"test secret").issue(&claims);
        assert_eq!(key().verify(&token), Err(TokenError::UnknownKey));
    }

    #[test]
    fn a_ring_accepts_every_key_it_holds_and_signs_with_the_current_one() {
        let old = KeyRing::single("k1", b"old");
        let new = KeyRing::single("k2", b"new");
        let mut both = new.clone();
        both.accepted.insert("k1".into(), old.current.clone());
        let claims = Claims::new(Role::Admin, Scope::All, Duration::days(1)).unwrap();
        assert!(both.verify(&old.issue(&claims)).is_ok());
        assert!(both.verify(&both.issue(&claims)).is_ok());
        assert_eq!(jsonwebtoken::decode_header(both.issue(&claims)).unwrap().kid.as_deref(), Some("k2"));
        assert_eq!(new.verify(&old.issue(&claims)), Err(TokenError::UnknownKey));
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let claims = Claims::new(Role::Mediator, Scope::Structure("a".parse().unwrap()), Duration::days(1)).unwrap();
        let token = key().issue(&claims);
        let parts: Vec<&str> = token.split('.').collect();
        let mut forged = claims.clone();
        forged.role = Some(Role::Admin);
        forged.structure = None;
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let forged = format!("{}.{}.{}", parts[0], payload, parts[2]);
        assert_eq!(key().verify(&forged), Err(TokenError::BadSignature));
    }

    #[test]
    fn unsigned_and_other_algorithm_tokens_are_refused() {
        let claims = Claims::new(Role::Admin, Scope::All, Duration::days(1)).unwrap();
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        for header in [r#"{"alg":"none","typ":"JWT"}"#, r#"{"alg":"RS256","typ":"JWT","kid":"k1"}"#] {
            let token = format!("{}.{payload}.", URL_SAFE_NO_PAD.encode(header));
            assert!(key().verify(&token).is_err(), "{header}");
        }
    }

    #[test]
    fn expired_and_malformed_tokens_are_refused() {
        let claims = Claims::new(Role::Admin, Scope::All, Duration::seconds(-5)).unwrap();
        assert_eq!(key().verify(&key().issue(&claims)), Err(TokenError::Expired));
        for bad in ["", "a.b", "a.b.c.d", "not a token", "..."] {
            assert!(key().verify(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_scope_that_does_not_fit_the_role_is_refused() {
        assert_eq!(
            Claims::new(Role::Coordinator, Scope::Territories(vec![]), Duration::days(1)).unwrap_err(),
            TokenError::BadScope
        );
        assert_eq!(Claims::new(Role::Referrer, Scope::All, Duration::days(1)).unwrap_err(), TokenError::BadScope);
        assert_eq!(Claims::new(Role::Admin, Scope::Pending, Duration::days(1)).unwrap_err(), TokenError::BadScope);
    }

    #[test]
    fn agents_and_services_have_scopes_of_their_own() {
        let account = Uuid::now_v7();
        let pending = Claims::for_pending_account(account, Duration::minutes(5));
        assert_eq!(pending.scope().unwrap(), Scope::Pending);
        let caller = Caller::from_claims(&key().verify(&key().issue(&pending)).unwrap()).unwrap();
        assert_eq!(caller.account(), Some(account));
        assert!(caller.require(&[Role::Admin, Role::Referrer, Role::Mediator, Role::Coordinator]).is_err());
        let web = Claims::for_service("web", Duration::minutes(5));
        assert_eq!(web.scope().unwrap(), Scope::Service("web".into()));
        let member =
            Claims::for_membership(account, Uuid::now_v7(), Role::Admin, Scope::All, Duration::minutes(5)).unwrap();
        let caller = Caller::from_claims(&member).unwrap();
        assert!(caller.is_admin());
        assert!(matches!(caller.principal, Principal::Agent { membership: Some(_), .. }));
        // A service claim cannot be combined with a role.
        let mut forged = member.clone();
        forged.service = Some("web".into());
        assert_eq!(forged.scope(), Err(TokenError::BadScope));
    }

    #[test]
    fn a_callers_actor_is_recorded_as_it_always_was() {
        let account = Uuid::now_v7();
        let org = OrganisationId::new();
        let claims = Claims::new(Role::Referrer, Scope::Organisation(org), Duration::days(1)).unwrap();
        let token = Caller::from_claims(&claims).unwrap();
        assert_eq!(token.actor().to_string(), format!("referrer:{org}:token:{}", claims.sub));
        let territories = vec!["16".parse().unwrap(), "2A".parse().unwrap()];
        let member = Claims::for_membership(
            account,
            Uuid::now_v7(),
            Role::Coordinator,
            Scope::Territories(territories),
            Duration::minutes(5),
        )
        .unwrap();
        let agent = Caller::from_claims(&member).unwrap();
        assert_eq!(agent.actor().to_string(), format!("coordinator:16,2A:account:{account}"));
        assert_eq!(agent.audit_principal().to_string(), format!("account:{account}"));
        let web = Caller::from_claims(&Claims::for_service("web", Duration::minutes(5))).unwrap();
        assert_eq!(web.actor().to_string(), "service:web");
        assert_eq!(web.audit_principal().to_string(), "service");
    }

    #[test]
    fn a_revoked_token_is_refused_by_the_authenticator() {
        let auth = Authenticator::new(key());
        let claims = Claims::new(Role::Admin, Scope::All, Duration::days(1)).unwrap();
        let token = key().issue(&claims);
        assert!(auth.verify(&token).is_ok());
        auth.state.write().unwrap().revoked.insert(claims.sub);
        assert_eq!(auth.verify(&token), Err(TokenError::Revoked));
    }
}
