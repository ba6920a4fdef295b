//! The notifications API's answers that other services read.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A structure nobody can be told about.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Unreached {
    pub id: String,
    pub name: String,
    pub territory: String,
    /// Whether the directory gives a public contact address (it is invited weekly).
    pub has_contact_email: bool,
    /// When that address was last invited to join.
    pub invited_at: Option<DateTime<Utc>>,
}

/// `GET /api/v1/notifications/unreached-structures`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UnreachedList {
    pub items: Vec<Unreached>,
}
