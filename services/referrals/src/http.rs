//! HTTP for referrers (submit, follow, cancel), mediators and answer links (accept,
//! decline, contact, close), coordinators (reroute) and the notifications service
//! (withdraw an offer nobody can receive).

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json as AxumJson, Router};
use chrono::{DateTime, SubsecRound, Utc};
use contracts::answer_links::Withdrawal;
use contracts::api::{
    AcceptRequest, CancelRequest, CloseRequest, ContactRequest, DeclineRequest, ReferralRequest, RerouteRequest,
};
use contracts::events::ReferralSubmitted;
use contracts::referrals::AuditPage;
use contracts::validate::Errors;
use contracts::{AuditAction, ContactKind, DeclineReason, Envelope, Outcome, ReferralId, ReferralStatus, StructureId};
use platform::ApiError;
use platform::auth::roles::{Auditors, Coordinators, Referrers, ReferrersOrAdmins};
use platform::auth::{Authorized, Caller, Scope};
use platform::idempotency::{FingerprintedJson, IdempotencyKey};
use platform::json::{OptionalJson, Query};
use platform::path::Path;
use platform::problem::responses::{
    Authenticated, Conflict, Forbidden, IdempotencyConflict, InvalidQuery, JsonBody, NotFound,
};
use serde::Deserialize;
use sqlx::PgConnection;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::answer_links;
use crate::callers::{ForStructure, FromService, Notify};
use crate::domain::lifecycle::{Action, transition};
use crate::domain::referral::parse_referral;
use crate::lifecycle::{self, StepError};
use crate::privacy;
use crate::store::{self, ListFilter, ListScope, Referral};
use crate::view::{self, Disclosure, Parts, ReferralPage, ReferralView};
use crate::{ReferralsState, SCHEMA};

/// The routes with their OpenAPI operations: one list, so the document cannot describe a
/// route the router does not serve.
pub fn routes() -> OpenApiRouter<ReferralsState> {
    OpenApiRouter::new()
        .routes(routes!(submit, list))
        .routes(routes!(read))
        .routes(routes!(accept))
        .routes(routes!(decline))
        .routes(routes!(contact))
        .routes(routes!(close))
        .routes(routes!(set_appointment, cancel_appointment))
        .routes(routes!(record_attendance))
        .routes(routes!(withdraw))
        .routes(routes!(cancel))
        .routes(routes!(reroute))
        .routes(routes!(personal_data, erase_personal_data))
        .routes(routes!(correct_person))
        .routes(routes!(audit_log))
        .routes(routes!(answer_links::mint))
        .routes(routes!(answer_links::exchange))
        .routes(routes!(answer_links::renew))
}

pub fn router(state: ReferralsState) -> Router {
    routes().split_for_parts().0.with_state(state)
}

impl From<StepError> for ApiError {
    fn from(err: StepError) -> Self {
        match err {
            StepError::NotAllowed(e) => ApiError::conflict(e.to_string()),
            StepError::Conflict(why) => ApiError::conflict(why),
            StepError::Database(e) => e.into(),
        }
    }
}

/// What a caller may see of a referral, or `None` (404) if it is outside their scope.
/// An answer link sees its one referral as a mediator of its structure does.
fn disclosure(caller: &Caller, r: &Referral) -> Option<Disclosure> {
    match &caller.scope {
        Scope::All => Some(Disclosure::Personal),
        Scope::Organisation(o) => (*o == r.organisation_id).then_some(Disclosure::Personal),
        Scope::Structure(s) => structure_disclosure(s, r),
        Scope::AnswerLink { referral, structure } if *referral == r.id => structure_disclosure(structure, r),
        Scope::Territories(t) => t.contains(&r.territory).then_some(Disclosure::Matching),
        Scope::Pending | Scope::Service(_) | Scope::Dpo | Scope::AnswerLink { .. } => None,
    }
}

/// What a structure sees: the person once it accepted, the facts while it is offered.
fn structure_disclosure(s: &StructureId, r: &Referral) -> Option<Disclosure> {
    if r.structure_id.as_ref() == Some(s) {
        Some(Disclosure::Personal)
    } else if r.offer.as_ref().is_some_and(|o| &o.structure_id == s) {
        Some(Disclosure::Matching)
    } else {
        None
    }
}

async fn render(
    conn: &mut PgConnection,
    vault: &platform::vault::Vault,
    r: Referral,
    disclosure: Disclosure,
    with_history: bool,
) -> Result<view::ReferralView, ApiError> {
    let person = match disclosure {
        Disclosure::Personal => store::person(&mut *conn, vault, r.id).await?,
        Disclosure::Matching => None,
    };
    let removal = match (disclosure, &person) {
        (Disclosure::Personal, None) => privacy::removal(&mut *conn, r.id).await?,
        _ => None,
    };
    let history = if with_history { Some(store::history(&mut *conn, vault, r.id).await?) } else { None };
    let appointment = match disclosure {
        Disclosure::Personal => Some(crate::appointments::view(&mut *conn, r.id).await?),
        Disclosure::Matching => None,
    };
    let structure = match &r.structure_id {
        Some(s) => store::structure_contact(&mut *conn, s).await?,
        None => None,
    };
    Ok(view::render(r, Parts { person, removal, history, structure, appointment }, disclosure))
}

/// Renders a referral for a caller and, when it shows the person, audits the read.
async fn render_audited(
    state: &ReferralsState,
    conn: &mut PgConnection,
    caller: &Caller,
    r: Referral,
    disclosure: Disclosure,
) -> Result<view::ReferralView, ApiError> {
    let view = render(&mut *conn, &state.vault, r, disclosure, true).await?;
    if matches!(view.person, Some(Some(_))) {
        privacy::record(conn, caller, AuditAction::Read, &[view.id]).await?;
    }
    Ok(view)
}

