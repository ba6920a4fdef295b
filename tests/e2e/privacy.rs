//! Privacy by design (issue 15): personal data sealed at rest, the retention purge, the
//! audit of access, the person's rights, and logs without personal values.

use std::time::Duration;

use contracts::Role;
use platform::auth::Scope;
use serde_json::{Value, json};

use crate::support::{AIDE, Sandbox, TestApp, eventually, merged, referral, structure};

/// A person with values that occur nowhere else, so a scan finds only them.
fn person(tag: &str, phone: &str) -> (Value, Vec<String>) {
    let first = format!("Prénomunique{tag}");
    let last = format!("Nomdefamille{tag}");
    let email = format!("courriel.{tag}@exemple-prive.fr");
    let note = format!("Note confidentielle {tag} sur la situation");
    let body = merged(
        referral(),
        json!({"person": {"first_name": first, "last_name": last, "phone": phone, "email": email},
               "note": note}),
    );
    // The phone as given and as stored (E.164), without its '+'.
    (body, vec![first, last, email, note, phone.trim_start_matches('+').to_string()])
}

async fn pg_dump(sandbox: &Sandbox) -> String {
    let out = tokio::process::Command::new("pg_dump")
        .args(["--no-owner", "--data-only", "--inserts", &sandbox.config.database_url])
        .output()
        .await
        .expect("pg_dump");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_none_in(text: &str, values: &[String], what: &str) {
    for v in values {
        assert!(!text.contains(v.as_str()), "{what} contains {v:?}");
    }
}

async fn offered_to_a(app: &TestApp, referrer: &str, body: Value) -> String {
    let id = app.submit(referrer, body).await;
    app.until_status(&id, referrer, "offered").await;
    id
}

#[tokio::test]
async fn a_database_dump_holds_no_name_phone_email_note_or_comment() {
    let app = TestApp::spawn().await;
    app.structure("a", structure("A", 45.6500, 0.1550, &[AIDE], 5)).await;
    let org = app.organisation("16").await;
    let referrer = app.referrer(org);
    let mediator = app.mediator("a");
    let mut secrets = Vec::new();

    let (body, values) = person("un", "+33611223344");
    secrets.extend(values);
    let first = offered_to_a(&app, &referrer, body).await;
    let decline = "Commentaire de refus très personnel";
    secrets.push(decline.to_string());
    app.step(&first, "decline", &mediator, json!({"reason": "other", "comment": decline})).await;

    let (body, values) = person("deux", "+33655667788");
    secrets.extend(values.clone());
    let second = offered_to_a(&app, &referrer, body).await;
    let mediator_name = "Médiatrice Nommée Exemple";
    secrets.push(mediator_name.to_string());
    app.step(&second, "accept", &mediator, json!({"mediator_name": mediator_name})).await;
    let close = "Clôture: la personne a raconté sa vie";
    secrets.push(close.to_string());
    app.step(&second, "close", &mediator, json!({"outcome": "completed", "comment": close})).await;

    let cancel = "Annulation pour raison intime";
    secrets.push(cancel.to_string());
    app.step(&first, "cancel", &referrer, json!({"reason": cancel})).await;

    // Readable through the API, by those who may see the person.
    let (s, v) = app.get(&format!("/api/v1/referrals/{second}"), &referrer).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["person"]["first_name"], values[0]);
    assert_eq!(v["person"]["email"], values[2]);
    assert_eq!(v["note"], values[3]);
    let comments: Vec<&str> = v["history"].as_array().unwrap().iter().filter_map(|h| h["comment"].as_str()).collect();
    assert!(comments.contains(&close) && comments.contains(&mediator_name), "{comments:?}");
    let (_, v) = app.get(&format!("/api/v1/referrals/{first}"), &referrer).await;
    let comments: Vec<&str> = v["history"].as_array().unwrap().iter().filter_map(|h| h["comment"].as_str()).collect();
    assert!(comments.contains(&decline) && comments.contains(&cancel), "{comments:?}");

    let dump = pg_dump(&app.sandbox).await;
    assert!(dump.contains(&first) && dump.contains("referrals.persons"), "the dump has the referrals");
    assert_none_in(&dump, &secrets, "pg_dump");

    // Each row names the key that sealed it; a value copied to another row does not open.
    let pool = app.sandbox.pool().await;
    let keys: Vec<Option<i32>> =
        sqlx::query_scalar("SELECT key_id FROM referrals.persons").fetch_all(&pool).await.unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(|k| k.is_some()), "{keys:?}");
    sqlx::query(
        "UPDATE referrals.persons SET first_name = (SELECT first_name FROM referrals.persons WHERE referral_id = $1::uuid)
         WHERE referral_id = $2::uuid",
    )
    .bind(&first)
    .bind(&second)
    .execute(&pool)
    .await
    .unwrap();
    let (s, v) = app.get(&format!("/api/v1/referrals/{second}"), &referrer).await;
    assert_eq!(s, 500, "a value moved to another row must not open: {v}");
    assert!(!v.to_string().contains("Prénomunique"), "{v}");
    pool.close().await;
    app.stop().await;
}

#[tokio::test]
async fn duplicates_are_found_by_keyed_hashes_of_the_phone_or_email() {
    let app = TestApp::spawn().await;
    let org = app.organisation("16").await;
    let referrer = app.referrer(org);
    let (body, _) = person("dup", "+33699887766");
    let (s, first) = app.post("/api/v1/referrals", &referrer, body.clone()).await;
    assert_eq!(s, 201, "{first}");
    assert_eq!(first["possible_duplicates"], json!([]));
    let same_email = merged(body.clone(), json!({"person": {"phone": "+33600000001", "first_name": "Autre"}}));
    let (s, second) = app.post("/api/v1/referrals", &referrer, same_email).await;
    assert_eq!(s, 201, "{second}");
    assert_eq!(second["possible_duplicates"], json!([first["id"]]));
    // Another organisation's referral about the same person is not shown.
    let other = app.referrer(app.organisation("16").await);
    let (_, third) = app.post("/api/v1/referrals", &other, body).await;
    assert_eq!(third["possible_duplicates"], json!([]));
    // Found by phone and by e-mail at once: each once, newest first.
    let (s, fourth) = app.post("/api/v1/referrals", &referrer, person("dup", "+33699887766").0).await;
    assert_eq!(s, 201, "{fourth}");
    assert_eq!(fourth["possible_duplicates"], json!([second["id"], first["id"]]));
    app.stop().await;
}

