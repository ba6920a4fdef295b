//! Derives messages from events. Each event is handled in the transaction that records
//! it in the inbox: the read model moves, reminders are set or cleared, and every message
//! and webhook delivery it causes is stored in the outbox — before anything is sent. A
//! replayed event finds itself in the inbox; a message is unique per (event, recipient,
//! kind) besides.

use std::sync::Arc;

use bus::{Handler, HandlerError, ServiceQueue};
use chrono::{DateTime, Utc};
use contracts::events::{
    AccountRemoved, AccountUpserted, CapacityChanged, ReferralAccepted, ReferralAnswerLinkRequested,
    ReferralAppointmentCancelled, ReferralAppointmentSet, ReferralAttendanceRecorded, ReferralCancelled,
    ReferralClosed, ReferralContacted, ReferralDeclined, ReferralOfferExpired, ReferralOffered,
    ReferralPersonNoticeFailed, ReferralRerouted, ReferralSubmitted, ReferralWaitlisted, StructureRemoved,
    StructureUpserted,
};
use contracts::{DeliveryMode, Envelope, MessageKind, NoticeChannel, ReferralStatus, StructureId};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Settings;
use crate::agents;
use crate::render::{self, About, Mail, Update};
use crate::store::{self, MessageStatus, Recipient, StructureMessage, TimerKind};

contracts::event_set! {
    /// Every event the notify queue is bound to.
    pub enum Inbound {
        ReferralSubmitted,
        ReferralOffered,
        ReferralAccepted,
        ReferralDeclined,
        ReferralOfferExpired,
        ReferralWaitlisted,
        ReferralContacted,
        ReferralClosed,
        ReferralCancelled,
        ReferralRerouted,
        StructureUpserted,
        StructureRemoved,
        CapacityChanged,
        AccountUpserted,
        AccountRemoved,
        ReferralAnswerLinkRequested,
        ReferralAppointmentSet,
        ReferralAppointmentCancelled,
        ReferralAttendanceRecorded,
        ReferralPersonNoticeFailed,
    }
}

pub fn queue() -> ServiceQueue {
    ServiceQueue { service: crate::SERVICE, bindings: &["referral.*", "structure.*", "capacity.changed", "account.*"] }
}

/// How long an event about a referral this service has not heard of yet is held back,
/// waiting for its `referral.submitted` (events may arrive out of order). Older ones are
/// handled with what is known: a deployment that starts notifications late must not
/// block on referrals submitted before it.
const WAIT_FOR_SUBMITTED: chrono::Duration = chrono::Duration::minutes(2);

pub struct Notifier {
    pub settings: Arc<Settings>,
}

impl Handler for Notifier {
    type Event = Inbound;

    /// Only database writes: safe to share a transaction with other messages.
    const BATCH: usize = 16;
    /// An offer, an acceptance or a decline needs the referral's submission, which comes
    /// from another service: handled in order, the submission is always known first
    /// (with concurrent workers, hundreds of events a minute waited for it, each holding
    /// a worker in backoff, and the queue behind them).
    const IN_ORDER: bool = true;

