//! `/reponse/{token}`: a structure without an account answers an offer, then follows the
//! person, from the link of the offer's e-mail (UI.md, "Structures without an account").
//! No sign-in: the web service trades the token for a five-minute bearer token scoped to
//! the link's referral and structure (`POST /api/v1/answer-links/exchange`), then calls
//! the endpoints a mediator of that structure calls, so an answer through a link is the
//! same transition as a mediator's. The pages are the mediator's (`partials/proposition.html`,
//! `partials/suivi.html`), with the structure's name.
//!
//! - Forms: `POST /reponse/{token}/acceptation|refus|contact|cloture`, and the
//!   appointment's `rendez-vous`, `rendez-vous/annulation`, `rendez-vous/presence`, from this site
//!   (`Origin`, or else `Referer`, as for every form) and with the link's own CSRF token (from the exchange);
//!   then 303 back to the page. A step the referral no longer allows (409: accepted at
//!   the same moment by another click, the offer ended) also goes back to the page, which
//!   shows where the referral is. A refusal and a closing end the link: they go to a
//!   confirmation that holds no token.
//! - An ended or expired link: 410, "Ce lien n'est plus valable", and for a referral the
//!   structure still follows, "Recevoir un nouveau lien". An unknown one: 404, the same
//!   page for every unknown or malformed token.
//! - The token never goes into a log line or a span (the web app logs no request
//!   path, and nothing here logs the token), a `<title>`, or a URL of
//!   the API (it goes in the exchange's body); [`guard`] adds the headers and slows down a
//!   client's repeated failures.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::Utc;
use contracts::ReferralStatus;
use contracts::answer_links::{LinkSession, LinkToken};
use contracts::api::AcceptRequest;
use contracts::referrals::AttendanceBody;
use serde::de::DeserializeOwned;

use crate::WebState;
use crate::api::ApiFailure;
use crate::client::{Client, LinkOpened, Renewal};
use crate::error::PageError;
use crate::extract::{NoFields, Posted};
use crate::mediator::appointment::{AppointmentForm, AttendanceForm, Typed};
use crate::mediator::follow_up::{self, CloseForm, ContactForm, FollowContent};
use crate::mediator::offers::{Again, DeclineForm, OfferContent, comment_refused};
use crate::views::{Chrome, render};

pub mod guard;

pub fn routes(failures: Arc<guard::Failures>) -> Router<WebState> {
    Router::new()
        .route("/reponse/refusee", get(declined))
        .route("/reponse/cloturee", get(closed))
        .route("/reponse/{token}", get(show))
        .route("/reponse/{token}/acceptation", post(accept))
        .route("/reponse/{token}/refus", post(decline))
        .route("/reponse/{token}/contact", post(contact))
        .route("/reponse/{token}/cloture", post(close))
        .route("/reponse/{token}/rendez-vous", post(set_appointment))
        .route("/reponse/{token}/rendez-vous/annulation", post(cancel_appointment))
        .route("/reponse/{token}/rendez-vous/presence", post(attendance))
        .route("/reponse/{token}/fiche", get(slip))
        .route("/reponse/{token}/nouveau-lien", post(renew))
        .layer(middleware::from_fn_with_state(failures, guard::guard))
}

/// The link of the path, when it could be one: URL-safe base64 of a token's length.
/// Anything else is an unknown link, without asking the API.
pub struct Token(String);

impl Token {
    fn plausible(raw: &str) -> bool {
        (16..=256).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }

    /// The link's page.
    fn page(&self) -> String {
        format!("/reponse/{}", self.0)
    }

    fn body(&self) -> LinkToken {
        LinkToken { token: self.0.clone() }
    }
}

impl FromRequestParts<WebState> for Token {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Response> {
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(raw)) if Token::plausible(&raw) => Ok(Token(raw)),
            _ => Err(unknown()),
        }
    }
}

