//! The insights API's answers: queues and the waitlist, the funnel of a period, supply
//! against demand, and a structure's monthly report. Insights serialises these types and
//! the web app reads them back.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{CommuneCode, Need, StructureId, Territory, Urgency, WaitlistReason};

/// The territories an answer covers: the one asked for, a coordinator's several, or
/// `null` for admin's all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TerritoryLabel {
    One(String),
    Several(Vec<String>),
}

/// Pending offers by structure, and the waitlist.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Queues {
    pub territory: Option<TerritoryLabel>,
    /// The capacity week (`2026-W48`).
    pub week: String,
    pub structures: Vec<StructureQueue>,
    pub waitlist: Waitlist,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StructureQueue {
    pub structure_id: StructureId,
    pub name: String,
    pub territory: Territory,
    pub pending_offers: i64,
    pub oldest_pending_offer_seconds: Option<i64>,
    pub accepted_this_week: i64,
    pub weekly_capacity: i32,
    pub accepting: bool,
    pub in_progress: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WaitingReferral {
    pub referral_id: Uuid,
    pub territory: Option<Territory>,
    pub commune_code: Option<CommuneCode>,
    pub needs: Option<Vec<Need>>,
    pub urgency: Option<Urgency>,
    pub reason: Option<WaitlistReason>,
    pub escalated: bool,
    pub waiting_seconds: Option<i64>,
    pub offers: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Waitlist {
    pub count: i64,
    pub escalated: i64,
    pub oldest_seconds: Option<i64>,
    pub by_reason: BTreeMap<String, i64>,
    /// The waiting referrals themselves (ids and matching data, no personal data), so a
    /// coordinator can act on the escalated ones.
    pub items: Vec<WaitingReferral>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Percentiles {
    pub p50: Option<i64>,
    pub p90: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Funnel {
    pub submitted: i64,
    pub offered: i64,
    pub accepted: i64,
    pub in_progress: i64,
    pub closed: i64,
    pub cancelled: i64,
    pub waitlisted_now: i64,
    pub outcomes: BTreeMap<String, i64>,
    /// By reason, `structure_unreachable` included (offers withdrawn because the
    /// structure's address refused their e-mail).
    pub declines: BTreeMap<String, i64>,
    pub expired_offers: i64,
    /// How the referrals' acceptances were given (those whose event says).
    #[serde(default)]
    pub answered_via: AnsweredViaCounts,
    /// Offers withdrawn because nobody could receive them (decline reason
    /// `structure_unreachable`): events, not referrals.
    #[serde(default)]
    pub withdrawn_unreachable: i64,
    pub offers_per_referral: f64,
    pub time_to_accept_seconds: Percentiles,
    pub time_to_first_contact_seconds: Percentiles,
    pub time_to_close_seconds: Percentiles,
}

/// Acceptances by how the structure answered ([`crate::AnsweredVia`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AnsweredViaCounts {
    /// A mediator, signed in.
    pub account: i64,
    /// The link of the offer's e-mail, without an account.
    pub answer_link: i64,
}

/// The funnel of the cohort submitted in the period.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = FunnelReport)]
pub struct FunnelView {
    #[serde(flatten)]
    pub funnel: Funnel,
    pub territory: Option<TerritoryLabel>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// Demand and capacity around one commune.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CommuneSupply {
    pub commune_code: String,
    pub commune: Option<String>,
    pub referrals: i64,
    pub referrals_per_week: f64,
    /// The weekly capacity of the accepting structures within `radius_km`.
    pub capacity_within_radius: i64,
    /// `referrals_per_week / capacity_within_radius`; `null` without capacity.
    pub ratio: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SupplyDemand {
    pub territory: Option<TerritoryLabel>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub radius_km: f64,
    pub ratio_is: String,
    pub items: Vec<CommuneSupply>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MonthlyReport {
    pub received: i64,
    pub accepted: i64,
    pub declined: i64,
    pub declined_by_reason: BTreeMap<String, i64>,
    pub expired: i64,
    pub first_contacts: i64,
    pub closed: i64,
    pub outcomes: BTreeMap<String, i64>,
    pub median_seconds_offer_to_accept: Option<i64>,
    pub median_seconds_accept_to_first_contact: Option<i64>,
    pub median_seconds_accept_to_close: Option<i64>,
}

/// A structure's month.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StructureReport {
    pub structure_id: String,
    pub name: String,
    pub territory: String,
    pub weekly_capacity: i32,
    /// `YYYY-MM`.
    pub month: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub report: MonthlyReport,
}
