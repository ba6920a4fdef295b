//! Webhooks: subscriptions per organisation, structure or territory; one delivery per
//! (subscription, event) stored with the event in the consumer's transaction; a
//! deliverer that posts each one signed to the Standard Webhooks scheme, retries with
//! exponential backoff for 24 hours, then marks the subscription failing.
//!
//! Targets on loopback, private or link-local addresses are refused unless the operator
//! allows them: the check runs on the URL when subscribing and, through the HTTP client's
//! resolver, on every address a name resolves to at connect time, so a name that points
//! to a private address later is refused too.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use contracts::Envelope;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::{PgConnection, PgPool};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::messaging::Inbound;
use crate::store::DeliveryStatus;

/// The events a subscription may ask for: the public events, no personal data.
pub const EVENT_TYPES: &[&str] = &[
    "referral.submitted",
    "referral.offered",
    "referral.accepted",
    "referral.declined",
    "referral.offer_expired",
    "referral.waitlisted",
    "referral.contacted",
    "referral.closed",
    "referral.cancelled",
    "referral.rerouted",
    "referral.appointment_set",
    "referral.appointment_cancelled",
    "referral.attendance_recorded",
    "structure.upserted",
    "structure.removed",
    "capacity.changed",
];

/// No answer within this is a failure.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Retries stop this long after the first attempt; the subscription is then failing.
pub const GIVE_UP_AFTER: chrono::Duration = chrono::Duration::hours(24);
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
const IN_FLIGHT: usize = 32;
const IDLE: Duration = Duration::from_millis(250);

/// A new secret: `whsec_` and 24 random bytes in base64.
pub fn new_secret() -> String {
    let bytes: [u8; 24] = rand::random();
    format!("whsec_{}", B64.encode(bytes))
}

/// `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` under the secret (the
/// bytes after `whsec_`, base64-decoded).
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = B64.decode(secret.strip_prefix("whsec_").unwrap_or(secret)).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    Some(format!("v1,{}", B64.encode(mac.finalize().into_bytes())))
}

/// Whether an address is one a webhook may not reach without the operator's consent.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                // Shared address space (carrier-grade NAT), 100.64.0.0/10.
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || o[0] == 0
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // Unique local fc00::/7 and link-local fe80::/10.
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Why a target URL is refused, in words for the API.
pub fn check_url(raw: &str, allow_private: bool) -> Result<url::Url, &'static str> {
    if raw.len() > 2000 {
        return Err("is longer than 2000 characters");
    }
    let url = url::Url::parse(raw).map_err(|_| "is not a URL")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be http or https");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials");
    }
    match url.host() {
        None => return Err("has no host"),
        Some(url::Host::Ipv4(ip)) if !allow_private && is_private(IpAddr::V4(ip)) => {
            return Err("is a loopback or private address");
        }
        Some(url::Host::Ipv6(ip)) if !allow_private && is_private(IpAddr::V6(ip)) => {
            return Err("is a loopback or private address");
        }
        _ => {}
    }
    Ok(url)
}

/// Resolves names as the system does, then drops private addresses (unless allowed): the
/// connect-time check.
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> =
                addrs.iter().copied().filter(|a| allow_private || !is_private(a.ip())).collect();
            if allowed.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> = if addrs.is_empty() {
                    "no address".into()
                } else {
                    "refused: the name resolves to a loopback or private address".into()
                };
                return Err(err);
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// The HTTP client of deliveries: 10 s to answer, no redirects (a redirect could lead to
/// a private address), no proxy, and the guarded resolver.
pub fn client(allow_private: bool) -> anyhow::Result<Client> {
    let http = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(GuardedResolver { allow_private })
        .user_agent("Aiguillage-Webhooks/1")
        .build()?;
    Ok(Client { http, allow_private })
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    allow_private: bool,
}

