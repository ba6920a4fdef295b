//! Turns every event into facts: one function per event, its SQL in `store`. Written to
//! be order-insensitive: milestones keep the earliest time, counters count each event
//! once (the inbox sees to that), and the current status comes from the event with the
//! highest per-referral sequence.

use bus::{Handler, HandlerError, ServiceQueue};
use contracts::events::{
    CapacityChanged, OrganisationUpserted, ReferralAccepted, ReferralAnswerLinkRequested, ReferralAppointmentCancelled,
    ReferralAppointmentSet, ReferralAttendanceRecorded, ReferralCancelled, ReferralClosed, ReferralContacted,
    ReferralDeclined, ReferralOfferExpired, ReferralOffered, ReferralPersonNoticeFailed, ReferralRerouted,
    ReferralSubmitted, ReferralWaitlisted, StructureRemoved, StructureUpserted,
};
use contracts::{DeclineReason, Envelope};
use sqlx::PgConnection;

use crate::store::{self, Milestone};

contracts::event_set! {
    /// Every event the insights queue is bound to.
    pub enum Inbound {
        ReferralSubmitted,
        ReferralOffered,
        ReferralDeclined,
        ReferralOfferExpired,
        ReferralRerouted,
        ReferralWaitlisted,
        ReferralAccepted,
        ReferralContacted,
        ReferralClosed,
        ReferralCancelled,
        ReferralAppointmentSet,
        ReferralAppointmentCancelled,
        ReferralAttendanceRecorded,
        // Bound by `referral.*`, and nothing to count: known, so they are not dead-lettered.
        ReferralPersonNoticeFailed,
        ReferralAnswerLinkRequested,
        StructureUpserted,
        StructureRemoved,
        CapacityChanged,
        OrganisationUpserted,
    }
}

pub fn queue() -> ServiceQueue {
    // Every fact comes from referral.* events; match.* decisions show up there too.
    ServiceQueue {
        service: crate::SERVICE,
        bindings: &["referral.*", "structure.*", "capacity.changed", "organisation.*"],
    }
}

pub struct Projector;

impl Handler for Projector {
    type Event = Inbound;

    /// Only database writes, each checked against the event's sequence: safe to share a
    /// transaction with other messages.
    const BATCH: usize = 8;

    async fn handle(&self, tx: &mut PgConnection, env: &Envelope, event: Inbound) -> Result<(), HandlerError> {
        let seq = env.sequence;
        match event {
            Inbound::ReferralSubmitted(e) => store::submitted(tx, &e, seq).await?,
            Inbound::ReferralOffered(e) => offered(tx, env, &e).await?,
            Inbound::ReferralDeclined(e) => declined(tx, env, &e).await?,
            Inbound::ReferralOfferExpired(e) => offer_expired(tx, env, &e).await?,
            Inbound::ReferralRerouted(e) => rerouted(tx, env, &e).await?,
            Inbound::ReferralWaitlisted(e) => waitlisted(tx, env, &e).await?,
            Inbound::ReferralAccepted(e) => accepted(tx, env, &e).await?,
            Inbound::ReferralContacted(e) => contacted(tx, env, &e).await?,
            Inbound::ReferralClosed(e) => closed(tx, env, &e).await?,
            Inbound::ReferralCancelled(e) => cancelled(tx, env, &e).await?,
            Inbound::ReferralAppointmentSet(e) => {
                store::appointment_set(tx, &e).await?;
                store::under_way(tx, e.referral_id, seq, e.set_at).await?;
            }
            Inbound::ReferralAppointmentCancelled(e) => {
                store::appointment_cancelled(tx, &e).await?;
                store::under_way(tx, e.referral_id, seq, e.cancelled_at).await?;
            }
            Inbound::ReferralAttendanceRecorded(e) => {
                store::attendance(tx, &e).await?;
                store::under_way(tx, e.referral_id, seq, e.recorded_at).await?;
            }
            // How the person was told is the referrer's business, not a figure; a fresh
            // answer link changes nothing the coordinators see.
            Inbound::ReferralPersonNoticeFailed(_) | Inbound::ReferralAnswerLinkRequested(_) => {}
            Inbound::StructureUpserted(e) => store::upsert_structure(tx, &e.structure, seq).await?,
            Inbound::StructureRemoved(e) => store::remove_structure(tx, &e.structure_id, seq).await?,
            Inbound::CapacityChanged(e) => store::set_capacity(tx, &e, seq).await?,
            Inbound::OrganisationUpserted(e) => store::upsert_organisation(tx, &e).await?,
        }
        Ok(())
    }
}

async fn offered(tx: &mut PgConnection, env: &Envelope, e: &ReferralOffered) -> sqlx::Result<()> {
    store::offered(tx, e, env.sequence).await?;
    let m = Milestone {
        event_id: env.id,
        referral_id: e.referral_id,
        kind: "offered",
        structure_id: Some(&e.structure_id),
        reason: None,
        at: e.offered_at,
    };
    store::record(tx, m).await
}