/// What a valid link gives the page: the API as that link, and its forms' token.
struct Link {
    session: LinkSession,
    api: Client,
}

/// Opens the link: its session, or the page of an unknown or ended link.
async fn open(state: &WebState, token: &Token) -> Result<Link, Response> {
    match state.as_service().open_link(&token.body()).await {
        Ok(LinkOpened::Open(session)) => {
            let api = Client::new(state.api.clone(), session.access_token.clone());
            Ok(Link { session, api })
        }
        Ok(LinkOpened::Unknown) => Err(unknown()),
        Ok(LinkOpened::Gone { renewable }) => Err(gone(token, renewable)),
        Err(failure) => Err(PageError::unavailable(failure).into_response()),
    }
}

/// A form of a link's page: from this site (its `Origin`, as [`crate::csrf`] checks
/// every form), for a link that still opens, with that link's CSRF token.
struct LinkForm<T> {
    token: Token,
    link: Link,
    form: T,
}

impl<T: DeserializeOwned + Send> FromRequest<WebState> for LinkForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &WebState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let token = Token::from_request_parts(&mut parts, state).await?;
        from_this_site(&parts.headers, state).map_err(IntoResponse::into_response)?;
        let posted = Posted::read(body).await.map_err(IntoResponse::into_response)?;
        let link = open(state, &token).await?;
        let bound = posted.csrf().is_some_and(|t| crate::session::same_secret(&t, &link.session.csrf));
        if !bound {
            return Err(PageError::forbidden().into_response());
        }
        let form = posted.form(parts, state).await.map_err(IntoResponse::into_response)?;
        Ok(LinkForm { token, link, form })
    }
}

fn from_this_site(headers: &HeaderMap, state: &WebState) -> Result<(), PageError> {
    if crate::csrf::same_origin(headers, &state.config.origin()) { Ok(()) } else { Err(PageError::forbidden()) }
}

#[derive(askama::Template)]
#[template(path = "reponse_proposition.html")]
struct OfferPage {
    chrome: Chrome,
    structure: String,
    offer: OfferContent,
}

#[derive(askama::Template)]
#[template(path = "reponse_suivi.html")]
struct FollowPage {
    chrome: Chrome,
    structure: String,
    follow: FollowContent,
}

/// A form of the page that comes back with its error.
enum Returned {
    Offer(Again),
    Follow(follow_up::Returned),
}

