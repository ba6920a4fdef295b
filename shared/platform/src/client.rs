//! Another service's API, as a service calls it: in process, through the router of a
//! service that runs in this process, or over HTTP at `AIGUILLAGE_API_URL` (the proxy of
//! a split deployment). Either way the call goes through the owner's own handlers, with
//! a bearer token: a service never reads another's tables.

use axum::Router;
use axum::body::Body;
use http::{Method, Request, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower::ServiceExt;
use url::Url;

/// Answers between services are small.
const BODY_LIMIT: usize = 4 * 1024 * 1024;

#[derive(Clone)]
pub enum ApiClient {
    /// The owner runs in this process: its router, called without a socket.
    Local(Router),
    /// The owner runs elsewhere: its base URL.
    Remote { client: reqwest::Client, base: Url },
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiClient::Local(_) => f.write_str("ApiClient::Local"),
            ApiClient::Remote { base, .. } => write!(f, "ApiClient::Remote({base})"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("the API could not be reached: {0}")]
    Unreachable(String),
    #[error("the API answered {status}: {detail}")]
    Status { status: StatusCode, detail: String },
    #[error("the API's answer is not the expected one: {0}")]
    Shape(String),
}

impl CallError {
    /// Worth trying again later: the owner is down, overloaded or restarting.
    pub fn is_transient(&self) -> bool {
        match self {
            CallError::Unreachable(_) => true,
            CallError::Status { status, .. } => status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS,
            CallError::Shape(_) => false,
        }
    }
}

impl ApiClient {
    /// A client of the API at `base` (`AIGUILLAGE_API_URL`), with a timeout, and no
    /// redirects followed.
    pub fn remote(base: Url) -> Self {
        Self::remote_within(base, std::time::Duration::from_secs(10))
    }

    /// The same, waiting `timeout` for an answer (the web app's pages: an import of a
    /// whole region's file takes longer than a service's lookup).
    pub fn remote_within(base: Url, timeout: std::time::Duration) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .build()
            .unwrap_or_default();
        ApiClient::Remote { client, base }
    }

    /// `POST path` with a JSON body; a 2xx answer decoded into `T`.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
        body: &B,
    ) -> Result<T, CallError> {
        let body = serde_json::to_vec(body).map_err(|e| CallError::Shape(e.to_string()))?;
        let (status, bytes) = self.exchange(Method::POST, path, token, Some(("application/json", body)), &[]).await?;
        if !status.is_success() {
            let detail = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|p| p.get("detail").and_then(|d| d.as_str()).map(str::to_string))
                .unwrap_or_default();
            return Err(CallError::Status { status, detail });
        }
        serde_json::from_slice(&bytes).map_err(|e| CallError::Shape(e.to_string()))
    }

    /// One call, whatever its status: the status and the body. `body`: its content type
    /// and bytes; `headers`: more request headers (an `Idempotency-Key`).
    pub async fn exchange(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<(&str, Vec<u8>)>,
        headers: &[(&str, &str)],
    ) -> Result<(StatusCode, Vec<u8>), CallError> {
        let (content_type, body) = match body {
            Some((content_type, bytes)) => (Some(content_type), bytes),
            None => (None, Vec::new()),
        };
        match self {
            ApiClient::Local(router) => {
                let mut request = Request::builder()
                    .method(method)
                    .uri(path)
                    .header(header::AUTHORIZATION, format!("Bearer {token}"))
                    .header(header::ACCEPT, "application/json");
                if let Some(content_type) = content_type {
                    request = request.header(header::CONTENT_TYPE, content_type);
                }
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                let request = request.body(Body::from(body)).map_err(|e| CallError::Unreachable(e.to_string()))?;
                let response = router.clone().oneshot(request).await.unwrap_or_else(|never| match never {});
                let status = response.status();
                let bytes = axum::body::to_bytes(response.into_body(), BODY_LIMIT)
                    .await
                    .map_err(|e| CallError::Unreachable(e.to_string()))?;
                Ok((status, bytes.to_vec()))
            }
            ApiClient::Remote { client, base } => {
                let url = base.join(path.trim_start_matches('/')).map_err(|e| CallError::Unreachable(e.to_string()))?;
                let mut request =
                    client.request(method, url).bearer_auth(token).header(header::ACCEPT, "application/json");
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                if let Some(content_type) = content_type {
                    request = request.header(header::CONTENT_TYPE, content_type).body(body);
                }
                // Without the URL: it may name a host of the deployment, never a person, but
                // the error is logged.
                let response = request.send().await.map_err(|e| CallError::Unreachable(e.without_url().to_string()))?;
                let status = response.status();
                let bytes = response.bytes().await.map_err(|e| CallError::Unreachable(e.without_url().to_string()))?;
                Ok((status, bytes.to_vec()))
            }
        }
    }
}
