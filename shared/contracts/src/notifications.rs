//! The notifications API's answers that other services read.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A structure no active mediator answers for.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Unreached {
    pub id: String,
    pub name: String,
    pub territory: String,
    /// Whether the directory gives a public contact address.
    pub has_contact_email: bool,
    /// When that address refused a message for good (SMTP 5xx), if it did.
    pub bounced_at: Option<DateTime<Utc>>,
    /// Whether offers reach it, by e-mail with an answer link; if not, it is never
    /// offered ("injoignable"), and a coordinator can call it or add an address.
    pub reachable_by_email: bool,
    /// Its public phone number, from the directory.
    pub phone: Option<String>,
}

/// `GET /api/v1/notifications/unreached-structures`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UnreachedList {
    pub items: Vec<Unreached>,
}
