//! HTTP for agents (who am I, ask for a membership), for the web app (record sign-ins),
//! and for those who manage memberships (admins, and coordinators within their
//! départements): requests, invitations, removals and the audit.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json as AxumJson, Router};
use chrono::{DateTime, Utc};
use contracts::accounts::{
    AccountView, AuditEntry, CallerKind, InvitationBody, InvitationResult, InvitationStatus, InvitationView, MeView,
    MembershipRequestBody, MembershipView, Page, PlaceKind, Places, PreferencesBody, Recipient, Recipients,
    RecipientsRequest, RefuseBody, RequestView, SignInFailure, SignInRequest, SignInResponse,
};
use contracts::validate::Errors;
use contracts::{FieldError, Territory};
use platform::ApiError;
use platform::auth::{Authorized, Caller, Principal, ServiceCaller};
use platform::json::{Json, OptionalJson, Query};
use platform::path::Path;
use platform::problem::responses::{Authenticated, Conflict, Forbidden, InvalidQuery, JsonBody, NotFound};
use serde::Deserialize;
use serde_json::json;
use sqlx::PgConnection;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AccountsState;
use crate::domain::{self, Grant, Manager};
use crate::service::{self, GrantError, SignInError};
use crate::store::{self, Membership, RequestFilter};

platform::roles! {
    /// Those who decide on memberships: admins, and coordinators within their départements.
    pub Managers = [Admin, Coordinator];
}

/// The routes with their OpenAPI operations: one list, so the document cannot describe a
/// route the router does not serve.
pub fn routes() -> OpenApiRouter<AccountsState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(list_accounts))
        .routes(routes!(sign_in))
        .routes(routes!(sign_in_failure))
        .routes(routes!(recipients))
        .routes(routes!(sign_out))
        .routes(routes!(places))
        .routes(routes!(file_request, list_requests))
        .routes(routes!(approve))
        .routes(routes!(refuse))
        .routes(routes!(invite, list_invitations))
        .routes(routes!(remove_membership))
        .routes(routes!(audit))
        .routes(routes!(get_preferences, put_preferences))
}

pub fn router(state: AccountsState) -> Router {
    routes().split_for_parts().0.with_state(state)
}

/// `{id}` of a request or a membership. Anything but a UUID answers 404.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct IdPath {
    id: Uuid,
}

const MAX_LIMIT: i64 = 500;

fn limit_of(limit: Option<i64>) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_field("limit", format!("must be between 1 and {MAX_LIMIT}")));
    }
    Ok(limit)
}

/// The membership a caller acts from, for the audit.
fn acting_membership(caller: &Caller) -> Option<String> {
    match caller.principal {
        Principal::Agent { membership: Some(m), .. } => Some(m.to_string()),
        Principal::Token(id) => Some(format!("token:{id}")),
        _ => None,
    }
}

fn manager(caller: &Caller) -> Result<Manager, ApiError> {
    Manager::from_scope(&caller.scope).ok_or_else(ApiError::forbidden)
}

