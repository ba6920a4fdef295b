//! Exchanges and queues, all named under the namespace so several deployments or test
//! runs share one broker without crosstalk:
//!
//! - `{ns}.events`: durable topic exchange, routing key = event type;
//! - `{ns}.{service}`: durable quorum queue per service, bound to the patterns it needs,
//!   with an explicit dead-letter exchange and delivery limit;
//! - `{ns}.{service}.dlx` → `{ns}.{service}.dlq`: where poison and over-delivered
//!   messages go.

use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ExchangeKind};

/// Deliveries of one message before the broker dead-letters it. Explicit, so the
/// behaviour is the same on RabbitMQ 3.10 (no default) and 4.x (default 20). Transient
/// failures do not count: consumers retry those in place without giving the message back.
pub const DELIVERY_LIMIT: i64 = 10;

/// The delivery limit of a dead-letter queue: none in effect. RabbitMQ 4.0 to 4.2 give
/// quorum queues a default limit of 20 counted on every acquisition, and `dlq list`
/// reads a message by taking it and giving it back, so without this a dead letter would
/// vanish after its twentieth listing (a dead-letter queue dead-letters nowhere).
pub const DEAD_LETTER_DELIVERY_LIMIT: i64 = 1_000_000;

/// One service's queue and what it listens to.
#[derive(Debug, Clone)]
pub struct ServiceQueue {
    pub service: &'static str,
    pub bindings: &'static [&'static str],
}

impl ServiceQueue {
    /// Where the bindings and the consumer's event set disagree: an event type of the set
    /// that no binding routes here (it would never arrive), or a binding that routes no
    /// type of the set (everything it brings would be dead-lettered). Each service tests
    /// that this is empty.
    pub fn mismatches<E: contracts::EventSet>(&self) -> Vec<String> {
        let matches = contracts::events::topic_matches;
        let unrouted = E::TYPES
            .iter()
            .filter(|t| !self.bindings.iter().any(|b| matches(b, t)))
            .map(|t| format!("{t} is handled but no binding routes it"));
        let useless = self
            .bindings
            .iter()
            .filter(|b| !E::TYPES.iter().any(|t| matches(b, t)))
            .map(|b| format!("binding {b} routes no event the consumer knows"));
        unrouted.chain(useless).collect()
    }
}

/// Names under one namespace.
#[derive(Debug, Clone)]
pub struct Topology {
    pub namespace: String,
    pub services: Vec<ServiceQueue>,
}

impl Topology {
    pub fn new(namespace: impl Into<String>, services: Vec<ServiceQueue>) -> Self {
        Self { namespace: namespace.into(), services }
    }

    pub fn exchange(&self) -> String {
        format!("{}.events", self.namespace)
    }

    pub fn queue(&self, service: &str) -> String {
        format!("{}.{service}", self.namespace)
    }

    pub fn dead_letter_exchange(&self, service: &str) -> String {
        format!("{}.{service}.dlx", self.namespace)
    }

    pub fn dead_letter_queue(&self, service: &str) -> String {
        format!("{}.{service}.dlq", self.namespace)
    }

    /// Declares everything, idempotently, on channels of `connection`. Every service's
    /// queue is declared by every process, so an event is routable (and the `mandatory`
    /// publish succeeds) even before the process that consumes it has started.
    pub async fn declare(&self, connection: &Connection) -> lapin::Result<()> {
        let mut channel = connection.create_channel().await?;
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        channel.exchange_declare(self.exchange().into(), ExchangeKind::Topic, durable, FieldTable::default()).await?;
        for s in &self.services {
            self.declare_service(connection, &mut channel, s).await?;
        }
        let _ = channel.close(200, "topology declared".into()).await;
        Ok(())
    }

    async fn declare_service(
        &self,
        connection: &Connection,
        channel: &mut Channel,
        s: &ServiceQueue,
    ) -> lapin::Result<()> {
        let dlx = self.dead_letter_exchange(s.service);
        let dlq = self.dead_letter_queue(s.service);
        let queue = self.queue(s.service);
        let durable_exchange = ExchangeDeclareOptions { durable: true, ..Default::default() };
        let durable_queue = QueueDeclareOptions { durable: true, ..Default::default() };

        channel
            .exchange_declare(dlx.clone().into(), ExchangeKind::Fanout, durable_exchange, FieldTable::default())
            .await?;
        let mut dlq_args = FieldTable::default();
        dlq_args.insert("x-queue-type".into(), long_string("quorum"));
        dlq_args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(DEAD_LETTER_DELIVERY_LIMIT));
        if let Err(err) = channel.queue_declare(dlq.clone().into(), durable_queue, dlq_args).await {
            // A queue declared by an earlier version, without the limit: keep it (the
            // broker closed the channel), and say what to do about it.
            if !is_precondition_failed(&err) {
                return Err(err);
            }
            tracing::warn!(
                queue = %dlq,
                "dead-letter queue declared without x-delivery-limit by an earlier version; on RabbitMQ 4.0-4.2 \
                 apply a policy raising its delivery-limit, or drain and delete it so it is declared again"
            );
            *channel = connection.create_channel().await?;
        }
        channel
            .queue_bind(dlq.into(), dlx.clone().into(), "".into(), QueueBindOptions::default(), FieldTable::default())
            .await?;

        channel.queue_declare(queue.clone().into(), durable_queue, service_queue_arguments(&dlx)).await?;
        for pattern in s.bindings {
            channel
                .queue_bind(
                    queue.clone().into(),
                    self.exchange().into(),
                    (*pattern).into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }

    /// Removes every exchange and queue of the namespace (tests clean up with this).
    pub async fn delete(&self, channel: &Channel) -> lapin::Result<()> {
        for s in &self.services {
            for q in [self.queue(s.service), self.dead_letter_queue(s.service)] {
                channel.queue_delete(q.into(), QueueDeleteOptions::default()).await?;
            }
            channel
                .exchange_delete(self.dead_letter_exchange(s.service).into(), ExchangeDeleteOptions::default())
                .await?;
        }
        channel.exchange_delete(self.exchange().into(), ExchangeDeleteOptions::default()).await?;
        Ok(())
    }
}

/// The arguments of a service queue: quorum, explicit delivery limit and dead-letter
/// exchange, and at-least-once dead-lettering (which requires `reject-publish`).
pub fn service_queue_arguments(dead_letter_exchange: &str) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), long_string("quorum"));
    args.insert("x-dead-letter-exchange".into(), long_string(dead_letter_exchange));
    args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(DELIVERY_LIMIT));
    args.insert("x-dead-letter-strategy".into(), long_string("at-least-once"));
    args.insert("x-overflow".into(), long_string("reject-publish"));
    args
}

/// 406 PRECONDITION_FAILED: the queue exists with other arguments ("inequivalent arg").
fn is_precondition_failed(err: &lapin::Error) -> bool {
    matches!(err.kind(), lapin::ErrorKind::ProtocolError(e) if e.get_id() == 406)
}

pub(crate) fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

pub(crate) fn short(s: impl Into<String>) -> ShortString {
    ShortString::from(s.into())
}
