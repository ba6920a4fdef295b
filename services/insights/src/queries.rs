//! Read queries over the facts: queues, funnel, supply against demand, flows, export and
//! the monthly report of a structure.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use contracts::{
    AnsweredVia, DeclineReason, Need, OrganisationKind, Outcome, ReferralStatus, StructureId, Territory, Urgency,
    WaitlistReason,
};
use platform::row::{Columns, RowError};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

pub use contracts::insights::{
    AnsweredViaCounts, Attendance, Funnel, MonthlyReport, Percentiles, StructureAttendance, StructureQueue,
    TerritoryAttendance, WaitingReferral, Waitlist, no_show_rate,
};

/// What one row of `insights.events` records (the projection writes these kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Offered,
    Declined,
    Expired,
    Rerouted,
    Accepted,
    Contacted,
    Closed,
    Cancelled,
    Waitlisted,
}

impl EventKind {
    pub const ALL: [EventKind; 9] = [
        EventKind::Offered,
        EventKind::Declined,
        EventKind::Expired,
        EventKind::Rerouted,
        EventKind::Accepted,
        EventKind::Contacted,
        EventKind::Closed,
        EventKind::Cancelled,
        EventKind::Waitlisted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Offered => "offered",
            EventKind::Declined => "declined",
            EventKind::Expired => "expired",
            EventKind::Rerouted => "rerouted",
            EventKind::Accepted => "accepted",
            EventKind::Contacted => "contacted",
            EventKind::Closed => "closed",
            EventKind::Cancelled => "cancelled",
            EventKind::Waitlisted => "waitlisted",
        }
    }
}

impl std::str::FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| format!("unknown event kind `{s}`"))
    }
}

/// A count per vocabulary value, keyed by its slug: a value that is not one is an error
/// naming the table, the column and the value, never a key in an answer.
fn counts<T: std::str::FromStr>(
    table: &'static str,
    column: &'static str,
    rows: impl IntoIterator<Item = (String, i64)>,
    slug: impl Fn(&T) -> &'static str,
) -> Result<BTreeMap<String, i64>, RowError>
where
    T::Err: std::fmt::Display,
{
    let mut out = BTreeMap::new();
    for (value, n) in rows {
        let parsed: T = Columns::of(table, format!("{column}={value}")).parse(column, &value)?;
        *out.entry(slug(&parsed).to_string()).or_insert(0) += n;
    }
    Ok(out)
}

/// `None` means every territory (admin).
pub type Territories<'a> = Option<&'a [String]>;

struct QueueRow {
    structure_id: String,
    name: String,
    territory: String,
    pub pending_offers: i64,
    pub oldest_pending_offer_seconds: Option<i64>,
    pub accepted_this_week: i64,
    pub weekly_capacity: i32,
    pub accepting: bool,
    pub in_progress: i64,
}

pub async fn structure_queues(
    conn: &mut PgConnection,
    territories: Territories<'_>,
    week_start: DateTime<Utc>,
) -> sqlx::Result<Vec<StructureQueue>> {
    let rows = sqlx::query_as!(
        QueueRow,
        r#"
        SELECT s.id AS structure_id, s.name, s.territory, s.weekly_capacity, s.accepting,
               COALESCE(p.pending, 0) AS "pending_offers!",
               p.oldest AS oldest_pending_offer_seconds,
               COALESCE(a.accepted, 0) AS "accepted_this_week!",
               COALESCE(a.in_progress, 0) AS "in_progress!"
        FROM insights.structures s
        LEFT JOIN (
            SELECT current_structure AS id, count(*) AS pending,
                   floor(EXTRACT(EPOCH FROM now() - min(current_offer_at)))::bigint AS oldest
            FROM insights.referrals WHERE status = 'offered' GROUP BY current_structure
        ) p ON p.id = s.id
        LEFT JOIN (
            SELECT accepted_structure AS id,
                   count(*) FILTER (WHERE accepted_at >= $2) AS accepted,
                   count(*) FILTER (WHERE status = 'in_progress') AS in_progress
            FROM insights.referrals WHERE accepted_structure IS NOT NULL GROUP BY accepted_structure
        ) a ON a.id = s.id
        WHERE NOT s.removed AND ($1::text[] IS NULL OR s.territory = ANY($1))
        ORDER BY COALESCE(p.pending, 0) DESC, s.name, s.id
        "#,
        territories,
        week_start
    )
    .fetch_all(conn)
    .await?;
    let typed = rows.into_iter().map(|r| {
        let c = Columns::of("insights.structures", &r.structure_id);
        Ok::<_, RowError>(StructureQueue {
            structure_id: c.parse("id", &r.structure_id)?,
            territory: c.parse("territory", &r.territory)?,
            name: r.name,
            pending_offers: r.pending_offers,
            oldest_pending_offer_seconds: r.oldest_pending_offer_seconds,
            accepted_this_week: r.accepted_this_week,
            weekly_capacity: r.weekly_capacity,
            accepting: r.accepting,
            in_progress: r.in_progress,
        })
    });
    Ok(typed.collect::<Result<_, _>>()?)
}

