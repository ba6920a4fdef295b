//! What `referrals` consumes: the matcher's decisions, and structure records (for the
//! accepting structure's name and contact). It publishes `referral.*` (see `lifecycle`).

use std::time::Duration;

use bus::{Handler, HandlerError, ServiceQueue};
use contracts::Envelope;
use contracts::events::{MatchProposed, MatchWaitlisted, StructureUpserted};
use sqlx::PgConnection;

use crate::lifecycle::{self, StepError};
use crate::store;

contracts::event_set! {
    /// Every event the referrals queue is bound to.
    pub enum Inbound { MatchProposed, MatchWaitlisted, StructureUpserted }
}

pub fn queue() -> ServiceQueue {
    ServiceQueue { service: crate::SERVICE, bindings: &["match.*", "structure.upserted"] }
}

pub struct ReferralsHandler {
    pub offer_ttl: Duration,
}

impl Handler for ReferralsHandler {
    type Event = Inbound;

    /// Only database writes, each checked against the event's sequence: safe to share a
    /// transaction with other messages.
    const BATCH: usize = 8;

    async fn handle(&self, tx: &mut PgConnection, env: &Envelope, event: Inbound) -> Result<(), HandlerError> {
        match event {
            Inbound::MatchProposed(m) => {
                let Some(mut r) = store::lock(&mut *tx, m.referral_id).await? else { return Ok(()) };
                if !lifecycle::is_current(&r, m.round, env.sequence) {
                    return Ok(());
                }
                r.match_sequence = env.sequence;
                match lifecycle::offer(&mut *tx, &mut r, &m, self.offer_ttl, env).await {
                    Ok(()) => {}
                    // Cancelled (or otherwise moved on) meanwhile: the matcher releases the
                    // reservation when it sees the cancellation.
                    Err(StepError::NotAllowed(_) | StepError::Conflict(_)) => store::update(tx, &r).await?,
                    Err(StepError::Database(e)) => return Err(e.into()),
                }
            }
            Inbound::MatchWaitlisted(m) => {
                let Some(mut r) = store::lock(&mut *tx, m.referral_id).await? else { return Ok(()) };
                if !lifecycle::is_current(&r, m.round, env.sequence) {
                    return Ok(());
                }
                r.match_sequence = env.sequence;
                match lifecycle::waitlist(&mut *tx, &mut r, &m, env).await {
                    Ok(()) => {}
                    Err(StepError::NotAllowed(_) | StepError::Conflict(_)) => store::update(tx, &r).await?,
                    Err(StepError::Database(e)) => return Err(e.into()),
                }
            }
            Inbound::StructureUpserted(e) => store::upsert_structure(tx, &e.structure, env.sequence).await?,
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
