//! `/ma-structure`: the structure's week (places, accepting new referrals) and its
//! opening hours, as its mediators keep them.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use contracts::api::CapacityRequest;
use serde::Deserialize;

use crate::error::PageError;
use crate::extract::{CsrfForm, Mediator, SignedIn};
use crate::views::{Chrome, render};

#[derive(askama::Template)]
#[template(path = "ma_structure.html")]
struct StructureForm {
    chrome: Chrome,
    csrf: String,
    name: String,
    capacity: String,
    accepting: bool,
    hours: String,
    saved: bool,
    errors: HashMap<&'static str, String>,
}

impl StructureForm {
    fn error(&self, field: &str) -> Option<&String> {
        self.errors.get(field)
    }
}

pub async fn show(
    mediator: SignedIn<Mediator>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let s = mediator.api.structure(&mediator.scope).await?;
    let view = StructureForm {
        chrome: mediator.chrome("Ma structure", "ma-structure"),
        csrf: mediator.session.csrf.clone(),
        name: s.name,
        capacity: s.weekly_capacity.to_string(),
        accepting: s.accepting,
        hours: s.opening_hours.unwrap_or_default(),
        saved: q.contains_key("enregistre"),
        errors: HashMap::new(),
    };
    Ok(render(StatusCode::OK, &view, true))
}

/// The form as posted: an unticked box is not sent, so `accepting` absent is "no".
#[derive(Deserialize)]
pub struct StructureFields {
    capacity: Option<String>,
    accepting: Option<String>,
    hours: Option<String>,
}

pub async fn save(
    mediator: SignedIn<Mediator>,
    CsrfForm(form): CsrfForm<StructureFields>,
) -> Result<Response, PageError> {
    let capacity_text = form.capacity.unwrap_or_default().trim().to_string();
    let hours = form.hours.unwrap_or_default().trim().to_string();
    let accepting = form.accepting.is_some();
    let mut errors = HashMap::new();
    let capacity = match capacity_text.parse::<i64>() {
        Ok(c) if (0..=10_000).contains(&c) => Some(c),
        _ => {
            errors.insert("capacity", "Indiquez un nombre de places entre 0 et 10 000.".to_string());
            None
        }
    };
    if !hours.is_empty() && contracts::opening_hours::OpeningHours::parse(&hours).is_err() {
        errors.insert(
            "hours",
            "Ces horaires ne sont pas au format attendu. Exemple : « Mo-Fr 09:00-12:00,14:00-17:00; Sa 09:00-12:00; PH off ».".to_string(),
        );
    }
    if errors.is_empty() {
        let body = CapacityRequest {
            weekly_capacity: capacity,
            accepting: Some(accepting),
            opening_hours: Some(hours.clone()),
        };
        match mediator.api.set_capacity(&mediator.scope, &body).await {
            Ok(_) => return Ok(Redirect::to("/ma-structure?enregistre=1").into_response()),
            Err(err) if err.status() == Some(StatusCode::UNPROCESSABLE_ENTITY) => {
                errors.insert("hours", "Ces horaires n'ont pas été acceptés.".to_string());
            }
            Err(err) => return Err(err.into()),
        }
    }
    let s = mediator.api.structure(&mediator.scope).await?;
    let view = StructureForm {
        chrome: mediator.chrome("Erreur : ma structure", "ma-structure"),
        csrf: mediator.session.csrf.clone(),
        name: s.name,
        capacity: capacity_text,
        accepting,
        hours,
        saved: false,
        errors,
    };
    Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &view, true))
}