    async fn handle(&self, tx: &mut PgConnection, env: &Envelope, event: Inbound) -> Result<(), HandlerError> {
        let s = &self.settings;
        let seq = env.sequence;
        match &event {
            Inbound::ReferralSubmitted(e) => {
                let sub = store::Submitted {
                    referral_id: e.referral_id.into(),
                    organisation_id: e.organisation_id.into(),
                    submitted_by: e.submitted_by,
                    commune_code: &e.profile.commune_code,
                    territory: &e.profile.territory,
                    needs: &e.profile.needs,
                    submitted_at: e.submitted_at,
                };
                store::submitted(tx, &sub, seq).await?;
            }
            Inbound::ReferralOffered(e) => {
                let id: Uuid = e.referral_id.into();
                let referral = known(
                    env,
                    store::moved(tx, id, ReferralStatus::Offered, Some(&e.structure_id), e.offered_at, seq).await?,
                )?;
                let due = e.offered_at + chrono::Duration::from_std(s.offer_reminder_after).unwrap_or_default();
                store::set_timer(tx, TimerKind::OfferReminder, id, Some(&e.structure_id), due, seq).await?;
                let about = about(id, referral.as_ref());
                let name = structure_name(tx, &e.structure_id).await?;
                let mail = render::offer_received(&s.site, &about, &name, e.expires_at);
                tell_structure(tx, env.id, &e.structure_id, MessageKind::OfferReceived, id, &mail).await?;
                if !agents::has_active_mediator(tx, &e.structure_id, s.active_since(Utc::now())).await? {
                    let link = |name: &str| render::answer_link_offer(&s.site, &about, name, e.expires_at);
                    tell_address(tx, env.id, &e.structure_id, StructureMessage::AnswerLinkOffer, id, link).await?;
                }
            }
            Inbound::ReferralAccepted(e) => {
                let id: Uuid = e.referral_id.into();
                let referral = known(
                    env,
                    store::moved(tx, id, ReferralStatus::Accepted, Some(&e.structure_id), e.accepted_at, seq).await?,
                )?;
                store::clear_timer(tx, TimerKind::OfferReminder, id, seq).await?;
                let due = e.accepted_at + chrono::Duration::from_std(s.contact_reminder_after).unwrap_or_default();
                store::set_timer(tx, TimerKind::ContactReminder, id, Some(&e.structure_id), due, seq).await?;
                let name = structure_name(tx, &e.structure_id).await?;
                let mail = render::referral_update(
                    &s.site,
                    &about(id, referral.as_ref()),
                    Some(&name),
                    Update::Accepted,
                    e.accepted_at,
                );
                tell_referrer(tx, env.id, referral.as_ref(), &mail).await?;
            }
            Inbound::ReferralDeclined(e) => {
                let id: Uuid = e.referral_id.into();
                let referral =
                    known(env, store::moved(tx, id, ReferralStatus::Submitted, None, e.declined_at, seq).await?)?;
                store::clear_timer(tx, TimerKind::OfferReminder, id, seq).await?;
                let name = structure_name(tx, &e.structure_id).await?;
                let mail = render::referral_update(
                    &s.site,
                    &about(id, referral.as_ref()),
                    Some(&name),
                    Update::Declined(e.reason),
                    e.declined_at,
                );
                tell_referrer(tx, env.id, referral.as_ref(), &mail).await?;
            }
            Inbound::ReferralOfferExpired(e) => {
                let id: Uuid = e.referral_id.into();
                store::moved(tx, id, ReferralStatus::Submitted, None, e.expired_at, seq).await?;
                store::clear_timer(tx, TimerKind::OfferReminder, id, seq).await?;
            }
            Inbound::ReferralWaitlisted(e) => {
                let id: Uuid = e.referral_id.into();
                let referral =
                    known(env, store::moved(tx, id, ReferralStatus::Waitlisted, None, e.waitlisted_at, seq).await?)?;
                let a = about(id, referral.as_ref());
                let update = Update::Waitlisted { reason: e.reason, escalated: e.escalated };
                let mail = render::referral_update(&s.site, &a, None, update, e.waitlisted_at);
                tell_referrer(tx, env.id, referral.as_ref(), &mail).await?;
                if let Some(territory) = referral.as_ref().and_then(|r| r.territory.as_ref()) {
                    let coordinators = agents::coordinators(tx, territory).await?;
                    let mail = render::territory_waitlist(&s.site, &a, e.reason, e.escalated, e.waitlisted_at);
                    tell(tx, env.id, &coordinators, MessageKind::TerritoryWaitlist, Some(id), None, &mail).await?;
                }
            }
            Inbound::ReferralContacted(e) => {
                let id: Uuid = e.referral_id.into();
                store::moved(tx, id, ReferralStatus::InProgress, Some(&e.structure_id), e.at, seq).await?;
                store::clear_timer(tx, TimerKind::ContactReminder, id, seq).await?;
            }
            Inbound::ReferralClosed(e) => {
                let id: Uuid = e.referral_id.into();
                let referral = known(
                    env,
                    store::moved(tx, id, ReferralStatus::Closed, Some(&e.structure_id), e.closed_at, seq).await?,
                )?;
                store::clear_timer(tx, TimerKind::OfferReminder, id, seq).await?;
                store::clear_timer(tx, TimerKind::ContactReminder, id, seq).await?;
                let name = structure_name(tx, &e.structure_id).await?;
                let mail = render::referral_update(
                    &s.site,
                    &about(id, referral.as_ref()),
                    Some(&name),
                    Update::Closed(e.outcome),
                    e.closed_at,
                );
                tell_referrer(tx, env.id, referral.as_ref(), &mail).await?;
            }
            Inbound::ReferralCancelled(e) => {
                let id: Uuid = e.referral_id.into();
                store::moved(tx, id, ReferralStatus::Cancelled, None, e.cancelled_at, seq).await?;
                store::clear_timer(tx, TimerKind::OfferReminder, id, seq).await?;
                store::clear_timer(tx, TimerKind::ContactReminder, id, seq).await?;
            }
            Inbound::ReferralRerouted(e) => {
                let id: Uuid = e.referral_id.into();
                store::moved(tx, id, ReferralStatus::Submitted, None, e.rerouted_at, seq).await?;
                store::clear_timer(tx, TimerKind::OfferReminder, id, seq).await?;
            }
            Inbound::StructureUpserted(e) => store::upsert_structure(tx, &e.structure, seq).await?,
            Inbound::StructureRemoved(e) => store::remove_structure(tx, &e.structure_id, seq).await?,
            Inbound::CapacityChanged(_) => {}
            Inbound::AccountUpserted(e) => agents::upserted(tx, e, seq).await?,
            Inbound::AccountRemoved(e) => agents::removed(tx, e, seq).await?,
            // The person chose to be told by their referrer: the referrer gets the
            // appointment (never the person's contact), and the printable slip.
            Inbound::ReferralAppointmentSet(e) if e.channel == NoticeChannel::Referrer => {
                let id: Uuid = e.referral_id.into();
                let referral = store::referral(tx, id).await?;
                let name = structure_name(tx, &e.structure_id).await?;
                let mail =
                    render::appointment_to_tell(&s.site, &about(id, referral.as_ref()), &name, e.at, e.rescheduled);
                tell_referrer(tx, env.id, referral.as_ref(), &mail).await?;
            }
            Inbound::ReferralAppointmentCancelled(e) if e.channel == NoticeChannel::Referrer => {
                let id: Uuid = e.referral_id.into();
                let referral = store::referral(tx, id).await?;
                let name = structure_name(tx, &e.structure_id).await?;
                let mail = render::appointment_cancelled_to_tell(&s.site, &about(id, referral.as_ref()), &name);
                tell_referrer(tx, env.id, referral.as_ref(), &mail).await?;
            }
            Inbound::ReferralAppointmentSet(_)
            | Inbound::ReferralAppointmentCancelled(_)
            | Inbound::ReferralAttendanceRecorded(_) => {}
            // A message to the person could not be delivered: their referrer tells them.
            Inbound::ReferralPersonNoticeFailed(e) => {
                let id: Uuid = e.referral_id.into();
                let referral = store::referral(tx, id).await?;
                let mail = render::notice_failed(&s.site, &about(id, referral.as_ref()), e.channel, e.notice);
                tell_referrer(tx, env.id, referral.as_ref(), &mail).await?;
            }
            Inbound::ReferralAnswerLinkRequested(e) => {
                let id: Uuid = e.referral_id.into();
                let referral = store::referral(tx, id).await?;
                let about = about(id, referral.as_ref());
                let link = |name: &str| render::answer_link_renewal(&s.site, &about, name);
                tell_address(tx, env.id, &e.structure_id, StructureMessage::AnswerLinkRenewal, id, link).await?;
            }
        }
        crate::webhooks::derive(tx, env, &event).await?;
        Ok(())
    }
}

