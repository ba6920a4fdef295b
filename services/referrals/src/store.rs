//! SQL for the `referrals` schema.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use contracts::events::{Point, Structure};
use contracts::explain::Reason;
use contracts::{
    Accessibility, Actor, AnsweredVia, AuditAction, CommuneCode, ContactPreference, HistoryStep, Language, Need,
    OrganisationId, Outcome, ReferralId, ReferralMode, ReferralStatus, StructureId, Territory, Urgency, WaitlistReason,
};
use platform::row::{Columns, RowError};
use platform::vault::{Vault, VaultError};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::referral::NewReferral;

/// One referral as stored (no personal data: that is in [`PersonRow`]). Private: the
/// rest of the service sees only [`Referral`], whose every field is typed.
#[derive(sqlx::FromRow)]
struct ReferralRecord {
    id: Uuid,
    organisation_id: Uuid,
    status: String,
    territory: String,
    commune_code: String,
    lat: f64,
    lon: f64,
    needs: Vec<String>,
    modes: Vec<String>,
    languages: Vec<String>,
    accessibility: Vec<String>,
    urgency: String,
    deadline: Option<NaiveDate>,
    max_distance_km: f64,
    attempts: i32,
    escalated: bool,
    waitlist_reason: Option<String>,
    round: i32,
    match_sequence: i64,
    offer_structure_id: Option<String>,
    offer_structure_name: Option<String>,
    offer_reservation_id: Option<Uuid>,
    offered_at: Option<DateTime<Utc>>,
    offer_expires_at: Option<DateTime<Utc>>,
    offer_distance_km: Option<f64>,
    offer_score: Option<f64>,
    offer_explanation: Option<serde_json::Value>,
    structure_id: Option<String>,
    structure_name: Option<String>,
    accepted_at: Option<DateTime<Utc>>,
    outcome: Option<String>,
    closed_at: Option<DateTime<Utc>>,
    event_sequence: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    status_changed_at: DateTime<Utc>,
    submitted_by: Option<Uuid>,
    offer_reasons: Option<serde_json::Value>,
}

/// One referral (no personal data: that is in [`PersonRow`]).
#[derive(Debug, Clone)]
pub struct Referral {
    pub id: ReferralId,
    pub organisation_id: OrganisationId,
    pub status: ReferralStatus,
    pub territory: Territory,
    pub commune_code: CommuneCode,
    pub location: Point,
    pub needs: Vec<Need>,
    pub modes: Vec<ReferralMode>,
    pub languages: Vec<Language>,
    pub accessibility: Vec<Accessibility>,
    pub urgency: Urgency,
    pub deadline: Option<NaiveDate>,
    pub max_distance_km: f64,
    /// Offers made so far, over every routing round.
    pub attempts: u32,
    pub escalated: bool,
    pub waitlist_reason: Option<WaitlistReason>,
    pub round: u32,
    pub match_sequence: i64,
    /// The pending offer: present exactly while the referral is offered.
    pub offer: Option<Offer>,
    /// The structure that accepted.
    pub structure_id: Option<StructureId>,
    pub structure_name: Option<String>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub outcome: Option<Outcome>,
    pub closed_at: Option<DateTime<Utc>>,
    pub event_sequence: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub status_changed_at: DateTime<Utc>,
    /// The account of the agent who submitted it, if one did.
    pub submitted_by: Option<Uuid>,
}

/// A pending offer to a structure.
#[derive(Debug, Clone)]
pub struct Offer {
    pub structure_id: StructureId,
    pub structure_name: String,
    pub reservation_id: Uuid,
    pub offered_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub distance_km: f64,
    pub score: f64,
    pub explanation: Vec<String>,
    pub reasons: Vec<Reason>,
}

const REFERRALS: &str = "referrals.referrals";

impl TryFrom<ReferralRecord> for Referral {
    type Error = RowError;

