//! The one HTTP error type: RFC 9457 `application/problem+json`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use contracts::FieldError;
use serde::Serialize;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem. A validation failure (422) names each bad field in `errors`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub struct ApiError {
    /// `https://aiguillage.dev/problems/{slug}`: `validation`, `malformed`, `unauthorized`,
    /// `forbidden`, `not-found`, `conflict`, `payload-too-large`, `unsupported-media-type`,
    /// `method-not-allowed`, `unavailable`, `internal`.
    #[serde(rename = "type")]
    #[schema(format = "uri")]
    pub type_uri: String,
    pub title: String,
    /// The HTTP status, repeated.
    #[serde(serialize_with = "serialize_status")]
    #[schema(value_type = u16, minimum = 400, maximum = 599)]
    pub status: StatusCode,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

fn serialize_status<S: serde::Serializer>(s: &StatusCode, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_u16(s.as_u16())
}

impl ApiError {
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            type_uri: format!("https://aiguillage.dev/problems/{slug}"),
            title: title.to_string(),
            status,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// 422: the body is well-formed but some fields are not acceptable.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "Invalid request",
            format!("invalid field(s): {}", fields.join(", ")),
        );
        e.errors = errors;
        e
    }

    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    /// 400: the body could not be read as JSON at all.
    pub fn malformed(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut e = Self::new(StatusCode::BAD_REQUEST, "malformed", "Malformed request", message.clone());
        e.errors = vec![FieldError::new(field, message)];
        e
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Authentication required", detail)
    }

    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", "your role may not call this endpoint")
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", "no such resource")
    }

    /// 404 for a path parameter that no resource could have (a malformed id), naming it.
    pub fn not_found_because(parameter: &str, message: impl std::fmt::Display) -> Self {
        let mut e = Self::not_found();
        e.errors = vec![FieldError::new(parameter, message.to_string())];
        e
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
            format!("the body exceeds {limit} bytes"),
        )
    }

    pub fn unsupported_media_type(expected: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            format!("expected {expected}"),
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            "this method is not allowed here",
        )
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable", detail)
    }

    /// 500. The cause is logged; the client only learns that it was our fault.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error", "an unexpected error occurred")
    }
}

/// `Retry-After` of every 503: about the time a failover manager takes to promote a
/// standby, or a broker node to be replaced.
pub const RETRY_AFTER_SECONDS: &str = "2";

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.title, self.detail)
    }
}

impl std::error::Error for ApiError {}

/// A client (the web app) reads a problem back as the API wrote it.
impl<'de> serde::Deserialize<'de> for ApiError {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        struct Wire {
            #[serde(rename = "type")]
            type_uri: String,
            title: String,
            status: u16,
            detail: String,
            #[serde(default)]
            errors: Vec<FieldError>,
        }
        let w = Wire::deserialize(d)?;
        let status = StatusCode::from_u16(w.status).map_err(serde::de::Error::custom)?;
        Ok(Self { type_uri: w.type_uri, title: w.title, status, detail: w.detail, errors: w.errors })
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        if crate::db::is_transient(&err) {
            tracing::warn!(error = %err, "database unavailable");
            Self::unavailable("the database is unavailable, retry later")
        } else if let Some(row) = crate::row::row_error(&err) {
            // The log names the row; the caller learns nothing of the schema.
            tracing::error!(table = row.table, column = row.column, row_id = %row.id, problem = %row.problem, "corrupt row");
            Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error", "an unexpected error occurred")
        } else {
            Self::internal(err)
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        match err.downcast::<ApiError>() {
            Ok(api) => api,
            Err(err) => match err.downcast::<sqlx::Error>() {
                Ok(db) => db.into(),
                Err(other) => Self::internal(format!("{other:#}")),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // A database or broker briefly away (a restart, a failover): clients retry
            // after this many seconds rather than at once, or never.
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
        }
        response
    }
}

/// The problems an operation can answer, for `#[utoipa::path(responses(...))]`: each type
/// is one or more statuses with a `problem+json` body.
pub mod responses {
    use std::collections::BTreeMap;

    use utoipa::IntoResponses;
    use utoipa::openapi::header::HeaderBuilder;
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};

    use super::PROBLEM_JSON;

    fn problem(status: u16, description: &str) -> (String, RefOr<Response>) {
        let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build();
        let mut response = ResponseBuilder::new().description(description).content(PROBLEM_JSON, content);
        if status == 401 {
            let bearer = ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["Bearer"]));
            response = response.header("WWW-Authenticate", HeaderBuilder::new().schema(Some(bearer)).build());
        }
        if status == 503 {
            let seconds = ObjectBuilder::new().schema_type(Type::Integer);
            let header =
                HeaderBuilder::new().schema(Some(seconds)).description(Some("Seconds to wait before retrying"));
            response = response.header("Retry-After", header.build());
        }
        (status.to_string(), response.build().into())
    }

    macro_rules! problems {
        ($( $(#[$doc:meta])* $name:ident => [ $( ($status:literal, $description:literal) ),+ $(,)? ] ),+ $(,)?) => {
            $(
                $(#[$doc])*
                pub struct $name;

                impl IntoResponses for $name {
                    fn responses() -> BTreeMap<String, RefOr<Response>> {
                        BTreeMap::from([ $( problem($status, $description) ),+ ])
                    }
                }
            )+
        };
    }

    problems! {
        /// Every operation that takes a bearer token and reads the database.
        Authenticated => [
            (401, "No bearer token, or an invalid or expired one"),
            (503, "The database (a failover under way) or the broker (a resource alarm) is unavailable; retry after `Retry-After` seconds"),
        ],
        /// A role that may never call the operation.
        Forbidden => [(403, "This role may never call this operation")],
        /// A resource that does not exist or is outside the caller's scope.
        NotFound => [(404, "No such resource, or outside the caller's scope")],
        /// A state that does not allow the request.
        Conflict => [(409, "The current state does not allow this (the current status is in `detail`)")],
        /// `Idempotency-Key` reused.
        IdempotencyConflict => [(409, "This Idempotency-Key was used with a different body")],
        /// Query parameters that do not parse or break a rule.
        InvalidQuery => [(422, "Invalid parameter(s), each named in `errors`")],
        /// A JSON body (`platform::json::Json` and its kin).
        JsonBody => [
            (400, "The body is not JSON"),
            (413, "The body is over 64 KiB"),
            (415, "The body is not `application/json`"),
            (422, "Invalid field(s), each named in `errors`; unknown fields are refused"),
        ],
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn validation_problems_name_each_field() {
        let e = ApiError::validation(vec![
            FieldError::new("consent.obtained", "must be true"),
            FieldError::new("needs", "empty"),
        ]);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["status"], 422);
        assert_eq!(json["errors"][0]["field"], "consent.obtained");
        assert!(json["detail"].as_str().unwrap().contains("needs"));
    }

    #[test]
    fn an_unavailable_service_says_when_to_retry() {
        let r = ApiError::unavailable("the database is unavailable, retry later").into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], RETRY_AFTER_SECONDS);
        assert!(ApiError::not_found().into_response().headers().get(header::RETRY_AFTER).is_none());
    }

    #[test]
    fn responses_are_problem_json() {
        let r = ApiError::not_found().into_response();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }
}