/// Submit a referral (referrer).
///
/// Matching starts at once: the response is usually `submitted`, and the referral is
/// `offered` moments later.
#[utoipa::path(
    post,
    path = "/api/v1/referrals",
    operation_id = "submitReferral",
    tag = "referrals",
    params(IdempotencyHeader),
    request_body = contracts::api::ReferralRequest,
    responses(
        (status = 201, description = "Submitted", body = ReferralView,
            headers(("Location" = String, description = "`/api/v1/referrals/{id}`")),
            links(
                ("GetReferral" = (operation_id = "getReferral", parameters(("id" = "$response.body#/id")))),
                ("AcceptReferral" = (operation_id = "acceptReferral", parameters(("id" = "$response.body#/id")))),
                ("DeclineReferral" = (operation_id = "declineReferral", parameters(("id" = "$response.body#/id")))),
                ("RecordContact" = (operation_id = "recordContact", parameters(("id" = "$response.body#/id")))),
                ("CloseReferral" = (operation_id = "closeReferral", parameters(("id" = "$response.body#/id")))),
                ("CancelReferral" = (operation_id = "cancelReferral", parameters(("id" = "$response.body#/id")))),
                ("RerouteReferral" = (operation_id = "rerouteReferral", parameters(("id" = "$response.body#/id")))),
                ("GetCandidates" = (operation_id = "getCandidates", parameters(("id" = "$response.body#/id")))),
            )),
        Authenticated, Forbidden, IdempotencyConflict, JsonBody,
    )
)]
async fn submit(
    State(state): State<ReferralsState>,
    caller: Authorized<Referrers>,
    IdempotencyKey(key): IdempotencyKey,
    body: FingerprintedJson<ReferralRequest>,
) -> Result<Response, ApiError> {
    let organisation_id = caller.organisation().ok_or_else(ApiError::forbidden)?;
    // A broker alarm: its events could not leave the outbox for as long as it lasts. The
    // referrer is told to retry (503, `Retry-After`) rather than left with a referral
    // nobody is offered.
    if state.broker.as_ref().is_some_and(|b| b.is_blocked()) {
        return Err(ApiError::unavailable("the message broker is blocked by a resource alarm; retry later"));
    }
    let referral =
        parse_referral(&body.value, geo::communes(), state.config.max_distance_km).map_err(ApiError::validation)?;
    let id = ReferralId::new();
    // The database keeps microseconds: the event carries the time exactly as stored.
    let at = Utc::now().trunc_subsecs(6);
    let audit = privacy::Entry::of(&caller);
    let event = ReferralSubmitted {
        referral_id: id,
        organisation_id,
        submitted_by: caller.account(),
        submitted_at: at,
        profile: referral.matching_profile(),
    };
    let event = bus::Outgoing::new(SCHEMA, &Envelope::new(id.to_string(), 1, &event))?;
    let submission = store::Submission {
        id,
        organisation_id,
        submitted_by: caller.account(),
        referral: &referral,
        at,
        audit: &audit,
        event: &event,
    };
    let submitted = match &key {
        // Without a key the submission is one statement, atomic by itself.
        None => {
            let mut conn = state.pool.acquire().await?;
            store::submit(&mut conn, &state.vault, &submission).await?
        }
        Some(key) => {
            let mut tx = state.pool.begin().await?;
            let scope = organisation_id.to_string();
            if let Some((hash, existing)) =
                store::claim_idempotency_key(&mut tx, &scope, key, &body.fingerprint, id).await?
            {
                tx.rollback().await?;
                if hash != body.fingerprint {
                    return Err(ApiError::conflict("this Idempotency-Key was used with a different body"));
                }
                let mut conn = state.pool.acquire().await?;
                let r = store::get(&mut conn, existing).await?.ok_or_else(ApiError::not_found)?;
                let view = render_audited(&state, &mut conn, &caller, r, Disclosure::Personal).await?;
                return Ok(created(view));
            }
            let submitted = store::submit(&mut tx, &state.vault, &submission).await?;
            tx.commit().await?;
            submitted
        }
    };
    let store::Submitted { referral: row, possible_duplicates } = submitted;
    tracing::info!(referral_id = %id, territory = %referral.territory, needs = ?referral.needs, "referral submitted");
    // Everything the response shows is at hand: no need to read it back.
    let parts = Parts {
        person: Some(store::PersonRow::from_new(&referral)),
        removal: None,
        history: Some(vec![store::HistoryRow::submitted(row.created_at, &audit.actor)]),
        structure: None,
        appointment: Some(None),
    };
    let mut view = view::render(row, parts, Disclosure::Personal);
    view.possible_duplicates = Some(possible_duplicates);
    Ok(created(view))
}

fn created(view: view::ReferralView) -> Response {
    let location = format!("/api/v1/referrals/{}", view.id);
    (StatusCode::CREATED, [(header::LOCATION, location)], AxumJson(view)).into_response()
}

/// A referral, with its history.
#[utoipa::path(
    get,
    path = "/api/v1/referrals/{id}",
    operation_id = "getReferral",
    tag = "referrals",
    params(ReferralPath),
    responses((status = 200, description = "The referral", body = ReferralView), Authenticated, NotFound)
)]
async fn read(
    State(state): State<ReferralsState>,
    caller: Caller,
    Path(id): Path<ReferralId>,
) -> Result<Response, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let r = store::get(&mut conn, id).await?.ok_or_else(ApiError::not_found)?;
    let d = disclosure(&caller, &r).ok_or_else(ApiError::not_found)?;
    Ok(AxumJson(render_audited(&state, &mut conn, &caller, r, d).await?).into_response())
}

/// `{id}`: a referral's id. Anything else answers 404.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct ReferralPath {
    id: Uuid,
}

