//! The bus's tables in each service's schema: `outbox` and `inbox`. They are versioned
//! with sqlx's migrator, in a history table of their own (`{schema}._bus_migrations`).

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{PgPool, SqlSafeStr};

fn migrations(schema: &str) -> Vec<Migration> {
    let outbox_and_inbox = format!(
        r#"
CREATE TABLE IF NOT EXISTS {schema}.outbox (
    id            uuid PRIMARY KEY,
    event_type    text NOT NULL,
    aggregate_id  text NOT NULL,
    envelope      jsonb NOT NULL,
    traceparent   text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    claimed_until timestamptz,
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text
);
CREATE INDEX IF NOT EXISTS outbox_claimable ON {schema}.outbox (created_at);

CREATE TABLE IF NOT EXISTS {schema}.inbox (
    message_id  uuid NOT NULL,
    consumer    text NOT NULL,
    event_type  text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, consumer)
);
"#
    );
    // The outbox is a queue table: vacuum it after a fixed number of dead rows, not a
    // share of a table that is nearly always empty. The inbox is pruned by age.
    let queue_table_upkeep = format!(
        r#"
ALTER TABLE {schema}.outbox SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
                                 autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 1000);
ALTER TABLE {schema}.inbox SET (autovacuum_vacuum_scale_factor = 0.02);
CREATE INDEX IF NOT EXISTS inbox_received_at ON {schema}.inbox (received_at);
"#
    );
    vec![
        Migration::new(
            1,
            Cow::Borrowed("outbox and inbox"),
            MigrationType::Simple,
            sqlx::AssertSqlSafe(outbox_and_inbox).into_sql_str(),
            false,
        ),
        Migration::new(
            2,
            Cow::Borrowed("queue table upkeep"),
            MigrationType::Simple,
            sqlx::AssertSqlSafe(queue_table_upkeep).into_sql_str(),
            false,
        ),
    ]
}

/// Creates (or upgrades) the outbox and inbox of a service schema.
pub async fn migrate(pool: &PgPool, schema: &'static str) -> Result<(), sqlx::migrate::MigrateError> {
    let mut migrator = Migrator::with_migrations(migrations(schema));
    migrator.dangerous_set_table_name(format!("{schema}._bus_migrations"));
    migrator.create_schema(schema);
    migrator.run(pool).await
}
