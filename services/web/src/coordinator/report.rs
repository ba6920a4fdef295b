//! `/territoire/structures/{id}/rapport`: the monthly report of a structure, printable,
//! and the same as a CSV file.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use contracts::StructureId;

use super::{declines, duration_fr, encode, no_show_rate_fr, outcomes};
use crate::error::PageError;
use crate::extract::{Coordinators, PathId, SignedIn};
use crate::views::{Chrome, render};

#[derive(askama::Template)]
#[template(path = "rapport.html")]
struct ReportView {
    chrome: Chrome,
    id: String,
    name: String,
    month: String,
    month_error: Option<String>,
    csv_href: String,
    lines: Vec<(String, String)>,
    declines: Vec<(String, i64)>,
    outcomes: Vec<(String, i64)>,
}

fn month_of(q: &HashMap<String, String>) -> Result<Option<String>, String> {
    match q.get("mois").map(|m| m.trim()).filter(|m| !m.is_empty()) {
        None => Ok(None),
        Some(m) if NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").is_ok() && m.len() == 7 => {
            Ok(Some(m.to_string()))
        }
        Some(_) => Err("Indiquez un mois au format aaaa-mm, par exemple 2026-11.".into()),
    }
}

pub async fn show(
    coordinator: SignedIn<Coordinators>,
    PathId(id): PathId<StructureId>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let (month, month_error) = match month_of(&q) {
        Ok(m) => (m, None),
        Err(e) => (None, Some(e)),
    };
    let r = coordinator.api.structure_report(&id, month.as_deref()).await?;
    let m = &r.report;
    let lines = vec![
        ("Propositions reçues".into(), m.received.to_string()),
        ("Acceptées".into(), m.accepted.to_string()),
        ("Refusées".into(), m.declined.to_string()),
        ("Expirées sans réponse".into(), m.expired.to_string()),
        ("Premiers contacts".into(), m.first_contacts.to_string()),
        ("Clôturées".into(), m.closed.to_string()),
        ("Délai médian de réponse".into(), duration_fr(m.median_seconds_offer_to_accept)),
        ("Délai médian jusqu'au premier contact".into(), duration_fr(m.median_seconds_accept_to_first_contact)),
        ("Rendez-vous fixé (rendez-vous du mois)".into(), m.appointments.to_string()),
        ("Venue".into(), m.attended.to_string()),
        ("Absences".into(), m.no_shows.to_string()),
        ("Taux d'absence".into(), no_show_rate_fr(m.no_show_rate, m.no_shows, m.attendance_recorded)),
        ("Places par semaine".into(), r.weekly_capacity.to_string()),
    ];
    let declines = declines(&m.declined_by_reason);
    let outcomes = outcomes(&m.outcomes);
    let status = if month_error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    let view = ReportView {
        chrome: coordinator
            .chrome(if month_error.is_some() { "Erreur : rapport mensuel" } else { "Rapport mensuel" }, "territoire"),
        csv_href: format!("/territoire/structures/{}/rapport.csv?mois={}", encode(&r.structure_id), r.month),
        id: encode(&r.structure_id),
        name: r.name,
        month: r.month,
        month_error,
        lines,
        declines,
        outcomes,
    };
    Ok(render(status, &view, true))
}

pub async fn csv(
    coordinator: SignedIn<Coordinators>,
    PathId(id): PathId<StructureId>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let month = month_of(&q).map_err(|_| PageError::not_found())?;
    let bytes = coordinator.api.structure_report_csv(&id, month.as_deref()).await?;
    let name = format!(
        "attachment; filename=\"rapport-{}-{}.csv\"",
        id.as_str().replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_"),
        month.unwrap_or_default()
    );
    let mut response = (StatusCode::OK, bytes).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&name).unwrap_or_else(|_| HeaderValue::from_static("attachment")),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
