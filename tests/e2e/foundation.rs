//! Issue 2: one referral travels end to end through the real PostgreSQL and RabbitMQ.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn migrate_is_idempotent_and_the_server_reports_ready() {
    let app = TestApp::spawn().await;
    // The sandbox migrated once already; twice more changes nothing.
    aiguillage::migrate(&app.sandbox.config).await.unwrap().close().await;
    aiguillage::migrate(&app.sandbox.config).await.unwrap().close().await;
    let (s, _, _) = app.request(reqwest::Method::GET, "/healthz", None, None).await;
    assert_eq!(s, 200);
    let (s, ready, _) = app.request(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(s, 200, "{ready}");
    assert_eq!(ready["checks"]["broker"], "ok");
    let (s, metrics, _) = app.request(reqwest::Method::GET, "/metrics", None, None).await;
    assert_eq!(s, 200);
    assert!(metrics.as_str().unwrap().contains("aiguillage_broker_connected 1"), "{metrics}");
    let (s, spec, _) = app.request(reqwest::Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(s, 200);
    assert_eq!(spec["openapi"], "3.1.0");
    app.stop().await;
}

#[tokio::test]
async fn a_referral_is_offered_to_the_nearest_structure_that_covers_its_need() {
    let app = TestApp::spawn().await;
    let org = app.organisation("16").await;
    let referrer = app.referrer(org);
    app.structure("leisure", structure("Loisirs", 45.6460, 0.1452, &["loisirs_creations"], 5)).await;
    app.structure("near", structure("Proche", 45.6500, 0.1550, &[AIDE], 5)).await;
    app.structure("far", structure("Loin", 45.7000, 0.2000, &[AIDE], 5)).await;
    let id = app.submit(&referrer, referral()).await;
    let r = app.until_status(&id, &referrer, "offered").await;
    let offer = &r["current_offer"];
    assert_eq!(offer["structure_id"], "near", "{r}");
    assert_eq!(offer["structure_name"], "Proche");
    let km = offer["distance_km"].as_f64().unwrap();
    assert!(km > 0.5 && km < 1.5, "{km}");
    let explanation: Vec<&str> = offer["explanation"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert!(explanation.iter().any(|l| l.contains("km")), "{explanation:?}");
    assert!(explanation.iter().any(|l| l.contains(AIDE)), "{explanation:?}");
    assert!(offer["expires_at"].is_string());
    assert_eq!(r["attempts"], 1);
    app.stop().await;
}

#[tokio::test]
async fn a_structure_with_capacity_one_takes_one_referral_and_the_next_goes_further() {
    let app = TestApp::spawn().await;
    let referrer = app.referrer(app.organisation("16").await);
    app.structure("near", structure("Proche", 45.6500, 0.1550, &[AIDE], 1)).await;
    app.structure("far", structure("Loin", 45.7000, 0.2000, &[AIDE], 5)).await;
    let first = app.submit(&referrer, referral()).await;
    let r = app.until_status(&first, &referrer, "offered").await;
    assert_eq!(r["current_offer"]["structure_id"], "near");
    let second = app.submit(&referrer, referral()).await;
    let r = app.until_status(&second, &referrer, "offered").await;
    assert_eq!(r["current_offer"]["structure_id"], "far");
    app.stop().await;
}

#[tokio::test]
async fn a_declined_referral_goes_elsewhere_then_waits_then_takes_new_capacity() {
    let app = TestApp::spawn().await;
    let referrer = app.referrer(app.organisation("16").await);
    app.structure("near", structure("Proche", 45.6500, 0.1550, &[AIDE], 5)).await;
    app.structure("far", structure("Loin", 45.7000, 0.2000, &[AIDE], 0)).await;
    let id = app.submit(&referrer, referral()).await;
    app.until_status(&id, &referrer, "offered").await;

    let (s, r) = app
        .post(&format!("/api/v1/referrals/{id}/decline"), &app.mediator("near"), json!({"reason": "no_capacity"}))
        .await;
    assert_eq!(s, 200, "{r}");
    // The only other structure has no capacity: the referral waits, never back to "near".
    let r = app.until_status(&id, &referrer, "waitlisted").await;
    assert_eq!(r["waitlist_reason"], "no_capacity", "{r}");
    let steps: Vec<&str> = r["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
    assert_eq!(steps, ["submitted", "offered", "declined", "waitlisted"]);

    let (s, v) = app.put("/api/v1/structures/far/capacity", &app.admin, json!({"weekly_capacity": 2})).await;
    assert_eq!(s, 200, "{v}");
    let r = app.until_status(&id, &referrer, "offered").await;
    assert_eq!(r["current_offer"]["structure_id"], "far");
    assert_eq!(r["attempts"], 2);
    app.stop().await;
}

#[tokio::test]
async fn the_offered_structure_sees_personal_data_only_after_accepting() {
    let app = TestApp::spawn().await;
    let referrer = app.referrer(app.organisation("16").await);
    app.structure("near", structure("Proche", 45.6500, 0.1550, &[AIDE], 5)).await;
    let id = app.submit(&referrer, referral()).await;
    app.until_status(&id, &referrer, "offered").await;
    let mediator = app.mediator("near");

    let (s, before) = app.get(&format!("/api/v1/referrals/{id}"), &mediator).await;
    assert_eq!(s, 200);
    assert!(before.get("person").is_none(), "{before}");
    assert!(before.get("note").is_none());
    let text = before.to_string();
    assert!(!text.contains("Camille") && !text.contains("+33612345678") && !text.contains("Dossier CAF"), "{text}");
    assert_eq!(before["needs"], json!([AIDE]));
    let (s, inbox) = app.get("/api/v1/referrals?status=offered", &mediator).await;
    assert_eq!(s, 200);
    assert_eq!(inbox["items"].as_array().unwrap().len(), 1);
    assert!(!inbox.to_string().contains("Camille"));

    let (s, after) = app.post(&format!("/api/v1/referrals/{id}/accept"), &mediator, json!({})).await;
    assert_eq!(s, 200, "{after}");
    assert_eq!(after["person"]["first_name"], "Camille");
    assert_eq!(after["person"]["phone"], "+33612345678");
    assert_eq!(after["structure"]["id"], "near");
    assert_eq!(after["structure"]["name"], "Proche");
    app.stop().await;
}

#[tokio::test]
async fn a_referral_lives_through_accept_contact_and_close_with_its_history() {
    let app = TestApp::spawn().await;
    let referrer = app.referrer(app.organisation("16").await);
    app.structure("near", structure("Proche", 45.6500, 0.1550, &[AIDE], 5)).await;
    let id = app.submit(&referrer, referral()).await;
    app.until_status(&id, &referrer, "offered").await;
    let mediator = app.mediator("near");
    let path = |step: &str| format!("/api/v1/referrals/{id}/{step}");

    let (s, v) = app.post(&path("contact"), &mediator, json!({"kind": "appointment"})).await;
    assert_eq!(s, 409, "contact before accept: {v}");
    assert!(v["detail"].as_str().unwrap().contains("offered"), "{v}");
    let (s, v) = app.post(&path("close"), &mediator, json!({"outcome": "completed"})).await;
    assert_eq!(s, 409, "{v}");

    let (s, v) = app.post(&path("accept"), &mediator, json!({"mediator_name": "Sam"})).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("accepted")), "{v}");
    let (s, v) = app.post(&path("accept"), &mediator, json!({})).await;
    assert_eq!(s, 409, "accepting twice: {v}");
    let (s, v) = app.post(&path("contact"), &mediator, json!({"kind": "first_contact"})).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("in_progress")), "{v}");
    let (s, v) =
        app.post(&path("close"), &mediator, json!({"outcome": "completed", "comment": "Dossier déposé"})).await;
    assert_eq!((s, v["status"].as_str(), v["outcome"].as_str()), (200, Some("closed"), Some("completed")), "{v}");

    let (s, v) = app.post(&path("cancel"), &referrer, json!({"reason": "plus besoin"})).await;
    assert_eq!(s, 409, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("closed"));
    let (s, v) = app.post(&path("decline"), &mediator, json!({"reason": "other"})).await;
    assert_eq!(s, 409, "{v}");

    let (_, r) = app.get(&format!("/api/v1/referrals/{id}"), &referrer).await;
    let steps: Vec<&str> = r["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
    assert_eq!(steps, ["submitted", "offered", "accepted", "contacted", "closed"]);
    assert_eq!(r["history"][4]["reason"], "completed");
    app.stop().await;
}