/// The referral as known here before this event. Unknown and recent: held back
/// (transient, so the transaction that moved it rolls back) until its
/// `referral.submitted` arrives.
fn known(env: &Envelope, referral: Option<store::Referral>) -> Result<Option<store::Referral>, HandlerError> {
    match &referral {
        Some(r) if r.organisation_id.is_some() => Ok(referral),
        _ if Utc::now() - env.occurred_at < WAIT_FOR_SUBMITTED => Err(HandlerError::Transient(anyhow::anyhow!(
            "{} for a referral whose submission has not arrived yet",
            env.event_type
        ))),
        _ => {
            tracing::warn!(event_type = %env.event_type, aggregate_id = %env.aggregate_id, "event for an unknown referral: nobody to tell");
            Ok(referral)
        }
    }
}

pub fn about(id: Uuid, r: Option<&store::Referral>) -> About {
    About {
        referral_id: id,
        needs: r.map(|r| r.needs.clone()).unwrap_or_default(),
        commune_code: r.and_then(|r| r.commune_code.as_ref().map(|c| c.to_string())),
        submitted_at: r.and_then(|r| r.submitted_at),
    }
}

async fn structure_name(tx: &mut PgConnection, id: &StructureId) -> sqlx::Result<String> {
    Ok(store::structure(tx, id).await?.map(|s| s.name).unwrap_or_else(|| "la structure".to_string()))
}

