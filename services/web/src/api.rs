//! The public API, as the pages reach it: the platform's client, in process when the
//! API's services run in this process, else over HTTP at `AIGUILLAGE_API_URL` (the proxy
//! of a split deployment). [`crate::client::Client`] names the endpoints and their types;
//! here is what a page makes of a failed call.

use std::time::Duration;

use contracts::FieldError;
use http::StatusCode;
use platform::ApiError;
use platform::client::CallError;
use url::Url;

pub use platform::client::ApiClient as Api;

/// A page waits this long for the API: an import of a whole region's file takes longer
/// than a service's lookup.
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// The API at `AIGUILLAGE_API_URL`, as the pages call it.
pub fn remote(base: Url) -> Api {
    Api::remote_within(base, PAGE_TIMEOUT)
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

    /// A refusal, with the problem the API wrote.
    pub fn refused(status: StatusCode, body: &[u8]) -> Self {
        ApiFailure::Status { status, problem: serde_json::from_slice(body).ok() }
    }
}

impl From<CallError> for ApiFailure {
    fn from(err: CallError) -> Self {
        match err {
            CallError::Unreachable(e) => ApiFailure::Unreachable(e),
            CallError::Status { status, .. } => ApiFailure::Status { status, problem: None },
            CallError::Shape(e) => ApiFailure::Shape(e),
        }
    }
}