    fn try_from(r: ReferralRecord) -> Result<Self, RowError> {
        let c = Columns::of(REFERRALS, r.id);
        let status: ReferralStatus = c.parse("status", &r.status)?;
        let offer = match r.offer_structure_id {
            None => None,
            Some(structure_id) => Some(Offer {
                structure_id: c.parse("offer_structure_id", &structure_id)?,
                structure_name: c.required("offer_structure_name", r.offer_structure_name)?,
                reservation_id: c.required("offer_reservation_id", r.offer_reservation_id)?,
                offered_at: c.required("offered_at", r.offered_at)?,
                expires_at: c.required("offer_expires_at", r.offer_expires_at)?,
                distance_km: c.required("offer_distance_km", r.offer_distance_km)?,
                score: c.required("offer_score", r.offer_score)?,
                explanation: c.json("offer_explanation", c.required("offer_explanation", r.offer_explanation)?)?,
                // Offers made before reasons were recorded have none.
                reasons: match r.offer_reasons {
                    None => Vec::new(),
                    Some(v) => c.json("offer_reasons", v)?,
                },
            }),
        };
        if (status == ReferralStatus::Offered) != offer.is_some() {
            return Err(c.error(
                "offer_structure_id",
                format!("an offer must be present exactly while offered, and the status is {status}"),
            ));
        }
        let structure_id = c.parse_opt("structure_id", r.structure_id.as_deref())?;
        if matches!(status, ReferralStatus::Accepted | ReferralStatus::InProgress | ReferralStatus::Closed)
            && structure_id.is_none()
        {
            return Err(c.error("structure_id", format!("is null, but the referral is {status}")));
        }
        Ok(Referral {
            id: r.id.into(),
            organisation_id: r.organisation_id.into(),
            status,
            territory: c.parse("territory", &r.territory)?,
            commune_code: c.parse("commune_code", &r.commune_code)?,
            location: Point { lat: r.lat, lon: r.lon },
            needs: c.non_empty_set("needs", &r.needs)?,
            modes: c.non_empty_set("modes", &r.modes)?,
            languages: c.set("languages", &r.languages)?,
            accessibility: c.set("accessibility", &r.accessibility)?,
            urgency: c.parse("urgency", &r.urgency)?,
            deadline: r.deadline,
            max_distance_km: r.max_distance_km,
            attempts: c.int("attempts", r.attempts)?,
            escalated: r.escalated,
            waitlist_reason: c.parse_opt("waitlist_reason", r.waitlist_reason.as_deref())?,
            round: c.int("round", r.round)?,
            match_sequence: r.match_sequence,
            offer,
            structure_id,
            structure_name: r.structure_name,
            accepted_at: r.accepted_at,
            outcome: c.parse_opt("outcome", r.outcome.as_deref())?,
            closed_at: r.closed_at,
            event_sequence: r.event_sequence,
            created_at: r.created_at,
            updated_at: r.updated_at,
            status_changed_at: r.status_changed_at,
            submitted_by: r.submitted_by,
        })
    }
}

fn typed(record: ReferralRecord) -> sqlx::Result<Referral> {
    Ok(Referral::try_from(record)?)
}

/// A persons row as stored: every personal field sealed (see [`open`]).
struct PersonRecord {
    referral_id: Uuid,
    first_name: Vec<u8>,
    last_name: Vec<u8>,
    phone: Option<Vec<u8>>,
    email: Option<Vec<u8>>,
    contact_preference: String,
    commune_name: String,
    note: Option<Vec<u8>>,
    consent_method: Option<String>,
    consent_at: Option<DateTime<Utc>>,
    key_id: Option<i32>,
}

/// Where a sealed value lives: what its associated data binds it to.
pub fn place(table_column: &str, row: impl std::fmt::Display) -> String {
    format!("{table_column}:{row}")
}

fn vault_error(err: VaultError) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(err))
}

/// Opens a sealed value of `place`. A row with no key id (`legacy`) holds the plain
/// text of a database migrated from before encryption, until the service seals it.
async fn open(
    conn: &mut PgConnection,
    vault: &Vault,
    legacy: bool,
    place: &str,
    sealed: &[u8],
) -> sqlx::Result<String> {
    if legacy {
        return String::from_utf8(sealed.to_vec()).map_err(|e| sqlx::Error::Decode(Box::new(e)));
    }
    match vault.open_value(place, sealed) {
        Err(VaultError::UnknownKey(_)) => {
            vault.reload(&mut *conn).await.map_err(vault_error)?;
            vault.open_value(place, sealed).map_err(vault_error)
        }
        other => other.map_err(vault_error),
    }
}

async fn open_opt(
    conn: &mut PgConnection,
    vault: &Vault,
    legacy: bool,
    place: &str,
    sealed: Option<&[u8]>,
) -> sqlx::Result<Option<String>> {
    match sealed {
        None => Ok(None),
        Some(s) => Ok(Some(open(conn, vault, legacy, place, s).await?)),
    }
}

