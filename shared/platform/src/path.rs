//! A typed path parameter: `Path<ReferralId>`, `Path<StructureId>`. The id is parsed
//! before the handler runs, so a malformed one never reaches SQL, and it is refused as
//! what it is: no such resource (404, as the contract answers for anything outside the
//! caller's scope), a `problem+json` naming the parameter, never axum's plain text.

use std::fmt::Display;
use std::str::FromStr;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;

use crate::problem::ApiError;

/// The one path parameter of a route, parsed as `T`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    S: Send + Sync,
    T: FromStr,
    T::Err: Display,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // Not UTF-8 once percent-decoded: no id is that.
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found_because("path", "is not UTF-8 once percent-decoded"))?;
        let mut params = params.iter();
        let (Some((name, value)), None) = (params.next(), params.next()) else {
            return Err(ApiError::internal("platform::path::Path serves routes with exactly one parameter"));
        };
        value.parse().map(Path).map_err(|err| ApiError::not_found_because(name, err))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use axum::routing::get;
    use contracts::{ReferralId, StructureId};
    use tower::ServiceExt;

    use super::*;

    async fn get_status(router: &Router, uri: &str) -> (StatusCode, String, serde_json::Value) {
        let response = router.clone().oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let content_type =
            response.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        (status, content_type, serde_json::from_slice(&body).unwrap_or_default())
    }

    fn router() -> Router {
        Router::new()
            .route("/referrals/{id}", get(|Path(id): Path<ReferralId>| async move { id.to_string() }))
            .route("/structures/{id}", get(|Path(id): Path<StructureId>| async move { id.to_string() }))
    }

    #[tokio::test]
    async fn a_well_formed_id_reaches_the_handler_parsed() {
        let id = ReferralId::new();
        assert_eq!(get_status(&router(), &format!("/referrals/{id}")).await.0, StatusCode::OK);
        assert_eq!(get_status(&router(), "/structures/lieu%3A16").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_malformed_id_is_a_problem_naming_the_parameter() {
        for uri in ["/referrals/not-a-uuid", "/structures/%20lieu", "/structures/a%00b", "/referrals/%FF"] {
            let (status, content_type, problem) = get_status(&router(), uri).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
            assert_eq!(content_type, crate::problem::PROBLEM_JSON, "{uri}");
            assert_eq!(problem["status"], 404, "{uri}");
            let field = problem["errors"][0]["field"].as_str().unwrap();
            assert!(field == "id" || (uri.ends_with("%FF") && field == "path"), "{uri}: {problem}");
        }
        let (_, _, problem) = get_status(&router(), "/referrals/not-a-uuid").await;
        assert_eq!(problem["errors"][0]["message"], "`not-a-uuid` is not a referral id (a UUID)");
    }
}