struct WaitingRow {
    referral_id: Uuid,
    territory: Option<String>,
    commune_code: Option<String>,
    needs: Option<Vec<String>>,
    urgency: Option<String>,
    reason: Option<String>,
    escalated: bool,
    waiting_seconds: Option<i64>,
    offers: i32,
}

impl TryFrom<WaitingRow> for WaitingReferral {
    type Error = RowError;
    fn try_from(r: WaitingRow) -> Result<Self, RowError> {
        let c = Columns::of("insights.referrals", r.referral_id);
        Ok(Self {
            referral_id: r.referral_id,
            territory: c.parse_opt("territory", r.territory.as_deref())?,
            commune_code: c.parse_opt("commune_code", r.commune_code.as_deref())?,
            needs: r.needs.as_deref().map(|n| c.set("needs", n)).transpose()?,
            urgency: c.parse_opt("urgency", r.urgency.as_deref())?,
            reason: c.parse_opt("waitlist_reason", r.reason.as_deref())?,
            escalated: r.escalated,
            waiting_seconds: r.waiting_seconds,
            offers: r.offers,
        })
    }
}

pub async fn waitlist(conn: &mut PgConnection, territories: Territories<'_>) -> sqlx::Result<Waitlist> {
    let items = sqlx::query_as!(
        WaitingRow,
        r#"
        SELECT referral_id, territory, commune_code, needs, urgency, waitlist_reason AS reason, escalated,
               floor(EXTRACT(EPOCH FROM now() - COALESCE(waitlisted_at, status_at)))::bigint AS waiting_seconds, offers
        FROM insights.referrals
        WHERE status = 'waitlisted' AND ($1::text[] IS NULL OR territory = ANY($1))
        ORDER BY escalated DESC, COALESCE(waitlisted_at, status_at), referral_id
        "#,
        territories
    )
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(WaitingReferral::try_from)
    .collect::<Result<Vec<_>, _>>()?;
    let mut by_reason = BTreeMap::new();
    for i in &items {
        *by_reason.entry(i.reason.map_or("unknown", WaitlistReason::slug).to_string()).or_insert(0) += 1;
    }
    Ok(Waitlist {
        count: items.len() as i64,
        escalated: items.iter().filter(|i| i.escalated).count() as i64,
        oldest_seconds: items.iter().filter_map(|i| i.waiting_seconds).max(),
        by_reason,
        items,
    })
}

