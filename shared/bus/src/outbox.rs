//! The transactional outbox and its relay.
//!
//! A service writes its events with [`enqueue`] in the same transaction as the state
//! change that causes them. The [`Relay`] claims rows in short `SKIP LOCKED`
//! transactions (never holding a lock across broker I/O), publishes them with publisher
//! confirms, `mandatory` and persistent delivery, and deletes each row only after the
//! broker confirmed it. A returned (unroutable) message, a nack or a confirm timeout is
//! a failure: the row is retried later with backoff. Several relays may run at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use contracts::Envelope;
use futures::future::BoxFuture;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation};
use sqlx::postgres::PgListener;
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Row};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::broker::Broker;
use crate::topology::{long_string, short};

/// How long a claim lasts: a relay that dies mid-batch leaves rows that another relay
/// picks up once the claim lapses.
const CLAIM_FOR_SECONDS: f64 = 15.0;
/// A confirm never comes from a blocked connection (memory alarm): give up on it.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);
const BATCH: i64 = 200;
/// The fallback when a notification is lost.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// While draining, how long the relay lets rows gather before claiming again.
const LINGER: Duration = Duration::from_millis(2);
/// After a round found nothing, one more look this much later: rows committed by
/// transactions that skipped their notification because the relay was draining.
const LAST_LOOK: Duration = Duration::from_millis(20);

/// Whether this process's relay for a schema is draining its outbox: claiming again
/// without waiting for a notification. A transaction that enqueues meanwhile need not
/// notify. That matters: `NOTIFY` takes a database-wide lock from commit until the end
/// of its WAL flush, so notifying transactions commit one at a time (on this project's
/// 2-core machine, pgbench inserts fall from 6.1k to 3.2k tps with a NOTIFY in each).
fn draining(schema: &'static str) -> Arc<AtomicBool> {
    static DRAINING: LazyLock<Mutex<HashMap<&'static str, Arc<AtomicBool>>>> = LazyLock::new(Default::default);
    let mut map = DRAINING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    Arc::clone(map.entry(schema).or_default())
}

fn notify_channel(schema: &str) -> String {
    format!("{schema}_outbox")
}

/// Adds an event to the outbox of `schema`, inside the caller's transaction, and wakes
/// the relay when that transaction commits, unless this process's relay is draining the
/// outbox anyway (a relay in another process polls as a fallback).
pub async fn enqueue(conn: &mut PgConnection, schema: &'static str, envelope: &Envelope) -> Result<(), sqlx::Error> {
    // One round trip: the row, and a notification sent at commit (identical ones in a
    // transaction fold into one).
    let e = Outgoing::new(schema, envelope)?;
    let insert = format!(
        "WITH row AS (INSERT INTO {schema}.outbox (id, event_type, aggregate_id, envelope, traceparent) \
                      VALUES ($1, $2, $3, $4::text::jsonb, $5)) \
         SELECT CASE WHEN $7 THEN pg_notify($6, '') END"
    );
    sqlx::query(AssertSqlSafe(insert))
        .bind(e.id)
        .bind(&e.event_type)
        .bind(&e.aggregate_id)
        .bind(&e.envelope)
        .bind(&e.traceparent)
        .bind(&e.channel)
        .bind(e.wake)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// An outbox row, for a service that writes its change and its event in one statement of
/// its own (which then needs no transaction: BEGIN, [`enqueue`] and COMMIT are three
/// round trips saved). The statement inserts `(id, event_type, aggregate_id, envelope,
/// traceparent)` into `{schema}.outbox`, `envelope` as `$n::text::jsonb`, and selects
/// `CASE WHEN wake THEN pg_notify(channel, '') END`, exactly as [`enqueue`] does.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub id: uuid::Uuid,
    pub event_type: String,
    pub aggregate_id: String,
    /// The envelope as JSON text.
    pub envelope: String,
    pub traceparent: String,
    /// The channel that wakes the relay…
    pub channel: String,
    /// …unless this process's relay is draining the outbox anyway.
    pub wake: bool,
}

