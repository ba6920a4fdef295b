//! What the matcher consumes and how it reacts. It publishes `match.proposed` and
//! `match.waitlisted` (see `routing`). From accounts it learns only who is a mediator of
//! which structure and when they last signed in: whether someone there would see an offer.

use std::sync::Arc;

use bus::{Handler, HandlerError, ServiceQueue};
use chrono::Utc;
use contracts::events::{
    AccountRemoved, AccountUpserted, CapacityChanged, ReferralAccepted, ReferralCancelled, ReferralClosed,
    ReferralDeclined, ReferralOfferExpired, ReferralRerouted, ReferralSubmitted, StructureRemoved, StructureUpserted,
};
use contracts::{DeclineReason, Envelope, ReferralId, Role, StructureId, WaitlistReason};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::SERVICE;
use crate::domain::engine::Tried;
use crate::domain::reach::mediator_active;
use crate::domain::waitlist::{AfterOffer, after_offer};
use crate::routing::Matcher;
use crate::store::{self, AccountMediators, ProfileState};

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
            "account.*",
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
        AccountUpserted,
        AccountRemoved,
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
                self.offer_ended(tx, env, e.referral_id, e.reservation_id, Tried::Declined).await?;
                if e.reason == DeclineReason::StructureUnreachable {
                    // Notify withdrew the offer: the structure's address refused its e-mail
                    // for good. After routing, which reads the index of committed changes.
                    self.bounced(tx, &e.structure_id, e.declined_at).await?;
                }
                Ok(())
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
                    // The upsert holds the row's lock. A new address may make it reachable.
                    self.refresh(tx, &[e.structure.id.to_string()]).await?;
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
            Inbound::AccountUpserted(e) => {
                let structures = e
                    .memberships
                    .iter()
                    .filter(|m| m.role == Role::Mediator)
                    .filter_map(|m| m.structure_id.as_ref())
                    .collect();
                let account =
                    AccountMediators { account_id: e.account_id, structures, last_signed_in_at: e.last_signed_in_at };
                self.account(tx, &account, env.sequence).await
            }
            Inbound::AccountRemoved(e) => {
                let account =
                    AccountMediators { account_id: e.account_id, structures: Vec::new(), last_signed_in_at: None };
                self.account(tx, &account, env.sequence).await
            }
        }
    }
}

impl MatcherHandler {
    /// Recomputes whether these structures (locked by the caller) are reachable; the
    /// waitlist worker looks at those that became so, as after a capacity increase.
    async fn refresh(&self, tx: &mut PgConnection, ids: &[String]) -> Result<(), HandlerError> {
        store::refresh_reachability(tx, Some(ids), Utc::now(), self.matcher.active_within).await?;
        Ok(())
    }

    /// A newer announcement of an account changes who the mediators of its structures are
    /// (before and after) and when they last signed in. An active mediator answers for
    /// their structures: an earlier bounce of its address no longer counts.
    async fn account(
        &self,
        tx: &mut PgConnection,
        account: &AccountMediators<'_>,
        sequence: i64,
    ) -> Result<(), HandlerError> {
        let Some(affected) = store::account_announced(&mut *tx, account, sequence).await? else { return Ok(()) };
        if affected.is_empty() {
            return Ok(());
        }
        store::lock_structures(&mut *tx, &affected).await?;
        if mediator_active(account.last_signed_in_at, Utc::now(), self.matcher.active_within) {
            let theirs: Vec<String> = account.structures.iter().map(|s| s.to_string()).collect();
            store::clear_unreachable(&mut *tx, &theirs).await?;
        }
        self.refresh(tx, &affected).await
    }

    /// The structure's public address refused an offer's e-mail for good.
    async fn bounced(
        &self,
        tx: &mut PgConnection,
        structure: &StructureId,
        at: chrono::DateTime<Utc>,
    ) -> Result<(), HandlerError> {
        let ids = [structure.to_string()];
        store::lock_structures(&mut *tx, &ids).await?;
        store::mark_unreachable(&mut *tx, structure, at).await?;
        self.refresh(tx, &ids).await
    }

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
