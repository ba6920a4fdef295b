//! Applying the state machine: each step changes the referral, appends to its history
//! and writes its event to the outbox, all in the caller's transaction.

use std::time::Duration;

use chrono::{DateTime, Utc};
use contracts::events::{
    MatchProposed, MatchWaitlisted, ReferralAccepted, ReferralAnswerLinkRequested, ReferralAppointmentCancelled,
    ReferralAppointmentSet, ReferralAttendanceRecorded, ReferralCancelled, ReferralClosed, ReferralContacted,
    ReferralDeclined, ReferralOfferExpired, ReferralOffered, ReferralPersonNoticeFailed, ReferralRerouted,
    ReferralWaitlisted,
};
use contracts::{
    Actor, AnsweredVia, AppointmentNotice, ContactKind, DeclineReason, Envelope, EventData, HistoryStep, NoticeChannel,
    Outcome, ReferralStatus, StructureId,
};
use platform::vault::Vault;
use sqlx::PgConnection;

use crate::SCHEMA;
use crate::appointments::{self, AppointmentRow, Queued};
use crate::domain::lifecycle::{Action, NotAllowed, transition};
use crate::store::{self, Offer, Referral, Step};

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    NotAllowed(#[from] NotAllowed),
    /// Allowed in this status, but not now (no appointment to cancel, one not yet due).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn advance(r: &mut Referral, action: Action) -> Result<ReferralStatus, NotAllowed> {
    let next = transition(r.status, action)?;
    r.status = next;
    Ok(next)
}

/// The pending offer of an offered referral (a stored referral that is offered always
/// has one: `store` refuses to read one that does not).
fn take_offer(r: &mut Referral, action: Action) -> Result<Offer, NotAllowed> {
    transition(r.status, action)?;
    r.offer.take().ok_or(NotAllowed { status: r.status, action })
}