/// `Idempotency-Key`: the same key with the same body returns the first response; with
/// another body, 409.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct IdempotencyHeader {
    #[param(rename = "Idempotency-Key", nullable = false, min_length = 1, max_length = 255, pattern = "^[!-~]+$")]
    idempotency_key: Option<String>,
}

/// The longest `stale_days` filter: a century.
const MAX_STALE_DAYS: u32 = 36_500;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// For a mediator, `offered` is the inbox.
    #[param(value_type = Option<ReferralStatus>)]
    status: Option<String>,
    escalated: Option<bool>,
    /// Only referrals whose status has not changed for this many days.
    #[param(minimum = 0, maximum = 36500)]
    stale_days: Option<u32>,
    /// Default 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(
        pattern = "^(-?[0-9]{1,16}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$"
    )]
    cursor: Option<String>,
}

/// The time before which the status must have last changed, for `stale_days`. Days
/// beyond [`MAX_STALE_DAYS`] are refused rather than overflowing the calendar.
fn unchanged_since(stale_days: Option<u32>, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(days) = stale_days else { return Ok(None) };
    if days > MAX_STALE_DAYS {
        return Err(ApiError::invalid_field("stale_days", format!("must be between 0 and {MAX_STALE_DAYS}")));
    }
    Ok(now.checked_sub_signed(chrono::Duration::days(i64::from(days))))
}

fn parse_cursor(c: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let (micros, id) = c.split_once('_')?;
    Some((DateTime::from_timestamp_micros(micros.parse().ok()?)?, id.parse().ok()?))
}

/// Referrals in the caller's scope, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/referrals",
    operation_id = "listReferrals",
    tag = "referrals",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of referrals", body = ReferralPage),
        Authenticated, Forbidden, InvalidQuery,
    )
)]
async fn list(
    State(state): State<ReferralsState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid_field("limit", "must be between 1 and 500"));
    }
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(s.parse::<ReferralStatus>().map_err(|e| ApiError::invalid_field("status", e.to_string()))?),
    };
    let before = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            parse_cursor(c).ok_or_else(|| ApiError::invalid_field("cursor", "is not a cursor this API returned"))?,
        ),
    };
    let scope = match &caller.scope {
        Scope::All => ListScope::All,
        Scope::Organisation(o) => ListScope::Organisation(*o),
        Scope::Structure(s) => ListScope::Structure(s.clone()),
        Scope::Territories(t) => ListScope::Territories(t.clone()),
        Scope::Pending | Scope::Service(_) | Scope::Dpo | Scope::AnswerLink { .. } => return Err(ApiError::forbidden()),
    };
    let unchanged_since = unchanged_since(q.stale_days, Utc::now())?;
    let filter = ListFilter { scope, status, escalated: q.escalated, unchanged_since, before, limit };
    let mut conn = state.pool.acquire().await?;
    let rows = store::list(&mut conn, &filter).await?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| format!("{}_{}", r.created_at.timestamp_micros(), r.id)))
        .flatten();
    // Three queries for the page, whatever its size: the rows, their persons (for those
    // the caller may see), their accepting structures' contacts.
    let visible: Vec<(Referral, Disclosure)> =
        rows.into_iter().filter_map(|r| disclosure(&caller, &r).map(|d| (r, d))).collect();
    let personal: Vec<ReferralId> =
        visible.iter().filter(|(_, d)| *d == Disclosure::Personal).map(|(r, _)| r.id).collect();
    let mut persons =
        if personal.is_empty() { HashMap::new() } else { store::persons(&mut conn, &state.vault, &personal).await? };
    let gone: Vec<ReferralId> = personal.iter().filter(|id| !persons.contains_key(id)).copied().collect();
    let removals = if gone.is_empty() { HashMap::new() } else { privacy::removals(&mut conn, &gone).await? };
    let shown: Vec<ReferralId> = persons.keys().copied().collect();
    privacy::record(&mut conn, &caller, AuditAction::Read, &shown).await?;
    let accepted: Vec<StructureId> = visible.iter().filter_map(|(r, _)| r.structure_id.clone()).collect();
    let contacts =
        if accepted.is_empty() { HashMap::new() } else { store::structure_contacts(&mut conn, &accepted).await? };
    let items: Vec<view::ReferralView> = visible
        .into_iter()
        .map(|(r, d)| {
            let person = persons.remove(&r.id);
            let removal = removals.get(&r.id).copied();
            let structure = r.structure_id.as_ref().and_then(|s| contacts.get(s.as_str())).cloned();
            view::render(r, Parts { person, removal, history: None, structure, appointment: None }, d)
        })
        .collect();
    Ok(AxumJson(ReferralPage { items, next_cursor }).into_response())
}

/// Loads and locks a referral the caller can see, or 404.
async fn load(conn: &mut PgConnection, caller: &Caller, id: ReferralId) -> Result<Referral, ApiError> {
    // An answer link's other referrals are not even looked at.
    if caller.answer_link().is_some_and(|(referral, _)| referral != id) {
        return Err(ApiError::not_found());
    }
    let r = store::lock(conn, id).await?.ok_or_else(ApiError::not_found)?;
    disclosure(caller, &r).ok_or_else(ApiError::not_found)?;
    Ok(r)
}

/// Mediators and answer links act on offers made to their structure, admin on any.
fn require_offer_holder(caller: &ForStructure, r: &Referral) -> Result<(), ApiError> {
    let Some(offer) = &r.offer else {
        return Err(ApiError::conflict(format!("the referral is {}, not offered", r.status)));
    };
    match caller.structure() {
        Some(s) if &offer.structure_id != s => Err(ApiError::not_found()),
        _ => Ok(()),
    }
}