#[tokio::test]
async fn the_server_refuses_to_start_without_a_master_key_and_says_how_to_give_one() {
    let sandbox = Sandbox::new().await;
    let port = crate::crash::free_port();
    for (name, value) in [("AIGUILLAGE_MASTER_KEY", ""), ("AIGUILLAGE_MASTER_KEY", "dHJvcCBjb3VydA==")] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_aiguillage"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("DATABASE_URL", &sandbox.config.database_url)
            .env("AIGUILLAGE_NAMESPACE", &sandbox.namespace)
            .env_remove("AIGUILLAGE_MASTER_KEY_FILE")
            .env(name, value)
            .env("RUST_LOG", "warn")
            .output()
            .await
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("AIGUILLAGE_MASTER_KEY"), "{err}");
        if value.is_empty() {
            assert!(err.contains("openssl rand -base64 32"), "{err}");
        } else {
            assert!(err.contains("32 bytes"), "{err}");
        }
    }
    // A key file that is not there.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_aiguillage"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", &sandbox.config.database_url)
        .env_remove("AIGUILLAGE_MASTER_KEY")
        .env("AIGUILLAGE_MASTER_KEY_FILE", "/nonexistent/master.key")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/master.key"));
    sandbox.destroy().await;
}

#[tokio::test]
async fn keys_rotate_twice_while_the_server_runs_and_everything_stays_readable() {
    let app = TestApp::spawn().await;
    let org = app.organisation("16").await;
    let referrer = app.referrer(org);
    let pool = app.sandbox.pool().await;
    let mut made = Vec::new();
    for round in 0..3 {
        if round > 0 {
            let (ok, out, err) = app.sandbox.cli(&["keys", "rotate"]).await;
            assert!(ok, "{err}");
            let rotation: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(rotation["new_key"], 2 + round, "{rotation}");
            assert_eq!(rotation["rewrapped"], 2 + round - 1, "{rotation}");
            // The running server picks the new key up (it reloads every second here).
            let key = rotation["new_key"].as_i64().unwrap() as i32;
            let probes = std::sync::Mutex::new(Vec::new());
            eventually("the server to seal with the new key", Duration::from_secs(20), || async {
                let n = probes.lock().unwrap().len();
                let (body, _) = person(&format!("probe{round}{n}"), "+33612000000");
                let id = app.submit(&referrer, body).await;
                let k: i32 = sqlx::query_scalar("SELECT key_id FROM referrals.persons WHERE referral_id = $1::uuid")
                    .bind(&id)
                    .fetch_one(&pool)
                    .await
                    .ok()?;
                probes.lock().unwrap().push((id, None));
                (k == key).then_some(())
            })
            .await;
            made.extend(probes.into_inner().unwrap());
            // The accounts' keys rotate too, and sign-ins seal with the new one.
            let accounts = &rotation["accounts"];
            assert_eq!(accounts["schema"], "accounts", "{rotation}");
            assert_eq!(accounts["new_key"], 2 + round, "{rotation}");
            let key = accounts["new_key"].as_i64().unwrap() as i32;
            let tries = std::sync::atomic::AtomicU32::new(0);
            eventually("sign-ins to seal with the accounts' new key", Duration::from_secs(20), || async {
                let n = tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let id = app
                    .sign_in_agent(&format!("sub-rot{round}-{n}"), &format!("rot{round}.{n}@exemple.fr"), None)
                    .await;
                let k: i32 = sqlx::query_scalar("SELECT key_id FROM accounts.accounts WHERE id = $1")
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .ok()?;
                (k == key).then_some(())
            })
            .await;
        }
        let (body, values) = person(&format!("rot{round}"), "+33612345670");
        let id = app.submit(&referrer, body).await;
        made.push((id, Some(values[0].clone())));
        // Everything sealed so far, under every key, still reads.
        for (id, first) in &made {
            let (s, v) = app.get(&format!("/api/v1/referrals/{id}"), &referrer).await;
            assert_eq!(s, 200, "{v}");
            if let Some(first) = first {
                assert_eq!(&v["person"]["first_name"], first);
            }
        }
    }
    let keys: Vec<i32> =
        sqlx::query_scalar("SELECT DISTINCT key_id FROM referrals.persons ORDER BY 1").fetch_all(&pool).await.unwrap();
    assert_eq!(keys, vec![2, 3, 4]);
    // Every agent's address, sealed under whichever accounts key, still opens.
    let (ok, out, err) = app.sandbox.cli(&["account", "list"]).await;
    assert!(ok, "{err}");
    let listed: Vec<Value> = serde_json::from_str(&out).unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts.accounts").fetch_one(&pool).await.unwrap();
    assert!(stored >= 2 && listed.len() as i64 == stored, "{stored} {out}");
    assert!(listed.iter().all(|a| a["email"].as_str().is_some_and(|e| e.starts_with("rot"))), "{out}");
    // A server started now (a new replica) reads them all too.
    let (ok, _, err) = app.sandbox.cli(&["purge", "--dry-run"]).await;
    assert!(ok, "{err}");
    pool.close().await;
    app.stop().await;
}

async fn first_name(app: &TestApp, id: &str, token: &str) -> String {
    let (s, v) = app.get(&format!("/api/v1/referrals/{id}"), token).await;
    assert_eq!(s, 200, "{v}");
    v["person"]["first_name"].as_str().unwrap_or_default().to_string()
}

