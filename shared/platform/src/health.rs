//! `/healthz` (the process is up), `/readyz` (its dependencies answer) and `/metrics`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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

fn routes() -> OpenApiRouter<Checks> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz)).routes(routes!(metrics))
}

/// The health, readiness and metrics routes.
pub fn router(dependencies: Vec<Arc<dyn Dependency>>) -> Router {
    routes().split_for_parts().0.with_state(Checks(Arc::new(dependencies)))
}

/// Their part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

#[derive(Serialize, ToSchema)]
struct Liveness {
    #[schema(value_type = String, example = "ok")]
    status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()), responses((status = 200, description = "Up", body = Liveness)))]
async fn healthz() -> axum::Json<Liveness> {
    axum::Json(Liveness { status: "ok" })
}

/// Whether each dependency answered: `ok`, or what went wrong.
#[derive(Serialize, ToSchema)]
struct Readiness {
    ready: bool,
    checks: BTreeMap<String, String>,
}

/// The database and the broker are reachable.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "A dependency is unreachable", body = Readiness),
    )
)]
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
    let checks: BTreeMap<String, String> =
        results.into_iter().map(|(name, r)| (name.to_string(), r.err().unwrap_or_else(|| "ok".into()))).collect();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(Readiness { ready, checks })).into_response()
}

/// Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    security(()),
    responses((status = 200, description = "OpenMetrics text", body = String, content_type = "application/openmetrics-text"))
)]
async fn metrics() -> Response {
    let body = crate::metrics::metrics().render().await;
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body).into_response()
}