/// Contact and closure belong to the accepting structure (or admin).
fn require_accepting_structure(caller: &ForStructure, r: &Referral, action: Action) -> Result<(), ApiError> {
    transition(r.status, action).map_err(|e| ApiError::conflict(e.to_string()))?;
    match caller.structure() {
        Some(s) if r.structure_id.as_ref() != Some(s) => Err(ApiError::not_found()),
        _ => Ok(()),
    }
}

/// What every step of the accepting structure does around it: the referral locked, the
/// caller allowed `action` on it, the step, its audit record, one commit, and the
/// referral as the caller sees it.
async fn follow_up(
    state: &ReferralsState,
    caller: &ForStructure,
    id: ReferralId,
    action: Action,
    audit: AuditAction,
    step: impl AsyncFnOnce(&mut PgConnection, &mut Referral) -> Result<(), ApiError>,
) -> Result<Response, ApiError> {
    let mut tx = state.pool.begin().await?;
    let mut r = load(&mut tx, caller, id).await?;
    require_accepting_structure(caller, &r, action)?;
    step(&mut tx, &mut r).await?;
    privacy::record(&mut tx, caller, audit, &[r.id]).await?;
    tx.commit().await?;
    respond(state, caller, r.id).await
}

async fn respond(state: &ReferralsState, caller: &Caller, id: ReferralId) -> Result<Response, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let r = store::get(&mut conn, id).await?.ok_or_else(ApiError::not_found)?;
    let d = disclosure(caller, &r).unwrap_or(Disclosure::Matching);
    Ok(AxumJson(render(&mut conn, &state.vault, r, d, true).await?).into_response())
}

/// Accept the offer (mediator of the offered structure, or its answer link).
#[utoipa::path(
    post,
    path = "/api/v1/referrals/{id}/accept",
    operation_id = "acceptReferral",
    tag = "referrals",
    params(ReferralPath),
    request_body(content = Option<contracts::api::AcceptRequest>, description = "Optional"),
    responses((status = 200, description = "The referral", body = ReferralView), Authenticated, Forbidden, NotFound, Conflict, JsonBody)
)]
async fn accept(
    State(state): State<ReferralsState>,
    caller: ForStructure,
    Path(id): Path<ReferralId>,
    OptionalJson(body): OptionalJson<AcceptRequest>,
) -> Result<Response, ApiError> {
    let mut e = Errors::new();
    let mediator_name = e.text("mediator_name", body.mediator_name.as_deref(), 200, false);
    e.finish(|| ()).map_err(ApiError::validation)?;
    let mut tx = state.pool.begin().await?;
    let mut r = load(&mut tx, &caller, id).await?;
    require_offer_holder(&caller, &r)?;
    lifecycle::accept(&mut tx, &state.vault, &mut r, &caller.actor(), mediator_name.as_deref()).await?;
    privacy::record(&mut tx, &caller, AuditAction::Accept, &[r.id]).await?;
    tx.commit().await?;
    tracing::info!(referral_id = %r.id, structure_id = ?r.structure_id, "accepted");
    respond(&state, &caller, r.id).await
}

/// Decline the offer (mediator of the offered structure, or its answer link); the
/// referral is matched again. `structure_unreachable` is not a structure's reason: only
/// a withdrawal gives it.
#[utoipa::path(
    post,
    path = "/api/v1/referrals/{id}/decline",
    operation_id = "declineReferral",
    tag = "referrals",
    params(ReferralPath),
    request_body = contracts::api::DeclineRequest,
    responses((status = 200, description = "The referral", body = ReferralView), Authenticated, Forbidden, NotFound, Conflict, JsonBody)
)]
async fn decline(
    State(state): State<ReferralsState>,
    caller: ForStructure,
    Path(id): Path<ReferralId>,
    OptionalJson(body): OptionalJson<DeclineRequest>,
) -> Result<Response, ApiError> {
    let mut e = Errors::new();
    let reason = e.one::<DeclineReason>("reason", body.reason.as_deref(), None);
    if reason == Some(DeclineReason::StructureUnreachable) {
        e.add("reason", NOT_A_STRUCTURES_REASON);
    }
    let comment = e.text("comment", body.comment.as_deref(), 1000, false);
    let reason = e.finish(|| reason).map_err(ApiError::validation)?.unwrap_or(DeclineReason::Other);
    let mut tx = state.pool.begin().await?;
    let mut r = load(&mut tx, &caller, id).await?;
    require_offer_holder(&caller, &r)?;
    lifecycle::decline(&mut tx, &state.vault, &mut r, &caller.actor(), reason, comment.as_deref()).await?;
    privacy::record(&mut tx, &caller, AuditAction::Decline, &[r.id]).await?;
    tx.commit().await?;
    tracing::info!(referral_id = %r.id, reason = %reason, "declined");
    respond(&state, &caller, r.id).await
}

const NOT_A_STRUCTURES_REASON: &str = "structure_unreachable is not a structure's reason: an offer is withdrawn for \
     it when the structure's address refuses e-mail";