/// The départements a grant concerns, from the places it names. A grant naming a
/// structure or an organisation this service does not know is refused.
async fn scope_of(conn: &mut PgConnection, grant: &Grant, field: &str) -> Result<Vec<Territory>, ApiError> {
    let (kind, id) = match grant {
        Grant::Admin | Grant::Dpo => return Ok(vec![]),
        Grant::Coordinator(t) => return Ok(t.clone()),
        Grant::Referrer(o) => (PlaceKind::Organisation, o.to_string()),
        Grant::Mediator(s) => (PlaceKind::Structure, s.to_string()),
    };
    let places = store::place_scope(conn, kind, &id).await?;
    places.ok_or_else(|| {
        let which = if kind == PlaceKind::Organisation { "organisation_id" } else { "structure_id" };
        ApiError::validation(vec![FieldError::new(format!("{field}{which}"), "is not a known place")])
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct MeQuery {
    /// `false` leaves out the agent's waiting requests (default `true`).
    requests: Option<bool>,
}

/// Who is calling: a signed-in agent (with their memberships, the active one, and their
/// waiting requests), a bearer token (its one scope) or a service.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    operation_id = "getMe",
    tag = "accounts",
    params(MeQuery),
    responses(
        (status = 200, description = "The caller", body = MeView,
            headers(("Cache-Control" = String, description = "`no-store`: names and e-mail addresses are personal data"))),
        Authenticated, Forbidden, NotFound, InvalidQuery,
    )
)]
async fn me(
    State(state): State<AccountsState>,
    caller: Caller,
    Query(q): Query<MeQuery>,
) -> Result<Response, ApiError> {
    let view = match caller.principal {
        Principal::Agent { account, membership } => {
            let mut conn = state.pool.acquire().await?;
            let agent = store::agent(&mut conn, &state.vault, account).await?.ok_or_else(ApiError::not_found)?;
            let memberships: Vec<MembershipView> =
                store::memberships(&mut conn, account).await?.iter().map(Membership::view).collect();
            let filter =
                RequestFilter { status: Some("pending"), account_id: Some(account), territories: None, limit: 50 };
            // The web app asks on every page; it needs the requests only on /compte.
            let requests = if q.requests.unwrap_or(true) {
                store::requests(&mut conn, &state.vault, &filter).await?.iter().map(|r| r.view(None)).collect()
            } else {
                vec![]
            };
            // A membership removed since the token was minted is no longer active.
            let active = membership.filter(|m| memberships.iter().any(|v| v.id == *m));
            MeView {
                kind: CallerKind::Agent,
                account_id: Some(account),
                token_id: None,
                given_name: agent.given_name,
                usual_name: agent.usual_name,
                email: Some(agent.email),
                siret: agent.siret,
                memberships,
                active,
                requests,
            }
        }
        Principal::Token(id) => {
            let role = caller.role.ok_or_else(ApiError::forbidden)?;
            let grant = Grant::from_parts(
                role,
                caller.organisation(),
                caller.structure().cloned(),
                caller.territories().map(<[Territory]>::to_vec).unwrap_or_default(),
            )
            .map_err(ApiError::internal)?;
            let mut conn = state.pool.acquire().await?;
            let label = store::label_of(&mut conn, &grant).await?;
            let membership = Membership { id, account_id: id, grant, label, scope: vec![] };
            MeView {
                kind: CallerKind::Token,
                account_id: None,
                token_id: Some(id),
                given_name: None,
                usual_name: None,
                email: None,
                siret: None,
                memberships: vec![membership.view()],
                active: Some(id),
                requests: vec![],
            }
        }
        Principal::Service => MeView {
            kind: CallerKind::Service,
            account_id: None,
            token_id: None,
            given_name: None,
            usual_name: None,
            email: None,
            siret: None,
            memberships: vec![],
            active: None,
            requests: vec![],
        },
    };
    // Names and e-mail of the agent: never cached by anyone in between.
    Ok(([(axum::http::header::CACHE_CONTROL, "no-store")], AxumJson(view)).into_response())
}

/// Record a sign-in the web app verified with the OpenID provider (services only): the
/// account is created on the first one, and open invitations for its e-mail are accepted.
#[utoipa::path(
    post,
    path = "/api/v1/accounts/sign-ins",
    operation_id = "recordSignIn",
    tag = "accounts",
    request_body = SignInRequest,
    responses((status = 200, description = "The account", body = SignInResponse), Authenticated, Forbidden, JsonBody)
)]
async fn sign_in(
    State(state): State<AccountsState>,
    ServiceCaller(service): ServiceCaller,
    Json(body): Json<SignInRequest>,
) -> Result<Response, ApiError> {
    let mut e = Errors::new();
    e.text("issuer", Some(&body.issuer), 500, true);
    e.text("subject", Some(&body.subject), 255, true);
    // Stored as given: a control character (PostgreSQL cannot store a NUL) is refused.
    e.text("given_name", body.given_name.as_ref().map(|n| n.expose().as_str()), 200, false);
    e.text("usual_name", body.usual_name.as_ref().map(|n| n.expose().as_str()), 200, false);
    e.text("siret", body.siret.as_deref(), 40, false);
    e.finish(|| ()).map_err(ApiError::validation)?;
    let actor = format!("service:{service}");
    let response = service::sign_in(&state.pool, &state.vault, &body, &actor).await.map_err(|err| match err {
        SignInError::BadEmail => ApiError::invalid_field("email", "is not an e-mail address"),
        SignInError::Database(e) => e.into(),
    })?;
    Ok(AxumJson(response).into_response())
}

