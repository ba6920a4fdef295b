//! `/compte/notifications`: the signed-in agent chooses, per kind of message, to get it
//! at once, in the morning digest, or never. It is the page every e-mail's
//! `List-Unsubscribe` header and footer link to: reached after sign-in, so its URL
//! carries nothing personal.

use askama::Template;
use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use contracts::{DeliveryMode, MessageKind};
use serde_json::{Map, Value};

use crate::WebState;
use crate::error::PageError;
use crate::pages::{form_agent, required};
use crate::views::{Chrome, render};

pub fn routes() -> Router<WebState> {
    Router::new().route("/compte/notifications", get(show).post(save))
}

pub struct KindChoice {
    pub slug: &'static str,
    pub label: &'static str,
    pub mode: String,
}

#[derive(Template)]
#[template(path = "preferences.html")]
struct Preferences {
    chrome: Chrome,
    csrf: String,
    done: Option<&'static str>,
    invalid: bool,
    kinds: Vec<KindChoice>,
    modes: Vec<(&'static str, &'static str)>,
}

fn page(chrome: Chrome, csrf: String, current: &Value, done: Option<&'static str>, invalid: bool) -> Preferences {
    let kinds = MessageKind::ALL
        .iter()
        .map(|k| KindChoice {
            slug: k.slug(),
            label: k.label_fr(),
            mode: current[k.slug()].as_str().unwrap_or(k.default_mode().slug()).to_string(),
        })
        .collect();
    let modes = DeliveryMode::ALL.iter().map(|m| (m.slug(), m.label_fr())).collect();
    Preferences { chrome, csrf, done, invalid, kinds, modes }
}

#[derive(serde::Deserialize)]
struct Saved {
    #[serde(default)]
    enregistre: Option<String>,
}

async fn show(
    State(state): State<WebState>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<Saved>,
) -> Result<Response, PageError> {
    let agent = match required(&state, &headers, "/compte/notifications").await? {
        Ok(a) => a,
        Err(redirect) => return Ok(redirect),
    };
    let current: Value = state.api.get("/api/v1/me/preferences", &agent.token).await?;
    let done = q.enregistre.is_some().then_some("Vos préférences de notification sont enregistrées.");
    let p = page(agent.chrome("Mes notifications", "compte"), agent.session.csrf.clone(), &current, done, false);
    Ok(render(StatusCode::OK, &p, true))
}

async fn save(
    State(state): State<WebState>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let csrf = form.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str());
    let agent = form_agent(&state, &headers, csrf).await?;
    let mut body = Map::new();
    for kind in MessageKind::ALL {
        if let Some((_, v)) = form.iter().find(|(k, _)| k == kind.slug()) {
            body.insert(kind.slug().to_string(), Value::String(v.clone()));
        }
    }
    let reply = state.api.send(Method::PUT, "/api/v1/me/preferences", &agent.token, Some(&Value::Object(body))).await?;
    if reply.status.is_success() {
        return Ok(Redirect::to("/compte/notifications?enregistre=1").into_response());
    }
    if reply.status != StatusCode::UNPROCESSABLE_ENTITY {
        return Err(reply.failure().into());
    }
    let current: Value = state.api.get("/api/v1/me/preferences", &agent.token).await?;
    let p =
        page(agent.chrome("Erreur : Mes notifications", "compte"), agent.session.csrf.clone(), &current, None, true);
    Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &p, true))
}
