//! `/territoire/entonnoir`: the funnel of the referrals submitted in a period, as a
//! chart and a table with the same figures, with the delays, the declines and the
//! outcomes.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Datelike, Utc};

use super::{declines, duration_fr, no_show_rate_fr, outcomes};
use crate::error::PageError;
use crate::extract::{Coordinators, SignedIn};
use crate::form;
use crate::views::{Chrome, render};

pub struct Bar {
    pub label: &'static str,
    pub value: i64,
    pub width: f64,
    pub y: u32,
    pub share: String,
}

#[derive(askama::Template)]
#[template(path = "entonnoir.html")]
struct FunnelView {
    chrome: Chrome,
    from: String,
    to: String,
    errors: HashMap<&'static str, String>,
    bars: Vec<Bar>,
    chart_height: u32,
    others: Vec<(&'static str, String)>,
    /// (step, p50, p90)
    delays: Vec<(&'static str, String, String)>,
    declines: Vec<(String, i64)>,
    outcomes: Vec<(String, i64)>,
    /// Appointments and no-shows by territory, then by place.
    attendance_by_territory: Vec<AttendanceLine>,
    attendance_by_structure: Vec<AttendanceLine>,
    chart_label: String,
}

/// One line of the tables of appointments: a territory or a place.
pub struct AttendanceLine {
    pub label: String,
    /// The place's monthly report, for a place.
    pub href: Option<String>,
    pub appointments: i64,
    pub attended: i64,
    pub recorded: i64,
    pub rate: String,
}

impl AttendanceLine {
    fn new(label: String, href: Option<String>, a: &contracts::insights::Attendance) -> Self {
        Self {
            label,
            href,
            appointments: a.appointments,
            attended: a.attended,
            recorded: a.attendance_recorded,
            rate: no_show_rate_fr(a.no_show_rate, a.no_shows, a.attendance_recorded),
        }
    }
}

impl FunnelView {
    fn error(&self, field: &str) -> Option<&String> {
        self.errors.get(field)
    }
}

pub async fn show(
    coordinator: SignedIn<Coordinators>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let today = Utc::now().with_timezone(&chrono_tz::Europe::Paris).date_naive();
    let mut errors = HashMap::new();
    let from = form::date(q.get("du"), "du", &mut errors)
        .unwrap_or_else(|| today.with_day(1).unwrap_or(today) - chrono::Months::new(2));
    let to = form::date(q.get("au"), "au", &mut errors).unwrap_or(today);
    if to < from {
        errors.insert("au", "La date de fin doit être après la date de début.".into());
    }
    let (from_q, to_q) =
        if errors.is_empty() { (from, to + chrono::Days::new(1)) } else { (today, today + chrono::Days::new(1)) };
    let f = coordinator.api.funnel(from_q, to_q).await?.funnel;
    let stages: [(&'static str, i64); 7] = [
        ("Envoyées", f.submitted),
        ("Proposées à un lieu", f.offered),
        ("Acceptées", f.accepted),
        ("Accompagnement commencé", f.in_progress),
        ("Rendez-vous fixé", f.appointments),
        ("Venue", f.attended),
        ("Clôturées", f.closed),
    ];
    let max = f.submitted.max(1) as f64;
    let bars = stages
        .iter()
        .enumerate()
        .map(|(i, (label, value))| Bar {
            label,
            value: *value,
            width: (*value as f64 / max * 100.0).clamp(0.0, 100.0),
            y: i as u32 * 36,
            share: if f.submitted > 0 { format!("{} %", (*value as f64 / max * 100.0).round()) } else { "—".into() },
        })
        .collect();
    let others = vec![
        ("Taux d'absence", no_show_rate_fr(f.no_show_rate, f.no_shows, f.attendance_recorded)),
        ("Annulées", f.cancelled.to_string()),
        ("En liste d'attente aujourd'hui", f.waitlisted_now.to_string()),
        ("Propositions expirées sans réponse", f.expired_offers.to_string()),
        ("Acceptées par un médiateur connecté", f.answered_via.account.to_string()),
        ("Acceptées par le lien d'un e-mail, sans compte", f.answered_via.answer_link.to_string()),
        ("Propositions retirées, lieu injoignable par e-mail", f.withdrawn_unreachable.to_string()),
    ];
    let delays = vec![
        ("Jusqu'à l'acceptation", duration_fr(f.time_to_accept_seconds.p50), duration_fr(f.time_to_accept_seconds.p90)),
        (
            "Jusqu'au premier contact",
            duration_fr(f.time_to_first_contact_seconds.p50),
            duration_fr(f.time_to_first_contact_seconds.p90),
        ),
        (
            "Jusqu'au rendez-vous",
            duration_fr(f.time_to_appointment_seconds.p50),
            duration_fr(f.time_to_appointment_seconds.p90),
        ),
        ("Jusqu'à la clôture", duration_fr(f.time_to_close_seconds.p50), duration_fr(f.time_to_close_seconds.p90)),
    ];
    let attendance_by_territory = f
        .attendance_by_territory
        .iter()
        .map(|t| AttendanceLine::new(territory_fr(&t.territory), None, &t.attendance))
        .collect();
    let attendance_by_structure = f
        .attendance_by_structure
        .iter()
        .map(|s| {
            let href = format!("/territoire/structures/{}/rapport", super::encode(&s.structure_id));
            AttendanceLine::new(s.name.clone().unwrap_or_else(|| s.structure_id.clone()), Some(href), &s.attendance)
        })
        .collect();
    let declines = declines(&f.declines);
    let outcomes = outcomes(&f.outcomes);
    let invalid = !errors.is_empty();
    let status = if invalid { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    let view = FunnelView {
        chrome: coordinator.chrome(if invalid { "Erreur : entonnoir" } else { "Entonnoir" }, "entonnoir"),
        chart_label: format!(
            "Entonnoir du {} au {} : {}",
            from.format("%d/%m/%Y"),
            to.format("%d/%m/%Y"),
            stages.iter().map(|(l, v)| format!("{l} {v}")).collect::<Vec<_>>().join(", ")
        ),
        from: q.get("du").cloned().unwrap_or_else(|| from.to_string()),
        to: q.get("au").cloned().unwrap_or_else(|| to.to_string()),
        errors,
        chart_height: stages.len() as u32 * 36,
        bars,
        others,
        delays,
        declines,
        outcomes,
        attendance_by_territory,
        attendance_by_structure,
    };
    Ok(render(status, &view, true))
}

/// A territory as the page names it: "Charente (16)", or its code when unknown.
fn territory_fr(code: &str) -> String {
    geo::communes().departement(code).map_or_else(|| code.to_string(), |d| format!("{} ({code})", d.name))
}
