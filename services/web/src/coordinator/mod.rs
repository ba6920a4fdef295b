//! The coordinator's pages: the territory's queues and waitlist (`/territoire`), one
//! waiting or escalated referral to reroute (no personal data), the funnel of a period,
//! supply against demand by commune, a structure's monthly report with its CSV, the
//! import of a Mednum file, and what if (a past period replayed with other capacities).
//! Charts and maps are SVG drawn on the server, next to a table with the same figures.
//! Other memberships get 404, as the API does.

use axum::Router;
use axum::routing::{get, post};
use contracts::{DeclineReason, Outcome};

use crate::WebState;

mod funnel;
mod import;
mod queues;
mod report;
mod simulation;
mod supply_demand;
mod waiting;

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/territoire", get(queues::show))
        .route("/territoire/orientations/{id}", get(waiting::show))
        .route("/territoire/orientations/{id}/reorientation", post(waiting::reroute))
        .route("/territoire/entonnoir", get(funnel::show))
        .route("/territoire/offre-et-demande", get(supply_demand::show))
        .route("/territoire/structures/{id}/rapport", get(report::show))
        .route("/territoire/structures/{id}/rapport.csv", get(report::csv))
        .route("/territoire/simulation", get(simulation::form).post(simulation::submit))
        .route(
            "/territoire/import",
            get(import::form).post(import::import).layer(axum::extract::DefaultBodyLimit::max(import::LIMIT)),
        )
}

/// A delay in words: "2 j 3 h", "1 h 05 min"; "—" when there is none.
fn duration_fr(seconds: Option<i64>) -> String {
    let Some(s) = seconds else { return "—".into() };
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    match (d, h) {
        (0, 0) => format!("{m} min"),
        (0, h) => format!("{h} h {m:02} min"),
        (d, h) => format!("{d} j {h} h"),
    }
}

/// A no-show rate as a coordinator reads it, with what it is made of: "25 % (1 sur 4)";
/// "—" when no attendance was recorded (no rate then, not 0 %).
fn no_show_rate_fr(rate: Option<f64>, no_shows: i64, recorded: i64) -> String {
    match rate {
        Some(r) if recorded > 0 => format!("{} % ({no_shows} sur {recorded})", (r * 100.0).round()),
        _ => "—".into(),
    }
}

/// A structure id in a page's path.
fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Counts by decline reason or by outcome (the API's slugs), in words; a slug that is
/// not in the vocabulary shows as it is.
fn counted<T: std::str::FromStr>(
    counts: &std::collections::BTreeMap<String, i64>,
    label: fn(T) -> &'static str,
) -> Vec<(String, i64)> {
    counts
        .iter()
        .map(|(slug, n)| (slug.parse::<T>().map(label).map_or_else(|_| slug.clone(), str::to_string), *n))
        .collect()
}

fn declines(counts: &std::collections::BTreeMap<String, i64>) -> Vec<(String, i64)> {
    counted::<DeclineReason>(counts, DeclineReason::label_fr)
}

fn outcomes(counts: &std::collections::BTreeMap<String, i64>) -> Vec<(String, i64)> {
    counted::<Outcome>(counts, Outcome::label_fr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_no_show_rate_says_what_it_is_made_of_and_is_a_dash_without_records() {
        assert_eq!(no_show_rate_fr(None, 0, 0), "—");
        assert_eq!(no_show_rate_fr(Some(0.0), 0, 0), "—");
        assert_eq!(no_show_rate_fr(Some(0.25), 1, 4), "25 % (1 sur 4)");
        assert_eq!(no_show_rate_fr(Some(0.0), 0, 3), "0 % (0 sur 3)");
        assert_eq!(no_show_rate_fr(Some(0.3333), 1, 3), "33 % (1 sur 3)");
    }
}
