//! The consumer loop.
//!
//! Each delivery is handled in a database transaction that also records the message in
//! the service's inbox; the ack is sent after the commit. A handler that allows it
//! ([`Handler::BATCH`] > 1) gets several waiting deliveries in one transaction: under
//! load a backlog forms and is committed in one go, which is most of what the database
//! spends per message; when idle every batch holds one message, so latency is unchanged.
//! If anything in a batch fails, the batch rolls back and each of its messages is
//! handled on its own. A redelivered message finds
//! itself in the inbox and is acked without a second effect. A message that cannot be
//! parsed, or that the handler calls poison, goes to the dead-letter queue with the
//! reason in a header. A transient failure (database down) is retried in place with
//! backoff, holding the message, so it never burns through the delivery limit.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use contracts::events::DecodeError;
use contracts::{Envelope, EventSet};
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Confirmation};
use sqlx::{AssertSqlSafe, PgConnection, PgPool};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::broker::Broker;
use crate::topology::{long_string, short};

/// Failed attempts of a non-transient error before the message is dead-lettered.
const MAX_FAILED_ATTEMPTS: u32 = 3;
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Time allowed for in-flight messages to finish on shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

pub const REASON_HEADER: &str = "x-aiguillage-reason";
pub const FAILED_AT_HEADER: &str = "x-aiguillage-failed-at";
pub const SERVICE_HEADER: &str = "x-aiguillage-service";
pub const ROUTING_KEY_HEADER: &str = "x-aiguillage-routing-key";

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The message can never be processed (bad payload, unknown version): dead-letter it.
    #[error("poison: {0}")]
    Poison(String),
    /// A dependency is down; the same message will succeed later.
    #[error("transient: {0}")]
    Transient(anyhow::Error),
    /// Anything else: retried a few times, then dead-lettered.
    #[error("failed: {0}")]
    Failed(anyhow::Error),
}

impl From<sqlx::Error> for HandlerError {
    fn from(err: sqlx::Error) -> Self {
        if platform::db::is_transient(&err) {
            HandlerError::Transient(err.into())
        } else if platform::row::is_corrupt(&err) {
            // A stored row this message needs cannot be read: retrying will not mend it.
            HandlerError::Poison(err.to_string())
        } else {
            HandlerError::Failed(err.into())
        }
    }
}

impl From<DecodeError> for HandlerError {
    fn from(err: DecodeError) -> Self {
        HandlerError::Poison(err.to_string())
    }
}