/// The master key changes as the operations guide says: every replica restarts with the
/// new key and the old one as `AIGUILLAGE_MASTER_KEY_PREVIOUS`, `keys rotate` re-wraps the
/// data keys under the new one, then the old key is dropped. Nothing is unreadable at any
/// step, duplicates are still found (the blind-index key is re-wrapped, not replaced), and
/// the old key alone opens nothing any more.
#[tokio::test]
async fn the_master_key_changes_with_previous_then_rotate_and_the_old_key_opens_nothing() {
    use platform::vault::MasterKey;
    let old = TestApp::spawn().await;
    let org = old.organisation("16").await;
    let referrer = old.referrer(org);
    let (body, values) = person("maitre", "+33613579246");
    let first = old.submit(&referrer, body.clone()).await;
    let agent = old.sign_in_agent("sub-maitre", "maitre.agent@exemple.fr", None).await;
    let (a, b) = (old.sandbox.master_key.clone(), MasterKey::generate_base64());
    let b_id = MasterKey::from_base64(&b, "test").unwrap().id().to_string();
    let keys = |current: &str, previous: Option<&str>| {
        Some((
            MasterKey::from_base64(current, "test").unwrap(),
            previous.map(|p| MasterKey::from_base64(p, "test").unwrap()),
        ))
    };

    // A replica with the new key and the previous one starts beside the old replica.
    let mut during = old.sandbox.alias();
    during.config.master_keys = keys(&b, Some(&a));
    let during = TestApp::start(during).await;
    assert_eq!(first_name(&during, &first, &referrer).await, values[0]);
    let sandbox = old.halt().await;

    // Without the previous key the rotation is refused and changes nothing.
    let (ok, _, err) = sandbox.cli_with(&["keys", "rotate"], &[("AIGUILLAGE_MASTER_KEY", &b)]).await;
    assert!(!ok && err.contains("wrapped by a master key this process does not have"), "{err}");
    let (ok, out, err) = sandbox
        .cli_with(&["keys", "rotate"], &[("AIGUILLAGE_MASTER_KEY", &b), ("AIGUILLAGE_MASTER_KEY_PREVIOUS", &a)])
        .await;
    assert!(ok, "{err}");
    let rotation: Value = serde_json::from_str(&out).unwrap();
    for r in [&rotation, &rotation["accounts"]] {
        // The blind-index key and the first data key moved to the new master key.
        assert_eq!(r["rewrapped"], 2, "{rotation}");
        assert_eq!(r["new_key"], 3, "{rotation}");
        assert_eq!(r["master_key"], b_id.as_str(), "{rotation}");
    }
    let pool = sandbox.pool().await;
    let masters: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT master_id FROM referrals.data_keys UNION SELECT DISTINCT master_id FROM accounts.data_keys",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(masters, vec![b_id.clone()]);

    // The replica during the change seals with the new data key within a reload.
    let probes = std::sync::Mutex::new(Vec::new());
    eventually("the replica to seal with the new data key", Duration::from_secs(20), || async {
        let n = probes.lock().unwrap().len();
        let id = during.submit(&referrer, person(&format!("sonde{n}"), "+33612000000").0).await;
        probes.lock().unwrap().push(id.clone());
        let k: i32 = sqlx::query_scalar("SELECT key_id FROM referrals.persons WHERE referral_id = $1::uuid")
            .bind(&id)
            .fetch_one(&pool)
            .await
            .ok()?;
        (k == 3).then_some(())
    })
    .await;
    let (body2, values2) = person("apres", "+33624681357");
    let second = during.submit(&referrer, body2).await;
    during.halt().await;

    // The old key alone opens nothing: the server refuses to start, and says why.
    let (ok, _, err) = sandbox.cli_with(&["keys", "rotate"], &[("AIGUILLAGE_MASTER_KEY", &a)]).await;
    assert!(!ok && err.contains("wrapped by a master key this process does not have"), "{err}");
    let mut stale = sandbox.alias();
    stale.config.master_keys = keys(&a, None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refused = tokio::time::timeout(
        Duration::from_secs(30),
        aiguillage::run(stale.config.clone(), &aiguillage::Service::ALL, listener, Default::default()),
    )
    .await
    .expect("a server with the old key alone stops at once");
    let err = format!("{:#}", refused.expect_err("a server with the old key alone must not start"));
    assert!(err.contains("wrapped by a master key this process does not have"), "{err}");

    // The new key alone reads everything, sealed before and after, and finds duplicates.
    let mut after = sandbox.alias();
    after.config.master_keys = keys(&b, None);
    let after = TestApp::start(after).await;
    assert_eq!(first_name(&after, &first, &referrer).await, values[0]);
    assert_eq!(first_name(&after, &second, &referrer).await, values2[0]);
    for id in probes.into_inner().unwrap() {
        let (s, v) = after.get(&format!("/api/v1/referrals/{id}"), &referrer).await;
        assert_eq!(s, 200, "{v}");
    }
    let (s, again) = after.post("/api/v1/referrals", &referrer, body).await;
    assert_eq!(s, 201, "{again}");
    assert_eq!(again["possible_duplicates"], json!([first]), "{again}");
    let (ok, out, err) = sandbox.cli_with(&["account", "list"], &[("AIGUILLAGE_MASTER_KEY", &b)]).await;
    assert!(ok, "{err}");
    let listed: Vec<Value> = serde_json::from_str(&out).unwrap();
    let me = listed.iter().find(|x| x["account_id"] == agent.to_string()).expect("the agent is listed");
    assert_eq!(me["email"], "maitre.agent@exemple.fr", "{out}");
    pool.close().await;
    after.halt().await;
    sandbox.destroy().await;
}

/// Every figure the insights API gives for the territory, for a past period: up to
/// `to`; and structure A's report for the month (in Paris) that holds `to`, named
/// rather than left to the server's "this month", which changes at Paris midnight on
/// the 1st (between the two readings a purge is compared by).
async fn statistics(app: &TestApp, to: &str) -> Vec<(String, Value)> {
    let coordinator = app.coordinator(&["16"]);
    let period = format!("territory=16&from=2020-01-01T00:00:00Z&to={to}");
    let at = chrono::DateTime::parse_from_rfc3339(to).unwrap().with_timezone(&chrono::Utc);
    let month = contracts::week::paris_local(at).format("%Y-%m");
    let mut out = Vec::new();
    for path in [
        format!("/api/v1/insights/funnel?{period}"),
        format!("/api/v1/insights/flows?{period}"),
        format!("/api/v1/insights/supply-demand?{period}"),
        format!("/api/v1/insights/export.csv?{period}"),
        format!("/api/v1/insights/structures/a/report?month={month}"),
    ] {
        let (s, v) = app.get(&path, &coordinator).await;
        assert_eq!(s, 200, "{path}: {v}");
        out.push((path, v));
    }
    out
}

#[tokio::test]
async fn the_purge_removes_old_personal_data_once_keeps_the_timeline_and_leaves_statistics_unchanged() {
    let app = TestApp::spawn().await;
    app.structure("a", structure("A", 45.6500, 0.1550, &[AIDE], 9)).await;
    let org = app.organisation("16").await;
    let referrer = app.referrer(org);
    let mediator = app.mediator("a");
    let mut secrets = Vec::new();
    let mut old = Vec::new();
    for (i, end) in ["close", "cancel", "open"].iter().enumerate() {
        let (body, values) = person(&format!("purge{i}"), &format!("+3361234560{i}"));
        secrets.extend(values);
        let id = offered_to_a(&app, &referrer, body).await;
        match *end {
            "close" => {
                app.step(&id, "accept", &mediator, json!({})).await;
                app.step(&id, "close", &mediator, json!({"outcome": "completed", "comment": "commentaire purge0"}))
                    .await;
                secrets.push("commentaire purge0".into());
            }
            "cancel" => {
                app.step(&id, "cancel", &referrer, json!({"reason": "raison purge1"})).await;
                secrets.push("raison purge1".into());
            }
            _ => {}
        }
        old.push(id);
    }
    let (recent_body, recent_values) = person("recent", "+33612345699");
    let recent = app.submit(&referrer, recent_body).await;
    // The matcher offers the recent one to A too, after its submission: the month's
    // report counts that offer. Let insights see every event, that offer included,
    // before the figures are read; its submission alone is not enough (the report,
    // read last, once counted 3 offers before the purge and 4 after).
    app.until_status(&recent, &referrer, "offered").await;
    eventually("insights to count every step of the four referrals", Duration::from_secs(20), || async {
        let (_, f) = app
            .get(
                "/api/v1/insights/funnel?territory=16&from=2020-01-01T00:00:00Z&to=2030-01-01T00:00:00Z",
                &app.coordinator(&["16"]),
            )
            .await;
        let all = [("submitted", 4), ("offered", 4), ("accepted", 1), ("closed", 1), ("cancelled", 1)];
        all.iter().all(|(k, n)| f[*k] == *n).then_some(())
    })
    .await;
    // A period in the past: up to the recent referral's submission, so it holds the
    // three that are purged.
    let (_, r) = app.get(&format!("/api/v1/referrals/{recent}"), &referrer).await;
    let to = r["created_at"].as_str().unwrap().to_string();
    let before = statistics(&app, &to).await;

    // Three years pass for the first three (their last activity).
    let pool = app.sandbox.pool().await;
    sqlx::query(
        "UPDATE referrals.referrals SET updated_at = updated_at - interval '3 years' WHERE id = ANY($1::uuid[])",
    )
    .bind(&old)
    .execute(&pool)
    .await
    .unwrap();
    let (ok, out, err) = app.sandbox.cli(&["purge", "--dry-run"]).await;
    assert!(ok, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["referrals"], 3, "{out}");
    let (ok, out, err) = app.sandbox.cli(&["purge"]).await;
    assert!(ok, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["referrals"], 3, "{out}");
    assert!(err.contains("purged 3"), "{err}");
    // Idempotent: nothing is left to purge.
    let (ok, out, _) = app.sandbox.cli(&["purge"]).await;
    assert!(ok);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["referrals"], 0, "{out}");

    for id in &old {
        let (s, v) = app.get(&format!("/api/v1/referrals/{id}"), &referrer).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["person"], Value::Null, "{v}");
        assert!(v.as_object().unwrap().contains_key("person"), "person is null, not absent: {v}");
        assert_eq!(v["personal_data"], "purged", "{v}");
        assert!(v.get("note").is_none() && v.get("consent").is_none(), "{v}");
        let history = v["history"].as_array().unwrap();
        assert!(history.len() >= 2, "the timeline stays: {v}");
        assert!(history.iter().all(|h| h.get("comment").is_none()), "{v}");
        // Only the month is left of its dates and of its timeline's.
        let month_only = |t: &Value| t.as_str().is_some_and(|t| t.contains("-01T00:00:00"));
        assert!(month_only(&v["created_at"]) && month_only(&v["status_changed_at"]), "month-level dates: {v}");
        assert!(history.iter().all(|h| month_only(&h["at"])), "month-level timeline: {v}");
        if v["status"] == "closed" {
            assert!(month_only(&v["closed_at"]), "{v}");
        }
    }
    let (_, page) = app.get("/api/v1/referrals", &referrer).await;
    let listed: Vec<&Value> = page["items"].as_array().unwrap().iter().collect();
    assert_eq!(listed.iter().filter(|r| r["personal_data"] == "purged").count(), 3);
    let fresh = listed.iter().find(|r| r["id"] == recent.as_str()).unwrap();
    assert_eq!(fresh["person"]["first_name"], recent_values[0], "a recent referral is untouched");
    // The funnel, flows, supply and demand, the export and the monthly report: the same.
    assert_eq!(statistics(&app, &to).await, before);
    let dump = pg_dump(&app.sandbox).await;
    assert_none_in(&dump, &secrets, "pg_dump after the purge");
    let erasures: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM referrals.erasures WHERE kind = 'purged' AND extract(day FROM month) = 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(erasures, 3, "month-level dates only");
    // A purged referral cannot be corrected; its export says it was purged.
    let correction = json!({"first_name": "X"});
    let path = format!("/api/v1/referrals/{}/person", old[2]);
    let (s, v, _) = app.request(reqwest::Method::PATCH, &path, Some(&referrer), Some(&correction)).await;
    assert_eq!(s, 409, "{v}");
    let (s, v) = app.get(&format!("/api/v1/referrals/{}/personal-data", old[0]), &referrer).await;
    assert_eq!(s, 404, "nothing is held any more: {v}");
    let (s, v) = app.get(&format!("/api/v1/referrals/{}", old[0]), &referrer).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["personal_data"], "purged");
    pool.close().await;
    app.stop().await;
}

