//! The e-mail sender: claims due messages from the outbox in a short transaction, asks
//! accounts' API for the agents' addresses at that moment, sends over SMTP (lettre), and
//! records the result. A temporary failure (server down, 4xx) retries with backoff; a
//! permanent refusal (5xx) is recorded against the recipient and never blocks the others.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use platform::Config;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use contracts::StructureId;
use platform::client::CallError;

use crate::peers::Peers;
use crate::render::{ANSWER_LINK, Site};
use crate::store::{self, MessageStatus, StructureMessage};

const BATCH: i64 = 32;
const CONCURRENCY: usize = 4;
const IDLE: Duration = Duration::from_millis(250);
/// Longest wait between two attempts of one message: a server down for ten minutes is
/// tried again within this of coming back.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The SMTP transport (platform's, which referrals uses too for the person's e-mails),
/// with what notify adds: the `List-Unsubscribe` target of agents' messages.
pub struct Mailer {
    transport: platform::mail::Mailer,
    /// The preferences page (no token, nothing personal).
    unsubscribe: String,
}

impl Mailer {
    /// `None` when `AIGUILLAGE_SMTP_URL` is unset (e-mail off).
    pub fn from_config(config: &Config) -> Result<Option<Self>, platform::mail::MailerConfigError> {
        let unsubscribe = crate::Settings::from_config(config).site.preferences();
        Ok(platform::mail::Mailer::from_config(config)?.map(|transport| Self { transport, unsubscribe }))
    }

    async fn send(&self, to: &str, m: &Outgoing) -> Result<(), Outcome> {
        // An agent unsubscribes on their preferences page; a structure's public address
        // has no preferences.
        let unsubscribe = m.to_agent.then(|| format!("<{}>", self.unsubscribe));
        let mail = platform::mail::Mail {
            message_id: m.id,
            subject: &m.subject,
            text: &m.text,
            html: &m.html,
            list_unsubscribe: unsubscribe.as_deref(),
        };
        self.transport.send(to, &mail).await.map_err(|e| match e {
            platform::mail::SendError::Retry(why) => Outcome::Retry(why),
            platform::mail::SendError::Permanent(why) => Outcome::Permanent(why),
        })
    }
}

#[derive(Debug)]
enum Outcome {
    Retry(String),
    Permanent(String),
    /// Not to be sent any more: the offer its link was for has ended.
    Withdrawn(String),
}

#[derive(Debug)]
struct Claimed {
    id: Uuid,
    kind: String,
    account_id: Option<Uuid>,
    address: Option<String>,
    referral_id: Option<Uuid>,
    structure_id: Option<StructureId>,
    subject: String,
    body_text: String,
    body_html: String,
    attempts: i32,
}

/// A message as it goes: its answer link, if it carries one, filled in.
struct Outgoing {
    id: Uuid,
    subject: String,
    text: String,
    html: String,
    to_agent: bool,
}