/// The e-mail addresses of some accounts, for the notifications sender at send time
/// (services only): an address is never copied out of this service, and never kept by
/// the sender. Unknown and purged accounts are left out.
#[utoipa::path(
    post,
    path = "/api/v1/accounts/recipients",
    operation_id = "accountRecipients",
    tag = "accounts",
    request_body = RecipientsRequest,
    responses((status = 200, description = "The addresses found", body = Recipients), Authenticated, Forbidden, JsonBody)
)]
async fn recipients(
    State(state): State<AccountsState>,
    ServiceCaller(_service): ServiceCaller,
    Json(body): Json<RecipientsRequest>,
) -> Result<Response, ApiError> {
    if body.accounts.len() > RecipientsRequest::MAX {
        return Err(ApiError::invalid_field("accounts", format!("at most {} accounts", RecipientsRequest::MAX)));
    }
    let mut conn = state.pool.acquire().await?;
    let items = store::recipients(&mut conn, &state.vault, &body.accounts)
        .await?
        .into_iter()
        .map(|(account_id, email)| Recipient { account_id, email })
        .collect();
    Ok(([(axum::http::header::CACHE_CONTROL, "no-store")], AxumJson(Recipients { items })).into_response())
}

/// Record a failed sign-in, by its reason code (services only).
#[utoipa::path(
    post,
    path = "/api/v1/accounts/sign-in-failures",
    operation_id = "recordSignInFailure",
    tag = "accounts",
    request_body = SignInFailure,
    responses((status = 204, description = "Recorded"), Authenticated, Forbidden, JsonBody)
)]
async fn sign_in_failure(
    State(state): State<AccountsState>,
    ServiceCaller(service): ServiceCaller,
    Json(body): Json<SignInFailure>,
) -> Result<Response, ApiError> {
    let reason = body.reason.trim();
    if reason.is_empty() || reason.len() > 64 || !reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(ApiError::invalid_field("reason", "a code in lower case and underscores, such as state_mismatch"));
    }
    // Kept in the audit's JSON: PostgreSQL refuses a NUL there too.
    let mut e = Errors::new();
    e.text("issuer", body.issuer.as_deref(), 500, false);
    e.finish(|| ()).map_err(ApiError::validation)?;
    let mut conn = state.pool.acquire().await?;
    let detail = json!({ "reason": reason, "issuer": body.issuer });
    service::record(&mut conn, "sign_in_failed", &format!("service:{service}"), None, None, &[], detail).await?;
    tracing::info!(reason, "sign-in failed");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Record that a signed-in agent signed out (the agent's own session).
#[utoipa::path(
    post,
    path = "/api/v1/accounts/sign-outs",
    operation_id = "recordSignOut",
    tag = "accounts",
    responses((status = 204, description = "Recorded"), Authenticated, Forbidden)
)]
async fn sign_out(State(state): State<AccountsState>, caller: Caller) -> Result<Response, ApiError> {
    let account = caller.account().ok_or_else(ApiError::forbidden)?;
    let mut conn = state.pool.acquire().await?;
    let scopes = service::scopes(&store::memberships(&mut conn, account).await?);
    let membership = acting_membership(&caller);
    service::record(
        &mut conn,
        "sign_out",
        &caller.actor().to_string(),
        membership.as_deref(),
        Some(account),
        &scopes,
        json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PlacesQuery {
    /// Part of a name: at least 2 characters (empty is none).
    #[param(
        max_length = 100,
        pattern = "^( *|[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*[^\\u0000-\\u0020\\u007F-\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000][^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*[^\\u0000-\\u0020\\u007F-\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000][^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*)$"
    )]
    q: Option<String>,
    /// A SIRET (14 digits) to search by; default, the agent's own.
    #[param(pattern = "^(( *[0-9]){14} *)?$")]
    siret: Option<String>,
    /// Default 20.
    #[param(minimum = 1, maximum = 50)]
    limit: Option<i64>,
}

