//! `/admin/organisations`: the referring organisations, page by page, and a new one
//! (admins).

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use contracts::api::OrganisationRequest;
use serde::Deserialize;

use crate::error::PageError;
use crate::extract::{Admins, Agent, CsrfForm, SignedIn};
use crate::form::text;
use crate::views::{Chrome, render};

#[derive(askama::Template)]
#[template(path = "admin_organisations.html")]
struct OrganisationsView {
    chrome: Chrome,
    csrf: String,
    rows: Vec<(String, String, String, String)>,
    next: Option<String>,
    done: bool,
    name: String,
    kind: String,
    territory: String,
    siret: String,
    kinds: Vec<(&'static str, &'static str)>,
    errors: HashMap<&'static str, String>,
}

impl OrganisationsView {
    fn error(&self, field: &str) -> Option<&String> {
        self.errors.get(field)
    }
}

/// The page's query (the next page, an organisation just created) and its form.
#[derive(Deserialize, Default)]
pub struct OrganisationForm {
    name: Option<String>,
    kind: Option<String>,
    territory: Option<String>,
    siret: Option<String>,
    apres: Option<String>,
    creee: Option<String>,
}

async fn organisations_page(
    agent: &Agent,
    form: OrganisationForm,
    errors: HashMap<&'static str, String>,
) -> Result<Response, PageError> {
    let cursor = form.apres.as_deref().filter(|c| c.bytes().all(|b| b.is_ascii_digit()) && !c.is_empty());
    let page = agent.api.organisations(cursor).await?;
    let invalid = !errors.is_empty();
    let view = OrganisationsView {
        chrome: agent.chrome(if invalid { "Erreur : organisations" } else { "Organisations" }, "organisations"),
        csrf: agent.session.csrf.clone(),
        rows: page
            .items
            .into_iter()
            .map(|o| (o.name, o.kind.label_fr().to_string(), o.territory.to_string(), o.siret.unwrap_or_default()))
            .collect(),
        next: page.next_cursor.map(|c| format!("/admin/organisations?apres={c}")),
        done: form.creee.is_some(),
        name: form.name.unwrap_or_default(),
        kind: form.kind.unwrap_or_default(),
        territory: form.territory.unwrap_or_default(),
        siret: form.siret.unwrap_or_default(),
        kinds: contracts::OrganisationKind::ALL.iter().map(|k| (k.slug(), k.label_fr())).collect(),
        errors,
    };
    Ok(render(if invalid { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK }, &view, true))
}

pub async fn show(admin: SignedIn<Admins>, Query(q): Query<OrganisationForm>) -> Result<Response, PageError> {
    organisations_page(&admin, q, HashMap::new()).await
}

pub async fn create(
    admin: SignedIn<Admins>,
    CsrfForm(form): CsrfForm<OrganisationForm>,
) -> Result<Response, PageError> {
    let field = |s: &Option<String>| s.as_deref().and_then(text);
    let body = OrganisationRequest {
        name: field(&form.name),
        kind: field(&form.kind),
        territory: field(&form.territory),
        siret: field(&form.siret).map(|s| s.replace(' ', "")),
    };
    let failure = match admin.api.create_organisation(&body).await {
        Ok(_) => return Ok(Redirect::to("/admin/organisations?creee=1").into_response()),
        Err(failure) if failure.status() == Some(StatusCode::UNPROCESSABLE_ENTITY) => failure,
        Err(failure) => return Err(failure.into()),
    };
    let mut errors = HashMap::new();
    for e in failure.field_errors() {
        let (f, message) = match e.field.as_str() {
            "name" => ("name", "Indiquez le nom de l'organisation (300 caractères au plus)."),
            "kind" => ("kind", "Choisissez le type d'organisation."),
            "territory" => ("territory", "Indiquez un code de département, par exemple 16, 2A ou 971."),
            "siret" => ("siret", "Un SIRET a 14 chiffres."),
            _ => ("name", "L'organisation n'a pas pu être créée."),
        };
        errors.entry(f).or_insert_with(|| message.to_string());
    }
    organisations_page(&admin, OrganisationForm { creee: None, apres: None, ..form }, errors).await
}
