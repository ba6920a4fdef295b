//! The layers every router gets: problem+json for every error, panic safety, request
//! metrics by route; and a graceful server.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;

use crate::problem::{ApiError, PROBLEM_JSON};

/// Wraps the assembled application router.
pub fn finish(router: Router) -> Router {
    router
        .fallback(|| async { ApiError::not_found() })
        .layer(middleware::from_fn(problem_for_bare_errors))
        .layer(middleware::from_fn(record_metrics))
        .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            ApiError::internal("a handler panicked").into_response()
        }))
}

/// Framework rejections (405, a bad path, a missing extension) come without a
/// problem+json body: give them one, keeping the status. A JSON body a handler wrote on
/// purpose (`/readyz`'s checks, with 503) is kept.
async fn problem_for_bare_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_JSON) || v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let mut problem = match status {
        StatusCode::METHOD_NOT_ALLOWED => ApiError::method_not_allowed(),
        StatusCode::NOT_FOUND => ApiError::not_found(),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::payload_too_large(crate::json::BODY_LIMIT),
        other => ApiError::new(
            other,
            "http",
            other.canonical_reason().unwrap_or("Error"),
            "the request could not be handled",
        ),
    };
    problem.status = status;
    let mut replaced = problem.into_response();
    if let Some(allow) = response.headers().get(header::ALLOW) {
        replaced.headers_mut().insert(header::ALLOW, allow.clone());
    }
    replaced
}

async fn record_metrics(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let response = next.run(req).await;
    crate::metrics::metrics().observe_http(&method, &route, response.status().as_u16(), started.elapsed());
    response
}

/// Serves until `shutdown` is cancelled, then lets in-flight requests finish. Each
/// request carries its connection's peer address (`ConnectInfo<SocketAddr>`), for the
/// pages that slow down one client's repeated failures.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