#[tokio::test]
async fn language_and_accessibility_needs_constrain_the_match() {
    let app = TestApp::spawn().await;
    let referrer = app.referrer(app.organisation("16").await);
    app.structure("french", structure("Francophone", 45.6460, 0.1452, &[AIDE], 5)).await;
    app.structure(
        "arabic",
        merged(structure("Arabophone", 45.7000, 0.2000, &[AIDE], 5), json!({"languages": ["fr", "ar"]})),
    )
    .await;
    app.structure(
        "others",
        merged(structure("Autres langues", 45.7100, 0.2100, &[AIDE], 5), json!({"other_languages": true})),
    )
    .await;
    app.structure(
        "motor",
        merged(structure("Accessible", 45.7200, 0.2200, &[AIDE], 5), json!({"accessibility": ["motor"]})),
    )
    .await;
    app.structure(
        "remote",
        merged(structure("Lointaine", 45.9000, 0.5000, &[AIDE], 5), json!({"languages": ["fr", "ps"]})),
    )
    .await;

    let arabic = app.submit(&referrer, merged(referral(), json!({"person": {"languages": ["ar"]}}))).await;
    let r = app.until_status(&arabic, &referrer, "offered").await;
    assert_eq!(r["current_offer"]["structure_id"], "arabic");

    let tigrinya = app.submit(&referrer, merged(referral(), json!({"person": {"languages": ["ti"]}}))).await;
    let r = app.until_status(&tigrinya, &referrer, "offered").await;
    assert_eq!(r["current_offer"]["structure_id"], "others");

    let pashto_nearby = app
        .submit(&referrer, merged(referral(), json!({"person": {"languages": ["ps"]}, "max_distance_km": 10})))
        .await;
    let r = app.until_status(&pashto_nearby, &referrer, "offered").await;
    assert_eq!(r["current_offer"]["structure_id"], "others", "the pashto-speaking place is beyond 10 km");

    let wheelchair = app.submit(&referrer, merged(referral(), json!({"person": {"accessibility": ["motor"]}}))).await;
    let r = app.until_status(&wheelchair, &referrer, "offered").await;
    assert_eq!(r["current_offer"]["structure_id"], "motor");

    let deaf = app.submit(&referrer, merged(referral(), json!({"person": {"accessibility": ["deaf"]}}))).await;
    let r = app.until_status(&deaf, &referrer, "waitlisted").await;
    assert_eq!(r["waitlist_reason"], "no_structure_in_range");
    app.stop().await;
}

