//! Applying the state machine: each step changes the referral, appends to its history
//! and writes its event to the outbox, all in the caller's transaction.

use std::time::Duration;

use chrono::{DateTime, Utc};
use contracts::events::{
    MatchProposed, MatchWaitlisted, ReferralAccepted, ReferralCancelled, ReferralClosed, ReferralContacted,
    ReferralDeclined, ReferralOfferExpired, ReferralOffered, ReferralRerouted, ReferralWaitlisted,
};
use contracts::{ContactKind, DeclineReason, Envelope, EventData, Outcome, ReferralStatus};
use sqlx::PgConnection;

use crate::SCHEMA;
use crate::domain::lifecycle::{Action, NotAllowed, transition};
use crate::store::{self, ReferralRow, Step};

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    NotAllowed(#[from] NotAllowed),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub fn status_of(r: &ReferralRow) -> ReferralStatus {
    r.status.parse().unwrap_or(ReferralStatus::Submitted)
}

fn advance(r: &mut ReferralRow, action: Action) -> Result<ReferralStatus, NotAllowed> {
    let next = transition(status_of(r), action)?;
    r.status = next.slug().to_string();
    Ok(next)
}

async fn emit<E: EventData>(
    conn: &mut PgConnection,
    r: &mut ReferralRow,
    data: &E,
    cause: Option<&Envelope>,
) -> sqlx::Result<()> {
    r.event_sequence += 1;
    let mut envelope = Envelope::new(r.id.to_string(), r.event_sequence, data);
    if let Some(cause) = cause {
        envelope = envelope.caused_by(cause);
    }
    bus::enqueue(conn, SCHEMA, &envelope).await
}

async fn save(conn: &mut PgConnection, r: &ReferralRow, step: Step<'_>) -> sqlx::Result<()> {
    store::update(&mut *conn, r).await?;
    store::add_history(conn, r.id, &r.status, step).await
}

/// Whether a match event is current: not from an older routing round, not older than
/// one already applied (the matcher numbers its events per referral).
pub fn is_current(r: &ReferralRow, round: u32, sequence: i64) -> bool {
    round as i32 == r.round && sequence > r.match_sequence
}

/// The matcher proposed a structure: the referral is offered until `ttl` runs out.
pub async fn offer(
    conn: &mut PgConnection,
    r: &mut ReferralRow,
    m: &MatchProposed,
    ttl: Duration,
    cause: &Envelope,
) -> Result<(), StepError> {
    advance(r, Action::Offer)?;
    let now = Utc::now();
    let expires_at = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(72));
    r.attempts += 1;
    r.escalated = false;
    r.waitlist_reason = None;
    r.offer_structure_id = Some(m.structure_id.clone());
    r.offer_structure_name = Some(m.structure_name.clone());
    r.offer_reservation_id = Some(m.reservation_id);
    r.offered_at = Some(now);
    r.offer_expires_at = Some(expires_at);
    r.offer_distance_km = Some(m.distance_km);
    r.offer_score = Some(m.score);
    r.offer_explanation = Some(serde_json::json!(m.explanation));
    let event = ReferralOffered {
        referral_id: r.id,
        structure_id: m.structure_id.clone(),
        attempt: r.attempts as u32,
        offered_at: now,
        expires_at,
        score: m.score,
        distance_km: m.distance_km,
        explanation: m.explanation.clone(),
        reservation_id: m.reservation_id,
    };
    emit(conn, r, &event, Some(cause)).await?;
    let detail = serde_json::json!({ "attempt": r.attempts, "distance_km": m.distance_km, "expires_at": expires_at });
    save(
        conn,
        r,
        Step {
            step: "offered",
            structure_id: Some(&m.structure_id),
            actor: Some("matcher"),
            detail: Some(detail),
            ..Step::default()
        },
    )
    .await?;
    Ok(())
}

