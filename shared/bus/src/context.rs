//! What a running service is given by the process that hosts it.

use std::sync::Arc;

use platform::Config;
use platform::auth::Authenticator;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Broker;

#[derive(Clone)]
pub struct ServiceContext {
    pub pool: PgPool,
    pub broker: Arc<Broker>,
    pub config: Arc<Config>,
    pub auth: Authenticator,
    /// Cancelled on SIGTERM: stop taking work, finish what is in flight.
    pub shutdown: CancellationToken,
    /// Background tasks; the host waits for them before exiting.
    pub tasks: TaskTracker,
}

impl ServiceContext {
    /// Starts the outbox relay of a service schema.
    pub fn spawn_relay(&self, schema: &'static str, service: &'static str) {
        let relay = crate::Relay::new(self.pool.clone(), Arc::clone(&self.broker), schema, service);
        self.tasks.spawn(relay.run(self.shutdown.clone()));
        platform::metrics::metrics().add_collector(Arc::new(crate::outbox::OutboxCollector {
            pool: self.pool.clone(),
            schema,
            service,
        }));
    }

    /// Starts the periodic cleanup of a service schema's outbox and inbox.
    pub fn spawn_housekeeping(&self, schema: &'static str) {
        self.tasks.spawn(crate::housekeeping::run(self.pool.clone(), schema, self.shutdown.clone()));
    }

    /// Starts consuming a service queue.
    pub fn spawn_consumer<H: crate::Handler>(&self, schema: &'static str, service: &'static str, handler: H) {
        let consumer = crate::Consumer::new(
            self.pool.clone(),
            Arc::clone(&self.broker),
            schema,
            service,
            handler,
            self.config.prefetch,
        );
        self.tasks.spawn(consumer.run(self.shutdown.clone()));
    }
}
