//! Issue 28: what if. A run recorded through the real pipeline (submissions, offers,
//! acceptances), then simulations of it through `POST /api/v1/simulations`.

use std::time::Duration;

use contracts::Role;
use platform::auth::Scope;
use serde_json::{Value, json};

use crate::support::*;

/// Waits until the referral is offered or waitlisted, and returns it.
async fn settled(app: &TestApp, id: &str, token: &str) -> Value {
    eventually(&format!("referral {id} to be offered or waitlisted"), Duration::from_secs(20), || async {
        let (s, v) = app.get(&format!("/api/v1/referrals/{id}"), token).await;
        (s == 200 && (v["status"] == "offered" || v["status"] == "waitlisted")).then_some(v)
    })
    .await
}

fn period() -> (String, String) {
    let today = contracts::week::paris_local(chrono::Utc::now()).date();
    ((today - chrono::Duration::days(1)).to_string(), (today + chrono::Duration::days(1)).to_string())
}

/// The answer without its timing, which is the only part allowed to differ.
fn without_timing(mut v: Value) -> Value {
    v.as_object_mut().map(|o| o.remove("elapsed_ms"));
    v
}

fn structure_row<'a>(answer: &'a Value, id: &str) -> &'a Value {
    answer["structures"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["structure_id"] == id))
        .unwrap_or_else(|| panic!("{id} in {answer}"))
}

