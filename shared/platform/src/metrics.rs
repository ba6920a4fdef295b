//! Prometheus metrics of the process, served on `/metrics` in the text format.
//!
//! Counters and histograms are updated where things happen. Gauges that describe
//! state held elsewhere (outbox backlog, dead-letter depth, pending offers) are read
//! by [`Collector`]s at scrape time, so they are never stale.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub service: String,
    pub event_type: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    pub service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TerritoryLabels {
    pub territory: String,
}

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// Reads a piece of state into gauges when `/metrics` is scraped.
pub trait Collector: Send + Sync {
    fn collect(&self) -> BoxFuture<'_, ()>;
}

pub struct Metrics {
    registry: Registry,
    pub http_request_duration: Family<HttpLabels, Histogram>,
    pub events_consumed: Family<EventLabels, Counter>,
    pub events_published: Family<EventLabels, Counter>,
    pub outbox_backlog: Family<ServiceLabels, Gauge>,
    pub outbox_oldest_age_seconds: Family<ServiceLabels, FloatGauge>,
    pub dead_letter_depth: Family<ServiceLabels, Gauge>,
    pub pending_offers: Family<TerritoryLabels, Gauge>,
    pub waitlist: Family<TerritoryLabels, Gauge>,
    pub match_duration: Histogram,
    pub broker_connected: Gauge,
    collectors: Mutex<Vec<Arc<dyn Collector>>>,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    // 0.1 ms .. ~6.5 s
    exponential_buckets(0.0001, 2.0, 17)
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("aiguillage");
        let http_request_duration =
            Family::<HttpLabels, Histogram>::new_with_constructor(|| Histogram::new(latency_buckets()));
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            http_request_duration.clone(),
        );
        let events_consumed = Family::<EventLabels, Counter>::default();
        registry.register("events_consumed", "Events consumed, by service, type and outcome", events_consumed.clone());
        let events_published = Family::<EventLabels, Counter>::default();
        registry.register(
            "events_published",
            "Events published with a broker confirm, by service and type",
            events_published.clone(),
        );
        let outbox_backlog = Family::<ServiceLabels, Gauge>::default();
        registry.register("outbox_backlog", "Outbox rows not yet confirmed by the broker", outbox_backlog.clone());
        let outbox_oldest_age_seconds = Family::<ServiceLabels, FloatGauge>::default();
        registry.register(
            "outbox_oldest_age_seconds",
            "Age of the oldest unpublished outbox row",
            outbox_oldest_age_seconds.clone(),
        );
        let dead_letter_depth = Family::<ServiceLabels, Gauge>::default();
        registry.register(
            "dead_letter_queue_depth",
            "Messages in each service's dead-letter queue",
            dead_letter_depth.clone(),
        );
        let pending_offers = Family::<TerritoryLabels, Gauge>::default();
        registry.register("pending_offers", "Offers waiting for a structure's answer", pending_offers.clone());
        let waitlist = Family::<TerritoryLabels, Gauge>::default();
        registry.register("waitlist", "Referrals on the waitlist", waitlist.clone());
        let match_duration = Histogram::new(latency_buckets());
        registry.register(
            "match_duration_seconds",
            "Time to pick a structure for one referral",
            match_duration.clone(),
        );
        let broker_connected = Gauge::default();
        registry.register("broker_connected", "1 when the process holds a broker connection", broker_connected.clone());
        Self {
            registry,
            http_request_duration,
            events_consumed,
            events_published,
            outbox_backlog,
            outbox_oldest_age_seconds,
            dead_letter_depth,
            pending_offers,
            waitlist,
            match_duration,
            broker_connected,
            collectors: Mutex::new(Vec::new()),
        }
    }

    pub fn add_collector(&self, collector: Arc<dyn Collector>) {
        if let Ok(mut c) = self.collectors.lock() {
            c.push(collector);
        }
    }

    pub fn consumed(&self, service: &str, event_type: &str, outcome: &str) {
        self.events_consumed
            .get_or_create(&EventLabels {
                service: service.into(),
                event_type: event_type.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    pub fn published(&self, service: &str, event_type: &str) {
        self.events_published
            .get_or_create(&EventLabels {
                service: service.into(),
                event_type: event_type.into(),
                outcome: "confirmed".into(),
            })
            .inc();
    }

    pub fn observe_http(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.http_request_duration
            .get_or_create(&HttpLabels { method: method.into(), route: route.into(), status })
            .observe(elapsed.as_secs_f64());
    }

    /// Runs the collectors (each bounded by a timeout) and encodes every metric.
    pub async fn render(&self) -> String {
        let collectors: Vec<Arc<dyn Collector>> = self.collectors.lock().map(|c| c.clone()).unwrap_or_default();
        let runs = collectors.iter().map(|c| tokio::time::timeout(Duration::from_secs(2), c.collect()));
        futures::future::join_all(runs).await;
        let mut out = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %err, "could not encode metrics");
        }
        out
    }
}

/// The metrics of this process.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}
