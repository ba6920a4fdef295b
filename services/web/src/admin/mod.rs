//! The administration pages: access (`/admin/comptes`: membership requests and
//! invitations), organisations (`/admin/organisations`, admins) and structures
//! (`/admin/structures`, listed, added and edited by hand). Admins see everything,
//! coordinators their départements, as the API scopes it.

use axum::Router;
use axum::routing::{get, post};

use crate::WebState;

mod accounts;
mod organisations;
mod structure_form;
mod structures;

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/admin/organisations", get(organisations::show).post(organisations::create))
        .route("/admin/structures", get(structures::show))
        .route("/admin/structures/nouvelle", get(structure_form::new).post(structure_form::create))
        .route("/admin/structures/{id}/modifier", get(structure_form::edit).post(structure_form::update))
        .route("/admin/comptes", get(accounts::show))
        .route("/admin/comptes/demandes/{id}", post(accounts::decide))
        .route("/admin/comptes/invitations", post(accounts::invite))
}
