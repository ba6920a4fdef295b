//! The message bus: RabbitMQ topology, a connection supervisor, the transactional outbox
//! and its relay, and an idempotent consumer loop with an inbox and dead-lettering.
//!
//! lapin stays behind this crate, so a lapin upgrade touches nothing else.
//!
//! The rules (see `ARCHITECTURE.md`): a state change and its events commit together
//! ([`outbox::enqueue`]); the relay publishes with confirms, `mandatory` and persistence
//! and only then deletes the row; consumers record each message in their inbox in the
//! same transaction as their state change and ack after commit; poison goes to the
//! dead-letter queue with its reason; transient failures back off in place.

pub mod broker;
pub mod consumer;
mod context;
pub mod dlq;
pub mod housekeeping;
pub mod outbox;
pub mod schema;
pub mod topology;
mod trace;

pub use broker::Broker;
pub use consumer::{Consumer, Handler, HandlerError};
pub use context::ServiceContext;
pub use outbox::{Outgoing, Relay, enqueue};
pub use topology::{ServiceQueue, Topology};

pub use lapin::Connection;

/// A plain connection, for tools (`dlq`) and tests; services use the supervised [`Broker`].
pub async fn connect(url: &str) -> anyhow::Result<Connection> {
    let properties = lapin::ConnectionProperties::default().with_connection_name("aiguillage tool".into());
    Ok(Connection::connect(url, properties).await?)
}
