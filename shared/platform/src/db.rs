//! The PostgreSQL pool, per-service migrations and error classification.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

/// Opens a pool. Connections are made lazily, so a process starts (and answers
/// `/healthz`) while the database is still down.
///
/// `database_url` may name several servers as libpq does (`postgres://u@h1:5432,h2:5432/db
/// ?target_session_attrs=read-write`, the form `pg_auto_failover` gives): the pool then
/// connects only to the one that accepts writes, and follows it when the failover manager
/// promotes another ([`follow_primary`]). sqlx has no multi-host support of its own.
pub fn pool(database_url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let (pool, servers) = build(database_url, max_connections)?;
    if let Some(servers) = servers
        && let Ok(runtime) = tokio::runtime::Handle::try_current()
    {
        runtime.spawn(follow_primary(pool.clone(), servers, 0, None));
    }
    Ok(pool)
}

/// Like [`pool`], but with several servers it first finds the one that accepts writes
/// (waiting up to a minute for one: a failover may be under way), so that the very first
/// statements (migrations) go to it rather than to a standby that may not have replayed
/// them yet.
pub async fn connect(database_url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let (pool, servers) = build(database_url, max_connections)?;
    let Some(servers) = servers else { return Ok(pool) };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let (current, probe) = loop {
        if let Some(found) = find_primary(&servers, 0).await {
            break found;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(sqlx::Error::PoolTimedOut);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    pool.set_connect_options(servers[current].clone());
    tokio::spawn(follow_primary(pool.clone(), servers, current, Some(probe)));
    Ok(pool)
}

/// The pool, and the servers to follow when the URL names several.
fn build(database_url: &str, max_connections: u32) -> Result<(PgPool, Option<Vec<PgConnectOptions>>), sqlx::Error> {
    let servers = Servers::parse(database_url);
    let options = servers
        .urls
        .iter()
        .map(|url| Ok(connect_options(url)?.application_name("aiguillage")))
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    if options.len() == 1 && !servers.read_write {
        return Ok((pool_with(options[0].clone(), max_connections), None));
    }
    FOLLOWS_PRIMARY.store(true, std::sync::atomic::Ordering::Relaxed);
    let pool = primary_only(pool_options(max_connections)).connect_lazy_with(options[0].clone());
    Ok((pool, Some(options)))
}

/// The servers a database URL names, each as a URL of its own, and whether the process
/// must be on one that accepts writes. With several servers and no
/// `target_session_attrs`, libpq's default (`any`) would take any; a process that writes
/// wants the primary, so several servers always mean read-write here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Servers {
    pub urls: Vec<String>,
    pub read_write: bool,
}

impl Servers {
    pub fn parse(database_url: &str) -> Self {
        let Some((scheme, rest)) = database_url.split_once("://") else {
            return Self { urls: vec![database_url.to_string()], read_write: false };
        };
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let (userinfo, hosts) = match authority.rfind('@') {
            Some(at) => (&authority[..=at], &authority[at + 1..]),
            None => ("", authority),
        };
        let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
        let mut read_write = false;
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .filter(|pair| match pair.split_once('=') {
                Some(("target_session_attrs", value)) => {
                    read_write = matches!(value, "read-write" | "primary");
                    false
                }
                _ => true,
            })
            .collect();
        let query = if kept.is_empty() { String::new() } else { format!("?{}", kept.join("&")) };
        let hosts: Vec<&str> = hosts.split(',').collect();
        let read_write = read_write || hosts.len() > 1;
        let urls = hosts.iter().map(|host| format!("{scheme}://{userinfo}{host}{path}{query}")).collect();
        Self { urls, read_write }
    }
}

/// `after_connect` of a pool that must write: a standby (or a primary being demoted)
/// is refused with a connection error, which callers treat as the database being briefly
/// unavailable (503 with `Retry-After`), never as a write that failed for good.
async fn refuse_standby(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    let read_only: String = sqlx::query_scalar("SHOW transaction_read_only").fetch_one(&mut *conn).await?;
    if read_only == "on" {
        return Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "this server is a standby; waiting for the primary",
        )));
    }
    Ok(())
}

/// Points `pool` at whichever of `servers` accepts writes. It keeps one connection to the
/// current primary and asks it every second whether it still is; when it is lost or has
/// become read-only, it asks each server in turn and moves the pool to the first that
/// accepts writes (the failover manager decides which: this only follows it). Pool
/// connections to the old primary fail their next use and are replaced on the new one.
/// `probe`: a connection to `current` already found primary, if the caller has one.
pub async fn follow_primary(
    pool: PgPool,
    servers: Vec<PgConnectOptions>,
    mut current: usize,
    mut probe: Option<sqlx::PgConnection>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !pool.is_closed() {
        tick.tick().await;
        if let Some(conn) = probe.as_mut()
            && is_primary(conn).await
        {
            continue;
        }
        probe = None;
        if let Some((found, conn)) = find_primary(&servers, current).await {
            if found != current {
                tracing::warn!(server = found, "the database primary moved; following it");
                pool.set_connect_options(servers[found].clone());
                current = found;
            }
            probe = Some(conn);
        }
    }
}

