//! For the fast test tier: HTTP rules that need only PostgreSQL run against a service's
//! router with `tower::ServiceExt::oneshot`, no server and no broker (as sqlx's own axum
//! example does). Compiled only with the `testing` feature, for tests.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use serde_json::Value;
use sqlx::PgPool;
use tower::ServiceExt;

use crate::auth::{Authenticator, Claims, KeyRing, Scope};

/// A key ring and tokens for tests.
pub struct Keys(pub KeyRing);

impl Default for Keys {
    fn default() -> Self {
        Self(KeyRing::single("test", b"a key for the fast test tier"))
    }
}

impl Keys {
    pub fn authenticator(&self) -> Authenticator {
        Authenticator::new(self.0.clone())
    }

    /// A bearer token of `role` over `scope`, valid for an hour.
    pub fn token(&self, role: contracts::Role, scope: Scope) -> String {
        let claims = Claims::new(role, scope, chrono::Duration::hours(1)).unwrap_or_else(|e| panic!("claims: {e}"));
        self.0.issue(&claims)
    }
}

/// The platform's own objects, for a test database a service migrates itself.
pub async fn migrate_platform(pool: &PgPool) {
    crate::db::migrate_platform(pool).await.unwrap_or_else(|e| panic!("platform migrations: {e}"));
}

/// One request through the router: status, JSON body (or the text as a JSON string),
/// and headers.
pub async fn call(
    router: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> (u16, Value, axum::http::HeaderMap) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = match body {
        Some(b) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let router = crate::http::finish(router.clone());
    let response = router
        .oneshot(request.body(body).unwrap_or_else(|e| panic!("request: {e}")))
        .await
        .unwrap_or_else(|e| match e {});
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap_or_default();
    let value =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value, headers)
}
