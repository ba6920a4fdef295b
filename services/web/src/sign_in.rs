//! Signing in and out: `/connexion`, the OpenID Connect flow (`/auth/login`,
//! `/auth/callback`) and `/deconnexion`. A session is created at the provider's return
//! and never before; every refusal is a French page and an audited failure.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use contracts::Personal;
use contracts::accounts::{SignInFailure, SignInRequest};
use serde::Deserialize;

use crate::WebState;
use crate::error::PageError;
use crate::extract::{Anyone, CsrfForm, NoFields, SignedIn, Visitor};
use crate::oidc::Failure;
use crate::session::{self, Cookies, FlowRefused};
use crate::views::{Chrome, Connexion, render};

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/connexion", get(connexion))
        .route("/auth/login", get(login))
        .route("/auth/callback", get(callback))
        .route("/deconnexion", post(sign_out))
}

async fn connexion(
    State(state): State<WebState>,
    Visitor(agent): Visitor,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let next = session::safe_next(q.get("next").map(String::as_str));
    if agent.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    let login_href = if next == "/" {
        "/auth/login".to_string()
    } else {
        format!("/auth/login?next={}", form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>())
    };
    let page = Connexion {
        chrome: Chrome::public("Connexion", "connexion"),
        enabled: state.oidc.is_some(),
        login_href,
        signed_out: q.contains_key("deconnecte"),
    };
    Ok(render(StatusCode::OK, &page, false))
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// Starts a sign-in: a flow bound to this browser by a cookie, then 302 to the provider.
async fn login(State(state): State<WebState>, Query(q): Query<NextQuery>) -> Result<Response, PageError> {
    let Some(provider) = state.oidc.clone() else {
        return Err(PageError::sign_in("La connexion n'est pas configurée sur ce serveur.", "oidc_off"));
    };
    let next = session::safe_next(q.next.as_deref());
    let started = provider.start().await.map_err(|f| {
        PageError::sign_in(
            "Le service d'identification ne répond pas pour le moment. Réessayez dans quelques minutes.",
            f.code(),
        )
    })?;
    let browser = session::random_token();
    session::save_flow(&state.pool, &started.state, &browser, &started.nonce, &started.pkce_verifier, &next).await?;
    let cookies = Cookies { secure: state.config.secure() };
    let mut response = Redirect::to(started.url.as_str()).into_response();
    *response.status_mut() = StatusCode::FOUND;
    response.headers_mut().append(header::SET_COOKIE, header_value(&cookies.flow(browser)));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

pub(crate) fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

/// The provider's return. Any failure: a French page, the audit, no session.
async fn callback(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, PageError> {
    let cookies = Cookies { secure: state.config.secure() };
    // Whatever happens, this sign-in's cookie is done, and a session this browser had
    // before does not survive a new sign-in (nor a failed one).
    let mut clear = vec![cookies.clear(cookies.flow_name())];
    if let Some(old) = Cookies::read(&headers, cookies.session_name()) {
        session::delete(&state.pool, &old).await?;
        clear.push(cookies.clear(cookies.session_name()));
    }
    let outcome = finish_sign_in(&state, &headers, &q).await;
    let mut response = match outcome {
        Ok((value, next)) => {
            let mut r = Redirect::to(&next).into_response();
            clear.retain(|c| !c.starts_with(cookies.session_name()));
            clear.push(cookies.session(value, state.config.session_max));
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(failure) => {
            tracing::info!(reason = failure.code(), "sign-in refused");
            let audit = SignInFailure {
                reason: failure.code().to_string(),
                issuer: state.oidc.as_ref().map(|p| p.issuer().to_string()),
            };
            if let Err(err) = state.as_service().sign_in_failure(&audit).await {
                tracing::warn!(error = %err, "could not audit a failed sign-in");
            }
            PageError::sign_in(failure_message(failure), failure.code()).into_response()
        }
    };
    for cookie in clear {
        response.headers_mut().append(header::SET_COOKIE, header_value(&cookie));
    }
    Ok(response)
}

fn failure_message(failure: Failure) -> &'static str {
    match failure {
        Failure::UnknownState | Failure::StateExpired | Failure::OtherBrowser => {
            "Cette tentative de connexion a expiré ou a déjà servi. Recommencez depuis la page de connexion."
        }
        Failure::ProviderError => "La connexion a été annulée ou refusée par le service d'identification.",
        Failure::Discovery | Failure::TokenExchange => {
            "Le service d'identification n'a pas pu confirmer votre identité. Recommencez dans quelques instants."
        }
        Failure::NoEmail => {
            "Le service d'identification n'a pas transmis d'adresse e-mail : elle est nécessaire pour utiliser Aiguillage."
        }
        Failure::Account => "Votre compte n'a pas pu être enregistré. Recommencez dans quelques instants.",
        _ => "La réponse du service d'identification n'a pas pu être vérifiée. Par sécurité, la connexion est refusée.",
    }
}

async fn finish_sign_in(state: &WebState, headers: &HeaderMap, q: &CallbackQuery) -> Result<(String, String), Failure> {
    let provider = state.oidc.clone().ok_or(Failure::Discovery)?;
    let cookies = Cookies { secure: state.config.secure() };
    let browser = Cookies::read(headers, cookies.flow_name());
    let given_state = q.state.as_deref().filter(|s| !s.is_empty()).ok_or(Failure::UnknownState)?;
    let flow = session::take_flow(&state.pool, given_state, browser.as_deref())
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "could not read a sign-in flow");
            Failure::Account
        })?
        .map_err(|refused| match refused {
            FlowRefused::Unknown => Failure::UnknownState,
            FlowRefused::Expired => Failure::StateExpired,
            FlowRefused::OtherBrowser => Failure::OtherBrowser,
        })?;
    if q.error.is_some() {
        return Err(Failure::ProviderError);
    }
    provider.check_issuer_parameter(q.iss.as_deref())?;
    let code = q.code.as_deref().filter(|c| !c.is_empty()).ok_or(Failure::TokenExchange)?;
    let identity = provider.finish(code, &flow.pkce_verifier, &flow.nonce).await?;

    let body = SignInRequest {
        issuer: identity.issuer,
        subject: identity.subject,
        email: Personal::new(identity.email),
        given_name: identity.given_name.map(Personal::new),
        usual_name: identity.usual_name.map(Personal::new),
        siret: identity.siret,
    };
    let signed = state.as_service().sign_in(&body).await.map_err(|err| {
        tracing::warn!(status = ?err.status(), "the account of a sign-in could not be recorded");
        if err.status() == Some(StatusCode::UNPROCESSABLE_ENTITY) { Failure::NoEmail } else { Failure::Account }
    })?;
    let active = signed.memberships.first().map(|m| m.id);
    let value = session::create(&state.pool, signed.account_id, active, &identity.id_token, state.config.session_max)
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "could not create a session");
            Failure::Account
        })?;
    tracing::info!(account_id = %signed.account_id, created = signed.created, "session started");
    Ok((value, flow.next))
}

/// Ends the session, then the provider's (RP-initiated logout) when it has an endpoint.
async fn sign_out(
    State(state): State<WebState>,
    agent: SignedIn<Anyone>,
    CsrfForm(NoFields {}): CsrfForm<NoFields>,
) -> Result<Response, PageError> {
    if let Err(err) = agent.api.sign_out().await {
        tracing::warn!(error = %err, "could not audit a sign-out");
    }
    session::delete(&state.pool, &agent.cookie).await?;
    let post_logout = state.config.url("/connexion");
    let target = match (&state.oidc, &agent.session.id_token) {
        (Some(provider), Some(id_token)) => {
            provider.end_session_url(id_token, &post_logout).await.map(|u| u.to_string())
        }
        _ => None,
    };
    let mut response = Redirect::to(target.as_deref().unwrap_or("/connexion?deconnecte=1")).into_response();
    let cookies = Cookies { secure: state.config.secure() };
    response.headers_mut().append(header::SET_COOKIE, header_value(&cookies.clear(cookies.session_name())));
    Ok(response)
}