/// Withdraw the pending offer of a structure that cannot be reached (the notifications
/// service, when the structure's address refuses the offer's e-mail for good): the offer
/// is declined with the reason `structure_unreachable`, so the matcher releases the
/// place and matches the referral again at once.
#[utoipa::path(
    post,
    path = "/api/v1/referrals/{id}/withdraw",
    operation_id = "withdrawOffer",
    tag = "referrals",
    params(ReferralPath),
    request_body = contracts::answer_links::Withdrawal,
    responses(
        (status = 200, description = "The referral", body = ReferralView),
        (status = 409, description = "Nothing to withdraw: the referral has no pending offer at that structure",
            body = platform::ApiError, content_type = "application/problem+json"),
        Authenticated, Forbidden, NotFound, JsonBody,
    )
)]
async fn withdraw(
    State(state): State<ReferralsState>,
    caller: FromService<Notify>,
    Path(id): Path<ReferralId>,
    platform::json::Json(body): platform::json::Json<Withdrawal>,
) -> Result<Response, ApiError> {
    if body.reason != DeclineReason::StructureUnreachable {
        return Err(ApiError::invalid_field("reason", "only structure_unreachable withdraws an offer"));
    }
    let mut tx = state.pool.begin().await?;
    let mut r = store::lock(&mut tx, id).await?.ok_or_else(ApiError::not_found)?;
    if r.offer.as_ref().is_none_or(|o| o.structure_id != body.structure_id) {
        return Err(ApiError::conflict(format!(
            "nothing to withdraw: the referral is {}, with no pending offer at {}",
            r.status, body.structure_id
        )));
    }
    let reason = DeclineReason::StructureUnreachable;
    lifecycle::decline(&mut tx, &state.vault, &mut r, &caller.actor(), reason, None).await?;
    privacy::record(&mut tx, &caller, AuditAction::Decline, &[r.id]).await?;
    tx.commit().await?;
    tracing::info!(referral_id = %r.id, structure_id = %body.structure_id, "offer withdrawn: structure unreachable");
    respond(&state, &caller, r.id).await
}

fn parse_time(e: &mut Errors, field: &str, value: Option<&str>) -> Option<DateTime<Utc>> {
    let v = value.map(str::trim).filter(|v| !v.is_empty())?;
    match DateTime::parse_from_rfc3339(v) {
        Ok(t) => Some(t.with_timezone(&Utc)),
        Err(_) => {
            e.add(field, "expected an RFC 3339 timestamp");
            None
        }
    }
}

/// Record a contact with the person (mediator of the accepting structure, or its answer
/// link).
#[utoipa::path(
    post,
    path = "/api/v1/referrals/{id}/contact",
    operation_id = "recordContact",
    tag = "referrals",
    params(ReferralPath),
    request_body(content = Option<contracts::api::ContactRequest>, description = "Optional"),
    responses((status = 200, description = "The referral", body = ReferralView), Authenticated, Forbidden, NotFound, Conflict, JsonBody)
)]
async fn contact(
    State(state): State<ReferralsState>,
    caller: ForStructure,
    Path(id): Path<ReferralId>,
    OptionalJson(body): OptionalJson<ContactRequest>,
) -> Result<Response, ApiError> {
    let mut e = Errors::new();
    let kind = e.one::<ContactKind>("kind", body.kind.as_deref(), Some(ContactKind::FirstContact));
    let at = parse_time(&mut e, "at", body.at.as_deref());
    if at.is_some_and(|t| t > Utc::now() + chrono::Duration::days(366)) {
        e.add("at", "is more than a year ahead");
    }
    let kind = e.finish(|| kind).map_err(ApiError::validation)?.unwrap_or(ContactKind::FirstContact);
    follow_up(&state, &caller, id, Action::Contact, AuditAction::Contact, async |tx, r| {
        Ok(lifecycle::contact(tx, r, &caller.actor(), kind, at.unwrap_or_else(Utc::now)).await?)
    })
    .await
}

/// Close with an outcome (mediator of the accepting structure, or its answer link).
#[utoipa::path(
    post,
    path = "/api/v1/referrals/{id}/close",
    operation_id = "closeReferral",
    tag = "referrals",
    params(ReferralPath),
    request_body = contracts::api::CloseRequest,
    responses((status = 200, description = "The referral", body = ReferralView), Authenticated, Forbidden, NotFound, Conflict, JsonBody)
)]
async fn close(
    State(state): State<ReferralsState>,
    caller: ForStructure,
    Path(id): Path<ReferralId>,
    OptionalJson(body): OptionalJson<CloseRequest>,
) -> Result<Response, ApiError> {
    let mut e = Errors::new();
    let outcome = e.one::<Outcome>("outcome", body.outcome.as_deref(), None);
    let comment = e.text("comment", body.comment.as_deref(), 1000, false);
    let outcome = e.finish(|| outcome).map_err(ApiError::validation)?.unwrap_or(Outcome::Other);
    let response = follow_up(&state, &caller, id, Action::Close, AuditAction::Close, async |tx, r| {
        Ok(lifecycle::close(tx, &state.vault, r, &caller.actor(), outcome, comment.as_deref()).await?)
    })
    .await?;
    tracing::info!(referral_id = %id, outcome = %outcome, "closed");
    Ok(response)
}

/// The longest appointment, in minutes (a whole working day).
const MAX_APPOINTMENT_MINUTES: u32 = 480;

/// Set the appointment, or move it (the accepting structure's mediator, or its answer
/// link). The person is told where and when on the channel they chose (an SMS, an
/// e-mail, or their referrer), and reminded `AIGUILLAGE_APPOINTMENT_REMINDER_BEFORE`
/// before it.
#[utoipa::path(
    put,
    path = "/api/v1/referrals/{id}/appointment",
    operation_id = "setAppointment",
    tag = "referrals",
    params(ReferralPath),
    request_body = contracts::referrals::AppointmentBody,
    responses((status = 200, description = "The referral, with its appointment", body = ReferralView), Authenticated, Forbidden, NotFound, Conflict, JsonBody)
)]
async fn set_appointment(
    State(state): State<ReferralsState>,
    caller: ForStructure,
    Path(id): Path<ReferralId>,
    platform::json::Json(body): platform::json::Json<contracts::referrals::AppointmentBody>,
) -> Result<Response, ApiError> {
    let mut e = Errors::new();
    let at = body.at.with_timezone(&Utc).trunc_subsecs(6);
    let now = Utc::now();
    if at <= now {
        e.add("at", "must be in the future");
    } else if at > now + chrono::Duration::days(366) {
        e.add("at", "is more than a year ahead");
    }
    if !(5..=MAX_APPOINTMENT_MINUTES).contains(&body.duration_minutes) {
        e.add("duration_minutes", format!("must be between 5 and {MAX_APPOINTMENT_MINUTES}"));
    }
    let place = e.text("place", body.place.as_deref(), 200, false);
    e.finish(|| ()).map_err(ApiError::validation)?;
    let new = lifecycle::NewAppointment { at, duration_minutes: body.duration_minutes, place };
    let before = state.config.appointment_reminder_before;
    let response = follow_up(&state, &caller, id, Action::Appoint, AuditAction::Appointment, async |tx, r| {
        Ok(lifecycle::set_appointment(tx, &state.vault, r, &caller.actor(), &new, before).await?)
    })
    .await?;
    tracing::info!(referral_id = %id, "appointment set");
    Ok(response)
}

