//! Issue 23: every place can answer. A place with no mediator who signs in gets its offers
//! by e-mail at its public address (the real capture SMTP server), with a link made when
//! the e-mail goes; it answers through that link, without an account, as a mediator would.
//! An address that refuses mail for good moves the offer on within a minute, not 72 hours;
//! a place nobody can reach is never offered. Two replicas send each e-mail once.

use std::time::Duration;

use platform::auth::Claims;
use serde_json::{Value, json};

use crate::support::smtp::{Captured, SmtpServer};
use crate::support::*;

const NAME: [&str; 2] = ["Camille", "Essai"];
const PERSONAL: [&str; 4] = ["+33612345678", "0612345678", "camille.essai@perso.example", "Dossier CAF"];

fn with_address(body: Value, email: Option<&str>) -> Value {
    merged(body, json!({"contact": {"email": email, "phone": "+33545000111"}}))
}

fn person_referral() -> Value {
    merged(referral(), json!({"person": {"email": "camille.essai@perso.example"}}))
}

async fn until_mail(smtp: &SmtpServer, to: &str, subject: &str) -> Captured {
    eventually(&format!("an e-mail {subject:?} to {to}"), Duration::from_secs(60), || async {
        smtp.messages().into_iter().find(|m| m.rcpt_tos.iter().any(|r| r == to) && m.subject().contains(subject))
    })
    .await
}

/// The link of an e-mail: `{base}/reponse/{token}`.
fn link_in(mail: &Captured, base: &str) -> String {
    let text = mail.text();
    let start = text.find(&format!("{base}/reponse/")).unwrap_or_else(|| panic!("no link in {text}"));
    text[start..].split_whitespace().next().unwrap().to_string()
}

fn no_personal_data(mail: &Captured) {
    let all = format!("{}\n{}", mail.eml, mail.text());
    for needle in NAME.iter().chain(PERSONAL.iter()) {
        assert!(!all.contains(needle), "{needle:?} in {:?}:\n{all}", mail.subject());
    }
}

/// The web app's side of a link: what `/reponse/{token}` does with it.
async fn exchange(app: &TestApp, token: &str) -> (u16, Value) {
    let web = app.key.issue(&Claims::for_service("web", chrono::Duration::minutes(5)));
    app.post("/api/v1/answer-links/exchange", &web, json!({ "token": token })).await
}

