//! Read queries over the facts: queues, funnel, supply against demand, flows, export and
//! the monthly report of a structure.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

/// `None` means every territory (admin).
pub type Territories<'a> = Option<&'a [String]>;

#[derive(Debug, Serialize, ToSchema)]
pub struct StructureQueue {
    pub structure_id: String,
    pub name: String,
    pub territory: String,
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
    sqlx::query_as!(
        StructureQueue,
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
    .await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WaitingReferral {
    pub referral_id: Uuid,
    pub territory: Option<String>,
    pub commune_code: Option<String>,
    #[schema(value_type = Option<Vec<contracts::Need>>)]
    pub needs: Option<Vec<String>>,
    #[schema(value_type = Option<contracts::Urgency>)]
    pub urgency: Option<String>,
    #[schema(value_type = Option<contracts::WaitlistReason>)]
    pub reason: Option<String>,
    pub escalated: bool,
    pub waiting_seconds: Option<i64>,
    pub offers: i32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Waitlist {
    pub count: i64,
    pub escalated: i64,
    pub oldest_seconds: Option<i64>,
    pub by_reason: BTreeMap<String, i64>,
    /// The waiting referrals themselves (ids and matching data, no personal data), so a
    /// coordinator can act on the escalated ones.
    pub items: Vec<WaitingReferral>,
}

pub async fn waitlist(conn: &mut PgConnection, territories: Territories<'_>) -> sqlx::Result<Waitlist> {
    let items = sqlx::query_as!(
        WaitingReferral,
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
    .await?;
    let mut by_reason = BTreeMap::new();
    for i in &items {
        *by_reason.entry(i.reason.clone().unwrap_or_else(|| "unknown".into())).or_insert(0) += 1;
    }
    Ok(Waitlist {
        count: items.len() as i64,
        escalated: items.iter().filter(|i| i.escalated).count() as i64,
        oldest_seconds: items.iter().filter_map(|i| i.waiting_seconds).max(),
        by_reason,
        items,
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Percentiles {
    pub p50: Option<i64>,
    pub p90: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Funnel {
    pub submitted: i64,
    pub offered: i64,
    pub accepted: i64,
    pub in_progress: i64,
    pub closed: i64,
    pub cancelled: i64,
    pub waitlisted_now: i64,
    pub outcomes: BTreeMap<String, i64>,
    pub declines: BTreeMap<String, i64>,
    pub expired_offers: i64,
    pub offers_per_referral: f64,
    pub time_to_accept_seconds: Percentiles,
    pub time_to_first_contact_seconds: Percentiles,
    pub time_to_close_seconds: Percentiles,
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
        to
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
    .map(|r| (r.outcome, r.n))
    .collect();
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
    .map(|r| (r.reason, r.n))
    .collect();
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
    pub organisation_kind: Option<String>,
    pub territory: Option<String>,
    pub needs: Option<Vec<String>>,
    pub urgency: Option<String>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub status: String,
    pub outcome: Option<String>,
    pub offers: i32,
    pub declines: i32,
    pub expiries: i32,
    pub accepted_structure: Option<String>,
    pub structure_name: Option<String>,
    pub seconds_to_accept: Option<f64>,
    pub seconds_to_first_contact: Option<f64>,
    pub seconds_to_close: Option<f64>,
}

pub async fn paths(
    conn: &mut PgConnection,
    territories: Territories<'_>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> sqlx::Result<Vec<Path>> {
    sqlx::query_as!(
        Path,
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
    .await
}

#[derive(Debug, Serialize)]
pub struct StructureInfo {
    pub id: String,
    pub name: String,
    pub territory: String,
    pub weekly_capacity: i32,
}

pub async fn structure(conn: &mut PgConnection, id: &str) -> sqlx::Result<Option<StructureInfo>> {
    sqlx::query_as!(
        StructureInfo,
        "SELECT id, name, territory, weekly_capacity FROM insights.structures WHERE id = $1",
        id
    )
    .fetch_optional(conn)
    .await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MonthlyReport {
    pub received: i64,
    pub accepted: i64,
    pub declined: i64,
    pub declined_by_reason: BTreeMap<String, i64>,
    pub expired: i64,
    pub first_contacts: i64,
    pub closed: i64,
    pub outcomes: BTreeMap<String, i64>,
    pub median_seconds_offer_to_accept: Option<i64>,
    pub median_seconds_accept_to_first_contact: Option<i64>,
    pub median_seconds_accept_to_close: Option<i64>,
}

/// What happened at one structure during `[from, to)`, counted by the time each event
/// happened there.
pub async fn monthly_report(
    conn: &mut PgConnection,
    structure_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<MonthlyReport> {
    let counts = sqlx::query!(
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
    for c in counts {
        match c.kind.as_str() {
            "offered" => report.received += c.n,
            "accepted" => report.accepted += c.n,
            "declined" => {
                report.declined += c.n;
                *report.declined_by_reason.entry(c.reason).or_insert(0) += c.n;
            }
            "expired" => report.expired += c.n,
            "closed" => {
                report.closed += c.n;
                *report.outcomes.entry(c.reason).or_insert(0) += c.n;
            }
            _ => {}
        }
    }
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