async fn emit<E: EventData>(
    conn: &mut PgConnection,
    r: &mut Referral,
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

/// `vault` seals the step's comment; steps without one (the matcher's, the timer's) pass
/// `None`.
async fn save(conn: &mut PgConnection, vault: Option<&Vault>, r: &Referral, step: Step<'_>) -> sqlx::Result<()> {
    store::update(&mut *conn, r).await?;
    store::add_history(conn, vault, r.id, r.status, step).await
}

/// The accepting structure of an accepted referral (`store` refuses to read an accepted
/// referral without one).
fn accepting_structure(r: &Referral, action: Action) -> Result<StructureId, NotAllowed> {
    r.structure_id.clone().ok_or(NotAllowed { status: r.status, action })
}

/// Whether a match event is current: not from an older routing round, not older than
/// one already applied (the matcher numbers its events per referral).
pub fn is_current(r: &Referral, round: u32, sequence: i64) -> bool {
    round == r.round && sequence > r.match_sequence
}

/// The matcher proposed a structure: the referral is offered until `ttl` runs out.
pub async fn offer(
    conn: &mut PgConnection,
    r: &mut Referral,
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
    r.offer = Some(Offer {
        structure_id: m.structure_id.clone(),
        structure_name: m.structure_name.clone(),
        reservation_id: m.reservation_id,
        offered_at: now,
        expires_at,
        distance_km: m.distance_km,
        score: m.score,
        explanation: m.explanation.clone(),
        reasons: m.reasons.clone(),
    });
    let event = ReferralOffered {
        referral_id: r.id,
        structure_id: m.structure_id.clone(),
        attempt: r.attempts,
        offered_at: now,
        expires_at,
        score: m.score,
        distance_km: m.distance_km,
        explanation: m.explanation.clone(),
        reasons: m.reasons.clone(),
        reservation_id: m.reservation_id,
    };
    emit(conn, r, &event, Some(cause)).await?;
    let detail = serde_json::json!({ "attempt": r.attempts, "distance_km": m.distance_km, "expires_at": expires_at });
    save(
        conn,
        None,
        r,
        Step {
            structure_id: Some(&m.structure_id),
            actor: Some(&Actor::Matcher),
            detail: Some(detail),
            ..Step::new(HistoryStep::Offered)
        },
    )
    .await?;
    Ok(())
}

pub async fn waitlist(
    conn: &mut PgConnection,
    r: &mut Referral,
    m: &MatchWaitlisted,
    cause: &Envelope,
) -> Result<(), StepError> {
    advance(r, Action::Waitlist)?;
    r.escalated = m.escalated;
    r.waitlist_reason = Some(m.reason);
    let event =
        ReferralWaitlisted { referral_id: r.id, reason: m.reason, escalated: m.escalated, waitlisted_at: Utc::now() };
    emit(conn, r, &event, Some(cause)).await?;
    let detail = serde_json::json!({ "escalated": m.escalated });
    save(
        conn,
        None,
        r,
        Step {
            reason: Some(m.reason.slug()),
            actor: Some(&Actor::Matcher),
            detail: Some(detail),
            ..Step::new(HistoryStep::Waitlisted)
        },
    )
    .await?;
    Ok(())
}

pub async fn accept(
    conn: &mut PgConnection,
    vault: &Vault,
    r: &mut Referral,
    actor: &Actor,
    mediator_name: Option<&str>,
) -> Result<(), StepError> {
    let offer = take_offer(r, Action::Accept)?;
    advance(r, Action::Accept)?;
    let now = Utc::now();
    let structure_id = offer.structure_id;
    r.structure_id = Some(structure_id.clone());
    r.structure_name = Some(offer.structure_name);
    r.accepted_at = Some(now);
    let event = ReferralAccepted {
        referral_id: r.id,
        structure_id: structure_id.clone(),
        reservation_id: offer.reservation_id,
        accepted_at: now,
        via: answered_via(actor),
    };
    emit(conn, r, &event, None).await?;
    save(
        conn,
        Some(vault),
        r,
        Step {
            structure_id: Some(&structure_id),
            actor: Some(actor),
            comment: mediator_name,
            ..Step::new(HistoryStep::Accepted)
        },
    )
    .await?;
    Ok(())
}

pub async fn decline(
    conn: &mut PgConnection,
    vault: &Vault,
    r: &mut Referral,
    actor: &Actor,
    reason: DeclineReason,
    comment: Option<&str>,
) -> Result<(), StepError> {
    let offer = take_offer(r, Action::Decline)?;
    advance(r, Action::Decline)?;
    let structure_id = offer.structure_id;
    let event = ReferralDeclined {
        referral_id: r.id,
        structure_id: structure_id.clone(),
        reason,
        attempt: r.attempts,
        reservation_id: offer.reservation_id,
        declined_at: Utc::now(),
        via: answered_via(actor),
    };
    emit(conn, r, &event, None).await?;
    save(
        conn,
        Some(vault),
        r,
        Step {
            structure_id: Some(&structure_id),
            reason: Some(reason.slug()),
            actor: Some(actor),
            comment,
            ..Step::new(HistoryStep::Declined)
        },
    )
    .await?;
    Ok(())
}

/// How a structure answered, from who acted: a mediator (signed in, or a mediator's
/// bearer token) or the link of the offer's e-mail. An administrator or the system
/// answering for it says nothing of the structure's channel.
fn answered_via(actor: &Actor) -> Option<AnsweredVia> {
    match actor {
        Actor::Mediator(..) => Some(AnsweredVia::Account),
        Actor::AnswerLink(_) => Some(AnsweredVia::AnswerLink),
        _ => None,
    }
}

/// The structure that accepted asked, through an answer link, for a fresh one: the
/// notifications service sends it to the structure's public address. Not a step: the
/// referral's status, history and last activity stay as they are; only its event
/// sequence moves on. No token travels: the link is made when the e-mail is sent.
pub async fn request_answer_link(
    conn: &mut PgConnection,
    r: &mut Referral,
    structure_id: &StructureId,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    let event = ReferralAnswerLinkRequested { referral_id: r.id, structure_id: structure_id.clone(), requested_at: at };
    emit(conn, r, &event, None).await?;
    store::set_event_sequence(conn, r).await
}

/// The durable offer timer fired.
pub async fn expire(conn: &mut PgConnection, r: &mut Referral) -> Result<(), StepError> {
    let offer = take_offer(r, Action::Expire)?;
    advance(r, Action::Expire)?;
    let structure_id = offer.structure_id;
    let event = ReferralOfferExpired {
        referral_id: r.id,
        structure_id: structure_id.clone(),
        attempt: r.attempts,
        reservation_id: offer.reservation_id,
        expired_at: Utc::now(),
    };
    let expired_at = offer.expires_at;
    emit(conn, r, &event, None).await?;
    let detail = serde_json::json!({ "expires_at": expired_at });
    save(
        conn,
        None,
        r,
        Step {
            structure_id: Some(&structure_id),
            actor: Some(&Actor::Timer),
            detail: Some(detail),
            ..Step::new(HistoryStep::OfferExpired)
        },
    )
    .await?;
    Ok(())
}

pub async fn contact(
    conn: &mut PgConnection,
    r: &mut Referral,
    actor: &Actor,
    kind: ContactKind,
    at: DateTime<Utc>,
) -> Result<(), StepError> {
    let structure_id = accepting_structure(r, Action::Contact)?;
    advance(r, Action::Contact)?;
    let event = ReferralContacted { referral_id: r.id, structure_id: structure_id.clone(), kind, at };
    emit(conn, r, &event, None).await?;
    let detail = serde_json::json!({ "kind": kind, "contact_at": at });
    save(
        conn,
        None,
        r,
        Step {
            structure_id: Some(&structure_id),
            reason: Some(kind.slug()),
            actor: Some(actor),
            detail: Some(detail),
            ..Step::new(HistoryStep::Contacted)
        },
    )
    .await?;
    Ok(())
}

pub async fn close(
    conn: &mut PgConnection,
    vault: &Vault,
    r: &mut Referral,
    actor: &Actor,
    outcome: Outcome,
    comment: Option<&str>,
) -> Result<(), StepError> {
    let structure_id = accepting_structure(r, Action::Close)?;
    advance(r, Action::Close)?;
    appointments::drop_queued(conn, r.id).await?;
    let now = Utc::now();
    r.outcome = Some(outcome);
    r.closed_at = Some(now);
    let event = ReferralClosed { referral_id: r.id, structure_id: structure_id.clone(), outcome, closed_at: now };
    emit(conn, r, &event, None).await?;
    save(
        conn,
        Some(vault),
        r,
        Step {
            structure_id: Some(&structure_id),
            reason: Some(outcome.slug()),
            actor: Some(actor),
            comment,
            ..Step::new(HistoryStep::Closed)
        },
    )
    .await?;
    Ok(())
}

pub async fn cancel(
    conn: &mut PgConnection,
    vault: &Vault,
    r: &mut Referral,
    actor: &Actor,
    reason: Option<&str>,
) -> Result<(), StepError> {
    let previous = r.status;
    advance(r, Action::Cancel)?;
    appointments::drop_queued(conn, r.id).await?;
    let offer = r.offer.take();
    let structure_id = offer.as_ref().map(|o| o.structure_id.clone()).or_else(|| r.structure_id.clone());
    let event = ReferralCancelled {
        referral_id: r.id,
        reason: "cancelled_by_referrer".to_string(),
        previous_status: previous,
        structure_id: structure_id.clone(),
        reservation_id: offer.map(|o| o.reservation_id),
        cancelled_at: Utc::now(),
    };
    emit(conn, r, &event, None).await?;
    save(
        conn,
        Some(vault),
        r,
        Step {
            structure_id: structure_id.as_ref(),
            actor: Some(actor),
            comment: reason,
            ..Step::new(HistoryStep::Cancelled)
        },
    )
    .await?;
    Ok(())
}

/// A coordinator sends the referral to a chosen structure, or through matching again.
pub async fn reroute(
    conn: &mut PgConnection,
    vault: &Vault,
    r: &mut Referral,
    actor: &Actor,
    structure_id: Option<&StructureId>,
    force: bool,
    reason: Option<&str>,
) -> Result<(), StepError> {
    advance(r, Action::Reroute)?;
    r.round += 1;
    let withdrawn = r.offer.take();
    if let Some(offer) = &withdrawn {
        store::add_history(
            &mut *conn,
            Some(vault),
            r.id,
            ReferralStatus::Offered,
            Step {
                structure_id: Some(&offer.structure_id),
                actor: Some(actor),
                ..Step::new(HistoryStep::OfferWithdrawn)
            },
        )
        .await?;
    }
    r.escalated = false;
    r.waitlist_reason = None;
    let event = ReferralRerouted {
        referral_id: r.id,
        round: r.round,
        structure_id: structure_id.cloned(),
        force,
        withdrawn_structure_id: withdrawn.as_ref().map(|o| o.structure_id.clone()),
        withdrawn_reservation_id: withdrawn.map(|o| o.reservation_id),
        rerouted_at: Utc::now(),
    };
    emit(conn, r, &event, None).await?;
    let detail = serde_json::json!({ "force": force, "round": r.round, "attempts_reset": structure_id.is_none() });
    save(
        conn,
        Some(vault),
        r,
        Step {
            structure_id,
            actor: Some(actor),
            comment: reason,
            detail: Some(detail),
            ..Step::new(HistoryStep::Rerouted)
        },
    )
    .await?;
    Ok(())
}

/// An appointment to set: in the future, from 5 to 480 minutes, in an optional room.
#[derive(Debug, Clone)]
pub struct NewAppointment {
    pub at: DateTime<Utc>,
    pub duration_minutes: u32,
    pub place: Option<String>,
}

/// The accepting structure sets an appointment, or moves the pending one. The person is
/// told on their channel (a message queued beside their record, and a reminder
/// `reminder_before` it); a message of the older time still waiting is dropped.
pub async fn set_appointment(
    conn: &mut PgConnection,
    vault: &Vault,
    r: &mut Referral,
    actor: &Actor,
    new: &NewAppointment,
    reminder_before: Duration,
) -> Result<(), StepError> {
    let structure_id = accepting_structure(r, Action::Appoint)?;
    advance(r, Action::Appoint)?;
    let now = Utc::now();
    let previous = appointments::get(&mut *conn, r.id).await?;
    let pending = previous.as_ref().filter(|p| p.is_pending());
    let rescheduled = pending.is_some();
    let version = previous.as_ref().map_or(1, |p| p.version + 1);
    let first_version = pending.map_or(version, |p| p.first_version);
    let told = match pending {
        Some(p) => appointments::person_was_told(&mut *conn, r.id, p.first_version).await?,
        None => false,
    };
    let person = store::person(&mut *conn, vault, r.id).await?;
    let (channel, recipient) = appointments::channel_of(person.as_ref());
    appointments::drop_queued(&mut *conn, r.id).await?;
    let row = AppointmentRow {
        structure_id: structure_id.clone(),
        version,
        first_version,
        at: new.at,
        duration_minutes: i32::try_from(new.duration_minutes).unwrap_or(i32::MAX),
        place: new.place.clone(),
        channel,
        cancelled_at: None,
        attended: None,
    };
    appointments::put(&mut *conn, r.id, &row, now).await?;
    let kind = if told { AppointmentNotice::Changed } else { AppointmentNotice::Set };
    let message = Queued { id: r.id, version, kind, channel, recipient: recipient.as_deref(), due: now };
    appointments::queue(&mut *conn, vault, &message).await?;
    let remind_at = new.at - chrono::Duration::from_std(reminder_before).unwrap_or(chrono::Duration::hours(48));
    // A reminder only when it falls after now: an appointment set for tomorrow is told
    // once. The referrer who tells the person has the slip, not reminders.
    if remind_at > now && channel != NoticeChannel::Referrer {
        let reminder = Queued { kind: AppointmentNotice::Reminder, due: remind_at, ..message };
        appointments::queue(&mut *conn, vault, &reminder).await?;
    }
    let event = ReferralAppointmentSet {
        referral_id: r.id,
        structure_id: structure_id.clone(),
        version: u32::try_from(version).unwrap_or_default(),
        at: new.at,
        duration_minutes: new.duration_minutes,
        channel,
        rescheduled,
        set_at: now,
    };
    emit(conn, r, &event, None).await?;
    let detail = serde_json::json!({
        "at": new.at,
        "duration_minutes": new.duration_minutes,
        "place": new.place,
        "version": version,
        "rescheduled": rescheduled,
        "channel": channel,
    });
    save(
        conn,
        Some(vault),
        r,
        Step {
            structure_id: Some(&structure_id),
            reason: Some(kind.slug()),
            actor: Some(actor),
            detail: Some(detail),
            ..Step::new(HistoryStep::AppointmentSet)
        },
    )
    .await?;
    Ok(())
}

/// The pending appointment of a referral in progress, or why there is none to act on.
async fn pending_appointment(conn: &mut PgConnection, r: &Referral) -> Result<AppointmentRow, StepError> {
    match appointments::get(conn, r.id).await? {
        Some(a) if a.is_pending() => Ok(a),
        Some(a) if a.cancelled_at.is_none() => Err(StepError::Conflict(
            "the attendance of this appointment is recorded: set a new appointment or close the referral".into(),
        )),
        _ => Err(StepError::Conflict("the referral has no appointment".into())),
    }
}

/// The accepting structure cancels the pending appointment. A person who was told of it
/// is told it is cancelled; nothing of it still waiting goes.
pub async fn cancel_appointment(
    conn: &mut PgConnection,
    vault: &Vault,
    r: &mut Referral,
    actor: &Actor,
) -> Result<(), StepError> {
    let structure_id = accepting_structure(r, Action::FollowAppointment)?;
    advance(r, Action::FollowAppointment)?;
    let a = pending_appointment(&mut *conn, r).await?;
    let now = Utc::now();
    let told = appointments::person_was_told(&mut *conn, r.id, a.first_version).await?;
    appointments::drop_queued(&mut *conn, r.id).await?;
    let version = a.version + 1;
    appointments::mark_cancelled(&mut *conn, r.id, version, now).await?;
    // The referrer who told the person of it is told by the notifications service.
    if told || a.channel == NoticeChannel::Referrer {
        let person = store::person(&mut *conn, vault, r.id).await?;
        let (channel, recipient) = appointments::channel_of(person.as_ref());
        let channel = if a.channel == NoticeChannel::Referrer { NoticeChannel::Referrer } else { channel };
        let message = Queued {
            id: r.id,
            version,
            kind: AppointmentNotice::Cancelled,
            channel,
            recipient: recipient.as_deref(),
            due: now,
        };
        appointments::queue(&mut *conn, vault, &message).await?;
    }
    let event = ReferralAppointmentCancelled {
        referral_id: r.id,
        structure_id: structure_id.clone(),
        version: u32::try_from(version).unwrap_or_default(),
        channel: a.channel,
        cancelled_at: now,
    };
    emit(conn, r, &event, None).await?;
    let detail = serde_json::json!({ "at": a.at, "version": version, "person_told": told });
    save(
        conn,
        Some(vault),
        r,
        Step {
            structure_id: Some(&structure_id),
            actor: Some(actor),
            detail: Some(detail),
            ..Step::new(HistoryStep::AppointmentCancelled)
        },
    )
    .await?;
    Ok(())
}

/// Once the appointment's time has passed, the accepting structure records whether the
/// person came. After a no-show it may set a new appointment or close (`no_show`).
pub async fn record_attendance(
    conn: &mut PgConnection,
    r: &mut Referral,
    actor: &Actor,
    attended: bool,
) -> Result<(), StepError> {
    let structure_id = accepting_structure(r, Action::FollowAppointment)?;
    advance(r, Action::FollowAppointment)?;
    let a = pending_appointment(&mut *conn, r).await?;
    let now = Utc::now();
    if a.at > now {
        return Err(StepError::Conflict(format!(
            "the appointment is at {}: its attendance is recorded once that time has passed",
            a.at.to_rfc3339()
        )));
    }
    appointments::drop_queued(&mut *conn, r.id).await?;
    appointments::mark_attendance(&mut *conn, r.id, attended, now).await?;
    let event = ReferralAttendanceRecorded {
        referral_id: r.id,
        structure_id: structure_id.clone(),
        version: u32::try_from(a.version).unwrap_or_default(),
        appointment_at: a.at,
        attended,
        recorded_at: now,
    };
    emit(conn, r, &event, None).await?;
    let detail = serde_json::json!({ "at": a.at, "version": a.version, "attended": attended });
    save(
        conn,
        None,
        r,
        Step {
            structure_id: Some(&structure_id),
            reason: Some(if attended { "attended" } else { "no_show" }),
            actor: Some(actor),
            detail: Some(detail),
            ..Step::new(HistoryStep::AttendanceRecorded)
        },
    )
    .await?;
    Ok(())
}

/// A message to the person could not be delivered: the referrer is told (by the
/// notifications service), to tell the person. Not a step: the referral's status,
/// history and last activity stay as they are; only its event sequence moves on.
pub async fn person_notice_failed(
    conn: &mut PgConnection,
    r: &mut Referral,
    channel: NoticeChannel,
    notice: AppointmentNotice,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    let event = ReferralPersonNoticeFailed { referral_id: r.id, channel, notice, failed_at: at };
    emit(conn, r, &event, None).await?;
    store::set_event_sequence(conn, r).await
}
