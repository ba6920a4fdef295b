//! SQL for the `matcher` schema.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use contracts::events::{MatchingProfile, Point, Structure};
use contracts::{CommuneCode, Language, OrganisationId, ReferralId, StructureId, Territory, WaitlistReason};
use platform::row::{Columns, RowError};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::engine::{Demand, Tried};
use crate::domain::index::IndexedStructure;
use crate::domain::reach::Reach;

/// A referral as the matcher sees it.
#[derive(Debug, Clone)]
pub struct Profile {
    pub referral_id: ReferralId,
    pub state: ProfileState,
    pub organisation_id: Option<OrganisationId>,
    pub territory: Option<Territory>,
    pub commune_code: Option<CommuneCode>,
    /// What the person needs; `None` while the profile is a placeholder for an event
    /// that overtook `referral.submitted`.
    pub demand: Option<Demand>,
    pub deadline: Option<NaiveDate>,
    pub submitted_at: Option<DateTime<Utc>>,
    /// Offers made since the last reroute.
    pub attempts: u32,
    /// Structures already tried, with what happened there: never offered again.
    pub tried: HashMap<String, Tried>,
    pub round: u32,
    pub current_structure: Option<StructureId>,
    pub current_reservation: Option<Uuid>,
    pub waitlist_reason: Option<WaitlistReason>,
    pub escalated: bool,
    pub sequence: i64,
}

/// Where a referral stands in matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileState {
    Matching,
    Proposed,
    Waitlisted,
    Accepted,
    Closed,
    Cancelled,
}

impl ProfileState {
    pub fn slug(self) -> &'static str {
        match self {
            ProfileState::Matching => "matching",
            ProfileState::Proposed => "proposed",
            ProfileState::Waitlisted => "waitlisted",
            ProfileState::Accepted => "accepted",
            ProfileState::Closed => "closed",
            ProfileState::Cancelled => "cancelled",
        }
    }
}

impl std::str::FromStr for ProfileState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| format!("unknown state `{s}`"))
    }
}

struct ProfileRow {
    referral_id: Uuid,
    state: String,
    organisation_id: Option<Uuid>,
    commune_code: Option<String>,
    territory: Option<String>,
    lat: Option<f64>,
    lon: Option<f64>,
    needs: Option<Vec<String>>,
    modes: Option<Vec<String>>,
    languages: Option<Vec<String>>,
    accessibility: Option<Vec<String>>,
    urgency: Option<String>,
    deadline: Option<NaiveDate>,
    max_distance_km: Option<f64>,
    submitted_at: Option<DateTime<Utc>>,
    attempts: i32,
    tried: serde_json::Value,
    round: i32,
    current_structure: Option<String>,
    current_reservation: Option<Uuid>,
    waitlist_reason: Option<String>,
    escalated: bool,
    sequence: i64,
}

const PROFILES: &str = "matcher.profiles";

impl TryFrom<ProfileRow> for Profile {
    type Error = RowError;

    fn try_from(r: ProfileRow) -> Result<Self, RowError> {
        let c = Columns::of(PROFILES, r.referral_id);
        // A profile is a placeholder (every matching column null) until its submission
        // arrives; after that, every matching column must be there and parse.
        let demand = match r.needs {
            None => None,
            Some(needs) => Some(Demand {
                location: Point { lat: c.required("lat", r.lat)?, lon: c.required("lon", r.lon)? },
                needs: c.non_empty_set("needs", &needs)?,
                modes: c.non_empty_set("modes", &c.required("modes", r.modes)?)?,
                languages: c.set::<Language>("languages", &c.required("languages", r.languages)?)?,
                accessibility: c.set("accessibility", &c.required("accessibility", r.accessibility)?)?,
                max_distance_km: c.required("max_distance_km", r.max_distance_km)?,
                urgency: c.parse("urgency", &c.required("urgency", r.urgency)?)?,
            }),
        };
        Ok(Profile {
            referral_id: r.referral_id.into(),
            state: c.parse("state", &r.state)?,
            organisation_id: r.organisation_id.map(OrganisationId::from),
            territory: c.parse_opt("territory", r.territory.as_deref())?,
            commune_code: c.parse_opt("commune_code", r.commune_code.as_deref())?,
            demand,
            deadline: r.deadline,
            submitted_at: r.submitted_at,
            attempts: c.int("attempts", r.attempts)?,
            tried: c.json("tried", r.tried)?,
            round: c.int("round", r.round)?,
            current_structure: c.parse_opt("current_structure", r.current_structure.as_deref())?,
            current_reservation: r.current_reservation,
            waitlist_reason: c.parse_opt("waitlist_reason", r.waitlist_reason.as_deref())?,
            escalated: r.escalated,
            sequence: r.sequence,
        })
    }
}