pub async fn waitlist(
    conn: &mut PgConnection,
    r: &mut ReferralRow,
    m: &MatchWaitlisted,
    cause: &Envelope,
) -> Result<(), StepError> {
    advance(r, Action::Waitlist)?;
    r.escalated = m.escalated;
    r.waitlist_reason = Some(m.reason.slug().to_string());
    let event =
        ReferralWaitlisted { referral_id: r.id, reason: m.reason, escalated: m.escalated, waitlisted_at: Utc::now() };
    emit(conn, r, &event, Some(cause)).await?;
    let detail = serde_json::json!({ "escalated": m.escalated });
    save(
        conn,
        r,
        Step {
            step: "waitlisted",
            reason: Some(m.reason.slug()),
            actor: Some("matcher"),
            detail: Some(detail),
            ..Step::default()
        },
    )
    .await?;
    Ok(())
}

pub async fn accept(
    conn: &mut PgConnection,
    r: &mut ReferralRow,
    actor: &str,
    mediator_name: Option<&str>,
) -> Result<(), StepError> {
    advance(r, Action::Accept)?;
    let now = Utc::now();
    let structure_id = r.offer_structure_id.clone().unwrap_or_default();
    let reservation_id = r.offer_reservation_id.unwrap_or_default();
    r.structure_id = Some(structure_id.clone());
    r.structure_name = r.offer_structure_name.clone();
    r.accepted_at = Some(now);
    r.clear_offer();
    let event =
        ReferralAccepted { referral_id: r.id, structure_id: structure_id.clone(), reservation_id, accepted_at: now };
    emit(conn, r, &event, None).await?;
    save(
        conn,
        r,
        Step {
            step: "accepted",
            structure_id: Some(&structure_id),
            actor: Some(actor),
            comment: mediator_name,
            ..Step::default()
        },
    )
    .await?;
    Ok(())
}

pub async fn decline(
    conn: &mut PgConnection,
    r: &mut ReferralRow,
    actor: &str,
    reason: DeclineReason,
    comment: Option<&str>,
) -> Result<(), StepError> {
    advance(r, Action::Decline)?;
    let structure_id = r.offer_structure_id.clone().unwrap_or_default();
    let event = ReferralDeclined {
        referral_id: r.id,
        structure_id: structure_id.clone(),
        reason,
        attempt: r.attempts as u32,
        reservation_id: r.offer_reservation_id.unwrap_or_default(),
        declined_at: Utc::now(),
    };
    r.clear_offer();
    emit(conn, r, &event, None).await?;
    save(
        conn,
        r,
        Step {
            step: "declined",
            structure_id: Some(&structure_id),
            reason: Some(reason.slug()),
            actor: Some(actor),
            comment,
            ..Step::default()
        },
    )
    .await?;
    Ok(())
}

/// The durable offer timer fired.
pub async fn expire(conn: &mut PgConnection, r: &mut ReferralRow) -> Result<(), StepError> {
    advance(r, Action::Expire)?;
    let structure_id = r.offer_structure_id.clone().unwrap_or_default();
    let event = ReferralOfferExpired {
        referral_id: r.id,
        structure_id: structure_id.clone(),
        attempt: r.attempts as u32,
        reservation_id: r.offer_reservation_id.unwrap_or_default(),
        expired_at: Utc::now(),
    };
    let expired_at = r.offer_expires_at;
    r.clear_offer();
    emit(conn, r, &event, None).await?;
    let detail = serde_json::json!({ "expires_at": expired_at });
    save(
        conn,
        r,
        Step {
            step: "offer_expired",
            structure_id: Some(&structure_id),
            actor: Some("timer"),
            detail: Some(detail),
            ..Step::default()
        },
    )
    .await?;
    Ok(())
}

