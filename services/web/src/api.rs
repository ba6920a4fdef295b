//! The public API, as the pages reach it: in process when the API's services run in this
//! process, else over HTTP at `AIGUILLAGE_API_URL` (the proxy of a split deployment).
//! This is the transport; [`crate::client::Client`] names the endpoints and their types.

use axum::Router;
use axum::body::{Body, Bytes};
use contracts::FieldError;
use http::{Method, Request, StatusCode, header};
use platform::ApiError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower::ServiceExt;
use url::Url;

/// Bodies the API answers are small; a page never needs more.
const BODY_LIMIT: usize = 4 * 1024 * 1024;

#[derive(Clone)]
pub enum Api {
    Local(Router),
    Remote { client: reqwest::Client, base: Url },
}

#[derive(Debug, thiserror::Error)]
pub enum ApiFailure {
    #[error("the API could not be reached: {0}")]
    Unreachable(String),
    /// The API refused, with its problem+json when it sent one.
    #[error("the API answered {status}{}", problem.as_ref().map(|p| format!(": {p}")).unwrap_or_default())]
    Status { status: StatusCode, problem: Option<ApiError> },
    /// The answer is not what the page reads: a field missing, a value outside its
    /// vocabulary. Never filled in with a guess.
    #[error("the API's answer is not the expected one: {0}")]
    Shape(String),
}

impl ApiFailure {
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ApiFailure::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The fields a 422 problem names, with their messages.
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            ApiFailure::Status { problem: Some(p), .. } => &p.errors,
            _ => &[],
        }
    }
}

/// What a request carries.
pub enum Payload {
    Empty,
    Json(Vec<u8>),
    /// A file, with its content type.
    Bytes {
        content_type: String,
        bytes: Vec<u8>,
    },
}

impl Payload {
    pub fn json<B: Serialize>(body: &B) -> Result<Self, ApiFailure> {
        serde_json::to_vec(body).map(Payload::Json).map_err(|e| ApiFailure::Shape(e.to_string()))
    }
}

impl Api {
    pub fn remote(base: Url) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Api::Remote { client, base }
    }

    /// One exchange, whatever its status: the status and the body.
    pub async fn exchange(
        &self,
        method: Method,
        path: &str,
        token: &str,
        payload: Payload,
        idempotency_key: Option<&str>,
    ) -> Result<(StatusCode, Bytes), ApiFailure> {
        let unreachable = |e: &dyn std::fmt::Display| ApiFailure::Unreachable(e.to_string());
        let (content_type, body) = match payload {
            Payload::Empty => (None, Vec::new()),
            Payload::Json(bytes) => (Some("application/json".to_string()), bytes),
            Payload::Bytes { content_type, bytes } => (Some(content_type), bytes),
        };
        match self {
            Api::Local(router) => {
                let mut request = Request::builder()
                    .method(method)
                    .uri(path)
                    .header(header::AUTHORIZATION, format!("Bearer {token}"))
                    .header(header::ACCEPT, "application/json");
                if let Some(key) = idempotency_key {
                    request = request.header("idempotency-key", key);
                }
                if let Some(content_type) = content_type {
                    request = request.header(header::CONTENT_TYPE, content_type);
                }
                let request = request.body(Body::from(body)).map_err(|e| unreachable(&e))?;
                let response = router.clone().oneshot(request).await.map_err(|e| unreachable(&e))?;
                let status = response.status();
                let bytes =
                    axum::body::to_bytes(response.into_body(), BODY_LIMIT).await.map_err(|e| unreachable(&e))?;
                Ok((status, bytes))
            }
            Api::Remote { client, base } => {
                let url = base.join(path.trim_start_matches('/')).map_err(|e| unreachable(&e))?;
                let mut request =
                    client.request(method, url).bearer_auth(token).header(header::ACCEPT, "application/json");
                if let Some(key) = idempotency_key {
                    request = request.header("idempotency-key", key);
                }
                if let Some(content_type) = content_type {
                    request = request.header(header::CONTENT_TYPE, content_type).body(body);
                }
                let response = request.send().await.map_err(|e| unreachable(&e.without_url()))?;
                let status = response.status();
                let bytes = response.bytes().await.map_err(|e| unreachable(&e.without_url()))?;
                Ok((status, bytes))
            }
        }
    }

    /// A call that must succeed, its answer read as a `T` (`()` for an empty one).
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        token: &str,
        payload: Payload,
        idempotency_key: Option<&str>,
    ) -> Result<T, ApiFailure> {
        let (status, bytes) = self.exchange(method, path, token, payload, idempotency_key).await?;
        if !status.is_success() {
            return Err(ApiFailure::Status { status, problem: serde_json::from_slice(&bytes).ok() });
        }
        let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(bytes).map_err(|e| ApiFailure::Shape(format!("{path}: {e}")))
    }

    /// A GET whose answer is not JSON (a CSV export): its bytes.
    pub async fn raw(&self, path: &str, token: &str) -> Result<Vec<u8>, ApiFailure> {
        let (status, bytes) = self.exchange(Method::GET, path, token, Payload::Empty, None).await?;
        if !status.is_success() {
            return Err(ApiFailure::Status { status, problem: serde_json::from_slice(&bytes).ok() });
        }
        Ok(bytes.to_vec())
    }
}
