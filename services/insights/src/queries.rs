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
    AnsweredViaCounts, Funnel, MonthlyReport, Percentiles, StructureQueue, WaitingReferral, Waitlist,
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
}

impl EventKind {
    pub const ALL: [EventKind; 8] = [
        EventKind::Offered,
        EventKind::Declined,
        EventKind::Expired,
        EventKind::Rerouted,
        EventKind::Accepted,
        EventKind::Contacted,
        EventKind::Closed,
        EventKind::Cancelled,
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
               count(first_contact_at) AS "in_progress!",
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
        FROM insights.referrals
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
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(|r| (r.reason, r.n));
    let declines = counts("insights.events", "reason", declines, |d: &DeclineReason| d.slug())?;
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
    })
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
               EXTRACT(EPOCH FROM r.closed_at - r.submitted_at)::float8 AS seconds_to_close
        FROM insights.referrals r
        LEFT JOIN insights.organisations o ON o.id = r.organisation_id
        LEFT JOIN insights.structures s ON s.id = r.accepted_structure
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
            EventKind::Contacted | EventKind::Rerouted | EventKind::Cancelled => {}
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
    .fetch_one(conn)
    .await?;
    report.first_contacts = delays.first_contacts;
    report.median_seconds_offer_to_accept = delays.offer_to_accept.map(|s| s.round() as i64);
    report.median_seconds_accept_to_first_contact = delays.accept_to_contact.map(|s| s.round() as i64);
    report.median_seconds_accept_to_close = delays.accept_to_close.map(|s| s.round() as i64);
    Ok(report)
}
