//! The published language of Aiguillage: vocabularies, event payloads and HTTP bodies,
//! requests (`api`, `accounts`) and answers (`referrals`, `directory`, `matching`,
//! `insights`, `notifications`, `accounts`). Every service, test and tool, the web app
//! included, speaks through these types; nothing here does I/O.

pub mod accounts;
pub mod answer_links;
pub mod api;
pub mod audit;
pub mod directory;
pub mod email;
pub mod events;
pub mod explain;
pub mod gsm;
pub mod ids;
pub mod insights;
pub mod matching;
pub mod notifications;
pub mod opening_hours;
pub mod personal;
pub mod phone;
pub mod referrals;
pub mod simulation;
#[cfg(feature = "sqlx")]
mod sql;
pub mod validate;
pub mod vocab;
pub mod week;

pub use audit::{Actor, Principal};
pub use events::{Envelope, EventData, EventSet};
pub use ids::{CommuneCode, InvalidId, OrganisationId, ReferralId, StructureId, Territory};
pub use personal::Personal;
pub use vocab::*;

/// One invalid field of a request, as it appears in a `problem+json` body.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field's path in the request: `person.languages[0]`, a query parameter, or `body`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}
