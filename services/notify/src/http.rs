//! Webhook subscriptions (who may subscribe to what follows the caller's scope), the
//! e-mails refused for good (admins), and the structures nobody can be told about
//! (coordinators).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json as AxumJson, Router};
use chrono::{DateTime, Utc};
use contracts::{FieldError, Role};
use platform::ApiError;
use platform::auth::roles::{Admins, Coordinators};
use platform::auth::{Authorized, Caller, Scope};
use platform::json::{Json, Query};
use platform::path::Path;
use platform::problem::responses::{Authenticated, Forbidden, InvalidQuery, JsonBody, NotFound};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::NotifyState;
use crate::store::{DeliveryStatus, MessageStatus};
use crate::webhooks::{self, EVENT_TYPES};
use contracts::notifications::{Unreached, UnreachedList};

pub fn routes() -> OpenApiRouter<NotifyState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(delete_webhook))
        .routes(routes!(failures))
        .routes(routes!(unreached))
}

pub fn router(state: NotifyState) -> Router {
    routes().split_for_parts().0.with_state(state)
}

platform::roles! {
    /// Who may subscribe: admins, referrers (their organisation), mediators (their
    /// structure), coordinators (their départements).
    pub Subscribers = [Admin, Referrer, Mediator, Coordinator];
}

/// What a subscription's scope is, from the caller's.
fn scope_of(caller: &Caller) -> Result<(&'static str, String), ApiError> {
    match &caller.scope {
        Scope::All => Ok(("all", String::new())),
        Scope::Organisation(o) => Ok(("organisation", o.to_string())),
        Scope::Structure(s) => Ok(("structure", s.to_string())),
        Scope::Territories(t) if !t.is_empty() => {
            Ok(("territory", t.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(",")))
        }
        _ => Err(ApiError::forbidden()),
    }
}

/// An event type a webhook may receive (the public events).
#[derive(ToSchema)]
#[allow(dead_code)]
enum WebhookEventType {
    #[schema(rename = "referral.submitted")]
    ReferralSubmitted,
    #[schema(rename = "referral.offered")]
    ReferralOffered,
    #[schema(rename = "referral.accepted")]
    ReferralAccepted,
    #[schema(rename = "referral.declined")]
    ReferralDeclined,
    #[schema(rename = "referral.offer_expired")]
    ReferralOfferExpired,
    #[schema(rename = "referral.waitlisted")]
    ReferralWaitlisted,
    #[schema(rename = "referral.contacted")]
    ReferralContacted,
    #[schema(rename = "referral.closed")]
    ReferralClosed,
    #[schema(rename = "referral.cancelled")]
    ReferralCancelled,
    #[schema(rename = "referral.rerouted")]
    ReferralRerouted,
    #[schema(rename = "referral.appointment_set")]
    ReferralAppointmentSet,
    #[schema(rename = "referral.appointment_cancelled")]
    ReferralAppointmentCancelled,
    #[schema(rename = "referral.attendance_recorded")]
    ReferralAttendanceRecorded,
    #[schema(rename = "structure.upserted")]
    StructureUpserted,
    #[schema(rename = "structure.removed")]
    StructureRemoved,
    #[schema(rename = "capacity.changed")]
    CapacityChanged,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct WebhookBody {
    /// Where deliveries are posted: `http` or `https`, not on a loopback or private
    /// address unless the operator allows it, with no credentials in it.
    #[schema(
        max_length = 2000,
        pattern = "^https?://[^\\u0000-\\u0020\\u007F-\\u009F/@:?#]+([:/?#][^\\u0000-\\u0020\\u007F-\\u009F]*)?$"
    )]
    url: String,
    /// The event types to receive (at least one).
    #[schema(value_type = Vec<WebhookEventType>, min_items = 1, max_items = 16)]
    events: Vec<String>,
}

