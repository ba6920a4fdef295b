//! Read queries over the facts: queues, funnel, supply against demand, flows, export and
//! the monthly report of a structure.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

/// `None` means every territory (admin).
pub type Territories<'a> = Option<&'a [String]>;

#[derive(Debug, Serialize)]
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

#[derive(Debug, Serialize)]
pub struct WaitingReferral {
    pub referral_id: Uuid,
    pub territory: Option<String>,
    pub commune_code: Option<String>,
    pub needs: Option<Vec<String>>,
    pub urgency: Option<String>,
    pub reason: Option<String>,
    pub escalated: bool,
    pub waiting_seconds: Option<i64>,
    pub offers: i32,
}

#[derive(Debug, Serialize)]
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

#[derive(Debug, Serialize)]
pub struct Percentiles {
    pub p50: Option<i64>,
    pub p90: Option<i64>,
}

#[derive(Debug, Serialize)]
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