#[tokio::test]
async fn the_persons_rights_export_correct_erase_are_scoped_validated_and_audited() {
    let app = TestApp::spawn().await;
    let org = app.organisation("16").await;
    let referrer = app.referrer(org);
    let other = app.referrer(app.organisation("16").await);
    let dpo = app.token(Role::Dpo, Scope::Dpo);
    let (body, values) = person("droits", "+33622334455");
    let id = app.submit(&referrer, body).await;
    let path = format!("/api/v1/referrals/{id}/personal-data");

    // Art. 15: everything held, to the organisation that referred and to admin only.
    let (s, v) = app.get(&path, &referrer).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["personal_data"], "held");
    assert_eq!(v["referral"]["person"]["last_name"], values[1]);
    assert_eq!(v["referral"]["note"], values[3]);
    assert_eq!(app.get(&path, &app.admin).await.0, 200);
    assert_eq!(app.get(&path, &other).await.0, 404);
    assert_eq!(app.get(&path, &app.mediator("a")).await.0, 403);
    assert_eq!(app.get(&path, &dpo).await.0, 403, "the dpo reads the audit, not the person");
    assert_eq!(app.get(&format!("/api/v1/referrals/{id}"), &dpo).await.0, 404);
    // A read that shows the person.
    assert_eq!(app.get(&format!("/api/v1/referrals/{id}"), &referrer).await.0, 200);

    // Art. 16: corrections are validated, field by field.
    let person_path = format!("/api/v1/referrals/{id}/person");
    let patch = |token: &str, body: Value| {
        let (path, token) = (person_path.clone(), token.to_string());
        let app = &app;
        async move {
            let (s, v, _) = app.request(reqwest::Method::PATCH, &path, Some(&token), Some(&body)).await;
            (s, v)
        }
    };
    let (s, v) = patch(&referrer, json!({"phone": "pas un numéro"})).await;
    assert_eq!(s, 422, "{v}");
    assert!(v.to_string().contains("\"phone\""), "{v}");
    let (s, v) = patch(&referrer, json!({"first_name": ""})).await;
    assert_eq!(s, 422, "{v}");
    let (s, v) = patch(&referrer, json!({"phone": null, "email": null})).await;
    assert_eq!(s, 422, "a person needs a way to be reached: {v}");
    let (s, v) = patch(&referrer, json!({"unknown": 1})).await;
    assert!(s == 400 || s == 422, "{s} {v}");
    assert_eq!(patch(&other, json!({"first_name": "Autre"})).await.0, 404);
    let (s, v) = patch(&referrer, json!({"first_name": "Prénomcorrigé", "email": null, "note": null})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["person"]["first_name"], "Prénomcorrigé");
    assert_eq!(v["person"]["last_name"], values[1]);
    assert_eq!(v["person"]["email"], Value::Null);
    assert!(v.get("note").is_none_or(Value::is_null), "{v}");

    // Art. 17: erased ahead of retention; again is a no-op.
    let (_, under_way) = app.get(&format!("/api/v1/referrals/{id}"), &referrer).await;
    let (s, _, _) = app.request(reqwest::Method::DELETE, &path, Some(&other), None).await;
    assert_eq!(s, 404);
    let (s, _, _) = app.request(reqwest::Method::DELETE, &path, Some(&referrer), None).await;
    assert_eq!(s, 204);
    let (s, _, _) = app.request(reqwest::Method::DELETE, &path, Some(&referrer), None).await;
    assert_eq!(s, 204);
    let (_, v) = app.get(&format!("/api/v1/referrals/{id}"), &referrer).await;
    assert_eq!(v["person"], Value::Null);
    assert_eq!(v["personal_data"], "erased");
    // Still under way: its exact dates stay, which its waiting order runs on.
    assert_eq!(v["created_at"], under_way["created_at"], "{v}");
    assert_eq!(app.get(&path, &referrer).await.0, 404, "the export is gone with the data");
    assert_eq!(patch(&referrer, json!({"first_name": "Trop tard"})).await.0, 409);
    let dump = pg_dump(&app.sandbox).await;
    assert_none_in(&dump, &values, "pg_dump after erasure");
    assert!(!dump.contains("Prénomcorrigé"));

    // Each is in the audit, which admin and the dpo read (per referral, agent, period).
    let audit = format!("/api/v1/audit?referral_id={id}");
    let (s, v) = app.get(&audit, &dpo).await;
    assert_eq!(s, 200, "{v}");
    let actions: Vec<&str> = v["items"].as_array().unwrap().iter().map(|i| i["action"].as_str().unwrap()).collect();
    for expected in ["submit", "export", "correct", "erase", "read"] {
        assert!(actions.contains(&expected), "{expected} in {actions:?}");
    }
    assert_eq!(actions.iter().filter(|a| **a == "erase").count(), 2, "{actions:?}");
    let first = &v["items"][0];
    assert!(first["actor"].as_str().unwrap().starts_with(&format!("referrer:{org}:token:")), "{first}");
    for key in ["at", "actor", "membership", "action", "referral_id"] {
        assert!(first.as_object().unwrap().contains_key(key), "{key} in {first}");
    }
    assert_none_in(&v.to_string(), &values, "the audit");
    assert_eq!(app.get(&audit, &app.admin).await.0, 200);
    assert_eq!(app.get(&audit, &referrer).await.0, 403);
    assert_eq!(app.get("/api/v1/audit?from=hier", &dpo).await.0, 422);
    assert_eq!(app.get("/api/v1/audit?limit=0", &dpo).await.0, 422);
    let (s, v) = app.get("/api/v1/audit?from=2020-01-01T00:00:00Z&to=2020-02-01T00:00:00Z", &dpo).await;
    assert_eq!((s, v["items"].as_array().unwrap().len()), (200, 0), "{v}");
    // Paged.
    let (_, page) = app.get(&format!("{audit}&limit=2"), &dpo).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, next) = app.get(&format!("{audit}&limit=2&cursor={cursor}"), &dpo).await;
    assert_ne!(next["items"][0], page["items"][0]);
    // The command line lists the same.
    let (ok, out, err) = app.sandbox.cli(&["audit", "list", "--referral", &id]).await;
    assert!(ok, "{err}");
    let listed: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.len(), actions.len());
    app.stop().await;
}

