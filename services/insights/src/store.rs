//! SQL that writes the `insights` schema: the facts the projection derives from events.
//! Every update is order-insensitive: milestones keep the earliest time, and the current
//! status moves only for an event with a higher per-referral sequence than the last one
//! applied.

use chrono::{DateTime, Utc};
use contracts::events::{
    CapacityChanged, OrganisationUpserted, ReferralAccepted, ReferralAppointmentCancelled, ReferralAppointmentSet,
    ReferralAttendanceRecorded, ReferralCancelled, ReferralClosed, ReferralContacted, ReferralOffered,
    ReferralSubmitted, ReferralWaitlisted, Structure,
};
use contracts::{AnsweredVia, ReferralId, StructureId};
use sqlx::PgConnection;
use uuid::Uuid;

/// Runs an `UPDATE` of a referral's facts; when the event overtook `referral.submitted`
/// and there is no row yet, creates it and runs the update again.
macro_rules! apply {
    ($tx:expr, $id:expr, $query:expr) => {{
        if $query.execute(&mut *$tx).await?.rows_affected() == 0 {
            ensure($tx, $id).await?;
            $query.execute(&mut *$tx).await?;
        }
        Ok(())
    }};
}

/// Makes sure a fact row exists when an event overtakes `referral.submitted`.
async fn ensure(tx: &mut PgConnection, referral_id: ReferralId) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO insights.referrals (referral_id) VALUES ($1) ON CONFLICT DO NOTHING",
        referral_id.as_uuid()
    )
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn submitted(tx: &mut PgConnection, e: &ReferralSubmitted, seq: i64) -> sqlx::Result<()> {
    let needs: Vec<String> = e.profile.needs.iter().map(ToString::to_string).collect();
    sqlx::query!(
        "INSERT INTO insights.referrals (referral_id, organisation_id, territory, commune_code, needs, urgency,
                                         submitted_at, status, status_sequence, status_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'submitted', $8, $7)
         ON CONFLICT (referral_id) DO UPDATE SET
            organisation_id = EXCLUDED.organisation_id, territory = EXCLUDED.territory,
            commune_code = EXCLUDED.commune_code, needs = EXCLUDED.needs, urgency = EXCLUDED.urgency,
            submitted_at = EXCLUDED.submitted_at",
        e.referral_id.as_uuid(),
        e.organisation_id.as_uuid(),
        e.profile.territory.as_str(),
        e.profile.commune_code.as_str(),
        &needs,
        e.profile.urgency.slug(),
        e.submitted_at,
        seq
    )
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn offered(tx: &mut PgConnection, e: &ReferralOffered, seq: i64) -> sqlx::Result<()> {
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
            e.referral_id.as_uuid(),
            seq,
            e.offered_at,
            e.structure_id.as_str()
        )
    )
}

/// A decline; `withdrawn` when nobody could receive the offer (`structure_unreachable`),
/// which counts among declines too.
pub async fn count_decline(tx: &mut PgConnection, referral_id: ReferralId, withdrawn: bool) -> sqlx::Result<()> {
    apply!(
        tx,
        referral_id,
        sqlx::query!(
            "UPDATE insights.referrals SET declines = declines + 1,
                withdrawn_unreachable = withdrawn_unreachable + CASE WHEN $2 THEN 1 ELSE 0 END
             WHERE referral_id = $1",
            referral_id.as_uuid(),
            withdrawn
        )
    )
}

pub async fn count_expiry(tx: &mut PgConnection, referral_id: ReferralId) -> sqlx::Result<()> {
    apply!(
        tx,
        referral_id,
        sqlx::query!(
            "UPDATE insights.referrals SET expiries = expiries + 1 WHERE referral_id = $1",
            referral_id.as_uuid()
        )
    )
}

/// After a decline, an expiry or a reroute the referral waits for the matcher again.
pub async fn back_to_matching(
    tx: &mut PgConnection,
    referral_id: ReferralId,
    seq: i64,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
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
            referral_id.as_uuid(),
            seq,
            at
        )
    )
}

