//! What happened to each referral, learned from the bus: our own exclusive queue bound to
//! `referral.offered` and `referral.waitlisted` gives submit → outcome latency without
//! polling the API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use anyhow::Context;
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Offered,
    Waitlisted,
}

impl Outcome {
    fn from_type(t: &str) -> Option<Self> {
        match t {
            "referral.offered" => Some(Self::Offered),
            "referral.waitlisted" => Some(Self::Waitlisted),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Sent {
    at: Instant,
    first_offered: Option<Instant>,
    first_waitlisted: Option<Instant>,
    last: Option<Outcome>,
}

/// Referrals we created and the events seen for them. Events may arrive before the
/// 201 does; those wait in `early` (events of other traffic stay there too).
#[derive(Debug, Default)]
struct Book {
    sent: HashMap<Uuid, Sent>,
    early: HashMap<Uuid, Vec<(Outcome, Instant)>>,
    events: u64,
    last_event_at: Option<Instant>,
    /// Submit → first offer, in the order the offers arrived (windows of a soak).
    offered_log: Vec<f64>,
}

impl Book {
    /// Returns the submit → offer milliseconds when this is the referral's first offer.
    fn record(sent: &mut Sent, outcome: Outcome, at: Instant) -> Option<f64> {
        sent.last = Some(outcome);
        let first = match outcome {
            Outcome::Offered => &mut sent.first_offered,
            Outcome::Waitlisted => &mut sent.first_waitlisted,
        };
        if first.is_some() {
            return None;
        }
        *first = Some(at);
        (outcome == Outcome::Offered).then(|| at.saturating_duration_since(sent.at).as_secs_f64() * 1000.0)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Tracker(Arc<Mutex<Book>>);

/// Counts at one moment.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// By the latest event seen for each referral.
    pub offered: u64,
    pub waitlisted: u64,
    pub pending: u64,
    /// Milliseconds from sending the POST to the first offered (waitlisted) event.
    pub to_offered_ms: Vec<f64>,
    pub to_waitlisted_ms: Vec<f64>,
    pub last_event_at: Option<Instant>,
}

impl Tracker {
    fn book(&self) -> MutexGuard<'_, Book> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A referral the API created, with the instant its POST was sent.
    pub fn created(&self, id: Uuid, sent_at: Instant) {
        let mut book = self.book();
        let mut sent = Sent { at: sent_at, first_offered: None, first_waitlisted: None, last: None };
        if let Some(early) = book.early.remove(&id) {
            for (outcome, at) in early {
                if let Some(ms) = Book::record(&mut sent, outcome, at) {
                    book.offered_log.push(ms);
                }
            }
        }
        book.sent.insert(id, sent);
    }

    fn event(&self, id: Uuid, outcome: Outcome, at: Instant) {
        let mut book = self.book();
        book.events += 1;
        book.last_event_at = Some(at);
        match book.sent.get_mut(&id) {
            Some(sent) => {
                if let Some(ms) = Book::record(sent, outcome, at) {
                    book.offered_log.push(ms);
                }
            }
            None => book.early.entry(id).or_default().push((outcome, at)),
        }
    }

    /// Submit → offer milliseconds of the offers that arrived after the first `from`.
    pub fn offered_since(&self, from: usize) -> (Vec<f64>, usize) {
        let book = self.book();
        (book.offered_log.get(from..).unwrap_or_default().to_vec(), book.offered_log.len())
    }

    /// How many created referrals have seen no event yet.
    pub fn pending(&self) -> u64 {
        self.book().sent.values().filter(|s| s.last.is_none()).count() as u64
    }

    pub fn summary(&self) -> Summary {
        let book = self.book();
        let mut s = Summary { last_event_at: book.last_event_at, ..Default::default() };
        for sent in book.sent.values() {
            match sent.last {
                Some(Outcome::Offered) => s.offered += 1,
                Some(Outcome::Waitlisted) => s.waitlisted += 1,
                None => s.pending += 1,
            }
            let ms = |at: Instant| at.saturating_duration_since(sent.at).as_secs_f64() * 1000.0;
            s.to_offered_ms.extend(sent.first_offered.map(ms));
            s.to_waitlisted_ms.extend(sent.first_waitlisted.map(ms));
        }
        s
    }
}

/// Declares an exclusive, auto-delete queue bound to the namespace's events and feeds
/// the tracker until the connection closes. Returns once consuming has started, so no
/// event of the run is missed.
/// Each `referral.offered` also goes to `offers` (referral, structure), when given: the
/// places that answer (`--appointments`).
pub async fn listen(
    amqp_url: &str,
    namespace: &str,
    tracker: Tracker,
    offers: Option<tokio::sync::mpsc::UnboundedSender<(Uuid, String)>>,
) -> anyhow::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name("aiguillage-load events".into());
    let connection = Connection::connect(amqp_url, properties).await.context("connecting to RabbitMQ")?;
    let channel = connection.create_channel().await?;
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() },
            FieldTable::default(),
        )
        .await?;
    let exchange = format!("{namespace}.events");
    for key in ["referral.offered", "referral.waitlisted"] {
        channel
            .queue_bind(
                queue.name().clone(),
                exchange.clone().into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("binding to {exchange} (is a server running with namespace {namespace:?}?)"))?;
    }
    let mut deliveries = channel
        .basic_consume(
            queue.name().clone(),
            "aiguillage-load".into(),
            BasicConsumeOptions { no_ack: true, ..Default::default() },
            FieldTable::default(),
        )
        .await?;
    tokio::spawn(async move {
        // Keeps the channel alive as long as the task runs.
        let _channel = channel;
        while let Some(delivery) = deliveries.next().await {
            let Ok(delivery) = delivery else { break };
            let at = Instant::now();
            let Ok(envelope) = serde_json::from_slice::<serde_json::Value>(&delivery.data) else { continue };
            let Some(outcome) = envelope["type"].as_str().and_then(Outcome::from_type) else { continue };
            let id = envelope["data"]["referral_id"]
                .as_str()
                .or_else(|| envelope["aggregate_id"].as_str())
                .and_then(|s| Uuid::parse_str(s).ok());
            if let Some(id) = id {
                tracker.event(id, outcome, at);
                if let (Some(offers), Outcome::Offered, Some(structure)) =
                    (&offers, outcome, envelope["data"]["structure_id"].as_str())
                {
                    let _ = offers.send((id, structure.to_string()));
                }
            }
        }
    });
    Ok(connection)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_event_arriving_before_the_201_still_counts() {
        let t = Tracker::default();
        let sent = Instant::now();
        let id = Uuid::now_v7();
        t.event(id, Outcome::Offered, sent + Duration::from_millis(40));
        t.created(id, sent);
        let s = t.summary();
        assert_eq!((s.offered, s.pending), (1, 0));
        assert!((s.to_offered_ms[0] - 40.0).abs() < 1.0);
    }

    #[test]
    fn the_latest_event_decides_the_state() {
        let t = Tracker::default();
        let sent = Instant::now();
        let id = Uuid::now_v7();
        t.created(id, sent);
        t.created(Uuid::now_v7(), sent);
        t.event(id, Outcome::Waitlisted, sent + Duration::from_millis(10));
        t.event(id, Outcome::Offered, sent + Duration::from_millis(500));
        let s = t.summary();
        assert_eq!((s.offered, s.waitlisted, s.pending), (1, 0, 1));
        assert_eq!(s.to_offered_ms.len(), 1);
        assert_eq!(s.to_waitlisted_ms.len(), 1);
        assert_eq!(t.pending(), 1);
    }
}