impl Outgoing {
    pub fn new(schema: &'static str, envelope: &Envelope) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: envelope.id,
            event_type: envelope.event_type.clone(),
            aggregate_id: envelope.aggregate_id.clone(),
            envelope: serde_json::to_string(envelope).map_err(|e| sqlx::Error::Encode(Box::new(e)))?,
            traceparent: crate::trace::traceparent(envelope),
            channel: notify_channel(schema),
            wake: !draining(schema).load(Ordering::Acquire),
        })
    }
}

/// Publishes one service's outbox.
pub struct Relay {
    /// Claims and deletes, committed asynchronously (see [`Relay::new`]).
    pool: PgPool,
    /// The service's pool, for the listener.
    service_pool: PgPool,
    broker: Arc<Broker>,
    schema: &'static str,
    service: &'static str,
    claim_sql: String,
    delete_sql: String,
    retry_sql: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    /// The broker refused some of the round's events (a negative confirm): they wait for
    /// a retry, on a fresh channel. A quorum queue whose leader moved to another node
    /// can keep refusing a channel that published to it during the election.
    #[error("the broker refused {0} event(s)")]
    Refused(usize),
}

struct Claimed {
    id: Uuid,
    event_type: String,
    /// The envelope as JSON text, published as it is.
    envelope: String,
    traceparent: Option<String>,
}

/// The relay's connection options: the service pool's, with commits that do not wait for
/// the WAL flush (see [`Relay::new`]).
fn relay_options(service: &sqlx::postgres::PgConnectOptions) -> sqlx::postgres::PgConnectOptions {
    service.clone().options([("synchronous_commit", "off")])
}

impl Relay {
    /// The relay works through a connection of its own whose commits do not wait for the
    /// WAL flush (`synchronous_commit = off`). Its writes are bookkeeping: a claim or a
    /// delete lost in a database crash only means the event is published again, which
    /// the consumers' inboxes absorb; the rows it reads were committed durably by the
    /// transactions that wrote them. On this project's machine a flush is the costliest
    /// part of a commit, and the relay made two per round.
    pub fn new(pool: PgPool, broker: Arc<Broker>, schema: &'static str, service: &'static str) -> Self {
        let options = relay_options(&pool.connect_options());
        let service_pool = pool;
        let pool = platform::db::pool_with(options, 1);
        Self {
            claim_sql: format!(
                "UPDATE {schema}.outbox SET claimed_until = now() + make_interval(secs => $2) \
                 WHERE id IN (SELECT id FROM {schema}.outbox \
                              WHERE claimed_until IS NULL OR claimed_until < now() \
                              ORDER BY created_at, id LIMIT $1 FOR UPDATE SKIP LOCKED) \
                 RETURNING id, event_type, envelope::text, traceparent"
            ),
            delete_sql: format!("DELETE FROM {schema}.outbox WHERE id = ANY($1)"),
            retry_sql: format!(
                "UPDATE {schema}.outbox SET attempts = attempts + 1, last_error = $2, \
                 claimed_until = now() + make_interval(secs => least(power(2, attempts + 1), 60)) \
                 WHERE id = ANY($1)"
            ),
            pool,
            service_pool,
            broker,
            schema,
            service,
        }
    }

    /// The relay's connection goes where the service's pool goes: to the new primary
    /// once the service's pool has followed a failover (`platform::db::follow_primary`).
    fn follow_service_pool(&self) {
        let service = self.service_pool.connect_options();
        let mine = self.pool.connect_options();
        if service.get_host() != mine.get_host() || service.get_port() != mine.get_port() {
            tracing::info!(schema = self.schema, "the relay follows the database primary");
            self.pool.set_connect_options(relay_options(&service));
        }
    }

