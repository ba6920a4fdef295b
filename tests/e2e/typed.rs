//! Nothing is misread in silence. A stored row that does not parse is an error that names
//! the table, the column and the row: a 500 with no internal detail over HTTP, and a dead
//! letter with that reason in a consumer. A bound event type a consumer does not know is
//! dead-lettered too, never dropped.

use std::time::Duration;

use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use serde_json::{Value, json};

use crate::support::*;

async fn publish(namespace: &str, envelope: &contracts::Envelope) {
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

/// Waits for the one dead letter of `service` with this message id, and returns its reason.
async fn dead_letter_reason(app: &TestApp, service: &str, message_id: &str) -> String {
    let conn = bus::connect(&amqp_url()).await.unwrap();
    let topology = aiguillage::topology(&app.sandbox.namespace);
    let reason = eventually(&format!("a dead letter in {service}"), Duration::from_secs(20), || async {
        let letters = bus::dlq::list(&conn, &topology, Some(service)).await.ok()?;
        letters.into_iter().find(|l| l.message_id == message_id).map(|l| l.reason)
    })
    .await;
    let _ = conn.close(200, "done".into()).await;
    reason
}

/// A 500 that says nothing of the schema or the stored value.
fn assert_opaque_500(status: u16, body: &Value, secret: &str) {
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["detail"], "an unexpected error occurred", "{body}");
    let text = body.to_string();
    for leak in [secret, "referrals.", "directory.", "matcher.", "insights.", "accounts.", "column"] {
        assert!(!text.contains(leak), "the 500 body leaks {leak:?}: {text}");
    }
}

async fn offered_referral(app: &TestApp) -> (String, String, String) {
    app.structure("lieu-a", structure("Lieu A", 45.65, 0.16, &[AIDE], 5)).await;
    let org = app.organisation("16").await;
    let referrer = app.referrer(org);
    let id = app.submit(&referrer, referral()).await;
    app.until_status(&id, &referrer, "offered").await;
    (id, referrer, app.mediator("lieu-a"))
}

