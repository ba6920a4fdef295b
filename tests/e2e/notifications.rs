//! Issue 14: notifications, against the real capture SMTP server (deploy/dev/smtp) and
//! real HTTP receivers. Every message of the table reaches its recipients and no
//! one else, and none carries anything of the person; the SMTP server down then back
//! loses nothing and doubles nothing; a replayed event sends nothing more; preferences
//! are honoured; webhooks are signed, retried, never block each other, and a private
//! target is refused at connect time.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use contracts::Role;
use hmac::{Hmac, Mac};
use platform::auth::Scope;
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;

use crate::support::smtp::{Captured, SmtpServer};
use crate::support::*;

const NAME: [&str; 2] = ["Camille", "Essai"];
const PHONE: [&str; 3] = ["+33612345678", "0612345678", "612345678"];
const PERSON_EMAIL: &str = "camille.essai@perso.example";
const NOTE: &str = "Dossier CAF";
/// What `sign_in_agent` records as every agent's name.
const AGENT_NAME: [&str; 2] = ["Claire", "Dubois"];

fn person_referral(needs: &[&str]) -> Value {
    merged(referral(), json!({"needs": needs, "person": {"email": PERSON_EMAIL}}))
}

/// An agent signed in with one membership, and a token for it. The membership is
/// granted as accounts grants it (announced on the bus in the same transaction); this
/// returns once notify has learnt it, as it would by the time any offer reaches it.
async fn agent(app: &TestApp, email: &str, role: Role, scope: Scope) -> (Uuid, String) {
    let account = app.sign_in_agent(&format!("sub-{email}"), email, None).await;
    let membership = Uuid::now_v7();
    let (org, structure, territories): (Option<Uuid>, Option<String>, Vec<String>) = match &scope {
        Scope::Organisation(o) => (Some((*o).into()), None, vec![]),
        Scope::Structure(s) => (None, Some(s.to_string()), vec![]),
        Scope::Territories(t) => (None, None, t.iter().map(|t| t.to_string()).collect()),
        _ => (None, None, vec![]),
    };
    let pool = app.sandbox.pool().await;
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO accounts.memberships (id, account_id, role, organisation_id, structure_id, territories, granted_by)
         VALUES ($1, $2, $3, $4, $5, $6, 'test')",
    )
    .bind(membership)
    .bind(account)
    .bind(role.to_string())
    .bind(org)
    .bind(structure)
    .bind(territories)
    .execute(&mut *tx)
    .await
    .unwrap();
    accounts::announce::account(&mut tx, account).await.unwrap();
    tx.commit().await.unwrap();
    notify_knows(app, membership).await;
    pool.close().await;
    (account, app.agent(account, Some((membership, role, scope))))
}

/// Waits until notify's read model holds this membership.
async fn notify_knows(app: &TestApp, membership: Uuid) {
    let pool = app.sandbox.pool().await;
    eventually("notify to learn the membership", Duration::from_secs(60), || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notify.memberships WHERE membership_id = $1")
            .bind(membership)
            .fetch_one(&pool)
            .await
            .unwrap();
        (n == 1).then_some(())
    })
    .await;
    pool.close().await;
}

/// Waits until notify's read model holds an agent's choice for one kind of message.
async fn notify_knows_choice(app: &TestApp, account: Uuid, kind: &str, mode: &str) {
    let pool = app.sandbox.pool().await;
    eventually(&format!("notify to learn {kind}: {mode}"), Duration::from_secs(60), || async {
        let known: Option<String> =
            sqlx::query_scalar("SELECT preferences ->> $2 FROM notify.agents WHERE account_id = $1")
                .bind(account)
                .bind(kind)
                .fetch_optional(&pool)
                .await
                .unwrap()
                .flatten();
        (known.as_deref() == Some(mode)).then_some(())
    })
    .await;
    pool.close().await;
}

fn structure_scope(id: &str) -> Scope {
    Scope::Structure(id.parse().unwrap())
}

fn with_contact(mut body: Value, email: &str) -> Value {
    body["contact"]["email"] = json!(email);
    body
}

/// Waits for a message to `to` whose subject contains `subject`.
async fn until_mail(smtp: &SmtpServer, to: &str, subject: &str) -> Captured {
    eventually(&format!("an e-mail {subject:?} to {to}"), Duration::from_secs(60), || async {
        smtp.messages().into_iter().find(|m| m.rcpt_tos.iter().any(|r| r == to) && m.subject().contains(subject))
    })
    .await
}

fn count(messages: &[Captured], to: &str, subject: &str) -> usize {
    messages.iter().filter(|m| m.rcpt_tos.iter().any(|r| r == to) && m.subject().contains(subject)).count()
}

/// Nothing of the person, nor the agents' names, in any header or part.
fn assert_no_personal_data(messages: &[Captured]) {
    assert!(!messages.is_empty());
    for m in messages {
        let all = format!("{}\n{}", m.eml, m.text());
        for needle in NAME.iter().chain(PHONE.iter()).chain(AGENT_NAME.iter()).chain([PERSON_EMAIL, NOTE].iter()) {
            assert!(!all.contains(needle), "{needle:?} found in {:?}:\n{}", m.subject(), m.text());
        }
    }
}