pub async fn run(pool: PgPool, mailer: Arc<Mailer>, peers: Peers, site: Site, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        if let Err(err) = withdraw_due(&pool, &peers).await {
            tracing::warn!(error = %err, "withdrawals of unreachable offers unavailable; retrying");
        }
        let pause = match send_due(&pool, &mailer, &peers, &site).await {
            Ok(n) if n > 0 => Duration::ZERO,
            Ok(_) => IDLE,
            Err(err) => {
                tracing::warn!(error = %err, "e-mail outbox unavailable; retrying");
                Duration::from_secs(1)
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

/// Backoff after `attempts` failed tries: 1 s, 2 s, 4 s … up to [`MAX_BACKOFF`].
pub fn backoff(attempts: i32) -> Duration {
    let exp = attempts.clamp(0, 16) as u32;
    Duration::from_secs(1u64 << exp).min(MAX_BACKOFF)
}

/// Sends every message that is due, and returns how many were tried. Tests step the
/// sender with this. Agents' addresses are asked of accounts for this batch only, and an
/// answer link of referrals for each message that carries one ([`Peers`]); while a peer
/// cannot answer, the messages that need it wait, and the others go on. A structure's
/// address that refuses an offer for good has the offer withdrawn at once.
pub async fn send_due(pool: &PgPool, mailer: &Mailer, peers: &Peers, site: &Site) -> sqlx::Result<usize> {
    // Claimed for two minutes in a short transaction: no lock is held across SMTP, and a
    // sender that dies leaves its claim to expire. The status is written out, not a
    // parameter: a prepared statement's generic plan cannot use the partial index
    // `WHERE status = 'pending'`, and would read every message ever sent at each round.
    let claimed = sqlx::query_as!(
        Claimed,
        r#"UPDATE notify.messages SET claimed_until = now() + interval '2 minutes'
           WHERE id IN (SELECT id FROM notify.messages
                        WHERE status = 'pending' AND next_attempt_at <= now()
                          AND (claimed_until IS NULL OR claimed_until < now())
                        ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
           RETURNING id, kind, account_id, address, referral_id, structure_id AS "structure_id: StructureId",
                     subject, body_text, body_html, attempts"#,
        BATCH
    )
    .fetch_all(pool)
    .await?;
    if claimed.is_empty() {
        return Ok(0);
    }
    let accounts: Vec<Uuid> = claimed.iter().filter_map(|m| m.account_id).collect();
    let addresses = peers.addresses(&accounts).await.map_err(|err| {
        if err.is_transient() {
            tracing::warn!(error = %err, "accounts cannot give agents' addresses now; their messages wait");
        } else {
            tracing::error!(error = %err, "accounts refused to give agents' addresses");
        }
        err
    });
    let n = claimed.len();
    let mut sends = Vec::with_capacity(n);
    for m in &claimed {
        let to = match (m.account_id, &m.address, &addresses) {
            (Some(a), _, Ok(found)) => found
                .get(&a)
                .map(|e| e.expose().clone())
                .ok_or(Outcome::Permanent("no address for the recipient".into())),
            (Some(_), _, Err(_)) => Err(Outcome::Retry("accounts could not give the address".into())),
            (None, Some(address), _) => Ok(address.clone()),
            (None, None, _) => Err(Outcome::Permanent("no address for the recipient".into())),
        };
        sends.push(async move {
            let result = match to {
                Ok(to) => match outgoing(m, peers, site).await {
                    Ok(out) => mailer.send(&to, &out).await,
                    Err(outcome) => Err(outcome),
                },
                Err(outcome) => Err(outcome),
            };
            (m, result)
        });
    }
    let results: Vec<(&Claimed, Result<(), Outcome>)> =
        futures::stream::iter(sends).buffer_unordered(CONCURRENCY).collect().await;
    // Every result of the batch in one transaction: one commit (one WAL flush) per batch
    // instead of one per message, and a bounce recorded with its message's failure.
    let mut ids = Vec::with_capacity(n);
    let mut outcomes = Vec::with_capacity(n);
    let mut backoffs = Vec::with_capacity(n);
    let mut errors: Vec<Option<&str>> = Vec::with_capacity(n);
    for (m, result) in &results {
        ids.push(m.id);
        // `None`: tried again later, the status unchanged.
        let (outcome, error) = match result {
            Ok(()) => (Some(MessageStatus::Sent), None),
            Err(Outcome::Retry(reason)) => (None, Some(reason.as_str())),
            Err(Outcome::Permanent(reason)) => (Some(MessageStatus::Failed), Some(reason.as_str())),
            Err(Outcome::Withdrawn(reason)) => (Some(MessageStatus::Withdrawn), Some(reason.as_str())),
        };
        outcomes.push(outcome);
        errors.push(error);
        backoffs.push(i64::try_from(backoff(m.attempts).as_millis()).unwrap_or(i64::MAX));
    }
    let outcomes: Vec<Option<&str>> = outcomes.iter().map(|o| o.map(MessageStatus::slug)).collect();
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "UPDATE notify.messages m SET
             status = COALESCE(r.outcome, m.status),
             sent_at = CASE WHEN r.outcome = $5 THEN now() ELSE m.sent_at END,
             next_attempt_at = CASE WHEN r.outcome IS NULL THEN now() + r.backoff_ms * interval '1 millisecond'
                                    ELSE m.next_attempt_at END,
             attempts = m.attempts + 1, claimed_until = NULL, error = r.error
         FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[]) AS r(id, outcome, backoff_ms, error)
         WHERE m.id = r.id",
        &ids,
        &outcomes as &[Option<&str>],
        &backoffs,
        &errors as &[Option<&str>],
        MessageStatus::Sent.slug()
    )
    .execute(&mut *tx)
    .await?;
    for (m, result) in &results {
        // A structure's public address refused a link for good: nobody will answer there.
        if let (Err(Outcome::Permanent(_)), Some(kind), Some(structure)) =
            (result, StructureMessage::of(&m.kind), m.structure_id.as_ref())
        {
            let offer = (kind == StructureMessage::AnswerLinkOffer).then_some(m.referral_id).flatten();
            store::bounced(&mut tx, structure, offer).await?;
        }
    }
    tx.commit().await?;
    for (m, result) in results {
        let id = m.id;
        match result {
            Ok(()) => tracing::debug!(message_id = %id, "e-mail sent"),
            Err(Outcome::Retry(reason)) => {
                tracing::info!(message_id = %id, attempts = m.attempts, %reason, "e-mail deferred")
            }
            Err(Outcome::Permanent(reason)) => tracing::warn!(message_id = %id, %reason, "e-mail refused for good"),
            Err(Outcome::Withdrawn(reason)) => tracing::info!(message_id = %id, %reason, "e-mail withdrawn"),
        }
    }
    Ok(n)
}

/// The message as it goes out. One that carries an answer link gets a fresh one from
/// referrals now: the token lives in this e-mail and nowhere else.
async fn outgoing(m: &Claimed, peers: &Peers, site: &Site) -> Result<Outgoing, Outcome> {
    let mut out = Outgoing {
        id: m.id,
        subject: m.subject.clone(),
        text: m.body_text.clone(),
        html: m.body_html.clone(),
        to_agent: m.account_id.is_some(),
    };
    if StructureMessage::of(&m.kind).is_none() {
        return Ok(out);
    }
    let (Some(referral), Some(structure)) = (m.referral_id, m.structure_id.as_ref()) else {
        return Err(Outcome::Permanent("a link without its referral".into()));
    };
    match peers.mint_link(referral.into(), structure).await {
        Ok(link) => {
            let url = site.url(&link.path);
            out.text = out.text.replace(ANSWER_LINK, &url);
            out.html = out.html.replace(ANSWER_LINK, &crate::render::escape(&url));
            Ok(out)
        }
        Err(CallError::Status { status, .. }) if matches!(status.as_u16(), 404 | 409) => {
            Err(Outcome::Withdrawn(format!("no link to give: {status}")))
        }
        Err(err) if err.is_transient() => Err(Outcome::Retry("referrals could not give the link".into())),
        Err(err) => {
            tracing::error!(error = %err, "referrals refused an answer link");
            Err(Outcome::Retry("referrals refused the link".into()))
        }
    }
}

/// How many withdrawals one round asks for.
const WITHDRAW_BATCH: i64 = 16;

/// Asks referrals to withdraw the offers whose structure's address refused them for good,
/// until it has answered: a 200, or a 404 or 409 (the offer had moved on). Returns how
/// many were tried.
pub async fn withdraw_due(pool: &PgPool, peers: &Peers) -> sqlx::Result<usize> {
    // No connection is held across the calls: in one process, referrals answers them
    // from the same database.
    let due = store::due_withdrawals(&mut *pool.acquire().await?, WITHDRAW_BATCH).await?;
    for w in &due {
        let retry = match peers.withdraw(w.referral_id.into(), &w.structure_id).await {
            Ok(()) => None,
            Err(CallError::Status { status, .. }) if matches!(status.as_u16(), 404 | 409) => None,
            Err(err) => {
                tracing::warn!(error = %err, referral_id = %w.referral_id, "an unreachable offer is not withdrawn yet");
                Some(chrono::Duration::from_std(backoff(w.attempts)).unwrap_or(chrono::Duration::minutes(1)))
            }
        };
        store::withdrawal_tried(&mut *pool.acquire().await?, w, retry).await?;
        if retry.is_none() {
            tracing::info!(referral_id = %w.referral_id, structure_id = %w.structure_id, "unreachable offer withdrawn");
        }
    }
    Ok(due.len())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(10), MAX_BACKOFF);
        assert_eq!(backoff(1000), MAX_BACKOFF);
        assert_eq!(backoff(-1), Duration::from_secs(1));
    }
}