/// The link's page as the referral is now: the offer while it waits for this structure,
/// the follow-up once the structure accepted it, else the page of an ended link.
async fn stage_page(
    token: &Token,
    link: &Link,
    q: &HashMap<String, String>,
    returned: Option<Returned>,
) -> Result<Response, PageError> {
    let r = link.api.referral(link.session.referral_id).await?;
    let mine = &link.session.structure_id;
    let (base, csrf, structure) = (token.page(), link.session.csrf.clone(), link.session.structure_name.clone());
    let offered = r.current_offer.as_ref().filter(|o| r.status == ReferralStatus::Offered && o.structure_id == *mine);
    let followed = matches!(r.status, ReferralStatus::Accepted | ReferralStatus::InProgress)
        && r.structure.as_ref().is_some_and(|s| s.id == *mine);
    let status = |invalid: bool| if invalid { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    if let Some(o) = offered {
        let mut offer = OfferContent::new(&r, o, base, csrf);
        let invalid = matches!(returned, Some(Returned::Offer(_)));
        if let Some(Returned::Offer(again)) = returned {
            offer = offer.refused(again);
        }
        let chrome = Chrome::public(if invalid { "Erreur : proposition" } else { "Proposition" }, "");
        return Ok(render(status(invalid), &OfferPage { chrome, structure, offer }, false));
    }
    let slip = format!("{base}/fiche");
    if let Some(mut follow) = followed.then(|| FollowContent::new(&r, base, csrf, q)).flatten() {
        follow.slip = Some(slip);
        let invalid = matches!(returned, Some(Returned::Follow(_)));
        if let Some(Returned::Follow(again)) = returned {
            follow = follow.returned(again);
        }
        let chrome = Chrome::public(if invalid { "Erreur : suivi" } else { "Suivi" }, "");
        return Ok(render(status(invalid), &FollowPage { chrome, structure, follow }, false));
    }
    // The referral moved on between the exchange and now.
    Ok(gone(token, false))
}

async fn show(State(state): State<WebState>, token: Token, Query(q): Query<HashMap<String, String>>) -> Response {
    match open(&state, &token).await {
        Ok(link) => stage_page(&token, &link, &q, None).await.unwrap_or_else(IntoResponse::into_response),
        Err(page) => page,
    }
}

/// The person's slip, while the structure follows the referral.
async fn slip(State(state): State<WebState>, token: Token) -> Response {
    let link = match open(&state, &token).await {
        Ok(link) => link,
        Err(page) => return page,
    };
    let page = async {
        let r = link.api.referral(link.session.referral_id).await?;
        let mine = r.structure.as_ref().is_some_and(|s| s.id == link.session.structure_id);
        if !mine {
            return Ok(gone(&token, false));
        }
        let chrome = Chrome::public("Fiche à remettre à la personne", "");
        crate::referrer::slip::slip_page(&link.api, &r, token.page(), chrome, false).await
    };
    page.await.unwrap_or_else(IntoResponse::into_response)
}

/// After a step: back to the link's page (`?notice` says what was done).
fn back(token: &Token, notice: Option<&str>) -> Response {
    let page = token.page();
    Redirect::to(&notice.map_or_else(|| page.clone(), |n| format!("{page}?{n}=1"))).into_response()
}

/// A step the API refused: the referral moved on (409), so the page shows where it is
/// now; a 422 comes back on the form; anything else is the page of that failure.
fn refused(token: &Token, failure: ApiFailure) -> Result<Response, PageError> {
    match failure.status() {
        Some(StatusCode::CONFLICT) => Ok(back(token, None)),
        _ => Err(failure.into()),
    }
}

async fn accept(LinkForm { token, link, form: NoFields {} }: LinkForm<NoFields>) -> Result<Response, PageError> {
    // No agent, so no name: the referrer's page names the structure.
    match link.api.accept(link.session.referral_id, &AcceptRequest { mediator_name: None }).await {
        Ok(_) => Ok(back(&token, Some("acceptee"))),
        Err(failure) => refused(&token, failure),
    }
}

async fn decline(LinkForm { token, link, form }: LinkForm<DeclineForm>) -> Result<Response, PageError> {
    let no_query = HashMap::new();
    let body = match form.request() {
        Ok(body) => body,
        Err(again) => return stage_page(&token, &link, &no_query, Some(Returned::Offer(again))).await,
    };
    match link.api.decline(link.session.referral_id, &body).await {
        Ok(_) => Ok(Redirect::to("/reponse/refusee").into_response()),
        Err(failure) if failure.status() == Some(StatusCode::UNPROCESSABLE_ENTITY) => {
            let again = comment_refused(body.reason.as_deref(), body.comment);
            stage_page(&token, &link, &no_query, Some(Returned::Offer(again))).await
        }
        Err(failure) => refused(&token, failure),
    }
}

async fn contact(LinkForm { token, link, form }: LinkForm<ContactForm>) -> Result<Response, PageError> {
    match link.api.contact(link.session.referral_id, &form.request()).await {
        Ok(_) => Ok(back(&token, Some("contact"))),
        Err(failure) => refused(&token, failure),
    }
}

async fn close(LinkForm { token, link, form }: LinkForm<CloseForm>) -> Result<Response, PageError> {
    let no_query = HashMap::new();
    let body = match form.request() {
        Ok(body) => body,
        Err(again) => {
            let again = follow_up::Returned::Close(again);
            return stage_page(&token, &link, &no_query, Some(Returned::Follow(again))).await;
        }
    };
    match link.api.close(link.session.referral_id, &body).await {
        Ok(_) => Ok(Redirect::to("/reponse/cloturee").into_response()),
        Err(failure) if failure.status() == Some(StatusCode::UNPROCESSABLE_ENTITY) => {
            let again = follow_up::Returned::Close(comment_refused(body.outcome.as_deref(), body.comment));
            stage_page(&token, &link, &no_query, Some(Returned::Follow(again))).await
        }
        Err(failure) => refused(&token, failure),
    }
}

/// "Fixer le rendez-vous", as `/suivis/{id}` does it.
async fn set_appointment(LinkForm { token, link, form }: LinkForm<AppointmentForm>) -> Result<Response, PageError> {
    let no_query = HashMap::new();
    let typed = match form.request(Utc::now()) {
        Ok(body) => match link.api.set_appointment(link.session.referral_id, &body).await {
            Ok(_) => return Ok(back(&token, Some("rendez-vous"))),
            Err(failure) if failure.status() == Some(StatusCode::UNPROCESSABLE_ENTITY) => {
                Typed::of_body(&body).with_api_errors(failure.field_errors())
            }
            Err(failure) => return refused(&token, failure),
        },
        Err(typed) => typed,
    };
    let again = follow_up::Returned::Appointment(typed);
    stage_page(&token, &link, &no_query, Some(Returned::Follow(again))).await
}

async fn cancel_appointment(
    LinkForm { token, link, form: NoFields {} }: LinkForm<NoFields>,
) -> Result<Response, PageError> {
    match link.api.cancel_appointment(link.session.referral_id).await {
        Ok(_) => Ok(back(&token, Some("rendez-vous-annule"))),
        Err(failure) => refused(&token, failure),
    }
}

async fn attendance(LinkForm { token, link, form }: LinkForm<AttendanceForm>) -> Result<Response, PageError> {
    let Some(attended) = form.attended() else { return Ok(back(&token, None)) };
    match link.api.record_attendance(link.session.referral_id, &AttendanceBody { attended }).await {
        Ok(_) => Ok(back(&token, Some("presence"))),
        Err(failure) => refused(&token, failure),
    }
}

/// "Recevoir un nouveau lien", on the page of an ended link. That page has no link
/// session, hence no CSRF token of its own: the form must come from this site, and all
/// it can do is send a new link to the structure's own address, once an hour.
async fn renew(State(state): State<WebState>, token: Token, headers: HeaderMap) -> Result<Response, PageError> {
    from_this_site(&headers, &state)?;
    Ok(match state.as_service().renew_link(&token.body()).await.map_err(PageError::unavailable)? {
        Renewal::Sent => Message {
            title: "Nouveau lien envoyé",
            heading: "Un nouveau lien est en route",
            alert: Some(("success", "Un nouveau lien a été envoyé à l'adresse de la structure.")),
            paragraphs: &[
                "Il arrive en général en quelques minutes. S'il n'est pas dans la boîte de réception, regardez dans les courriers indésirables.",
            ],
            ..Message::new(StatusCode::OK)
        }
        .into_response(),
        Renewal::TooSoon => Message {
            title: "Lien déjà envoyé",
            heading: "Un lien a déjà été envoyé",
            alert: Some(("info", "Un lien a déjà été envoyé il y a moins d'une heure à l'adresse de la structure.")),
            paragraphs: &[
                "Regardez dans la boîte de réception de cette adresse, et dans ses courriers indésirables. Vous pourrez en demander un autre une heure après le précédent.",
            ],
            ..Message::new(StatusCode::TOO_MANY_REQUESTS)
        }
        .into_response(),
        Renewal::Unknown => unknown(),
        Renewal::Gone => gone(&token, false),
    })
}

async fn declined() -> Response {
    Message {
        title: "Proposition refusée",
        heading: "Votre réponse est enregistrée",
        alert: Some(("success", "La proposition est refusée : Aiguillage cherche un autre lieu pour la personne.")),
        paragraphs: &["Merci d'avoir répondu. Le lien de l'e-mail ne sert plus."],
        ..Message::new(StatusCode::OK)
    }
    .into_response()
}

async fn closed() -> Response {
    Message {
        title: "Orientation clôturée",
        heading: "Votre réponse est enregistrée",
        alert: Some(("success", "L'orientation est clôturée. Merci : la personne qui l'a orientée en est informée.")),
        paragraphs: &["Le lien de l'e-mail ne sert plus pour cette orientation."],
        ..Message::new(StatusCode::OK)
    }
    .into_response()
}

/// An unknown or malformed token: the same page whatever it was, so it tells nothing.
fn unknown() -> Response {
    Message {
        title: "Lien introuvable",
        heading: "Lien introuvable",
        paragraphs: &[
            "Ce lien ne mène à aucune orientation. Vérifiez que l'adresse est complète : ouvrez le lien depuis l'e-mail reçu, ou copiez-le en entier.",
        ],
        invite: false,
        ..Message::new(StatusCode::NOT_FOUND)
    }
    .into_response()
}

/// A link that has ended or expired (410); a new one may be asked for while the
/// structure still follows the referral.
fn gone(token: &Token, renewable: bool) -> Response {
    let paragraphs: &[&str] = if renewable {
        &[
            "Ce lien a expiré : il n'a pas servi depuis plusieurs jours. L'orientation est toujours suivie par votre structure.",
            "Recevez un nouveau lien à l'adresse e-mail de la structure, celle qui a reçu la proposition.",
        ]
    } else {
        &[
            "Cette orientation n'attend plus de réponse de votre structure : elle a déjà reçu une réponse, la proposition a expiré ou a été retirée, ou l'orientation est terminée.",
            "Vous n'avez rien à faire. Si une autre personne est proposée à votre structure, un nouvel e-mail vous le dira.",
        ]
    };
    Message {
        title: "Lien plus valable",
        heading: "Ce lien n'est plus valable",
        paragraphs,
        renew: renewable.then(|| format!("{}/nouveau-lien", token.page())),
        ..Message::new(StatusCode::GONE)
    }
    .into_response()
}

/// A page of the answer links that says one thing.
#[derive(askama::Template)]
#[template(path = "reponse_message.html")]
struct Message<'a> {
    status: StatusCode,
    chrome: Chrome,
    /// The `<title>`: never the token, never personal data.
    title: &'a str,
    heading: &'a str,
    /// (DSFR alert kind, text)
    alert: Option<(&'a str, &'a str)>,
    paragraphs: &'a [&'a str],
    /// Where "Recevoir un nouveau lien" posts.
    renew: Option<String>,
    /// "Créer un compte pour votre structure".
    invite: bool,
}

impl Message<'_> {
    fn new(status: StatusCode) -> Self {
        Message {
            status,
            chrome: Chrome::public("", ""),
            title: "",
            heading: "",
            alert: None,
            paragraphs: &[],
            renew: None,
            invite: true,
        }
    }
}

impl IntoResponse for Message<'_> {
    fn into_response(mut self) -> Response {
        self.chrome = Chrome::public(self.title, "");
        render(self.status, &self, false)
    }
}

/// The page of a client slowed down ([`guard`]).
fn slowed_down() -> Response {
    Message {
        title: "Trop de tentatives",
        heading: "Trop de tentatives",
        paragraphs: &[
            "Plusieurs liens qui ne fonctionnent pas ont été ouverts depuis cette connexion.",
            "Patientez une minute, puis ouvrez à nouveau le lien reçu par e-mail, en entier.",
        ],
        invite: false,
        ..Message::new(StatusCode::TOO_MANY_REQUESTS)
    }
    .into_response()
}
