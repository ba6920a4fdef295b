//! `/healthz` (the process is up), `/readyz` (its dependencies answer) and `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::BoxFuture;
use sqlx::PgPool;

/// Something the process needs in order to serve: the database, the broker.
pub trait Dependency: Send + Sync {
    fn name(&self) -> &'static str;
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

/// The database answers a trivial query.
pub struct Database(pub PgPool);

impl Dependency for Database {
    fn name(&self) -> &'static str {
        "database"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { sqlx::query("SELECT 1").execute(&self.0).await.map(|_| ()).map_err(|e| e.to_string()) })
    }
}

#[derive(Clone)]
struct Checks(Arc<Vec<Arc<dyn Dependency>>>);

/// The health, readiness and metrics routes.
pub fn router(dependencies: Vec<Arc<dyn Dependency>>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Checks(Arc::new(dependencies)))
}

async fn readyz(axum::extract::State(Checks(checks)): axum::extract::State<Checks>) -> Response {
    let runs = checks.iter().map(|d| async move {
        let result = match tokio::time::timeout(Duration::from_secs(2), d.check()).await {
            Ok(r) => r,
            Err(_) => Err("timed out".to_string()),
        };
        (d.name(), result)
    });
    let results = futures::future::join_all(runs).await;
    let ready = results.iter().all(|(_, r)| r.is_ok());
    let body: serde_json::Map<String, serde_json::Value> = results
        .into_iter()
        .map(|(name, r)| (name.to_string(), serde_json::Value::String(r.err().unwrap_or_else(|| "ok".into()))))
        .collect();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(serde_json::json!({ "ready": ready, "checks": body }))).into_response()
}

async fn metrics() -> Response {
    let body = crate::metrics::metrics().render().await;
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body).into_response()
}