/// What a service does with the events it receives. It runs inside the transaction that
/// records the message in the inbox; everything it writes (including outbox events)
/// commits or rolls back with it.
///
/// The consumer decodes each message into [`Handler::Event`], the one enum of the events
/// the service is bound to, before any transaction: a message of a type the enum does
/// not know, or whose payload does not fit it, is dead-lettered with the reason, and the
/// handler's `match` over the enum is exhaustive.
pub trait Handler: Send + Sync + 'static {
    type Event: EventSet + Clone + Sync + 'static;

    /// The most messages handled in one transaction. Above 1, the handler promises that
    /// it keeps no in-memory state that a rollback would leave behind, and that it is
    /// correct when other messages' writes precede it in the same transaction.
    const BATCH: usize = 1;

    /// Handle the queue strictly in delivery order, one batch after another (a single
    /// worker), for a handler that needs an event's predecessors from other services
    /// already handled: `referral.submitted` (from referrals) is always in the queue
    /// ahead of its `referral.offered` (from referrals, once the matcher proposed it), but two concurrent workers
    /// can take them in two transactions at once, and the later one then cannot see the
    /// earlier one. Such a consumer is also background work that never takes more than
    /// one database connection at a time.
    const IN_ORDER: bool = false;

    fn handle(
        &self,
        tx: &mut PgConnection,
        envelope: &Envelope,
        event: Self::Event,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// Consumes one service's queue.
pub struct Consumer<H> {
    pool: PgPool,
    broker: Arc<Broker>,
    service: &'static str,
    inbox_sql: String,
    handler: Arc<H>,
    prefetch: u16,
}

enum Processed {
    Done,
    Duplicate,
}

/// A decoded delivery and the span its handling is recorded under.
struct Job<E> {
    delivery: Delivery,
    envelope: Envelope,
    event: E,
    span: tracing::Span,
}

type Deliveries = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Delivery>>>;

impl<H: Handler> Consumer<H> {
    pub fn new(
        pool: PgPool,
        broker: Arc<Broker>,
        schema: &'static str,
        service: &'static str,
        handler: H,
        prefetch: u16,
    ) -> Self {
        Self {
            pool,
            broker,
            service,
            inbox_sql: format!(
                "INSERT INTO {schema}.inbox (message_id, consumer, event_type) VALUES ($1, $2, $3) \
                 ON CONFLICT (message_id, consumer) DO NOTHING"
            ),
            handler: Arc::new(handler),
            prefetch: prefetch.max(1),
        }
    }

    /// Consumes until `shutdown`, reconnecting as needed. On shutdown it stops taking
    /// deliveries, lets the in-flight ones finish and ack, then returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            let Some(connection) = this.broker.connection().await else { break };
            match Arc::clone(&this).consume(&connection, &shutdown).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(err) => {
                    tracing::warn!(service = this.service, error = %err, "consumer interrupted; restarting");
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn consume(
        self: Arc<Self>,
        connection: &lapin::Connection,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let channel = connection.create_channel().await?;
        // Confirms are for dead-letter copies published on this channel.
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        // Quorum queues refuse global QoS: this is per consumer.
        channel.basic_qos(self.prefetch, BasicQosOptions { global: false }).await?;
        let queue = self.broker.topology.queue(self.service);
        let tag = format!("{}-{}", self.service, uuid::Uuid::now_v7());
        let mut deliveries = channel
            .basic_consume(queue.into(), tag.clone().into(), BasicConsumeOptions::default(), FieldTable::default())
            .await?;
        tracing::info!(service = self.service, "consuming");
        // Deliveries go to a fixed set of workers; at most `prefetch` are ever unacked,
        // so the queue between them stays bounded.
        let (sender, receiver) = mpsc::unbounded_channel();
        let receiver: Deliveries = Arc::new(tokio::sync::Mutex::new(receiver));
        // A batching consumer runs enough workers to hold every prefetched message in full
        // batches; handling is mostly waiting on the database, so they overlap.
        let prefetch = usize::from(self.prefetch);
        let workers = if H::IN_ORDER {
            1
        } else if H::BATCH > 1 {
            prefetch.div_ceil(H::BATCH).max(2)
        } else {
            prefetch
        };
        let tracker = TaskTracker::new();
        for _ in 0..workers {
            let this = Arc::clone(&self);
            let (channel, receiver, shutdown) = (channel.clone(), Arc::clone(&receiver), shutdown.clone());
            tracker.spawn(async move { this.work(&channel, &receiver, &shutdown).await });
        }
        let result = loop {
            tokio::select! {
                _ = shutdown.cancelled() => break Ok(()),
                next = deliveries.next() => match next {
                    Some(Ok(delivery)) => {
                        // The workers outlive this loop, so the send cannot fail.
                        let _ = sender.send(delivery);
                    }
                    Some(Err(err)) => break Err(err.into()),
                    None => break Err(anyhow::anyhow!("the broker closed the consumer")),
                },
            }
        };
        // Workers finish what was delivered, then stop.
        drop(sender);
        if shutdown.is_cancelled() {
            let _ = channel.basic_cancel(tag.into(), BasicCancelOptions::default()).await;
        }
        tracker.close();
        if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait()).await.is_err() {
            tracing::warn!(
                service = self.service,
                "in-flight messages did not finish in time; they will be redelivered"
            );
        }
        if channel.status().connected() {
            let _ = channel.close(200, "consumer stopped".into()).await;
        }
        result
    }

    /// Takes the next delivery and whatever else is already waiting (up to the batch
    /// size) and handles them, until the delivery queue closes.
    async fn work(&self, channel: &Channel, receiver: &Deliveries, shutdown: &CancellationToken) {
        loop {
            let mut batch = Vec::new();
            {
                let mut receiver = receiver.lock().await;
                let Some(first) = receiver.recv().await else { return };
                batch.push(first);
                while batch.len() < H::BATCH {
                    match receiver.try_recv() {
                        Ok(delivery) => batch.push(delivery),
                        Err(_) => break,
                    }
                }
            }
            let mut jobs = Vec::with_capacity(batch.len());
            for delivery in batch {
                if let Some(job) = self.parse(channel, delivery).await {
                    jobs.push(job);
                }
            }
            self.process_batch(channel, jobs, shutdown).await;
        }
    }

    /// Parses and decodes a delivery; one that is not an envelope, or not an event this
    /// service knows, is dead-lettered here.
    async fn parse(&self, channel: &Channel, delivery: Delivery) -> Option<Job<H::Event>> {
        let envelope: Envelope = match serde_json::from_slice(&delivery.data) {
            Ok(e) => e,
            Err(err) => {
                platform::metrics::metrics().consumed(self.service, "unparseable", "dead_lettered");
                let reason = format!("unparseable message: {}", err.classify_message());
                self.dead_letter(channel, &delivery, &reason).await;
                return None;
            }
        };
        let trace_id = header_str(&delivery, "traceparent")
            .and_then(|t| crate::trace::trace_id(&t).map(str::to_string))
            .unwrap_or_default();
        let span = tracing::info_span!(
            "consume",
            service = self.service,
            event_type = %envelope.event_type,
            event_id = %envelope.id,
            aggregate_id = %envelope.aggregate_id,
            trace_id = %trace_id,
        );
        let event = match H::Event::decode(&envelope) {
            Ok(event) => event,
            Err(err) => {
                platform::metrics::metrics().consumed(self.service, &envelope.event_type, "dead_lettered");
                self.dead_letter(channel, &delivery, &err.to_string()).instrument(span).await;
                return None;
            }
        };
        Some(Job { delivery, envelope, event, span })
    }

    /// Handles several messages in one transaction. Rows are locked in aggregate order,
    /// so two batches never deadlock on each other; a stable sort keeps each aggregate's
    /// messages in delivery order. On any failure the batch rolls back and each message
    /// goes through [`Self::process_envelope`] on its own, with its retries and
    /// dead-lettering.
    async fn process_batch(&self, channel: &Channel, mut jobs: Vec<Job<H::Event>>, shutdown: &CancellationToken) {
        if jobs.len() < 2 {
            for job in &jobs {
                self.process_alone(channel, job, shutdown).await;
            }
            return;
        }
        jobs.sort_by(|a, b| a.envelope.aggregate_id.cmp(&b.envelope.aggregate_id));
        let messages: Vec<_> = jobs.iter().map(|j| (&j.envelope, &j.event, &j.span)).collect();
        match self.apply(&messages).await {
            Ok(outcomes) => {
                for (job, outcome) in jobs.iter().zip(outcomes) {
                    self.settle(&job.delivery, &job.envelope, outcome).instrument(job.span.clone()).await;
                }
            }
            Err(err) => {
                tracing::debug!(service = self.service, error = %err, size = jobs.len(), "batch failed; handling its messages one by one");
                for job in &jobs {
                    self.process_alone(channel, job, shutdown).await;
                }
            }
        }
    }

    /// One message in a transaction of its own, with retries and dead-lettering.
    async fn process_alone(&self, channel: &Channel, job: &Job<H::Event>, shutdown: &CancellationToken) {
        self.process_envelope(channel, job, shutdown).instrument(job.span.clone()).await;
    }

    /// Counts a committed message and acks it.
    async fn settle(&self, delivery: &Delivery, envelope: &Envelope, outcome: Processed) {
        let label = match outcome {
            Processed::Done => "processed",
            Processed::Duplicate => "duplicate",
        };
        platform::metrics::metrics().consumed(self.service, &envelope.event_type, label);
        tracing::debug!(outcome = label, "handled");
        if let Err(err) = delivery.acker.ack(BasicAckOptions::default()).await {
            // The channel died after the commit: the broker will redeliver and the inbox
            // will absorb the duplicate.
            tracing::debug!(error = %err, "ack failed after commit");
        }
    }

    async fn process_envelope(&self, channel: &Channel, job: &Job<H::Event>, shutdown: &CancellationToken) {
        let (delivery, envelope) = (&job.delivery, &job.envelope);
        let mut transient_attempts = 0u32;
        let mut failed_attempts = 0u32;
        loop {
            match self.apply(&[(envelope, &job.event, &tracing::Span::current())]).await {
                Ok(mut outcomes) => {
                    let outcome = outcomes.pop().unwrap_or(Processed::Duplicate);
                    self.settle(delivery, envelope, outcome).await;
                    return;
                }
                Err(HandlerError::Poison(reason)) => {
                    platform::metrics::metrics().consumed(self.service, &envelope.event_type, "dead_lettered");
                    self.dead_letter(channel, delivery, &reason).await;
                    return;
                }
                Err(HandlerError::Transient(err)) => {
                    transient_attempts += 1;
                    let wait = backoff(transient_attempts);
                    tracing::warn!(error = %err, retry_in_ms = wait.as_millis() as u64, "transient failure; retrying in place");
                    if !self.pause(wait, shutdown).await {
                        // Shutting down: leave it unacked; it will be redelivered.
                        return;
                    }
                }
                Err(HandlerError::Failed(err)) => {
                    failed_attempts += 1;
                    if failed_attempts >= MAX_FAILED_ATTEMPTS {
                        platform::metrics::metrics().consumed(self.service, &envelope.event_type, "dead_lettered");
                        let reason = format!("handler failed {failed_attempts} times: {err}");
                        tracing::error!(error = %err, "giving up on message");
                        self.dead_letter(channel, delivery, &reason).await;
                        return;
                    }
                    tracing::warn!(error = %err, attempt = failed_attempts, "handler failed; retrying");
                    if !self.pause(backoff(failed_attempts), shutdown).await {
                        return;
                    }
                }
            }
        }
    }

    /// Sleeps, unless shutting down (returns false then).
    async fn pause(&self, wait: Duration, shutdown: &CancellationToken) -> bool {
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(wait) => true,
        }
    }

    /// Records each message in the inbox and handles the new ones, in one transaction.
    async fn apply(&self, messages: &[(&Envelope, &H::Event, &tracing::Span)]) -> Result<Vec<Processed>, HandlerError> {
        let mut tx = self.pool.begin().await?;
        let mut outcomes = Vec::with_capacity(messages.len());
        let mut handled = false;
        for &(envelope, event, span) in messages {
            let inserted = sqlx::query(AssertSqlSafe(self.inbox_sql.clone()))
                .bind(envelope.id)
                .bind(self.service)
                .bind(&envelope.event_type)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if inserted == 0 {
                outcomes.push(Processed::Duplicate);
                continue;
            }
            self.handler.handle(&mut tx, envelope, event.clone()).instrument(span.clone()).await?;
            outcomes.push(Processed::Done);
            handled = true;
        }
        if !handled {
            tx.rollback().await?;
            return Ok(outcomes);
        }
        platform::fault::point("consumer.before_commit");
        tx.commit().await?;
        platform::fault::point("consumer.after_commit");
        Ok(outcomes)
    }

    /// Publishes a copy with the reason to the dead-letter exchange, then acks the
    /// original. If that publish is not confirmed, the original is rejected instead and
    /// the broker dead-letters it (without our reason, but not lost).
    async fn dead_letter(&self, channel: &Channel, delivery: &Delivery, reason: &str) {
        tracing::warn!(service = self.service, %reason, "dead-lettering message");
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(REASON_HEADER.into(), long_string(reason));
        headers.insert(SERVICE_HEADER.into(), long_string(self.service));
        headers.insert(FAILED_AT_HEADER.into(), long_string(&chrono::Utc::now().to_rfc3339()));
        headers.insert(ROUTING_KEY_HEADER.into(), long_string(delivery.routing_key.as_str()));
        let properties = delivery.properties.clone().with_headers(headers);
        let dlx = self.broker.topology.dead_letter_exchange(self.service);
        let published = async {
            let confirm = channel
                .basic_publish(
                    dlx.into(),
                    short(delivery.routing_key.as_str()),
                    BasicPublishOptions { mandatory: true, immediate: false },
                    &delivery.data,
                    properties,
                )
                .await?;
            let confirmation = tokio::time::timeout(Duration::from_secs(10), confirm)
                .await
                .map_err(|_| anyhow::anyhow!("no confirm"))??;
            Ok::<bool, anyhow::Error>(matches!(confirmation, Confirmation::Ack(None)))
        }
        .await;
        let result = match published {
            Ok(true) => delivery.acker.ack(BasicAckOptions::default()).await,
            _ => delivery.acker.nack(BasicNackOptions { multiple: false, requeue: false }).await,
        };
        if let Err(err) = result {
            tracing::debug!(error = %err, "could not settle dead-lettered message; it will be redelivered");
        }
    }
}

fn backoff(attempt: u32) -> Duration {
    (Duration::from_millis(100) * 2u32.saturating_pow(attempt.min(10))).min(MAX_BACKOFF)
}

pub(crate) fn header_str(delivery: &Delivery, name: &str) -> Option<String> {
    amqp_str(delivery.properties.headers().as_ref()?.inner().get(name)?)
}

pub(crate) fn amqp_str(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

trait ClassifyMessage {
    fn classify_message(&self) -> String;
}

impl ClassifyMessage for serde_json::Error {
    /// Serde's message about *where* parsing failed, never the content.
    fn classify_message(&self) -> String {
        let kind = match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "invalid JSON",
            serde_json::error::Category::Data => "not an event envelope",
            serde_json::error::Category::Eof => "truncated JSON",
        };
        format!("{kind} at line {} column {}", self.line(), self.column())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert!(backoff(3) > backoff(2));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }
}