/// A subscription. The secret is given once, when it is created.
#[derive(Debug, Serialize, ToSchema)]
struct WebhookView {
    id: Uuid,
    url: String,
    events: Vec<String>,
    /// `all`, `organisation`, `structure` or `territory`.
    scope: String,
    /// Set after 24 hours of failed deliveries; cleared by the next success.
    failing: bool,
    created_at: DateTime<Utc>,
    /// `whsec_` and base64: only in the answer to the creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

#[derive(Debug)]
struct WebhookRow {
    id: Uuid,
    url: String,
    events: Vec<String>,
    scope_kind: String,
    failing: bool,
    created_at: DateTime<Utc>,
}

impl WebhookRow {
    fn view(self, secret: Option<String>) -> WebhookView {
        WebhookView {
            id: self.id,
            url: self.url,
            events: self.events,
            scope: self.scope_kind,
            failing: self.failing,
            created_at: self.created_at,
            secret,
        }
    }
}

/// Subscribe to events: they are posted to the URL, signed to the Standard Webhooks
/// scheme with the secret answered here (once).
#[utoipa::path(
    post,
    path = "/api/v1/webhooks",
    operation_id = "createWebhook",
    tag = "notifications",
    request_body = WebhookBody,
    responses((status = 201, description = "The subscription, with its secret", body = WebhookView), Authenticated, Forbidden, JsonBody)
)]
async fn create_webhook(
    State(state): State<NotifyState>,
    caller: Authorized<Subscribers>,
    Json(body): Json<WebhookBody>,
) -> Result<Response, ApiError> {
    let (kind, scope) = scope_of(&caller)?;
    let mut errors = Vec::new();
    if body.url.chars().any(|c| c <= ' ' || ('\u{7f}'..='\u{9f}').contains(&c)) {
        errors.push(FieldError::new("url", "contains spaces or control characters"));
    } else if let Err(why) = webhooks::check_url(&body.url, state.settings.webhook_allow_private) {
        errors.push(FieldError::new("url", why));
    }
    if body.events.is_empty() || body.events.len() > EVENT_TYPES.len() {
        errors.push(FieldError::new("events", format!("must name between 1 and {} event types", EVENT_TYPES.len())));
    }
    for (i, e) in body.events.iter().enumerate() {
        if !EVENT_TYPES.contains(&e.as_str()) {
            errors
                .push(FieldError::new(format!("events[{i}]"), format!("expected one of: {}", EVENT_TYPES.join(", "))));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let mut events = body.events.clone();
    events.sort();
    events.dedup();
    let secret = webhooks::new_secret();
    let row = sqlx::query_as!(
        WebhookRow,
        "INSERT INTO notify.webhooks (id, scope_kind, scope_id, url, secret, events, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING id, url, events, scope_kind, failing, created_at",
        Uuid::now_v7(),
        kind,
        scope,
        &body.url,
        &secret,
        &events,
        caller.actor().to_string()
    )
    .fetch_one(&state.pool)
    .await?;
    tracing::info!(webhook = %row.id, scope = kind, "webhook subscribed");
    Ok((StatusCode::CREATED, [(axum::http::header::CACHE_CONTROL, "no-store")], AxumJson(row.view(Some(secret))))
        .into_response())
}

#[derive(Debug, Serialize, ToSchema)]
struct WebhookList {
    items: Vec<WebhookView>,
}

/// The caller's subscriptions (those of their scope), without their secrets.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks",
    operation_id = "listWebhooks",
    tag = "notifications",
    responses((status = 200, description = "The subscriptions", body = WebhookList), Authenticated, Forbidden)
)]
async fn list_webhooks(
    State(state): State<NotifyState>,
    caller: Authorized<Subscribers>,
) -> Result<Response, ApiError> {
    let (kind, scope) = scope_of(&caller)?;
    let rows = sqlx::query_as!(
        WebhookRow,
        "SELECT id, url, events, scope_kind, failing, created_at FROM notify.webhooks
         WHERE deleted_at IS NULL AND (($1 = 'all') OR (scope_kind = $1 AND scope_id = $2))
         ORDER BY created_at, id LIMIT 500",
        kind,
        scope
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(AxumJson(WebhookList { items: rows.into_iter().map(|r| r.view(None)).collect() }).into_response())
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct IdPath {
    id: Uuid,
}

/// Unsubscribe: no delivery is tried after this.
#[utoipa::path(
    delete,
    path = "/api/v1/webhooks/{id}",
    operation_id = "deleteWebhook",
    tag = "notifications",
    params(IdPath),
    responses((status = 204, description = "Deleted"), Authenticated, Forbidden, NotFound)
)]
async fn delete_webhook(
    State(state): State<NotifyState>,
    caller: Authorized<Subscribers>,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let (kind, scope) = scope_of(&caller)?;
    let mut tx = state.pool.begin().await?;
    let done = sqlx::query!(
        "UPDATE notify.webhooks SET deleted_at = now()
         WHERE id = $1 AND deleted_at IS NULL AND (($2 = 'all') OR (scope_kind = $2 AND scope_id = $3))",
        id,
        kind,
        scope
    )
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found());
    }
    sqlx::query!(
        "UPDATE notify.webhook_deliveries SET status = $2 WHERE webhook_id = $1 AND status = $3",
        id,
        DeliveryStatus::Cancelled.slug(),
        DeliveryStatus::Pending.slug()
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// An e-mail the server refused for good.
#[derive(Debug, Serialize, ToSchema)]
struct Failure {
    id: Uuid,
    kind: String,
    /// The agent it was for (their address stays in accounts).
    account_id: Option<Uuid>,
    /// The structure whose public contact address refused it.
    structure_id: Option<String>,
    /// The SMTP reply code, or what went wrong.
    error: Option<String>,
    attempts: i32,
    created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
struct FailureList {
    items: Vec<Failure>,
}

/// E-mails refused for good (5xx), newest first, with the recipient they were for
/// (admin).
#[utoipa::path(
    get,
    path = "/api/v1/notifications/failures",
    operation_id = "listNotificationFailures",
    tag = "notifications",
    responses((status = 200, description = "The refused e-mails", body = FailureList), Authenticated, Forbidden)
)]
async fn failures(State(state): State<NotifyState>, _caller: Authorized<Admins>) -> Result<Response, ApiError> {
    let items = sqlx::query_as!(
        Failure,
        "SELECT id, kind, account_id, CASE WHEN account_id IS NULL THEN structure_id END AS structure_id,
                error, attempts, created_at
         FROM notify.messages WHERE status = $1 ORDER BY created_at DESC, id LIMIT 500",
        MessageStatus::Failed.slug()
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(AxumJson(FailureList { items }).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct UnreachedQuery {
    /// One département the caller covers (default: all of theirs).
    #[param(value_type = Option<contracts::Territory>)]
    territory: Option<String>,
}

/// The structures of the caller's départements that no active mediator answers for
/// (coordinators; admin: every département, or the one asked): their offers go by e-mail
/// to their public address, with an answer link; those without one that takes mail are
/// never offered, and can only be called.
#[utoipa::path(
    get,
    path = "/api/v1/notifications/unreached-structures",
    operation_id = "listUnreachedStructures",
    tag = "notifications",
    params(UnreachedQuery),
    responses((status = 200, description = "The structures", body = UnreachedList), Authenticated, Forbidden, NotFound, InvalidQuery)
)]
async fn unreached(
    State(state): State<NotifyState>,
    caller: Authorized<Coordinators>,
    Query(q): Query<UnreachedQuery>,
) -> Result<Response, ApiError> {
    let asked = match q.territory.as_deref() {
        None => None,
        Some(t) => Some(
            t.parse::<contracts::Territory>()
                .map_err(|_| ApiError::invalid_field("territory", "is not a département code"))?
                .to_string(),
        ),
    };
    let asked = asked.as_deref();
    let territories: Vec<String> = match (asked, caller.role) {
        (Some(t), _) if caller.covers_territory(t) => vec![t.to_string()],
        (Some(_), _) => return Err(ApiError::not_found()),
        (None, Some(Role::Admin)) => crate::store::territories(&mut *state.pool.acquire().await?).await?,
        (None, _) => caller.territories().map(|t| t.iter().map(ToString::to_string).collect()).unwrap_or_default(),
    };
    let mut conn = state.pool.acquire().await?;
    let items = crate::timers::unreached(&mut conn, &state.settings, &territories)
        .await?
        .into_iter()
        .map(|s| Unreached {
            reachable_by_email: s.usable_address().is_some(),
            id: s.id.to_string(),
            name: s.name,
            territory: s.territory.to_string(),
            has_contact_email: s.contact_email.is_some(),
            bounced_at: s.bounced_at,
            phone: s.contact_phone,
        })
        .collect();
    Ok(AxumJson(UnreachedList { items }).into_response())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use utoipa::PartialSchema;

    #[test]
    fn the_documented_event_types_are_the_ones_accepted() {
        let schema = serde_json::to_value(WebhookEventType::schema()).unwrap();
        let documented: Vec<&str> = schema["enum"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(documented, EVENT_TYPES);
    }
}