/// Cancel the appointment (the accepting structure's mediator, or its answer link). A
/// person who was told of it is told it is cancelled.
#[utoipa::path(
    delete,
    path = "/api/v1/referrals/{id}/appointment",
    operation_id = "cancelAppointment",
    tag = "referrals",
    params(ReferralPath),
    responses((status = 200, description = "The referral", body = ReferralView), Authenticated, Forbidden, NotFound, Conflict)
)]
async fn cancel_appointment(
    State(state): State<ReferralsState>,
    caller: ForStructure,
    Path(id): Path<ReferralId>,
) -> Result<Response, ApiError> {
    let response =
        follow_up(&state, &caller, id, Action::FollowAppointment, AuditAction::Appointment, async |tx, r| {
            Ok(lifecycle::cancel_appointment(tx, &state.vault, r, &caller.actor()).await?)
        })
        .await?;
    tracing::info!(referral_id = %id, "appointment cancelled");
    Ok(response)
}

/// Record whether the person came, once the appointment's time has passed (the accepting
/// structure's mediator, or its answer link). After `false`, set a new appointment or
/// close with `no_show`.
#[utoipa::path(
    post,
    path = "/api/v1/referrals/{id}/appointment/attendance",
    operation_id = "recordAttendance",
    tag = "referrals",
    params(ReferralPath),
    request_body = contracts::referrals::AttendanceBody,
    responses((status = 200, description = "The referral", body = ReferralView), Authenticated, Forbidden, NotFound, Conflict, JsonBody)
)]
async fn record_attendance(
    State(state): State<ReferralsState>,
    caller: ForStructure,
    Path(id): Path<ReferralId>,
    platform::json::Json(body): platform::json::Json<contracts::referrals::AttendanceBody>,
) -> Result<Response, ApiError> {
    let response =
        follow_up(&state, &caller, id, Action::FollowAppointment, AuditAction::Appointment, async |tx, r| {
            Ok(lifecycle::record_attendance(tx, r, &caller.actor(), body.attended).await?)
        })
        .await?;
    tracing::info!(referral_id = %id, attended = body.attended, "attendance recorded");
    Ok(response)
}

/// Cancel (the referrer organisation).
#[utoipa::path(
    post,
    path = "/api/v1/referrals/{id}/cancel",
    operation_id = "cancelReferral",
    tag = "referrals",
    params(ReferralPath),
    request_body(content = Option<contracts::api::CancelRequest>, description = "Optional"),
    responses((status = 200, description = "The referral", body = ReferralView), Authenticated, Forbidden, NotFound, Conflict, JsonBody)
)]
async fn cancel(
    State(state): State<ReferralsState>,
    caller: Authorized<ReferrersOrAdmins>,
    Path(id): Path<ReferralId>,
    OptionalJson(body): OptionalJson<CancelRequest>,
) -> Result<Response, ApiError> {
    let mut e = Errors::new();
    let reason = e.text("reason", body.reason.as_deref(), 1000, false);
    e.finish(|| ()).map_err(ApiError::validation)?;
    let mut tx = state.pool.begin().await?;
    let mut r = load(&mut tx, &caller, id).await?;
    lifecycle::cancel(&mut tx, &state.vault, &mut r, &caller.actor(), reason.as_deref()).await?;
    privacy::record(&mut tx, &caller, AuditAction::Cancel, &[r.id]).await?;
    tx.commit().await?;
    tracing::info!(referral_id = %r.id, "cancelled");
    respond(&state, &caller, r.id).await
}

/// Route again (coordinator of the territory; admin): to a chosen structure (`force`
/// ignores capacity), or through matching with the attempts reset.
#[utoipa::path(
    post,
    path = "/api/v1/referrals/{id}/reroute",
    operation_id = "rerouteReferral",
    tag = "referrals",
    params(ReferralPath),
    request_body(content = Option<contracts::api::RerouteRequest>, description = "Optional"),
    responses((status = 200, description = "The referral", body = ReferralView), Authenticated, Forbidden, NotFound, Conflict, JsonBody)
)]
async fn reroute(
    State(state): State<ReferralsState>,
    caller: Authorized<Coordinators>,
    Path(id): Path<ReferralId>,
    OptionalJson(body): OptionalJson<RerouteRequest>,
) -> Result<Response, ApiError> {
    let mut e = Errors::new();
    let structure_id = e.text("structure_id", body.structure_id.as_deref(), 200, false);
    let structure_id = match structure_id.map(|s| s.parse::<StructureId>()) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(err)) => {
            e.add("structure_id", err.to_string());
            None
        }
    };
    let reason = e.text("reason", body.reason.as_deref(), 1000, false);
    e.finish(|| ()).map_err(ApiError::validation)?;
    let force = body.force.unwrap_or(false);
    if force && structure_id.is_none() {
        return Err(ApiError::invalid_field("force", "force needs a structure_id"));
    }
    let mut tx = state.pool.begin().await?;
    let mut r = load(&mut tx, &caller, id).await?;
    lifecycle::reroute(&mut tx, &state.vault, &mut r, &caller.actor(), structure_id.as_ref(), force, reason.as_deref())
        .await?;
    privacy::record(&mut tx, &caller, AuditAction::Reroute, &[r.id]).await?;
    tx.commit().await?;
    tracing::info!(referral_id = %r.id, to = ?structure_id, force, "rerouted");
    respond(&state, &caller, r.id).await
}