async fn scalar_i64(app: &TestApp, sql: &'static str) -> i64 {
    let pool = app.sandbox.pool().await;
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
    pool.close().await;
    n
}

/// Steps the notification timers as if it were `ahead` from now (digests of tomorrow,
/// next week).
async fn fire_timers_ahead(app: &TestApp, ahead: chrono::Duration) -> usize {
    let pool = app.sandbox.pool().await;
    let settings = notify::Settings::from_config(&app.sandbox.config);
    let n = notify::timers::fire_due(&pool, &settings, chrono::Utc::now() + ahead).await.unwrap();
    pool.close().await;
    n
}

#[tokio::test]
async fn every_message_of_the_table_reaches_its_recipients_and_carries_nothing_of_the_person() {
    let smtp = SmtpServer::start(&[("SMTP_REJECT", "*@rejected.example")]).await;
    let url = smtp.url();
    let app = TestApp::spawn_with(|c| {
        c.smtp_url = Some(url);
        c.public_url = Some("https://aiguillage.example".into());
        c.offer_reminder_after = Duration::from_secs(1);
        c.contact_reminder_after = Duration::from_secs(1);
    })
    .await;
    let org = app.organisation("16").await;
    app.structure("lieu-un", structure("Lieu Un", 45.6500, 0.1600, &[AIDE], 5)).await;
    app.structure(
        "lieu-deux",
        with_contact(structure("Lieu Deux", 45.7500, 0.2500, &[AIDE], 5), "accueil@lieu-deux.example"),
    )
    .await;
    let (_, referrer) = agent(&app, "ref@social.example", Role::Referrer, Scope::Organisation(org.into())).await;
    agent(&app, "med1@lieux.example", Role::Mediator, structure_scope("lieu-un")).await;
    let (bounced, _) = agent(&app, "med2@rejected.example", Role::Mediator, structure_scope("lieu-un")).await;
    agent(&app, "coord@territoire.example", Role::Coordinator, Scope::Territories(vec!["16".parse().unwrap()])).await;
    let mediator = app.mediator("lieu-un");

    // An offer reaches a structure: its mediators at once; a day later (here a second)
    // the reminder.
    let r1 = app.submit(&referrer, person_referral(&[AIDE])).await;
    app.until_status(&r1, &referrer, "offered").await;
    let offer = until_mail(&smtp, "med1@lieux.example", "Nouvelle proposition").await;
    assert!(offer.text().contains(&format!("https://aiguillage.example/propositions/{r1}")), "{}", offer.text());
    assert!(offer.text().contains("Aide aux démarches administratives"), "{}", offer.text());
    assert!(offer.text().contains("Angoulême"), "{}", offer.text());
    until_mail(&smtp, "med1@lieux.example", "Rappel : une proposition").await;
    // Accepted: the referrer; no first contact a week (a second) later: the structure.
    app.step(&r1, "accept", &mediator, json!({})).await;
    let accepted = until_mail(&smtp, "ref@social.example", "acceptée").await;
    assert!(accepted.text().contains(&format!("https://aiguillage.example/orientations/{r1}")));
    assert!(accepted.text().contains("Lieu Un"));
    until_mail(&smtp, "med1@lieux.example", "premier contact").await;
    app.step(&r1, "contact", &mediator, json!({"kind": "first_contact"})).await;
    app.step(&r1, "close", &mediator, json!({"outcome": "completed"})).await;
    let closed = until_mail(&smtp, "ref@social.example", "clôturée").await;
    assert!(closed.text().contains(contracts::Outcome::Completed.label_fr()), "{}", closed.text());

    // Declined with the reason: the referrer. The next structure has nobody signed up:
    // its public address gets the offer, with a link to answer without an account.
    let r3 = app.submit(&referrer, person_referral(&[AIDE])).await;
    app.until_attempt(&r3, &referrer, 1, "offered").await;
    app.step(&r3, "decline", &mediator, json!({"reason": "out_of_area"})).await;
    let declined = until_mail(&smtp, "ref@social.example", "refusée").await;
    assert!(declined.text().contains(contracts::DeclineReason::OutOfArea.label_fr()), "{}", declined.text());
    let v = app.until_attempt(&r3, &referrer, 2, "offered").await;
    assert_eq!(v["current_offer"]["structure_id"], "lieu-deux");
    let invitation = until_mail(&smtp, "accueil@lieu-deux.example", "Nouvelle orientation").await;
    assert!(invitation.text().contains("Lieu Deux"), "{}", invitation.text());
    assert!(invitation.text().contains("https://aiguillage.example/reponse/"), "{}", invitation.text());

    // Waitlisted: the referrer at once; the coordinators in the daily digest.
    let r2 = app.submit(&referrer, person_referral(&["loisirs_creations"])).await;
    app.until_status(&r2, &referrer, "waitlisted").await;
    until_mail(&smtp, "ref@social.example", "liste d'attente").await;
    eventually("the coordinator's message held for the digest", Duration::from_secs(20), || async {
        (scalar_i64(&app, "SELECT count(*) FROM notify.messages WHERE kind = 'territory_waitlist' AND status = 'held'")
            .await
            == 1)
            .then_some(())
    })
    .await;
    assert!(fire_timers_ahead(&app, chrono::Duration::days(2)).await >= 1);
    let digest = until_mail(&smtp, "coord@territoire.example", "récapitulatif").await;
    assert!(digest.text().contains("Orientation en attente sur votre territoire"), "{}", digest.text());
    assert!(digest.text().contains(&format!("/territoire/orientations/{r2}")), "{}", digest.text());
    // Stale referrals: the coordinators, weekly, with the structures nobody can be told.
    fire_timers_ahead(&app, chrono::Duration::days(9)).await;
    let weekly = until_mail(&smtp, "coord@territoire.example", "bilan de la semaine").await;
    assert!(weekly.text().contains(&format!("/territoire/orientations/{r2}")), "{}", weekly.text());
    assert!(weekly.text().contains("Lieu Deux"), "{}", weekly.text());

    // The coordinator sees which structures have no one; the admin sees the refusal.
    let (s, v) = app.get("/api/v1/notifications/unreached-structures", &app.coordinator(&["16"])).await;
    assert_eq!(s, 200, "{v}");
    let ids: Vec<&str> = v["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["lieu-deux"], "{v}");
    assert_eq!(v["items"][0]["has_contact_email"], true);
    let (s, _) = app.get("/api/v1/notifications/unreached-structures?territory=75", &app.coordinator(&["16"])).await;
    assert_eq!(s, 404);
    let (s, _) = app.get("/api/v1/notifications/failures", &mediator).await;
    assert_eq!(s, 403);
    let failures = eventually("the refusal shown to admins", Duration::from_secs(20), || async {
        let (s, v) = app.get("/api/v1/notifications/failures", &app.admin).await;
        assert_eq!(s, 200, "{v}");
        let items = v["items"].as_array().unwrap().clone();
        (!items.is_empty()).then_some(items)
    })
    .await;
    assert!(failures.iter().all(|f| f["account_id"] == json!(bounced)), "{failures:?}");
    assert!(failures[0]["error"].as_str().unwrap().starts_with("550"), "{failures:?}");

    let all = smtp.messages();
    // Who was told what, and nobody else.
    assert!(count(&all, "med1@lieux.example", "Nouvelle proposition") >= 2);
    for subject in ["Nouvelle proposition", "Rappel", "premier contact"] {
        assert!(
            all.iter().filter(|m| m.subject().contains(subject)).all(|m| m.rcpt_tos == ["med1@lieux.example"]),
            "{subject}"
        );
    }
    for subject in ["acceptée", "refusée", "clôturée", "liste d'attente"] {
        assert_eq!(count(&all, "ref@social.example", subject), 1, "{subject}");
        assert!(all.iter().filter(|m| m.subject().contains(subject)).all(|m| m.rcpt_tos == ["ref@social.example"]));
    }
    assert_eq!(count(&all, "accueil@lieu-deux.example", "Nouvelle orientation"), 1, "one e-mail per offer");
    assert!(all.iter().all(|m| m.rcpt_tos.len() == 1 && !m.rcpt_tos[0].ends_with("@rejected.example")));
    // Each message: text and HTML; to an agent, a List-Unsubscribe header and the
    // preferences link; to a structure's public address, how to create an account.
    for m in &all {
        assert!(m.eml.contains("text/html") && m.eml.contains("text/plain"), "{}", m.subject());
        if m.rcpt_tos == ["accueil@lieu-deux.example"] {
            assert_eq!(m.header("List-Unsubscribe"), None, "a public address has no preferences");
            assert!(m.text().contains("Créer un compte pour votre structure"), "{}", m.text());
            continue;
        }
        assert_eq!(m.header("List-Unsubscribe").as_deref(), Some("<https://aiguillage.example/compte/notifications>"));
        assert!(m.text().contains("https://aiguillage.example/compte/notifications"), "{}", m.subject());
    }
    assert_no_personal_data(&all);
    app.stop().await;
}

/// The messages of the notify queue not yet acknowledged (ready and unacked).
fn queue_depth(namespace: &str) -> Option<i64> {
    let out = std::process::Command::new("rabbitmqctl")
        .args(["list_queues", "--quiet", "--formatter", "json", "name", "messages"])
        .output()
        .ok()?;
    let queues: Value = serde_json::from_slice(&out.stdout).ok()?;
    queues.as_array()?.iter().find(|q| q["name"] == format!("{namespace}.notify")).and_then(|q| q["messages"].as_i64())
}

#[tokio::test]
async fn with_the_smtp_server_down_nothing_is_lost_and_a_replayed_event_sends_nothing_more() {
    let smtp = SmtpServer::start(&[]).await;
    let url = smtp.url();
    let app = TestApp::spawn_with(|c| {
        c.smtp_url = Some(url);
        c.offer_reminder_after = Duration::from_secs(2);
    })
    .await;
    let org = app.organisation("16").await;
    app.structure("lieu-un", structure("Lieu Un", 45.6500, 0.1600, &[AIDE], 10)).await;
    let (_, referrer) = agent(&app, "ref@social.example", Role::Referrer, Scope::Organisation(org.into())).await;
    agent(&app, "med1@lieux.example", Role::Mediator, structure_scope("lieu-un")).await;

    smtp.kill().await;
    let mut ids = vec![];
    for _ in 0..3 {
        let id = app.submit(&referrer, person_referral(&[AIDE])).await;
        app.until_status(&id, &referrer, "offered").await;
        ids.push(id);
    }
    // The offers, and the reminders that fell due while the server was stopped, wait in
    // the outbox; the sender has tried and failed.
    eventually("3 offers and 3 reminders queued and tried", Duration::from_secs(30), || async {
        let queued =
            scalar_i64(&app, "SELECT count(*) FROM notify.messages WHERE status = 'pending' AND attempts > 0").await;
        (queued == 6).then_some(())
    })
    .await;
    assert!(smtp.messages().is_empty());

    smtp.restart().await;
    eventually("every message sent", Duration::from_secs(90), || async {
        (scalar_i64(&app, "SELECT count(*) FROM notify.messages WHERE status = 'sent'").await == 6).then_some(())
    })
    .await;
    let all = smtp.messages();
    assert_eq!(all.len(), 6, "each message exactly once");
    let message_ids: BTreeSet<String> = all.iter().map(|m| m.header("Message-ID").unwrap()).collect();
    assert_eq!(message_ids.len(), 6);
    for id in &ids {
        assert_eq!(all.iter().filter(|m| m.text().contains(&format!("/propositions/{id}"))).count(), 2, "{id}");
    }

    // The same referral.offered again (same message id): acknowledged, nothing more.
    let pool = app.sandbox.pool().await;
    let (event_id,): (Uuid,) =
        sqlx::query_as("SELECT message_id FROM notify.inbox WHERE event_type = 'referral.offered' LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    let referral_id: Uuid = sqlx::query_scalar("SELECT referral_id FROM notify.messages WHERE source_id = $1")
        .bind(event_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    let now = chrono::Utc::now();
    let offered = contracts::events::ReferralOffered {
        referral_id: referral_id.into(),
        structure_id: "lieu-un".parse().unwrap(),
        attempt: 1,
        offered_at: now,
        expires_at: now + chrono::Duration::hours(72),
        score: 1.0,
        distance_km: 1.0,
        explanation: vec![],
        reasons: vec![],
        reservation_id: Uuid::now_v7(),
    };
    let mut envelope = contracts::Envelope::new(referral_id.to_string(), 2, &offered);
    envelope.id = event_id;
    publish(&app.sandbox.namespace, &envelope).await;
    eventually("the replay to be consumed", Duration::from_secs(20), || async {
        (queue_depth(&app.sandbox.namespace) == Some(0)).then_some(())
    })
    .await;
    assert_eq!(scalar_i64(&app, "SELECT count(*) FROM notify.messages").await, 6);
    // The sender finds nothing new to send.
    assert_eq!(scalar_i64(&app, "SELECT count(*) FROM notify.messages WHERE status <> 'sent'").await, 0);
    assert_eq!(smtp.messages().len(), 6);
    assert_no_personal_data(&smtp.messages());

    // Sent messages are kept 30 days, then purged; the others stay.
    let pool = app.sandbox.pool().await;
    sqlx::query(
        "UPDATE notify.messages SET created_at = now() - interval '31 days'
         WHERE id IN (SELECT id FROM notify.messages ORDER BY id LIMIT 2)",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(notify::timers::purge(&pool).await.unwrap(), 2);
    assert_eq!(notify::timers::purge(&pool).await.unwrap(), 0);
    pool.close().await;
    assert_eq!(scalar_i64(&app, "SELECT count(*) FROM notify.messages").await, 4);
    app.stop().await;
}

async fn publish(namespace: &str, envelope: &contracts::Envelope) {
    use lapin::BasicProperties;
    use lapin::options::BasicPublishOptions;
    let conn = bus::connect(&amqp_url()).await.unwrap();
    let channel = bus::outbox::open_confirm_channel(&conn).await.unwrap();
    let props = BasicProperties::default()
        .with_message_id(envelope.id.to_string().into())
        .with_type(envelope.event_type.clone().into());
    channel
        .basic_publish(
            format!("{namespace}.events").into(),
            envelope.event_type.clone().into(),
            BasicPublishOptions { mandatory: true, immediate: false },
            &serde_json::to_vec(envelope).unwrap(),
            props,
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let _ = conn.close(200, "done".into()).await;
}

#[tokio::test]
async fn preferences_are_honoured_never_daily_and_immediate() {
    let smtp = SmtpServer::start(&[]).await;
    let url = smtp.url();
    let app = TestApp::spawn_with(|c| c.smtp_url = Some(url)).await;
    let org = app.organisation("16").await;
    app.structure("lieu-un", structure("Lieu Un", 45.6500, 0.1600, &[AIDE], 10)).await;
    let (_, referrer) = agent(&app, "ref@social.example", Role::Referrer, Scope::Organisation(org.into())).await;
    let (never_account, never) = agent(&app, "never@lieux.example", Role::Mediator, structure_scope("lieu-un")).await;
    let (daily_account, daily) = agent(&app, "daily@lieux.example", Role::Mediator, structure_scope("lieu-un")).await;
    agent(&app, "now@lieux.example", Role::Mediator, structure_scope("lieu-un")).await;
    let (changed_account, changed) =
        agent(&app, "changed@lieux.example", Role::Mediator, structure_scope("lieu-un")).await;

    let (s, v) = app.get("/api/v1/me/preferences", &never).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["offer_received"], "immediate");
    assert_eq!(v["territory_waitlist"], "daily");
    assert_eq!(v.as_object().unwrap().len(), 6, "{v}");
    let (s, v) = app.put("/api/v1/me/preferences", &never, json!({"offer_received": "never"})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["offer_received"], "never");
    assert_eq!(v["referral_update"], "immediate", "the others keep theirs");
    // Unsubscribed from everything (what the e-mails' link leads to).
    let everything: serde_json::Map<String, Value> =
        contracts::MessageKind::ALL.iter().map(|k| (k.slug().to_string(), json!("never"))).collect();
    let (s, v) = app.put("/api/v1/me/preferences", &never, Value::Object(everything)).await;
    assert_eq!(s, 200, "{v}");
    assert!(v.as_object().unwrap().values().all(|m| m == "never"), "{v}");
    for token in [&daily, &changed] {
        let (s, v) = app.put("/api/v1/me/preferences", token, json!({"offer_received": "daily"})).await;
        assert_eq!(s, 200, "{v}");
    }
    // Bad input: 422 naming the field; a bare token has no preferences.
    let (s, v) = app.put("/api/v1/me/preferences", &never, json!({"offer_received": "sometimes"})).await;
    assert_eq!(s, 422, "{v}");
    assert!(v.to_string().contains("offer_received"), "{v}");
    let (s, v) = app.put("/api/v1/me/preferences", &never, json!({"bogus": "never"})).await;
    assert_eq!(s, 422, "{v}");
    assert!(v.to_string().contains("bogus"), "{v}");
    let (s, _) = app.get("/api/v1/me/preferences", &app.mediator("lieu-un")).await;
    assert_eq!(s, 403);
    let (s, _, _) = app.request(reqwest::Method::GET, "/api/v1/me/preferences", None, None).await;
    assert_eq!(s, 401);
    let (s, v) = app.get("/api/v1/me/preferences", &never).await;
    assert_eq!((s, &v["offer_received"]), (200, &json!("never")), "a refused PUT changed nothing");
    // Notify learns the choices from accounts' events before the offer arrives.
    for (account, mode) in [(never_account, "never"), (daily_account, "daily"), (changed_account, "daily")] {
        notify_knows_choice(&app, account, "offer_received", mode).await;
    }

    let id = app.submit(&referrer, person_referral(&[AIDE])).await;
    app.until_status(&id, &referrer, "offered").await;
    until_mail(&smtp, "now@lieux.example", "Nouvelle proposition").await;
    eventually("the daily ones held", Duration::from_secs(20), || async {
        (scalar_i64(&app, "SELECT count(*) FROM notify.messages WHERE status = 'held'").await == 2).then_some(())
    })
    .await;
    // One of them changes their mind before the digest: what was held for them is
    // withdrawn, not sent.
    let (s, v) = app.put("/api/v1/me/preferences", &changed, json!({"offer_received": "never"})).await;
    assert_eq!(s, 200, "{v}");
    notify_knows_choice(&app, changed_account, "offer_received", "never").await;
    assert!(fire_timers_ahead(&app, chrono::Duration::days(2)).await >= 1);
    let digest = until_mail(&smtp, "daily@lieux.example", "récapitulatif").await;
    assert!(digest.text().contains(&format!("/propositions/{id}")), "{}", digest.text());
    let all = smtp.messages();
    assert!(all.iter().all(|m| m.rcpt_tos != ["never@lieux.example"]), "never means never");
    // (The offer reminder, which they still want, reaches them: the two days stepped
    // ahead made it due.)
    for subject in ["Nouvelle proposition", "récapitulatif"] {
        assert_eq!(count(&all, "changed@lieux.example", subject), 0, "never, chosen after the hold, too: {subject}");
    }
    assert_eq!(scalar_i64(&app, "SELECT count(*) FROM notify.messages WHERE status = 'withdrawn'").await, 1);
    assert!(count(&all, "now@lieux.example", "Nouvelle proposition") == 1);
    assert_eq!(count(&all, "daily@lieux.example", "Nouvelle proposition"), 0, "daily waits for the digest");
    // The digest went once: stepping again sends no second one.
    fire_timers_ahead(&app, chrono::Duration::days(2)).await;
    assert_eq!(scalar_i64(&app, "SELECT count(*) FROM notify.messages WHERE kind = 'daily_digest'").await, 1);
    app.stop().await;
}

/// A webhook receiver: records what it is sent; answers 500 to the first `fail_first`
/// requests; or never answers at all.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>,
    tries: Arc<Mutex<usize>>,
    fail_first: usize,
    hang: bool,
}

impl Receiver {
    async fn serve(self, listener: tokio::net::TcpListener) {
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let this = self.clone();
                async move {
                    let n = {
                        let mut t = this.tries.lock().unwrap();
                        *t += 1;
                        *t
                    };
                    if this.hang {
                        std::future::pending::<()>().await;
                    }
                    if n <= this.fail_first {
                        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    this.got.lock().unwrap().push((headers, body));
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        axum::serve(listener, app).await.unwrap();
    }

    async fn start(self, host: &str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{host}:{}/hook", listener.local_addr().unwrap().port());
        tokio::spawn(self.serve(listener));
        url
    }

    fn received(&self) -> Vec<(axum::http::HeaderMap, String)> {
        self.got.lock().unwrap().clone()
    }
}

/// Verifies a delivery as a receiver must: the Standard Webhooks signature of
/// `{id}.{timestamp}.{body}` under the secret, and a fresh timestamp.
fn verify(secret: &str, headers: &axum::http::HeaderMap, body: &str) -> Value {
    let id = headers["webhook-id"].to_str().unwrap();
    let timestamp: i64 = headers["webhook-timestamp"].to_str().unwrap().parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 300, "stale timestamp");
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    let expected = format!("v1,{}", b64.encode(mac.finalize().into_bytes()));
    let given = headers["webhook-signature"].to_str().unwrap();
    assert!(given.split(' ').any(|s| s == expected), "bad signature {given}");
    let envelope: Value = serde_json::from_str(body).unwrap();
    assert_eq!(envelope["id"], id, "webhook-id is the event id");
    envelope
}

#[tokio::test]
async fn webhooks_are_signed_retried_and_a_bad_receiver_never_blocks_the_others() {
    let app = TestApp::spawn_with(|c| c.webhook_allow_private = true).await;
    let org = app.organisation("16").await;
    app.structure("lieu-un", structure("Lieu Un", 45.6500, 0.1600, &[AIDE], 10)).await;
    let good = Receiver::default();
    let flaky = Receiver { fail_first: 2, ..Default::default() };
    let hanging = Receiver { hang: true, ..Default::default() };
    let good_url = good.clone().start("127.0.0.1").await;
    let flaky_url = flaky.clone().start("127.0.0.1").await;
    let hanging_url = hanging.clone().start("127.0.0.1").await;
    let down_url = format!("http://127.0.0.1:{}/hook", crate::crash::free_port());

    let events = json!(["referral.submitted", "referral.offered"]);
    let mut secrets = vec![];
    for url in [&good_url, &flaky_url, &hanging_url, &down_url] {
        let (s, v) = app.post("/api/v1/webhooks", &app.admin, json!({"url": url, "events": events})).await;
        assert_eq!(s, 201, "{v}");
        assert!(v["secret"].as_str().unwrap().starts_with("whsec_"));
        assert_eq!(v["url"], json!(url));
        secrets.push(v["secret"].as_str().unwrap().to_string());
    }
    // Bad subscriptions: 422 naming the field.
    let (s, v) = app.post("/api/v1/webhooks", &app.admin, json!({"url": good_url, "events": ["referral.nope"]})).await;
    assert_eq!(s, 422, "{v}");
    assert!(v.to_string().contains("events[0]"), "{v}");
    let (s, v) = app.post("/api/v1/webhooks", &app.admin, json!({"url": "ftp://x.example/", "events": events})).await;
    assert_eq!(s, 422, "{v}");
    assert!(v.to_string().contains("\"url\""), "{v}");
    let (s, v) = app.post("/api/v1/webhooks", &app.admin, json!({"url": good_url, "events": []})).await;
    assert_eq!(s, 422, "{v}");

    // A referrer subscribes for their organisation and sees only their own.
    let referrer = app.referrer(org);
    let (s, mine) =
        app.post("/api/v1/webhooks", &referrer, json!({"url": good_url, "events": ["referral.accepted"]})).await;
    assert_eq!(s, 201, "{mine}");
    assert_eq!(mine["scope"], "organisation");
    let (s, v) = app.get("/api/v1/webhooks", &referrer).await;
    assert_eq!(s, 200);
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    assert!(v["items"][0].get("secret").is_none(), "the secret is shown once");
    let (_, v) = app.get("/api/v1/webhooks", &app.admin).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 5);
    // Another organisation's referrer cannot delete it.
    let other = app.referrer(app.organisation("16").await);
    let hook = mine["id"].as_str().unwrap();
    let (s, _, _) = app.request(reqwest::Method::DELETE, &format!("/api/v1/webhooks/{hook}"), Some(&other), None).await;
    assert_eq!(s, 404);

    let id = app.submit(&referrer, person_referral(&[AIDE])).await;
    app.until_status(&id, &referrer, "offered").await;
    // The good receiver gets both events, signed, while another hangs and another is down.
    let got = eventually("the good receiver's deliveries", Duration::from_secs(30), || async {
        let g = good.received();
        (g.len() >= 2).then_some(g)
    })
    .await;
    let mut types = BTreeSet::new();
    for (headers, body) in &got {
        let envelope = verify(&secrets[0], headers, body);
        assert_eq!(envelope["aggregate_id"], id);
        types.insert(envelope["type"].as_str().unwrap().to_string());
        for needle in NAME.iter().chain(PHONE.iter()).chain([PERSON_EMAIL, NOTE].iter()) {
            assert!(!body.contains(needle), "{needle} in a webhook body");
        }
    }
    assert_eq!(types, BTreeSet::from(["referral.offered".to_string(), "referral.submitted".to_string()]));
    // The accepted event reaches the organisation's subscription (scoped), and only it.
    app.step(&id, "accept", &app.mediator("lieu-un"), json!({})).await;
    eventually("the organisation's delivery", Duration::from_secs(30), || async {
        good.received().iter().any(|(_, b)| b.contains("\"referral.accepted\"")).then_some(())
    })
    .await;
    let (s, _, _) =
        app.request(reqwest::Method::DELETE, &format!("/api/v1/webhooks/{hook}"), Some(&referrer), None).await;
    assert_eq!(s, 204);
    let (s, _, _) =
        app.request(reqwest::Method::DELETE, &format!("/api/v1/webhooks/{hook}"), Some(&referrer), None).await;
    assert_eq!(s, 404);

    // The flaky one answered 500 twice: retried with backoff, then delivered.
    let flaky_got = eventually("the flaky receiver's deliveries", Duration::from_secs(90), || async {
        let g = flaky.received();
        (g.len() >= 2).then_some(g)
    })
    .await;
    for (headers, body) in &flaky_got {
        verify(&secrets[1], headers, body);
    }
    assert!(*flaky.tries.lock().unwrap() >= 4);
    // The hanging and the down ones are retried later, not given up.
    eventually("failed attempts recorded for the hanging and down receivers", Duration::from_secs(60), || async {
        let n = scalar_i64(
            &app,
            "SELECT count(*) FROM notify.webhook_deliveries d JOIN notify.webhooks w ON w.id = d.webhook_id
             WHERE d.status = 'pending' AND d.attempts >= 1 AND d.last_error IS NOT NULL",
        )
        .await;
        (n == 4).then_some(())
    })
    .await;
    assert!(*hanging.tries.lock().unwrap() >= 1);
    assert!(hanging.received().is_empty());

    // 24 hours of failures (made to have passed): the delivery is dropped, the
    // subscription marked failing; the others are not.
    let pool = app.sandbox.pool().await;
    sqlx::query(
        "UPDATE notify.webhook_deliveries d SET created_at = now() - interval '25 hours', next_attempt_at = now()
         FROM notify.webhooks w WHERE w.id = d.webhook_id AND w.url = $1",
    )
    .bind(&down_url)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let failing = eventually("the down subscription marked failing", Duration::from_secs(30), || async {
        let (_, v) = app.get("/api/v1/webhooks", &app.admin).await;
        let items = v["items"].as_array().unwrap().clone();
        items.iter().any(|w| w["failing"] == true).then_some(items)
    })
    .await;
    for w in &failing {
        assert_eq!(w["failing"] == true, w["url"] == json!(down_url), "{w}");
    }
    assert_eq!(
        scalar_i64(&app, "SELECT count(*) FROM notify.webhook_deliveries WHERE status = 'dead'").await,
        2,
        "both deliveries to the down receiver given up"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_webhook_to_a_private_address_is_refused_by_url_and_at_connect_time() {
    let app = TestApp::spawn().await;
    let org = app.organisation("16").await;
    app.structure("lieu-un", structure("Lieu Un", 45.6500, 0.1600, &[AIDE], 10)).await;
    let receiver = Receiver::default();
    let literal = receiver.clone().start("127.0.0.1").await;
    let (s, v) =
        app.post("/api/v1/webhooks", &app.admin, json!({"url": literal, "events": ["referral.submitted"]})).await;
    assert_eq!(s, 422, "{v}");
    assert!(v.to_string().contains("private"), "{v}");
    // A name is only known for what it resolves to when connecting: refused then.
    let named = literal.replace("127.0.0.1", "localhost");
    let (s, v) =
        app.post("/api/v1/webhooks", &app.admin, json!({"url": named, "events": ["referral.submitted"]})).await;
    assert_eq!(s, 201, "{v}");
    let referrer = app.referrer(org);
    app.submit(&referrer, person_referral(&[AIDE])).await;
    let pool = app.sandbox.pool().await;
    let error: String = eventually("the refused delivery", Duration::from_secs(30), || async {
        sqlx::query_scalar(
            "SELECT last_error FROM notify.webhook_deliveries WHERE attempts >= 1 AND last_error IS NOT NULL",
        )
        .fetch_optional(&pool)
        .await
        .unwrap()
    })
    .await;
    pool.close().await;
    assert!(error.contains("private"), "{error}");
    assert_eq!(*receiver.tries.lock().unwrap(), 0, "nothing reached the private address");
    app.stop().await;
}

#[tokio::test]
async fn the_preferences_page_changes_what_an_agent_receives_without_javascript() {
    use crate::signin::{browser, csrf_of, grant, page, server, sign_in, submit, text};
    use crate::support::oidc::{Agent, KARIM, OidcProvider};
    use reqwest::StatusCode;

    let oidc = OidcProvider::start().await;
    let app = server(&oidc, oidc.client()).await;
    app.structure("lieu-angouleme", structure("Médiathèque d'Angoulême", 45.65, 0.16, &[AIDE], 5)).await;
    grant(
        &app,
        &[
            "--email",
            "karim.benali@regie-urbaine-angouleme.example",
            "--role",
            "mediator",
            "--structure",
            "lieu-angouleme",
        ],
    )
    .await;
    let b = browser();
    // The link of every e-mail: signed out, it leads to sign-in and back.
    assert_eq!(
        sign_in(&app, &oidc, &b, &Agent::Demo(KARIM), "/compte/notifications").await.status(),
        StatusCode::SEE_OTHER
    );
    let (status, _, html) = page(&app, &b, "/compte").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("href=\"/compte/notifications\""), "a link from the account page");
    let (status, _, html) = page(&app, &b, "/compte/notifications").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    for label in [
        "Nouvelle proposition d'orientation pour ma structure",
        "Immédiatement",
        "Jamais",
        "Enregistrer mes préférences",
    ] {
        assert!(html.contains(label), "{label}: {html}");
    }
    assert!(
        html.contains("id=\"offer_received-immediate\" name=\"offer_received\" value=\"immediate\" checked"),
        "{html}"
    );
    let csrf = csrf_of(&html);
    let r = submit(
        &app,
        &b,
        "/compte/notifications",
        &[("csrf", csrf.as_str()), ("offer_received", "never"), ("territory_waitlist", "immediate")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, _, html) = page(&app, &b, "/compte/notifications?enregistre=1").await;
    assert!(html.contains("Vos préférences de notification sont enregistrées"), "{html}");
    assert!(html.contains("id=\"offer_received-never\" name=\"offer_received\" value=\"never\" checked"), "{html}");
    assert!(
        html.contains("id=\"territory_waitlist-immediate\" name=\"territory_waitlist\" value=\"immediate\" checked")
    );
    // A value no radio offers: 422, in French, nothing changed.
    let r =
        submit(&app, &b, "/compte/notifications", &[("csrf", csrf.as_str()), ("offer_received", "sometimes")]).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = text(r).await;
    assert!(html.contains("<title>Erreur : Mes notifications"), "{html}");
    assert!(html.contains("id=\"offer_received-never\" name=\"offer_received\" value=\"never\" checked"));
    // Without the form's token: refused.
    let r = submit(&app, &b, "/compte/notifications", &[("offer_received", "immediate")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // The coordinator's page names the structures nobody can be told about: no mediator,
    // no e-mail address (issue 23: one with an address answers through the e-mail's link).
    let no_email = json!({"contact": {"phone": "05 45 00 00 01", "email": null}});
    app.structure("lieu-vide", merged(structure("Lieu sans personne", 45.70, 0.20, &[AIDE], 5), no_email)).await;
    grant(
        &app,
        &["--email", "sophie.martin@departement-charente.example", "--role", "coordinator", "--territory", "16"],
    )
    .await;
    let c = browser();
    sign_in(&app, &oidc, &c, &Agent::Demo(crate::support::oidc::SOPHIE), "/territoire").await;
    // Notify learns the structure from the directory and Karim's membership from accounts.
    let html = eventually("notifications to know the structure and its mediator", Duration::from_secs(20), || async {
        let (status, _, html) = page(&app, &c, "/territoire").await;
        (status == StatusCode::OK && html.contains("Structures injoignables (1)")).then_some(html)
    })
    .await;
    let at = html.find("Structures injoignables (1)").expect("the section");
    assert!(html[at..].contains("Lieu sans personne"), "{html}");
    assert!(!html[at..].contains("Médiathèque d'Angoulême"), "a structure with a mediator is not listed");
    app.stop().await;
}

#[tokio::test]
async fn mail_goes_over_starttls_with_credentials_and_over_implicit_tls() {
    for (tls, scheme, query) in [("starttls", "smtp", "?tls=starttls"), ("implicit", "smtps", "")] {
        let smtp =
            SmtpServer::start(&[("SMTP_AUTH", "aiguillage:s3cret"), ("SMTP_TLS", tls), ("SMTP_REQUIRE_TLS", "1")])
                .await;
        let url = format!("{scheme}://aiguillage:s3cret@localhost:{}{query}", smtp.port);
        let ca = smtp.state.join("tls/ca.pem").to_string_lossy().into_owned();
        let app = TestApp::spawn_with(|c| {
            c.smtp_url = Some(url);
            c.smtp_ca_file = Some(ca);
        })
        .await;
        let org = app.organisation("16").await;
        app.structure("lieu-un", structure("Lieu Un", 45.6500, 0.1600, &[AIDE], 5)).await;
        agent(&app, "med1@lieux.example", Role::Mediator, structure_scope("lieu-un")).await;
        let referrer = app.referrer(org);
        let id = app.submit(&referrer, person_referral(&[AIDE])).await;
        app.until_status(&id, &referrer, "offered").await;
        let m = until_mail(&smtp, "med1@lieux.example", "Nouvelle proposition").await;
        assert!(m.text().contains(&format!("/propositions/{id}")));
        let envelope: Value = {
            let dir = smtp.maildir();
            let json = std::fs::read_dir(&dir)
                .unwrap()
                .filter_map(|e| e.ok())
                .find(|e| e.path().extension().is_some_and(|x| x == "json"))
                .unwrap();
            serde_json::from_str(&std::fs::read_to_string(json.path()).unwrap()).unwrap()
        };
        assert_eq!(envelope["tls"], true, "{tls}");
        assert_eq!(envelope["auth_user"], "aiguillage", "{tls}");
        app.stop().await;
    }
}