/// Places a membership request can name: the agent's SIRET's first.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/places",
    operation_id = "searchPlaces",
    tag = "accounts",
    params(PlacesQuery),
    responses((status = 200, description = "Matching places", body = Places), Authenticated, InvalidQuery)
)]
async fn places(
    State(state): State<AccountsState>,
    caller: Caller,
    Query(q): Query<PlacesQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(20);
    if !(1..=50).contains(&limit) {
        return Err(ApiError::invalid_field("limit", "must be between 1 and 50"));
    }
    let mut e = Errors::new();
    let text = e.text("q", q.q.as_deref(), 100, false);
    if text.as_deref().is_some_and(|t| t.chars().count() < 2) {
        e.add("q", "give at least 2 characters");
    }
    let asked_siret = match q.siret.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match domain::siret(s) {
            Some(s) => Some(s),
            None => {
                e.add("siret", "a SIRET has 14 digits");
                None
            }
        },
    };
    e.finish(|| ()).map_err(ApiError::validation)?;
    let mut conn = state.pool.acquire().await?;
    // Without a SIRET in the query, an agent's own (from ProConnect) is used.
    let siret = match (asked_siret, caller.account()) {
        (Some(s), _) => Some(s),
        (None, Some(account)) => store::agent(&mut conn, &state.vault, account).await?.and_then(|a| a.siret),
        (None, None) => None,
    };
    let items = store::search_places(&mut conn, text.as_deref(), siret.as_deref(), limit).await?;
    Ok(AxumJson(Places { items }).into_response())
}