    /// Runs until `shutdown`: publishes whatever is pending, then waits for a
    /// notification or the polling interval.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut listener: Option<PgListener> = None;
        let mut backoff = Duration::from_millis(100);
        let draining = draining(self.schema);
        'connection: while !shutdown.is_cancelled() {
            let Some(connection) = self.broker.connection().await else { break };
            let channel = match open_confirm_channel(&connection).await {
                Ok(c) => c,
                Err(err) => {
                    tracing::warn!(service = self.service, error = %err, "relay could not open a channel");
                    sleep_or_cancel(backoff, &shutdown).await;
                    continue;
                }
            };
            loop {
                if shutdown.is_cancelled() {
                    break 'connection;
                }
                match self.publish_pending(&channel).await {
                    Ok(n) if n as i64 >= BATCH => {
                        draining.store(true, Ordering::Release);
                        continue;
                    }
                    Ok(n) if n > 0 => {
                        draining.store(true, Ordering::Release);
                        backoff = Duration::from_millis(100);
                        sleep_or_cancel(LINGER, &shutdown).await;
                    }
                    Ok(_) if draining.swap(false, Ordering::AcqRel) => {
                        self.wait_for_work(&mut listener, &shutdown, LAST_LOOK).await;
                    }
                    Ok(_) => {
                        backoff = Duration::from_millis(100);
                        self.wait_for_work(&mut listener, &shutdown, POLL_INTERVAL).await;
                    }
                    // A lost channel, or one the broker refuses: the events wait, and the
                    // next round goes on a fresh channel.
                    Err(err @ (RelayError::Broker(_) | RelayError::Refused(_))) => {
                        draining.store(false, Ordering::Release);
                        tracing::warn!(service = self.service, error = %err, "relay takes a fresh channel");
                        let _ = channel.close(200, "a fresh channel".into()).await;
                        sleep_or_cancel(backoff, &shutdown).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue 'connection;
                    }
                    Err(RelayError::Database(err)) => {
                        draining.store(false, Ordering::Release);
                        tracing::warn!(service = self.service, error = %err, "relay cannot reach the database");
                        sleep_or_cancel(backoff, &shutdown).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
                if !channel.status().connected() {
                    draining.store(false, Ordering::Release);
                    continue 'connection;
                }
            }
        }
        draining.store(false, Ordering::Release);
    }

    /// One round: claims a batch, publishes it, waits for the confirms, deletes what was
    /// confirmed and schedules the rest for a retry. Returns how many rows it claimed.
    /// Tests step the relay with this.
    pub async fn publish_pending(&self, channel: &Channel) -> Result<usize, RelayError> {
        self.follow_service_pool();
        let claimed: Vec<Claimed> = sqlx::query(AssertSqlSafe(self.claim_sql.clone()))
            .bind(BATCH)
            .bind(CLAIM_FOR_SECONDS)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|row| Claimed {
                id: row.get(0),
                event_type: row.get(1),
                envelope: row.get(2),
                traceparent: row.get(3),
            })
            .collect();
        if claimed.is_empty() {
            return Ok(0);
        }
        platform::fault::point("relay.before_publish");
        let exchange = self.broker.topology.exchange();
        let mut pending = Vec::with_capacity(claimed.len());
        let mut failed: Vec<(Uuid, String)> = Vec::new();
        let mut refused = 0;
        let mut channel_error = None;
        for row in &claimed {
            if channel_error.is_some() {
                failed.push((row.id, "not sent: channel failed".into()));
                continue;
            }
            let (payload, properties) = message(row);
            match channel
                .basic_publish(
                    exchange.clone().into(),
                    row.event_type.clone().into(),
                    BasicPublishOptions { mandatory: true, immediate: false },
                    payload,
                    properties,
                )
                .await
            {
                Ok(confirm) => pending.push((row, confirm)),
                Err(err) => {
                    failed.push((row.id, format!("publish failed: {err}")));
                    channel_error = Some(err);
                }
            }
        }

        let mut confirmed = Vec::with_capacity(pending.len());
        for (row, confirm) in pending {
            match tokio::time::timeout(CONFIRM_TIMEOUT, confirm).await {
                Ok(Ok(Confirmation::Ack(None))) => {
                    platform::metrics::metrics().published(self.service, &row.event_type);
                    confirmed.push(row.id);
                }
                Ok(Ok(Confirmation::Ack(Some(returned)))) => failed.push((
                    row.id,
                    format!("unroutable: returned by the broker ({} {})", returned.reply_code, returned.reply_text),
                )),
                Ok(Ok(Confirmation::Nack(_))) => {
                    refused += 1;
                    failed.push((row.id, "nacked by the broker".into()));
                }
                Ok(Ok(Confirmation::NotRequested)) => failed.push((row.id, "channel is not in confirm mode".into())),
                Ok(Err(err)) => failed.push((row.id, format!("confirm failed: {err}"))),
                Err(_) => failed.push((row.id, "no confirm within 10 s (is the broker blocked?)".into())),
            }
        }