/// The referrer organisation's referral (or any, for admin), locked; 404 otherwise. The
/// person's rights are exercised by the organisation that referred them.
async fn load_for_rights(
    conn: &mut PgConnection,
    caller: &Authorized<ReferrersOrAdmins>,
    id: ReferralId,
) -> Result<Referral, ApiError> {
    let r = store::lock(conn, id).await?.ok_or_else(ApiError::not_found)?;
    match &caller.scope {
        Scope::All => Ok(r),
        Scope::Organisation(o) if *o == r.organisation_id => Ok(r),
        _ => Err(ApiError::not_found()),
    }
}

/// Everything held about the person of a referral (GDPR art. 15).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PersonalDataExport {
    pub referral_id: ReferralId,
    pub exported_at: DateTime<Utc>,
    /// `held` (once purged or erased, the export answers 404).
    pub personal_data: String,
    /// The referral with its person, note, consent and full history (comments included).
    pub referral: ReferralView,
}

/// Everything held about the person (the referrer organisation; admin), as JSON (GDPR
/// art. 15). Audited.
#[utoipa::path(
    get,
    path = "/api/v1/referrals/{id}/personal-data",
    operation_id = "exportPersonalData",
    tag = "privacy",
    params(ReferralPath),
    responses((status = 200, description = "Everything held", body = PersonalDataExport), Authenticated, Forbidden, NotFound)
)]
async fn personal_data(
    State(state): State<ReferralsState>,
    caller: Authorized<ReferrersOrAdmins>,
    Path(id): Path<ReferralId>,
) -> Result<Response, ApiError> {
    let mut tx = state.pool.begin().await?;
    let r = load_for_rights(&mut tx, &caller, id).await?;
    let view = render(&mut tx, &state.vault, r, Disclosure::Personal, true).await?;
    privacy::record(&mut tx, &caller, AuditAction::Export, &[view.id]).await?;
    tx.commit().await?;
    // Once purged or erased, nothing is held: the export is gone, as a deleted resource
    // is (the referral itself still reads, saying `"personal_data": "purged"|"erased"`).
    if view.personal_data.is_some() {
        return Err(ApiError::not_found());
    }
    let held = "held";
    tracing::info!(referral_id = %view.id, "personal data exported");
    Ok(AxumJson(PersonalDataExport {
        referral_id: view.id,
        exported_at: Utc::now(),
        personal_data: held.to_string(),
        referral: view,
    })
    .into_response())
}

/// Erase the person's data ahead of retention (the referrer organisation; admin; GDPR
/// art. 17). The referral keeps its facts and timeline, so statistics do not change.
/// Audited; erasing again is a no-op.
#[utoipa::path(
    delete,
    path = "/api/v1/referrals/{id}/personal-data",
    operation_id = "erasePersonalData",
    tag = "privacy",
    params(ReferralPath),
    responses((status = 204, description = "Erased"), Authenticated, Forbidden, NotFound)
)]
async fn erase_personal_data(
    State(state): State<ReferralsState>,
    caller: Authorized<ReferrersOrAdmins>,
    Path(id): Path<ReferralId>,
) -> Result<Response, ApiError> {
    let mut tx = state.pool.begin().await?;
    let r = load_for_rights(&mut tx, &caller, id).await?;
    privacy::remove(&mut tx, &[r.id.as_uuid()], privacy::Removal::Erased).await?;
    privacy::record(&mut tx, &caller, AuditAction::Erase, &[r.id]).await?;
    tx.commit().await?;
    tracing::info!(referral_id = %r.id, "personal data erased");
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn some<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// A correction of the person (GDPR art. 16): the fields given replace the stored ones;
/// `null` clears `phone`, `email` or `note`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonCorrection {
    #[schema(schema_with = correction_name)]
    first_name: Option<String>,
    #[schema(schema_with = correction_name)]
    last_name: Option<String>,
    #[serde(default, deserialize_with = "some")]
    #[schema(schema_with = contracts::api::schema::person_phone)]
    phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "some")]
    #[schema(schema_with = contracts::api::schema::person_email)]
    email: Option<Option<String>>,
    #[schema(value_type = Option<contracts::ContactPreference>)]
    contact_preference: Option<String>,
    #[serde(default, deserialize_with = "some")]
    #[schema(schema_with = contracts::api::schema::optional_text::<1000>)]
    note: Option<Option<String>>,
}

/// A name in a correction: absent or `null` keeps the stored one; given, it is not blank.
fn correction_name() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::SchemaType;
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .min_length(Some(1))
        .max_length(Some(100))
        .pattern(Some(contracts::api::schema::NOT_BLANK))
        .build()
}