/// The referrer who submitted the referral; without one (a machine client), the
/// organisation's referrers.
async fn tell_referrer(
    tx: &mut PgConnection,
    source: Uuid,
    referral: Option<&store::Referral>,
    mail: &Mail,
) -> sqlx::Result<()> {
    let Some(r) = referral else { return Ok(()) };
    let accounts = match (r.submitted_by, r.organisation_id) {
        (Some(agent), _) => vec![agent],
        (None, Some(org)) => agents::referrers(tx, org).await?,
        (None, None) => vec![],
    };
    tell(tx, source, &accounts, MessageKind::ReferralUpdate, Some(r.referral_id), None, mail).await
}

/// A structure's mediators, each as they chose.
pub async fn tell_structure(
    tx: &mut PgConnection,
    source: Uuid,
    structure: &StructureId,
    kind: MessageKind,
    referral: Uuid,
    mail: &Mail,
) -> sqlx::Result<()> {
    let mediators = agents::mediators(tx, structure).await?;
    tell(tx, source, &mediators, kind, Some(referral), Some(structure), mail).await
}

/// A structure's public contact address (when it has one that takes mail): a message
/// with an answer link, made when it is sent. `mail` is given the structure's name.
async fn tell_address(
    tx: &mut PgConnection,
    source: Uuid,
    structure: &StructureId,
    kind: StructureMessage,
    referral: Uuid,
    mail: impl FnOnce(&str) -> Mail,
) -> sqlx::Result<()> {
    let Some(s) = store::structure(tx, structure).await? else { return Ok(()) };
    let Some(address) = s.usable_address() else { return Ok(()) };
    let mail = mail(&s.name);
    let common = store::Common {
        source_id: source,
        kind: kind.slug(),
        referral_id: Some(referral),
        structure_id: Some(&s.id),
        mail: &mail,
    };
    store::enqueue(tx, &common, &[(Recipient::Address(address), MessageStatus::Pending)]).await
}

/// Stores one message per account, as each chose for this kind: at once, held for the
/// daily digest, or not at all.
pub async fn tell(
    tx: &mut PgConnection,
    source: Uuid,
    accounts: &[Uuid],
    kind: MessageKind,
    referral: Option<Uuid>,
    structure: Option<&StructureId>,
    mail: &Mail,
) -> sqlx::Result<()> {
    if accounts.is_empty() {
        return Ok(());
    }
    let modes = agents::modes(tx, accounts, kind).await?;
    let mut to = Vec::with_capacity(accounts.len());
    for account in accounts {
        let status = match modes.get(account).copied().unwrap_or(kind.default_mode()) {
            DeliveryMode::Never => continue,
            DeliveryMode::Daily if kind != MessageKind::WeeklyDigest => MessageStatus::Held,
            _ => MessageStatus::Pending,
        };
        to.push((Recipient::Account(*account), status));
    }
    let common =
        store::Common { source_id: source, kind: kind.slug(), referral_id: referral, structure_id: structure, mail };
    store::enqueue(tx, &common, &to).await
}

/// `at` + `after`, saturating.
pub fn after(at: DateTime<Utc>, after: std::time::Duration) -> DateTime<Utc> {
    at + chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_is_bound_to_exactly_the_events_it_knows() {
        assert_eq!(queue().mismatches::<Inbound>(), Vec::<String>::new());
    }
}
