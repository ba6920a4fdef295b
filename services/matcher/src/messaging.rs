//! What the matcher consumes and how it reacts. It publishes `match.proposed` and
//! `match.waitlisted` (see `routing`).

use std::sync::Arc;

use bus::{Handler, HandlerError, ServiceQueue};
use contracts::Envelope;
use contracts::WaitlistReason;
use contracts::events::{
    CapacityChanged, ReferralAccepted, ReferralCancelled, ReferralClosed, ReferralDeclined, ReferralOfferExpired,
    ReferralRerouted, ReferralSubmitted, StructureRemoved, StructureUpserted,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::SERVICE;
use crate::domain::waitlist::{AfterOffer, after_offer};
use crate::routing::Matcher;
use crate::store::{self, state};

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

pub struct MatcherHandler {
    pub matcher: Arc<Matcher>,
}

impl Handler for MatcherHandler {
    async fn handle(&self, tx: &mut PgConnection, env: &Envelope) -> Result<(), HandlerError> {
        match env.event_type.as_str() {
            "referral.submitted" => self.submitted(tx, env, env.decode()?).await,
            "referral.declined" => {
                let e: ReferralDeclined = env.decode()?;
                self.offer_ended(tx, env, e.referral_id, e.reservation_id, "declined").await
            }
            "referral.offer_expired" => {
                let e: ReferralOfferExpired = env.decode()?;
                self.offer_ended(tx, env, e.referral_id, e.reservation_id, "expired").await
            }
            "referral.accepted" => self.accepted(tx, env.decode()?).await,
            "referral.cancelled" => self.cancelled(tx, env.decode()?).await,
            "referral.closed" => {
                let e: ReferralClosed = env.decode()?;
                store::insert_placeholder(&mut *tx, e.referral_id, state::CLOSED).await?;
                if let Some(mut p) = store::lock_profile(&mut *tx, e.referral_id).await? {
                    p.state = state::CLOSED.to_string();
                    store::save_profile(tx, &p).await?;
                }
                Ok(())
            }
            "referral.rerouted" => self.rerouted(tx, env, env.decode()?).await,
            "structure.upserted" => {
                let e: StructureUpserted = env.decode()?;
                if store::upsert_structure(&mut *tx, &e.structure, env.sequence).await? {
                    store::request_rematch(tx, &e.structure.id).await?;
                }
                Ok(())
            }
            "structure.removed" => {
                let e: StructureRemoved = env.decode()?;
                store::remove_structure(tx, &e.structure_id, env.sequence).await?;
                Ok(())
            }
            "capacity.changed" => {
                let e: CapacityChanged = env.decode()?;
                if store::set_capacity(&mut *tx, &e.structure_id, e.weekly_capacity, e.accepting, env.sequence).await? {
                    store::request_rematch(tx, &e.structure_id).await?;
                }
                Ok(())
            }
            _ => Ok(()),
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
        if p.state != state::MATCHING {
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
        referral_id: Uuid,
        reservation_id: Uuid,
        outcome: &str,
    ) -> Result<(), HandlerError> {
        if let Some(structure) = store::release(&mut *tx, reservation_id).await? {
            store::request_rematch(&mut *tx, &structure).await?;
        }
        let Some(mut p) = store::lock_profile(&mut *tx, referral_id).await? else { return Ok(()) };
        if p.current_reservation != Some(reservation_id) || p.state != state::PROPOSED {
            // About an offer that was already withdrawn: nothing more to do.
            return Ok(());
        }
        if let Some(s) = p.current_structure.take() {
            p.tried.insert(s, outcome.to_string());
        }
        p.current_reservation = None;
        p.state = state::MATCHING.to_string();
        match after_offer(p.attempts.max(0) as u32, self.matcher.max_attempts) {
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
            p.state = state::ACCEPTED.to_string();
            store::save_profile(tx, &p).await?;
        }
        Ok(())
    }

    async fn cancelled(&self, tx: &mut PgConnection, e: ReferralCancelled) -> Result<(), HandlerError> {
        store::insert_placeholder(&mut *tx, e.referral_id, state::CANCELLED).await?;
        let Some(mut p) = store::lock_profile(&mut *tx, e.referral_id).await? else { return Ok(()) };
        let reservations = [e.reservation_id, p.current_reservation];
        for r in reservations.into_iter().flatten() {
            if let Some(structure) = store::release(&mut *tx, r).await? {
                store::request_rematch(&mut *tx, &structure).await?;
            }
        }
        p.state = state::CANCELLED.to_string();
        p.current_reservation = None;
        p.current_structure = None;
        store::save_profile(tx, &p).await?;
        Ok(())
    }

    async fn rerouted(&self, tx: &mut PgConnection, env: &Envelope, e: ReferralRerouted) -> Result<(), HandlerError> {
        let Some(mut p) = store::lock_profile(&mut *tx, e.referral_id).await? else {
            return Err(HandlerError::Transient(anyhow::anyhow!("reroute before the referral reached the matcher")));
        };
        if p.round >= e.round as i32 || matches!(p.state.as_str(), state::CANCELLED | state::CLOSED | state::ACCEPTED) {
            return Ok(());
        }
        for r in [e.withdrawn_reservation_id, p.current_reservation].into_iter().flatten() {
            if let Some(structure) = store::release(&mut *tx, r).await? {
                store::request_rematch(&mut *tx, &structure).await?;
            }
        }
        if let Some(s) = p.current_structure.take() {
            p.tried.insert(s, "withdrawn".to_string());
        }
        p.current_reservation = None;
        p.round = e.round as i32;
        p.state = state::MATCHING.to_string();
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