fn profile_of(row: ProfileRow) -> sqlx::Result<Profile> {
    Ok(Profile::try_from(row)?)
}

fn slugs<T: std::fmt::Display>(values: &[T]) -> Vec<String> {
    values.iter().map(ToString::to_string).collect()
}

/// Records a submitted referral and returns it, locked. A profile that already exists
/// (a redelivery, or a cancellation that overtook the submission) is left alone and
/// `None` is returned.
pub async fn insert_profile(
    conn: &mut PgConnection,
    referral_id: ReferralId,
    organisation_id: OrganisationId,
    submitted_at: DateTime<Utc>,
    p: &MatchingProfile,
) -> sqlx::Result<Option<Profile>> {
    let row = sqlx::query_as!(
        ProfileRow,
        "INSERT INTO matcher.profiles (referral_id, state, organisation_id, commune_code, territory, lat, lon, needs,
                                       modes, languages, accessibility, urgency, deadline, max_distance_km, submitted_at)
         VALUES ($1, 'matching', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (referral_id) DO UPDATE SET
            organisation_id = EXCLUDED.organisation_id, commune_code = EXCLUDED.commune_code,
            territory = EXCLUDED.territory, lat = EXCLUDED.lat, lon = EXCLUDED.lon, needs = EXCLUDED.needs,
            modes = EXCLUDED.modes, languages = EXCLUDED.languages, accessibility = EXCLUDED.accessibility,
            urgency = EXCLUDED.urgency, deadline = EXCLUDED.deadline, max_distance_km = EXCLUDED.max_distance_km,
            submitted_at = EXCLUDED.submitted_at
         WHERE matcher.profiles.needs IS NULL
         RETURNING referral_id, state, organisation_id, commune_code, territory, lat, lon, needs, modes, languages,
                   accessibility, urgency, deadline, max_distance_km, submitted_at, attempts, tried, round,
                   current_structure, current_reservation, waitlist_reason, escalated, sequence",
        referral_id.as_uuid(),
        organisation_id.as_uuid(),
        p.commune_code.as_str(),
        p.territory.as_str(),
        p.location.lat,
        p.location.lon,
        &slugs(&p.needs),
        &slugs(&p.modes),
        &slugs(&p.languages),
        &slugs(&p.accessibility),
        p.urgency.slug(),
        p.deadline,
        p.max_distance_km,
        submitted_at,
    )
    .fetch_optional(conn)
    .await?;
    row.map(profile_of).transpose()
}

