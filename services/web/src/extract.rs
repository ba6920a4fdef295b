//! Who may open a page, checked before its handler runs, as the API's
//! `platform::auth::Authorized<R>` does and with the same role sets: a handler that takes
//! `SignedIn<Coordinators>` runs only for a signed-in agent whose active membership is a
//! coordinator's or an admin's, `SignedIn<Mediator>` for a mediator of a structure, and
//! one that takes a [`CsrfForm`] only for a form posted from this site with the
//! session's token.
//!
//! - No session: a page (`GET`) redirects to `/connexion?next=` itself; a form gets 403.
//! - Another membership: 404, as the API answers a resource outside the caller's scope.
//! - A path `{id}` that is not one ([`PathId`]): 404.

use std::marker::PhantomData;
use std::ops::Deref;
use std::str::FromStr;

use axum::body::Body;
use axum::extract::{Form, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Duration as ChronoDuration;
use contracts::accounts::{MeView, MembershipView};
use contracts::{Role, StructureId};
pub use platform::auth::roles::{Admins, Auditors, Coordinators, Referrers};
use platform::auth::{Claims, Roles, Scope};
use serde::de::DeserializeOwned;

use crate::WebState;
use crate::client::Client;
use crate::error::PageError;
use crate::session::{self, Cookies, Session};
use crate::views::{AgentChrome, Chrome};

/// The tokens a page mints to call the API live this long: they are used within the request.
pub const PAGE_TOKEN_TTL: ChronoDuration = ChronoDuration::minutes(5);

/// A signed-in agent, as this request sees them.
#[derive(Clone)]
pub struct Agent {
    pub cookie: String,
    pub session: Session,
    pub me: MeView,
    pub active: Option<MembershipView>,
    /// The API, as the active membership (or as an agent without one).
    pub api: Client,
}

impl Agent {
    /// The agent of this request's session, if it has a live one. Each signed-in request
    /// asks the API who the agent is (`GET /api/v1/me`), so a membership removed since
    /// the last page is gone on this one. Found once per request, then kept.
    pub async fn of(parts: &mut Parts, state: &WebState) -> Result<Option<Agent>, PageError> {
        #[derive(Clone)]
        struct Found(Option<Agent>);
        if let Some(Found(agent)) = parts.extensions.get::<Found>() {
            return Ok(agent.clone());
        }
        let agent = Self::find(&parts.headers, state).await?;
        parts.extensions.insert(Found(agent.clone()));
        Ok(agent)
    }

    async fn find(headers: &HeaderMap, state: &WebState) -> Result<Option<Agent>, PageError> {
        let cookies = Cookies { secure: state.config.secure() };
        let Some(cookie) = Cookies::read(headers, cookies.session_name()) else { return Ok(None) };
        let Some(mut session) = session::touch(&state.pool, &cookie, state.config.session_idle).await? else {
            return Ok(None);
        };
        let ring = state.auth.ring();
        let pending = ring.issue(&Claims::for_pending_account(session.account_id, PAGE_TOKEN_TTL));
        // Every page asks; the waiting requests are read only by /compte.
        let me = match Client::new(state.api.clone(), pending.clone()).me(false).await {
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
        Ok(Some(Agent { cookie, session, me, active, api: Client::new(state.api.clone(), token) }))
    }

    /// The agent's name as the header shows it.
    pub fn name(&self) -> String {
        let parts: Vec<&str> = [&self.me.given_name, &self.me.usual_name]
            .into_iter()
            .flatten()
            .map(|n| n.expose().as_str())
            .filter(|n| !n.trim().is_empty())
            .collect();
        if parts.is_empty() { "Agent".to_string() } else { parts.join(" ") }
    }

    /// The active membership, in words: "Médiation — Médiathèque".
    pub fn space(&self) -> Option<String> {
        self.active.as_ref().map(space_label)
    }

    /// The form token and the origin of a state-changing request are this session's and
    /// this site's.
    pub fn check_csrf(&self, headers: &HeaderMap, state: &WebState, token: Option<&str>) -> Result<(), PageError> {
        if crate::csrf::check(headers, &state.config.origin(), token, &self.session.csrf) {
            Ok(())
        } else {
            Err(PageError::forbidden())
        }
    }

    /// The header, the title and the menu of the active space.
    pub fn chrome(&self, title: &str, section: &'static str) -> Chrome {
        Chrome {
            title: title.to_string(),
            section,
            agent: Some(AgentChrome {
                name: self.name(),
                space: self.space(),
                several: self.me.memberships.len() > 1,
                csrf: self.session.csrf.clone(),
                nav: nav(self.active.as_ref().map(|m| m.role)),
            }),
        }
    }
}

/// The pages of a space, for the menu: (href, text, section).
fn nav(role: Option<Role>) -> Vec<(&'static str, &'static str, &'static str)> {
    match role {
        Some(Role::Referrer) => vec![
            ("/orientations", "Orientations", "orientations"),
            ("/orientations/nouvelle", "Nouvelle orientation", "nouvelle"),
        ],
        Some(Role::Coordinator) => vec![
            ("/territoire", "Territoire", "territoire"),
            ("/territoire/entonnoir", "Entonnoir", "entonnoir"),
            ("/territoire/offre-et-demande", "Offre et demande", "offre"),
            ("/territoire/simulation", "Simulation", "simulation"),
            ("/territoire/import", "Import", "import"),
            ("/admin/structures", "Structures", "structures"),
            ("/admin/comptes", "Comptes", "comptes"),
        ],
        Some(Role::Admin) => vec![
            ("/territoire", "Territoire", "territoire"),
            ("/territoire/entonnoir", "Entonnoir", "entonnoir"),
            ("/territoire/simulation", "Simulation", "simulation"),
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
        None => vec![],
    }
}

/// "Médiation — Médiathèque".
pub fn space_label(m: &MembershipView) -> String {
    format!("{} — {}", m.role.space_fr(), m.label)
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

/// A set of pages, and what they need of the active membership.
pub trait Space: Send + Sync + 'static {
    /// What the pages of this space work on (a mediator's structure), once allowed.
    type Scope: Send + Sync;

    /// The active membership's scope, if it opens this space.
    fn scope(active: Option<&MembershipView>) -> Option<Self::Scope>;
}

/// Any signed-in agent, with a membership or waiting for one.
pub struct Anyone;

impl Space for Anyone {
    type Scope = ();
    fn scope(_: Option<&MembershipView>) -> Option<()> {
        Some(())
    }
}

/// The API's role sets (`platform::auth::roles`) open the pages of the same roles:
/// `SignedIn<Coordinators>` is who `Authorized<Coordinators>` lets through.
impl<R: Roles + Send + Sync + 'static> Space for R {
    type Scope = ();
    fn scope(active: Option<&MembershipView>) -> Option<()> {
        active.filter(|m| R::ROLES.contains(&m.role)).map(|_| ())
    }
}

platform::roles! {
    /// Who may print the person's slip: the referrer organisation and the accepting
    /// structure's mediators (the API says which referral is whose).
    pub SlipHolders = [Referrer, Mediator];
}

/// A mediator, of their structure (an admin has no structure of their own).
pub struct Mediator;

impl Space for Mediator {
    type Scope = StructureId;
    fn scope(active: Option<&MembershipView>) -> Option<StructureId> {
        active.filter(|m| m.role == Role::Mediator).and_then(|m| m.structure_id.clone())
    }
}

/// A signed-in agent whose active membership opens the space `S`.
pub struct SignedIn<S: Space> {
    pub agent: Agent,
    /// What the space works on: a mediator's structure.
    pub scope: S::Scope,
    space: PhantomData<S>,
}

impl<S: Space> Deref for SignedIn<S> {
    type Target = Agent;
    fn deref(&self) -> &Agent {
        &self.agent
    }
}

impl<S: Space> FromRequestParts<WebState> for SignedIn<S> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Response> {
        let Some(agent) = Agent::of(parts, state).await.map_err(IntoResponse::into_response)? else {
            return Err(if matches!(parts.method, Method::GET | Method::HEAD) {
                let next: String = form_urlencoded::byte_serialize(parts.uri.path().as_bytes()).collect();
                Redirect::to(&format!("/connexion?next={next}")).into_response()
            } else {
                PageError::forbidden().into_response()
            });
        };
        match S::scope(agent.active.as_ref()) {
            Some(scope) => Ok(SignedIn { agent, scope, space: PhantomData }),
            None => Err(PageError::not_found().into_response()),
        }
    }
}

/// The agent, if the request has a live session: the pages every visitor can read.
pub struct Visitor(pub Option<Agent>);

impl FromRequestParts<WebState> for Visitor {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, PageError> {
        Agent::of(parts, state).await.map(Visitor)
    }
}

/// A form posted from this site (its `Origin`, or else its `Referer`) carrying the
/// session's token in its `csrf` field; anything else gets 403, as does a body that is
/// not a form. `T` reads the other fields (a repeated one: `Vec<(String, String)>`).
pub struct CsrfForm<T>(pub T);

/// The largest form a page posts (the referral form, with its note, is a few KiB).
const FORM_LIMIT: usize = 1024 * 1024;

impl<T: DeserializeOwned + Send> FromRequest<WebState> for CsrfForm<T> {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &WebState) -> Result<Self, PageError> {
        let (mut parts, body) = request.into_parts();
        let agent = Agent::of(&mut parts, state).await?.ok_or_else(PageError::forbidden)?;
        let posted = Posted::read(body).await?;
        agent.check_csrf(&parts.headers, state, posted.csrf().as_deref())?;
        posted.form(parts, state).await.map(CsrfForm)
    }
}