#[tokio::test]
async fn a_place_without_an_account_is_offered_by_e_mail_once_and_answers_through_its_link() {
    let smtp = SmtpServer::start(&[]).await;
    let url = smtp.url();
    let app = TestApp::spawn_with(|c| c.smtp_url = Some(url)).await;
    // A second replica on the same database and broker: each e-mail still goes once.
    let second = TestApp::start(app.sandbox.alias()).await;
    let org = app.organisation("16").await;
    app.structure(
        "lieu-sans-compte",
        with_address(structure("Lieu Sans Compte", 45.6500, 0.1550, &[AIDE], 5), Some("accueil@sans-compte.example")),
    )
    .await;
    let referrer = app.referrer(org);
    let id = app.submit(&referrer, person_referral()).await;
    app.until_status(&id, &referrer, "offered").await;

    let mail = until_mail(&smtp, "accueil@sans-compte.example", "Nouvelle orientation").await;
    assert!(mail.subject().starts_with("Nouvelle orientation"), "{}", mail.subject());
    no_personal_data(&mail);
    let text = mail.text();
    for expected in ["Aide aux démarches administratives", "Angoulême", "Créer un compte pour votre structure"] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
    let link = link_in(&mail, &app.base);
    let token = link.rsplit('/').next().unwrap().to_string();
    assert!(token.len() >= 22, "at least 128 bits: {token}");
    // Only the hash is stored, nowhere the token.
    let pool = app.sandbox.pool().await;
    let dump: String =
        sqlx::query_scalar("SELECT coalesce(string_agg(m.body_text || m.body_html, ''), '') FROM notify.messages m")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!dump.contains(&token), "the sent message keeps no token");

    // The link opens the offer, never the person.
    let (s, session) = exchange(&app, &token).await;
    assert_eq!(s, 200, "{session}");
    assert_eq!(
        (session["stage"].as_str(), session["structure_id"].as_str()),
        (Some("offer"), Some("lieu-sans-compte"))
    );
    let access = session["access_token"].as_str().unwrap().to_string();
    let (s, seen) = app.get(&format!("/api/v1/referrals/{id}"), &access).await;
    assert_eq!(s, 200, "{seen}");
    assert!(seen.get("person").is_none_or(Value::is_null), "no person before acceptance: {seen}");
    // It opens that referral only, and nothing a mediator's token could not.
    let other = app.submit(&referrer, referral()).await;
    assert_eq!(app.get(&format!("/api/v1/referrals/{other}"), &access).await.0, 404);
    assert_eq!(app.get("/api/v1/referrals", &access).await.0, 403);
    assert_eq!(
        app.put(
            "/api/v1/structures/lieu-sans-compte/capacity",
            &access,
            json!({"weekly_capacity": 50, "accepting": true})
        )
        .await
        .0,
        403
    );

    // Accepted through the link, on the other replica: the same transition as a mediator's.
    let (s, accepted) = second.post(&format!("/api/v1/referrals/{id}/accept"), &access, json!({})).await;
    assert_eq!(s, 200, "{accepted}");
    let (s, again) = app.post(&format!("/api/v1/referrals/{id}/accept"), &access, json!({})).await;
    assert_eq!(s, 409, "one acceptance: {again}");
    let (_, seen) = app.get(&format!("/api/v1/referrals/{id}"), &access).await;
    assert_eq!(seen["person"]["first_name"], "Camille", "after acceptance, the person's contact: {seen}");
    let (_, full) = app.get(&format!("/api/v1/referrals/{id}"), &app.admin).await;
    let step = full["history"].as_array().unwrap().iter().find(|h| h["status"] == "accepted").unwrap().clone();
    assert_eq!(step["via"], "answer_link", "{full}");
    let actors: Vec<String> = sqlx::query_scalar("SELECT actor FROM referrals.audit WHERE referral_id = $1")
        .bind(id.parse::<uuid::Uuid>().unwrap())
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(actors.iter().any(|a| a == "answer_link:lieu-sans-compte"), "{actors:?}");
    let (s, followed) = exchange(&app, &token).await;
    assert_eq!((s, followed["stage"].as_str()), (200, Some("follow_up")), "{followed}");

    // Measured: the funnel says how it was answered.
    let coordinator = app.coordinator(&["16"]);
    let funnel = eventually("the funnel to count the answer", Duration::from_secs(30), || async {
        let (_, f) = app.get("/api/v1/insights/funnel?territory=16&from=2020-01-01&to=2099-12-31", &coordinator).await;
        (f["answered_via"]["answer_link"] == 1).then_some(f)
    })
    .await;
    assert_eq!(funnel["answered_via"]["account"], 0, "{funnel}");
    // One e-mail per offer (this referral's, and the other one's), with two replicas.
    let offers = || {
        smtp.messages()
            .into_iter()
            .filter(|m| m.rcpt_tos.iter().any(|r| r == "accueil@sans-compte.example"))
            .filter(|m| m.subject().contains("Nouvelle orientation"))
            .count()
    };
    eventually("the other referral's e-mail", Duration::from_secs(60), || async { (offers() == 2).then_some(()) })
        .await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM notify.messages WHERE kind = 'answer_link_offer'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 2, "one message per offer");
    pool.close().await;
    second.halt().await;
    app.stop().await;
}

