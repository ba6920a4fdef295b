//! A page's failure: a French page with a way back, never a 5xx for a sign-in problem.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::views::{Chrome, ErrorPage, render};

#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub heading: &'static str,
    pub message: String,
    pub reference: Option<&'static str>,
    pub back_to_sign_in: bool,
}

impl PageError {
    pub fn sign_in(message: impl Into<String>, reference: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            heading: "La connexion n'a pas abouti",
            message: message.into(),
            reference: Some(reference),
            back_to_sign_in: true,
        }
    }

    pub fn forbidden() -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            heading: "Action refusée",
            message: "Ce formulaire a expiré ou ne vient pas de ce site. Rechargez la page puis recommencez.".into(),
            reference: None,
            back_to_sign_in: false,
        }
    }

    pub fn not_found() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            heading: "Page introuvable",
            message: "Cette page n'existe pas, ou vous n'y avez pas accès depuis votre espace.".into(),
            reference: None,
            back_to_sign_in: false,
        }
    }

    pub fn unavailable(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "a page could not be served");
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            heading: "Service momentanément indisponible",
            message: "Aiguillage ne peut pas afficher cette page pour le moment. Réessayez dans quelques minutes."
                .into(),
            reference: None,
            back_to_sign_in: false,
        }
    }
}

impl From<sqlx::Error> for PageError {
    fn from(err: sqlx::Error) -> Self {
        PageError::unavailable(err)
    }
}

impl From<crate::api::ApiFailure> for PageError {
    fn from(err: crate::api::ApiFailure) -> Self {
        match err.status() {
            Some(StatusCode::NOT_FOUND) => PageError::not_found(),
            Some(StatusCode::FORBIDDEN) => PageError { status: StatusCode::NOT_FOUND, ..PageError::not_found() },
            _ => PageError::unavailable(err),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            chrome: Chrome::public(self.heading, ""),
            heading: self.heading.to_string(),
            message: self.message,
            reference: self.reference.map(str::to_string),
            back_to_sign_in: self.back_to_sign_in,
        };
        render(self.status, &page, false)
    }
}
