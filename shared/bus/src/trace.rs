//! W3C trace context in AMQP headers: one trace follows a referral across services.
//! The trace id is the correlation id (the first event of the chain), the parent id the
//! last 8 bytes of the publishing event's id.

use contracts::Envelope;

pub(crate) fn traceparent(envelope: &Envelope) -> String {
    let trace = envelope.correlation_id.unwrap_or(envelope.id);
    let span = &envelope.id.simple().to_string()[16..];
    format!("00-{}-{span}-01", trace.simple())
}

/// The trace id of a `traceparent` header.
pub(crate) fn trace_id(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (_version, trace) = (parts.next()?, parts.next()?);
    (trace.len() == 32).then_some(trace)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_carries_the_correlation_as_trace_id() {
        let mut env =
            Envelope::new("a", 1, &contracts::events::StructureRemoved { structure_id: "s".parse().unwrap() });
        let correlation = uuid::Uuid::now_v7();
        env.correlation_id = Some(correlation);
        let header = traceparent(&env);
        assert_eq!(header.len(), 55);
        assert_eq!(trace_id(&header).unwrap(), correlation.simple().to_string());
    }
}
