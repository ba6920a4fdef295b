//! Who may call the referral endpoints that `platform::auth`'s role sets do not say
//! alone: a structure acting on a referral (its mediators, or the holder of an answer
//! link), and Aiguillage's own services, each by name.

use std::marker::PhantomData;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use contracts::StructureId;
use platform::ApiError;
use platform::auth::roles::Mediators;
use platform::auth::{Authenticator, Caller, Roles, Scope};

/// A caller acting for a structure on a referral: a mediator of that structure (admin,
/// for any structure), or a structure answering through the link of its e-mail
/// (`Scope::AnswerLink`: that structure, on that one referral, with no role). Any other
/// caller gets 403 before the handler runs.
///
/// It stands where `Authorized<Mediators>` would on every endpoint a structure calls on a
/// referral (accept, decline, contact, close; appointments), so that an answer link may
/// do there what a mediator of its structure may do, and nothing else: such an endpoint
/// admits it by taking this extractor, one line. Everything else in this service takes
/// `Authorized<R>` (which refuses a caller without a role) or `Caller` with a scope match
/// that names `Scope::AnswerLink`.
#[derive(Debug, Clone)]
pub struct ForStructure(Caller);

impl ForStructure {
    /// The structure the caller acts for: a mediator's, or the answer link's; `None` for
    /// admin, who may act for any.
    pub fn structure(&self) -> Option<&StructureId> {
        match &self.0.scope {
            Scope::Structure(s) | Scope::AnswerLink { structure: s, .. } => Some(s),
            _ => None,
        }
    }
}

impl std::ops::Deref for ForStructure {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.0
    }
}

impl<S> FromRequestParts<S> for ForStructure
where
    Authenticator: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.answer_link().is_none() {
            caller.require(Mediators::ROLES)?;
        }
        Ok(ForStructure(caller))
    }
}

/// The name of one of Aiguillage's services (`Scope::Service`).
pub trait ServiceName: Send + Sync + 'static {
    const NAME: &'static str;
}

/// The notifications service.
#[derive(Debug, Clone, Copy)]
pub struct Notify;
impl ServiceName for Notify {
    const NAME: &'static str = "notify";
}

/// The web app.
#[derive(Debug, Clone, Copy)]
pub struct Web;
impl ServiceName for Web {
    const NAME: &'static str = "web";
}

/// That one service; any other caller (another service included) gets 403.
#[derive(Debug, Clone)]
pub struct FromService<N: ServiceName>(Caller, PhantomData<N>);

impl<N: ServiceName> std::ops::Deref for FromService<N> {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.0
    }
}

impl<S, N> FromRequestParts<S> for FromService<N>
where
    Authenticator: FromRef<S>,
    S: Send + Sync,
    N: ServiceName,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        match &caller.scope {
            Scope::Service(name) if name == N::NAME => Ok(FromService(caller, PhantomData)),
            _ => Err(ApiError::forbidden()),
        }
    }
}
