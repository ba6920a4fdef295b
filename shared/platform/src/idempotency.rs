//! `Idempotency-Key`: the same key with the same body returns the first result; the
//! same key with another body is a conflict. Services store the key next to what it
//! created, in the same transaction.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::json::{BODY_LIMIT, read_body, require_json_content_type};
use crate::problem::ApiError;

pub const HEADER: &str = "idempotency-key";

/// The header, when present. A malformed key is refused with 422.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(HEADER) else { return Ok(Self(None)) };
        let key = value.to_str().ok().map(str::trim).filter(|k| !k.is_empty() && k.len() <= 255);
        match key {
            Some(k) if k.chars().all(|c| c.is_ascii_graphic()) => Ok(Self(Some(k.to_string()))),
            _ => Err(ApiError::invalid_field("Idempotency-Key", "must be 1 to 255 printable ASCII characters")),
        }
    }
}

/// A JSON body (like [`crate::json::Json`]) and a fingerprint of its content that
/// ignores key order and whitespace.
#[derive(Debug, Clone)]
pub struct FingerprintedJson<T> {
    pub value: T,
    pub fingerprint: String,
}

impl<S, T> FromRequest<S> for FingerprintedJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        require_json_content_type(&req)?;
        let bytes = read_body(req, BODY_LIMIT).await?;
        let value: T = crate::json::parse(&bytes)?;
        Ok(Self { value, fingerprint: fingerprint(&bytes) })
    }
}

/// SHA-256 of the canonical form of a JSON document (object keys sorted).
pub fn fingerprint(bytes: &[u8]) -> String {
    let canonical = serde_json::from_slice::<serde_json::Value>(bytes)
        .map(|v| v.to_string().into_bytes())
        .unwrap_or_else(|_| bytes.to_vec());
    let digest = Sha256::digest(&canonical);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_ignores_key_order_and_spacing() {
        assert_eq!(fingerprint(br#"{"a":1,"b":[1,2]}"#), fingerprint(b"{ \"b\": [1, 2], \"a\": 1 }"));
        assert_ne!(fingerprint(br#"{"a":1}"#), fingerprint(br#"{"a":2}"#));
    }
}