/// Ask for a membership (a signed-in agent).
#[utoipa::path(
    post,
    path = "/api/v1/accounts/requests",
    operation_id = "requestMembership",
    tag = "accounts",
    request_body = MembershipRequestBody,
    responses(
        (status = 201, description = "Waiting for a decision", body = RequestView,
            links(
                ("Approve" = (operation_id = "approveMembershipRequest", parameters(("id" = "$response.body#/id")))),
                ("Refuse" = (operation_id = "refuseMembershipRequest", parameters(("id" = "$response.body#/id")))),
            )),
        (status = 409, description = "Already held, or already asked", body = platform::ApiError,
            content_type = "application/problem+json"),
        Authenticated, Forbidden, JsonBody,
    )
)]
async fn file_request(
    State(state): State<AccountsState>,
    caller: Caller,
    Json(body): Json<MembershipRequestBody>,
) -> Result<Response, ApiError> {
    let account = caller.account().ok_or_else(ApiError::forbidden)?;
    let mut e = Errors::new();
    let message = e.text("message", body.message.as_deref(), 500, false);
    let membership = contracts::accounts::MembershipBody {
        role: body.role.clone(),
        organisation_id: body.organisation_id.clone(),
        structure_id: body.structure_id.clone(),
        territories: body.territories.clone(),
    };
    let grant = domain::parse_grant(&membership, "", false);
    let mut errors = e.into_inner();
    let grant = match grant {
        Ok(g) => g,
        Err(more) => {
            errors.extend(more);
            return Err(ApiError::validation(errors));
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let mut tx = state.pool.begin().await?;
    let scope = scope_of(&mut tx, &grant, "").await?;
    if store::memberships(&mut tx, account).await?.iter().any(|m| m.grant == grant) {
        return Err(ApiError::conflict("you already hold this membership"));
    }
    let Some(id) = store::request(&mut tx, &state.vault, account, &grant, message.as_deref()).await? else {
        return Err(ApiError::conflict("the same request is already waiting for a decision"));
    };
    let detail = json!({ "request_id": id, "role": grant.role() });
    let membership = acting_membership(&caller);
    service::record(
        &mut tx,
        "membership_requested",
        &caller.actor().to_string(),
        membership.as_deref(),
        Some(account),
        &scope,
        detail,
    )
    .await?;
    let filter = RequestFilter { status: None, account_id: Some(account), territories: None, limit: MAX_LIMIT };
    let view =
        store::requests(&mut tx, &state.vault, &filter).await?.into_iter().find(|r| r.id == id).map(|r| r.view(None));
    tx.commit().await?;
    tracing::info!(request_id = %id, role = %grant.role(), "membership requested");
    Ok((StatusCode::CREATED, AxumJson(view)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Default `pending`.
    #[param(schema_with = request_status_filter)]
    status: Option<String>,
    /// Default 100.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

fn request_status_filter() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["pending", "approved", "refused", "all"]))
        .build()
}

/// Membership requests (admin; coordinator: those within their départements).
#[utoipa::path(
    get,
    path = "/api/v1/accounts/requests",
    operation_id = "listMembershipRequests",
    tag = "accounts",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of requests", body = Page<RequestView>),
        Authenticated, Forbidden, InvalidQuery,
    )
)]
async fn list_requests(
    State(state): State<AccountsState>,
    caller: Authorized<Managers>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let limit = limit_of(q.limit)?;
    let status = match q.status.as_deref() {
        None | Some("pending") => Some("pending"),
        Some("approved") => Some("approved"),
        Some("refused") => Some("refused"),
        Some("all") => None,
        Some(_) => return Err(ApiError::invalid_field("status", "expected pending, approved, refused or all")),
    };
    let territories = manager(&caller)?.territories();
    let mut conn = state.pool.acquire().await?;
    let filter = RequestFilter { status, account_id: None, territories: territories.as_deref(), limit };
    let mut items = Vec::new();
    for r in store::requests(&mut conn, &state.vault, &filter).await? {
        let agent = store::agent(&mut conn, &state.vault, r.account_id).await?;
        items.push(r.view(agent));
    }
    // Who asked, with their e-mail address: never cached by anyone in between.
    Ok(([(axum::http::header::CACHE_CONTROL, "no-store")], AxumJson(Page { items, next_cursor: None })).into_response())
}

/// Approve a pending request: the agent gets the membership.
#[utoipa::path(
    post,
    path = "/api/v1/accounts/requests/{id}/approve",
    operation_id = "approveMembershipRequest",
    tag = "accounts",
    params(IdPath),
    responses(
        (status = 200, description = "The request, approved", body = Option<RequestView>),
        Authenticated, Forbidden, NotFound, Conflict,
    )
)]
async fn approve(
    State(state): State<AccountsState>,
    caller: Authorized<Managers>,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    decided(&state, &caller, id, service::Decision::Approve).await
}

/// Decides, then answers the request as it now is.
async fn decided(
    state: &AccountsState,
    caller: &Caller,
    id: Uuid,
    decision: service::Decision,
) -> Result<Response, ApiError> {
    let from = acting_membership(caller);
    let account = service::decide(
        &state.pool,
        &state.vault,
        id,
        &decision,
        &manager(caller)?,
        &caller.actor().to_string(),
        from.as_deref(),
    )
    .await
    .map_err(|err| match err {
        service::DecideError::NotFound => ApiError::not_found(),
        service::DecideError::AlreadyDecided(status) => ApiError::conflict(format!("the request is already {status}")),
        service::DecideError::Database(e) => e.into(),
    })?;
    let mut conn = state.pool.acquire().await?;
    let filter = RequestFilter { status: None, account_id: Some(account), territories: None, limit: MAX_LIMIT };
    let view =
        store::requests(&mut conn, &state.vault, &filter).await?.into_iter().find(|r| r.id == id).map(|r| r.view(None));
    Ok(AxumJson(view).into_response())
}