#[tokio::test]
async fn a_dpo_token_is_issued_from_the_command_line() {
    let sandbox = Sandbox::new().await;
    let (ok, out, err) = sandbox.cli(&["token", "issue", "--role", "dpo"]).await;
    assert!(ok, "{err}");
    assert!(out.trim().len() > 20);
    let (ok, _, err) = sandbox.cli(&["token", "issue", "--role", "dpo", "--territory", "16"]).await;
    assert!(!ok);
    assert!(err.contains("dpo"), "{err}");
    sandbox.destroy().await;
}

/// Runs psql as the superuser of the tests.
async fn psql(sandbox: &Sandbox, args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .args(args)
        .output()
        .await
        .expect("psql");
    let _ = sandbox;
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test]
async fn the_audit_is_append_only_for_the_service_role_of_deploy_roles_sql() {
    let sandbox = Sandbox::new().await;
    crate::support::apply_roles_sql(&sandbox).await;
    let as_referrals = format!("postgres://aiguillage_referrals@%2Fvar%2Frun%2Fpostgresql/{}", sandbox.database);
    let insert = "INSERT INTO referrals.audit (actor, principal, action) VALUES ('t', 't', 'read')";
    let (ok, out) = psql(&sandbox, &["-d", &as_referrals, "-c", insert]).await;
    assert!(ok, "the service may append: {out}");
    let (ok, out) = psql(&sandbox, &["-d", &as_referrals, "-c", "SELECT count(*) FROM referrals.audit"]).await;
    assert!(ok, "and read: {out}");
    for change in ["UPDATE referrals.audit SET action = 'x'", "DELETE FROM referrals.audit", "TRUNCATE referrals.audit"]
    {
        let (ok, out) = psql(&sandbox, &["-d", &as_referrals, "-c", change]).await;
        assert!(!ok, "{change} must be refused");
        assert!(out.contains("permission denied"), "{change}: {out}");
    }
    // Not even the owner changes it.
    let (ok, out) = psql(&sandbox, &["-d", &sandbox.config.database_url, "-c", "DELETE FROM referrals.audit"]).await;
    assert!(!ok && out.contains("append-only"), "{out}");
    sandbox.destroy().await;
}