#[tokio::test]
async fn a_recorded_run_replayed_unchanged_finds_its_first_offers_and_changes_move_the_figures() {
    let app = TestApp::spawn().await;
    let organisation = app.organisation("16").await;
    let referrer = app.referrer(organisation);
    let coordinator = app.coordinator(&["16"]);
    // Three places around Angoulême, with room for eight referrals this week.
    for (id, name, lat, lon, capacity) in [
        ("sim-a", "Médiathèque de l'Alpha", 45.6484, 0.1562, 3),
        ("sim-b", "Centre social de Basseau", 45.6570, 0.1320, 3),
        ("sim-c", "Mairie de Gond-Pontouvre", 45.6710, 0.1660, 2),
    ] {
        app.structure(id, structure(name, lat, lon, &[AIDE], capacity)).await;
        app.until_matcher_has(id).await;
    }
    // Ten referrals, one after the other; each offer is accepted at once, as the
    // simulation assumes, so eight are placed and two wait.
    let mut waiting = 0;
    for _ in 0..10 {
        let id = app.submit(&referrer, referral()).await;
        let v = settled(&app, &id, &referrer).await;
        if v["status"] == "offered" {
            let place = v["current_offer"]["structure_id"].as_str().unwrap().to_string();
            app.step(&id, "accept", &app.mediator(&place), json!({})).await;
        } else {
            waiting += 1;
        }
    }
    assert_eq!(waiting, 2);
    let (from, to) = period();
    let request = |changes: Value| json!({"territory": "16", "from": from, "to": to, "seed": 7, "changes": changes});

    let (s, unchanged) = app.post("/api/v1/simulations", &coordinator, request(json!([]))).await;
    assert_eq!(s, 200, "{unchanged}");
    assert_eq!(unchanged["baseline"], unchanged["scenario"], "no change, the same figures");
    let b = &unchanged["baseline"];
    assert_eq!((b["referrals"].as_u64(), b["placed"].as_u64(), b["unplaced"].as_u64()), (Some(10), Some(8), Some(2)));
    assert_eq!(b["waitlist_peak"], 2);
    assert_eq!(b["within_30_km_share"], 1.0);
    assert_eq!(unchanged["fidelity"]["compared"], 8);
    assert!(unchanged["fidelity"]["share"].as_f64().unwrap() >= 0.95, "{}", unchanged["fidelity"]);
    assert_eq!(unchanged["optimum_baseline"]["placed"], 8, "no placement could do better with that capacity");
    assert_eq!(structure_row(&unchanged, "sim-a")["baseline_placed"], 3);
    assert_eq!(unchanged["communes"][0]["commune_code"], "16015");

    // The same request, the same answer.
    let (_, again) = app.post("/api/v1/simulations", &coordinator, request(json!([]))).await;
    assert_eq!(without_timing(again), without_timing(unchanged.clone()));

    // Two more places at the nearest structure, where the waitlist formed: nobody waits.
    let (s, more) = app
        .post("/api/v1/simulations", &coordinator, request(json!([{"structure_id": "sim-a", "weekly_capacity": 5}])))
        .await;
    assert_eq!(s, 200, "{more}");
    assert_eq!((more["scenario"]["placed"].as_u64(), more["scenario"]["waitlist_peak"].as_u64()), (Some(10), Some(0)));
    assert_eq!(more["baseline"], unchanged["baseline"]);
    assert_eq!(structure_row(&more, "sim-a")["scenario_placed"], 5);

    // The nearest place closed: its referrals go to the next ones, farther away.
    let (_, closed) = app
        .post("/api/v1/simulations", &coordinator, request(json!([{"structure_id": "sim-a", "closed": true}])))
        .await;
    assert_eq!(structure_row(&closed, "sim-a")["scenario_placed"], 0);
    assert_eq!(closed["scenario"]["placed"], 5, "b and c take five");
    assert_eq!(
        (structure_row(&closed, "sim-b")["scenario_placed"].as_u64(), closed["scenario"]["unplaced"].as_u64()),
        (Some(3), Some(5))
    );
    assert_eq!(structure_row(&closed, "sim-a")["scenario_load"], 0.0);

    // A new place in Angoulême with room for four.
    let new = json!([{"new_structure": {"name": "Permanence Ma Campagne", "commune_code": "16015",
                                        "services": [AIDE], "weekly_capacity": 4}}]);
    let (s, added) = app.post("/api/v1/simulations", &coordinator, request(new)).await;
    assert_eq!(s, 200, "{added}");
    assert_eq!(added["scenario"]["unplaced"], 0);
    let row = added["structures"].as_array().unwrap().iter().find(|s| s["name"] == "Permanence Ma Campagne").unwrap();
    assert!(row["structure_id"].is_null() && row["scenario_placed"].as_u64() > Some(0), "{row}");

    // Saved under a name, listed for the territory, and run again to the same answer.
    let body = json!({"name": "Deux places de plus à l'Alpha",
                      "request": request(json!([{"structure_id": "sim-a", "weekly_capacity": 5}]))});
    let (s, saved) = app.post("/api/v1/simulations/scenarios", &coordinator, body).await;
    assert_eq!(s, 200, "{saved}");
    let (s, list) = app.get("/api/v1/simulations/scenarios?territory=16", &coordinator).await;
    assert_eq!((s, list.as_array().map(Vec::len)), (200, Some(1)), "{list}");
    assert_eq!(list[0]["name"], "Deux places de plus à l'Alpha");
    let (_, rerun) = app.post("/api/v1/simulations", &coordinator, list[0]["request"].clone()).await;
    assert_eq!(without_timing(rerun), without_timing(more.clone()));
    let (s, _) = app.get("/api/v1/simulations/scenarios?territory=16", &app.coordinator(&["17"])).await;
    assert_eq!(s, 403, "another territory's coordinator");
    let bad = json!({"name": "x", "request": request(json!([{"structure_id": "nowhere", "weekly_capacity": 5}]))});
    let (s, v) = app.post("/api/v1/simulations/scenarios", &coordinator, bad).await;
    assert_eq!((s, v["errors"][0]["field"].as_str()), (422, Some("request.changes[0].structure_id")), "{v}");

    // Nothing live moved: the recorded referrals are as they were.
    let pool = app.sandbox.pool().await;
    let (offered, waitlisted): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'accepted'), count(*) FILTER (WHERE status = 'waitlisted')
         FROM referrals.referrals",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((offered, waitlisted), (8, 2));
    pool.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_simulation_out_of_bounds_is_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    app.structure("sim-z", structure("Espace numérique Z", 45.65, 0.16, &[AIDE], 3)).await;
    app.until_matcher_has("sim-z").await;
    let coordinator = app.coordinator(&["16"]);
    let ask = |body: Value, token: String| {
        let app = &app;
        async move { app.post("/api/v1/simulations", &token, body).await }
    };
    let field = |v: &Value| v["errors"][0]["field"].as_str().unwrap_or_default().to_string();

    let year = json!({"territory": "16", "from": "2026-01-01", "to": "2027-01-02", "changes": []});
    let (s, v) = ask(year, coordinator.clone()).await;
    assert_eq!((s, field(&v)), (422, "to".to_string()), "{v}");
    let backwards = json!({"territory": "16", "from": "2026-03-01", "to": "2026-02-01"});
    let (s, v) = ask(backwards, coordinator.clone()).await;
    assert_eq!((s, field(&v)), (422, "to".to_string()), "{v}");

    let many: Vec<Value> = (0..51).map(|_| json!({"structure_id": "sim-z", "weekly_capacity": 4})).collect();
    let (s, v) =
        ask(json!({"territory": "16", "from": "2026-09-01", "to": "2026-11-30", "changes": many}), coordinator.clone())
            .await;
    assert_eq!((s, field(&v)), (422, "changes".to_string()), "{v}");

    for (change, expected) in [
        (json!({"structure_id": "nowhere", "weekly_capacity": 4}), "changes[0].structure_id"),
        (json!({"structure_id": "sim-z", "weekly_capacity": -1}), "changes[0].weekly_capacity"),
        (
            json!({"new_structure": {"commune_code": "75056", "services": [AIDE], "weekly_capacity": 3}}),
            "changes[0].new_structure.commune_code",
        ),
        (
            json!({"new_structure": {"commune_code": "16015", "services": ["jardinage"], "weekly_capacity": 3}}),
            "changes[0].new_structure.services[0]",
        ),
    ] {
        let body = json!({"territory": "16", "from": "2026-09-01", "to": "2026-11-30", "changes": [change]});
        let (s, v) = ask(body, coordinator.clone()).await;
        assert_eq!((s, field(&v)), (422, expected.to_string()), "{v}");
    }
    let ok = json!({"territory": "16", "from": "2026-09-01", "to": "2026-11-30"});
    let (s, v) = ask(ok.clone(), app.coordinator(&["17"])).await;
    assert_eq!(s, 403, "a coordinator of another territory: {v}");
    let (s, _) = ask(ok.clone(), app.referrer(uuid::Uuid::now_v7())).await;
    assert_eq!(s, 403, "a referrer");
    let (s, v) = ask(ok, app.token(Role::Admin, Scope::All)).await;
    assert_eq!((s, v["baseline"]["referrals"].as_u64()), (200, Some(0)), "an empty period: {v}");
    app.stop().await;
}

