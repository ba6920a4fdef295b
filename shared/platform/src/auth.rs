//! Signed bearer tokens (JWT, HS256) carrying a role and a scope, and the axum extractor
//! that checks them. Authorisation lives in handler signatures: a handler that takes a
//! [`Caller`] cannot run for an unauthenticated request.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, Utc};
use contracts::{OrganisationId, Role, StructureId, Territory};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use sqlx::PgPool;
use uuid::Uuid;

use crate::problem::ApiError;

type HmacSha256 = Hmac<Sha256>;

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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The token's own id.
    pub sub: Uuid,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organisation: Option<OrganisationId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structure: Option<StructureId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub territories: Vec<Territory>,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("invalid token signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("the token's scope does not match its role")]
    BadScope,
}

/// Signs and verifies tokens.
#[derive(Clone)]
pub struct TokenKey {
    secret: Arc<[u8]>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(***)")
    }
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

impl TokenKey {
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        Self { secret: Arc::from(secret.as_ref()) }
    }

    /// The key from `AIGUILLAGE_TOKEN_SECRET`, or else the one kept in the database
    /// (created on first use), so that `token issue` and `serve` on the same
    /// database agree.
    pub async fn load(pool: &PgPool, configured: Option<&str>) -> Result<Self, sqlx::Error> {
        if let Some(secret) = configured {
            return Ok(Self::new(secret.as_bytes()));
        }
        let mut fresh = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut fresh);
        sqlx::query("INSERT INTO platform.signing_key (id, secret) VALUES (1, $1) ON CONFLICT (id) DO NOTHING")
            .bind(fresh.as_slice())
            .execute(pool)
            .await?;
        let secret: Vec<u8> =
            sqlx::query_scalar("SELECT secret FROM platform.signing_key WHERE id = 1").fetch_one(pool).await?;
        Ok(Self::new(secret))
    }

    pub fn issue(&self, claims: &Claims) -> String {
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(HEADER), URL_SAFE_NO_PAD.encode(payload));
        let signature = URL_SAFE_NO_PAD.encode(self.sign(signing_input.as_bytes()));
        format!("{signing_input}.{signature}")
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(header.as_bytes());
        mac.update(b".");
        mac.update(payload.as_bytes());
        mac.verify_slice(&signature).map_err(|_| TokenError::BadSignature)?;
        let header = URL_SAFE_NO_PAD.decode(header).map_err(|_| TokenError::Malformed)?;
        let header: serde_json::Value = serde_json::from_slice(&header).map_err(|_| TokenError::Malformed)?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return Err(TokenError::Malformed);
        }
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        if claims.exp <= Utc::now().timestamp() {
            return Err(TokenError::Expired);
        }
        claims.scope()?;
        Ok(claims)
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length.
        HmacSha256::new_from_slice(&self.secret).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
    }

    fn sign(&self, input: &[u8]) -> Vec<u8> {
        let mut mac = self.mac();
        mac.update(input);
        mac.finalize().into_bytes().to_vec()
    }
}

impl Claims {
    /// Claims for a new token valid for `ttl`.
    pub fn new(role: Role, scope: Scope, ttl: Duration) -> Result<Self, TokenError> {
        let now = Utc::now();
        let mut claims = Self {
            sub: Uuid::now_v7(),
            role,
            organisation: None,
            structure: None,
            territories: Vec::new(),
            iat: now.timestamp(),
            exp: (now + ttl).timestamp(),
        };
        match scope {
            Scope::All => {}
            Scope::Organisation(o) => claims.organisation = Some(o),
            Scope::Structure(s) => claims.structure = Some(s),
            Scope::Territories(t) => claims.territories = t,
        }
        claims.scope()?;
        Ok(claims)
    }

    /// The scope the role implies; a token whose claims do not fit its role is refused.
    pub fn scope(&self) -> Result<Scope, TokenError> {
        match (self.role, &self.organisation, &self.structure, self.territories.is_empty()) {
            (Role::Admin, None, None, true) => Ok(Scope::All),
            (Role::Referrer, Some(o), None, true) => Ok(Scope::Organisation(*o)),
            (Role::Mediator, None, Some(s), true) => Ok(Scope::Structure(s.clone())),
            (Role::Coordinator, None, None, false) => Ok(Scope::Territories(self.territories.clone())),
            _ => Err(TokenError::BadScope),
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token_id: Uuid,
    pub role: Role,
    pub scope: Scope,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.scope == Scope::All
    }

    /// 403 unless the caller has one of these roles.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) { Ok(()) } else { Err(ApiError::forbidden()) }
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
}

/// Reaches the token key from any service state.
#[derive(Clone, Debug)]
pub struct Authenticator(pub TokenKey);

impl<S> FromRequestParts<S> for Caller
where
    Authenticator: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Authenticator(key) = Authenticator::from_ref(state);
        let value =
            parts.headers.get(header::AUTHORIZATION).ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or_else(|| ApiError::unauthorized("expected `Authorization: Bearer <token>`"))?;
        let claims = key.verify(token).map_err(|e| ApiError::unauthorized(e.to_string()))?;
        let scope = claims.scope().map_err(|e| ApiError::unauthorized(e.to_string()))?;
        Ok(Caller { token_id: claims.sub, role: claims.role, scope })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key() -> TokenKey {
        TokenKey::new(b"test secret")
    }

    #[test]
    fn a_token_round_trips_its_role_and_scope() {
        let org = OrganisationId::new();
        let claims = Claims::new(Role::Referrer, Scope::Organisation(org), Duration::days(1)).unwrap();
        let token = key().issue(&claims);
        let back = key().verify(&token).unwrap();
        assert_eq!(back, claims);
        assert_eq!(back.scope().unwrap(), Scope::Organisation(org));
    }

    #[test]
    fn a_token_signed_with_another_key_is_refused() {
        let claims = Claims::new(Role::Admin, Scope::All, Duration::days(1)).unwrap();
        let token = TokenKey::new(b"other").issue(&claims);
        assert_eq!(key().verify(&token), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let claims = Claims::new(Role::Mediator, Scope::Structure("a".parse().unwrap()), Duration::days(1)).unwrap();
        let token = key().issue(&claims);
        let parts: Vec<&str> = token.split('.').collect();
        let mut forged = claims.clone();
        forged.role = Role::Admin;
        forged.structure = None;
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let forged = format!("{}.{}.{}", parts[0], payload, parts[2]);
        assert_eq!(key().verify(&forged), Err(TokenError::BadSignature));
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
    }
}