/// The first of `servers`, from `from` round, that accepts writes, and a connection to it.
async fn find_primary(servers: &[PgConnectOptions], from: usize) -> Option<(usize, sqlx::PgConnection)> {
    for offset in 0..servers.len() {
        let candidate = (from + offset) % servers.len();
        let Ok(Ok(mut conn)) = tokio::time::timeout(Duration::from_secs(2), servers[candidate].connect()).await else {
            continue;
        };
        if is_primary(&mut conn).await {
            return Some((candidate, conn));
        }
    }
    None
}

async fn is_primary(conn: &mut sqlx::PgConnection) -> bool {
    let answer = tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query_scalar::<_, String>("SHOW transaction_read_only").fetch_one(&mut *conn),
    )
    .await;
    matches!(answer, Ok(Ok(ref ro)) if ro == "off")
}

/// A pool like [`pool`]'s, on given connection options (another pool's, adjusted). In a
/// process whose database has several servers, it too refuses standbys.
pub fn pool_with(options: PgConnectOptions, max_connections: u32) -> PgPool {
    let pool_options = pool_options(max_connections);
    if FOLLOWS_PRIMARY.load(std::sync::atomic::Ordering::Relaxed) {
        primary_only(pool_options).connect_lazy_with(options)
    } else {
        pool_options.connect_lazy_with(options)
    }
}

/// Set once a pool of this process follows a primary among several servers (a process
/// has one database): the pools derived from it must refuse standbys too.
static FOLLOWS_PRIMARY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A pool that writes: it never connects to a standby, and a connection whose server has
/// become one (the old primary, back after a failover) is closed when next taken, instead
/// of failing every write on it. The check replaces sqlx's ping before each use, so it
/// costs no more round trips than a single-server pool makes.
fn primary_only(options: PgPoolOptions) -> PgPoolOptions {
    options
        .test_before_acquire(false)
        .after_connect(|conn, _| Box::pin(async move { refuse_standby(conn).await }))
        .before_acquire(|conn, _| Box::pin(async move { Ok(is_primary(conn).await) }))
}

fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(5))
        .idle_timeout(Duration::from_secs(300))
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
/// With several servers, on the first that does it (a standby refuses: it is read-only).
pub async fn create_database_if_missing(database_url: &str) -> Result<(), sqlx::Error> {
    let mut result = Ok(());
    for url in Servers::parse(database_url).urls {
        result = create_on(&url).await;
        if result.is_ok() {
            break;
        }
    }
    result
}

async fn create_on(database_url: &str) -> Result<(), sqlx::Error> {
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

#[cfg(test)]
mod tests {
    use super::Servers;

    #[test]
    fn one_server_is_kept_as_it_is() {
        let s = Servers::parse("postgres://root@%2Fvar%2Frun%2Fpostgresql/aiguillage");
        assert_eq!(
            s,
            Servers { urls: vec!["postgres://root@%2Fvar%2Frun%2Fpostgresql/aiguillage".into()], read_write: false }
        );
        assert_eq!(Servers::parse("postgres:///aiguillage").urls, vec!["postgres:///aiguillage"]);
    }

    #[test]
    fn several_servers_become_one_url_each_on_the_primary() {
        let s = Servers::parse(
            "postgres://u:p@127.0.0.1:5802,127.0.0.1:5803/aiguillage?target_session_attrs=read-write&sslmode=disable",
        );
        assert_eq!(
            s.urls,
            vec![
                "postgres://u:p@127.0.0.1:5802/aiguillage?sslmode=disable",
                "postgres://u:p@127.0.0.1:5803/aiguillage?sslmode=disable"
            ]
        );
        assert!(s.read_write);
        // Several servers without the attribute still want the primary: the process writes.
        assert!(Servers::parse("postgres://h1,h2/db").read_write);
        assert_eq!(Servers::parse("postgres://h1,h2").urls, vec!["postgres://h1", "postgres://h2"]);
        // One server with the attribute is checked too (a standby is refused).
        let one = Servers::parse("postgres://h1/db?target_session_attrs=read-write");
        assert_eq!(one, Servers { urls: vec!["postgres://h1/db".into()], read_write: true });
    }
}
