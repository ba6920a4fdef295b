//! `/admin/structures`: the structures the caller sees, by département, page by page,
//! each with its report and its form.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use contracts::Territory;

use crate::error::PageError;
use crate::extract::{Coordinators, SignedIn};
use crate::views::{Chrome, render};

pub struct StructureLine {
    pub href: String,
    /// Its form (`/admin/structures/{id}/modifier`).
    pub edit: String,
    pub name: String,
    pub commune: String,
    pub territory: String,
    pub capacity: String,
}

#[derive(askama::Template)]
#[template(path = "admin_structures.html")]
struct StructuresView {
    chrome: Chrome,
    territory: String,
    rows: Vec<StructureLine>,
    next: Option<String>,
    error: Option<String>,
}

pub async fn show(
    coordinator: SignedIn<Coordinators>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let territory = q.get("departement").map(|t| t.trim().to_string()).unwrap_or_default();
    let (chosen, error) = match territory.parse::<Territory>() {
        _ if territory.is_empty() => (None, None),
        Ok(t) => (Some(t), None),
        Err(_) => (None, Some("Indiquez un code de département, par exemple 16, 2A ou 971.".to_string())),
    };
    let cursor = q.get("apres").map(String::as_str).filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()));
    let page = coordinator.api.structures(chosen.as_ref(), cursor).await?;
    let rows = page
        .items
        .into_iter()
        .map(|s| {
            let id: String = form_urlencoded::byte_serialize(s.id.as_str().as_bytes()).collect();
            StructureLine {
                href: format!("/territoire/structures/{id}/rapport"),
                edit: format!("/admin/structures/{id}/modifier"),
                commune: s.address.commune.unwrap_or_default(),
                capacity: format!("{}{}", s.weekly_capacity, if s.accepting { "" } else { " (n'accepte plus)" }),
                name: s.name,
                territory: s.territory.to_string(),
            }
        })
        .collect();
    let next = page.next_cursor.map(|c| format!("/admin/structures?departement={territory}&apres={c}"));
    let invalid = error.is_some();
    let view = StructuresView {
        chrome: coordinator.chrome(if invalid { "Erreur : structures" } else { "Structures" }, "structures"),
        territory,
        rows,
        next,
        error,
    };
    Ok(render(if invalid { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK }, &view, true))
}