async fn open_person(conn: &mut PgConnection, vault: &Vault, p: PersonRecord) -> sqlx::Result<PersonRow> {
    let id = p.referral_id;
    let legacy = p.key_id.is_none();
    let c = Columns::of("referrals.persons", id);
    Ok(PersonRow {
        contact_preference: c.parse("contact_preference", &p.contact_preference)?,
        first_name: open(conn, vault, legacy, &place("persons.first_name", id), &p.first_name).await?,
        last_name: open(conn, vault, legacy, &place("persons.last_name", id), &p.last_name).await?,
        phone: open_opt(conn, vault, legacy, &place("persons.phone", id), p.phone.as_deref()).await?,
        email: open_opt(conn, vault, legacy, &place("persons.email", id), p.email.as_deref()).await?,
        commune_name: p.commune_name,
        note: open_opt(conn, vault, legacy, &place("persons.note", id), p.note.as_deref()).await?,
        consent_method: p.consent_method,
        consent_at: p.consent_at,
    })
}

/// The blind index of a phone number (E.164, as stored).
pub fn phone_key(vault: &Vault, phone: &str) -> Vec<u8> {
    vault.blind_index("phone", phone.trim())
}

/// The blind index of an e-mail address (compared case-insensitively).
pub fn email_key(vault: &Vault, email: &str) -> Vec<u8> {
    vault.blind_index("email", &email.trim().to_lowercase())
}

pub struct PersonRow {
    pub first_name: String,
    pub last_name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub contact_preference: ContactPreference,
    pub commune_name: String,
    pub note: Option<String>,
    pub consent_method: Option<String>,
    pub consent_at: Option<DateTime<Utc>>,
}

impl PersonRow {
    pub fn from_new(r: &NewReferral) -> Self {
        Self {
            first_name: r.person.first_name.expose().clone(),
            last_name: r.person.last_name.expose().clone(),
            phone: r.person.phone.expose().clone(),
            email: r.person.email.expose().clone(),
            contact_preference: r.person.contact_preference,
            commune_name: r.commune_name.clone(),
            note: r.note.expose().clone(),
            consent_method: r.consent.method.clone(),
            consent_at: r.consent.at,
        }
    }
}

struct HistoryRecord {
    id: i64,
    at: DateTime<Utc>,
    step: String,
    status: String,
    structure_id: Option<String>,
    reason: Option<String>,
    actor: Option<String>,
    comment: Option<Vec<u8>>,
    key_id: Option<i32>,
    detail: serde_json::Value,
}

pub struct HistoryRow {
    pub at: DateTime<Utc>,
    pub step: HistoryStep,
    /// The referral's status after the step.
    pub status: ReferralStatus,
    pub structure_id: Option<StructureId>,
    /// A vocabulary slug whose vocabulary depends on the step (a decline reason, an
    /// outcome, a contact kind, a waitlist reason, the status a cancellation left).
    pub reason: Option<String>,
    pub actor: Option<Actor>,
    pub comment: Option<String>,
    /// How a structure took the step, when through the link of its e-mail (kept in the
    /// detail's `via`).
    pub via: Option<AnsweredVia>,
    /// The step's other facts.
    pub detail: serde_json::Value,
}

/// The detail's key that says a step was taken through an answer link.
const VIA: &str = "via";

async fn open_history(conn: &mut PgConnection, vault: &Vault, h: HistoryRecord) -> sqlx::Result<HistoryRow> {
    let c = Columns::of("referrals.history", h.id);
    let comment =
        open_opt(conn, vault, h.key_id.is_none(), &place("history.comment", h.id), h.comment.as_deref()).await?;
    let mut detail = h.detail;
    let via = match detail.as_object_mut().and_then(|d| d.remove(VIA)) {
        None => None,
        Some(v) => Some(c.parse("detail", v.as_str().unwrap_or_default())?),
    };
    Ok(HistoryRow {
        at: h.at,
        step: c.parse("step", &h.step)?,
        status: c.parse("status", &h.status)?,
        structure_id: c.parse_opt("structure_id", h.structure_id.as_deref())?,
        reason: h.reason,
        actor: c.parse_opt("actor", h.actor.as_deref())?,
        comment,
        via,
        detail,
    })
}

impl HistoryRow {
    pub fn submitted(at: DateTime<Utc>, actor: &Actor) -> Self {
        Self {
            at,
            step: HistoryStep::Submitted,
            status: ReferralStatus::Submitted,
            structure_id: None,
            reason: None,
            actor: Some(actor.clone()),
            comment: None,
            via: None,
            detail: serde_json::json!({}),
        }
    }
}