/// Correct the person (the referrer organisation; admin; GDPR art. 16). Audited.
#[utoipa::path(
    patch,
    path = "/api/v1/referrals/{id}/person",
    operation_id = "correctPerson",
    tag = "privacy",
    params(ReferralPath),
    request_body = PersonCorrection,
    responses((status = 200, description = "The referral", body = ReferralView), Authenticated, Forbidden, NotFound, Conflict, JsonBody)
)]
async fn correct_person(
    State(state): State<ReferralsState>,
    caller: Authorized<ReferrersOrAdmins>,
    Path(id): Path<ReferralId>,
    platform::json::Json(body): platform::json::Json<PersonCorrection>,
) -> Result<Response, ApiError> {
    use contracts::ContactPreference;
    let mut tx = state.pool.begin().await?;
    let r = load_for_rights(&mut tx, &caller, id).await?;
    let Some(current) = store::person(&mut tx, &state.vault, r.id).await? else {
        return Err(ApiError::conflict("the personal data of this referral was purged or erased"));
    };
    let mut e = Errors::new();
    let first_name = match body.first_name.as_deref() {
        None => Some(current.first_name.clone()),
        given => e.text("first_name", given, 100, true),
    };
    let last_name = match body.last_name.as_deref() {
        None => Some(current.last_name.clone()),
        given => e.text("last_name", given, 100, true),
    };
    let phone = match &body.phone {
        None => current.phone.clone(),
        Some(given) => match e.text("phone", given.as_deref(), 40, false) {
            Some(p) => match contracts::phone::PhoneNumber::parse(&p) {
                Ok(n) => Some(n.into_string()),
                Err(err) => {
                    e.add("phone", err.to_string());
                    None
                }
            },
            None => None,
        },
    };
    let email = match &body.email {
        None => current.email.clone(),
        Some(given) => match e.text("email", given.as_deref(), 254, false) {
            Some(m) if contracts::email::is_email_address(&m) => Some(m),
            Some(_) => {
                e.add("email", "is not an e-mail address");
                None
            }
            None => None,
        },
    };
    let note = match &body.note {
        None => current.note.clone(),
        Some(given) => e.text("note", given.as_deref(), crate::domain::referral::MAX_NOTE_CHARS, false),
    };
    let preference = e.one::<ContactPreference>(
        "contact_preference",
        body.contact_preference.as_deref(),
        Some(current.contact_preference),
    );
    let invalid_contact = body
        .phone
        .as_ref()
        .is_some_and(|p| p.as_deref().is_some_and(|p| !p.trim().is_empty()) && phone.is_none())
        || body.email.as_ref().is_some_and(|m| m.as_deref().is_some_and(|m| !m.trim().is_empty()) && email.is_none());
    if phone.is_none() && email.is_none() && !invalid_contact {
        e.add("phone", "give a phone number or an e-mail address");
        e.add("email", "give a phone number or an e-mail address");
    }
    match preference {
        Some(ContactPreference::Phone) if phone.is_none() && !invalid_contact => {
            e.add("contact_preference", "is phone, but there is no phone number")
        }
        Some(ContactPreference::Email) if email.is_none() && !invalid_contact => {
            e.add("contact_preference", "is email, but there is no e-mail address")
        }
        _ => {}
    }
    let (first_name, last_name, preference) =
        e.finish(|| (first_name, last_name, preference)).map_err(ApiError::validation)?;
    let (Some(first_name), Some(last_name), Some(preference)) = (first_name, last_name, preference) else {
        return Err(ApiError::invalid_field("first_name", "is required"));
    };
    let fields = store::PersonFields {
        first_name: &first_name,
        last_name: &last_name,
        phone: phone.as_deref(),
        email: email.as_deref(),
        contact_preference: preference,
        note: note.as_deref(),
    };
    store::correct_person(&mut tx, &state.vault, r.id, &fields).await?;
    privacy::record(&mut tx, &caller, AuditAction::Correct, &[r.id]).await?;
    tx.commit().await?;
    tracing::info!(referral_id = %r.id, "person corrected");
    respond(&state, &caller, r.id).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    referral_id: Option<Uuid>,
    /// An account id (a signed-in agent) or a token id.
    agent: Option<Uuid>,
    /// RFC 3339; inclusive.
    #[param(format = DateTime)]
    from: Option<String>,
    /// RFC 3339; exclusive.
    #[param(format = DateTime)]
    to: Option<String>,
    /// Default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{0,19}$")]
    cursor: Option<String>,
}

/// The audit of access to personal data (admin; the data protection officer), oldest
/// first: who read, exported or changed which referral's personal data, and when.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    operation_id = "listAudit",
    tag = "privacy",
    params(AuditQuery),
    responses((status = 200, description = "A page of the audit", body = AuditPage), Authenticated, Forbidden, InvalidQuery)
)]
async fn audit_log(
    State(state): State<ReferralsState>,
    _caller: Authorized<Auditors>,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid_field("limit", "must be between 1 and 1000"));
    }
    let mut e = Errors::new();
    // Unlike a step's optional time, an empty bound is a mistake, not "no bound".
    for (field, value) in [("from", &q.from), ("to", &q.to)] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            e.add(field, "expected an RFC 3339 timestamp");
        }
    }
    let from = parse_time(&mut e, "from", q.from.as_deref());
    let to = parse_time(&mut e, "to", q.to.as_deref());
    let after = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => match c.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => {
                e.add("cursor", "is not a cursor this API returned");
                None
            }
        },
    };
    e.finish(|| ()).map_err(ApiError::validation)?;
    let filter = privacy::AuditFilter { referral_id: q.referral_id, agent: q.agent, from, to, after, limit };
    let mut conn = state.pool.acquire().await?;
    let items = privacy::audit(&mut conn, &filter).await?;
    let next_cursor = (items.len() as i64 == limit).then(|| items.last().map(|i| i.id.to_string())).flatten();
    Ok(AxumJson(AuditPage { items: items.into_iter().map(privacy::AuditRow::entry).collect(), next_cursor })
        .into_response())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_days_filter_beyond_a_century_is_refused_not_a_panic() {
        // `GET /api/v1/referrals?stale_days=1163073428` was a 500: the date overflowed.
        let now = Utc::now();
        for days in [MAX_STALE_DAYS + 1, 1_163_073_428, u32::MAX] {
            let err = unchanged_since(Some(days), now).unwrap_err();
            assert_eq!(err.status, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(err.errors[0].field, "stale_days");
        }
        let century = unchanged_since(Some(MAX_STALE_DAYS), now).unwrap().unwrap();
        assert_eq!((now - century).num_days(), i64::from(MAX_STALE_DAYS));
        assert_eq!(unchanged_since(None, now).unwrap(), None);
    }
}
