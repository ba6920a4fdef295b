//! Keeps the bus tables small. The outbox is a queue table: every row is inserted and
//! deleted again within milliseconds, so it is all dead tuples unless vacuumed often.
//! The inbox only has to remember a message for as long as the broker could deliver it
//! again; older rows are deleted.
//!
//! Autovacuum is tuned for the outbox by the bus migrations, but a server may run with
//! autovacuum off (some CI and benchmark setups do), so housekeeping also vacuums the
//! outbox itself once enough dead tuples pile up. Replicas may run it at the same time:
//! deletes are idempotent and `VACUUM (SKIP_LOCKED)` skips a table another one is
//! vacuuming. A role that does not own the table gets a warning from PostgreSQL, not an
//! error, and the table is then left to autovacuum.

use std::time::Duration;

use sqlx::{AssertSqlSafe, PgPool};
use tokio_util::sync::CancellationToken;

/// How long a consumer remembers a message it handled. A redelivery comes within
/// seconds; a dead letter is replayed within days. Two weeks covers both.
pub const INBOX_RETENTION: Duration = Duration::from_secs(14 * 24 * 3600);

/// How often housekeeping runs.
pub const INTERVAL: Duration = Duration::from_secs(60);

/// Dead outbox tuples above which housekeeping vacuums the outbox.
pub const VACUUM_THRESHOLD: i64 = 1_000;

const DELETE_BATCH: i64 = 10_000;

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tidied {
    pub inbox_deleted: u64,
    pub outbox_vacuumed: bool,
}

/// Runs [`tidy`] every [`INTERVAL`] until shutdown.
pub async fn run(pool: PgPool, schema: &'static str, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(INTERVAL) => {}
        }
        match tidy(&pool, schema, INBOX_RETENTION, VACUUM_THRESHOLD).await {
            Ok(t) if t.inbox_deleted > 0 || t.outbox_vacuumed => {
                tracing::debug!(
                    schema,
                    inbox_deleted = t.inbox_deleted,
                    outbox_vacuumed = t.outbox_vacuumed,
                    "bus housekeeping"
                );
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(schema, error = %err, "bus housekeeping failed; trying again later"),
        }
    }
}

/// Deletes inbox rows older than `retention` (in batches, so no long lock is held) and
/// vacuums the outbox when it has more than `vacuum_threshold` dead tuples.
pub async fn tidy(
    pool: &PgPool,
    schema: &'static str,
    retention: Duration,
    vacuum_threshold: i64,
) -> sqlx::Result<Tidied> {
    let mut tidied = Tidied::default();
    let delete = format!(
        "DELETE FROM {schema}.inbox WHERE ctid = ANY(ARRAY( \
             SELECT ctid FROM {schema}.inbox WHERE received_at < now() - make_interval(secs => $1) LIMIT $2))"
    );
    loop {
        let deleted = sqlx::query(AssertSqlSafe(delete.clone()))
            .bind(retention.as_secs_f64())
            .bind(DELETE_BATCH)
            .execute(pool)
            .await?
            .rows_affected();
        tidied.inbox_deleted += deleted;
        if deleted < DELETE_BATCH as u64 {
            break;
        }
    }
    let dead: Option<i64> =
        sqlx::query_scalar("SELECT n_dead_tup FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'outbox'")
            .bind(schema)
            .fetch_optional(pool)
            .await?;
    if dead.unwrap_or(0) > vacuum_threshold {
        sqlx::raw_sql(AssertSqlSafe(format!("VACUUM (SKIP_LOCKED) {schema}.outbox"))).execute(pool).await?;
        tidied.outbox_vacuumed = true;
    }
    Ok(tidied)
}
