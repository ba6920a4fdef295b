//! What the matcher consumes and how it reacts. It publishes `match.proposed` and
//! `match.waitlisted` (see `routing`).

use std::sync::Arc;

use bus::{Handler, HandlerError, ServiceQueue};
use contracts::Envelope;
use contracts::ReferralId;
use contracts::WaitlistReason;
use contracts::events::{
    CapacityChanged, ReferralAccepted, ReferralCancelled, ReferralClosed, ReferralDeclined, ReferralOfferExpired,
    ReferralRerouted, ReferralSubmitted, StructureRemoved, StructureUpserted,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::SERVICE;
use crate::domain::engine::Tried;
use crate::domain::waitlist::{AfterOffer, after_offer};
use crate::routing::Matcher;
use crate::store::{self, ProfileState};

pub fn queue() -> ServiceQueue {
    ServiceQueue {
        service: SERVICE,
        bindings: &[
            "referral.submitted",
            "referral.declined",
            "referral.offer_expired",
            "referral.accepted",
            "referral.cancelled",
            "referral.closed",
            "referral.rerouted",
            "structure.*",
            "capacity.changed",
        ],
    }
}

contracts::event_set! {
    /// Every event the matcher's queue is bound to.
    pub enum Inbound {
        ReferralSubmitted,
        ReferralDeclined,
        ReferralOfferExpired,
        ReferralAccepted,
        ReferralCancelled,
        ReferralClosed,
        ReferralRerouted,
        StructureUpserted,
        StructureRemoved,
        CapacityChanged,
    }
}

pub struct MatcherHandler {
    pub matcher: Arc<Matcher>,
}

impl Handler for MatcherHandler {
    type Event = Inbound;

    async fn handle(&self, tx: &mut PgConnection, env: &Envelope, event: Inbound) -> Result<(), HandlerError> {
        match event {
            Inbound::ReferralSubmitted(e) => self.submitted(tx, env, e).await,
            Inbound::ReferralDeclined(e) => {
                self.offer_ended(tx, env, e.referral_id, e.reservation_id, Tried::Declined).await
            }
            Inbound::ReferralOfferExpired(e) => {
                self.offer_ended(tx, env, e.referral_id, e.reservation_id, Tried::Expired).await
            }
            Inbound::ReferralAccepted(e) => self.accepted(tx, e).await,
            Inbound::ReferralCancelled(e) => self.cancelled(tx, e).await,
            Inbound::ReferralClosed(e) => {
                store::insert_placeholder(&mut *tx, e.referral_id, ProfileState::Closed).await?;
                if let Some(mut p) = store::lock_profile(&mut *tx, e.referral_id).await? {
                    p.state = ProfileState::Closed;
                    store::save_profile(tx, &p).await?;
                }
                Ok(())
            }
            Inbound::ReferralRerouted(e) => self.rerouted(tx, env, e).await,
            Inbound::StructureUpserted(e) => {
                if store::upsert_structure(&mut *tx, &e.structure, env.sequence).await? {
                    store::request_rematch(tx, e.structure.id.as_str()).await?;
                }
                Ok(())
            }
            Inbound::StructureRemoved(e) => {
                store::remove_structure(tx, &e.structure_id, env.sequence).await?;
                Ok(())
            }
            Inbound::CapacityChanged(e) => {
                let id = &e.structure_id;
                if store::set_capacity(&mut *tx, id, e.weekly_capacity, e.accepting, env.sequence).await? {
                    store::request_rematch(tx, id).await?;
                }
                Ok(())
            }
        }
    }
}

impl MatcherHandler {
    async fn submitted(&self, tx: &mut PgConnection, env: &Envelope, e: ReferralSubmitted) -> Result<(), HandlerError> {
        let inserted =
            store::insert_profile(&mut *tx, e.referral_id, e.organisation_id, e.submitted_at, &e.profile).await?;
        let locked = match inserted {
            Some(p) => Some(p),
            None => store::lock_profile(&mut *tx, e.referral_id).await?,
        };
        let Some(mut p) = locked else { return Ok(()) };
        if p.state != ProfileState::Matching {
            // Already routed (redelivery) or cancelled before it reached us.
            return Ok(());
        }
        self.matcher.route(tx, &mut p, Some(env)).await?;
        Ok(())
    }

    /// A declined or expired offer: give the capacity back, then try the next structure,
    /// or escalate once enough were tried.
    async fn offer_ended(
        &self,
        tx: &mut PgConnection,
        env: &Envelope,
        referral_id: ReferralId,
        reservation_id: Uuid,
        outcome: Tried,
    ) -> Result<(), HandlerError> {
        if let Some(structure) = store::release(&mut *tx, reservation_id).await? {
            store::request_rematch(&mut *tx, structure.as_str()).await?;
        }
        let Some(mut p) = store::lock_profile(&mut *tx, referral_id).await? else { return Ok(()) };
        if p.current_reservation != Some(reservation_id) || p.state != ProfileState::Proposed {
            // About an offer that was already withdrawn: nothing more to do.
            return Ok(());
        }
        if let Some(s) = p.current_structure.take() {
            p.tried.insert(s.into_string(), outcome);
        }
        p.current_reservation = None;
        p.state = ProfileState::Matching;
        match after_offer(p.attempts, self.matcher.max_attempts) {
            AfterOffer::Escalate => {
                self.matcher.waitlist(tx, &mut p, WaitlistReason::AttemptsExhausted, true, Some(env)).await?
            }
            AfterOffer::Rematch => {
                self.matcher.route(tx, &mut p, Some(env)).await?;
            }
        }
        Ok(())
    }

    async fn accepted(&self, tx: &mut PgConnection, e: ReferralAccepted) -> Result<(), HandlerError> {
        store::consume(&mut *tx, e.reservation_id).await?;
        if let Some(mut p) = store::lock_profile(&mut *tx, e.referral_id).await?
            && p.current_reservation == Some(e.reservation_id)
        {
            p.state = ProfileState::Accepted;
            store::save_profile(tx, &p).await?;
        }
        Ok(())
    }

    async fn cancelled(&self, tx: &mut PgConnection, e: ReferralCancelled) -> Result<(), HandlerError> {
        store::insert_placeholder(&mut *tx, e.referral_id, ProfileState::Cancelled).await?;
        let Some(mut p) = store::lock_profile(&mut *tx, e.referral_id).await? else { return Ok(()) };
        let reservations = [e.reservation_id, p.current_reservation];
        for r in reservations.into_iter().flatten() {
            if let Some(structure) = store::release(&mut *tx, r).await? {
                store::request_rematch(&mut *tx, structure.as_str()).await?;
            }
        }
        p.state = ProfileState::Cancelled;
        p.current_reservation = None;
        p.current_structure = None;
        store::save_profile(tx, &p).await?;
        Ok(())
    }

    async fn rerouted(&self, tx: &mut PgConnection, env: &Envelope, e: ReferralRerouted) -> Result<(), HandlerError> {
        let Some(mut p) = store::lock_profile(&mut *tx, e.referral_id).await? else {
            return Err(HandlerError::Transient(anyhow::anyhow!("reroute before the referral reached the matcher")));
        };
        if p.round >= e.round
            || matches!(p.state, ProfileState::Cancelled | ProfileState::Closed | ProfileState::Accepted)
        {
            return Ok(());
        }
        for r in [e.withdrawn_reservation_id, p.current_reservation].into_iter().flatten() {
            if let Some(structure) = store::release(&mut *tx, r).await? {
                store::request_rematch(&mut *tx, structure.as_str()).await?;
            }
        }
        if let Some(s) = p.current_structure.take() {
            p.tried.insert(s.into_string(), Tried::Withdrawn);
        }
        p.current_reservation = None;
        p.round = e.round;
        p.state = ProfileState::Matching;
        match e.structure_id {
            Some(structure_id) => {
                self.matcher.route_to(tx, &mut p, &structure_id, e.force, Some(env)).await?;
            }
            None => {
                p.attempts = 0;
                p.escalated = false;
                self.matcher.route(tx, &mut p, Some(env)).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_is_bound_to_exactly_the_events_it_knows() {
        assert_eq!(queue().mismatches::<Inbound>(), Vec::<String>::new());
    }
}