/// Refuse a pending request.
#[utoipa::path(
    post,
    path = "/api/v1/accounts/requests/{id}/refuse",
    operation_id = "refuseMembershipRequest",
    tag = "accounts",
    params(IdPath),
    request_body(content = Option<RefuseBody>, description = "Optional"),
    responses(
        (status = 200, description = "The request, refused", body = Option<RequestView>),
        Authenticated, Forbidden, NotFound, Conflict, JsonBody,
    )
)]
async fn refuse(
    State(state): State<AccountsState>,
    caller: Authorized<Managers>,
    Path(id): Path<Uuid>,
    OptionalJson(body): OptionalJson<RefuseBody>,
) -> Result<Response, ApiError> {
    let mut e = Errors::new();
    let reason = e.text("reason", body.reason.as_deref(), 500, false);
    e.finish(|| ()).map_err(ApiError::validation)?;
    decided(&state, &caller, id, service::Decision::Refuse { reason }).await
}

/// Invite an e-mail address to a membership (admin; coordinator within their
/// départements): granted now if the agent has signed in, else at their first sign-in.
#[utoipa::path(
    post,
    path = "/api/v1/accounts/invitations",
    operation_id = "invite",
    tag = "accounts",
    request_body = InvitationBody,
    responses(
        (status = 201, description = "Granted or invited", body = InvitationResult,
            links(("RemoveMembership" = (
                operation_id = "removeMembership",
                parameters(("id" = "$response.body#/membership_id"))
            )))),
        Authenticated, Forbidden, JsonBody,
    )
)]
async fn invite(
    State(state): State<AccountsState>,
    caller: Authorized<Managers>,
    Json(body): Json<InvitationBody>,
) -> Result<Response, ApiError> {
    let manager = manager(&caller)?;
    let mut errors = Vec::new();
    let email = body.email.as_deref().map(str::trim).filter(|e| !e.is_empty());
    match email {
        None => errors.push(FieldError::new("email", "is required")),
        Some(e) if domain::email_key(e).is_none() => errors.push(FieldError::new("email", "is not an e-mail address")),
        Some(_) => {}
    }
    let grant = match &body.membership {
        None => {
            errors.push(FieldError::new("membership", "is required"));
            None
        }
        Some(m) => match domain::parse_grant(m, "membership", manager == Manager::Admin) {
            Ok(g) => Some(g),
            Err(more) => {
                errors.extend(more);
                None
            }
        },
    };
    let (Some(email), Some(grant), true) = (email, grant, errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    let scope = {
        let mut conn = state.pool.acquire().await?;
        scope_of(&mut conn, &grant, "membership.").await?
    };
    if !manager.may_manage(&scope) {
        return Err(ApiError::forbidden());
    }
    let granted = service::grant_by_email(&state.pool, &state.vault, email, &grant, &caller.actor().to_string())
        .await
        .map_err(|e| match e {
            GrantError::BadEmail(_) => ApiError::invalid_field("email", "is not an e-mail address"),
            GrantError::Database(e) => e.into(),
        })?;
    let result = match granted {
        service::Granted::Now { account_id, membership_id } => InvitationResult {
            status: InvitationStatus::Granted,
            invitation_id: None,
            account_id: Some(account_id),
            membership_id,
        },
        service::Granted::Invited { invitation_id } => InvitationResult {
            status: InvitationStatus::Invited,
            invitation_id: Some(invitation_id),
            account_id: None,
            membership_id: None,
        },
    };
    Ok((StatusCode::CREATED, AxumJson(result)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct LimitQuery {
    /// Default 100.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// Invitations (admin; coordinator: those within their départements).
#[utoipa::path(
    get,
    path = "/api/v1/accounts/invitations",
    operation_id = "listInvitations",
    tag = "accounts",
    params(LimitQuery),
    responses(
        (status = 200, description = "A page of invitations", body = Page<InvitationView>,
            headers(("Cache-Control" = String, description = "`no-store`: names and e-mail addresses are personal data"))),
        Authenticated, Forbidden, InvalidQuery,
    )
)]
async fn list_invitations(
    State(state): State<AccountsState>,
    caller: Authorized<Managers>,
    Query(q): Query<LimitQuery>,
) -> Result<Response, ApiError> {
    let limit = limit_of(q.limit)?;
    let territories = manager(&caller)?.territories();
    let mut conn = state.pool.acquire().await?;
    let items = store::invitations(&mut conn, &state.vault, territories.as_deref(), limit).await?;
    Ok(([(axum::http::header::CACHE_CONTROL, "no-store")], AxumJson(Page { items, next_cursor: None })).into_response())
}

/// Accounts and their memberships (admin; coordinator: those within their départements).
#[utoipa::path(
    get,
    path = "/api/v1/accounts",
    operation_id = "listAccounts",
    tag = "accounts",
    params(LimitQuery),
    responses(
        (status = 200, description = "A page of accounts", body = Page<AccountView>,
            headers(("Cache-Control" = String, description = "`no-store`: names and e-mail addresses are personal data"))),
        Authenticated, Forbidden, InvalidQuery,
    )
)]
async fn list_accounts(
    State(state): State<AccountsState>,
    caller: Authorized<Managers>,
    Query(q): Query<LimitQuery>,
) -> Result<Response, ApiError> {
    let limit = limit_of(q.limit)?;
    let territories = manager(&caller)?.territories();
    let mut conn = state.pool.acquire().await?;
    let items: Vec<contracts::accounts::AccountView> =
        store::accounts(&mut conn, &state.vault, territories.as_deref(), limit)
            .await?
            .into_iter()
            .map(|(agent, memberships)| contracts::accounts::AccountView {
                agent,
                memberships: memberships.iter().map(Membership::view).collect(),
            })
            .collect();
    Ok(([(axum::http::header::CACHE_CONTROL, "no-store")], AxumJson(Page { items, next_cursor: None })).into_response())
}

/// Remove a membership (admin; coordinator within their départements); it takes
/// effect on the agent's next request.
#[utoipa::path(
    delete,
    path = "/api/v1/accounts/memberships/{id}",
    operation_id = "removeMembership",
    tag = "accounts",
    params(IdPath),
    responses((status = 204, description = "Removed"), Authenticated, Forbidden, NotFound)
)]
async fn remove_membership(
    State(state): State<AccountsState>,
    caller: Authorized<Managers>,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let mut tx = state.pool.begin().await?;
    let membership = store::lock_membership(&mut tx, id).await?.ok_or_else(ApiError::not_found)?;
    if !manager(&caller)?.may_manage(&membership.scope) {
        return Err(ApiError::not_found());
    }
    store::remove_membership(&mut tx, membership.id, &caller.actor().to_string()).await?;
    crate::announce::account(&mut tx, membership.account_id).await?;
    let detail = json!({ "membership_id": membership.id, "role": membership.grant.role() });
    let from = acting_membership(&caller);
    service::record(
        &mut tx,
        "membership_removed",
        &caller.actor().to_string(),
        from.as_deref(),
        Some(membership.account_id),
        &membership.scope,
        detail,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(membership_id = %membership.id, "membership removed");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    #[param(value_type = Option<Uuid>)]
    account_id: Option<String>,
    /// `sign_in`, `membership_requested`, `request_approved` …
    #[param(max_length = 64, pattern = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$")]
    action: Option<String>,
    #[param(value_type = Option<chrono::DateTime<Utc>>)]
    since: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[+-]?[0-9]{1,18}$")]
    cursor: Option<String>,
    /// Default 100.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// The audit of sign-ins and membership changes, newest first (admin; coordinator:
/// within their départements). No personal value.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/audit",
    operation_id = "getAccountsAudit",
    tag = "accounts",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of the audit", body = Page<AuditEntry>),
        Authenticated, Forbidden, InvalidQuery,
    )
)]
async fn audit(
    State(state): State<AccountsState>,
    caller: Authorized<Managers>,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    let limit = limit_of(q.limit)?;
    let mut e = Errors::new();
    let account_id: Option<Uuid> = e.parsed("account_id", q.account_id.as_deref());
    let since: Option<DateTime<Utc>> = match q.since.as_deref() {
        None => None,
        Some(s) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => {
                e.add("since", "expected an RFC 3339 timestamp");
                None
            }
        },
    };
    let before_id: Option<i64> = e.parsed("cursor", q.cursor.as_deref());
    let action = e.text("action", q.action.as_deref(), 64, false);
    e.finish(|| ()).map_err(ApiError::validation)?;
    let territories = manager(&caller)?.territories();
    let mut conn = state.pool.acquire().await?;
    let filter = store::AuditFilter {
        territories: territories.as_deref(),
        account_id,
        action: action.as_deref(),
        since,
        before_id,
        limit,
    };
    let (items, last) = store::audit_log(&mut conn, &filter).await?;
    let next_cursor = (items.len() as i64 == limit).then(|| last.map(|l| l.to_string())).flatten();
    Ok(AxumJson(Page { items, next_cursor }).into_response())
}