/// A posted form's body, read once: its token first, then its fields. A body that is
/// too large or not a form gets 403, as a form without its token does.
pub struct Posted(axum::body::Bytes);

impl Posted {
    pub async fn read(body: Body) -> Result<Self, PageError> {
        axum::body::to_bytes(body, FORM_LIMIT).await.map(Posted).map_err(|_| PageError::forbidden())
    }

    /// The `csrf` field.
    pub fn csrf(&self) -> Option<String> {
        form_urlencoded::parse(&self.0).find(|(k, _)| k == "csrf").map(|(_, v)| v.into_owned())
    }

    /// The other fields, as `T`.
    pub async fn form<T: DeserializeOwned>(self, parts: Parts, state: &WebState) -> Result<T, PageError> {
        let Form(form) = Form::<T>::from_request(Request::from_parts(parts, Body::from(self.0)), state)
            .await
            .map_err(|_| PageError::forbidden())?;
        Ok(form)
    }
}

/// The fields of a form that has none but its token (signing out, accepting an offer).
#[derive(serde::Deserialize)]
pub struct NoFields {}

/// The path's `{id}`, parsed: one that does not parse is a page that does not exist.
pub struct PathId<T>(pub T);

impl<T: FromStr + Send> FromRequestParts<WebState> for PathId<T> {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, PageError> {
        let axum::extract::Path(raw) = axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| PageError::not_found())?;
        raw.parse().map(PathId).map_err(|_| PageError::not_found())
    }
}
