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

/// A plain connection, for tools (`dlq`) and tests, to the first node of `url` that
/// answers; services use the supervised [`Broker`].
pub async fn connect(url: &str) -> anyhow::Result<Connection> {
    let mut last = None;
    for node in node_urls(url) {
        let properties = lapin::ConnectionProperties::default().with_connection_name("aiguillage tool".into());
        match Connection::connect(&node, properties).await {
            Ok(connection) => return Ok(connection),
            Err(err) => last = Some(err),
        }
    }
    Err(last.map_or_else(|| anyhow::anyhow!("AMQP_URL names no broker"), Into::into))
}

/// The nodes of an `AMQP_URL`: one URI, or several separated by commas (one cluster's
/// nodes), blanks around them ignored. An empty value gives one empty URI, which the
/// client refuses with its own message.
pub fn node_urls(url: &str) -> Vec<String> {
    let nodes: Vec<String> = url.split(',').map(str::trim).filter(|u| !u.is_empty()).map(String::from).collect();
    if nodes.is_empty() { vec![url.trim().to_string()] } else { nodes }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_amqp_url_names_one_node_or_several() {
        assert_eq!(super::node_urls("amqp://a/%2f"), vec!["amqp://a/%2f"]);
        assert_eq!(
            super::node_urls("amqp://g:g@h:5701/%2f, amqp://g:g@h:5702/%2f,amqp://g:g@h:5703/%2f"),
            vec!["amqp://g:g@h:5701/%2f", "amqp://g:g@h:5702/%2f", "amqp://g:g@h:5703/%2f"]
        );
        assert_eq!(super::node_urls(""), vec![""]);
    }
}