#[cfg(test)]
mod tests {
    use contracts::Role;

    use super::*;

    #[test]
    fn managers_are_admins_and_coordinators() {
        use platform::auth::Roles;
        assert_eq!(Managers::ROLES, &[Role::Admin, Role::Coordinator]);
    }
}

/// The signed-in agent's account: preferences belong to a person, not to a token.
fn agent_account(caller: &Caller) -> Result<Uuid, ApiError> {
    match caller.principal {
        Principal::Agent { account, .. } => Ok(account),
        _ => Err(ApiError::forbidden()),
    }
}

/// The signed-in agent's notification preferences, every kind with its setting.
#[utoipa::path(
    get,
    path = "/api/v1/me/preferences",
    operation_id = "getMyPreferences",
    tag = "accounts",
    responses((status = 200, description = "The preferences", body = PreferencesBody), Authenticated, Forbidden)
)]
async fn get_preferences(State(state): State<AccountsState>, caller: Caller) -> Result<Response, ApiError> {
    let account = agent_account(&caller)?;
    let mut conn = state.pool.acquire().await?;
    let all = crate::preferences::all(&mut conn, account).await?;
    Ok(AxumJson(PreferencesBody::of(&all)).into_response())
}

/// Change some of the signed-in agent's notification preferences; answers all of them.
#[utoipa::path(
    put,
    path = "/api/v1/me/preferences",
    operation_id = "putMyPreferences",
    tag = "accounts",
    request_body = PreferencesBody,
    responses((status = 200, description = "The preferences", body = PreferencesBody), Authenticated, Forbidden, NotFound, JsonBody)
)]
async fn put_preferences(
    State(state): State<AccountsState>,
    caller: Caller,
    Json(body): Json<PreferencesBody>,
) -> Result<Response, ApiError> {
    let account = agent_account(&caller)?;
    let mut tx = state.pool.begin().await?;
    if store::agent(&mut tx, &state.vault, account).await?.is_none() {
        return Err(ApiError::not_found());
    }
    crate::preferences::set(&mut tx, account, &body.choices()).await?;
    crate::announce::account(&mut tx, account).await?;
    let all = crate::preferences::all(&mut tx, account).await?;
    tx.commit().await?;
    Ok(AxumJson(PreferencesBody::of(&all)).into_response())
}