/// Stores one delivery per live subscription that asked for this event and whose scope
/// it concerns. Runs in the consumer's transaction, after the read model moved.
pub async fn derive(tx: &mut PgConnection, env: &Envelope, event: &Inbound) -> sqlx::Result<()> {
    let (referral, structure): (Option<Uuid>, Option<String>) = match event {
        Inbound::ReferralSubmitted(e) => (Some(e.referral_id.into()), None),
        Inbound::ReferralOffered(e) => (Some(e.referral_id.into()), Some(e.structure_id.to_string())),
        Inbound::ReferralAccepted(e) => (Some(e.referral_id.into()), Some(e.structure_id.to_string())),
        Inbound::ReferralDeclined(e) => (Some(e.referral_id.into()), Some(e.structure_id.to_string())),
        Inbound::ReferralOfferExpired(e) => (Some(e.referral_id.into()), Some(e.structure_id.to_string())),
        Inbound::ReferralWaitlisted(e) => (Some(e.referral_id.into()), None),
        Inbound::ReferralContacted(e) => (Some(e.referral_id.into()), Some(e.structure_id.to_string())),
        Inbound::ReferralClosed(e) => (Some(e.referral_id.into()), Some(e.structure_id.to_string())),
        Inbound::ReferralCancelled(e) => (Some(e.referral_id.into()), e.structure_id.as_ref().map(|s| s.to_string())),
        Inbound::ReferralRerouted(e) => (Some(e.referral_id.into()), e.structure_id.as_ref().map(|s| s.to_string())),
        Inbound::StructureUpserted(e) => (None, Some(e.structure.id.to_string())),
        Inbound::StructureRemoved(e) => (None, Some(e.structure_id.to_string())),
        Inbound::CapacityChanged(e) => (None, Some(e.structure_id.to_string())),
        // Agents' accounts, and a structure's request for a new link, are Aiguillage's own
        // business: no subscription sees them.
        Inbound::ReferralAppointmentSet(e) => (Some(e.referral_id.into()), Some(e.structure_id.to_string())),
        Inbound::ReferralAppointmentCancelled(e) => (Some(e.referral_id.into()), Some(e.structure_id.to_string())),
        Inbound::ReferralAttendanceRecorded(e) => (Some(e.referral_id.into()), Some(e.structure_id.to_string())),
        Inbound::AccountUpserted(_)
        | Inbound::AccountRemoved(_)
        | Inbound::ReferralAnswerLinkRequested(_)
        | Inbound::ReferralPersonNoticeFailed(_) => {
            return Ok(());
        }
    };
    // One statement, whether or not anyone subscribed: the referral's organisation and
    // territory (else the structure's) are looked up beside the subscriptions.
    let body = serde_json::to_string(env).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query!(
        "INSERT INTO notify.webhook_deliveries (id, webhook_id, event_id, event_type, body)
         SELECT gen_random_uuid(), w.id, $1, $2, $3
         FROM notify.webhooks w
         LEFT JOIN notify.referrals r ON r.referral_id = $4
         LEFT JOIN notify.structures s ON s.id = $5
         WHERE w.deleted_at IS NULL AND $2 = ANY(w.events)
           AND (w.scope_kind = 'all'
                OR (w.scope_kind = 'organisation' AND w.scope_id = r.organisation_id::text)
                OR (w.scope_kind = 'structure' AND w.scope_id = $5)
                OR (w.scope_kind = 'territory'
                    AND COALESCE(r.territory, s.territory) = ANY(string_to_array(w.scope_id, ','))))
         ON CONFLICT (webhook_id, event_id) DO NOTHING",
        env.id,
        &env.event_type,
        body,
        referral,
        structure
    )
    .execute(tx)
    .await?;
    Ok(())
}

#[derive(Debug, Clone)]
struct Claimed {
    id: Uuid,
    webhook_id: Uuid,
    event_id: Uuid,
    body: String,
    attempts: i32,
    created_at: DateTime<Utc>,
    url: String,
    secret: String,
}

/// Backoff after `attempts` failed tries: 5 s, 10 s, 20 s … up to an hour.
pub fn backoff(attempts: i32) -> Duration {
    let exp = attempts.clamp(0, 20) as u32;
    Duration::from_secs(5u64.saturating_mul(1u64 << exp)).min(MAX_BACKOFF)
}