pub async fn waitlisted(tx: &mut PgConnection, e: &ReferralWaitlisted, seq: i64) -> sqlx::Result<()> {
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
            e.referral_id.as_uuid(),
            seq,
            e.reason.slug(),
            e.escalated,
            e.waitlisted_at
        )
    )
}

pub async fn accepted(tx: &mut PgConnection, e: &ReferralAccepted, seq: i64) -> sqlx::Result<()> {
    apply!(
        tx,
        e.referral_id,
        sqlx::query!(
            "UPDATE insights.referrals SET accepted_at = LEAST(accepted_at, $3), accepted_structure = $4,
                answered_via = COALESCE($5, answered_via),
                current_structure = CASE WHEN $2 > status_sequence THEN NULL ELSE current_structure END,
                status = CASE WHEN $2 > status_sequence THEN 'accepted' ELSE status END,
                status_at = CASE WHEN $2 > status_sequence THEN $3 ELSE status_at END,
                status_sequence = GREATEST(status_sequence, $2)
             WHERE referral_id = $1",
            e.referral_id.as_uuid(),
            seq,
            e.accepted_at,
            e.structure_id.as_str(),
            e.via.map(AnsweredVia::slug)
        )
    )
}

pub async fn contacted(tx: &mut PgConnection, e: &ReferralContacted, seq: i64) -> sqlx::Result<()> {
    apply!(
        tx,
        e.referral_id,
        sqlx::query!(
            "UPDATE insights.referrals SET first_contact_at = LEAST(first_contact_at, $3),
                status = CASE WHEN $2 > status_sequence THEN 'in_progress' ELSE status END,
                status_at = CASE WHEN $2 > status_sequence THEN $3 ELSE status_at END,
                status_sequence = GREATEST(status_sequence, $2)
             WHERE referral_id = $1",
            e.referral_id.as_uuid(),
            seq,
            e.at
        )
    )
}

pub async fn closed(tx: &mut PgConnection, e: &ReferralClosed, seq: i64) -> sqlx::Result<()> {
    apply!(
        tx,
        e.referral_id,
        sqlx::query!(
            "UPDATE insights.referrals SET closed_at = $3, outcome = $4,
                status = CASE WHEN $2 > status_sequence THEN 'closed' ELSE status END,
                status_at = CASE WHEN $2 > status_sequence THEN $3 ELSE status_at END,
                status_sequence = GREATEST(status_sequence, $2)
             WHERE referral_id = $1",
            e.referral_id.as_uuid(),
            seq,
            e.closed_at,
            e.outcome.slug()
        )
    )
}

pub async fn cancelled(tx: &mut PgConnection, e: &ReferralCancelled, seq: i64) -> sqlx::Result<()> {
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
            e.referral_id.as_uuid(),
            seq,
            e.cancelled_at
        )
    )
}

/// An appointment set, moved or cancelled, or an attendance recorded, puts the follow-up
/// under way (as in referrals' lifecycle): the referral is in progress unless a newer
/// event moved it on.
pub async fn under_way(
    tx: &mut PgConnection,
    referral_id: ReferralId,
    seq: i64,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    apply!(
        tx,
        referral_id,
        sqlx::query!(
            "UPDATE insights.referrals SET
                status = CASE WHEN $2 > status_sequence THEN 'in_progress' ELSE status END,
                status_at = CASE WHEN $2 > status_sequence THEN $3 ELSE status_at END,
                status_sequence = GREATEST(status_sequence, $2)
             WHERE referral_id = $1",
            referral_id.as_uuid(),
            seq,
            at
        )
    )
}