#[tokio::test]
async fn callers_see_only_their_scope() {
    let app = TestApp::spawn().await;
    let ours = app.referrer(app.organisation("16").await);
    let theirs = app.referrer(app.organisation("16").await);
    app.structure("near", structure("Proche", 45.6500, 0.1550, &[AIDE], 5)).await;
    app.structure("other", structure("Autre", 45.7000, 0.2000, &[AIDE], 5)).await;
    let id = app.submit(&ours, referral()).await;
    app.until_status(&id, &ours, "offered").await;
    let path = format!("/api/v1/referrals/{id}");

    assert_eq!(app.get(&path, &theirs).await.0, 404);
    let (s, list) = app.get("/api/v1/referrals", &theirs).await;
    assert_eq!(s, 200);
    assert_eq!(list["items"], json!([]));
    let (_, list) = app.get("/api/v1/referrals", &ours).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    assert_eq!(app.get(&path, &app.mediator("other")).await.0, 404);
    assert_eq!(app.post(&format!("{path}/accept"), &app.mediator("other"), json!({})).await.0, 404);
    assert_eq!(app.post(&format!("{path}/cancel"), &theirs, json!({})).await.0, 404);

    let coordinator = app.coordinator(&["16"]);
    assert_eq!(app.post("/api/v1/referrals", &coordinator, referral()).await.0, 403);
    assert_eq!(app.get("/api/v1/insights/funnel?territory=16", &ours).await.0, 403);
    assert_eq!(app.get("/api/v1/insights/queues?territory=16", &app.mediator("near")).await.0, 403);
    assert_eq!(app.get("/api/v1/insights/funnel?territory=17", &coordinator).await.0, 404);
    assert_eq!(app.get("/api/v1/insights/queues?territory=17", &coordinator).await.0, 404);
    assert_eq!(app.get("/api/v1/insights/funnel?territory=16", &coordinator).await.0, 200);
    // A coordinator sees the referrals of their territory without personal data.
    let (s, r) = app.get(&path, &coordinator).await;
    assert_eq!(s, 200);
    assert!(r.get("person").is_none());
    assert_eq!(app.get(&path, &app.coordinator(&["17"])).await.0, 404);
    app.stop().await;
}