#[tokio::test]
async fn logs_at_trace_in_json_hold_no_personal_value_of_a_whole_journey() {
    let sandbox = Sandbox::new().await;
    let port = crate::crash::free_port();
    let log = std::env::temp_dir().join(format!("{}-trace.log", sandbox.namespace));
    let file = std::fs::File::create(&log).unwrap();
    let c = &sandbox.config;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_aiguillage"))
        .args(["serve", "--services", "all", "--listen", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", &c.database_url)
        .env("AMQP_URL", &c.amqp_url)
        .env("AIGUILLAGE_NAMESPACE", &c.namespace)
        .env("AIGUILLAGE_MASTER_KEY", &sandbox.master_key)
        .env("AIGUILLAGE_LOG_FORMAT", "json")
        .env("RUST_LOG", "trace")
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    eventually("the server to be ready", Duration::from_secs(60), || async {
        let r = client.get(format!("{base}/readyz")).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    let key = sandbox.key().await;
    let token = |role, scope| key.issue(&platform::auth::Claims::new(role, scope, chrono::Duration::hours(1)).unwrap());
    let admin = token(Role::Admin, Scope::All);
    let call = |method: reqwest::Method, path: String, token: String, body: Option<Value>| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let mut req = client.request(method, format!("{base}{path}")).bearer_auth(token);
            if let Some(b) = body {
                req = req.json(&b);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, v) = call(
        reqwest::Method::PUT,
        "/api/v1/structures/a".into(),
        admin.clone(),
        Some(structure("A", 45.6500, 0.1550, &[AIDE], 5)),
    )
    .await;
    assert!(s == 200 || s == 201, "{v}");
    let (s, org) = call(
        reqwest::Method::POST,
        "/api/v1/organisations".into(),
        admin.clone(),
        Some(json!({"name": "CCAS test", "kind": "social_service", "territory": "16"})),
    )
    .await;
    assert_eq!(s, 201, "{org}");
    let referrer = token(Role::Referrer, Scope::Organisation(org["id"].as_str().unwrap().parse().unwrap()));
    let mediator = token(Role::Mediator, Scope::Structure("a".parse().unwrap()));
    let (body, mut secrets) = person("journal", "+33677889900");
    let (s, v) = call(reqwest::Method::POST, "/api/v1/referrals".into(), referrer.clone(), Some(body)).await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    eventually("the referral to be offered", Duration::from_secs(30), || async {
        let (_, v) = call(reqwest::Method::GET, format!("/api/v1/referrals/{id}"), referrer.clone(), None).await;
        (v["status"] == "offered").then_some(())
    })
    .await;
    let name = "Médiateurjournal Nom";
    let comment = "Commentairejournal de clôture";
    secrets.extend([name.to_string(), comment.to_string(), "Prénomjournalcorrigé".to_string()]);
    for (step, token, body) in [
        ("accept", &mediator, json!({"mediator_name": name})),
        ("contact", &mediator, json!({})),
        ("close", &mediator, json!({"outcome": "completed", "comment": comment})),
    ] {
        let (s, v) =
            call(reqwest::Method::POST, format!("/api/v1/referrals/{id}/{step}"), token.clone(), Some(body)).await;
        assert_eq!(s, 200, "{step}: {v}");
    }
    let (s, _) =
        call(reqwest::Method::GET, format!("/api/v1/referrals/{id}/personal-data"), referrer.clone(), None).await;
    assert_eq!(s, 200);
    let (s, v) = call(
        reqwest::Method::PATCH,
        format!("/api/v1/referrals/{id}/person"),
        referrer.clone(),
        Some(json!({"first_name": "Prénomjournalcorrigé"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, _) =
        call(reqwest::Method::DELETE, format!("/api/v1/referrals/{id}/personal-data"), referrer.clone(), None).await;
    assert_eq!(s, 204);
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().unwrap().to_string()]).status();
    let status = tokio::time::timeout(Duration::from_secs(40), child.wait()).await.unwrap().unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.lines().count() > 100, "trace logging was on");
    assert!(text.lines().all(|l| l.trim().is_empty() || l.starts_with('{')), "JSON lines");
    assert!(text.contains(&id), "the logs name the referral by id");
    assert_none_in(&text, &secrets, "the trace logs");
    let _ = std::fs::remove_file(&log);
    sandbox.destroy().await;
}

#[tokio::test]
async fn two_purges_at_once_share_the_work_and_purge_each_referral_once() {
    let sandbox = Sandbox::new().await;
    let pool = sandbox.pool().await;
    // 5000 referrals whose last activity was three years ago, with sealed-looking data.
    sqlx::raw_sql(
        "INSERT INTO referrals.referrals (id, organisation_id, status, territory, commune_code, lat, lon, needs, modes,
             languages, accessibility, urgency, max_distance_km, created_at, updated_at)
         SELECT gen_random_uuid(), gen_random_uuid(), 'cancelled', '16', '16015', 45.6, 0.15, '{aide_demarches_administratives}',
                '{in_person}', '{fr}', '{}', 'normal', 30, now() - interval '3 years',
                now() - interval '3 years' - (g || ' seconds')::interval
         FROM generate_series(1, 5000) g;
         INSERT INTO referrals.persons (referral_id, first_name, last_name, contact_preference, commune_name, key_id)
         SELECT id, '\\x01'::bytea, '\\x01'::bytea, 'phone', 'Angoulême', 2 FROM referrals.referrals;
         INSERT INTO referrals.history (referral_id, step, status, comment, key_id)
         SELECT id, 'cancelled', 'cancelled', '\\x01'::bytea, 2 FROM referrals.referrals;",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (a, b) = tokio::join!(sandbox.cli(&["purge"]), sandbox.cli(&["purge"]));
    assert!(a.0 && b.0, "{} {}", a.2, b.2);
    let purged = |out: &str| serde_json::from_str::<Value>(out).unwrap()["referrals"].as_u64().unwrap();
    assert_eq!(purged(&a.1) + purged(&b.1), 5000, "{} {}", a.1, b.1);
    let left: (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM referrals.persons), (SELECT count(*) FROM referrals.history WHERE comment IS NOT NULL),
                (SELECT count(*) FROM referrals.erasures)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(left, (0, 0, 5000));
    pool.close().await;
    sandbox.destroy().await;
}

/// Agents' names and e-mail addresses (issue 15): sealed in accounts.accounts and
/// accounts.invitations, matched by a keyed hash, and readable only through the API.
#[tokio::test]
async fn a_database_dump_holds_no_agents_name_or_email() {
    use crate::signin::{browser, page, server, sign_in};
    use crate::support::oidc::{Agent, NewAgent, OidcProvider};
    let oidc = OidcProvider::start().await;
    let app = server(&oidc, oidc.client()).await;
    let mut secrets = Vec::new();

    // An agent signing in through the OpenID provider and the web app.
    let mut nina = NewAgent::new("agente.unique.oidc@exemple-prive.fr");
    nina.given_name = "Prénomagentoidc".into();
    nina.usual_name = "Nomagentoidc".into();
    secrets.extend([nina.email.clone(), nina.given_name.clone(), nina.usual_name.clone()]);
    let b = browser();
    let r = sign_in(&app, &oidc, &b, &Agent::New(nina.clone()), "/compte").await;
    assert_eq!(r.status(), reqwest::StatusCode::SEE_OTHER);
    let (_, _, html) = page(&app, &b, "/compte").await;
    assert!(html.contains("Prénomagentoidc Nomagentoidc"), "{html}");

    // An agent invited by address (upper case) before signing in with it (lower case).
    let (ok, _, err) =
        app.sandbox.cli(&["account", "grant", "--email", "Invitee.Unique@Exemple-Prive.fr", "--role", "admin"]).await;
    assert!(ok && err.contains("invitation"), "{err}");
    secrets.extend(["Invitee.Unique@Exemple-Prive.fr".to_string(), "invitee.unique@exemple-prive.fr".to_string()]);
    let body = json!({"issuer": "http://127.0.0.1:1/test", "subject": "sub-invitee", "email": "invitee.unique@exemple-prive.fr",
                      "given_name": "Prénominvitee", "usual_name": "Nominvitee"});
    secrets.extend(["Prénominvitee".to_string(), "Nominvitee".to_string()]);
    let (s, v) = app.post("/api/v1/accounts/sign-ins", &app.web_service(), body).await;
    assert_eq!(s, 200, "{v}");
    let invitee: uuid::Uuid = v["account_id"].as_str().unwrap().parse().unwrap();
    let (_, me) = app.get("/api/v1/me", &app.agent(invitee, None)).await;
    assert_eq!(me["email"], "invitee.unique@exemple-prive.fr", "{me}");
    assert_eq!(me["given_name"], "Prénominvitee", "{me}");
    assert_eq!(me["memberships"][0]["role"], "admin", "the invitation was matched by its keyed hash: {me}");

    // An invitation nobody accepted yet, listed with its address.
    let coordinator = app.coordinator(&["16"]);
    let invitation = json!({"email": "Pas.Encore@Exemple-Prive.fr",
                            "membership": {"role": "coordinator", "territories": ["16"]}});
    let (s, v) = app.post("/api/v1/accounts/invitations", &coordinator, invitation).await;
    assert_eq!(s, 201, "{v}");
    secrets.extend(["Pas.Encore@Exemple-Prive.fr".to_string(), "pas.encore@exemple-prive.fr".to_string()]);
    let (s, v) = app.get("/api/v1/accounts/invitations", &coordinator).await;
    assert_eq!(s, 200, "{v}");
    assert!(v.to_string().contains("Pas.Encore@Exemple-Prive.fr"), "{v}");
    let (ok, out, err) = app.sandbox.cli(&["account", "list"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("agente.unique.oidc@exemple-prive.fr") && out.contains("Prénominvitee"), "{out}");

    // Membership requests' free text: the agent's message, and a refusal's reason.
    let asking = app.sign_in_agent("sub-asking", "demandeuse.unique@exemple-prive.fr", None).await;
    secrets.push("demandeuse.unique@exemple-prive.fr".into());
    let message = "Messagedemandeunique : je suis conseillère au centre social";
    let request = json!({"role": "coordinator", "territories": ["16"], "message": message});
    let (s, v) = app.post("/api/v1/accounts/requests", &app.agent(asking, None), request).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["message"], message, "{v}");
    let request_id = v["id"].as_str().unwrap().to_string();
    secrets.push(message.into());
    let (_, listed) = app.get("/api/v1/accounts/requests", &coordinator).await;
    assert!(listed.to_string().contains(message), "the coordinator reads the message: {listed}");
    let reason = "Raisonrefusunique : adressez-vous à votre département";
    let (ok, _, err) = app.sandbox.cli(&["account", "refuse", &request_id, "--reason", reason]).await;
    assert!(ok, "{err}");
    secrets.push(reason.into());

    let dump = pg_dump(&app.sandbox).await;
    assert!(dump.contains(&invitee.to_string()) && dump.contains("accounts.accounts"), "the dump has the accounts");
    assert_none_in(&dump, &secrets, "pg_dump");

    let pool = app.sandbox.pool().await;
    let unsealed: i64 =
        sqlx::query_scalar("SELECT (SELECT count(*) FROM accounts.accounts WHERE key_id IS NULL) + (SELECT count(*) FROM accounts.invitations WHERE key_id IS NULL) + (SELECT count(*) FROM accounts.requests WHERE key_id IS NULL)")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(unsealed, 0);
    // A value moved to another row does not open.
    sqlx::query(
        "UPDATE accounts.accounts SET email = (SELECT email FROM accounts.accounts WHERE subject = $1) WHERE id = $2",
    )
    .bind(&nina.sub)
    .bind(invitee)
    .execute(&pool)
    .await
    .unwrap();
    let (s, v) = app.get("/api/v1/me", &app.agent(invitee, None)).await;
    assert_eq!(s, 500, "a value moved to another row must not open: {v}");
    assert!(!v.to_string().contains("agente.unique"), "{v}");
    pool.close().await;
    app.stop().await;
}

/// A database migrated from before encryption holds plain names and addresses: the
/// first process that opens the accounts' vault seals them, and they read as before.
#[tokio::test]
async fn plain_agents_rows_from_before_encryption_are_sealed_at_open() {
    let app = TestApp::spawn().await;
    let pool = app.sandbox.pool().await;
    let id = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO accounts.accounts (id, issuer, subject, given_name, usual_name, email, email_key)
         VALUES ($1, 'legacy', 'sub-legacy', convert_to('Prénomancien', 'UTF8'), convert_to('Nomancien', 'UTF8'),
                 convert_to('Ancien.Agent@Exemple-Prive.fr', 'UTF8'), convert_to('ancien.agent@exemple-prive.fr', 'UTF8'))",
    )
    .bind(id)
    .execute(&pool)
    .await
    .unwrap();
    let invitation = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO accounts.invitations (id, email, email_key, role, invited_by)
         VALUES ($1, convert_to('Ancienne.Invitation@Exemple-Prive.fr', 'UTF8'),
                 convert_to('ancienne.invitation@exemple-prive.fr', 'UTF8'), 'admin', 'test')",
    )
    .bind(invitation)
    .execute(&pool)
    .await
    .unwrap();
    // A request from before, with its message in plain text.
    sqlx::query(
        "INSERT INTO accounts.requests (id, account_id, role, territories, message)
         VALUES ($1, $2, 'coordinator', '{16}', convert_to('Messageancien de demande', 'UTF8'))",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(id)
    .execute(&pool)
    .await
    .unwrap();
    // The command line opens the vault (as a starting server does).
    let (ok, out, err) = app.sandbox.cli(&["account", "list"]).await;
    assert!(ok, "{err}");
    let (ok, requests, err) = app.sandbox.cli(&["account", "requests"]).await;
    assert!(ok && requests.contains("Messageancien de demande"), "the sealed message still reads: {requests}{err}");
    let listed: Vec<Value> = serde_json::from_str(&out).unwrap();
    let legacy = listed.iter().find(|a| a["account_id"] == id.to_string()).expect("the legacy account");
    assert_eq!(legacy["email"], "Ancien.Agent@Exemple-Prive.fr");
    assert_eq!(legacy["given_name"], "Prénomancien");
    let dump = pg_dump(&app.sandbox).await;
    let secrets: Vec<String> =
        ["Prénomancien", "Nomancien", "Ancien.Agent@", "ancien.agent@", "ncienne.invitation@", "Messageancien"]
            .map(String::from)
            .into();
    assert_none_in(&dump, &secrets, "pg_dump after sealing");
    // The invitation is still matched at sign-in by its (now keyed) index, and the old
    // account is found by its address.
    let account = app.sign_in_agent("sub-ancienne", "ancienne.invitation@exemple-prive.fr", None).await;
    let (_, me) = app.get("/api/v1/me", &app.agent(account, None)).await;
    assert_eq!(me["memberships"][0]["role"], "admin", "{me}");
    let (ok, _, err) =
        app.sandbox.cli(&["account", "grant", "--email", "ancien.agent@exemple-prive.fr", "--role", "admin"]).await;
    assert!(ok && err.contains(&format!("given to account {id}")), "{err}");
    pool.close().await;
    app.stop().await;
}

/// Agents' accounts are purged after the account retention without a sign-in: names,
/// address and memberships go, once; other accounts stay; a later sign-in starts afresh.
#[tokio::test]
async fn accounts_without_a_sign_in_for_the_retention_are_purged_once() {
    let app = TestApp::spawn().await;
    let (ok, _, err) =
        app.sandbox.cli(&["account", "grant", "--email", "endormi.unique@exemple-prive.fr", "--role", "admin"]).await;
    assert!(ok, "{err}");
    let asleep = app.sign_in_agent("sub-endormi", "endormi.unique@exemple-prive.fr", None).await;
    let awake = app.sign_in_agent("sub-eveille", "eveille.unique@exemple-prive.fr", None).await;
    let (_, me) = app.get("/api/v1/me", &app.agent(asleep, None)).await;
    assert_eq!(me["memberships"][0]["role"], "admin", "{me}");
    let (s, _) = app
        .post(
            "/api/v1/accounts/requests",
            &app.agent(asleep, None),
            json!({"role": "coordinator", "territories": ["16"],
               "message": "Message très personnel de l'endormi"}),
        )
        .await;
    assert_eq!(s, 201);

    let pool = app.sandbox.pool().await;
    // 25 months without a sign-in for one; 23 for the other.
    sqlx::query("UPDATE accounts.accounts SET last_sign_in_at = now() - interval '25 months' WHERE id = $1")
        .bind(asleep)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE accounts.accounts SET last_sign_in_at = now() - interval '23 months' WHERE id = $1")
        .bind(awake)
        .execute(&pool)
        .await
        .unwrap();

    let (ok, out, err) = app.sandbox.cli(&["purge", "--dry-run"]).await;
    assert!(ok, "{err}");
    assert!(err.contains("would purge 1 account(s)"), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["accounts"]["accounts"], 1, "{v}");
    let (_, me) = app.get("/api/v1/me", &app.agent(asleep, None)).await;
    assert_eq!(me["email"], "endormi.unique@exemple-prive.fr", "a dry run changes nothing");

    let (ok, out, err) = app.sandbox.cli(&["purge"]).await;
    assert!(ok, "{err}");
    assert!(err.contains("purged 1 account(s)"), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["accounts"]["accounts"], 1, "{v}");
    assert!(v["referrals"].is_u64(), "the referrals' report stays as it was: {v}");
    let (ok, out, _) = app.sandbox.cli(&["purge"]).await;
    assert!(ok);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["accounts"]["accounts"], 0, "only once");

    type Row = (Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>, String, bool);
    let (given, usual, email, key, subject, purged): Row = sqlx::query_as(
        "SELECT given_name, usual_name, email, email_key, subject, purged_at IS NOT NULL FROM accounts.accounts WHERE id = $1",
    )
    .bind(asleep)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(given.is_none() && usual.is_none() && email.is_none() && key.is_none() && purged);
    assert_eq!(subject, format!("purged:{asleep}"));
    let (memberships, messages, preferences): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM accounts.memberships WHERE account_id = $1 AND removed_at IS NULL),
                (SELECT count(*) FROM accounts.requests WHERE account_id = $1 AND (message IS NOT NULL OR status = 'pending')),
                (SELECT count(*) FROM accounts.notification_preferences WHERE account_id = $1)",
    )
    .bind(asleep)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((memberships, messages, preferences), (0, 0, 0));
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM accounts.audit WHERE action = 'account_purged' AND account_id = $1")
            .bind(asleep)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(audited, 1);

    // The purged account is gone from the API; the other one is as it was.
    let (s, _) = app.get("/api/v1/me", &app.agent(asleep, None)).await;
    assert_eq!(s, 404);
    let (s, me) = app.get("/api/v1/me", &app.agent(awake, None)).await;
    assert_eq!(s, 200);
    assert_eq!(me["email"], "eveille.unique@exemple-prive.fr");
    let (ok, out, _) = app.sandbox.cli(&["account", "list"]).await;
    assert!(ok && !out.contains(&asleep.to_string()) && out.contains(&awake.to_string()), "{out}");
    let dump = pg_dump(&app.sandbox).await;
    assert_none_in(&dump, &["Message très personnel".to_string()], "pg_dump after the account purge");

    // Signing in again with the same identity makes a new account, without memberships.
    let again = app.sign_in_agent("sub-endormi", "endormi.unique@exemple-prive.fr", None).await;
    assert_ne!(again, asleep);
    let (_, me) = app.get("/api/v1/me", &app.agent(again, None)).await;
    assert_eq!(me["memberships"], json!([]), "{me}");
    pool.close().await;
    app.stop().await;
}

