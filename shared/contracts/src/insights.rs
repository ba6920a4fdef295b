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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
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
    /// Step `appointment_set`: referrals with an appointment that stands or took place.
    /// A cancelled appointment does not count unless another was set; a moved one counts
    /// once.
    #[serde(default)]
    pub appointments: i64,
    /// Step `attended`: referrals whose person came to an appointment.
    #[serde(default)]
    pub attended: i64,
    /// Appointments whose attendance was recorded (the no-show rate's denominator). An
    /// appointment missed, then another one kept, counts twice here.
    #[serde(default)]
    pub attendance_recorded: i64,
    /// Of those, the appointments the person did not come to.
    #[serde(default)]
    pub no_shows: i64,
    /// `no_shows ÷ attendance_recorded`, from 0 to 1; `null` when no attendance was
    /// recorded.
    #[serde(default)]
    pub no_show_rate: Option<f64>,
    /// From submission to the referral's appointment (the first one kept or held; a moved
    /// appointment's new time), for the referrals with one.
    #[serde(default)]
    pub time_to_appointment_seconds: Percentiles,
    /// The appointments and no-shows by territory (of the referral), territories with an
    /// appointment only.
    #[serde(default)]
    pub attendance_by_territory: Vec<TerritoryAttendance>,
    /// The same by place (the structure the appointment was at), places with an
    /// appointment only.
    #[serde(default)]
    pub attendance_by_structure: Vec<StructureAttendance>,
}

/// Appointments and whether people came, for one group of referrals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Attendance {
    /// Referrals with an appointment that stands or took place.
    pub appointments: i64,
    /// Referrals whose person came to an appointment.
    pub attended: i64,
    /// Appointments whose attendance was recorded.
    pub attendance_recorded: i64,
    /// Appointments the person did not come to.
    pub no_shows: i64,
    /// `no_shows ÷ attendance_recorded`; `null` when none was recorded.
    pub no_show_rate: Option<f64>,
}

impl Attendance {
    /// The figures, with the rate computed from them.
    pub fn new(appointments: i64, attended: i64, attendance_recorded: i64, no_shows: i64) -> Self {
        Self {
            appointments,
            attended,
            attendance_recorded,
            no_shows,
            no_show_rate: no_show_rate(no_shows, attendance_recorded),
        }
    }
}

/// Not attended ÷ attendance recorded, rounded to four decimals; `None` when nothing was
/// recorded (no rate is honest then, not 0).
pub fn no_show_rate(no_shows: i64, recorded: i64) -> Option<f64> {
    (recorded > 0).then(|| (no_shows.clamp(0, recorded) as f64 / recorded as f64 * 10_000.0).round() / 10_000.0)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TerritoryAttendance {
    pub territory: String,
    #[serde(flatten)]
    pub attendance: Attendance,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StructureAttendance {
    pub structure_id: String,
    /// `null` when the directory's event has not been seen.
    pub name: Option<String>,
    /// The structure's territory; `null` as for `name`.
    pub territory: Option<String>,
    #[serde(flatten)]
    pub attendance: Attendance,
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
    /// The appointments of the month at the structure (by their time), those that stood
    /// or took place: moved and cancelled ones do not count.
    #[serde(default)]
    pub appointments: i64,
    /// Of the month's appointments, those whose attendance was recorded, those the person
    /// came to and those they missed.
    #[serde(default)]
    pub attendance_recorded: i64,
    #[serde(default)]
    pub attended: i64,
    #[serde(default)]
    pub no_shows: i64,
    /// `no_shows ÷ attendance_recorded`; `null` when none was recorded.
    #[serde(default)]
    pub no_show_rate: Option<f64>,
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

/// The open statistics file (`/api/v1/open-data/referrals.json`): one row per
/// département and month, and a national row (`France`) per month, under the Licence
/// Ouverte, with statistical secrecy.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OpenDataFile {
    /// `Licence Ouverte 2.0`.
    pub licence: String,
    /// When the figures were computed from the facts.
    pub generated_at: DateTime<Utc>,
    /// The URL of the file's Table Schema.
    pub schema: String,
    pub rows: Vec<OpenDataRow>,
}

/// One département (or `France`) and one month (Europe/Paris). A `null` count, rate or
/// median is hidden by statistical secrecy when `secret` names its column, else there is
/// none (no rate when nothing was offered, no median when nothing was accepted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OpenDataRow {
    /// The département's code (`16`, `2A`, `971`), or `France` for the national row.
    pub departement: String,
    /// `YYYY-MM`: the referrals submitted that month count in it.
    pub mois: String,
    pub orientations: Option<i64>,
    pub proposees: Option<i64>,
    pub acceptees: Option<i64>,
    /// Offered to more than one structure.
    pub reorientees: Option<i64>,
    /// On the waitlist at the month's end (now, for the current month).
    pub en_attente: Option<i64>,
    /// Closed with the outcome `completed`.
    pub accompagnements_realises: Option<i64>,
    /// One decimal.
    pub delai_acceptation_mediane_jours: Option<f64>,
    /// `reorientees ÷ proposees`, two decimals.
    pub taux_reorientation: Option<f64>,
    /// The current month, whose referrals are still coming in.
    pub provisoire: bool,
    /// The columns hidden by statistical secrecy.
    pub secret: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_no_show_rate_is_missed_over_recorded_and_none_without_a_record() {
        assert_eq!(no_show_rate(0, 0), None);
        assert_eq!(no_show_rate(3, 0), None);
        assert_eq!(no_show_rate(0, 4), Some(0.0));
        assert_eq!(no_show_rate(1, 4), Some(0.25));
        assert_eq!(no_show_rate(4, 4), Some(1.0));
        assert_eq!(no_show_rate(1, 3), Some(0.3333));
        assert_eq!(Attendance::new(5, 3, 4, 1).no_show_rate, Some(0.25));
    }

    #[test]
    fn a_funnel_of_an_earlier_version_reads_with_no_appointments() {
        let earlier = serde_json::json!({
            "submitted": 1, "offered": 1, "accepted": 1, "in_progress": 0, "closed": 0, "cancelled": 0,
            "waitlisted_now": 0, "outcomes": {}, "declines": {}, "expired_offers": 0, "offers_per_referral": 1.0,
            "time_to_accept_seconds": {"p50": 60, "p90": 60},
            "time_to_first_contact_seconds": {"p50": null, "p90": null},
            "time_to_close_seconds": {"p50": null, "p90": null}
        });
        let f: Funnel = serde_json::from_value(earlier).unwrap();
        assert_eq!((f.appointments, f.attended, f.no_show_rate), (0, 0, None));
        assert!(f.attendance_by_structure.is_empty());
    }

    #[test]
    fn the_attendance_of_a_group_flattens_beside_its_name() {
        let t = TerritoryAttendance { territory: "16".into(), attendance: Attendance::new(2, 1, 2, 1) };
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            serde_json::json!({"territory": "16", "appointments": 2, "attended": 1, "attendance_recorded": 2,
                               "no_shows": 1, "no_show_rate": 0.5})
        );
    }
}