/// Checks one bad request: a 4xx problem+json that names `field`.
async fn expect_problem(
    app: &TestApp,
    token: Option<&str>,
    body: reqwest::Body,
    content_type: &str,
    status: u16,
    field: &str,
) {
    let mut req =
        app.client.post(format!("{}/api/v1/referrals", app.base)).header("content-type", content_type).body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let got = resp.status().as_u16();
    let ctype = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let text = resp.text().await.unwrap();
    assert_eq!(got, status, "expected {status} naming {field:?}, got {got}: {text}");
    assert!(ctype.starts_with("application/problem+json"), "{ctype}: {text}");
    let problem: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(problem["status"], status);
    assert!(text.contains(field), "{field:?} not named in {text}");
}

#[tokio::test]
async fn bad_input_gets_a_problem_that_names_the_field_and_never_a_5xx() {
    let app = TestApp::spawn().await;
    let referrer = app.referrer(app.organisation("16").await);
    let json_body = |v: Value| reqwest::Body::from(v.to_string());
    let cases: Vec<(Value, &str)> = vec![
        (merged(referral(), json!({"consent": {"obtained": false}})), "consent.obtained"),
        (merged(referral(), json!({"consent": null})), "consent"),
        (merged(referral(), json!({"person": {"commune_code": "99999"}})), "person.commune_code"),
        (merged(referral(), json!({"person": {"commune_code": null, "postcode": "00000"}})), "person.postcode"),
        (merged(referral(), json!({"needs": ["cooking"]})), "needs[0]"),
        (merged(referral(), json!({"needs": []})), "needs"),
        (merged(referral(), json!({"colour": "blue"})), "colour"),
        (merged(referral(), json!({"person": {"age": 40}})), "person.age"),
        (merged(referral(), json!({"needs": "aide"})), "needs"),
        (merged(referral(), json!({"max_distance_km": "far"})), "max_distance_km"),
        (merged(referral(), json!({"person": {"phone": null, "email": null}})), "person.phone"),
        (merged(referral(), json!({"person": {"email": "not-an-address", "phone": null}})), "person.email"),
        (merged(referral(), json!({"note": "x".repeat(1001)})), "note"),
        (merged(referral(), json!({"urgency": "yesterday"})), "urgency"),
        (merged(referral(), json!({"deadline": "15/12/2026"})), "deadline"),
        (merged(referral(), json!({"person": {"first_name": ""}})), "person.first_name"),
    ];
    for (body, field) in cases {
        expect_problem(&app, Some(&referrer), json_body(body), "application/json", 422, field).await;
    }
    expect_problem(&app, Some(&referrer), "{\"person\": ".into(), "application/json", 400, "body").await;
    expect_problem(&app, Some(&referrer), "[1, 2]".into(), "application/json", 422, "body").await;
    let huge = format!("{{\"note\": \"{}\"}}", "x".repeat(1024 * 1024));
    expect_problem(&app, Some(&referrer), huge.into(), "application/json", 413, "").await;
    expect_problem(&app, Some(&referrer), json_body(referral()), "text/plain", 415, "application/json").await;
    expect_problem(&app, None, json_body(referral()), "application/json", 401, "token").await;
    expect_problem(&app, Some("not.a.token"), json_body(referral()), "application/json", 401, "").await;
    let forged = {
        let other = platform::auth::TokenKey::new(b"forged");
        let org = uuid::Uuid::now_v7();
        other.issue(
            &platform::auth::Claims::new(
                contracts::Role::Referrer,
                platform::auth::Scope::Organisation(org.into()),
                chrono::Duration::hours(1),
            )
            .unwrap(),
        )
    };
    expect_problem(&app, Some(&forged), json_body(referral()), "application/json", 401, "signature").await;

    // Nothing above created a referral.
    let (_, list) = app.get("/api/v1/referrals", &referrer).await;
    assert_eq!(list["items"], json!([]));
    // Unknown routes and ids are problems too.
    let (s, v, h) = app.request(reqwest::Method::GET, "/api/v1/referrals/not-a-uuid", Some(&referrer), None).await;
    assert_eq!(s, 404, "{v}");
    assert!(h["content-type"].to_str().unwrap().starts_with("application/problem+json"));
    let (s, _, _) = app.request(reqwest::Method::DELETE, "/api/v1/referrals", Some(&referrer), None).await;
    assert_eq!(s, 405);
    let (s, v) = app
        .post(
            "/api/v1/referrals/0193f0c2-0000-7000-8000-000000000000/decline",
            &app.mediator("x"),
            json!({"reason": "bored"}),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    // A filter far beyond the calendar was a 500 (schemathesis found it).
    let (s, v) = app.get("/api/v1/referrals?escalated=false&stale_days=1163073428", &referrer).await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["errors"][0]["field"], "stale_days");
    // PostgreSQL cannot compare a NUL: such a text is refused before it gets there (was a 500).
    let (s, v) = app.get("/api/v1/structures?territory=P%00", &app.admin).await;
    assert_eq!(s, 422, "{v}");
    let (s, v) = app.get("/api/v1/insights/queues?territory=1%006", &app.admin).await;
    assert_eq!(s, 422, "{v}");
    let (s, v) = app.get("/api/v1/insights/structures/x%00/report", &app.admin).await;
    assert_eq!(s, 404, "{v}");
    app.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_returns_the_same_referral_and_refuses_another_body() {
    let app = TestApp::spawn().await;
    let referrer = app.referrer(app.organisation("16").await);
    let send = |body: Value, key: &'static str| {
        let req = app
            .client
            .post(format!("{}/api/v1/referrals", app.base))
            .bearer_auth(&referrer)
            .header("Idempotency-Key", key)
            .json(&body);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s1, first) = send(referral(), "k-1").await;
    let (s2, again) = send(referral(), "k-1").await;
    assert_eq!((s1, s2), (201, 201));
    assert_eq!(first["id"], again["id"]);
    let (s3, conflict) = send(merged(referral(), json!({"urgency": "urgent"})), "k-1").await;
    assert_eq!(s3, 409, "{conflict}");
    // Concurrent duplicates with one key create one referral.
    let (a, b, c) = tokio::join!(send(referral(), "k-2"), send(referral(), "k-2"), send(referral(), "k-2"));
    assert_eq!((a.0, b.0, c.0), (201, 201, 201));
    assert!(a.1["id"] == b.1["id"] && b.1["id"] == c.1["id"]);
    let (_, list) = app.get("/api/v1/referrals", &referrer).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn funnel_and_queues_count_exactly_what_happened() {
    let app = TestApp::spawn().await;
    let referrer = app.referrer(app.organisation("16").await);
    let coordinator = app.coordinator(&["16"]);
    app.structure("near", structure("Proche", 45.6500, 0.1550, &[AIDE], 3)).await;
    app.structure("far", structure("Loin", 45.7000, 0.2000, &[AIDE], 1)).await;
    let near = app.mediator("near");
    let far = app.mediator("far");
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(app.submit(&referrer, referral()).await);
    }
    // 3 offers to near, 1 to far, 2 waitlisted.
    let mut offered_near = Vec::new();
    let mut offered_far = Vec::new();
    let mut waiting = Vec::new();
    for id in &ids {
        let r = eventually("routing", Duration::from_secs(20), || async {
            let (_, v) = app.get(&format!("/api/v1/referrals/{id}"), &referrer).await;
            matches!(v["status"].as_str(), Some("offered" | "waitlisted")).then_some(v)
        })
        .await;
        match (r["status"].as_str(), r["current_offer"]["structure_id"].as_str()) {
            (Some("offered"), Some("near")) => offered_near.push(id.clone()),
            (Some("offered"), Some("far")) => offered_far.push(id.clone()),
            _ => waiting.push(id.clone()),
        }
    }
    assert_eq!((offered_near.len(), offered_far.len(), waiting.len()), (3, 1, 2));
    app.step(&offered_near[0], "accept", &near, json!({})).await;
    app.step(&offered_near[0], "contact", &near, json!({"kind": "first_contact"})).await;
    app.step(&offered_near[0], "close", &near, json!({"outcome": "completed"})).await;
    app.step(&offered_near[1], "accept", &near, json!({})).await;
    app.step(&offered_far[0], "decline", &far, json!({"reason": "out_of_scope"})).await;
    app.step(&waiting[0], "cancel", &referrer, json!({"reason": "déménagement"})).await;
    // far declined: that referral cannot go back to far and near is full, so it waits;
    // the capacity far gave back goes to the referral that was waiting.
    app.until_status(&offered_far[0], &referrer, "waitlisted").await;
    let r = app.until_status(&waiting[1], &referrer, "offered").await;
    assert_eq!(r["current_offer"]["structure_id"], "far");

    let funnel = eventually("exact funnel", Duration::from_secs(20), || async {
        let (_, f) = app.get("/api/v1/insights/funnel?territory=16", &coordinator).await;
        (f["submitted"] == 6
            && f["closed"] == 1
            && f["cancelled"] == 1
            && f["declines"]["out_of_scope"] == 1
            && f["offered"] == 5)
            .then_some(f)
    })
    .await;
    assert_eq!(funnel["waitlisted_now"], 1, "{funnel}");
    assert_eq!(funnel["accepted"], 2);
    assert_eq!(funnel["in_progress"], 1);
    assert_eq!(funnel["outcomes"], json!({"completed": 1}));
    assert_eq!(funnel["expired_offers"], 0);
    assert!((funnel["offers_per_referral"].as_f64().unwrap() - 5.0 / 6.0).abs() < 1e-9, "{funnel}");
    assert!(funnel["time_to_accept_seconds"]["p50"].is_number());

    let (_, q) = app.get("/api/v1/insights/queues?territory=16", &coordinator).await;
    let by_id =
        |id: &str| q["structures"].as_array().unwrap().iter().find(|s| s["structure_id"] == id).cloned().unwrap();
    let near_q = by_id("near");
    assert_eq!(near_q["pending_offers"], 1, "{q}");
    assert_eq!(near_q["accepted_this_week"], 2);
    assert_eq!(near_q["in_progress"], 0);
    assert_eq!(near_q["weekly_capacity"], 3);
    assert_eq!(by_id("far")["pending_offers"], 1);
    assert_eq!(q["waitlist"]["count"], 1);
    assert_eq!(q["waitlist"]["escalated"], 0);
    assert_eq!(q["waitlist"]["by_reason"], json!({"no_capacity": 1}), "{q}");
    app.stop().await;
}