/// One step of a referral's history.
#[derive(Debug)]
pub struct Step<'a> {
    pub step: HistoryStep,
    pub structure_id: Option<&'a StructureId>,
    pub reason: Option<&'a str>,
    pub actor: Option<&'a Actor>,
    pub comment: Option<&'a str>,
    pub detail: Option<serde_json::Value>,
}

impl Step<'_> {
    pub fn new(step: HistoryStep) -> Self {
        Self { step, structure_id: None, reason: None, actor: None, comment: None, detail: None }
    }
}

/// How many of a person's newest referrals, by phone number and by e-mail address each,
/// the possible-duplicates lookup reads at most (see [`submit`]).
pub const DUPLICATES_LOOKBACK: i64 = 200;

/// What a submission stored.
pub struct Submitted {
    pub referral: Referral,
    /// Open referrals of the same organisation about the same phone number or e-mail
    /// address (compared through their blind indexes), newest first, at most ten, found
    /// among the person's [`DUPLICATES_LOOKBACK`] newest referrals by each.
    pub possible_duplicates: Vec<ReferralId>,
}

/// What [`submit`] stores.
#[derive(Clone, Copy)]
pub struct Submission<'a> {
    pub id: ReferralId,
    pub organisation_id: OrganisationId,
    pub submitted_by: Option<Uuid>,
    pub referral: &'a NewReferral,
    /// The submission's time, the one its event carries.
    pub at: DateTime<Utc>,
    pub audit: &'a crate::privacy::Entry,
    /// `referral.submitted`, for the outbox.
    pub event: &'a bus::Outgoing,
}

#[derive(sqlx::FromRow)]
struct SubmittedRecord {
    #[sqlx(flatten)]
    referral: ReferralRecord,
    possible_duplicates: Vec<Uuid>,
}

