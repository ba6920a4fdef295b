//! Dead letters: list them without removing them, and replay them into their service's
//! queue. A replayed message keeps its id, so if it had in fact been processed the inbox
//! makes the replay a no-op; replaying twice moves nothing the second time.

use std::time::Duration;

use lapin::message::BasicGetMessage;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Confirmation, Connection};
use serde::Serialize;

use crate::consumer::{FAILED_AT_HEADER, REASON_HEADER, ROUTING_KEY_HEADER, SERVICE_HEADER, amqp_str};
use crate::outbox::open_confirm_channel;
use crate::topology::{Topology, short};

/// What `dlq list` shows: no payload, so no personal data even by accident.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub service: String,
    pub message_id: String,
    pub event_type: String,
    pub reason: String,
    pub first_failed_at: Option<String>,
    pub routing_key: String,
}

fn describe(service: &str, message: &BasicGetMessage) -> DeadLetter {
    let props = &message.delivery.properties;
    let headers = props.headers().clone().unwrap_or_default();
    let get = |k: &str| headers.inner().get(k).and_then(amqp_str);
    let first_death = headers.inner().get("x-death").and_then(|v| match v {
        AMQPValue::FieldArray(a) => a.as_slice().first().cloned(),
        _ => None,
    });
    let death_field = |k: &str| -> Option<AMQPValue> {
        match &first_death {
            Some(AMQPValue::FieldTable(t)) => t.inner().get(k).cloned(),
            _ => None,
        }
    };
    let broker_reason =
        get("x-first-death-reason").or_else(|| death_field("reason").as_ref().and_then(amqp_str)).map(|r| {
            match r.as_str() {
                "delivery_limit" => "delivered too many times (delivery limit reached)".to_string(),
                "rejected" => "rejected by the consumer".to_string(),
                other => other.to_string(),
            }
        });
    let broker_time = death_field("time").and_then(|t| match t {
        AMQPValue::Timestamp(ts) => chrono::DateTime::from_timestamp(ts as i64, 0).map(|d| d.to_rfc3339()),
        _ => None,
    });
    DeadLetter {
        service: get(SERVICE_HEADER).unwrap_or_else(|| service.to_string()),
        message_id: props.message_id().as_ref().map(|m| m.as_str().to_string()).unwrap_or_default(),
        event_type: props.kind().as_ref().map(|k| k.as_str().to_string()).unwrap_or_default(),
        reason: get(REASON_HEADER).or(broker_reason).unwrap_or_else(|| "unknown".to_string()),
        first_failed_at: get(FAILED_AT_HEADER).or(broker_time),
        routing_key: get(ROUTING_KEY_HEADER).unwrap_or_else(|| message.delivery.routing_key.as_str().to_string()),
    }
}

/// Takes every message of a dead-letter queue without acking it; closing the channel
/// puts them all back.
async fn drain(channel: &Channel, queue: &str) -> lapin::Result<Vec<BasicGetMessage>> {
    let mut messages = Vec::new();
    while let Some(m) = channel.basic_get(short(queue), BasicGetOptions { no_ack: false }).await? {
        messages.push(m);
        if messages.len() >= 100_000 {
            break;
        }
    }
    Ok(messages)
}

pub async fn list(
    connection: &Connection,
    topology: &Topology,
    service: Option<&str>,
) -> lapin::Result<Vec<DeadLetter>> {
    let mut all = Vec::new();
    for s in topology.services.iter().filter(|s| service.is_none_or(|x| x == s.service)) {
        let channel = connection.create_channel().await?;
        let messages = drain(&channel, &topology.dead_letter_queue(s.service)).await?;
        all.extend(messages.iter().map(|m| describe(s.service, m)));
        channel.close(200, "listed".into()).await?;
    }
    Ok(all)
}

/// Moves dead letters (all, or the one with `message_id`) back into their service's
/// queue. Returns what was replayed.
pub async fn replay(
    connection: &Connection,
    topology: &Topology,
    service: Option<&str>,
    message_id: Option<&str>,
) -> anyhow::Result<Vec<DeadLetter>> {
    let mut replayed = Vec::new();
    for s in topology.services.iter().filter(|s| service.is_none_or(|x| x == s.service)) {
        let channel = open_confirm_channel(connection).await?;
        let messages = drain(&channel, &topology.dead_letter_queue(s.service)).await?;
        for m in messages {
            let letter = describe(s.service, &m);
            if message_id.is_some_and(|id| id != letter.message_id) {
                continue;
            }
            let mut headers = FieldTable::default();
            for (k, v) in m.delivery.properties.headers().clone().unwrap_or_default().inner() {
                if !k.as_str().starts_with("x-aiguillage-")
                    && !k.as_str().starts_with("x-death")
                    && !k.as_str().starts_with("x-first-death")
                    && !k.as_str().starts_with("x-last-death")
                {
                    headers.insert(k.clone(), v.clone());
                }
            }
            let properties = m.delivery.properties.clone().with_headers(headers);
            // The default exchange routes straight to the service's own queue, so only
            // the service that failed sees the message again.
            let confirm = channel
                .basic_publish(
                    "".into(),
                    short(topology.queue(s.service)),
                    BasicPublishOptions { mandatory: true, immediate: false },
                    &m.delivery.data,
                    properties,
                )
                .await?;
            let confirmation = tokio::time::timeout(Duration::from_secs(10), confirm)
                .await
                .map_err(|_| anyhow::anyhow!("no confirm from the broker"))??;
            if matches!(confirmation, Confirmation::Ack(None)) {
                m.delivery.acker.ack(BasicAckOptions::default()).await?;
                replayed.push(letter);
            } else {
                anyhow::bail!("the broker refused the replayed message {}", letter.message_id);
            }
        }
        channel.close(200, "replayed".into()).await?;
    }
    Ok(replayed)
}

/// Reads each dead-letter queue's depth into the metrics at scrape time.
pub struct DeadLetterCollector {
    pub broker: std::sync::Arc<crate::Broker>,
}

impl platform::metrics::Collector for DeadLetterCollector {
    fn collect(&self) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            if !self.broker.is_connected() {
                return;
            }
            let Some(connection) = self.broker.connection().await else { return };
            let Ok(channel) = connection.create_channel().await else { return };
            for s in &self.broker.topology.services {
                let queue = self.broker.topology.dead_letter_queue(s.service);
                let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
                if let Ok(q) = channel.queue_declare(short(queue), passive, FieldTable::default()).await {
                    platform::metrics::metrics()
                        .dead_letter_depth
                        .get_or_create(&platform::metrics::ServiceLabels { service: s.service.to_string() })
                        .set(i64::from(q.message_count()));
                }
            }
            let _ = channel.close(200, "metrics".into()).await;
        })
    }
}
