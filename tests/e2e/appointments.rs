//! Issue 24: the person is told where and when. The accepting place sets an appointment;
//! the person gets an SMS (the real capture SMS server, speaking the Brevo-compatible API)
//! or an e-mail (the real capture SMTP server) in plain French, once, even through a
//! provider outage; a refused number is reported; a reminder goes at its time, after a
//! restart too, and never for a cancelled appointment.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::support::sms::{self, SmsServer};
use crate::support::smtp::SmtpServer;
use crate::support::*;

const PERSONAL: [&str; 4] = ["Camille", "Essai", "Dossier CAF", "camille.essai@perso.example"];

/// A place with a long real-world name and address, as the directory has many.
fn place() -> Value {
    merged(
        structure(
            "Médiathèque intercommunale Alpha de la Communauté d'agglomération du Grand Angoulême",
            45.65,
            0.16,
            &[AIDE],
            20,
        ),
        json!({"address": {"street": "3 boulevard du Président Wilson", "postcode": "16000", "commune": "Angoulême", "commune_code": "16015"}}),
    )
}

fn person(phone: Option<&str>, email: Option<&str>, preference: &str) -> Value {
    merged(referral(), json!({"person": {"phone": phone, "email": email, "contact_preference": preference}}))
}

struct Scene {
    app: TestApp,
    referrer: String,
    mediator: String,
}

impl Scene {
    async fn new(app: TestApp) -> Self {
        let org = app.organisation("16").await;
        app.structure("lieu-rdv", place()).await;
        let referrer = app.referrer(org);
        let mediator = app.mediator("lieu-rdv");
        Self { app, referrer, mediator }
    }

    /// A referral accepted by the place: its id.
    async fn accepted(&self, body: Value) -> String {
        let id = self.app.submit(&self.referrer, body).await;
        self.app.until_status(&id, &self.referrer, "offered").await;
        self.app.step(&id, "accept", &self.mediator, json!({})).await;
        id
    }

    async fn appoint(&self, id: &str, at: DateTime<Utc>) -> Value {
        let body = json!({"at": at.to_rfc3339(), "duration_minutes": 60, "place": "Salle 2"});
        let (s, r) = self.app.put(&format!("/api/v1/referrals/{id}/appointment"), &self.mediator, body).await;
        assert_eq!(s, 200, "{r}");
        r
    }

    /// Waits until every message to the person of `id` has this status, and returns them.
    async fn until_notices(&self, id: &str, status: &str, count: usize) -> Vec<Value> {
        eventually(&format!("{count} notice(s) {status} for {id}"), Duration::from_secs(60), || async {
            let (_, r) = self.app.get(&format!("/api/v1/referrals/{id}"), &self.referrer).await;
            let notice = r["appointment"]["notice"].as_array()?.clone();
            let now: Vec<Value> = notice.into_iter().filter(|n| n["kind"] != "reminder").collect();
            (now.len() == count && now.iter().all(|n| n["status"] == status)).then_some(now)
        })
        .await
    }
}

fn assert_plain(text: &str) {
    assert!(contracts::gsm::fits_one_sms(text), "one SMS: {text:?}");
    for personal in PERSONAL {
        assert!(!text.contains(personal), "{personal:?} in {text:?}");
    }
}

