//! Issue 3: capacity-aware, explainable matching; no overbooking across replicas.

use std::time::Duration;

use serde_json::{Value, json};

use crate::crash::{Server, free_port};
use crate::support::*;

#[tokio::test]
async fn two_servers_on_one_database_never_overbook_and_waitlist_the_excess() {
    let sandbox = Sandbox::new().await;
    let (p1, p2) = (free_port(), free_port());
    let mut one = Server::start(&sandbox, p1, &[]).await;
    let mut two = Server::start(&sandbox, p2, &[]).await;
    let key = sandbox.key().await;
    let token = |role, scope| key.issue(&platform::auth::Claims::new(role, scope, chrono::Duration::hours(1)).unwrap());
    let admin = token(contracts::Role::Admin, platform::auth::Scope::All);
    let client = reqwest::Client::new();
    let org: Value = client
        .post(format!("{}/api/v1/organisations", one.base))
        .bearer_auth(&admin)
        .json(&json!({"name": "CCAS", "territory": "16"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let referrer = token(
        contracts::Role::Referrer,
        platform::auth::Scope::Organisation(org["id"].as_str().unwrap().parse().unwrap()),
    );
    let capacities = [("a", 45.65, 7), ("b", 45.66, 5), ("c", 45.67, 9), ("d", 45.68, 4)];
    for (id, lat, cap) in capacities {
        let r = client
            .put(format!("{}/api/v1/structures/{id}", two.base))
            .bearer_auth(&admin)
            .json(&structure(id, lat, 0.15, &[AIDE], cap))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    let total_capacity: i64 = capacities.iter().map(|c| c.2 as i64).sum();
    let pool = sandbox.pool().await;
    eventually("the structures in the matcher", Duration::from_secs(20), || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM matcher.structures").fetch_one(&pool).await.ok()?;
        (n == 4).then_some(())
    })
    .await;

    let submitted = 200;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let base = if i % 2 == 0 { one.base.clone() } else { two.base.clone() };
        let (client, referrer) = (client.clone(), referrer.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..submitted / 10 {
                let r = client
                    .post(format!("{base}/api/v1/referrals"))
                    .bearer_auth(&referrer)
                    .json(&referral())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (offered, waitlisted) = eventually("every referral routed", Duration::from_secs(60), || async {
        let (offered, waitlisted, pending): (i64, i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'offered'), count(*) FILTER (WHERE status = 'waitlisted'),
                    count(*) FILTER (WHERE status = 'submitted') FROM referrals.referrals",
        )
        .fetch_one(&pool)
        .await
        .ok()?;
        (pending == 0 && offered + waitlisted == submitted).then_some((offered, waitlisted))
    })
    .await;
    assert_eq!(offered, total_capacity, "every unit of capacity used, none twice");
    assert_eq!(waitlisted, submitted - total_capacity);
    for (id, _, cap) in capacities {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM referrals.referrals WHERE status = 'offered' AND offer_structure_id = $1",
        )
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(n, cap as i64, "structure {id} holds {n} offers for a capacity of {cap}");
    }
    let reasons: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT waitlist_reason FROM referrals.referrals WHERE status = 'waitlisted'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(reasons, vec!["no_capacity".to_string()]);
    pool.close().await;
    one.terminate().await;
    two.terminate().await;
    sandbox.destroy().await;
}

#[tokio::test]
async fn when_capacity_appears_the_urgent_referral_is_served_before_older_ones() {
    let app = TestApp::spawn().await;
    let referrer = app.referrer(app.organisation("16").await);
    app.structure("a", structure("A", 45.6500, 0.1550, &[AIDE], 0)).await;
    let oldest = app.submit(&referrer, referral()).await;
    app.until_status(&oldest, &referrer, "waitlisted").await;
    let older = app.submit(&referrer, referral()).await;
    app.until_status(&older, &referrer, "waitlisted").await;
    let with_deadline = app.submit(&referrer, merged(referral(), json!({"deadline": "2026-12-03"}))).await;
    app.until_status(&with_deadline, &referrer, "waitlisted").await;
    let urgent = app.submit(&referrer, merged(referral(), json!({"urgency": "urgent"}))).await;
    app.until_status(&urgent, &referrer, "waitlisted").await;

    let capacity = |n: u32| {
        let app = &app;
        async move {
            let (s, v) = app.put("/api/v1/structures/a/capacity", &app.admin, json!({"weekly_capacity": n})).await;
            assert_eq!(s, 200, "{v}");
        }
    };
    let status = |id: String| {
        let (app, referrer) = (&app, referrer.clone());
        async move { app.get(&format!("/api/v1/referrals/{id}"), &referrer).await.1["status"].as_str().unwrap().to_string() }
    };
    capacity(1).await;
    app.until_status(&urgent, &referrer, "offered").await;
    assert_eq!(status(with_deadline.clone()).await, "waitlisted");
    capacity(2).await;
    app.until_status(&with_deadline, &referrer, "offered").await;
    assert_eq!(status(oldest.clone()).await, "waitlisted");
    capacity(3).await;
    app.until_status(&oldest, &referrer, "offered").await;
    assert_eq!(status(older.clone()).await, "waitlisted");
    app.stop().await;
}

#[tokio::test]
async fn candidates_explain_the_choice_and_why_each_nearby_structure_was_excluded() {
    let app = TestApp::spawn().await;
    let org = app.organisation("16").await;
    let referrer = app.referrer(org);
    app.structure("declines", structure("Refuse", 45.6470, 0.1460, &[AIDE], 5)).await;
    app.structure("full", structure("Pleine", 45.6480, 0.1470, &[AIDE], 0)).await;
    app.structure("leisure", structure("Loisirs", 45.6490, 0.1480, &["loisirs_creations"], 5)).await;
    app.structure("arabic", merged(structure("Arabe", 45.6500, 0.1490, &[AIDE], 5), json!({"languages": ["ar"]})))
        .await;
    app.structure("cognac", structure("Cognac", 45.6962, -0.3292, &[AIDE], 5)).await;
    app.structure("good", structure("Bonne", 45.6600, 0.1600, &[AIDE], 5)).await;
    let id = app.submit(&referrer, referral()).await;
    let r = app.until_status(&id, &referrer, "offered").await;
    assert_eq!(r["current_offer"]["structure_id"], "declines");
    app.step(&id, "decline", &app.mediator("declines"), json!({"reason": "no_capacity"})).await;
    app.until_attempt(&id, &referrer, 2, "offered").await;
    // good now holds the offer (1/5 used) and remains the best candidate.
    let (s, c) = app.get(&format!("/api/v1/referrals/{id}/candidates"), &referrer).await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["candidates"][0]["structure_id"], "good", "{c}");
    assert!(c["candidates"][0]["explanation"].as_array().unwrap().iter().any(|l| l.as_str().unwrap().contains("km")));
    assert!(c["candidates"][0]["score"].is_number());
    let reasons = |c: &Value, id: &str| -> Vec<String> {
        let e = c["excluded"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["structure_id"] == id)
            .unwrap_or_else(|| panic!("{id} not excluded: {c}"));
        e["reasons"].as_array().unwrap().iter().map(|r| r["message"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(reasons(&c, "full"), ["no capacity left this week (0/0 used)"]);
    assert_eq!(reasons(&c, "leisure"), [format!("does not offer {AIDE}")]);
    assert_eq!(reasons(&c, "arabic"), ["no shared language"]);
    assert_eq!(reasons(&c, "cognac"), ["beyond 30 km"]);
    assert_eq!(reasons(&c, "declines"), ["already declined"]);

    // Scope: another organisation, a mediator.
    let other = app.referrer(app.organisation("16").await);
    assert_eq!(app.get(&format!("/api/v1/referrals/{id}/candidates"), &other).await.0, 404);
    assert_eq!(app.get(&format!("/api/v1/referrals/{id}/candidates"), &app.mediator("good")).await.0, 403);

    // Preview: the same, before anything is submitted, with no personal data.
    let (s, p) = app
        .post(
            "/api/v1/match/preview",
            &app.coordinator(&["16"]),
            json!({"commune_code": "16015", "needs": [AIDE], "languages": ["ar"]}),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["candidates"][0]["structure_id"], "arabic");
    assert_eq!(reasons(&p, "good"), ["no shared language"]);
    let (s, p) = app
        .post("/api/v1/match/preview", &referrer, json!({"postcode": "16000", "needs": [AIDE], "max_distance_km": 60}))
        .await;
    assert_eq!(s, 200, "{p}");
    assert!(p["candidates"].as_array().unwrap().iter().any(|c| c["structure_id"] == "cognac"));
    let (s, v) = app
        .post(
            "/api/v1/match/preview",
            &referrer,
            json!({"commune_code": "16015", "needs": [AIDE], "first_name": "Camille"}),
        )
        .await;
    assert_eq!(s, 422, "no personal data in a preview: {v}");
    let (s, v) = app.post("/api/v1/match/preview", &referrer, json!({"commune_code": "00000", "needs": ["x"]})).await;
    assert_eq!(s, 422, "{v}");
    assert!(v.to_string().contains("commune_code") && v.to_string().contains("needs[0]"), "{v}");
    assert_eq!(
        app.post("/api/v1/match/preview", &app.mediator("good"), json!({"commune_code": "16015", "needs": [AIDE]}))
            .await
            .0,
        403
    );
    app.stop().await;
}
