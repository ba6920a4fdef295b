//! The mediator's pages: the offers waiting for the structure (`/propositions`), one
//! offer to accept or decline (never the person's identity before acceptance), the
//! referrals the structure follows (`/suivis`) with contacts and closing, and the
//! structure's week (`/ma-structure`). Other memberships get 404, as the API does.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use contracts::Need;

use crate::WebState;
use crate::api::ApiFailure;
use crate::error::PageError;
use crate::views::Chrome;

pub(crate) mod appointment;
pub(crate) mod follow_up;
pub(crate) mod offers;
mod structure;

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/propositions", get(offers::list))
        .route("/propositions/{id}", get(offers::show))
        .route("/propositions/{id}/acceptation", post(offers::accept))
        .route("/propositions/{id}/refus", post(offers::decline))
        .route("/suivis", get(follow_up::list))
        .route("/suivis/{id}", get(follow_up::show))
        .route("/suivis/{id}/contact", post(follow_up::contact))
        .route("/suivis/{id}/cloture", post(follow_up::close))
        .route("/suivis/{id}/rendez-vous", post(follow_up::set_appointment))
        .route("/suivis/{id}/rendez-vous/annulation", post(follow_up::cancel_appointment))
        .route("/suivis/{id}/rendez-vous/presence", post(follow_up::attendance))
        .route("/ma-structure", get(structure::show).post(structure::save))
}

/// One line of a list of referrals: a link to its page.
pub struct Line {
    pub href: String,
    pub text: String,
    pub urgent: bool,
}

#[derive(askama::Template)]
#[template(path = "liste_liens.html")]
struct LinksView {
    chrome: Chrome,
    heading: String,
    intro: String,
    empty: String,
    lines: Vec<Line>,
    notice: Option<String>,
}

/// A choice of a vocabulary, as a form offers it.
pub struct Choice {
    pub value: &'static str,
    pub label: &'static str,
}

fn needs_text(needs: &[Need]) -> String {
    needs.iter().map(|n| n.label_fr()).collect::<Vec<_>>().join(", ")
}

fn time_left(until: &DateTime<Utc>) -> String {
    let left = *until - Utc::now();
    if left.num_minutes() <= 0 {
        return "expirée".into();
    }
    let (days, hours, minutes) = (left.num_days(), left.num_hours() % 24, left.num_minutes() % 60);
    match (days, hours) {
        (0, 0) => format!("{minutes} min"),
        (0, h) => format!("{h} h {minutes:02} min"),
        (d, h) => format!("{d} j {h} h"),
    }
}

/// A step the API refused because the referral moved on (409); or is gone (404), or any
/// other failure, as [`PageError`] tells it.
fn moved_on(failure: ApiFailure) -> PageError {
    match failure.status() {
        Some(StatusCode::CONFLICT) => PageError {
            status: StatusCode::CONFLICT,
            heading: "Cette orientation a changé",
            message:
                "Elle a été annulée, a expiré ou a déjà reçu une réponse. Revenez à la liste pour voir où elle en est."
                    .into(),
            reference: None,
            back_to_sign_in: false,
        },
        _ => failure.into(),
    }
}
