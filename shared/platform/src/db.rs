//! The PostgreSQL pool, per-service migrations and error classification.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

/// Opens a pool. Connections are made lazily, so a process starts (and answers
/// `/healthz`) while the database is still down.
pub fn pool(database_url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options = connect_options(database_url)?.application_name("aiguillage");
    Ok(pool_with(options, max_connections))
}

/// A pool like [`pool`]'s, on given connection options (another pool's, adjusted).
pub fn pool_with(options: PgConnectOptions, max_connections: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(5))
        .idle_timeout(Duration::from_secs(300))
        .connect_lazy_with(options)
}

/// Parses a URL such as `postgres:///aiguillage`. Without a user in the URL or in
/// `PGUSER`, libpq connects as the operating-system user; so do we, even where `USER`
/// is not set (containers, CI), by looking the process's uid up in `/etc/passwd`.
pub fn connect_options(database_url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    let options = PgConnectOptions::from_str(database_url)?;
    let has_user = database_url
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or("").contains('@'))
        .unwrap_or(false);
    if has_user || std::env::var_os("PGUSER").is_some() {
        return Ok(options);
    }
    Ok(match os_user() {
        Some(user) => options.username(&user),
        None => options,
    })
}

fn os_user() -> Option<String> {
    if let Some(user) = std::env::var("USER").ok().filter(|u| !u.is_empty()) {
        return Some(user);
    }
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == uid).then(|| name.to_string())
    })
}

/// Creates the database named in `database_url` if it does not exist and the user may.
pub async fn create_database_if_missing(database_url: &str) -> Result<(), sqlx::Error> {
    let options = connect_options(database_url)?;
    let Some(name) = options.get_database().map(str::to_string) else {
        return Ok(());
    };
    if options.connect().await.is_ok() {
        return Ok(());
    }
    let mut admin = options.clone().database("postgres").connect().await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&mut admin)
        .await?;
    if !exists {
        let quoted = name.replace('"', "\"\"");
        let sql = format!("CREATE DATABASE \"{quoted}\"");
        if let Err(err) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await {
            // Another process may have created it in the meantime.
            let duplicate = err.as_database_error().and_then(|e| e.code()).is_some_and(|c| c == "42P04");
            if !duplicate {
                return Err(err);
            }
        }
        tracing::info!(database = %name, "created database");
    }
    admin.close().await?;
    Ok(())
}

/// Runs one service's migrations in its own schema, with its own history table, so
/// services can be migrated (and later split into databases) independently.
pub async fn migrate(
    pool: &PgPool,
    schema: &'static str,
    mut migrator: Migrator,
) -> Result<(), sqlx::migrate::MigrateError> {
    migrator.dangerous_set_table_name(format!("{schema}._sqlx_migrations"));
    migrator.create_schema(schema);
    migrator.run(pool).await
}

/// The platform's own objects (the token signing key).
pub async fn migrate_platform(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    migrate(pool, "platform", sqlx::migrate!("./migrations")).await
}

/// Whether an error is worth retrying later (the database is down, restarting,
/// overloaded, or the transaction lost a serialisation race), as opposed to a bug or
/// bad data, which retrying will not fix.
pub fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception, 40: transaction rollback (serialisation,
            // deadlock), 53: insufficient resources, 57: operator intervention
            // (shutdown, cancel), 58: system error.
            ["08", "40", "53", "57", "58"].iter().any(|class| code.starts_with(class))
        }),
        _ => false,
    }
}

/// Whether an error is a unique violation of the named constraint.
pub fn is_unique_violation(err: &sqlx::Error, constraint: &str) -> bool {
    err.as_database_error()
        .is_some_and(|e| e.code().is_some_and(|c| c == "23505") && e.constraint() == Some(constraint))
}