/// Stores a new referral with its sealed person, its first step, its audit entry and its
/// first event (`referral.submitted`, sequence 1, in the outbox), and finds the possible
/// duplicates, in one statement. One statement is atomic by itself: without an
/// Idempotency-Key the submission is one round trip, not BEGIN, the statements and
/// COMMIT (on a busy machine each round trip costs more than its statement).
///
/// The sub-statements see the database as it was before the statement, so the new
/// person is not among its own duplicates. The duplicates start from the persons with
/// the same keyed hash, through their indexes, and reach each referral by its key
/// (`LATERAL`, kept a nested loop by its `LIMIT 1`): left to itself, the planner may walk
/// or hash the organisation's referrals looking for ten matches, which, when there are
/// none (nearly always), reads every one of them (seen at 100/s: 1,400 index probes per
/// referral).
///
/// Their cost does not grow with the person's history: the lookup reads only the
/// person's [`DUPLICATES_LOOKBACK`] newest referrals by phone and as many by e-mail
/// (index only, newest id first), and reaches them newest first, stopping at the tenth
/// open one of the organisation. A person submitted again and again (a client retrying
/// without an Idempotency-Key, a loop) costs about ten probes; one whose newest
/// referrals are all closed or elsewhere costs at most twice the lookback. The answer is
/// the full one unless the person has more referrals than the lookback under one key
/// and fewer than ten open ones of the organisation among the newest: an older open one
/// is then not listed. "Newest" is by id, i.e. by creation time to the millisecond.
pub async fn submit(conn: &mut PgConnection, vault: &Vault, submission: &Submission<'_>) -> sqlx::Result<Submitted> {
    let Submission { id, organisation_id, submitted_by, referral: r, at, audit, event } = *submission;
    let p = &r.person;
    let sealed = SealedPerson::seal(
        vault,
        id,
        &PersonFields {
            first_name: p.first_name.expose(),
            last_name: p.last_name.expose(),
            phone: p.phone.expose().as_deref(),
            email: p.email.expose().as_deref(),
            contact_preference: p.contact_preference,
            note: r.note.expose().as_deref(),
        },
    );
    // Runtime, not `query_as!`: the macro cannot flatten the referral's row beside its
    // duplicates, and `woke` is a column only so that pg_notify runs. Binds are typed.
    let record: SubmittedRecord = sqlx::query_as(
        "WITH same AS (
             SELECT DISTINCT referral_id FROM (
                 (SELECT referral_id FROM referrals.persons WHERE phone_key = $18 ORDER BY referral_id DESC LIMIT $40)
                 UNION ALL
                 (SELECT referral_id FROM referrals.persons WHERE email_key = $19 ORDER BY referral_id DESC LIMIT $40)
             ) keyed
         ),
         duplicates AS (
             SELECT o.id, o.created_at FROM (SELECT referral_id FROM same ORDER BY referral_id DESC) newest
             CROSS JOIN LATERAL (
                 SELECT id, created_at FROM referrals.referrals
                 WHERE id = newest.referral_id AND organisation_id = $2 AND status NOT IN ('closed', 'cancelled')
                 LIMIT 1
             ) o
             ORDER BY newest.referral_id DESC LIMIT 10
         ),
         referral AS (
             INSERT INTO referrals.referrals (id, organisation_id, status, territory, commune_code, lat, lon, needs,
                                              modes, languages, accessibility, urgency, deadline, max_distance_km,
                                              event_sequence, submitted_by, created_at, updated_at)
             VALUES ($1, $2, 'submitted', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1, $14, $32, $32)
             RETURNING *
         ),
         person AS (
             INSERT INTO referrals.persons (referral_id, first_name, last_name, phone, email, contact_preference,
                                            commune_name, note, consent_method, consent_at, key_id, phone_key,
                                            email_key)
             VALUES ($1, $20, $21, $22, $23, $24, $15, $25, $16, $17, $26, $18, $19)
         ),
         step AS (
             INSERT INTO referrals.history (referral_id, step, status, actor, detail, at)
             VALUES ($1, 'submitted', 'submitted', $27, '{}'::jsonb, $32)
         ),
         audit AS (
             INSERT INTO referrals.audit (actor, principal, membership, action, referral_id, at)
             VALUES ($28, $29, $30, $31, $1, $32)
         ),
         event AS (
             INSERT INTO referrals.outbox (id, event_type, aggregate_id, envelope, traceparent)
             VALUES ($33, $34, $35, $36::text::jsonb, $37)
         )
         SELECT referral.*, ARRAY(SELECT id FROM duplicates ORDER BY created_at DESC) AS possible_duplicates,
                CASE WHEN $39 THEN pg_notify($38, '') END::text AS woke
         FROM referral",
    )
    .bind(id)
    .bind(organisation_id)
    .bind(&r.territory)
    .bind(&r.commune_code)
    .bind(r.location.lat)
    .bind(r.location.lon)
    .bind(&r.needs)
    .bind(&r.modes)
    .bind(&r.languages)
    .bind(&r.accessibility)
    .bind(r.urgency)
    .bind(r.deadline)
    .bind(r.max_distance_km)
    .bind(submitted_by)
    .bind(&r.commune_name)
    .bind(r.consent.method.as_deref())
    .bind(r.consent.at)
    .bind(sealed.phone_key)
    .bind(sealed.email_key)
    .bind(sealed.first_name)
    .bind(sealed.last_name)
    .bind(sealed.phone)
    .bind(sealed.email)
    .bind(p.contact_preference)
    .bind(sealed.note)
    .bind(sealed.key_id)
    .bind(&audit.actor)
    .bind(&audit.actor)
    .bind(audit.principal)
    .bind(audit.membership)
    .bind(AuditAction::Submit)
    .bind(at)
    .bind(event.id)
    .bind(&event.event_type)
    .bind(&event.aggregate_id)
    .bind(&event.envelope)
    .bind(&event.traceparent)
    .bind(&event.channel)
    .bind(event.wake)
    .bind(DUPLICATES_LOOKBACK)
    .fetch_one(conn)
    .await?;
    Ok(Submitted {
        referral: typed(record.referral)?,
        possible_duplicates: record.possible_duplicates.into_iter().map(ReferralId::from).collect(),
    })
}

/// The person's fields that can be given and corrected.
pub struct PersonFields<'a> {
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub phone: Option<&'a str>,
    pub email: Option<&'a str>,
    pub contact_preference: ContactPreference,
    pub note: Option<&'a str>,
}

/// A person's fields sealed for their row, with the blind indexes of the phone number
/// and the e-mail address.
struct SealedPerson {
    key_id: i32,
    first_name: Vec<u8>,
    last_name: Vec<u8>,
    phone: Option<Vec<u8>>,
    email: Option<Vec<u8>>,
    note: Option<Vec<u8>>,
    phone_key: Option<Vec<u8>>,
    email_key: Option<Vec<u8>>,
}

impl SealedPerson {
    fn seal(vault: &Vault, id: ReferralId, f: &PersonFields<'_>) -> Self {
        Self {
            key_id: vault.current_key() as i32,
            first_name: vault.seal(&place("persons.first_name", id), f.first_name),
            last_name: vault.seal(&place("persons.last_name", id), f.last_name),
            phone: vault.seal_opt(&place("persons.phone", id), f.phone),
            email: vault.seal_opt(&place("persons.email", id), f.email),
            note: vault.seal_opt(&place("persons.note", id), f.note),
            phone_key: f.phone.map(|v| phone_key(vault, v)),
            email_key: f.email.map(|v| email_key(vault, v)),
        }
    }
}