/// One version of a referral's appointment, kept once: a replay changes nothing, and
/// which version is the newest is read at query time, whatever the order of arrival.
pub async fn appointment_set(tx: &mut PgConnection, e: &ReferralAppointmentSet) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO insights.appointments (referral_id, version, kind, structure_id, at, changed_at)
         VALUES ($1, $2, 'set', $3, $4, $5) ON CONFLICT (referral_id, version) DO NOTHING",
        e.referral_id.as_uuid(),
        i64::from(e.version),
        e.structure_id.as_str(),
        e.at,
        e.set_at
    )
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn appointment_cancelled(tx: &mut PgConnection, e: &ReferralAppointmentCancelled) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO insights.appointments (referral_id, version, kind, structure_id, at, changed_at)
         VALUES ($1, $2, 'cancelled', $3, NULL, $4) ON CONFLICT (referral_id, version) DO NOTHING",
        e.referral_id.as_uuid(),
        i64::from(e.version),
        e.structure_id.as_str(),
        e.cancelled_at
    )
    .execute(tx)
    .await?;
    Ok(())
}

/// Whether the person came to the appointment at `appointment_at`: the record with the
/// highest version (then the latest) wins, so a correction replayed before the first
/// record is not undone by it.
pub async fn attendance(tx: &mut PgConnection, e: &ReferralAttendanceRecorded) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO insights.attendance (referral_id, appointment_at, version, structure_id, attended, recorded_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (referral_id, appointment_at) DO UPDATE SET version = EXCLUDED.version,
            structure_id = EXCLUDED.structure_id, attended = EXCLUDED.attended, recorded_at = EXCLUDED.recorded_at
         WHERE (EXCLUDED.version, EXCLUDED.recorded_at) > (insights.attendance.version, insights.attendance.recorded_at)",
        e.referral_id.as_uuid(),
        e.appointment_at,
        i64::from(e.version),
        e.structure_id.as_str(),
        e.attended,
        e.recorded_at
    )
    .execute(tx)
    .await?;
    Ok(())
}

/// One event of a referral's life (offer, decline, contact …), counted once.
pub struct Milestone<'a> {
    pub event_id: Uuid,
    pub referral_id: ReferralId,
    pub kind: &'static str,
    pub structure_id: Option<&'a StructureId>,
    pub reason: Option<&'static str>,
    pub at: DateTime<Utc>,
}

pub async fn record(tx: &mut PgConnection, m: Milestone<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO insights.events (event_id, referral_id, kind, structure_id, reason, at) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (event_id) DO NOTHING",
        m.event_id,
        m.referral_id.as_uuid(),
        m.kind,
        m.structure_id.map(StructureId::as_str),
        m.reason,
        m.at
    )
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn upsert_structure(tx: &mut PgConnection, s: &Structure, seq: i64) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO insights.structures (id, name, territory, commune_code, lat, lon, weekly_capacity, accepting,
                                          removed, source_sequence)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, false, $9)
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, territory = EXCLUDED.territory,
            commune_code = EXCLUDED.commune_code, lat = EXCLUDED.lat, lon = EXCLUDED.lon,
            weekly_capacity = EXCLUDED.weekly_capacity, accepting = EXCLUDED.accepting, removed = false,
            source_sequence = EXCLUDED.source_sequence
         WHERE insights.structures.source_sequence < EXCLUDED.source_sequence",
        s.id.as_str(),
        s.name,
        s.territory.as_str(),
        s.address.commune_code,
        s.location.lat,
        s.location.lon,
        s.weekly_capacity as i32,
        s.accepting,
        seq
    )
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn set_capacity(tx: &mut PgConnection, e: &CapacityChanged, seq: i64) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE insights.structures SET weekly_capacity = $2, accepting = $3, source_sequence = $4
         WHERE id = $1 AND source_sequence < $4",
        e.structure_id.as_str(),
        e.weekly_capacity as i32,
        e.accepting,
        seq
    )
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn remove_structure(tx: &mut PgConnection, id: &StructureId, seq: i64) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE insights.structures SET removed = true, source_sequence = $2 WHERE id = $1 AND source_sequence < $2",
        id.as_str(),
        seq
    )
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn upsert_organisation(tx: &mut PgConnection, e: &OrganisationUpserted) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO insights.organisations (id, name, kind, territory) VALUES ($1, $2, $3, $4)
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind, territory = EXCLUDED.territory",
        e.organisation_id.as_uuid(),
        e.name,
        e.kind.slug(),
        e.territory.as_str()
    )
    .execute(tx)
    .await?;
    Ok(())
}