/// The cohort of referrals submitted in `[from, to)`.
pub async fn funnel(
    conn: &mut PgConnection,
    territories: Territories<'_>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> sqlx::Result<Funnel> {
    let row = sqlx::query!(
        r#"
        SELECT count(*) AS "submitted!",
               count(first_offered_at) AS "offered!",
               count(accepted_at) AS "accepted!",
               count(*) FILTER (WHERE first_contact_at IS NOT NULL
                                  OR EXISTS (SELECT 1 FROM insights.appointments a WHERE a.referral_id = r.referral_id)
                                  OR EXISTS (SELECT 1 FROM insights.attendance t WHERE t.referral_id = r.referral_id))
                 AS "in_progress!",
               count(closed_at) AS "closed!",
               count(cancelled_at) AS "cancelled!",
               count(*) FILTER (WHERE status = 'waitlisted') AS "waitlisted_now!",
               COALESCE(sum(offers), 0)::bigint AS "offers!",
               COALESCE(sum(expiries), 0)::bigint AS "expiries!",
               COALESCE(sum(withdrawn_unreachable), 0)::bigint AS "withdrawn_unreachable!",
               count(*) FILTER (WHERE answered_via = $4) AS "via_account!",
               count(*) FILTER (WHERE answered_via = $5) AS "via_answer_link!",
               percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM accepted_at - submitted_at)) AS accept_p50,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM accepted_at - submitted_at)) AS accept_p90,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM first_contact_at - submitted_at)) AS contact_p50,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM first_contact_at - submitted_at)) AS contact_p90,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM closed_at - submitted_at)) AS close_p50,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM closed_at - submitted_at)) AS close_p90
        FROM insights.referrals r
        WHERE ($2::timestamptz IS NULL OR submitted_at >= $2) AND ($3::timestamptz IS NULL OR submitted_at < $3)
          AND ($1::text[] IS NULL OR territory = ANY($1))
        "#,
        territories,
        from,
        to,
        AnsweredVia::Account.slug(),
        AnsweredVia::AnswerLink.slug()
    )
    .fetch_one(&mut *conn)
    .await?;
    let outcomes = sqlx::query!(
        r#"SELECT outcome AS "outcome!", count(*) AS "n!" FROM insights.referrals
           WHERE outcome IS NOT NULL AND ($2::timestamptz IS NULL OR submitted_at >= $2)
             AND ($3::timestamptz IS NULL OR submitted_at < $3) AND ($1::text[] IS NULL OR territory = ANY($1))
           GROUP BY outcome"#,
        territories,
        from,
        to
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| (r.outcome, r.n));
    let outcomes = counts("insights.referrals", "outcome", outcomes, |o: &Outcome| o.slug())?;
    let declines = sqlx::query!(
        r#"SELECT e.reason AS "reason!", count(*) AS "n!" FROM insights.events e
           JOIN insights.referrals r ON r.referral_id = e.referral_id
           WHERE e.kind = 'declined' AND e.reason IS NOT NULL
             AND ($2::timestamptz IS NULL OR r.submitted_at >= $2) AND ($3::timestamptz IS NULL OR r.submitted_at < $3)
             AND ($1::text[] IS NULL OR r.territory = ANY($1))
           GROUP BY e.reason"#,
        territories,
        from,
        to
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| (r.reason, r.n));
    let declines = counts("insights.events", "reason", declines, |d: &DeclineReason| d.slug())?;
    let appointments = attendance(conn, territories, from, to).await?;
    let seconds = |v: Option<f64>| v.map(|s| s.round() as i64);
    Ok(Funnel {
        submitted: row.submitted,
        offered: row.offered,
        accepted: row.accepted,
        in_progress: row.in_progress,
        closed: row.closed,
        cancelled: row.cancelled,
        waitlisted_now: row.waitlisted_now,
        outcomes,
        declines,
        expired_offers: row.expiries,
        answered_via: AnsweredViaCounts { account: row.via_account, answer_link: row.via_answer_link },
        withdrawn_unreachable: row.withdrawn_unreachable,
        offers_per_referral: if row.submitted > 0 { row.offers as f64 / row.submitted as f64 } else { 0.0 },
        time_to_accept_seconds: Percentiles { p50: seconds(row.accept_p50), p90: seconds(row.accept_p90) },
        time_to_first_contact_seconds: Percentiles { p50: seconds(row.contact_p50), p90: seconds(row.contact_p90) },
        time_to_close_seconds: Percentiles { p50: seconds(row.close_p50), p90: seconds(row.close_p90) },
        appointments: appointments.total.appointments,
        attended: appointments.total.attended,
        attendance_recorded: appointments.total.attendance_recorded,
        no_shows: appointments.total.no_shows,
        no_show_rate: appointments.total.no_show_rate,
        time_to_appointment_seconds: appointments.time_to_appointment,
        attendance_by_territory: appointments.by_territory,
        attendance_by_structure: appointments.by_structure,
    })
}

/// One group of [`attendance`]'s query: the whole cohort, one territory (of the
/// referrals) or one structure (where the appointments were).
#[derive(Debug, Clone, Default)]
pub struct AttendanceRow {
    pub by_territory: bool,
    pub by_structure: bool,
    pub territory: Option<String>,
    pub structure_id: Option<String>,
    pub structure_name: Option<String>,
    pub structure_territory: Option<String>,
    pub appointments: i64,
    pub attended: i64,
    pub attendance_recorded: i64,
    pub no_shows: i64,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
}

