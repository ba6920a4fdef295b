//! `/territoire/import`: a Mednum file (JSON or CSV) imported into the directory, then
//! its report: what was created, updated, refused and why.

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use contracts::directory::ImportReport;

use crate::WebState;
use crate::error::PageError;
use crate::extract::{Agent, Coordinators, SignedIn};
use crate::views::{Chrome, render};

/// What the API takes (Mednum files of a whole region), and a little for the form.
pub const LIMIT: usize = 51 * 1024 * 1024;

#[derive(askama::Template)]
#[template(path = "import.html")]
struct ImportView {
    chrome: Chrome,
    csrf: String,
    error: Option<String>,
    summary: Vec<(&'static str, usize)>,
    rejected: Vec<(String, String)>,
    done: bool,
}

fn import_page(agent: &Agent, error: Option<String>, report: Option<ImportReport>) -> Response {
    let done = report.is_some();
    let (summary, rejected) = match report {
        Some(r) => (
            vec![
                ("Lieux lus", r.received),
                ("Créés", r.created),
                ("Mis à jour", r.updated),
                ("Inchangés", r.unchanged),
                ("Refusés", r.rejected.len()),
                ("Placés au centre de leur commune (sans coordonnées)", r.located_by_commune),
            ],
            r.rejected
                .into_iter()
                .take(200)
                .map(|x| {
                    let who = match x.id {
                        Some(id) => format!("Lieu n° {} ({id})", x.index + 1),
                        None => format!("Lieu n° {}", x.index + 1),
                    };
                    (who, x.errors.join(" ; "))
                })
                .collect(),
        ),
        None => (vec![], vec![]),
    };
    let invalid = error.is_some();
    let view = ImportView {
        chrome: agent.chrome(if invalid { "Erreur : import" } else { "Importer un fichier" }, "import"),
        csrf: agent.session.csrf.clone(),
        error,
        summary,
        rejected,
        done,
    };
    render(if invalid { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK }, &view, true)
}

pub async fn form(coordinator: SignedIn<Coordinators>) -> Response {
    import_page(&coordinator, None, None)
}

/// What the form posts: its token and the file, with the file's name.
struct Posted {
    csrf: Option<String>,
    file: Option<(String, Vec<u8>)>,
}

async fn read(multipart: Option<Multipart>) -> Posted {
    let mut posted = Posted { csrf: None, file: None };
    let Some(mut multipart) = multipart else { return posted };
    while let Ok(Some(field)) = multipart.next_field().await {
        match field.name() {
            Some("csrf") => posted.csrf = field.text().await.ok(),
            Some("fichier") => {
                let name = field.file_name().unwrap_or("").to_ascii_lowercase();
                posted.file = Some((name, field.bytes().await.map(|b| b.to_vec()).unwrap_or_default()));
            }
            _ => {}
        }
    }
    posted
}

/// A multipart form, whose token is one of its parts: checked here rather than by
/// [`crate::extract::CsrfForm`], which reads URL-encoded forms.
pub async fn import(
    State(state): State<WebState>,
    coordinator: SignedIn<Coordinators>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, PageError> {
    let posted = read(multipart.ok()).await;
    coordinator.check_csrf(&headers, &state, posted.csrf.as_deref())?;
    let Some((name, bytes)) = posted.file.filter(|(_, b)| !b.is_empty()) else {
        return Ok(import_page(
            &coordinator,
            Some("Choisissez un fichier Mednum (JSON ou CSV) à importer.".into()),
            None,
        ));
    };
    let trimmed = bytes.iter().copied().find(|b| !b.is_ascii_whitespace());
    let content_type = if name.ends_with(".csv") || (!name.ends_with(".json") && trimmed != Some(b'[')) {
        "text/csv"
    } else {
        "application/json"
    };
    match coordinator.api.import_structures(content_type, bytes).await {
        Ok(report) => Ok(import_page(&coordinator, None, Some(report))),
        Err(err) if matches!(err.status(), Some(StatusCode::UNPROCESSABLE_ENTITY | StatusCode::PAYLOAD_TOO_LARGE)) => {
            Ok(import_page(
                &coordinator,
                Some(
                    "Ce fichier n'est pas un fichier Mednum lisible (JSON ou CSV du standard), ou il dépasse 50 Mo."
                        .into(),
                ),
                None,
            ))
        }
        Err(err) => Err(err.into()),
    }
}