async fn declined(tx: &mut PgConnection, env: &Envelope, e: &ReferralDeclined) -> sqlx::Result<()> {
    store::count_decline(tx, e.referral_id, e.reason == DeclineReason::StructureUnreachable).await?;
    store::back_to_matching(tx, e.referral_id, env.sequence, e.declined_at).await?;
    let m = Milestone {
        event_id: env.id,
        referral_id: e.referral_id,
        kind: "declined",
        structure_id: Some(&e.structure_id),
        reason: Some(e.reason.slug()),
        at: e.declined_at,
    };
    store::record(tx, m).await
}

async fn offer_expired(tx: &mut PgConnection, env: &Envelope, e: &ReferralOfferExpired) -> sqlx::Result<()> {
    store::count_expiry(tx, e.referral_id).await?;
    store::back_to_matching(tx, e.referral_id, env.sequence, e.expired_at).await?;
    let m = Milestone {
        event_id: env.id,
        referral_id: e.referral_id,
        kind: "expired",
        structure_id: Some(&e.structure_id),
        reason: None,
        at: e.expired_at,
    };
    store::record(tx, m).await
}

async fn rerouted(tx: &mut PgConnection, env: &Envelope, e: &ReferralRerouted) -> sqlx::Result<()> {
    store::back_to_matching(tx, e.referral_id, env.sequence, e.rerouted_at).await?;
    let m = Milestone {
        event_id: env.id,
        referral_id: e.referral_id,
        kind: "rerouted",
        structure_id: e.structure_id.as_ref(),
        reason: None,
        at: e.rerouted_at,
    };
    store::record(tx, m).await
}

/// Each waitlisting is kept, so that a month's figures can say who was waiting at its end.
async fn waitlisted(tx: &mut PgConnection, env: &Envelope, e: &ReferralWaitlisted) -> sqlx::Result<()> {
    store::waitlisted(tx, e, env.sequence).await?;
    let m = Milestone {
        event_id: env.id,
        referral_id: e.referral_id,
        kind: "waitlisted",
        structure_id: None,
        reason: Some(e.reason.slug()),
        at: e.waitlisted_at,
    };
    store::record(tx, m).await
}

async fn accepted(tx: &mut PgConnection, env: &Envelope, e: &ReferralAccepted) -> sqlx::Result<()> {
    store::accepted(tx, e, env.sequence).await?;
    let m = Milestone {
        event_id: env.id,
        referral_id: e.referral_id,
        kind: "accepted",
        structure_id: Some(&e.structure_id),
        reason: None,
        at: e.accepted_at,
    };
    store::record(tx, m).await
}

async fn contacted(tx: &mut PgConnection, env: &Envelope, e: &ReferralContacted) -> sqlx::Result<()> {
    store::contacted(tx, e, env.sequence).await?;
    let m = Milestone {
        event_id: env.id,
        referral_id: e.referral_id,
        kind: "contacted",
        structure_id: Some(&e.structure_id),
        reason: Some(e.kind.slug()),
        at: e.at,
    };
    store::record(tx, m).await
}

async fn closed(tx: &mut PgConnection, env: &Envelope, e: &ReferralClosed) -> sqlx::Result<()> {
    store::closed(tx, e, env.sequence).await?;
    let m = Milestone {
        event_id: env.id,
        referral_id: e.referral_id,
        kind: "closed",
        structure_id: Some(&e.structure_id),
        reason: Some(e.outcome.slug()),
        at: e.closed_at,
    };
    store::record(tx, m).await
}

async fn cancelled(tx: &mut PgConnection, env: &Envelope, e: &ReferralCancelled) -> sqlx::Result<()> {
    store::cancelled(tx, e, env.sequence).await?;
    let m = Milestone {
        event_id: env.id,
        referral_id: e.referral_id,
        kind: "cancelled",
        structure_id: e.structure_id.as_ref(),
        reason: Some(e.previous_status.slug()),
        at: e.cancelled_at,
    };
    store::record(tx, m).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_is_bound_to_exactly_the_events_it_knows() {
        assert_eq!(queue().mismatches::<Inbound>(), Vec::<String>::new());
    }

    #[test]
    fn every_referral_event_the_binding_brings_is_known_so_none_is_dead_lettered() {
        use contracts::EventSet;
        use contracts::events::{EventData, ReferralAnswerLinkRequested as Link, ReferralPersonNoticeFailed as Failed};
        for t in [
            ReferralAppointmentSet::TYPE,
            ReferralAppointmentCancelled::TYPE,
            ReferralAttendanceRecorded::TYPE,
            Failed::TYPE,
            Link::TYPE,
        ] {
            assert!(Inbound::TYPES.contains(&t), "{t}");
            assert!(queue().bindings.iter().any(|b| contracts::events::topic_matches(b, t)), "{t}");
        }
    }
}