/// The cohort's appointments, whole and by territory and structure.
#[derive(Debug, Default, PartialEq)]
pub struct CohortAttendance {
    pub total: Attendance,
    pub time_to_appointment: Percentiles,
    pub by_territory: Vec<TerritoryAttendance>,
    pub by_structure: Vec<StructureAttendance>,
}

/// Sorts the groups of the query into the cohort's figures: a group with no appointment
/// and no attendance (its only appointment was cancelled) is left out, and so is a group
/// whose key is unknown (a referral whose submission has not been seen yet has no
/// territory; it still counts in the whole).
pub fn cohort_attendance(rows: Vec<AttendanceRow>) -> CohortAttendance {
    let mut out = CohortAttendance::default();
    for r in rows {
        let figures = Attendance::new(r.appointments, r.attended, r.attendance_recorded, r.no_shows);
        let empty = r.appointments == 0 && r.attendance_recorded == 0;
        match (r.by_territory, r.by_structure) {
            (false, false) => {
                out.total = figures;
                out.time_to_appointment =
                    Percentiles { p50: r.p50.map(|s| s.round() as i64), p90: r.p90.map(|s| s.round() as i64) };
            }
            (true, _) => {
                if let Some(territory) = r.territory.filter(|_| !empty) {
                    out.by_territory.push(TerritoryAttendance { territory, attendance: figures });
                }
            }
            (false, true) => {
                if let Some(structure_id) = r.structure_id.filter(|_| !empty) {
                    out.by_structure.push(StructureAttendance {
                        structure_id,
                        name: r.structure_name,
                        territory: r.structure_territory,
                        attendance: figures,
                    });
                }
            }
        }
    }
    out.by_territory.sort_by(|a, b| a.territory.cmp(&b.territory));
    out.by_structure
        .sort_by(|a, b| (&a.territory, &a.name, &a.structure_id).cmp(&(&b.territory, &b.name, &b.structure_id)));
    out
}

/// The appointments of the cohort submitted in `[from, to)`. Per referral: whether an
/// appointment stands (the newest version is a set, not a cancellation) or took place (an
/// attendance is recorded), whether the person came, how many appointments were recorded
/// and missed, and the time of its first appointment kept or held. Whatever the order the
/// events arrived in, the newest version decides.
async fn attendance(
    conn: &mut PgConnection,
    territories: Territories<'_>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> sqlx::Result<CohortAttendance> {
    let rows = sqlx::query_as!(
        AttendanceRow,
        r#"
        WITH cohort AS (
            SELECT referral_id, territory, submitted_at FROM insights.referrals
            WHERE ($2::timestamptz IS NULL OR submitted_at >= $2) AND ($3::timestamptz IS NULL OR submitted_at < $3)
              AND ($1::text[] IS NULL OR territory = ANY($1))
        ),
        latest AS (
            SELECT DISTINCT ON (a.referral_id) a.referral_id, a.kind, a.at, a.structure_id
            FROM insights.appointments a JOIN cohort c ON c.referral_id = a.referral_id
            ORDER BY a.referral_id, a.version DESC
        ),
        held AS (
            SELECT t.referral_id, count(*) AS recorded, count(*) FILTER (WHERE NOT t.attended) AS missed,
                   bool_or(t.attended) AS came, min(t.appointment_at) AS first_at, max(t.structure_id) AS structure_id
            FROM insights.attendance t JOIN cohort c ON c.referral_id = t.referral_id
            GROUP BY t.referral_id
        ),
        per AS (
            SELECT c.territory, c.submitted_at, COALESCE(l.structure_id, h.structure_id) AS structure_id,
                   (h.referral_id IS NOT NULL OR l.kind = 'set') AS has_appointment,
                   COALESCE(h.came, false) AS came, COALESCE(h.recorded, 0) AS recorded,
                   COALESCE(h.missed, 0) AS missed,
                   LEAST(h.first_at, CASE WHEN l.kind = 'set' THEN l.at END) AS first_at
            FROM cohort c
            LEFT JOIN latest l ON l.referral_id = c.referral_id
            LEFT JOIN held h ON h.referral_id = c.referral_id
            WHERE l.referral_id IS NOT NULL OR h.referral_id IS NOT NULL
        )
        SELECT GROUPING(p.territory) = 0 AS "by_territory!", GROUPING(p.structure_id) = 0 AS "by_structure!",
               p.territory AS "territory?", p.structure_id AS "structure_id?",
               max(s.name) AS "structure_name?", max(s.territory) AS "structure_territory?",
               count(*) FILTER (WHERE p.has_appointment) AS "appointments!",
               count(*) FILTER (WHERE p.came) AS "attended!",
               COALESCE(sum(p.recorded), 0)::bigint AS "attendance_recorded!",
               COALESCE(sum(p.missed), 0)::bigint AS "no_shows!",
               percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM p.first_at - p.submitted_at)) AS "p50?",
               percentile_cont(0.9) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM p.first_at - p.submitted_at)) AS "p90?"
        FROM per p LEFT JOIN insights.structures s ON s.id = p.structure_id
        GROUP BY GROUPING SETS ((), (p.territory), (p.structure_id))
        "#,
        territories,
        from,
        to
    )
    .fetch_all(conn)
    .await?;
    Ok(cohort_attendance(rows))
}