/// A served binary replays in a worker process: a session of its own (so, where the
/// kernel groups processes by session, a scheduling group of its own, weighted lowest) at
/// the lowest priority, so that a simulation never competes with intake. A job it cannot
/// read ends it with a failure that says so, never a hang.
#[tokio::test]
async fn a_simulation_worker_leaves_the_server_s_session_and_priority() {
    use tokio::io::AsyncWriteExt;
    let mut worker = tokio::process::Command::new(env!("CARGO_BIN_EXE_aiguillage"))
        .arg("simulation-worker")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = worker.id().unwrap();
    // /proc/{pid}/stat after the command's closing parenthesis: field 3 (state) first,
    // so the session (field 6) and the niceness (field 19) are at 3 and 16. Started in
    // the test's session, the worker leads a session of its own once it has left it.
    let (session, nice) = eventually("the worker to leave the foreground", Duration::from_secs(10), || async {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let session: u32 = fields.get(3)?.parse().ok()?;
        let nice: i32 = fields.get(16)?.parse().ok()?;
        (session == pid && nice == 19).then_some((session, nice))
    })
    .await;
    assert_eq!((session, nice), (pid, 19));
    // Where the kernel groups by session, the worker's group is weighted lowest too.
    let autogroup_on =
        std::fs::read_to_string("/proc/sys/kernel/sched_autogroup_enabled").is_ok_and(|v| v.trim() == "1");
    if autogroup_on {
        let group = std::fs::read_to_string(format!("/proc/{pid}/autogroup")).unwrap();
        assert!(group.trim_end().ends_with("nice 19"), "{group}");
    }

    let mut stdin = worker.stdin.take().unwrap();
    stdin.write_all(br#"{"not": "a job"}"#).await.unwrap();
    drop(stdin);
    let out = worker.wait_with_output().await.unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("the simulation"), "{said}");
}
