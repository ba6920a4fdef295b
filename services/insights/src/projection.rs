//! Turns every event into facts. Written to be order-insensitive: milestones keep the
//! earliest time, counters count each event once (the inbox sees to that), and the
//! current status comes from the event with the highest per-referral sequence.

use bus::{Handler, HandlerError, ServiceQueue};
use chrono::{DateTime, Utc};
use contracts::Envelope;
use contracts::events::{
    CapacityChanged, OrganisationUpserted, ReferralAccepted, ReferralCancelled, ReferralClosed, ReferralContacted,
    ReferralDeclined, ReferralOfferExpired, ReferralOffered, ReferralRerouted, ReferralSubmitted, ReferralWaitlisted,
    StructureRemoved, StructureUpserted,
};
use sqlx::PgConnection;
use uuid::Uuid;

pub fn queue() -> ServiceQueue {
    // Every fact comes from referral.* events; match.* decisions show up there too.
    ServiceQueue {
        service: crate::SERVICE,
        bindings: &["referral.*", "structure.*", "capacity.changed", "organisation.*"],
    }
}

pub struct Projector;

/// Runs an `UPDATE` of a referral's facts; when the event overtook `referral.submitted`
/// and there is no row yet, creates it and runs the update again.
macro_rules! apply {
    ($tx:expr, $id:expr, $query:expr) => {{
        if $query.execute(&mut *$tx).await?.rows_affected() == 0 {
            ensure($tx, $id).await?;
            $query.execute(&mut *$tx).await?;
        }
    }};
}

impl Handler for Projector {
    /// Only database writes, each checked against the event's sequence: safe to share a
    /// transaction with other messages.
    const BATCH: usize = 8;

