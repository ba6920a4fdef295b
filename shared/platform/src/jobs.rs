//! Daily jobs that every replica schedules and exactly one runs each day: the retention
//! purges. Each service's `{schema}.jobs` table holds the last run of each named job; a
//! replica claims today's run with one conditional upsert, so two replicas asking at the
//! same moment get one `true` between them.

use std::fmt::Debug;
use std::time::Duration;

use sqlx::{AssertSqlSafe, PgPool};
use tokio_util::sync::CancellationToken;

/// How often a replica asks whether today's run is due.
const CHECK_EVERY: Duration = Duration::from_secs(3600);

/// Claims today's run of the job `name` in `schema.jobs`: true for exactly one caller a
/// day, whichever replica asks first.
pub async fn claim_daily(pool: &PgPool, schema: &'static str, name: &str) -> sqlx::Result<bool> {
    assert!(crate::vault::valid_schema(schema), "schema names are constants");
    let claimed = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {schema}.jobs (name, last_run_at) VALUES ($1, now())
         ON CONFLICT (name) DO UPDATE SET last_run_at = now()
         WHERE {schema}.jobs.last_run_at IS NULL OR {schema}.jobs.last_run_at < now() - interval '1 day'"
    )))
    .bind(name)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(claimed == 1)
}

/// Runs `job` once a day, on whichever replica claims the day first, until `shutdown`.
/// A failed run is logged; the job itself must be resumable, since the next day's run
/// (or the command line) picks up where it stopped.
pub async fn run_daily<F, Fut, R, E>(
    pool: PgPool,
    schema: &'static str,
    name: &'static str,
    shutdown: CancellationToken,
    job: F,
) where
    F: Fn(PgPool) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    R: Debug,
    E: std::fmt::Display,
{
    loop {
        match claim_daily(&pool, schema, name).await {
            Ok(true) => match job(pool.clone()).await {
                Ok(report) => tracing::info!(job = name, report = ?report, "daily job done"),
                Err(err) => tracing::warn!(job = name, error = %err, "daily job failed; the next run resumes it"),
            },
            Ok(false) => {}
            Err(err) => tracing::warn!(job = name, error = %err, "could not claim the daily job"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(CHECK_EVERY) => {}
        }
    }
}