/// Demand per commune in the period.
pub struct CommuneDemand {
    pub commune_code: String,
    pub referrals: i64,
}

pub async fn demand_by_commune(
    conn: &mut PgConnection,
    territories: Territories<'_>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<CommuneDemand>> {
    sqlx::query_as!(
        CommuneDemand,
        r#"SELECT commune_code AS "commune_code!", count(*) AS "referrals!" FROM insights.referrals
           WHERE commune_code IS NOT NULL AND submitted_at >= $2 AND submitted_at < $3
             AND ($1::text[] IS NULL OR territory = ANY($1))
           GROUP BY commune_code ORDER BY count(*) DESC, commune_code"#,
        territories,
        from,
        to
    )
    .fetch_all(conn)
    .await
}

/// Where structures are and what they can take each week.
pub struct Supply {
    pub lat: f64,
    pub lon: f64,
    pub weekly_capacity: i32,
}

pub async fn supply(conn: &mut PgConnection) -> sqlx::Result<Vec<Supply>> {
    sqlx::query_as!(
        Supply,
        "SELECT lat, lon, weekly_capacity FROM insights.structures WHERE accepting AND NOT removed AND weekly_capacity > 0"
    )
    .fetch_all(conn)
    .await
}

/// One referral's path, for flows and the export.
#[derive(Debug)]
pub struct Path {
    pub referral_id: Uuid,
    pub organisation_id: Option<Uuid>,
    pub organisation_name: Option<String>,
    pub organisation_kind: Option<OrganisationKind>,
    pub territory: Option<Territory>,
    pub needs: Option<Vec<Need>>,
    pub urgency: Option<Urgency>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub status: ReferralStatus,
    pub outcome: Option<Outcome>,
    pub offers: i32,
    pub declines: i32,
    pub expiries: i32,
    pub accepted_structure: Option<StructureId>,
    pub structure_name: Option<String>,
    pub seconds_to_accept: Option<f64>,
    pub seconds_to_first_contact: Option<f64>,
    pub seconds_to_close: Option<f64>,
    /// From submission to the first appointment kept or held.
    pub seconds_to_appointment: Option<f64>,
    /// Appointments the person came to, and missed (as recorded).
    pub appointments_attended: i64,
    pub appointments_missed: i64,
}

struct PathRow {
    referral_id: Uuid,
    organisation_id: Option<Uuid>,
    organisation_name: Option<String>,
    organisation_kind: Option<String>,
    territory: Option<String>,
    needs: Option<Vec<String>>,
    urgency: Option<String>,
    submitted_at: Option<DateTime<Utc>>,
    status: String,
    outcome: Option<String>,
    offers: i32,
    declines: i32,
    expiries: i32,
    accepted_structure: Option<String>,
    structure_name: Option<String>,
    seconds_to_accept: Option<f64>,
    seconds_to_first_contact: Option<f64>,
    seconds_to_close: Option<f64>,
    seconds_to_appointment: Option<f64>,
    appointments_attended: i64,
    appointments_missed: i64,
}