        if !confirmed.is_empty() {
            platform::fault::point("relay.after_confirm");
            sqlx::query(AssertSqlSafe(self.delete_sql.clone())).bind(&confirmed).execute(&self.pool).await?;
        }
        if !failed.is_empty() {
            tracing::warn!(service = self.service, failed = failed.len(), first_error = %failed[0].1, "events not confirmed; will retry");
            let ids: Vec<Uuid> = failed.iter().map(|(id, _)| *id).collect();
            sqlx::query(AssertSqlSafe(self.retry_sql.clone()))
                .bind(&ids)
                .bind(&failed[0].1)
                .execute(&self.pool)
                .await?;
        }
        if let Some(err) = channel_error {
            return Err(RelayError::Broker(err));
        }
        if refused > 0 {
            return Err(RelayError::Refused(refused));
        }
        Ok(claimed.len())
    }

    /// Waits for a notification, at most `timeout`.
    async fn wait_for_work(&self, listener: &mut Option<PgListener>, shutdown: &CancellationToken, timeout: Duration) {
        if listener.is_none() {
            match PgListener::connect_with(&self.service_pool).await {
                Ok(mut l) => match l.listen(&notify_channel(self.schema)).await {
                    Ok(()) => *listener = Some(l),
                    Err(err) => tracing::debug!(error = %err, "outbox listener unavailable; polling"),
                },
                Err(err) => tracing::debug!(error = %err, "outbox listener unavailable; polling"),
            }
        }
        let notified = async {
            match listener.as_mut() {
                Some(l) => {
                    if l.recv().await.is_err() {
                        // Reconnected on the next wait; poll meanwhile.
                        *listener = None;
                        tokio::time::sleep(POLL_INTERVAL).await;
                    }
                }
                None => tokio::time::sleep(POLL_INTERVAL).await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::timeout(timeout, notified) => {}
        }
    }
}

/// Opens a channel in confirm mode.
pub async fn open_confirm_channel(connection: &lapin::Connection) -> lapin::Result<Channel> {
    let channel = connection.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(channel)
}

fn message(row: &Claimed) -> (&[u8], BasicProperties) {
    let mut headers = FieldTable::default();
    if let Some(traceparent) = &row.traceparent {
        headers.insert("traceparent".into(), long_string(traceparent));
    }
    headers.insert("x-aiguillage-version".into(), AMQPValue::LongInt(1));
    let properties = BasicProperties::default()
        .with_message_id(short(row.id.to_string()))
        .with_type(short(row.event_type.clone()))
        .with_content_type(short("application/json"))
        .with_delivery_mode(2)
        .with_timestamp(chrono::Utc::now().timestamp() as u64)
        .with_headers(headers);
    (row.envelope.as_bytes(), properties)
}

async fn sleep_or_cancel(duration: Duration, shutdown: &CancellationToken) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(duration) => {}
    }
}

/// Reads the outbox backlog and its oldest age into the metrics at scrape time.
pub struct OutboxCollector {
    pub pool: PgPool,
    pub schema: &'static str,
    pub service: &'static str,
}

impl platform::metrics::Collector for OutboxCollector {
    fn collect(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let sql = format!(
                "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at))::float8, 0) FROM {}.outbox",
                self.schema
            );
            if let Ok(row) = sqlx::query(AssertSqlSafe(sql)).fetch_one(&self.pool).await {
                let labels = platform::metrics::ServiceLabels { service: self.service.to_string() };
                let m = platform::metrics::metrics();
                m.outbox_backlog.get_or_create(&labels).set(row.get::<i64, _>(0));
                m.outbox_oldest_age_seconds.get_or_create(&labels).set(row.get::<f64, _>(1));
            }
        })
    }
}