#[tokio::test]
async fn with_the_broker_unreachable_submissions_still_succeed_and_are_matched_later() {
    let proxy = proxy::Proxy::start("127.0.0.1:5672").await;
    let url = proxy.amqp_url();
    let app = TestApp::spawn_with(move |c| c.amqp_url = url).await;
    let referrer = app.referrer(app.organisation("16").await);
    app.structure("near", structure("Proche", 45.6500, 0.1550, &[AIDE], 5)).await;
    // Let the directory's events reach the matcher before the outage.
    eventually("matcher knows the structure", Duration::from_secs(20), || async {
        let (_, v) =
            app.post("/api/v1/match/preview", &app.admin, json!({"commune_code": "16015", "needs": [AIDE]})).await;
        (v["candidates"].as_array().is_some_and(|c| !c.is_empty())).then_some(())
    })
    .await;

    proxy.cut();
    let started = std::time::Instant::now();
    let id = app.submit(&referrer, referral()).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let (s, ready, _) = app.request(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(s, 503, "{ready}");
    let (_, r) = app.get(&format!("/api/v1/referrals/{id}"), &referrer).await;
    assert_eq!(r["status"], "submitted");

    proxy.restore();
    let r = app.until_status(&id, &referrer, "offered").await;
    assert_eq!(r["current_offer"]["structure_id"], "near");
    app.stop().await;
}

#[tokio::test]
async fn service_queues_are_quorum_queues_with_dead_lettering_under_the_namespace() {
    let app = TestApp::spawn().await;
    let queues = broker_queues();
    let ns = &app.sandbox.namespace;
    for service in ["referrals", "matcher", "insights"] {
        let name = format!("{ns}.{service}");
        let q = queues
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(q["type"], "quorum", "{q}");
        let args = q["arguments"].to_string();
        assert!(args.contains(&format!("{ns}.{service}.dlx")), "{args}");
        assert!(args.contains("x-delivery-limit"), "{args}");
        let dlq = format!("{ns}.{service}.dlq");
        let q = queues.as_array().unwrap().iter().find(|q| q["name"] == dlq.as_str()).expect("dead-letter queue");
        assert_eq!(q["type"], "quorum", "{q}");
        // Listing dead letters takes them and gives them back: no limit may drop them.
        assert!(q["arguments"].to_string().contains("1000000"), "{q}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_dead_letter_queue_declared_by_an_earlier_version_is_kept_and_the_server_still_starts() {
    let sandbox = Sandbox::new().await;
    let dlq = format!("{}.matcher.dlq", sandbox.namespace);
    {
        let connection = bus::connect(&amqp_url()).await.unwrap();
        let channel = connection.create_channel().await.unwrap();
        let mut args = lapin::types::FieldTable::default();
        args.insert("x-queue-type".into(), lapin::types::AMQPValue::LongString("quorum".into()));
        let durable = lapin::options::QueueDeclareOptions { durable: true, ..Default::default() };
        channel.queue_declare(dlq.as_str().into(), durable, args).await.unwrap();
        connection.close(200, "declared".into()).await.unwrap();
    }
    let app = TestApp::start(sandbox).await;
    let referrer = app.referrer(app.organisation("16").await);
    app.structure("near", structure("Proche", 45.6500, 0.1550, &[AIDE], 5)).await;
    let id = app.submit(&referrer, referral()).await;
    app.until_status(&id, &referrer, "offered").await;
    let queues = broker_queues();
    let q = queues.as_array().unwrap().iter().find(|q| q["name"] == dlq.as_str()).expect("the old queue");
    assert!(!q["arguments"].to_string().contains("x-delivery-limit"), "kept as it was: {q}");
    app.stop().await;
}

#[tokio::test]
async fn no_personal_data_travels_on_the_bus() {
    use futures::StreamExt;
    use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
    let app = TestApp::spawn().await;
    let conn = bus::connect(&amqp_url()).await.unwrap();
    let channel = conn.create_channel().await.unwrap();
    let spy = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() },
            Default::default(),
        )
        .await
        .unwrap();
    let exchange = format!("{}.events", app.sandbox.namespace);
    channel
        .queue_bind(spy.name().clone(), exchange.into(), "#".into(), QueueBindOptions::default(), Default::default())
        .await
        .unwrap();
    let mut consumer = channel
        .basic_consume(
            spy.name().clone(),
            "spy".into(),
            BasicConsumeOptions { no_ack: true, ..Default::default() },
            Default::default(),
        )
        .await
        .unwrap();

    let referrer = app.referrer(app.organisation("16").await);
    app.structure("near", structure("Proche", 45.6500, 0.1550, &[AIDE], 5)).await;
    let body = merged(
        referral(),
        json!({"person": {"first_name": "Zéphyrine", "last_name": "Quarantelli", "email": "zq@example.net", "phone": "06 98 76 54 32"}, "note": "Numéro fiscal 1234567890123"}),
    );
    let id = app.submit(&referrer, body).await;
    app.until_status(&id, &referrer, "offered").await;
    let mediator = app.mediator("near");
    app.post(&format!("/api/v1/referrals/{id}/accept"), &mediator, json!({"mediator_name": "Médiatrice Hortense"}))
        .await;
    app.post(&format!("/api/v1/referrals/{id}/contact"), &mediator, json!({"kind": "first_contact"})).await;
    app.post(&format!("/api/v1/referrals/{id}/cancel"), &referrer, json!({"reason": "Quarantelli a déménagé"})).await;

    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Ok(Some(Ok(d))) = tokio::time::timeout_at(deadline, consumer.next()).await {
        let text = String::from_utf8_lossy(&d.data).to_string();
        let kind: Value = serde_json::from_str(&text).unwrap();
        seen.push(kind["type"].as_str().unwrap_or_default().to_string());
        for secret in
            ["Zéphyrine", "Quarantelli", "zq@example.net", "698765432", "1234567890123", "Hortense", "déménagé"]
        {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
        if seen.contains(&"referral.cancelled".to_string()) {
            break;
        }
    }
    assert!(
        seen.contains(&"referral.submitted".to_string()) && seen.contains(&"referral.cancelled".to_string()),
        "{seen:?}"
    );
    let _ = conn.close(200, "done".into()).await;
    app.stop().await;
}

#[tokio::test]
async fn housekeeping_prunes_old_inbox_rows_and_vacuums_the_outbox_without_breaking_dedup() {
    let app = TestApp::spawn().await;
    let referrer = app.referrer(app.organisation("16").await);
    app.structure("near", structure("Proche", 45.6500, 0.1550, &[AIDE], 5)).await;
    let first = app.submit(&referrer, referral()).await;
    app.until_status(&first, &referrer, "offered").await;
    let pool = app.sandbox.pool().await;
    let inbox = |schema: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {schema}.inbox")))
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let before = inbox("matcher").await;
    assert!(before > 0, "the matcher handled messages");

    // Rows younger than the retention stay: they may still be redelivered.
    let kept = bus::housekeeping::tidy(&pool, "matcher", Duration::from_secs(3600), i64::MAX).await.unwrap();
    assert_eq!(kept, bus::housekeeping::Tidied { inbox_deleted: 0, outbox_vacuumed: false });
    assert_eq!(inbox("matcher").await, before);

    // With no retention, every row goes; a threshold below zero forces the vacuum.
    let tidied = bus::housekeeping::tidy(&pool, "matcher", Duration::ZERO, -1).await.unwrap();
    assert_eq!(tidied.inbox_deleted, u64::try_from(before).unwrap());
    assert!(tidied.outbox_vacuumed);
    assert_eq!(inbox("matcher").await, 0);
    let options: Option<Vec<String>> =
        sqlx::query_scalar("SELECT reloptions FROM pg_class WHERE oid = 'matcher.outbox'::regclass")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(options.unwrap_or_default().contains(&"autovacuum_vacuum_scale_factor=0".to_string()));

    // The pipeline goes on as before.
    let second = app.submit(&referrer, referral()).await;
    let r = app.until_status(&second, &referrer, "offered").await;
    assert_eq!(r["current_offer"]["structure_id"], "near");
    assert!(inbox("matcher").await > 0);
    pool.close().await;
    app.stop().await;
}
