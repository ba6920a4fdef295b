//! Issue 4: offers that nobody answers move on, people nobody can take reach a
//! coordinator, every referral ends with a known outcome, and the figures are exact.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::{Value, json};

use crate::crash::{Server, free_port};
use crate::support::*;

/// Makes the pending offer of a referral fall due now (stepping the durable timer
/// instead of waiting for it).
async fn expire_now(app: &TestApp, id: &str) {
    let pool = app.sandbox.pool().await;
    sqlx::query("UPDATE referrals.referrals SET offer_expires_at = now() - interval '1 second' WHERE id = $1::uuid AND status = 'offered'")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

#[tokio::test]
async fn an_unanswered_offer_expires_moves_on_and_escalates_after_the_last_attempt() {
    let app = TestApp::spawn_with(|c| {
        c.offer_ttl = Duration::from_secs(1);
        c.max_attempts = 2;
    })
    .await;
    let referrer = app.referrer(app.organisation("16").await);
    app.structure("a", structure("A", 45.6500, 0.1550, &[AIDE], 5)).await;
    app.structure("b", structure("B", 45.7000, 0.2000, &[AIDE], 5)).await;
    app.structure("c", structure("C", 45.7500, 0.2500, &[AIDE], 5)).await;
    let id = app.submit(&referrer, referral()).await;
    let first = app.until_attempt(&id, &referrer, 1, "offered").await;
    assert_eq!(first["current_offer"]["structure_id"], "a");
    // Nobody answers: after a second the offer expires and goes to the next structure.
    let second = app.until_attempt(&id, &referrer, 2, "offered").await;
    assert_eq!(second["current_offer"]["structure_id"], "b");
    // Two offers is the maximum here: the next expiry escalates instead of trying c.
    let r = app.until_status(&id, &referrer, "waitlisted").await;
    assert_eq!(r["escalated"], true, "{r}");
    assert_eq!(r["waitlist_reason"], "attempts_exhausted");
    let steps: Vec<&str> = r["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
    assert_eq!(steps, ["submitted", "offered", "offer_expired", "offered", "offer_expired", "waitlisted"]);

    let coordinator = app.coordinator(&["16"]);
    let q = eventually("the escalation in the queues", Duration::from_secs(20), || async {
        let (_, q) = app.get("/api/v1/insights/queues?territory=16", &coordinator).await;
        (q["waitlist"]["escalated"] == 1).then_some(q)
    })
    .await;
    assert_eq!(q["waitlist"]["by_reason"]["attempts_exhausted"], 1);
    assert_eq!(q["waitlist"]["items"][0]["referral_id"], id.as_str());
    let f = eventually("expiries counted", Duration::from_secs(20), || async {
        let (_, f) = app.get("/api/v1/insights/funnel?territory=16", &coordinator).await;
        (f["expired_offers"] == 2).then_some(f)
    })
    .await;
    assert_eq!(f["offered"], 1);
    assert!((f["offers_per_referral"].as_f64().unwrap() - 2.0).abs() < 1e-9);
    // The capacity the expired offers held is free again.
    let pool = app.sandbox.pool().await;
    let used: i64 = sqlx::query_scalar("SELECT COALESCE(sum(used), 0)::bigint FROM matcher.capacity_usage")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(used, 0);
    pool.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_coordinator_reroutes_an_escalated_referral_and_the_history_says_who_and_why() {
    let app = TestApp::spawn_with(|c| c.max_attempts = 1).await;
    let referrer = app.referrer(app.organisation("16").await);
    app.structure("a", structure("A", 45.6500, 0.1550, &[AIDE], 5)).await;
    app.structure("full", structure("Pleine", 45.7000, 0.2000, &[AIDE], 0)).await;
    app.structure(
        "elsewhere",
        merged(
            structure("Ailleurs", 45.6800, 0.1800, &[AIDE], 5),
            json!({"address": {"postcode": "17000", "commune_code": "17300", "commune": "La Rochelle"}}),
        ),
    )
    .await;
    let id = app.submit(&referrer, referral()).await;
    app.until_status(&id, &referrer, "offered").await;
    app.step(&id, "decline", &app.mediator("a"), json!({"reason": "language"})).await;
    let r = app.until_status(&id, &referrer, "waitlisted").await;
    assert_eq!(r["escalated"], true);

    let path = format!("/api/v1/referrals/{id}/reroute");
    assert_eq!(app.post(&path, &referrer, json!({})).await.0, 403, "a referrer cannot reroute");
    assert_eq!(app.post(&path, &app.coordinator(&["17"]), json!({})).await.0, 404, "another territory's coordinator");
    let (s, v) = app.post(&path, &app.coordinator(&["16"]), json!({"force": true})).await;
    assert_eq!(s, 422, "force needs a structure: {v}");
    let coordinator = app.coordinator(&["16"]);
    let (s, v) = app
        .post(&path, &coordinator, json!({"structure_id": "full", "force": true, "reason": "Accord de la directrice"}))
        .await;
    assert_eq!(s, 200, "{v}");
    let r = app.until_status(&id, &referrer, "offered").await;
    assert_eq!(r["current_offer"]["structure_id"], "full", "forced past capacity");
    let rerouted = r["history"].as_array().unwrap().iter().find(|h| h["status"] == "rerouted").unwrap().clone();
    assert!(rerouted["actor"].as_str().unwrap().starts_with("coordinator:"), "{rerouted}");
    assert_eq!(rerouted["comment"], "Accord de la directrice");
    assert_eq!(rerouted["structure_id"], "full");

    // Rerouting an offered referral through matching withdraws the offer and resets the attempts.
    let (s, v) = app.post(&path, &coordinator, json!({"reason": "relancer"})).await;
    assert_eq!(s, 200, "{v}");
    let r = eventually("a new offer after the reroute", Duration::from_secs(20), || async {
        let (_, v) = app.get(&format!("/api/v1/referrals/{id}"), &referrer).await;
        (v["status"] == "offered" && v["current_offer"]["structure_id"] == "elsewhere").then_some(v)
    })
    .await;
    let steps: Vec<&str> = r["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
    assert!(steps.ends_with(&["offer_withdrawn", "rerouted", "offered"]), "{steps:?}");
    // The forced reservation was given back.
    let pool = app.sandbox.pool().await;
    let held: i64 = sqlx::query_scalar("SELECT count(*) FROM matcher.reservations WHERE state = 'held'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(held, 1);
    pool.close().await;
    app.stop().await;
}

#[tokio::test]
async fn an_offer_that_fell_due_while_the_server_was_down_expires_after_restart() {
    let sandbox = Sandbox::new().await;
    let port = free_port();
    let mut server = Server::start(&sandbox, port, &[("AIGUILLAGE_OFFER_TTL", "1h".to_string())]).await;
    let app_key = sandbox.key().await;
    let admin = app_key.issue(
        &platform::auth::Claims::new(contracts::Role::Admin, platform::auth::Scope::All, chrono::Duration::hours(1))
            .unwrap(),
    );
    let client = reqwest::Client::new();
    let base = server.base.clone();
    let org: Value = client
        .post(format!("{base}/api/v1/organisations"))
        .bearer_auth(&admin)
        .json(&json!({"name": "CCAS", "territory": "16"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let referrer = app_key.issue(
        &platform::auth::Claims::new(
            contracts::Role::Referrer,
            platform::auth::Scope::Organisation(org["id"].as_str().unwrap().parse().unwrap()),
            chrono::Duration::hours(1),
        )
        .unwrap(),
    );
    for (id, lat) in [("a", 45.65), ("b", 45.70)] {
        client
            .put(format!("{base}/api/v1/structures/{id}"))
            .bearer_auth(&admin)
            .json(&structure(id, lat, 0.15, &[AIDE], 5))
            .send()
            .await
            .unwrap();
    }
    let pool = sandbox.pool().await;
    eventually("structures in the matcher", Duration::from_secs(20), || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM matcher.structures").fetch_one(&pool).await.ok()?;
        (n == 2).then_some(())
    })
    .await;
    let created: Value = client
        .post(format!("{base}/api/v1/referrals"))
        .bearer_auth(&referrer)
        .json(&referral())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    let offered_to = |pool: sqlx::PgPool, id: String| async move {
        sqlx::query_as::<_, (String, Option<String>, i32)>(
            "SELECT status, offer_structure_id, attempts FROM referrals.referrals WHERE id = $1::uuid",
        )
        .bind(id)
        .fetch_one(&pool)
        .await
        .ok()
    };
    eventually("the first offer", Duration::from_secs(20), || async {
        let (status, s, _) = offered_to(pool.clone(), id.clone()).await?;
        (status == "offered" && s.as_deref() == Some("a")).then_some(())
    })
    .await;

    server.kill().await;
    // While every process is down, the offer falls due.
    sqlx::query("UPDATE referrals.referrals SET offer_expires_at = now() - interval '1 minute' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&pool)
        .await
        .unwrap();
    let mut server = Server::start(&sandbox, port, &[("AIGUILLAGE_OFFER_TTL", "1h".to_string())]).await;
    eventually("the offer to move on after restart", Duration::from_secs(30), || async {
        let (status, s, attempts) = offered_to(pool.clone(), id.clone()).await?;
        (status == "offered" && s.as_deref() == Some("b") && attempts == 2).then_some(())
    })
    .await;
    let expiries: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM referrals.history WHERE referral_id = $1::uuid AND step = 'offer_expired'",
    )
    .bind(&id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(expiries, 1, "fired exactly once");
    pool.close().await;
    server.terminate().await;
    sandbox.destroy().await;
}

#[tokio::test]
async fn a_referrer_follows_up_by_status_escalation_and_staleness() {
    let app = TestApp::spawn_with(|c| c.max_attempts = 1).await;
    let referrer = app.referrer(app.organisation("16").await);
    app.structure("a", structure("A", 45.6500, 0.1550, &[AIDE], 1)).await;
    let offered = app.submit(&referrer, referral()).await;
    app.until_status(&offered, &referrer, "offered").await;
    // Nobody offers leisure activities: this one waits for good.
    let waiting = app.submit(&referrer, merged(referral(), json!({"needs": ["loisirs_creations"]}))).await;
    let r = app.until_status(&waiting, &referrer, "waitlisted").await;
    assert!(r["time_in_status_seconds"].as_i64().unwrap() >= 0);
    app.step(&offered, "decline", &app.mediator("a"), json!({"reason": "out_of_area"})).await;
    app.until_status(&offered, &referrer, "waitlisted").await;

    let ids = |v: &Value| -> Vec<String> {
        v["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()).collect()
    };
    let (_, escalated) = app.get("/api/v1/referrals?escalated=true", &referrer).await;
    assert_eq!(ids(&escalated), vec![offered.clone()]);
    let (_, not_escalated) = app.get("/api/v1/referrals?escalated=false&status=waitlisted", &referrer).await;
    assert_eq!(ids(&not_escalated), vec![waiting.clone()]);
    let (_, stale) = app.get("/api/v1/referrals?stale_days=1", &referrer).await;
    assert!(ids(&stale).is_empty(), "nothing is a day old");
    let pool = app.sandbox.pool().await;
    sqlx::query("UPDATE referrals.referrals SET status_changed_at = now() - interval '3 days' WHERE id = $1::uuid")
        .bind(&waiting)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let (_, stale) = app.get("/api/v1/referrals?stale_days=2", &referrer).await;
    assert_eq!(ids(&stale), vec![waiting.clone()]);
    assert!(stale["items"][0]["time_in_status_seconds"].as_i64().unwrap() >= 3 * 86_400);
    let (s, v) = app.get("/api/v1/referrals?status=lost", &referrer).await;
    assert_eq!(s, 422, "{v}");
    let (_, page) = app.get("/api/v1/referrals?limit=1", &referrer).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, next) = app.get(&format!("/api/v1/referrals?limit=1&cursor={cursor}"), &referrer).await;
    assert_eq!(next["items"].as_array().unwrap().len(), 1);
    assert_ne!(next["items"][0]["id"], page["items"][0]["id"]);
    app.stop().await;
}

/// A tiny deterministic PRNG for the randomised scenario.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The funnel and queues derived from each referral's own history: the ground truth.
fn truth(referrals: &[Value]) -> (Value, BTreeMap<String, (i64, i64, i64)>, Value) {
    let mut f: BTreeMap<&str, i64> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, i64> = BTreeMap::new();
    let mut declines: BTreeMap<String, i64> = BTreeMap::new();
    let (mut offers, mut expiries) = (0i64, 0i64);
    let mut structures: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
    let (mut wait_count, mut wait_escalated) = (0i64, 0i64);
    let mut by_reason: BTreeMap<String, i64> = BTreeMap::new();
    for r in referrals {
        let steps: Vec<&Value> = r["history"].as_array().unwrap().iter().collect();
        let has = |s: &str| steps.iter().any(|h| h["status"] == s);
        *f.entry("submitted").or_default() += 1;
        for (stage, step) in [
            ("offered", "offered"),
            ("accepted", "accepted"),
            ("in_progress", "contacted"),
            ("closed", "closed"),
            ("cancelled", "cancelled"),
        ] {
            if has(step) {
                *f.entry(stage).or_default() += 1;
            }
        }
        for h in &steps {
            match h["status"].as_str().unwrap() {
                "offered" => offers += 1,
                "offer_expired" => expiries += 1,
                "declined" => *declines.entry(h["reason"].as_str().unwrap().to_string()).or_default() += 1,
                "closed" => *outcomes.entry(h["reason"].as_str().unwrap().to_string()).or_default() += 1,
                "accepted" => structures.entry(h["structure_id"].as_str().unwrap().to_string()).or_default().1 += 1,
                _ => {}
            }
        }
        match r["status"].as_str().unwrap() {
            "offered" => {
                structures.entry(r["current_offer"]["structure_id"].as_str().unwrap().to_string()).or_default().0 += 1
            }
            "in_progress" => structures.entry(r["structure"]["id"].as_str().unwrap().to_string()).or_default().2 += 1,
            "waitlisted" => {
                wait_count += 1;
                if r["escalated"] == true {
                    wait_escalated += 1;
                }
                *by_reason.entry(r["waitlist_reason"].as_str().unwrap().to_string()).or_default() += 1;
            }
            _ => {}
        }
    }
    let submitted = f["submitted"];
    let funnel = json!({
        "submitted": submitted,
        "offered": f.get("offered").copied().unwrap_or(0),
        "accepted": f.get("accepted").copied().unwrap_or(0),
        "in_progress": f.get("in_progress").copied().unwrap_or(0),
        "closed": f.get("closed").copied().unwrap_or(0),
        "cancelled": f.get("cancelled").copied().unwrap_or(0),
        "waitlisted_now": wait_count,
        "outcomes": outcomes,
        "declines": declines,
        "expired_offers": expiries,
        "offers_per_referral": offers as f64 / submitted as f64,
    });
    let waitlist = json!({"count": wait_count, "escalated": wait_escalated, "by_reason": by_reason});
    (funnel, structures, waitlist)
}

#[tokio::test]
async fn a_randomised_scenario_yields_exactly_the_figures_of_the_referrals_histories() {
    let app = TestApp::spawn_with(|c| c.max_attempts = 3).await;
    let orgs = [app.organisation("16").await, app.organisation("16").await];
    let referrers: Vec<String> = orgs.iter().map(|o| app.referrer(*o)).collect();
    let names = ["s1", "s2", "s3", "s4", "s5", "s6"];
    for (i, id) in names.iter().enumerate() {
        let lat = 45.62 + 0.02 * i as f64;
        app.structure(id, structure(id, lat, 0.15 + 0.01 * i as f64, &[AIDE], 4 + (i as u32 % 3) * 3)).await;
    }
    let mut rng = SplitMix(0x5EED_2026);
    let mut ids: Vec<(String, usize)> = Vec::new();
    for i in 0..150 {
        let who = (rng.below(2)) as usize;
        let urgent = rng.below(5) == 0;
        let body = merged(referral(), json!({"urgency": if urgent { "urgent" } else { "normal" }}));
        ids.push((app.submit(&referrers[who], body).await, who));
        if i % 25 == 24 {
            tokio::task::yield_now().await;
        }
    }
    let decline_reasons = ["no_capacity", "out_of_scope", "out_of_area", "language", "person_unreachable"];
    let outcomes =
        ["completed", "partially_completed", "unreachable", "no_show", "declined_by_person", "redirected", "other"];
    // Several rounds of random actions on whatever state each referral is in.
    for _round in 0..4 {
        for (id, who) in &ids {
            let r = eventually("a settled referral", Duration::from_secs(30), || async {
                let (_, v) = app.get(&format!("/api/v1/referrals/{id}"), &referrers[*who]).await;
                (v["status"] != "submitted").then_some(v)
            })
            .await;
            let dice = rng.below(100);
            match r["status"].as_str().unwrap() {
                "offered" => {
                    let mediator = app.mediator(r["current_offer"]["structure_id"].as_str().unwrap());
                    match dice {
                        0..=39 => {
                            app.step(id, "accept", &mediator, json!({})).await;
                        }
                        40..=64 => {
                            let reason = decline_reasons[rng.below(decline_reasons.len() as u64) as usize];
                            app.step(id, "decline", &mediator, json!({"reason": reason})).await;
                        }
                        65..=79 => expire_now(&app, id).await,
                        80..=84 => {
                            app.step(id, "cancel", &referrers[*who], json!({})).await;
                        }
                        _ => {}
                    }
                }
                "accepted" | "in_progress" => {
                    let mediator = app.mediator(r["structure"]["id"].as_str().unwrap());
                    match dice {
                        0..=49 => {
                            app.step(id, "contact", &mediator, json!({"kind": "first_contact"})).await;
                        }
                        50..=84 => {
                            let outcome = outcomes[rng.below(outcomes.len() as u64) as usize];
                            app.step(id, "close", &mediator, json!({"outcome": outcome})).await;
                        }
                        85..=89 => {
                            app.step(id, "cancel", &referrers[*who], json!({})).await;
                        }
                        _ => {}
                    }
                }
                "waitlisted" if dice < 15 => {
                    app.step(id, "cancel", &referrers[*who], json!({})).await;
                }
                _ => {}
            }
        }
    }

    // Wait until nothing moves any more, then compare every figure with the truth.
    let coordinator = app.coordinator(&["16"]);
    let (funnel, truth_funnel, queues, truth_structures, truth_waitlist) =
        eventually("insights equal to the referrals' histories", Duration::from_secs(60), || async {
            let mut all = Vec::new();
            for (id, who) in &ids {
                let (_, v) = app.get(&format!("/api/v1/referrals/{id}"), &referrers[*who]).await;
                if v["status"] == "submitted" {
                    return None;
                }
                all.push(v);
            }
            let (tf, ts, tw) = truth(&all);
            let (_, f) = app.get("/api/v1/insights/funnel?territory=16", &coordinator).await;
            let (_, q) = app.get("/api/v1/insights/queues?territory=16", &coordinator).await;
            let same = [
                "submitted",
                "offered",
                "accepted",
                "in_progress",
                "closed",
                "cancelled",
                "waitlisted_now",
                "outcomes",
                "declines",
                "expired_offers",
            ]
            .iter()
            .all(|k| f[k] == tf[k]);
            same.then_some((f, tf, q, ts, tw))
        })
        .await;
    assert!(
        (funnel["offers_per_referral"].as_f64().unwrap() - truth_funnel["offers_per_referral"].as_f64().unwrap()).abs()
            < 1e-9
    );
    for id in names {
        let s = queues["structures"].as_array().unwrap().iter().find(|s| s["structure_id"] == id).unwrap();
        let (pending, accepted, in_progress) = truth_structures.get(id).copied().unwrap_or_default();
        assert_eq!(s["pending_offers"], pending, "{id}: {s}");
        assert_eq!(s["accepted_this_week"], accepted, "{id}: {s}");
        assert_eq!(s["in_progress"], in_progress, "{id}: {s}");
    }
    assert_eq!(queues["waitlist"]["count"], truth_waitlist["count"]);
    assert_eq!(queues["waitlist"]["escalated"], truth_waitlist["escalated"]);
    assert_eq!(queues["waitlist"]["by_reason"], truth_waitlist["by_reason"]);
    // The scenario did exercise every path.
    for k in ["offered", "accepted", "in_progress", "closed", "cancelled"] {
        assert!(truth_funnel[k].as_i64().unwrap() > 0, "no {k} in the scenario");
    }
    assert!(truth_funnel["expired_offers"].as_i64().unwrap() > 0);
    assert!(!truth_funnel["declines"].as_object().unwrap().is_empty());

    // Exports are pseudonymised: no id, name, phone or note.
    let resp = app
        .client
        .get(format!("{}/api/v1/insights/export.csv?territory=16", app.base))
        .bearer_auth(&coordinator)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = resp.text().await.unwrap();
    assert_eq!(csv.lines().count(), ids.len() + 1);
    for secret in ["Camille", "Essai", "612345678", "Dossier CAF", ids[0].0.as_str()] {
        assert!(!csv.contains(secret), "{secret} in the export");
    }
    let (s, flows) = app.get("/api/v1/insights/flows?territory=16", &coordinator).await;
    assert_eq!(s, 200);
    let out_of_orgs: i64 = flows["links"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["source"].as_str().unwrap().starts_with("organisation:"))
        .map(|l| l["value"].as_i64().unwrap())
        .sum();
    assert_eq!(out_of_orgs, ids.len() as i64);
    let (s, sd) = app.get("/api/v1/insights/supply-demand?territory=16", &coordinator).await;
    assert_eq!(s, 200, "{sd}");
    assert_eq!(sd["items"][0]["commune_code"], "16015");
    assert_eq!(sd["items"][0]["referrals"], ids.len());
    assert!(sd["items"][0]["capacity_within_radius"].as_i64().unwrap() > 0);

    // The monthly report of one structure agrees with the histories too. Its months are
    // Paris months: from 22:00 or 23:00 UTC on a month's last day, UTC names the one before.
    let month = contracts::week::paris_local(chrono::Utc::now()).format("%Y-%m").to_string();
    let mut expected: HashMap<&str, i64> = HashMap::new();
    for (id, who) in &ids {
        let (_, v) = app.get(&format!("/api/v1/referrals/{id}"), &referrers[*who]).await;
        for h in v["history"].as_array().unwrap() {
            if h["structure_id"] == "s1" {
                let k = match h["status"].as_str().unwrap() {
                    "offered" => "received",
                    "accepted" => "accepted",
                    "declined" => "declined",
                    "offer_expired" => "expired",
                    "closed" => "closed",
                    _ => continue,
                };
                *expected.entry(k).or_default() += 1;
            }
        }
    }
    let (s, report) =
        app.get(&format!("/api/v1/insights/structures/s1/report?month={month}"), &app.mediator("s1")).await;
    assert_eq!(s, 200, "{report}");
    for k in ["received", "accepted", "declined", "expired", "closed"] {
        assert_eq!(report["report"][k], expected.get(k).copied().unwrap_or(0), "{k}: {report}");
    }
    assert_eq!(
        app.get(&format!("/api/v1/insights/structures/s1/report?month={month}"), &app.mediator("s2")).await.0,
        404
    );
    let resp = app
        .client
        .get(format!("{}/api/v1/insights/structures/s1/report?month={month}&format=csv", app.base))
        .bearer_auth(&coordinator)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("received"));
    app.stop().await;
}

#[tokio::test]
async fn metrics_expose_events_outbox_dead_letters_offers_and_latencies() {
    let app = TestApp::spawn().await;
    let referrer = app.referrer(app.organisation("16").await);
    app.structure("a", structure("A", 45.6500, 0.1550, &[AIDE], 5)).await;
    let id = app.submit(&referrer, referral()).await;
    app.until_status(&id, &referrer, "offered").await;
    let (_, text, _) = app.request(reqwest::Method::GET, "/metrics", None, None).await;
    let text = text.as_str().unwrap().to_string();
    for series in [
        "aiguillage_events_consumed_total{",
        "aiguillage_events_published_total{",
        "aiguillage_outbox_backlog{",
        "aiguillage_outbox_oldest_age_seconds{",
        "aiguillage_dead_letter_queue_depth{",
        "aiguillage_pending_offers{",
        "aiguillage_waitlist",
        "aiguillage_match_duration_seconds_bucket",
        "aiguillage_http_request_duration_seconds_bucket{",
    ] {
        assert!(text.contains(series), "{series} missing from /metrics");
    }
    assert!(text.contains("route=\"/api/v1/referrals\""));
    assert!(text.contains("event_type=\"referral.submitted\""));
    app.stop().await;
}
