//! The sign-in pages (`/connexion`, `/auth/*`, `/compte`, `/deconnexion`) and the pages
//! every visitor can read. Each signed-in request finds its session, then asks the API
//! who the agent is (`GET /api/v1/me`), so a membership removed since the last page is
//! gone on this one.

use std::collections::HashMap;

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::Duration as ChronoDuration;
use contracts::Role;
use contracts::accounts::{MeView, MembershipView, PlaceKind, Places, SignInResponse};
use platform::auth::{Claims, Scope};
use serde::Deserialize;
use serde_json::json;
use tower::ServiceExt;
use uuid::Uuid;

use crate::WebState;
use crate::error::PageError;
use crate::oidc::Failure;
use crate::session::{self, Cookies, FlowRefused, Session};
use crate::views::{AgentChrome, Chrome, Compte, Connexion, Home, Info, MembershipItem, PlaceOption, render};

/// The tokens a page mints to call the API live this long: they are used within the request.
const PAGE_TOKEN_TTL: ChronoDuration = ChronoDuration::minutes(5);

pub fn router(state: WebState, api: Router) -> Router {
    // Chromium applies form-action to the redirects that follow a form: sign-out's goes
    // to the provider's end_session_endpoint.
    let provider = state
        .oidc
        .as_ref()
        .and_then(|p| url::Url::parse(p.issuer()).ok())
        .map(|u| format!(" {}", u.origin().ascii_serialization()))
        .unwrap_or_default();
    let csp = HeaderValue::from_str(&format!(
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'{provider}; base-uri 'none'"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; base-uri 'none'"));
    let pages = Router::new()
        .route("/", get(home))
        .route("/connexion", get(connexion))
        .route("/auth/login", get(login))
        .route("/auth/callback", get(callback))
        .route("/compte", get(compte))
        .route("/compte/demandes", post(request_access))
        .route("/espace", post(switch_space))
        .route("/deconnexion", post(sign_out))
        .route("/accessibilite", get(accessibility))
        .route("/donnees-personnelles", get(personal_data))
        .route("/mentions-legales", get(legal))
        .merge(crate::assets::routes())
        .merge(crate::referrer::routes())
        .merge(crate::mediator::routes())
        .merge(crate::coordinator::routes())
        .merge(crate::admin::routes())
        .merge(crate::journal::routes())
        .merge(crate::preferences::routes())
        .merge(crate::structures::routes())
        .layer(middleware::from_fn(move |request: Request, next: Next| security_headers(csp.clone(), request, next)))
        .with_state(state);
    // Everything else is the API's (and health, metrics); a browser asking for an
    // unknown page gets a page, not problem+json.
    pages.fallback(move |request: Request| {
        let api = api.clone();
        async move {
            let path = request.uri().path();
            let api_path = path.starts_with("/api/") || matches!(path, "/healthz" | "/readyz" | "/metrics");
            if !api_path && wants_html(request.headers()) {
                return PageError::not_found().into_response();
            }
            match api.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    })
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"))
}

/// No framing, no script or style from elsewhere, no referrer beyond this site.
async fn security_headers(csp: HeaderValue, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// A signed-in agent, as this request sees them.
pub(crate) struct Agent {
    pub cookie: String,
    pub session: Session,
    pub me: MeView,
    pub active: Option<MembershipView>,
    /// For the API, as the active membership (or as an agent without one).
    pub token: String,
}

impl Agent {
    fn name(&self) -> String {
        let parts: Vec<&str> = [&self.me.given_name, &self.me.usual_name]
            .into_iter()
            .flatten()
            .map(|n| n.expose().as_str())
            .filter(|n| !n.trim().is_empty())
            .collect();
        if parts.is_empty() { "Agent".to_string() } else { parts.join(" ") }
    }

    /// The active membership has one of `roles`.
    pub(crate) fn acts_as(&self, roles: &[Role]) -> bool {
        self.active.as_ref().is_some_and(|m| roles.contains(&m.role))
    }

    pub(crate) fn chrome(&self, title: &str, section: &'static str) -> Chrome {
        Chrome {
            title: title.to_string(),
            section,
            agent: Some(AgentChrome {
                name: self.name(),
                space: self.active.as_ref().map(space_label),
                several: self.me.memberships.len() > 1,
                csrf: self.session.csrf.clone(),
                nav: match self.active.as_ref().map(|m| m.role) {
                    Some(Role::Referrer) => vec![
                        ("/orientations", "Orientations", "orientations"),
                        ("/orientations/nouvelle", "Nouvelle orientation", "nouvelle"),
                    ],
                    Some(Role::Coordinator) => vec![
                        ("/territoire", "Territoire", "territoire"),
                        ("/territoire/entonnoir", "Entonnoir", "entonnoir"),
                        ("/territoire/offre-et-demande", "Offre et demande", "offre"),
                        ("/territoire/import", "Import", "import"),
                        ("/admin/structures", "Structures", "structures"),
                        ("/admin/comptes", "Comptes", "comptes"),
                    ],
                    Some(Role::Admin) => vec![
                        ("/territoire", "Territoire", "territoire"),
                        ("/territoire/entonnoir", "Entonnoir", "entonnoir"),
                        ("/admin/organisations", "Organisations", "organisations"),
                        ("/admin/structures", "Structures", "structures"),
                        ("/admin/comptes", "Comptes", "comptes"),
                        ("/journal", "Journal des accès", "journal"),
                    ],
                    Some(Role::Dpo) => vec![("/journal", "Journal des accès", "journal")],
                    Some(Role::Mediator) => vec![
                        ("/propositions", "Propositions", "propositions"),
                        ("/suivis", "Suivis", "suivis"),
                        ("/ma-structure", "Ma structure", "ma-structure"),
                    ],
                    _ => vec![],
                },
            }),
        }
    }
}

/// What a page shows in place of a person whose data is gone (the API's `personal_data`).
pub(crate) fn removed_label(personal_data: Option<&str>) -> Option<&'static str> {
    match personal_data? {
        "purged" => Some("données supprimées (durée de conservation)"),
        _ => Some("données supprimées (à la demande de la personne)"),
    }
}

pub(crate) fn role_label(role: Role) -> &'static str {
    match role {
        Role::Referrer => "Prescription",
        Role::Mediator => "Médiation",
        Role::Coordinator => "Coordination",
        Role::Admin => "Administration",
        Role::Dpo => "Protection des données",
    }
}

fn space_label(m: &MembershipView) -> String {
    format!("{} — {}", role_label(m.role), m.label)
}

fn scope_of(m: &MembershipView) -> Option<Scope> {
    Some(match m.role {
        Role::Admin => Scope::All,
        Role::Referrer => Scope::Organisation(m.organisation_id?),
        Role::Mediator => Scope::Structure(m.structure_id.clone()?),
        Role::Coordinator => Scope::Territories(m.territories.clone()),
        Role::Dpo => Scope::Dpo,
    })
}

/// The agent of this request's session, if it has a live one.
pub(crate) async fn agent(state: &WebState, headers: &HeaderMap) -> Result<Option<Agent>, PageError> {
    let cookies = Cookies { secure: state.config.secure() };
    let Some(cookie) = Cookies::read(headers, cookies.session_name()) else { return Ok(None) };
    let Some(mut session) = session::touch(&state.pool, &cookie, state.config.session_idle).await? else {
        return Ok(None);
    };
    let ring = state.auth.ring();
    let pending = ring.issue(&Claims::for_pending_account(session.account_id, PAGE_TOKEN_TTL));
    // Every page asks; the waiting requests are read only by /compte.
    let me: MeView = match state.api.get("/api/v1/me?requests=false", &pending).await {
        Ok(me) => me,
        Err(err) if err.status() == Some(StatusCode::NOT_FOUND) => {
            session::delete(&state.pool, &cookie).await?;
            return Ok(None);
        }
        Err(err) => return Err(PageError::unavailable(err)),
    };
    // The session's membership, while the agent still holds it; else their first.
    let kept = session.membership_id.and_then(|id| me.memberships.iter().find(|m| m.id == id));
    let active = kept.or_else(|| me.memberships.first()).cloned();
    if active.as_ref().map(|m| m.id) != session.membership_id {
        session::set_membership(&state.pool, &cookie, active.as_ref().map(|m| m.id)).await?;
        session.membership_id = active.as_ref().map(|m| m.id);
    }
    let token = match active.as_ref().and_then(|m| Some((m, scope_of(m)?))) {
        Some((m, scope)) => {
            let claims = Claims::for_membership(session.account_id, m.id, m.role, scope, PAGE_TOKEN_TTL)
                .map_err(PageError::unavailable)?;
            ring.issue(&claims)
        }
        None => pending,
    };
    Ok(Some(Agent { cookie, session, me, active, token }))
}

/// The agent acting as one of `roles`; another membership gets 404, as the API
/// answers, and no session a redirect to `/connexion?next=`.
pub(crate) async fn required_as(
    state: &WebState,
    headers: &HeaderMap,
    here: &str,
    roles: &[Role],
) -> Result<Result<Agent, Response>, PageError> {
    match required(state, headers, here).await? {
        Ok(agent) if agent.acts_as(roles) => Ok(Ok(agent)),
        Ok(_) => Err(PageError::not_found()),
        Err(redirect) => Ok(Err(redirect)),
    }
}

/// The agent, or a redirect to `/connexion?next=` this page.
pub(crate) async fn required(
    state: &WebState,
    headers: &HeaderMap,
    here: &str,
) -> Result<Result<Agent, Response>, PageError> {
    Ok(match agent(state, headers).await? {
        Some(a) => Ok(a),
        None => {
            let next: String = form_urlencoded::byte_serialize(here.as_bytes()).collect();
            Err(Redirect::to(&format!("/connexion?next={next}")).into_response())
        }
    })
}

const JOURNAL_LINK: &str = "Consulter le journal des accès aux données personnelles";

async fn home(State(state): State<WebState>, headers: HeaderMap) -> Result<Response, PageError> {
    let agent = match required(&state, &headers, "/").await? {
        Ok(a) => a,
        Err(redirect) => return Ok(redirect),
    };
    let Some(active) = agent.active.clone() else {
        return compte_page(&state, &agent, CompteForm::default(), None, StatusCode::OK).await;
    };
    let links = match active.role {
        Role::Referrer => vec![
            ("/orientations/nouvelle".to_string(), "Nouvelle orientation".to_string()),
            ("/orientations".to_string(), "Suivre les orientations de mon organisation".to_string()),
        ],
        Role::Mediator => vec![
            ("/propositions".to_string(), "Répondre aux propositions".to_string()),
            ("/suivis".to_string(), "Suivre les personnes accueillies".to_string()),
            ("/ma-structure".to_string(), "Mettre à jour les places de la semaine".to_string()),
        ],
        Role::Coordinator => vec![
            ("/territoire".to_string(), "Voir les files d'attente et la liste d'attente".to_string()),
            ("/territoire/entonnoir".to_string(), "Voir l'entonnoir d'une période".to_string()),
            ("/territoire/offre-et-demande".to_string(), "Comparer l'offre et la demande par commune".to_string()),
        ],
        Role::Admin => vec![
            ("/territoire".to_string(), "Voir les files d'attente et la liste d'attente".to_string()),
            ("/territoire/entonnoir".to_string(), "Voir l'entonnoir d'une période".to_string()),
            ("/territoire/offre-et-demande".to_string(), "Comparer l'offre et la demande par commune".to_string()),
            ("/journal".to_string(), JOURNAL_LINK.to_string()),
        ],
        Role::Dpo => vec![("/journal".to_string(), JOURNAL_LINK.to_string())],
    };
    let page = Home {
        chrome: agent.chrome("Accueil", "accueil"),
        given_name: agent.me.given_name.as_ref().map(|n| n.expose().clone()).unwrap_or_default(),
        space: space_label(&active),
        links,
    };
    Ok(render(StatusCode::OK, &page, true))
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
    #[serde(default)]
    deconnecte: Option<String>,
}

async fn connexion(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let next = session::safe_next(q.get("next").map(String::as_str));
    if agent(&state, &headers).await?.is_some() {
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

/// Starts a sign-in: a flow bound to this browser by a cookie, then 302 to the provider.
async fn login(State(state): State<WebState>, Query(q): Query<NextQuery>) -> Result<Response, PageError> {
    let _ = q.deconnecte;
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
            let service = state.auth.ring().issue(&Claims::for_service(crate::SERVICE, PAGE_TOKEN_TTL));
            let body = json!({ "reason": failure.code(), "issuer": state.oidc.as_ref().map(|p| p.issuer()) });
            if let Err(err) =
                state.api.send(http::Method::POST, "/api/v1/accounts/sign-in-failures", &service, Some(&body)).await
            {
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

    let service = state.auth.ring().issue(&Claims::for_service(crate::SERVICE, PAGE_TOKEN_TTL));
    let body = json!({
        "issuer": identity.issuer,
        "subject": identity.subject,
        "email": identity.email,
        "given_name": identity.given_name,
        "usual_name": identity.usual_name,
        "siret": identity.siret,
    });
    let signed: SignInResponse = state.api.post("/api/v1/accounts/sign-ins", &service, &body).await.map_err(|err| {
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

#[derive(Deserialize, Default)]
struct CompteForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    place: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    demande: Option<String>,
}

async fn compte(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<CompteForm>,
) -> Result<Response, PageError> {
    let agent = match required(&state, &headers, "/compte").await? {
        Ok(a) => a,
        Err(redirect) => return Ok(redirect),
    };
    let done = q
        .demande
        .is_some()
        .then(|| "Votre demande d'accès a été envoyée. Vous serez prévenu de la décision.".to_string());
    compte_page(&state, &agent, q, done, StatusCode::OK).await
}

#[derive(Default)]
struct FieldErrors {
    place: Option<String>,
    message: Option<String>,
}

async fn compte_page(
    state: &WebState,
    agent: &Agent,
    form: CompteForm,
    done: Option<String>,
    status: StatusCode,
) -> Result<Response, PageError> {
    compte_page_with(state, agent, form, done, FieldErrors::default(), status).await
}

async fn compte_page_with(
    state: &WebState,
    agent: &Agent,
    form: CompteForm,
    done: Option<String>,
    errors: FieldErrors,
    status: StatusCode,
) -> Result<Response, PageError> {
    let query = form.q.clone().unwrap_or_default().trim().to_string();
    let mut search_error = None;
    // The places of the agent's SIRET first (the API uses the agent's own), then the search.
    let siret_places: Places = state.api.get("/api/v1/accounts/places", &agent.token).await?;
    let mut found = Vec::new();
    if !query.is_empty() {
        if query.chars().count() < 2 {
            search_error = Some("Saisissez au moins 2 caractères.".to_string());
        } else {
            let q: String = form_urlencoded::byte_serialize(query.as_bytes()).collect();
            let path = format!("/api/v1/accounts/places?q={q}&limit=50");
            match state.api.get::<Places>(&path, &agent.token).await {
                Ok(p) => found = p.items,
                Err(err) if err.status() == Some(StatusCode::UNPROCESSABLE_ENTITY) => {
                    search_error = Some(
                        "Cette recherche n'est pas valide : utilisez des lettres, des chiffres et des espaces.".into(),
                    );
                }
                Err(err) => return Err(err.into()),
            }
            if found.is_empty() && search_error.is_none() {
                search_error = Some(format!("Aucune organisation ni structure ne correspond à « {query} »."));
            }
        }
    }
    let option = |p: &contracts::accounts::PlaceView| {
        let kind = match p.kind {
            PlaceKind::Structure => "structure",
            PlaceKind::Organisation => "organisation",
        };
        let what = match p.kind {
            PlaceKind::Structure => "Structure",
            PlaceKind::Organisation => "Organisation",
        };
        let commune = p.commune.as_deref().map(|c| format!(", {c}")).unwrap_or_default();
        PlaceOption {
            value: format!("{kind}:{}", p.id),
            text: format!("{} ({what}{commune}, {})", p.name, &*p.territory),
        }
    };
    let matches: Vec<PlaceOption> = siret_places.items.iter().filter(|p| p.matches_siret).map(option).collect();
    let has_siret_matches = !matches.is_empty();
    let mut places = Vec::new();
    if has_siret_matches {
        places.push(("Lieux de votre employeur (SIRET)".to_string(), matches));
    }
    if !found.is_empty() {
        places.push((format!("Résultats pour « {query} »"), found.iter().map(option).collect()));
    }
    let memberships = agent
        .me
        .memberships
        .iter()
        .map(|m| MembershipItem {
            id: m.id.to_string(),
            role: role_label(m.role).to_string(),
            label: m.label.clone(),
            active: agent.active.as_ref().is_some_and(|a| a.id == m.id),
        })
        .collect();
    let me: MeView = state.api.get("/api/v1/me", &agent.token).await?;
    let requests = me
        .requests
        .iter()
        .map(|r| {
            (
                format!("{} — {}", role_label(r.role), r.label),
                r.created_at.with_timezone(&chrono_tz::Europe::Paris).format("%d/%m/%Y").to_string(),
            )
        })
        .collect();
    let title = if agent.me.memberships.is_empty() { "Compte en attente de validation" } else { "Mon compte" };
    let invalid = errors.place.is_some() || errors.message.is_some();
    let title = if invalid { format!("Erreur : {title}") } else { title.to_string() };
    let page = Compte {
        chrome: agent.chrome(&title, "compte"),
        csrf: agent.session.csrf.clone(),
        done,
        name: agent.name(),
        email: agent.me.email.as_ref().map(|e| e.expose().clone()).unwrap_or_default(),
        siret: agent.me.siret.clone(),
        memberships,
        requests,
        query,
        search_error,
        places,
        has_siret_matches,
        chosen: form.place.unwrap_or_default(),
        place_error: errors.place,
        message: form.message.unwrap_or_default(),
        message_error: errors.message,
    };
    Ok(render(status, &page, true))
}

/// The agent of a state-changing form: signed in, with the session's token, from this site.
pub(crate) async fn form_agent(state: &WebState, headers: &HeaderMap, token: Option<&str>) -> Result<Agent, PageError> {
    let Some(agent) = agent(state, headers).await? else { return Err(PageError::forbidden()) };
    if !crate::csrf::check(headers, &state.config.origin(), token, &agent.session.csrf) {
        return Err(PageError::forbidden());
    }
    Ok(agent)
}

async fn request_access(
    State(state): State<WebState>,
    headers: HeaderMap,
    form: Result<Form<CompteForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let agent = form_agent(&state, &headers, form.csrf.as_deref()).await?;
    let place = form.place.as_deref().map(str::trim).unwrap_or_default();
    let (role, field, id) = match place.split_once(':') {
        Some(("structure", id)) if !id.is_empty() => ("mediator", "structure_id", id),
        Some(("organisation", id)) if !id.is_empty() => ("referrer", "organisation_id", id),
        _ => {
            let errors =
                FieldErrors { place: Some("Choisissez une organisation ou une structure.".into()), message: None };
            return compte_page_with(&state, &agent, form, None, errors, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    let message = form.message.as_deref().map(str::trim).filter(|m| !m.is_empty());
    let body = json!({ "role": role, field: id, "message": message });
    let reply = state.api.send(http::Method::POST, "/api/v1/accounts/requests", &agent.token, Some(&body)).await?;
    if reply.status.is_success() {
        return Ok(Redirect::to("/compte?demande=envoyee").into_response());
    }
    let failure = reply.failure();
    let errors = match failure.status() {
        Some(StatusCode::CONFLICT) => FieldErrors {
            place: Some("Vous avez déjà cet accès, ou une demande est déjà en attente pour ce lieu.".into()),
            message: None,
        },
        Some(StatusCode::UNPROCESSABLE_ENTITY) => {
            let mut errors = FieldErrors::default();
            for (field, _) in failure.field_errors() {
                if field == "message" {
                    errors.message = Some(
                        "Le message est trop long (500 caractères au plus) ou contient des caractères refusés.".into(),
                    );
                } else {
                    errors.place = Some("Ce lieu n'est pas connu d'Aiguillage. Choisissez-en un dans la liste.".into());
                }
            }
            errors
        }
        _ => return Err(failure.into()),
    };
    compte_page_with(&state, &agent, form, None, errors, StatusCode::UNPROCESSABLE_ENTITY).await
}

#[derive(Deserialize, Default)]
struct SpaceForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    membership: Option<String>,
}

async fn switch_space(
    State(state): State<WebState>,
    headers: HeaderMap,
    form: Result<Form<SpaceForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let agent = form_agent(&state, &headers, form.csrf.as_deref()).await?;
    let wanted: Option<Uuid> = form.membership.as_deref().and_then(|m| m.trim().parse().ok());
    let Some(membership) = wanted.filter(|id| agent.me.memberships.iter().any(|m| m.id == *id)) else {
        return Err(PageError::not_found());
    };
    session::set_membership(&state.pool, &agent.cookie, Some(membership)).await?;
    Ok(Redirect::to("/").into_response())
}

#[derive(Deserialize, Default)]
struct CsrfForm {
    #[serde(default)]
    csrf: Option<String>,
}

/// Ends the session, then the provider's (RP-initiated logout) when it has an endpoint.
async fn sign_out(
    State(state): State<WebState>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let agent = form_agent(&state, &headers, form.csrf.as_deref()).await?;
    let reply = state.api.send(http::Method::POST, "/api/v1/accounts/sign-outs", &agent.token, None).await;
    if let Err(err) = reply {
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

async fn info_page(
    state: &WebState,
    headers: &HeaderMap,
    heading: &str,
    body: &'static str,
) -> Result<Response, PageError> {
    let agent = agent(state, headers).await?;
    let chrome = match &agent {
        Some(a) => a.chrome(heading, ""),
        None => Chrome::public(heading, ""),
    };
    Ok(render(StatusCode::OK, &Info { chrome, heading: heading.to_string(), body }, agent.is_some()))
}

async fn accessibility(State(state): State<WebState>, headers: HeaderMap) -> Result<Response, PageError> {
    info_page(&state, &headers, "Déclaration d'accessibilité", ACCESSIBILITY).await
}

async fn personal_data(State(state): State<WebState>, headers: HeaderMap) -> Result<Response, PageError> {
    info_page(&state, &headers, "Données personnelles", PERSONAL_DATA).await
}

async fn legal(State(state): State<WebState>, headers: HeaderMap) -> Result<Response, PageError> {
    info_page(&state, &headers, "Mentions légales", LEGAL).await
}

const ACCESSIBILITY: &str = r#"<p>L'opérateur d'Aiguillage s'engage à rendre ce service accessible, conformément à l'article 47 de la loi n° 2005-102 du 11 février 2005.</p>
<h2>État de conformité</h2>
<p>Aiguillage est <strong>partiellement conforme</strong> au référentiel général d'amélioration de l'accessibilité (RGAA 4.1.2) : aucun audit complet n'a encore été réalisé. Chaque page est vérifiée automatiquement (axe-core, critères WCAG 2.1 A et AA), au clavier et sans JavaScript.</p>
<h2>Retour d'information et contact</h2>
<p>Si vous ne pouvez pas accéder à un contenu ou à un service, contactez l'opérateur de ce site pour être orienté vers une alternative accessible.</p>
<h2>Voies de recours</h2>
<p>Si vous constatez un défaut d'accessibilité vous empêchant d'accéder à un contenu et que vous n'avez pas obtenu de réponse satisfaisante, vous pouvez saisir le Défenseur des droits (<a href="https://formulaire.defenseurdesdroits.fr/">formulaire en ligne</a>).</p>"#;

const PERSONAL_DATA: &str = r#"<p>Aiguillage traite les données des agents qui s'y connectent (nom, prénom, adresse e-mail et SIRET de l'employeur, transmis par ProConnect) pour leur donner accès à leurs espaces, et les données des personnes orientées, que les travailleurs sociaux saisissent avec leur consentement.</p>
<h2>Ce que nous ne faisons pas</h2>
<ul>
<li>Aucune donnée personnelle n'apparaît dans les adresses des pages, les journaux techniques ou les messages échangés entre les services.</li>
<li>Aucun cookie de mesure d'audience ni de publicité : un seul cookie, nécessaire, garde votre session (12 heures sans activité, 7 jours au plus).</li>
</ul>
<h2>Vos droits</h2>
<p>Vous pouvez accéder à vos données, les faire rectifier ou effacer auprès de l'opérateur de ce site et de son délégué à la protection des données. Vous pouvez aussi adresser une réclamation à la CNIL.</p>"#;

const LEGAL: &str = r#"<p>Aiguillage est un logiciel libre (licence AGPL-3.0 ou ultérieure). Ce site est édité et hébergé par l'organisme qui l'exploite ; ses coordonnées sont données par l'administrateur de la plateforme.</p>
<p>Les données du répertoire des lieux de médiation numérique proviennent du standard de la Mednum et des jeux de données ouverts cités dans la documentation du projet.</p>"#;