    async fn handle(&self, tx: &mut PgConnection, env: &Envelope) -> Result<(), HandlerError> {
        let seq = env.sequence;
        match env.event_type.as_str() {
            "referral.submitted" => {
                let e: ReferralSubmitted = env.decode()?;
                let needs: Vec<String> = e.profile.needs.iter().map(ToString::to_string).collect();
                sqlx::query!(
                    "INSERT INTO insights.referrals (referral_id, organisation_id, territory, commune_code, needs, urgency,
                                                     submitted_at, status, status_sequence, status_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'submitted', $8, $7)
                     ON CONFLICT (referral_id) DO UPDATE SET
                        organisation_id = EXCLUDED.organisation_id, territory = EXCLUDED.territory,
                        commune_code = EXCLUDED.commune_code, needs = EXCLUDED.needs, urgency = EXCLUDED.urgency,
                        submitted_at = EXCLUDED.submitted_at",
                    e.referral_id,
                    e.organisation_id,
                    e.profile.territory,
                    e.profile.commune_code,
                    &needs,
                    e.profile.urgency.slug(),
                    e.submitted_at,
                    seq
                )
                .execute(&mut *tx)
                .await?;
            }
            "referral.offered" => {
                let e: ReferralOffered = env.decode()?;
                apply!(
                    tx,
                    e.referral_id,
                    sqlx::query!(
                        "UPDATE insights.referrals SET offers = offers + 1,
                        first_offered_at = LEAST(first_offered_at, $3),
                        current_structure = CASE WHEN $2 > status_sequence THEN $4 ELSE current_structure END,
                        current_offer_at = CASE WHEN $2 > status_sequence THEN $3 ELSE current_offer_at END,
                        status = CASE WHEN $2 > status_sequence THEN 'offered' ELSE status END,
                        status_at = CASE WHEN $2 > status_sequence THEN $3 ELSE status_at END,
                        status_sequence = GREATEST(status_sequence, $2)
                     WHERE referral_id = $1",
                        e.referral_id,
                        seq,
                        e.offered_at,
                        e.structure_id
                    )
                );
                record(tx, env.id, e.referral_id, "offered", Some(&e.structure_id), None, e.offered_at).await?;
            }
            "referral.declined" => {
                let e: ReferralDeclined = env.decode()?;
                apply!(
                    tx,
                    e.referral_id,
                    sqlx::query!(
                        "UPDATE insights.referrals SET declines = declines + 1 WHERE referral_id = $1",
                        e.referral_id
                    )
                );
                back_to_matching(tx, e.referral_id, seq, e.declined_at).await?;
                record(
                    tx,
                    env.id,
                    e.referral_id,
                    "declined",
                    Some(&e.structure_id),
                    Some(e.reason.slug()),
                    e.declined_at,
                )
                .await?;
            }
            "referral.offer_expired" => {
                let e: ReferralOfferExpired = env.decode()?;
                apply!(
                    tx,
                    e.referral_id,
                    sqlx::query!(
                        "UPDATE insights.referrals SET expiries = expiries + 1 WHERE referral_id = $1",
                        e.referral_id
                    )
                );
                back_to_matching(tx, e.referral_id, seq, e.expired_at).await?;
                record(tx, env.id, e.referral_id, "expired", Some(&e.structure_id), None, e.expired_at).await?;
            }
            "referral.rerouted" => {
                let e: ReferralRerouted = env.decode()?;
                back_to_matching(tx, e.referral_id, seq, e.rerouted_at).await?;
                record(tx, env.id, e.referral_id, "rerouted", e.structure_id.as_deref(), None, e.rerouted_at).await?;
            }
            "referral.waitlisted" => {
                let e: ReferralWaitlisted = env.decode()?;
                apply!(
                    tx,
                    e.referral_id,
                    sqlx::query!(
                        "UPDATE insights.referrals SET
                        waitlist_reason = CASE WHEN $2 > status_sequence THEN $3 ELSE waitlist_reason END,
                        escalated = CASE WHEN $2 > status_sequence THEN $4 ELSE escalated END,
                        waitlisted_at = CASE WHEN $2 > status_sequence THEN $5 ELSE waitlisted_at END,
                        current_structure = CASE WHEN $2 > status_sequence THEN NULL ELSE current_structure END,
                        status = CASE WHEN $2 > status_sequence THEN 'waitlisted' ELSE status END,
                        status_at = CASE WHEN $2 > status_sequence THEN $5 ELSE status_at END,
                        status_sequence = GREATEST(status_sequence, $2)
                     WHERE referral_id = $1",
                        e.referral_id,
                        seq,
                        e.reason.slug(),
                        e.escalated,
                        e.waitlisted_at
                    )
                );
            }
            "referral.accepted" => {
                let e: ReferralAccepted = env.decode()?;
                apply!(
                    tx,
                    e.referral_id,
                    sqlx::query!(
                        "UPDATE insights.referrals SET accepted_at = LEAST(accepted_at, $3), accepted_structure = $4,
                        current_structure = CASE WHEN $2 > status_sequence THEN NULL ELSE current_structure END,
                        status = CASE WHEN $2 > status_sequence THEN 'accepted' ELSE status END,
                        status_at = CASE WHEN $2 > status_sequence THEN $3 ELSE status_at END,
                        status_sequence = GREATEST(status_sequence, $2)
                     WHERE referral_id = $1",
                        e.referral_id,
                        seq,
                        e.accepted_at,
                        e.structure_id
                    )
                );
                record(tx, env.id, e.referral_id, "accepted", Some(&e.structure_id), None, e.accepted_at).await?;
            }
            "referral.contacted" => {
                let e: ReferralContacted = env.decode()?;
                apply!(
                    tx,
                    e.referral_id,
                    sqlx::query!(
                        "UPDATE insights.referrals SET first_contact_at = LEAST(first_contact_at, $3),
                        status = CASE WHEN $2 > status_sequence THEN 'in_progress' ELSE status END,
                        status_at = CASE WHEN $2 > status_sequence THEN $3 ELSE status_at END,
                        status_sequence = GREATEST(status_sequence, $2)
                     WHERE referral_id = $1",
                        e.referral_id,
                        seq,
                        e.at
                    )
                );
                record(tx, env.id, e.referral_id, "contacted", Some(&e.structure_id), Some(e.kind.slug()), e.at)
                    .await?;
            }
            "referral.closed" => {
                let e: ReferralClosed = env.decode()?;
                apply!(
                    tx,
                    e.referral_id,
                    sqlx::query!(
                        "UPDATE insights.referrals SET closed_at = $3, outcome = $4,
                        status = CASE WHEN $2 > status_sequence THEN 'closed' ELSE status END,
                        status_at = CASE WHEN $2 > status_sequence THEN $3 ELSE status_at END,
                        status_sequence = GREATEST(status_sequence, $2)
                     WHERE referral_id = $1",
                        e.referral_id,
                        seq,
                        e.closed_at,
                        e.outcome.slug()
                    )
                );
                record(tx, env.id, e.referral_id, "closed", Some(&e.structure_id), Some(e.outcome.slug()), e.closed_at)
                    .await?;
            }
            "referral.cancelled" => {
                let e: ReferralCancelled = env.decode()?;
                apply!(
                    tx,
                    e.referral_id,
                    sqlx::query!(
                        "UPDATE insights.referrals SET cancelled_at = $3,
                        current_structure = CASE WHEN $2 > status_sequence THEN NULL ELSE current_structure END,
                        status = CASE WHEN $2 > status_sequence THEN 'cancelled' ELSE status END,
                        status_at = CASE WHEN $2 > status_sequence THEN $3 ELSE status_at END,
                        status_sequence = GREATEST(status_sequence, $2)
                     WHERE referral_id = $1",
                        e.referral_id,
                        seq,
                        e.cancelled_at
                    )
                );
                record(
                    tx,
                    env.id,
                    e.referral_id,
                    "cancelled",
                    e.structure_id.as_deref(),
                    Some(e.previous_status.slug()),
                    e.cancelled_at,
                )
                .await?;
            }
            "structure.upserted" => {
                let e: StructureUpserted = env.decode()?;
                let s = e.structure;
                sqlx::query!(
                    "INSERT INTO insights.structures (id, name, territory, commune_code, lat, lon, weekly_capacity, accepting,
                                                      removed, source_sequence)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, false, $9)
                     ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, territory = EXCLUDED.territory,
                        commune_code = EXCLUDED.commune_code, lat = EXCLUDED.lat, lon = EXCLUDED.lon,
                        weekly_capacity = EXCLUDED.weekly_capacity, accepting = EXCLUDED.accepting, removed = false,
                        source_sequence = EXCLUDED.source_sequence
                     WHERE insights.structures.source_sequence < EXCLUDED.source_sequence",
                    s.id,
                    s.name,
                    s.territory,
                    s.address.commune_code,
                    s.location.lat,
                    s.location.lon,
                    s.weekly_capacity as i32,
                    s.accepting,
                    seq
                )
                .execute(&mut *tx)
                .await?;
            }
            "capacity.changed" => {
                let e: CapacityChanged = env.decode()?;
                sqlx::query!(
                    "UPDATE insights.structures SET weekly_capacity = $2, accepting = $3, source_sequence = $4
                     WHERE id = $1 AND source_sequence < $4",
                    e.structure_id,
                    e.weekly_capacity as i32,
                    e.accepting,
                    seq
                )
                .execute(&mut *tx)
                .await?;
            }
            "structure.removed" => {
                let e: StructureRemoved = env.decode()?;
                sqlx::query!(
                    "UPDATE insights.structures SET removed = true, source_sequence = $2 WHERE id = $1 AND source_sequence < $2",
                    e.structure_id,
                    seq
                )
                .execute(&mut *tx)
                .await?;
            }
            "organisation.upserted" => {
                let e: OrganisationUpserted = env.decode()?;
                sqlx::query!(
                    "INSERT INTO insights.organisations (id, name, kind, territory) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind, territory = EXCLUDED.territory",
                    e.organisation_id,
                    e.name,
                    e.kind.slug(),
                    e.territory
                )
                .execute(&mut *tx)
                .await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Makes sure a fact row exists when an event overtakes `referral.submitted`.
async fn ensure(tx: &mut PgConnection, referral_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("INSERT INTO insights.referrals (referral_id) VALUES ($1) ON CONFLICT DO NOTHING", referral_id)
        .execute(tx)
        .await?;
    Ok(())
}

/// After a decline, an expiry or a reroute the referral waits for the matcher again.
async fn back_to_matching(tx: &mut PgConnection, referral_id: Uuid, seq: i64, at: DateTime<Utc>) -> sqlx::Result<()> {
    apply!(
        tx,
        referral_id,
        sqlx::query!(
            "UPDATE insights.referrals SET
                current_structure = CASE WHEN $2 > status_sequence THEN NULL ELSE current_structure END,
                status = CASE WHEN $2 > status_sequence THEN 'submitted' ELSE status END,
                status_at = CASE WHEN $2 > status_sequence THEN $3 ELSE status_at END,
                status_sequence = GREATEST(status_sequence, $2)
             WHERE referral_id = $1",
            referral_id,
            seq,
            at
        )
    );
    Ok(())
}

async fn record(
    tx: &mut PgConnection,
    event_id: Uuid,
    referral_id: Uuid,
    kind: &str,
    structure_id: Option<&str>,
    reason: Option<&str>,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO insights.events (event_id, referral_id, kind, structure_id, reason, at) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (event_id) DO NOTHING",
        event_id,
        referral_id,
        kind,
        structure_id,
        reason,
        at
    )
    .execute(tx)
    .await?;
    Ok(())
}
