//! What the machine itself can do, measured in the same run: single-row INSERT
//! transactions per second (pgbench) and confirmed publish → consume → ack messages per
//! second (RabbitMQ). The referral pipeline can be judged against them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};
use sqlx::{ConnectOptions, Connection as _};
use tokio::sync::Semaphore;

/// `database_url` with another database name (`postgres:///a?x=y` → `postgres:///b?x=y`).
pub fn with_database(database_url: &str, database: &str) -> anyhow::Result<String> {
    let (scheme, rest) = database_url.split_once("://").context("DATABASE_URL is not a URL")?;
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let authority = before_query.split('/').next().unwrap_or("");
    let mut url = format!("{scheme}://{authority}/{database}");
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    Ok(url)
}

/// Runs pgbench with a single-row INSERT script in a scratch database (created and
/// dropped here) and returns its `tps`.
pub async fn pgbench_insert_tps(database_url: &str, run: &str, seconds: u64) -> anyhow::Result<f64> {
    let name = format!("aiguillage_load_ceiling_{run}");
    let options = platform::db::connect_options(database_url)?;
    let mut admin = options.clone().database("postgres").connect().await.context("connecting to PostgreSQL")?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).execute(&mut admin).await?;
    let result = async {
        let mut scratch = options.clone().database(&name).connect().await?;
        sqlx::raw_sql("CREATE TABLE load_ceiling (id bigserial PRIMARY KEY, payload text NOT NULL)")
            .execute(&mut scratch)
            .await?;
        scratch.close().await?;
        // Start from clean buffers: the run's dirty pages would otherwise be flushed
        // during the measurement (allowed to superusers and pg_checkpoint only).
        if let Err(err) = sqlx::raw_sql("CHECKPOINT").execute(&mut admin).await {
            eprintln!("no CHECKPOINT before pgbench: {err}");
        }
        let script = std::env::temp_dir().join(format!("aiguillage-load-{run}.sql"));
        std::fs::write(&script, "INSERT INTO load_ceiling (payload) VALUES (repeat('x', 500));\n")?;
        let mut command = tokio::process::Command::new("pgbench");
        command.args(["-n", "-c", "8", "-j", "2", "-T", &seconds.to_string(), "-f"]).arg(&script);
        // pgbench takes a URL as its database name; the user is the one we connect as.
        command.arg(with_database(database_url, &name)?);
        if let Some(user) = std::env::var_os("PGUSER").is_none().then(|| options.get_username().to_string()) {
            command.env("PGUSER", user);
        }
        let out = command.output().await.context("running pgbench (is postgresql-client installed?)")?;
        let _ = std::fs::remove_file(&script);
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!("pgbench failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        parse_tps(&stdout).with_context(|| format!("no tps in pgbench output: {stdout}"))
    }
    .await;
    // DROP DATABASE waits for every backend of the cluster to absorb a barrier, which
    // one stuck backend can delay for ever: do not hang the report on it.
    let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    match tokio::time::timeout(Duration::from_secs(30), sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(&mut admin))
        .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => eprintln!("could not drop {name}: {err}"),
        Err(_) => eprintln!("DROP DATABASE {name} did not finish within 30 s (see the server log); drop it later"),
    }
    result
}

fn parse_tps(output: &str) -> Option<f64> {
    output.lines().find_map(|l| l.trim().strip_prefix("tps = ")?.split_whitespace().next()?.parse().ok())
}

/// Which kind of queue the broker ceiling runs through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    /// A classic, exclusive, auto-delete queue.
    Exclusive,
    /// A durable quorum queue, like the services' own (deleted afterwards).
    Quorum,
}

/// Publishes persistent messages with confirms (up to `in_flight` unconfirmed) to a
/// scratch queue while a consumer on another connection acks each one; returns the
/// messages per second delivered and acked end to end.
pub async fn rabbitmq_confirmed_rate(
    amqp_url: &str,
    queue_name: &str,
    kind: QueueKind,
    seconds: u64,
    in_flight: usize,
) -> anyhow::Result<f64> {
    let publisher = Connection::connect(amqp_url, ConnectionProperties::default()).await?;
    let consumer_conn = Connection::connect(amqp_url, ConnectionProperties::default()).await?;
    let channel = consumer_conn.create_channel().await?;
    let (name, options, args) = match kind {
        QueueKind::Exclusive => (
            "",
            QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() },
            FieldTable::default(),
        ),
        QueueKind::Quorum => {
            let mut args = FieldTable::default();
            args.insert("x-queue-type".into(), AMQPValue::LongString(LongString::from(b"quorum".to_vec())));
            (queue_name, QueueDeclareOptions { durable: true, ..Default::default() }, args)
        }
    };
    let queue = channel.queue_declare(name.into(), options, args).await?;
    let queue = queue.name().clone();
    let result = async {
        channel.basic_qos(in_flight.min(u16::MAX as usize) as u16, BasicQosOptions::default()).await?;
        let mut deliveries = channel
            .basic_consume(queue.clone(), "ceiling".into(), BasicConsumeOptions::default(), FieldTable::default())
            .await?;
        let delivered = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&delivered);
        let consumer = tokio::spawn(async move {
            while let Some(Ok(delivery)) = deliveries.next().await {
                if delivery.acker.ack(BasicAckOptions::default()).await.is_err() {
                    break;
                }
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });

        let out = publisher.create_channel().await?;
        out.confirm_select(ConfirmSelectOptions::default()).await?;
        let payload = vec![b'x'; 600];
        let window = Arc::new(Semaphore::new(in_flight));
        let failures = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let deadline = start + Duration::from_secs(seconds);
        while Instant::now() < deadline {
            let permit = Arc::clone(&window).acquire_owned().await?;
            let confirm = out
                .basic_publish(
                    "".into(),
                    queue.clone(),
                    BasicPublishOptions { mandatory: true, immediate: false },
                    &payload,
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await?;
            let failures = Arc::clone(&failures);
            tokio::spawn(async move {
                let _permit = permit;
                match tokio::time::timeout(Duration::from_secs(10), confirm).await {
                    Ok(Ok(Confirmation::Ack(None))) => {}
                    _ => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        let count = delivered.load(Ordering::Relaxed);
        let elapsed = start.elapsed().as_secs_f64();
        // Let the last confirms land before tearing down.
        let _ = tokio::time::timeout(Duration::from_secs(10), window.acquire_many(in_flight as u32)).await;
        consumer.abort();
        let failed = failures.load(Ordering::Relaxed);
        if failed > 0 {
            eprintln!("rabbitmq ceiling: {failed} publishes not confirmed");
        }
        Ok::<f64, anyhow::Error>(count as f64 / elapsed)
    }
    .await;
    if let Ok(cleanup) = publisher.create_channel().await {
        let _ = cleanup.queue_delete(queue, QueueDeleteOptions::default()).await;
    }
    let _ = publisher.close(200, "done".into()).await;
    let _ = consumer_conn.close(200, "done".into()).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_keep_everything_but_the_name() {
        assert_eq!(with_database("postgres:///aiguillage", "x").unwrap(), "postgres:///x");
        assert_eq!(
            with_database("postgres://u:p@h:5432/a?sslmode=disable", "x").unwrap(),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x").unwrap(), "postgres://h/x");
    }

    #[test]
    fn reads_tps_from_pgbench() {
        let out = "number of failed transactions: 0 (0.000%)\nlatency average = 2.1 ms\n\
                   initial connection time = 12.3 ms\ntps = 3771.123456 (without initial connection time)\n";
        assert_eq!(parse_tps(out), Some(3771.123456));
    }
}