/// A profile for an event that overtook `referral.submitted`; the submission fills it in.
pub async fn insert_placeholder(
    conn: &mut PgConnection,
    referral_id: ReferralId,
    state: ProfileState,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO matcher.profiles (referral_id, state) VALUES ($1, $2) ON CONFLICT (referral_id) DO NOTHING",
        referral_id.as_uuid(),
        state.slug()
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The profile, locked until the end of the transaction.
pub async fn lock_profile(conn: &mut PgConnection, referral_id: ReferralId) -> sqlx::Result<Option<Profile>> {
    let row = sqlx::query_as!(
        ProfileRow,
        "SELECT referral_id, state, organisation_id, commune_code, territory, lat, lon, needs, modes, languages,
                accessibility, urgency, deadline, max_distance_km, submitted_at, attempts, tried, round,
                current_structure, current_reservation, waitlist_reason, escalated, sequence
         FROM matcher.profiles WHERE referral_id = $1 FOR UPDATE",
        referral_id.as_uuid()
    )
    .fetch_optional(conn)
    .await?;
    row.map(profile_of).transpose()
}

pub async fn profile(conn: &mut PgConnection, referral_id: ReferralId) -> sqlx::Result<Option<Profile>> {
    let row = sqlx::query_as!(
        ProfileRow,
        "SELECT referral_id, state, organisation_id, commune_code, territory, lat, lon, needs, modes, languages,
                accessibility, urgency, deadline, max_distance_km, submitted_at, attempts, tried, round,
                current_structure, current_reservation, waitlist_reason, escalated, sequence
         FROM matcher.profiles WHERE referral_id = $1",
        referral_id.as_uuid()
    )
    .fetch_optional(conn)
    .await?;
    row.map(profile_of).transpose()
}

/// Writes back what matching changed.
pub async fn save_profile(conn: &mut PgConnection, p: &Profile) -> sqlx::Result<()> {
    let waitlisted = p.state == ProfileState::Waitlisted;
    sqlx::query!(
        "UPDATE matcher.profiles SET state = $2, attempts = $3, tried = $4, round = $5, current_structure = $6,
                current_reservation = $7, waitlist_reason = $8, escalated = $9, sequence = $10,
                waitlisted_at = CASE WHEN $11 THEN COALESCE(waitlisted_at, now()) ELSE NULL END, updated_at = now()
         WHERE referral_id = $1",
        p.referral_id.as_uuid(),
        p.state.slug(),
        p.attempts as i32,
        serde_json::json!(p.tried),
        p.round as i32,
        p.current_structure.as_ref().map(StructureId::as_str),
        p.current_reservation,
        p.waitlist_reason.map(WaitlistReason::slug),
        p.escalated,
        p.sequence,
        waitlisted,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Waiting referrals that matching may retry on its own (escalated ones wait for a
/// coordinator), in priority order: urgent first, then nearest deadline, then oldest.
pub async fn waitlist(conn: &mut PgConnection) -> sqlx::Result<Vec<Profile>> {
    let rows = sqlx::query_as!(
        ProfileRow,
        "SELECT referral_id, state, organisation_id, commune_code, territory, lat, lon, needs, modes, languages,
                accessibility, urgency, deadline, max_distance_km, submitted_at, attempts, tried, round,
                current_structure, current_reservation, waitlist_reason, escalated, sequence
         FROM matcher.profiles WHERE state = 'waitlisted' AND NOT escalated
         ORDER BY (urgency = 'urgent') DESC, deadline ASC NULLS LAST, submitted_at, referral_id"
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(profile_of).collect()
}

/// Bumps the structure clock; the value is the version of this change.
async fn tick(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar!("UPDATE matcher.structure_clock SET value = value + 1 WHERE id = 1 RETURNING value")
        .fetch_one(conn)
        .await
}

pub async fn clock(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar!("SELECT value FROM matcher.structure_clock WHERE id = 1").fetch_one(conn).await
}

/// A public contact detail as the matcher keeps it: trimmed, absent when blank.
fn contact_detail(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|v| !v.is_empty())
}

/// Applies a structure record unless a newer one is already stored. Returns whether it
/// changed anything. A new public e-mail address clears an earlier one's bounce; the
/// caller recomputes reachability ([`refresh_reachability`]).
pub async fn upsert_structure(conn: &mut PgConnection, s: &Structure, source_sequence: i64) -> sqlx::Result<bool> {
    let newer: Option<i64> =
        sqlx::query_scalar!("SELECT source_sequence FROM matcher.structures WHERE id = $1 FOR UPDATE", s.id.as_str())
            .fetch_optional(&mut *conn)
            .await?;
    if newer.is_some_and(|seq| seq >= source_sequence) {
        return Ok(false);
    }
    let version = tick(conn).await?;
    let email = contact_detail(s.contact.email.as_deref());
    sqlx::query!(
        "INSERT INTO matcher.structures (id, name, territory, lat, lon, services, modes, languages, other_languages,
                                         accessibility, opening_hours, weekly_capacity, accepting, removed,
                                         source_sequence, version, contact_known, contact_email, contact_phone,
                                         email_set_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, false, $14, $15, true, $16, $17,
                 CASE WHEN $16::text IS NULL THEN NULL ELSE $18::timestamptz END)
         ON CONFLICT (id) DO UPDATE SET
            name = EXCLUDED.name, territory = EXCLUDED.territory, lat = EXCLUDED.lat, lon = EXCLUDED.lon,
            services = EXCLUDED.services, modes = EXCLUDED.modes, languages = EXCLUDED.languages,
            other_languages = EXCLUDED.other_languages, accessibility = EXCLUDED.accessibility,
            opening_hours = EXCLUDED.opening_hours, weekly_capacity = EXCLUDED.weekly_capacity,
            accepting = EXCLUDED.accepting, removed = false, source_sequence = EXCLUDED.source_sequence,
            version = EXCLUDED.version, contact_known = true, contact_email = EXCLUDED.contact_email,
            contact_phone = EXCLUDED.contact_phone,
            email_set_at = CASE
                WHEN NOT matcher.structures.contact_known
                  OR lower(matcher.structures.contact_email) IS DISTINCT FROM lower(EXCLUDED.contact_email)
                THEN EXCLUDED.email_set_at ELSE matcher.structures.email_set_at END,
            unreachable_since = CASE
                WHEN matcher.structures.contact_known
                 AND lower(matcher.structures.contact_email) IS DISTINCT FROM lower(EXCLUDED.contact_email)
                THEN NULL ELSE matcher.structures.unreachable_since END",
        s.id.as_str(),
        s.name,
        s.territory.as_str(),
        s.location.lat,
        s.location.lon,
        &slugs(&s.services),
        &slugs(&s.modes),
        &slugs(&s.languages),
        s.other_languages,
        &slugs(&s.accessibility),
        s.opening_hours,
        s.weekly_capacity as i32,
        s.accepting,
        source_sequence,
        version,
        email,
        contact_detail(s.contact.phone.as_deref()),
        s.updated_at,
    )
    .execute(conn)
    .await?;
    Ok(true)
}

/// Applies a capacity change unless a newer change is already stored.
pub async fn set_capacity(
    conn: &mut PgConnection,
    id: &StructureId,
    capacity: u32,
    accepting: bool,
    source_sequence: i64,
) -> sqlx::Result<bool> {
    let current: Option<i64> =
        sqlx::query_scalar!("SELECT source_sequence FROM matcher.structures WHERE id = $1 FOR UPDATE", id.as_str())
            .fetch_optional(&mut *conn)
            .await?;
    match current {
        Some(seq) if seq < source_sequence => {}
        _ => return Ok(false),
    }
    let version = tick(conn).await?;
    sqlx::query!(
        "UPDATE matcher.structures SET weekly_capacity = $2, accepting = $3, source_sequence = $4, version = $5 WHERE id = $1",
        id.as_str(),
        capacity as i32,
        accepting,
        source_sequence,
        version
    )
    .execute(conn)
    .await?;
    Ok(true)
}

pub async fn remove_structure(conn: &mut PgConnection, id: &StructureId, source_sequence: i64) -> sqlx::Result<bool> {
    let current: Option<i64> =
        sqlx::query_scalar!("SELECT source_sequence FROM matcher.structures WHERE id = $1 FOR UPDATE", id.as_str())
            .fetch_optional(&mut *conn)
            .await?;
    match current {
        Some(seq) if seq < source_sequence => {}
        _ => return Ok(false),
    }
    let version = tick(conn).await?;
    sqlx::query!(
        "UPDATE matcher.structures SET removed = true, accepting = false, source_sequence = $2, version = $3 WHERE id = $1",
        id.as_str(),
        source_sequence,
        version
    )
    .execute(conn)
    .await?;
    Ok(true)
}

/// A change to the structure read model, for the in-memory index.
pub enum StructureChange {
    Upsert(Box<IndexedStructure>),
    Remove(StructureId),
}

/// Every change after `version`, and the version they bring the index to.
pub async fn structure_changes(conn: &mut PgConnection, version: i64) -> sqlx::Result<(Vec<StructureChange>, i64)> {
    let rows = sqlx::query!(
        "SELECT id, name, territory, lat, lon, services, modes, languages, other_languages, accessibility,
                opening_hours, weekly_capacity, accepting, removed, version, reachable, contact_phone
         FROM matcher.structures WHERE version > $1 ORDER BY version",
        version
    )
    .fetch_all(conn)
    .await?;
    let mut latest = version;
    let mut changes = Vec::with_capacity(rows.len());
    for r in rows {
        latest = latest.max(r.version);
        let c = Columns::of("matcher.structures", &r.id);
        let Ok(id) = r.id.parse::<StructureId>() else {
            tracing::error!(error = %c.error("id", "is not a structure id"), "structure left out of matching");
            continue;
        };
        if r.removed {
            changes.push(StructureChange::Remove(id));
            continue;
        }
        // One unreadable structure must not stop matching for everyone: it is left out
        // of the index (never offered), and the log names it.
        let indexed = (|| {
            Ok::<_, RowError>(IndexedStructure {
                id: id.clone(),
                name: r.name,
                territory: c.parse("territory", &r.territory)?,
                location: Point { lat: r.lat, lon: r.lon },
                services: c.non_empty_set("services", &r.services)?,
                modes: c.set("modes", &r.modes)?,
                languages: c.set("languages", &r.languages)?,
                other_languages: r.other_languages,
                accessibility: c.set("accessibility", &r.accessibility)?,
                weekly_capacity: c.int("weekly_capacity", r.weekly_capacity)?,
                accepting: r.accepting,
                opening_hours: c.parse_opt("opening_hours", r.opening_hours.as_deref())?,
                reachable: r.reachable,
                phone: r.contact_phone,
            })
        })();
        match indexed {
            Ok(s) => changes.push(StructureChange::Upsert(Box::new(s))),
            Err(err) => {
                tracing::error!(error = %err, "structure left out of matching");
                changes.push(StructureChange::Remove(id));
            }
        }
    }
    Ok((changes, latest))
}

/// Capacity used this week by each of `ids`.
pub async fn usage(conn: &mut PgConnection, ids: &[String], week: &str) -> sqlx::Result<HashMap<String, u32>> {
    let rows = sqlx::query!(
        "SELECT structure_id, used FROM matcher.capacity_usage WHERE week = $1 AND structure_id = ANY($2)",
        week,
        ids
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            let used = Columns::of("matcher.capacity_usage", &r.structure_id).int("used", r.used)?;
            Ok((r.structure_id, used))
        })
        .collect()
}

/// Takes one unit of a structure's capacity this week, atomically: the conditional
/// update re-checks the capacity after waiting for any concurrent reservation of the
/// same structure, so replicas never overbook. `force` ignores the capacity (a
/// coordinator's explicit choice).
pub async fn reserve(
    conn: &mut PgConnection,
    structure_id: &StructureId,
    week: &str,
    force: bool,
) -> sqlx::Result<bool> {
    // One statement: the first reservation of the week inserts the counter, the others
    // update it; the conditional update waits for, then re-checks against, any
    // concurrent reservation of the same structure.
    let reserved = sqlx::query_scalar!(
        "INSERT INTO matcher.capacity_usage AS u (structure_id, week, used)
         SELECT s.id, $2, 1 FROM matcher.structures s
         WHERE s.id = $1 AND NOT s.removed AND ($3 OR (s.accepting AND s.weekly_capacity > 0))
         ON CONFLICT (structure_id, week) DO UPDATE SET used = u.used + 1
         WHERE $3 OR u.used < (SELECT s.weekly_capacity FROM matcher.structures s
                               WHERE s.id = u.structure_id AND s.accepting AND NOT s.removed)
         RETURNING u.used",
        structure_id.as_str(),
        week,
        force
    )
    .fetch_optional(conn)
    .await?;
    Ok(reserved.is_some())
}

pub async fn insert_reservation(
    conn: &mut PgConnection,
    id: Uuid,
    referral_id: ReferralId,
    structure_id: &StructureId,
    week: &str,
    forced: bool,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO matcher.reservations (id, referral_id, structure_id, week, state, forced) VALUES ($1, $2, $3, $4, 'held', $5)",
        id,
        referral_id.as_uuid(),
        structure_id.as_str(),
        week,
        forced
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Gives a held reservation back. Returns the structure whose capacity grew, once: a
/// second release of the same reservation does nothing.
pub async fn release(conn: &mut PgConnection, reservation_id: Uuid) -> sqlx::Result<Option<StructureId>> {
    let released = sqlx::query!(
        "UPDATE matcher.reservations SET state = 'released', settled_at = now()
         WHERE id = $1 AND state = 'held' RETURNING structure_id, week",
        reservation_id
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(r) = released else { return Ok(None) };
    sqlx::query!(
        "UPDATE matcher.capacity_usage SET used = used - 1 WHERE structure_id = $1 AND week = $2 AND used > 0",
        r.structure_id,
        r.week
    )
    .execute(conn)
    .await?;
    Ok(Some(Columns::of("matcher.reservations", reservation_id).parse("structure_id", &r.structure_id)?))
}

/// Acceptance turns the reservation into consumed capacity.
pub async fn consume(conn: &mut PgConnection, reservation_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE matcher.reservations SET state = 'consumed', settled_at = now() WHERE id = $1 AND state = 'held'",
        reservation_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Asks the waitlist worker to look at a structure once this transaction commits.
pub async fn request_rematch(conn: &mut PgConnection, structure_id: &str) -> sqlx::Result<()> {
    sqlx::query!("INSERT INTO matcher.pending_rematch (structure_id) VALUES ($1)", structure_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query!("SELECT pg_notify('matcher_rematch', '')").execute(conn).await?;
    Ok(())
}

/// Takes one pending re-match request (and every duplicate of it), locked for this
/// transaction.
pub async fn claim_rematch(conn: &mut PgConnection) -> sqlx::Result<Option<String>> {
    let claimed = sqlx::query_scalar!(
        "DELETE FROM matcher.pending_rematch WHERE id = (
            SELECT id FROM matcher.pending_rematch ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING structure_id"
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(s) = &claimed {
        // Requests for the same structure are answered by this one run.
        sqlx::query!(
            "DELETE FROM matcher.pending_rematch WHERE id IN (
                SELECT id FROM matcher.pending_rematch WHERE structure_id = $1 FOR UPDATE SKIP LOCKED)",
            s
        )
        .execute(conn)
        .await?;
    }
    Ok(claimed)
}

pub async fn fact(conn: &mut PgConnection, key: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!("SELECT value FROM matcher.facts WHERE key = $1 FOR UPDATE", key).fetch_optional(conn).await
}

pub async fn set_fact(conn: &mut PgConnection, key: &str, value: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO matcher.facts (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        key,
        value
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Locks these structures' rows, in id order (so that two transactions locking several
/// never wait for each other in a cycle), until the end of the transaction.
pub async fn lock_structures(conn: &mut PgConnection, ids: &[String]) -> sqlx::Result<()> {
    sqlx::query_scalar!("SELECT id FROM matcher.structures WHERE id = ANY($1) ORDER BY id FOR UPDATE", ids)
        .fetch_all(conn)
        .await?;
    Ok(())
}

struct ReachRow {
    id: String,
    reachable: bool,
    reach: Reach,
}

/// What decides whether each of these structures (every one when `None`) is reachable.
async fn reach_rows(conn: &mut PgConnection, ids: Option<&[String]>) -> sqlx::Result<Vec<ReachRow>> {
    let rows = sqlx::query!(
        r#"SELECT s.id, s.reachable, s.contact_known, s.contact_email IS NOT NULL AS "has_email!",
                  s.unreachable_since IS NOT NULL AS "email_bounced!",
                  (SELECT max(m.last_signed_in_at) FROM matcher.mediators m WHERE m.structure_id = s.id)
                      AS mediator_signed_in_at
           FROM matcher.structures s
           WHERE NOT s.removed AND ($1::text[] IS NULL OR s.id = ANY($1))
           ORDER BY s.id"#,
        ids
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| ReachRow {
            id: r.id,
            reachable: r.reachable,
            reach: Reach {
                contact_known: r.contact_known,
                has_email: r.has_email,
                email_bounced: r.email_bounced,
                mediator_signed_in_at: r.mediator_signed_in_at,
            },
        })
        .collect())
}

/// Recomputes whether structures are reachable now, and stores each flip with a new
/// version, so that every process's index reloads it. `Some(ids)`: these structures,
/// which the caller has locked ([`lock_structures`]) before changing what decides it.
/// `None`: every structure, as time passes; a flip is locked and checked again before it
/// is written, so it never undoes a concurrent change. A structure that became reachable
/// gets its waiting referrals looked at once this commits ([`request_rematch`]), as when
/// capacity appears. Returns how many became reachable.
pub async fn refresh_reachability(
    conn: &mut PgConnection,
    ids: Option<&[String]>,
    now: DateTime<Utc>,
    active_within: Duration,
) -> sqlx::Result<usize> {
    let flips = |rows: Vec<ReachRow>| -> Vec<(String, bool)> {
        rows.into_iter()
            .filter_map(|r| {
                let reachable = r.reach.reachable(now, active_within);
                (reachable != r.reachable).then_some((r.id, reachable))
            })
            .collect()
    };
    let mut flipped = flips(reach_rows(&mut *conn, ids).await?);
    if flipped.is_empty() {
        return Ok(0);
    }
    if ids.is_none() {
        let candidates: Vec<String> = flipped.into_iter().map(|(id, _)| id).collect();
        lock_structures(&mut *conn, &candidates).await?;
        flipped = flips(reach_rows(&mut *conn, Some(&candidates)).await?);
        if flipped.is_empty() {
            return Ok(0);
        }
    }
    let version = tick(&mut *conn).await?;
    let (up, down): (Vec<_>, Vec<_>) = flipped.into_iter().partition(|(_, reachable)| *reachable);
    for (ids, reachable) in [(&up, true), (&down, false)] {
        if ids.is_empty() {
            continue;
        }
        let ids: Vec<String> = ids.iter().map(|(id, _)| id.clone()).collect();
        sqlx::query!(
            "UPDATE matcher.structures SET reachable = $2, version = $3 WHERE id = ANY($1)",
            &ids,
            reachable,
            version
        )
        .execute(&mut *conn)
        .await?;
        tracing::info!(structures = ids.len(), reachable, "reachability changed");
    }
    for (id, _) in &up {
        request_rematch(&mut *conn, id).await?;
    }
    Ok(up.len())
}

/// The structure's public address refused an offer's e-mail for good, `at` that time.
/// Ignored when the directory gave a new address after that: the bounce was the old one's.
pub async fn mark_unreachable(conn: &mut PgConnection, id: &StructureId, at: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE matcher.structures SET unreachable_since = COALESCE(unreachable_since, $2)
         WHERE id = $1 AND (email_set_at IS NULL OR email_set_at <= $2)",
        id.as_str(),
        at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// An active mediator answers for these structures: an earlier bounce no longer counts.
pub async fn clear_unreachable(conn: &mut PgConnection, ids: &[String]) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE matcher.structures SET unreachable_since = NULL WHERE id = ANY($1) AND unreachable_since IS NOT NULL",
        ids
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// An account's mediator memberships in force, and its last sign-in.
pub struct AccountMediators<'a> {
    pub account_id: Uuid,
    pub structures: Vec<&'a StructureId>,
    pub last_signed_in_at: Option<DateTime<Utc>>,
}

/// Keeps an account's announcement unless a newer one is already here (`removed`: it
/// was purged, it holds no membership). Returns the structures whose mediators changed
/// (before and after), or `None` for an older announcement.
pub async fn account_announced(
    conn: &mut PgConnection,
    a: &AccountMediators<'_>,
    sequence: i64,
) -> sqlx::Result<Option<Vec<String>>> {
    let newer = sqlx::query_scalar!(
        "INSERT INTO matcher.accounts (account_id, sequence) VALUES ($1, $2)
         ON CONFLICT (account_id) DO UPDATE SET sequence = EXCLUDED.sequence
         WHERE matcher.accounts.sequence < EXCLUDED.sequence
         RETURNING account_id",
        a.account_id,
        sequence
    )
    .fetch_optional(&mut *conn)
    .await?;
    if newer.is_none() {
        return Ok(None);
    }
    let mut affected =
        sqlx::query_scalar!("DELETE FROM matcher.mediators WHERE account_id = $1 RETURNING structure_id", a.account_id)
            .fetch_all(&mut *conn)
            .await?;
    let structures: Vec<String> = a.structures.iter().map(|s| s.to_string()).collect();
    sqlx::query!(
        "INSERT INTO matcher.mediators (account_id, structure_id, last_signed_in_at)
         SELECT $1, s, $3 FROM unnest($2::text[]) s ON CONFLICT DO NOTHING",
        a.account_id,
        &structures,
        a.last_signed_in_at
    )
    .execute(&mut *conn)
    .await?;
    affected.extend(structures);
    affected.sort();
    affected.dedup();
    Ok(Some(affected))
}
