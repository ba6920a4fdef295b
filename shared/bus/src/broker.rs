//! The connection supervisor. It connects with backoff, declares the topology, hands the
//! connection to whoever waits for one (relays, consumers), notices when it dies, and
//! starts over. Relays and consumers rebuild their channels on every new connection.
//!
//! `AMQP_URL` may name several nodes of one cluster, separated by commas: the supervisor
//! connects to the first that answers, and when that connection is lost it tries the
//! next ones first (the lost node is likely still down), coming back round to it last.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use lapin::{Connection, ConnectionProperties};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::topology::Topology;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A supervised broker connection.
pub struct Broker {
    urls: Vec<String>,
    /// The node to try first on the next connection (an index into `urls`).
    next: std::sync::atomic::AtomicUsize,
    /// The broker has blocked this connection's publishing (a memory or disk alarm).
    blocked: std::sync::atomic::AtomicBool,
    pub topology: Topology,
    connection: watch::Sender<Option<Arc<Connection>>>,
    shutdown: CancellationToken,
    name: String,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker").field("namespace", &self.topology.namespace).finish()
    }
}

impl Broker {
    /// Starts supervising a connection to `url` (one URI, or several separated by commas)
    /// until `shutdown`.
    pub fn start(url: &str, topology: Topology, name: &str, shutdown: CancellationToken) -> Arc<Self> {
        let (tx, _) = watch::channel(None);
        let broker = Arc::new(Self {
            urls: crate::node_urls(url),
            next: std::sync::atomic::AtomicUsize::new(0),
            blocked: std::sync::atomic::AtomicBool::new(false),
            topology,
            connection: tx,
            shutdown,
            name: name.to_string(),
        });
        tokio::spawn(Arc::clone(&broker).supervise());
        broker
    }

    /// Whether a live connection is held right now.
    pub fn is_connected(&self) -> bool {
        self.connection.borrow().as_ref().is_some_and(|c| c.status().connected())
    }

    /// Waits for a live connection; `None` once shutting down.
    pub async fn connection(&self) -> Option<Arc<Connection>> {
        let mut rx = self.connection.subscribe();
        loop {
            if let Some(c) = rx.borrow_and_update().as_ref().filter(|c| c.status().connected()) {
                return Some(Arc::clone(c));
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                changed = rx.changed() => if changed.is_err() { return None },
                // A connection can die without the watch changing yet; look again soon.
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    /// Whether the broker has blocked publishing (a resource alarm): events would wait in
    /// the outboxes for as long as it lasts, so new work is refused meanwhile (503), and
    /// `/readyz` says so, for a load balancer to send it elsewhere.
    pub fn is_blocked(&self) -> bool {
        self.blocked.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn set_blocked(&self, blocked: bool) {
        self.blocked.store(blocked, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    async fn supervise(self: Arc<Self>) {
        let mut backoff = MIN_BACKOFF;
        while !self.shutdown.is_cancelled() {
            match self.connect().await {
                Ok(connection) => {
                    backoff = MIN_BACKOFF;
                    platform::metrics::metrics().broker_connected.set(1);
                    tracing::info!(namespace = %self.topology.namespace, "broker connected");
                    let connection = Arc::new(connection);
                    self.connection.send_replace(Some(Arc::clone(&connection)));
                    self.watch(&connection).await;
                    if self.shutdown.is_cancelled() {
                        // Kept for the last acks of in-flight work; `close` closes it.
                        break;
                    }
                    self.connection.send_replace(None);
                    self.set_blocked(false);
                    platform::metrics::metrics().broker_connected.set(0);
                    tracing::warn!("broker connection lost; reconnecting");
                }
                Err(err) => {
                    tracing::warn!(error = %err, retry_in_ms = backoff.as_millis() as u64, "broker unreachable");
                    tokio::select! {
                        _ = self.shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One round over the nodes, from the one due first; the first that answers (and
    /// accepts the topology) is kept, and the next connection will try the node after it.
    async fn connect(&self) -> anyhow::Result<Connection> {
        use std::sync::atomic::Ordering;
        let first = self.next.load(Ordering::Relaxed);
        let mut failures = Vec::new();
        for (node, url) in node_order(&self.urls, first) {
            match self.connect_to(url).await {
                Ok(connection) => {
                    self.next.store((node + 1) % self.urls.len(), Ordering::Relaxed);
                    if self.urls.len() > 1 {
                        tracing::info!(node, "broker node chosen");
                    }
                    return Ok(connection);
                }
                Err(err) => failures.push(format!("node {node}: {err}")),
            }
        }
        anyhow::bail!("no broker node answered ({})", failures.join("; "))
    }

    async fn connect_to(&self, url: &str) -> anyhow::Result<Connection> {
        let properties = ConnectionProperties::default().with_connection_name(self.name.clone().into());
        let connection = tokio::time::timeout(Duration::from_secs(10), Connection::connect(url, properties))
            .await
            .map_err(|_| anyhow::anyhow!("connection timed out"))??;
        self.topology.declare(&connection).await?;
        Ok(connection)
    }

    /// Returns when the connection dies or on shutdown.
    async fn watch(&self, connection: &Connection) {
        let mut events = Box::pin(connection.events_listener());
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                event = events.next() => match event {
                    Some(lapin::Event::Error(err)) => {
                        tracing::warn!(error = %err, "broker connection error");
                        return;
                    }
                    Some(lapin::Event::ConnectionBlocked(reason)) => {
                        tracing::warn!(%reason, "broker blocked publishing");
                        self.set_blocked(true);
                    }
                    Some(lapin::Event::ConnectionUnblocked) => {
                        tracing::info!("broker unblocked publishing");
                        self.set_blocked(false);
                    }
                    Some(_) => {}
                    None => return,
                },
                _ = tick.tick() => if !connection.status().connected() { return },
            }
        }
    }

    /// Closes the connection politely (after consumers and relays stopped).
    pub async fn close(&self) {
        let current = self.connection.borrow().clone();
        if let Some(c) = current {
            let _ = tokio::time::timeout(Duration::from_secs(2), c.close(200, "shutting down".into())).await;
        }
    }
}

/// The nodes in the order to try them, from `first` round to the one before it, with
/// their indexes (which name a node in logs: the URIs hold the credentials).
fn node_order(urls: &[String], first: usize) -> impl Iterator<Item = (usize, &str)> {
    let n = urls.len();
    (0..n).map(move |i| {
        let node = (first + i) % n;
        (node, urls[node].as_str())
    })
}

/// `/readyz`: the broker is connected.
pub struct BrokerDependency(pub Arc<Broker>);

impl platform::health::Dependency for BrokerDependency {
    fn name(&self) -> &'static str {
        "broker"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            if !self.0.is_connected() {
                Err("not connected".to_string())
            } else if self.0.is_blocked() {
                Err("publishing blocked by a resource alarm".to_string())
            } else {
                Ok(())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_tried_from_the_one_due_round_to_the_one_before() {
        let urls: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let order = |first| node_order(&urls, first).map(|(i, u)| format!("{i}{u}")).collect::<Vec<_>>().join(",");
        assert_eq!(order(0), "0a,1b,2c");
        assert_eq!(order(2), "2c,0a,1b");
        let one = vec!["x".to_string()];
        assert_eq!(node_order(&one, 0).collect::<Vec<_>>(), vec![(0, "x")]);
    }
}