#[tokio::test]
async fn the_person_is_told_once_by_sms_or_e_mail_through_an_outage_and_a_refused_number_is_reported() {
    let sms = SmsServer::start(&[("SMS_REJECT", "3361111*")]).await;
    let smtp = SmtpServer::start(&[]).await;
    let (sms_url, smtp_url) = (sms.url(), smtp.url());
    let app = TestApp::spawn_with(|c| {
        c.sms_url = Some(sms_url);
        c.sms_api_key = Some(platform::sms::ApiKey::new(sms::KEY));
        c.smtp_url = Some(smtp_url);
    })
    .await;
    // A second replica on the same database and broker: each message still goes once.
    let second = TestApp::start(app.sandbox.alias()).await;
    let scene = Scene::new(app).await;

    // By SMS: one message, one segment, where and when, nothing of the person.
    let id = scene.accepted(person(Some("+33612345678"), None, "phone")).await;
    let r = scene.appoint(&id, Utc::now() + chrono::Duration::days(5)).await;
    assert_eq!(r["appointment"]["notice"][0]["channel"], "sms");
    scene.until_notices(&id, "sent", 1).await;
    let texts = sms.texts_to("33612345678");
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert_plain(&texts[0]);
    assert!(texts[0].contains("Salle 2") || texts[0].contains("Médiathèque"), "{}", texts[0]);
    assert!(texts[0].contains("05 45 00 00 00"), "the place's phone: {}", texts[0]);

    // The provider is down when the appointment moves: the message waits, retried, and
    // goes once when the provider is back.
    sms.kill().await;
    scene.appoint(&id, Utc::now() + chrono::Duration::days(6)).await;
    let pool = scene.app.sandbox.pool().await;
    eventually("the move's SMS to be retried", Duration::from_secs(60), || async {
        let attempts: i32 = sqlx::query_scalar(
            "SELECT attempts FROM referrals.person_messages WHERE referral_id = $1::uuid AND kind = 'changed'",
        )
        .bind(&id)
        .fetch_one(&pool)
        .await
        .ok()?;
        (attempts >= 2).then_some(())
    })
    .await;
    // Ten minutes of outage, without waiting them: the message is made as old, and as
    // often tried, as ten minutes of backoff would leave it (1 + 2 + … + 32 s, then one
    // try a minute: 15 tries), with its next try due now, as after the last minute's wait.
    // It is still within the day it is tried for, and goes once the provider is back.
    let aged = sqlx::query(
        "UPDATE referrals.person_messages SET due_at = due_at - interval '10 minutes', attempts = 15,
                next_attempt_at = now()
         WHERE referral_id = $1::uuid AND kind = 'changed' AND status = 'queued'",
    )
    .bind(&id)
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(aged.rows_affected(), 1, "the move's SMS waits, queued, through the outage");
    sms.restart().await;
    let notices = scene.until_notices(&id, "sent", 2).await;
    let kinds: Vec<&str> = notices.iter().map(|n| n["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"set") && kinds.contains(&"changed"), "{kinds:?}");
    let texts = sms.texts_to("33612345678");
    assert_eq!(texts.len(), 2, "each message exactly once: {texts:?}");
    assert_plain(&texts[1]);
    // Sent, the number is no longer held beside the message.
    let sealed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM referrals.person_messages WHERE status = 'sent' AND recipient IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(sealed, 0);
    pool.close().await;

    // A number the provider refuses (400): failed at once and announced (the referrer is
    // told by notify; the event is checked in the fast tier), and nothing is sent.
    let refused = scene.accepted(person(Some("+33611110000"), None, "phone")).await;
    scene.appoint(&refused, Utc::now() + chrono::Duration::days(5)).await;
    scene.until_notices(&refused, "failed", 1).await;
    let pool = scene.app.sandbox.pool().await;
    eventually("the failure to be announced", Duration::from_secs(30), || async {
        let announced: bool = sqlx::query_scalar(
            "SELECT failure_announced FROM referrals.person_messages WHERE referral_id = $1::uuid AND kind = 'set'",
        )
        .bind(&refused)
        .fetch_one(&pool)
        .await
        .ok()?;
        announced.then_some(())
    })
    .await;
    pool.close().await;
    assert!(sms.texts_to("33611110000").is_empty());

    // By e-mail, for a person who chose it.
    let address = "camille.essai@perso.example";
    let by_mail = scene.accepted(person(None, Some(address), "email")).await;
    scene.appoint(&by_mail, Utc::now() + chrono::Duration::days(5)).await;
    let mail = eventually("the person's e-mail", Duration::from_secs(60), || async {
        smtp.messages().into_iter().find(|m| m.rcpt_tos.iter().any(|r| r == address))
    })
    .await;
    assert!(mail.subject().starts_with("Votre rendez-vous le "), "{}", mail.subject());
    let text = mail.text();
    assert!(text.contains("Où : Médiathèque intercommunale Alpha"), "{text}");
    assert!(text.contains("3 boulevard du Président Wilson"), "{text}");
    for personal in ["Camille", "Essai", "Dossier CAF"] {
        assert!(!text.contains(personal), "{personal} in {text}");
    }
    scene.until_notices(&by_mail, "sent", 1).await;
    assert_eq!(smtp.messages().iter().filter(|m| m.rcpt_tos.iter().any(|r| r == address)).count(), 1);
    assert_eq!(sms.messages().len(), 2, "the SMS above, each once, and no other");

    second.halt().await;
    scene.app.stop().await;
    sms.stop().await;
}

#[tokio::test]
async fn a_reminder_goes_once_at_its_time_even_across_a_restart_and_never_for_a_cancelled_appointment() {
    let sms = SmsServer::start(&[]).await;
    let sms_url = sms.url();
    // A reminder a day before, less a few seconds: an appointment tomorrow is reminded now.
    let before = Duration::from_secs(86_400 - 6);
    let app = TestApp::spawn_with(|c| {
        c.sms_url = Some(sms_url);
        c.sms_api_key = Some(platform::sms::ApiKey::new(sms::KEY));
        c.appointment_reminder_before = before;
    })
    .await;
    let scene = Scene::new(app).await;
    let cancelled = scene.accepted(person(Some("+33612340001"), None, "phone")).await;
    let kept = scene.accepted(person(Some("+33612340002"), None, "phone")).await;
    let tomorrow = Utc::now() + chrono::Duration::days(1);
    scene.appoint(&cancelled, tomorrow).await;
    let r = scene.appoint(&kept, tomorrow + chrono::Duration::seconds(2)).await;
    let reminder = r["appointment"]["notice"][1].clone();
    assert_eq!((reminder["kind"].as_str(), reminder["status"].as_str()), (Some("reminder"), Some("queued")), "{r}");
    let due: DateTime<Utc> = reminder["at"].as_str().unwrap().parse().unwrap();
    let path = format!("/api/v1/referrals/{cancelled}/appointment");
    let (s, _, _) = scene.app.request(reqwest::Method::DELETE, &path, Some(&scene.mediator), None).await;
    assert_eq!(s, 200);

    // The server is down when the reminder falls due; it goes when it is back.
    let Scene { app, referrer, mediator } = scene;
    let sandbox = app.halt().await;
    eventually("the reminder's time to pass", Duration::from_secs(30), || async { (Utc::now() > due).then_some(()) })
        .await;
    let scene = Scene { app: TestApp::start(sandbox).await, referrer, mediator };
    let texts = eventually("the reminder", Duration::from_secs(60), || async {
        let texts = sms.texts_to("33612340002");
        (texts.len() == 2).then_some(texts)
    })
    .await;
    // The first message and the reminder (both may go after the restart, in any order).
    let reminders: Vec<&String> = texts.iter().filter(|t| t.to_lowercase().contains("rappel")).collect();
    assert_eq!(reminders.len(), 1, "{texts:?}");
    assert_plain(reminders[0]);
    // The cancelled appointment's reminder, due before the kept one's, never went.
    let other = sms.texts_to("33612340001");
    assert!(other.iter().all(|t| !t.to_lowercase().contains("rappel")), "{other:?}");
    let (_, r) = scene.app.get(&format!("/api/v1/referrals/{kept}"), &scene.referrer).await;
    let statuses: Vec<&str> =
        r["appointment"]["notice"].as_array().unwrap().iter().map(|n| n["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["sent", "sent"], "{r}");

    scene.app.stop().await;
    sms.stop().await;
}