pub async fn run(pool: PgPool, client: Client, shutdown: CancellationToken) {
    // Each delivery runs on its own: a receiver that hangs holds one permit for at most
    // the timeout, and never the others.
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    while !shutdown.is_cancelled() {
        let free = permits.available_permits();
        let pause = if free == 0 {
            IDLE
        } else {
            match claim(&pool, free as i64).await {
                Ok(claimed) if claimed.is_empty() => IDLE,
                Ok(claimed) => {
                    for d in claimed {
                        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else { break };
                        let (pool, client) = (pool.clone(), client.clone());
                        tokio::spawn(async move {
                            if let Err(err) = deliver(&pool, &client, &d).await {
                                tracing::warn!(error = %err, delivery = %d.id, "webhook delivery not recorded");
                            }
                            drop(permit);
                        });
                    }
                    Duration::ZERO
                }
                Err(err) => {
                    tracing::warn!(error = %err, "webhook outbox unavailable; retrying");
                    Duration::from_secs(1)
                }
            }
        };
        if pause > Duration::ZERO {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// The due deliveries, claimed for a minute. The status is written out, not a parameter,
/// so that every plan uses the partial index `WHERE status = 'pending'`.
async fn claim(pool: &PgPool, limit: i64) -> sqlx::Result<Vec<Claimed>> {
    sqlx::query_as!(
        Claimed,
        r#"WITH c AS (
             UPDATE notify.webhook_deliveries SET claimed_until = now() + interval '1 minute'
             WHERE id IN (SELECT id FROM notify.webhook_deliveries
                          WHERE status = 'pending' AND next_attempt_at <= now()
                            AND (claimed_until IS NULL OR claimed_until < now())
                          ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING id, webhook_id, event_id, body, attempts, created_at)
           SELECT c.id AS "id!", c.webhook_id AS "webhook_id!", c.event_id AS "event_id!", c.body AS "body!",
                  c.attempts AS "attempts!", c.created_at AS "created_at!", w.url, w.secret
           FROM c JOIN notify.webhooks w ON w.id = c.webhook_id"#,
        limit
    )
    .fetch_all(pool)
    .await
}

/// Delivers every delivery that is due, one after the other, and returns how many were
/// tried. Tests step the deliverer with this.
pub async fn deliver_due(pool: &PgPool, client: &Client) -> sqlx::Result<usize> {
    let claimed = claim(pool, 100).await?;
    for d in &claimed {
        deliver(pool, client, d).await?;
    }
    Ok(claimed.len())
}

async fn deliver(pool: &PgPool, client: &Client, d: &Claimed) -> sqlx::Result<()> {
    let result = post(client, d).await;
    match result {
        Ok(()) => {
            sqlx::query!(
                "UPDATE notify.webhook_deliveries SET status = $2, delivered_at = now(),
                     attempts = attempts + 1, claimed_until = NULL, last_error = NULL WHERE id = $1",
                d.id,
                DeliveryStatus::Delivered.slug()
            )
            .execute(pool)
            .await?;
            // A subscription that answers again is no longer failing.
            sqlx::query!("UPDATE notify.webhooks SET failing = false WHERE id = $1 AND failing", d.webhook_id)
                .execute(pool)
                .await?;
        }
        Err(reason) => {
            let give_up = Utc::now() - d.created_at >= GIVE_UP_AFTER;
            let status = if give_up { DeliveryStatus::Dead } else { DeliveryStatus::Pending };
            let retry_in = chrono::Duration::from_std(backoff(d.attempts)).unwrap_or(chrono::Duration::hours(1));
            sqlx::query!(
                "UPDATE notify.webhook_deliveries SET attempts = attempts + 1, claimed_until = NULL,
                     last_error = $2, next_attempt_at = $3, status = $4
                 WHERE id = $1",
                d.id,
                &reason,
                Utc::now() + retry_in,
                status.slug()
            )
            .execute(pool)
            .await?;
            if give_up {
                sqlx::query!("UPDATE notify.webhooks SET failing = true WHERE id = $1", d.webhook_id)
                    .execute(pool)
                    .await?;
                tracing::warn!(webhook = %d.webhook_id, "webhook failing: 24 hours without an answer");
            } else {
                tracing::info!(webhook = %d.webhook_id, attempts = d.attempts + 1, %reason, "webhook delivery retried later");
            }
        }
    }
    Ok(())
}

async fn post(client: &Client, d: &Claimed) -> Result<(), String> {
    // The literal-address case: the resolver is not asked for an IP in the URL.
    check_url(&d.url, client.allow_private).map_err(|e| format!("refused: the URL {e}"))?;
    let timestamp = Utc::now().timestamp();
    let id = d.event_id.to_string();
    let signature = sign(&d.secret, &id, timestamp, &d.body).ok_or("the secret is unreadable")?;
    let response = client
        .http
        .post(&d.url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(d.body.clone())
        .send()
        .await
        .map_err(|e| describe(&e))?;
    if response.status().is_success() { Ok(()) } else { Err(format!("HTTP {}", response.status().as_u16())) }
}

fn describe(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    let mut text = String::new();
    while let Some(s) = source {
        if text.len() < 300 {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&s.to_string());
        }
        source = s.source();
    }
    if e.is_timeout() { format!("timeout: {text}") } else { text }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_webhooks_example_signature() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = r#"{"test": 2432232314}"#;
        let sig = sign(secret, id, 1614265330, body).unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn private_and_loopback_addresses_are_known() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1::1", "1.1.1.1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn target_urls_are_checked() {
        assert!(check_url("https://hooks.example.org/x", false).is_ok());
        for bad in [
            "ftp://x.example",
            "http://127.0.0.1:9/x",
            "http://[::1]/",
            "http://10.0.0.1/",
            "not a url",
            "http://u:p@x.example/",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        assert!(check_url("http://127.0.0.1:9/x", true).is_ok());
        // A name is checked where it matters, at connect time, on what it resolves to.
        assert!(check_url("http://localhost:9/x", false).is_ok());
    }

    #[test]
    fn secrets_are_whsec_base64_and_sign() {
        let s = new_secret();
        assert!(s.starts_with("whsec_"));
        assert_eq!(B64.decode(&s[6..]).unwrap().len(), 24);
        assert!(sign(&s, "a", 1, "{}").unwrap().starts_with("v1,"));
    }

    #[test]
    fn webhook_backoff_is_exponential_and_bounded() {
        assert_eq!(backoff(0), Duration::from_secs(5));
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }
}