impl TryFrom<PathRow> for Path {
    type Error = RowError;
    fn try_from(r: PathRow) -> Result<Self, RowError> {
        let c = Columns::of("insights.referrals", r.referral_id);
        Ok(Self {
            referral_id: r.referral_id,
            organisation_id: r.organisation_id,
            organisation_name: r.organisation_name,
            organisation_kind: c.parse_opt("organisations.kind", r.organisation_kind.as_deref())?,
            territory: c.parse_opt("territory", r.territory.as_deref())?,
            needs: r.needs.as_deref().map(|n| c.set("needs", n)).transpose()?,
            urgency: c.parse_opt("urgency", r.urgency.as_deref())?,
            submitted_at: r.submitted_at,
            status: c.parse("status", &r.status)?,
            outcome: c.parse_opt("outcome", r.outcome.as_deref())?,
            offers: r.offers,
            declines: r.declines,
            expiries: r.expiries,
            accepted_structure: c.parse_opt("accepted_structure", r.accepted_structure.as_deref())?,
            structure_name: r.structure_name,
            seconds_to_accept: r.seconds_to_accept,
            seconds_to_first_contact: r.seconds_to_first_contact,
            seconds_to_close: r.seconds_to_close,
            seconds_to_appointment: r.seconds_to_appointment,
            appointments_attended: r.appointments_attended,
            appointments_missed: r.appointments_missed,
        })
    }
}

pub async fn paths(
    conn: &mut PgConnection,
    territories: Territories<'_>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> sqlx::Result<Vec<Path>> {
    let rows = sqlx::query_as!(
        PathRow,
        r#"
        SELECT r.referral_id, r.organisation_id, o.name AS "organisation_name?", o.kind AS "organisation_kind?",
               r.territory, r.needs, r.urgency, r.submitted_at, r.status, r.outcome, r.offers, r.declines, r.expiries,
               r.accepted_structure, s.name AS "structure_name?",
               EXTRACT(EPOCH FROM r.accepted_at - r.submitted_at)::float8 AS seconds_to_accept,
               EXTRACT(EPOCH FROM r.first_contact_at - r.submitted_at)::float8 AS seconds_to_first_contact,
               EXTRACT(EPOCH FROM r.closed_at - r.submitted_at)::float8 AS seconds_to_close,
               EXTRACT(EPOCH FROM LEAST(h.first_at, CASE WHEN l.kind = 'set' THEN l.at END) - r.submitted_at)::float8
                 AS seconds_to_appointment,
               COALESCE(h.came, 0) AS "appointments_attended!", COALESCE(h.missed, 0) AS "appointments_missed!"
        FROM insights.referrals r
        LEFT JOIN insights.organisations o ON o.id = r.organisation_id
        LEFT JOIN insights.structures s ON s.id = r.accepted_structure
        LEFT JOIN LATERAL (SELECT a.kind, a.at FROM insights.appointments a WHERE a.referral_id = r.referral_id
                           ORDER BY a.version DESC LIMIT 1) l ON true
        LEFT JOIN LATERAL (SELECT min(t.appointment_at) AS first_at, count(*) FILTER (WHERE t.attended) AS came,
                                  count(*) FILTER (WHERE NOT t.attended) AS missed
                           FROM insights.attendance t WHERE t.referral_id = r.referral_id) h ON true
        WHERE r.submitted_at IS NOT NULL
          AND ($2::timestamptz IS NULL OR r.submitted_at >= $2) AND ($3::timestamptz IS NULL OR r.submitted_at < $3)
          AND ($1::text[] IS NULL OR r.territory = ANY($1))
        ORDER BY r.submitted_at, r.referral_id
        "#,
        territories,
        from,
        to
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Path::try_from).collect::<Result<_, _>>()?)
}

#[derive(Debug, Serialize)]
pub struct StructureInfo {
    pub id: String,
    pub name: String,
    pub territory: String,
    pub weekly_capacity: i32,
}

pub async fn structure(conn: &mut PgConnection, id: &StructureId) -> sqlx::Result<Option<StructureInfo>> {
    sqlx::query_as!(
        StructureInfo,
        "SELECT id, name, territory, weekly_capacity FROM insights.structures WHERE id = $1",
        id.as_str()
    )
    .fetch_optional(conn)
    .await
}