/// The referrer's page of a purged referral: the person is "données supprimées", its
/// timeline is still there, month by month, and nothing of the person or of the free
/// text is left in it.
#[tokio::test]
async fn a_purged_referral_reads_as_removed_on_its_page_with_months_only() {
    use crate::signin::{browser, grant, page, server, sign_in};
    use crate::support::oidc::{Agent, CLAIRE, OidcProvider};

    let oidc = OidcProvider::start().await;
    let app = server(&oidc, oidc.client()).await;
    let org = app.organisation("16").await;
    let organisation = org.to_string();
    grant(
        &app,
        &["--email", "claire.dubois@ccas-angouleme.example", "--role", "referrer", "--organisation", &organisation],
    )
    .await;
    let referrer = app.referrer(org);
    let (body, mut secrets) = person("pagepurge", "+33612345677");
    let id = app.submit(&referrer, body).await;
    app.step(&id, "cancel", &referrer, json!({"reason": "raison pagepurge"})).await;
    secrets.push("raison pagepurge".into());
    // Three years pass. The matcher's answer to the submission may still be on its way
    // and touch the referral after that, so the clock is set back until a purge takes it.
    let pool = app.sandbox.pool().await;
    eventually("the cancelled referral to be purged", Duration::from_secs(20), || async {
        sqlx::query("UPDATE referrals.referrals SET updated_at = now() - interval '3 years' WHERE id = $1::uuid")
            .bind(&id)
            .execute(&pool)
            .await
            .unwrap();
        let (ok, out, err) = app.sandbox.cli(&["purge"]).await;
        assert!(ok, "{err}");
        (serde_json::from_str::<Value>(&out).unwrap()["referrals"] == 1).then_some(())
    })
    .await;
    pool.close().await;

    let b = browser();
    sign_in(&app, &oidc, &b, &Agent::Demo(CLAIRE), "/").await;
    let (status, _, html) = page(&app, &b, &format!("/orientations/{id}")).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{html}");
    assert!(html.contains("données supprimées (durée de conservation)"), "{html}");
    assert_none_in(&html, &secrets, "the purged referral's page");
    let month = contracts::explain::month_year_fr(chrono::Utc::now());
    assert!(html.contains(&month), "the timeline by month ({month}): {html}");
    app.stop().await;
}