#[tokio::test]
async fn a_corrupt_referral_row_is_a_500_over_http_and_poison_for_the_consumer() {
    let app = TestApp::spawn().await;
    let (id, referrer, _) = offered_referral(&app).await;
    let pool = app.sandbox.pool().await;
    sqlx::query("UPDATE referrals.referrals SET urgency = 'urgentissime' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&pool)
        .await
        .unwrap();

    let (status, body) = app.get(&format!("/api/v1/referrals/{id}"), &referrer).await;
    assert_opaque_500(status, &body, "urgentissime");
    // The list reads the same row: it fails the same way, rather than skipping it.
    let (status, body) = app.get("/api/v1/referrals", &referrer).await;
    assert_opaque_500(status, &body, "urgentissime");

    // A match decision about that referral reaches the referrals consumer: it cannot
    // read the row, so the message is dead-lettered with a reason naming the row.
    let event = contracts::events::MatchWaitlisted {
        referral_id: id.parse().unwrap(),
        round: 0,
        reason: contracts::WaitlistReason::NoCapacity,
        escalated: false,
        attempt: 1,
        waitlisted_at: chrono::Utc::now(),
    };
    let envelope = contracts::Envelope::new(id.clone(), 1_000, &event);
    publish(&app.sandbox.namespace, &envelope).await;
    let reason = dead_letter_reason(&app, "referrals", &envelope.id.to_string()).await;
    for part in ["referrals.referrals", "urgency", id.as_str()] {
        assert!(reason.contains(part), "the reason should name {part}: {reason}");
    }
    pool.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_corrupt_matcher_profile_dead_letters_the_event_that_needed_it() {
    let app = TestApp::spawn().await;
    let (id, _, mediator) = offered_referral(&app).await;
    let pool = app.sandbox.pool().await;
    // A `tried` map that does not parse would once have read as empty, allowing the same
    // structure to be offered twice.
    sqlx::query("UPDATE matcher.profiles SET tried = '\"lieu-a\"'::jsonb WHERE referral_id = $1::uuid")
        .bind(&id)
        .execute(&pool)
        .await
        .unwrap();
    app.step(&id, "decline", &mediator, json!({"reason": "no_capacity"})).await;
    let declined: String = eventually("the decline event id", Duration::from_secs(20), || async {
        sqlx::query_scalar::<_, uuid::Uuid>(
            "SELECT message_id FROM insights.inbox WHERE event_type = 'referral.declined' LIMIT 1",
        )
        .fetch_optional(&pool)
        .await
        .ok()
        .flatten()
        .map(|id| id.to_string())
    })
    .await;
    let reason = dead_letter_reason(&app, "matcher", &declined).await;
    for part in ["matcher.profiles", "tried", id.as_str()] {
        assert!(reason.contains(part), "the reason should name {part}: {reason}");
    }
    // Nothing was offered again: the referral waits, declined, for someone to mend the row.
    let (_, r) = app.get(&format!("/api/v1/referrals/{id}"), &app.admin).await;
    assert_eq!(r["status"], "submitted", "{r}");
    assert_eq!(r["attempts"], 1, "{r}");
    pool.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_corrupt_structure_row_is_a_500_and_never_an_empty_list_of_services() {
    let app = TestApp::spawn().await;
    app.structure("lieu-b", structure("Lieu B", 45.65, 0.16, &[AIDE], 5)).await;
    let pool = app.sandbox.pool().await;
    sqlx::query("UPDATE directory.structures SET services = '{teleportation}' WHERE id = 'lieu-b'")
        .execute(&pool)
        .await
        .unwrap();
    let (status, body) = app.get("/api/v1/structures/lieu-b", &app.admin).await;
    assert_opaque_500(status, &body, "teleportation");
    let (status, body) = app.get("/api/v1/structures?territory=16", &app.admin).await;
    assert_opaque_500(status, &body, "teleportation");
    pool.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_bound_event_type_the_consumer_does_not_know_is_dead_lettered_with_its_reason() {
    let app = TestApp::spawn().await;
    // `match.*` routes this to referrals, which knows match.proposed and match.waitlisted.
    let mut envelope = contracts::Envelope::new(
        uuid::Uuid::now_v7().to_string(),
        1,
        &contracts::events::StructureRemoved { structure_id: "x".parse().unwrap() },
    );
    envelope.event_type = "match.reconsidered".into();
    publish(&app.sandbox.namespace, &envelope).await;
    let reason = dead_letter_reason(&app, "referrals", &envelope.id.to_string()).await;
    assert!(reason.contains("match.reconsidered"), "{reason}");
    assert!(reason.contains("does not know"), "{reason}");
    app.stop().await;
}

#[tokio::test]
async fn a_corrupt_insights_fact_is_a_500_and_never_a_key_in_the_statistics() {
    let app = TestApp::spawn().await;
    let (id, _, _) = offered_referral(&app).await;
    let coordinator = app.coordinator(&["16"]);
    let pool = app.sandbox.pool().await;
    eventually("insights has the offer", Duration::from_secs(20), || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM insights.events WHERE referral_id = $1::uuid AND kind = 'offered'",
        )
        .bind(&id)
        .fetch_one(&pool)
        .await
        .ok()?;
        (n > 0).then_some(())
    })
    .await;
    let (status, _) = app.get("/api/v1/insights/export.csv?territory=16", &coordinator).await;
    assert_eq!(status, 200);

    // A need that is not one: the export and the flows fail rather than print it.
    sqlx::query("UPDATE insights.referrals SET needs = '{teleportation}' WHERE referral_id = $1::uuid")
        .bind(&id)
        .execute(&pool)
        .await
        .unwrap();
    let (status, body) = app.get("/api/v1/insights/export.csv?territory=16", &coordinator).await;
    assert_opaque_500(status, &body, "teleportation");
    let (status, body) = app.get("/api/v1/insights/flows?territory=16", &coordinator).await;
    assert_opaque_500(status, &body, "teleportation");

    // An event kind the report does not know is an error, not a row it skips.
    sqlx::query("UPDATE insights.events SET kind = 'teleported' WHERE referral_id = $1::uuid AND kind = 'offered'")
        .bind(&id)
        .execute(&pool)
        .await
        .unwrap();
    let (status, body) = app.get("/api/v1/insights/structures/lieu-a/report", &coordinator).await;
    assert_opaque_500(status, &body, "teleported");
    pool.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_corrupt_membership_is_a_500_and_never_a_role_nobody_granted() {
    let app = TestApp::spawn().await;
    let account = app.sign_in_agent("corrupt-agent", "agent.corrompu@example.org", None).await;
    let (ok, out, err) =
        app.sandbox.cli(&["account", "grant", "--email", "agent.corrompu@example.org", "--role", "admin"]).await;
    assert!(ok, "{out}{err}");
    let pool = app.sandbox.pool().await;
    sqlx::query("UPDATE accounts.memberships SET role = 'overlord' WHERE account_id = $1")
        .bind(account)
        .execute(&pool)
        .await
        .unwrap();
    let (status, body) = app.get("/api/v1/me", &app.agent(account, None)).await;
    assert_opaque_500(status, &body, "overlord");
    let (status, body) = app.get("/api/v1/accounts", &app.admin).await;
    assert_opaque_500(status, &body, "overlord");
    pool.close().await;
    app.stop().await;
}