#[tokio::test]
async fn an_address_that_refuses_mail_for_good_moves_the_offer_on_within_a_minute() {
    let smtp = SmtpServer::start(&[("SMTP_REJECT", "*@refuse.example")]).await;
    let url = smtp.url();
    let app = TestApp::spawn_with(|c| c.smtp_url = Some(url)).await;
    let org = app.organisation("16").await;
    // The nearest place's address refuses; the next one's takes mail.
    app.structure(
        "lieu-proche",
        with_address(structure("Lieu Proche", 45.6500, 0.1550, &[AIDE], 5), Some("accueil@refuse.example")),
    )
    .await;
    app.structure(
        "lieu-suivant",
        with_address(structure("Lieu Suivant", 45.6600, 0.1600, &[AIDE], 5), Some("accueil@suivant.example")),
    )
    .await;
    let referrer = app.referrer(org);
    let id = app.submit(&referrer, referral()).await;
    let started = std::time::Instant::now();
    until_mail(&smtp, "accueil@suivant.example", "Nouvelle orientation").await;
    assert!(started.elapsed() < Duration::from_secs(60), "not 72 hours: {:?}", started.elapsed());
    let (_, r) = app.get(&format!("/api/v1/referrals/{id}"), &referrer).await;
    assert_eq!(r["current_offer"]["structure_id"], "lieu-suivant", "{r}");
    let declined = r["history"].as_array().unwrap().iter().find(|h| h["status"] == "declined").cloned().unwrap();
    assert_eq!(
        (declined["structure_id"].as_str(), declined["reason"].as_str()),
        (Some("lieu-proche"), Some("structure_unreachable"))
    );

    // The place is unreachable now: the next referral goes to the other at once, and the
    // candidates say why, with the phone to call.
    let next = app.submit(&referrer, referral()).await;
    let r = app.until_status(&next, &referrer, "offered").await;
    assert_eq!(r["current_offer"]["structure_id"], "lieu-suivant", "{r}");
    let (s, why) = app.get(&format!("/api/v1/referrals/{next}/candidates"), &referrer).await;
    assert_eq!(s, 200, "{why}");
    let excluded =
        why["excluded"].as_array().unwrap().iter().find(|e| e["structure_id"] == "lieu-proche").cloned().unwrap();
    assert!(excluded["reasons"].to_string().contains("unreachable"), "{excluded}");
    assert_eq!(excluded["phone"], "+33545000111");
    let coordinator = app.coordinator(&["16"]);
    let (_, unreached) = app.get("/api/v1/notifications/unreached-structures", &coordinator).await;
    let proche = unreached["items"].as_array().unwrap().iter().find(|u| u["id"] == "lieu-proche").cloned().unwrap();
    assert_eq!(proche["reachable_by_email"], false, "{proche}");
    let funnel = eventually("the funnel to count the withdrawal", Duration::from_secs(30), || async {
        let (_, f) = app.get("/api/v1/insights/funnel?territory=16&from=2020-01-01&to=2099-12-31", &coordinator).await;
        (f["withdrawn_unreachable"] == 1).then_some(f)
    })
    .await;
    assert_eq!(funnel["declines"]["structure_unreachable"], 1, "{funnel}");
    app.stop().await;
}

#[tokio::test]
async fn a_place_with_neither_an_active_mediator_nor_an_address_is_never_offered() {
    let app = TestApp::spawn().await;
    let org = app.organisation("16").await;
    app.structure("lieu-muet", with_address(structure("Lieu Muet", 45.6500, 0.1550, &[AIDE], 5), None)).await;
    app.structure(
        "lieu-ecrit",
        with_address(structure("Lieu Écrit", 45.7000, 0.2000, &[AIDE], 5), Some("accueil@ecrit.example")),
    )
    .await;
    let referrer = app.referrer(org);
    let id = app.submit(&referrer, referral()).await;
    let r = app.until_status(&id, &referrer, "offered").await;
    assert_eq!(r["current_offer"]["structure_id"], "lieu-ecrit", "the nearer place cannot answer: {r}");
    // A mediator who signs in makes it reachable, once the matcher has learnt it.
    app.sign_in_agent("sub-muet", "mediatrice@muet.example", None).await;
    let (ok, out, err) = app
        .sandbox
        .cli(&[
            "account",
            "grant",
            "--email",
            "mediatrice@muet.example",
            "--role",
            "mediator",
            "--structure",
            "lieu-muet",
        ])
        .await;
    assert!(ok, "{out}{err}");
    let preview = json!({"commune_code": "16015", "needs": [AIDE]});
    eventually("the matcher to learn the place's mediator", Duration::from_secs(30), || async {
        let (_, p) = app.post("/api/v1/match/preview", &referrer, preview.clone()).await;
        p["candidates"].as_array()?.iter().any(|c| c["structure_id"] == "lieu-muet").then_some(())
    })
    .await;
    let next = app.submit(&referrer, referral()).await;
    let r = app.until_status(&next, &referrer, "offered").await;
    assert_eq!(r["current_offer"]["structure_id"], "lieu-muet", "reachable once a mediator signs in: {r}");
    app.stop().await;
}