/// What happened at one structure during `[from, to)`, counted by the time each event
/// happened there.
pub async fn monthly_report(
    conn: &mut PgConnection,
    structure_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<MonthlyReport> {
    let rows = sqlx::query!(
        r#"SELECT kind AS "kind!", COALESCE(reason, '') AS "reason!", count(*) AS "n!" FROM insights.events
           WHERE structure_id = $1 AND at >= $2 AND at < $3 GROUP BY kind, COALESCE(reason, '')"#,
        structure_id,
        from,
        to
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut report = MonthlyReport {
        received: 0,
        accepted: 0,
        declined: 0,
        declined_by_reason: BTreeMap::new(),
        expired: 0,
        first_contacts: 0,
        closed: 0,
        outcomes: BTreeMap::new(),
        median_seconds_offer_to_accept: None,
        median_seconds_accept_to_first_contact: None,
        median_seconds_accept_to_close: None,
        appointments: 0,
        attendance_recorded: 0,
        attended: 0,
        no_shows: 0,
        no_show_rate: None,
    };
    let mut declines = Vec::new();
    let mut outcomes = Vec::new();
    for c in rows {
        let kind: EventKind =
            Columns::of("insights.events", format!("structure_id={structure_id}")).parse("kind", &c.kind)?;
        match kind {
            EventKind::Offered => report.received += c.n,
            EventKind::Accepted => report.accepted += c.n,
            EventKind::Declined => {
                report.declined += c.n;
                declines.push((c.reason, c.n));
            }
            EventKind::Expired => report.expired += c.n,
            EventKind::Closed => {
                report.closed += c.n;
                outcomes.push((c.reason, c.n));
            }
            // First contacts are counted per referral below; reroutes and cancellations
            // are not the structure's doing.
            EventKind::Contacted | EventKind::Rerouted | EventKind::Cancelled | EventKind::Waitlisted => {}
        }
    }
    report.declined_by_reason = counts("insights.events", "reason", declines, |d: &DeclineReason| d.slug())?;
    report.outcomes = counts("insights.events", "reason", outcomes, |o: &Outcome| o.slug())?;
    let delays = sqlx::query!(
        r#"
        WITH acc AS (
            SELECT referral_id, at FROM insights.events WHERE structure_id = $1 AND kind = 'accepted'
        )
        SELECT
          (SELECT count(DISTINCT c.referral_id) FROM insights.events c
             WHERE c.structure_id = $1 AND c.kind = 'contacted' AND c.at >= $2 AND c.at < $3) AS "first_contacts!",
          (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM a.at - o.at))
             FROM insights.events a
             JOIN LATERAL (SELECT max(o.at) AS at FROM insights.events o
                           WHERE o.referral_id = a.referral_id AND o.structure_id = $1 AND o.kind = 'offered' AND o.at <= a.at) o ON true
             WHERE a.structure_id = $1 AND a.kind = 'accepted' AND a.at >= $2 AND a.at < $3) AS offer_to_accept,
          (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM c.first - acc.at))
             FROM acc JOIN LATERAL (SELECT min(at) AS first FROM insights.events c
                                     WHERE c.referral_id = acc.referral_id AND c.kind = 'contacted') c ON true
             WHERE c.first >= $2 AND c.first < $3) AS accept_to_contact,
          (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM cl.at - acc.at))
             FROM acc JOIN insights.events cl ON cl.referral_id = acc.referral_id AND cl.kind = 'closed'
             WHERE cl.at >= $2 AND cl.at < $3) AS accept_to_close
        "#,
        structure_id,
        from,
        to
    )
    .fetch_one(&mut *conn)
    .await?;
    report.first_contacts = delays.first_contacts;
    report.median_seconds_offer_to_accept = delays.offer_to_accept.map(|s| s.round() as i64);
    report.median_seconds_accept_to_first_contact = delays.accept_to_contact.map(|s| s.round() as i64);
    report.median_seconds_accept_to_close = delays.accept_to_close.map(|s| s.round() as i64);
    // The month's appointments by their time: those that stand (the newest version of
    // the referral's appointment is a set, at this structure) and those held (an
    // attendance was recorded), each once.
    let appointments = sqlx::query!(
        r#"
        WITH latest AS (
            SELECT DISTINCT ON (a.referral_id) a.referral_id, a.kind, a.at, a.structure_id
            FROM insights.appointments a
            WHERE a.referral_id IN (SELECT referral_id FROM insights.appointments WHERE structure_id = $1)
            ORDER BY a.referral_id, a.version DESC
        ),
        month AS (
            SELECT referral_id, at FROM latest WHERE kind = 'set' AND structure_id = $1 AND at >= $2 AND at < $3
            UNION
            SELECT referral_id, appointment_at FROM insights.attendance
            WHERE structure_id = $1 AND appointment_at >= $2 AND appointment_at < $3
        )
        SELECT (SELECT count(*) FROM month) AS "appointments!",
               count(*) AS "recorded!",
               count(*) FILTER (WHERE attended) AS "attended!",
               count(*) FILTER (WHERE NOT attended) AS "no_shows!"
        FROM insights.attendance WHERE structure_id = $1 AND appointment_at >= $2 AND appointment_at < $3
        "#,
        structure_id,
        from,
        to
    )
    .fetch_one(&mut *conn)
    .await?;
    report.appointments = appointments.appointments;
    report.attendance_recorded = appointments.recorded;
    report.attended = appointments.attended;
    report.no_shows = appointments.no_shows;
    report.no_show_rate = no_show_rate(appointments.no_shows, appointments.recorded);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row of the grouping sets: the whole (no key), a territory's or a structure's.
    fn whole(figures: [i64; 4]) -> AttendanceRow {
        AttendanceRow {
            appointments: figures[0],
            attended: figures[1],
            attendance_recorded: figures[2],
            no_shows: figures[3],
            ..AttendanceRow::default()
        }
    }

    fn territory(code: Option<&str>, figures: [i64; 4]) -> AttendanceRow {
        AttendanceRow { by_territory: true, territory: code.map(str::to_string), ..whole(figures) }
    }

    fn place(id: &str, name: &str, figures: [i64; 4]) -> AttendanceRow {
        AttendanceRow {
            by_structure: true,
            structure_id: Some(id.to_string()),
            structure_name: Some(name.to_string()),
            structure_territory: Some("16".to_string()),
            ..whole(figures)
        }
    }

    #[test]
    fn the_cohort_s_attendance_sorts_its_groups_and_leaves_out_the_empty_and_the_unknown() {
        let rows = vec![
            territory(Some("17"), [1, 0, 0, 0]),
            AttendanceRow { p50: Some(86_400.4), p90: Some(172_799.6), ..whole([5, 3, 4, 1]) },
            territory(Some("16"), [4, 3, 4, 1]),
            // Referrals whose submission was not seen yet: in the whole only.
            territory(None, [1, 0, 0, 0]),
            place("b", "Bibliothèque", [3, 3, 3, 0]),
            place("a", "Atelier", [2, 0, 1, 1]),
            // A place whose only appointment was cancelled.
            place("c", "Centre social", [0, 0, 0, 0]),
        ];
        let c = cohort_attendance(rows);
        assert_eq!(c.total, Attendance::new(5, 3, 4, 1));
        assert_eq!(c.total.no_show_rate, Some(0.25));
        assert_eq!(c.time_to_appointment, Percentiles { p50: Some(86_400), p90: Some(172_800) });
        let territories: Vec<_> =
            c.by_territory.iter().map(|t| (t.territory.as_str(), t.attendance.no_show_rate)).collect();
        // 17 had an appointment and nothing recorded yet: no rate, not 0.
        assert_eq!(territories, vec![("16", Some(0.25)), ("17", None)]);
        let places: Vec<_> =
            c.by_structure.iter().map(|s| (s.structure_id.as_str(), s.attendance.no_show_rate)).collect();
        assert_eq!(places, vec![("a", Some(1.0)), ("b", Some(0.0))]);
    }

    #[test]
    fn no_appointment_at_all_is_zeros_and_no_rate() {
        let c = cohort_attendance(vec![whole([0; 4])]);
        assert_eq!(c.total, Attendance::default());
        assert_eq!(c.time_to_appointment, Percentiles::default());
        assert!(c.by_territory.is_empty() && c.by_structure.is_empty());
        assert_eq!(cohort_attendance(Vec::new()), CohortAttendance::default());
    }
}
