//! The public API, as the pages call it: in process when the API's services run in this
//! process, else over HTTP at `AIGUILLAGE_API_URL` (the proxy of a split deployment).

use axum::Router;
use axum::body::Body;
use http::{Method, Request, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tower::ServiceExt;
use url::Url;

/// Bodies the API answers are small; a page never needs more.
const BODY_LIMIT: usize = 4 * 1024 * 1024;

#[derive(Clone)]
pub enum Api {
    Local(Router),
    Remote { client: reqwest::Client, base: Url },
}

/// What the API answered.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    /// An answer the page did not expect, as the error it is.
    pub fn failure(self) -> ApiFailure {
        ApiFailure::Status { status: self.status, problem: self.body }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiFailure {
    #[error("the API could not be reached: {0}")]
    Unreachable(String),
    #[error("the API answered {status}: {problem}")]
    Status { status: StatusCode, problem: Value },
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
    pub fn field_errors(&self) -> Vec<(String, String)> {
        let ApiFailure::Status { problem, .. } = self else { return vec![] };
        problem
            .get("errors")
            .and_then(Value::as_array)
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|e| {
                        Some((e.get("field")?.as_str()?.to_string(), e.get("message")?.as_str()?.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default()
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

    /// One call; any status is returned.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Result<Reply, ApiFailure> {
        self.send_idempotent(method, path, token, body, None).await
    }

    /// One call with an `Idempotency-Key` (a form sent twice creates one thing).
    pub async fn send_idempotent(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> Result<Reply, ApiFailure> {
        match self {
            Api::Local(router) => {
                let mut request = Request::builder()
                    .method(method)
                    .uri(path)
                    .header(header::AUTHORIZATION, format!("Bearer {token}"))
                    .header(header::ACCEPT, "application/json");
                if let Some(key) = key {
                    request = request.header("idempotency-key", key);
                }
                let body = match body {
                    Some(b) => {
                        request = request.header(header::CONTENT_TYPE, "application/json");
                        Body::from(serde_json::to_vec(b).map_err(|e| ApiFailure::Shape(e.to_string()))?)
                    }
                    None => Body::empty(),
                };
                let request = request.body(body).map_err(|e| ApiFailure::Unreachable(e.to_string()))?;
                let response =
                    router.clone().oneshot(request).await.map_err(|e| ApiFailure::Unreachable(e.to_string()))?;
                let status = response.status();
                let bytes = axum::body::to_bytes(response.into_body(), BODY_LIMIT)
                    .await
                    .map_err(|e| ApiFailure::Unreachable(e.to_string()))?;
                Ok(Reply { status, body: parse(&bytes) })
            }
            Api::Remote { client, base } => {
                let url =
                    base.join(path.trim_start_matches('/')).map_err(|e| ApiFailure::Unreachable(e.to_string()))?;
                let mut request =
                    client.request(method, url).bearer_auth(token).header(header::ACCEPT, "application/json");
                if let Some(b) = body {
                    request = request.json(b);
                }
                let response =
                    request.send().await.map_err(|e| ApiFailure::Unreachable(e.without_url().to_string()))?;
                let status = response.status();
                let bytes = response.bytes().await.map_err(|e| ApiFailure::Unreachable(e.without_url().to_string()))?;
                Ok(Reply { status, body: parse(&bytes) })
            }
        }
    }

    /// A POST of raw bytes (a file) with its content type; the JSON answer.
    pub async fn post_bytes(
        &self,
        path: &str,
        token: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<Reply, ApiFailure> {
        match self {
            Api::Local(router) => {
                let request = Request::builder()
                    .method(Method::POST)
                    .uri(path)
                    .header(header::AUTHORIZATION, format!("Bearer {token}"))
                    .header(header::CONTENT_TYPE, content_type)
                    .header(header::ACCEPT, "application/json")
                    .body(Body::from(bytes))
                    .map_err(|e| ApiFailure::Unreachable(e.to_string()))?;
                let response =
                    router.clone().oneshot(request).await.map_err(|e| ApiFailure::Unreachable(e.to_string()))?;
                let status = response.status();
                let bytes = axum::body::to_bytes(response.into_body(), BODY_LIMIT)
                    .await
                    .map_err(|e| ApiFailure::Unreachable(e.to_string()))?;
                Ok(Reply { status, body: parse(&bytes) })
            }
            Api::Remote { client, base } => {
                let url =
                    base.join(path.trim_start_matches('/')).map_err(|e| ApiFailure::Unreachable(e.to_string()))?;
                let response = client
                    .post(url)
                    .bearer_auth(token)
                    .header(header::CONTENT_TYPE, content_type)
                    .body(bytes)
                    .send()
                    .await
                    .map_err(|e| ApiFailure::Unreachable(e.without_url().to_string()))?;
                let status = response.status();
                let bytes = response.bytes().await.map_err(|e| ApiFailure::Unreachable(e.without_url().to_string()))?;
                Ok(Reply { status, body: parse(&bytes) })
            }
        }
    }

    /// A GET whose body is not JSON (a CSV export): the status and the bytes.
    pub async fn raw(&self, path: &str, token: &str) -> Result<(StatusCode, Vec<u8>), ApiFailure> {
        match self {
            Api::Local(router) => {
                let request = Request::builder()
                    .method(Method::GET)
                    .uri(path)
                    .header(header::AUTHORIZATION, format!("Bearer {token}"))
                    .body(Body::empty())
                    .map_err(|e| ApiFailure::Unreachable(e.to_string()))?;
                let response =
                    router.clone().oneshot(request).await.map_err(|e| ApiFailure::Unreachable(e.to_string()))?;
                let status = response.status();
                let bytes = axum::body::to_bytes(response.into_body(), BODY_LIMIT)
                    .await
                    .map_err(|e| ApiFailure::Unreachable(e.to_string()))?;
                Ok((status, bytes.to_vec()))
            }
            Api::Remote { client, base } => {
                let url =
                    base.join(path.trim_start_matches('/')).map_err(|e| ApiFailure::Unreachable(e.to_string()))?;
                let response = client
                    .get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .map_err(|e| ApiFailure::Unreachable(e.without_url().to_string()))?;
                let status = response.status();
                let bytes = response.bytes().await.map_err(|e| ApiFailure::Unreachable(e.without_url().to_string()))?;
                Ok((status, bytes.to_vec()))
            }
        }
    }

    /// A call that must succeed, decoded into `T`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Result<T, ApiFailure> {
        let reply = self.send(method, path, token, body).await?;
        if !reply.status.is_success() {
            return Err(reply.failure());
        }
        serde_json::from_value(reply.body).map_err(|e| ApiFailure::Shape(e.to_string()))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str, token: &str) -> Result<T, ApiFailure> {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post<T: DeserializeOwned, B: Serialize>(
        &self,
        path: &str,
        token: &str,
        body: &B,
    ) -> Result<T, ApiFailure> {
        let body = serde_json::to_value(body).map_err(|e| ApiFailure::Shape(e.to_string()))?;
        self.call(Method::POST, path, token, Some(&body)).await
    }
}

fn parse(bytes: &[u8]) -> Value {
    if bytes.is_empty() { Value::Null } else { serde_json::from_slice(bytes).unwrap_or(Value::Null) }
}
