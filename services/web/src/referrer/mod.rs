//! The referrer's pages: the organisation's referrals (`/orientations`), the referral
//! form (`/orientations/nouvelle`), one referral with its timeline, its appointment and
//! its cancellation (`/orientations/{id}`), and the person's printable slip
//! (`/orientations/{id}/fiche`, also the accepting structure's). Other memberships get 404, as the API does.

use axum::Router;
use axum::routing::{get, post};
use contracts::ReferralStatus;

use crate::WebState;

mod list;
mod new;
mod referral;
pub(crate) mod slip;

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/orientations", get(list::show))
        .route("/orientations/nouvelle", get(new::form).post(new::submit))
        .route("/orientations/{id}", get(referral::show))
        .route("/orientations/{id}/annulation", post(referral::cancel))
        .route("/orientations/{id}/fiche", get(slip::show))
}

/// A status as the referrer's pages say it.
fn status_fr(s: ReferralStatus) -> &'static str {
    match s {
        ReferralStatus::Submitted => "Envoyée, en recherche d'un lieu",
        ReferralStatus::Offered => "Proposée à un lieu, en attente de réponse",
        ReferralStatus::Waitlisted => "En liste d'attente",
        ReferralStatus::Accepted => "Acceptée par un lieu",
        ReferralStatus::InProgress => "Accompagnement en cours",
        ReferralStatus::Closed => "Clôturée",
        ReferralStatus::Cancelled => "Annulée",
    }
}