/// Seals and writes the correction of a person. Returns the rows changed (0 when the
/// person's data is gone).
pub async fn correct_person(
    conn: &mut PgConnection,
    vault: &Vault,
    id: ReferralId,
    f: &PersonFields<'_>,
) -> sqlx::Result<u64> {
    let sealed = SealedPerson::seal(vault, id, f);
    let done = sqlx::query!(
        "UPDATE referrals.persons SET first_name = $2, last_name = $3, phone = $4, email = $5,
            contact_preference = $6, note = $7, key_id = $8, phone_key = $9, email_key = $10
         WHERE referral_id = $1",
        id.as_uuid(),
        sealed.first_name,
        sealed.last_name,
        sealed.phone,
        sealed.email,
        f.contact_preference.slug(),
        sealed.note,
        sealed.key_id,
        sealed.phone_key,
        sealed.email_key,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

pub async fn get(conn: &mut PgConnection, id: ReferralId) -> sqlx::Result<Option<Referral>> {
    sqlx::query_as!(ReferralRecord, "SELECT * FROM referrals.referrals WHERE id = $1", id.as_uuid())
        .fetch_optional(conn)
        .await?
        .map(typed)
        .transpose()
}

pub async fn lock(conn: &mut PgConnection, id: ReferralId) -> sqlx::Result<Option<Referral>> {
    sqlx::query_as!(ReferralRecord, "SELECT * FROM referrals.referrals WHERE id = $1 FOR UPDATE", id.as_uuid())
        .fetch_optional(conn)
        .await?
        .map(typed)
        .transpose()
}

/// Writes back every field a transition may change.
pub async fn update(conn: &mut PgConnection, r: &Referral) -> sqlx::Result<()> {
    let o = r.offer.as_ref();
    sqlx::query!(
        "UPDATE referrals.referrals SET
            status_changed_at = CASE WHEN status <> $2 THEN now() ELSE status_changed_at END,
            status = $2, attempts = $3, escalated = $4, waitlist_reason = $5, round = $6, match_sequence = $7,
            offer_structure_id = $8, offer_structure_name = $9, offer_reservation_id = $10, offered_at = $11,
            offer_expires_at = $12, offer_distance_km = $13, offer_score = $14, offer_explanation = $15,
            structure_id = $16, structure_name = $17, accepted_at = $18, outcome = $19, closed_at = $20,
            event_sequence = $21, offer_reasons = $22, updated_at = now()
         WHERE id = $1",
        r.id.as_uuid(),
        r.status.slug(),
        r.attempts as i32,
        r.escalated,
        r.waitlist_reason.map(WaitlistReason::slug),
        r.round as i32,
        r.match_sequence,
        o.map(|o| o.structure_id.as_str()),
        o.map(|o| o.structure_name.as_str()),
        o.map(|o| o.reservation_id),
        o.map(|o| o.offered_at),
        o.map(|o| o.expires_at),
        o.map(|o| o.distance_km),
        o.map(|o| o.score),
        o.map(|o| serde_json::json!(o.explanation)),
        r.structure_id.as_ref().map(StructureId::as_str),
        r.structure_name,
        r.accepted_at,
        r.outcome.map(Outcome::slug),
        r.closed_at,
        r.event_sequence,
        o.map(|o| serde_json::json!(o.reasons)),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes back the event sequence alone: an event that is not a step (no change of the
/// referral, nor of its last activity).
pub async fn set_event_sequence(conn: &mut PgConnection, r: &Referral) -> sqlx::Result<()> {
    sqlx::query!("UPDATE referrals.referrals SET event_sequence = $2 WHERE id = $1", r.id.as_uuid(), r.event_sequence)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn person(conn: &mut PgConnection, vault: &Vault, id: ReferralId) -> sqlx::Result<Option<PersonRow>> {
    let record = sqlx::query_as!(
        PersonRecord,
        "SELECT referral_id, first_name, last_name, phone, email, contact_preference, commune_name, note,
                consent_method, consent_at, key_id
         FROM referrals.persons WHERE referral_id = $1",
        id.as_uuid()
    )
    .fetch_optional(&mut *conn)
    .await?;
    match record {
        None => Ok(None),
        Some(r) => Ok(Some(open_person(conn, vault, r).await?)),
    }
}

/// The persons of several referrals in one query (a list page), by referral.
pub async fn persons(
    conn: &mut PgConnection,
    vault: &Vault,
    ids: &[ReferralId],
) -> sqlx::Result<HashMap<ReferralId, PersonRow>> {
    let ids: Vec<Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
    let records = sqlx::query_as!(
        PersonRecord,
        "SELECT referral_id, first_name, last_name, phone, email, contact_preference, commune_name, note,
                consent_method, consent_at, key_id
         FROM referrals.persons WHERE referral_id = ANY($1)",
        &ids
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut out = HashMap::with_capacity(records.len());
    for r in records {
        let id = ReferralId::from(r.referral_id);
        out.insert(id, open_person(conn, vault, r).await?);
    }
    Ok(out)
}

/// Appends a step. A comment (free text written by a person) is sealed, bound to the
/// history row, so it needs the vault; steps without one (the matcher's, the timer's)
/// may pass `None`. A step taken through an answer link says so in its detail
/// (`"via": "answer_link"`), whatever the step: the actor decides, not the caller of this.
pub async fn add_history(
    conn: &mut PgConnection,
    vault: Option<&Vault>,
    referral_id: ReferralId,
    status: ReferralStatus,
    s: Step<'_>,
) -> sqlx::Result<()> {
    let (id, comment, key_id) = match (s.comment, vault) {
        (None, _) => (None, None, None),
        (Some(comment), Some(vault)) => {
            let id = sqlx::query_scalar!(r#"SELECT nextval('referrals.history_id_seq') AS "id!""#)
                .fetch_one(&mut *conn)
                .await?;
            (Some(id), Some(vault.seal(&place("history.comment", id), comment)), Some(vault.current_key() as i32))
        }
        (Some(_), None) => {
            return Err(sqlx::Error::Protocol("a history comment must be sealed: no vault was given".into()));
        }
    };
    let mut detail = s.detail.unwrap_or_else(|| serde_json::json!({}));
    if let (Some(Actor::AnswerLink(_)), Some(d)) = (s.actor, detail.as_object_mut()) {
        d.insert(VIA.to_string(), serde_json::json!(AnsweredVia::AnswerLink.slug()));
    }
    sqlx::query!(
        "INSERT INTO referrals.history (id, referral_id, step, status, structure_id, reason, actor, comment, key_id,
                                        detail)
         VALUES (COALESCE($1, nextval('referrals.history_id_seq')), $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        id,
        referral_id.as_uuid(),
        s.step.slug(),
        status.slug(),
        s.structure_id.map(StructureId::as_str),
        s.reason,
        s.actor.map(ToString::to_string),
        comment,
        key_id,
        detail,
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn history(conn: &mut PgConnection, vault: &Vault, id: ReferralId) -> sqlx::Result<Vec<HistoryRow>> {
    let records = sqlx::query_as!(
        HistoryRecord,
        "SELECT id, at, step, status, structure_id, reason, actor, comment, key_id, detail
         FROM referrals.history WHERE referral_id = $1 ORDER BY id",
        id.as_uuid()
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(records.len());
    for h in records {
        out.push(open_history(conn, vault, h).await?);
    }
    Ok(out)
}

/// Who may be listed: the scope of the caller.
pub enum ListScope {
    All,
    Organisation(OrganisationId),
    Structure(StructureId),
    Territories(Vec<Territory>),
}

pub struct ListFilter {
    pub scope: ListScope,
    pub status: Option<ReferralStatus>,
    pub escalated: Option<bool>,
    pub unchanged_since: Option<DateTime<Utc>>,
    pub before: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

/// Newest first, keyset-paginated on (created_at, id).
pub async fn list(conn: &mut PgConnection, f: &ListFilter) -> sqlx::Result<Vec<Referral>> {
    let (all, org, structure, territories) = match &f.scope {
        ListScope::All => (true, None, None, None),
        ListScope::Organisation(o) => (false, Some(o.as_uuid()), None, None),
        ListScope::Structure(s) => (false, None, Some(s.as_str()), None),
        ListScope::Territories(t) => (false, None, None, Some(t.iter().map(|t| t.to_string()).collect::<Vec<_>>())),
    };
    let (before_at, before_id) = f.before.map(|(a, i)| (Some(a), Some(i))).unwrap_or((None, None));
    let rows = sqlx::query_as!(
        ReferralRecord,
        "SELECT * FROM referrals.referrals
         WHERE ($1 OR organisation_id = $2
                OR (($3::text IS NOT NULL) AND ((status = 'offered' AND offer_structure_id = $3) OR structure_id = $3))
                OR territory = ANY($4))
           AND ($5::text IS NULL OR status = $5)
           AND ($6::bool IS NULL OR escalated = $6)
           AND ($7::timestamptz IS NULL OR status_changed_at <= $7)
           AND ($8::timestamptz IS NULL OR (created_at, id) < ($8, $9))
         ORDER BY created_at DESC, id DESC
         LIMIT $10",
        all,
        org,
        structure,
        territories.as_deref(),
        f.status.map(ReferralStatus::slug),
        f.escalated,
        f.unchanged_since,
        before_at,
        before_id,
        f.limit,
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(typed).collect()
}

/// Offers whose deadline passed, locked so that no other replica fires them too.
pub async fn due_offers(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<ReferralId>> {
    let ids = sqlx::query_scalar!(
        "SELECT id FROM referrals.referrals WHERE status = 'offered' AND offer_expires_at <= now()
         ORDER BY offer_expires_at LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(ids.into_iter().map(ReferralId::from).collect())
}

/// When the next offer falls due.
pub async fn next_offer_expiry(conn: &mut PgConnection) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!("SELECT min(offer_expires_at) FROM referrals.referrals WHERE status = 'offered'")
        .fetch_one(conn)
        .await
}

/// Records an `Idempotency-Key`, or returns the referral and request hash it was first
/// used with.
pub async fn claim_idempotency_key(
    conn: &mut PgConnection,
    scope: &str,
    key: &str,
    request_hash: &str,
    referral_id: ReferralId,
) -> sqlx::Result<Option<(String, ReferralId)>> {
    let inserted = sqlx::query!(
        "INSERT INTO referrals.idempotency_keys (scope, key, request_hash, referral_id) VALUES ($1, $2, $3, $4)
         ON CONFLICT (scope, key) DO NOTHING",
        scope,
        key,
        request_hash,
        referral_id.as_uuid()
    )
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(None);
    }
    let row = sqlx::query!(
        "SELECT request_hash, referral_id FROM referrals.idempotency_keys WHERE scope = $1 AND key = $2",
        scope,
        key
    )
    .fetch_one(conn)
    .await?;
    Ok(Some((row.request_hash, row.referral_id.into())))
}

pub async fn upsert_structure(conn: &mut PgConnection, s: &Structure, sequence: i64) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO referrals.structures (id, name, phone, email, website, street, postcode, commune, source_sequence)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, phone = EXCLUDED.phone, email = EXCLUDED.email,
             website = EXCLUDED.website, street = EXCLUDED.street, postcode = EXCLUDED.postcode,
             commune = EXCLUDED.commune, source_sequence = EXCLUDED.source_sequence
         WHERE referrals.structures.source_sequence < EXCLUDED.source_sequence",
        s.id.as_str(),
        s.name,
        s.contact.phone,
        s.contact.email,
        s.contact.website,
        s.address.street,
        s.address.postcode,
        s.address.commune,
        sequence
    )
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Clone)]
pub struct StructureContactRow {
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub website: Option<String>,
}

pub async fn structure_contact(conn: &mut PgConnection, id: &StructureId) -> sqlx::Result<Option<StructureContactRow>> {
    sqlx::query_as!(
        StructureContactRow,
        "SELECT name, phone, email, website FROM referrals.structures WHERE id = $1",
        id.as_str()
    )
    .fetch_optional(conn)
    .await
}

/// The contacts of several structures in one query (a list page), by structure.
pub async fn structure_contacts(
    conn: &mut PgConnection,
    ids: &[StructureId],
) -> sqlx::Result<HashMap<String, StructureContactRow>> {
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let rows =
        sqlx::query!("SELECT id, name, phone, email, website FROM referrals.structures WHERE id = ANY($1)", &ids)
            .fetch_all(conn)
            .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.id, StructureContactRow { name: r.name, phone: r.phone, email: r.email, website: r.website }))
        .collect())
}

/// Pending offers and waitlist size per territory, for the metrics.
pub async fn gauges(conn: &mut PgConnection) -> sqlx::Result<Vec<(String, i64, i64)>> {
    let rows = sqlx::query!(
        r#"SELECT territory, count(*) FILTER (WHERE status = 'offered') AS "offered!",
                  count(*) FILTER (WHERE status = 'waitlisted') AS "waitlisted!"
           FROM referrals.referrals WHERE status IN ('offered', 'waitlisted') GROUP BY territory"#
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.territory, r.offered, r.waitlisted)).collect())
}