pub async fn contact(
    conn: &mut PgConnection,
    r: &mut ReferralRow,
    actor: &str,
    kind: ContactKind,
    at: DateTime<Utc>,
) -> Result<(), StepError> {
    advance(r, Action::Contact)?;
    let structure_id = r.structure_id.clone().unwrap_or_default();
    let event = ReferralContacted { referral_id: r.id, structure_id: structure_id.clone(), kind, at };
    emit(conn, r, &event, None).await?;
    let detail = serde_json::json!({ "kind": kind, "contact_at": at });
    save(
        conn,
        r,
        Step {
            step: "contacted",
            structure_id: Some(&structure_id),
            reason: Some(kind.slug()),
            actor: Some(actor),
            detail: Some(detail),
            ..Step::default()
        },
    )
    .await?;
    Ok(())
}

pub async fn close(
    conn: &mut PgConnection,
    r: &mut ReferralRow,
    actor: &str,
    outcome: Outcome,
    comment: Option<&str>,
) -> Result<(), StepError> {
    advance(r, Action::Close)?;
    let now = Utc::now();
    let structure_id = r.structure_id.clone().unwrap_or_default();
    r.outcome = Some(outcome.slug().to_string());
    r.closed_at = Some(now);
    let event = ReferralClosed { referral_id: r.id, structure_id: structure_id.clone(), outcome, closed_at: now };
    emit(conn, r, &event, None).await?;
    save(
        conn,
        r,
        Step {
            step: "closed",
            structure_id: Some(&structure_id),
            reason: Some(outcome.slug()),
            actor: Some(actor),
            comment,
            ..Step::default()
        },
    )
    .await?;
    Ok(())
}

pub async fn cancel(
    conn: &mut PgConnection,
    r: &mut ReferralRow,
    actor: &str,
    reason: Option<&str>,
) -> Result<(), StepError> {
    let previous = status_of(r);
    advance(r, Action::Cancel)?;
    let structure_id = r.offer_structure_id.clone().or_else(|| r.structure_id.clone());
    let event = ReferralCancelled {
        referral_id: r.id,
        reason: "cancelled_by_referrer".to_string(),
        previous_status: previous,
        structure_id: structure_id.clone(),
        reservation_id: r.offer_reservation_id,
        cancelled_at: Utc::now(),
    };
    r.clear_offer();
    emit(conn, r, &event, None).await?;
    save(
        conn,
        r,
        Step {
            step: "cancelled",
            structure_id: structure_id.as_deref(),
            actor: Some(actor),
            comment: reason,
            ..Step::default()
        },
    )
    .await?;
    Ok(())
}

/// A coordinator sends the referral to a chosen structure, or through matching again.
pub async fn reroute(
    conn: &mut PgConnection,
    r: &mut ReferralRow,
    actor: &str,
    structure_id: Option<&str>,
    force: bool,
    reason: Option<&str>,
) -> Result<(), StepError> {
    let was_offered = status_of(r) == ReferralStatus::Offered;
    advance(r, Action::Reroute)?;
    r.round += 1;
    let withdrawn_structure_id = r.offer_structure_id.clone();
    let withdrawn_reservation_id = r.offer_reservation_id;
    if was_offered {
        store::add_history(
            &mut *conn,
            r.id,
            ReferralStatus::Offered.slug(),
            Step {
                step: "offer_withdrawn",
                structure_id: withdrawn_structure_id.as_deref(),
                actor: Some(actor),
                ..Step::default()
            },
        )
        .await?;
    }
    r.clear_offer();
    r.escalated = false;
    r.waitlist_reason = None;
    let event = ReferralRerouted {
        referral_id: r.id,
        round: r.round as u32,
        structure_id: structure_id.map(str::to_string),
        force,
        withdrawn_structure_id,
        withdrawn_reservation_id,
        rerouted_at: Utc::now(),
    };
    emit(conn, r, &event, None).await?;
    let detail = serde_json::json!({ "force": force, "round": r.round, "attempts_reset": structure_id.is_none() });
    save(
        conn,
        r,
        Step {
            step: "rerouted",
            structure_id,
            actor: Some(actor),
            comment: reason,
            detail: Some(detail),
            ..Step::default()
        },
    )
    .await?;
    Ok(())
}
