//! Issue 3: the directory from real national data.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

async fn import(app: &TestApp, token: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let resp = app
        .client
        .post(format!("{}/api/v1/structures/import", app.base))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_real_charente_directory_imports_once_and_reimports_as_nothing_new() {
    let app = TestApp::spawn().await;
    let (s, report) = import(&app, &app.admin, "application/json", directory::SAMPLE_DIRECTORY.to_vec()).await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(report["received"], 188);
    assert_eq!(report["created"], 188, "{}", report["rejected"]);
    assert_eq!(report["rejected"], json!([]));
    assert_eq!(report["unmapped_values"]["services"], Value::Null, "{report}");
    assert!(report["probable_duplicates"].as_array().unwrap().len() > 5);

    let (s, again) = import(&app, &app.admin, "application/json", directory::SAMPLE_DIRECTORY.to_vec()).await;
    assert_eq!(s, 200);
    assert_eq!(
        (again["created"].as_i64(), again["updated"].as_i64(), again["unchanged"].as_i64()),
        (Some(0), Some(0), Some(188))
    );

    // The imported places are matchable: a referral from Angoulême is offered nearby.
    let (_, listed) = app.get("/api/v1/structures?territory=16&limit=500", &app.admin).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 188);
    let s = &listed["items"][0];
    assert_eq!(s["territory"], "16");
    assert_eq!(s["weekly_capacity"], 5, "the default capacity");
    let pool = app.sandbox.pool().await;
    eventually("the matcher to know the directory", Duration::from_secs(30), || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM matcher.structures").fetch_one(&pool).await.ok()?;
        (n == 188).then_some(())
    })
    .await;
    pool.close().await;
    let referrer = app.referrer(app.organisation("16").await);
    let id = app.submit(&referrer, referral()).await;
    let r = app.until_status(&id, &referrer, "offered").await;
    assert!(r["current_offer"]["distance_km"].as_f64().unwrap() < 10.0, "{r}");
    let (_, near) = app
        .get("/api/v1/structures?near=45.6458,0.14502&radius_km=5&service=aide_demarches_administratives", &app.admin)
        .await;
    assert!(!near["items"].as_array().unwrap().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_mixed_file_imports_the_valid_records_and_lists_the_others_by_index() {
    let app = TestApp::spawn().await;
    let file = json!([
        {"id": "ok-1", "nom": "Médiathèque", "commune": "Angoulême", "code_postal": "16000", "adresse": "1 rue A",
         "latitude": 45.65, "longitude": 0.15, "services": "Aide aux démarches administratives", "date_maj": "2024-01-01"},
        {"nom": "Sans identifiant", "commune": "Angoulême", "code_postal": "16000", "services": "Aide aux démarches administratives"},
        {"id": "no-service", "nom": "Rien", "commune": "Angoulême", "code_postal": "16000", "services": "Cuisine"},
        {"id": "ok-2", "nom": "Sans coordonnées", "commune": "Cognac", "code_postal": "16100", "adresse": "2 rue B",
         "services": "Réaliser des démarches administratives avec un accompagnement;Prendre en main un ordinateur",
         "conditions_access": "Gratuit : Je peux accéder gratuitement au lieu et à ses services"},
        {"id": "nowhere", "nom": "Nulle part", "commune": "Atlantide", "code_postal": "00000", "services": "Aide aux démarches administratives"},
        "not even an object"
    ]);
    let (s, report) = import(&app, &app.admin, "application/json", file.to_string().into_bytes()).await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(report["received"], 6);
    assert_eq!(report["created"], 2);
    let rejected: Vec<i64> =
        report["rejected"].as_array().unwrap().iter().map(|r| r["index"].as_i64().unwrap()).collect();
    assert_eq!(rejected, [1, 2, 4, 5], "{report}");
    assert!(report["rejected"].as_array().unwrap().iter().all(|r| !r["errors"].as_array().unwrap().is_empty()));
    assert_eq!(report["unmapped_values"]["services"]["Cuisine"], 1, "{report}");
    let (_, cognac) = app.get("/api/v1/structures/ok-2", &app.admin).await;
    assert_eq!(cognac["services"], json!(["aide_demarches_administratives", "maitrise_outils_numeriques"]));
    assert_eq!(cognac["address"]["commune_code"], "16102", "placed at its commune");
    assert_eq!(cognac["modes"], json!(["individual"]), "missing modes default to individual");
    app.stop().await;
}

#[tokio::test]
async fn csv_files_coordinators_and_broken_files_are_handled() {
    let app = TestApp::spawn().await;
    let csv = "id;nom;commune;code_postal;code_insee;adresse;services;modalites_accompagnement;horaires\n\
               csv-1;France services Mansle;Mansle;16230;16206;21 Rue Martin;Aide aux démarches administratives|Insertion professionnelle via le numérique;Accompagnement individuel|À distance;Mo-Fr 10:00-12:00,14:00-17:30\n\
               csv-2;Espace La Rochelle;La Rochelle;17000;17300;1 quai;Aide aux démarches administratives;;n'importe quand\n";
    let coordinator = app.coordinator(&["16"]);
    let (s, report) = import(&app, &coordinator, "text/csv", csv.as_bytes().to_vec()).await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(report["created"], 1);
    assert_eq!(report["rejected"][0]["index"], 1);
    assert!(report["rejected"][0]["errors"][0].as_str().unwrap().contains("territor"), "{report}");
    let (_, mansle) = app.get("/api/v1/structures/csv-1", &app.admin).await;
    assert_eq!(mansle["modes"], json!(["individual", "remote"]));
    assert_eq!(mansle["opening_hours"], "Mo-Fr 10:00-12:00,14:00-17:30");
    // An admin imports everything; invalid hours are a warning, not a rejection.
    let (_, report) = import(&app, &app.admin, "text/csv", csv.as_bytes().to_vec()).await;
    assert_eq!((report["created"].as_i64(), report["unchanged"].as_i64()), (Some(1), Some(1)), "{report}");
    assert!(report["warnings"].as_array().unwrap().iter().any(|w| w["id"] == "csv-2"), "{report}");

    let (s, v) = import(&app, &app.admin, "application/json", b"{\"oops\": ".to_vec()).await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(
        import(&app, &app.referrer(app.organisation("16").await), "application/json", b"[]".to_vec()).await.0,
        403
    );
    assert_eq!(import(&app, &app.mediator("csv-1"), "application/json", b"[]".to_vec()).await.0, 403);
    app.stop().await;
}

#[tokio::test]
async fn the_import_command_reads_a_file_and_prints_the_report() {
    let sandbox = Sandbox::new().await;
    let path = std::env::temp_dir().join(format!("{}.json", sandbox.namespace));
    std::fs::write(&path, directory::SAMPLE_DIRECTORY).unwrap();
    let run = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_aiguillage"))
            .arg("import")
            .arg(&path)
            .env("DATABASE_URL", &sandbox.config.database_url)
            .env("AIGUILLAGE_NAMESPACE", &sandbox.namespace)
            .output()
    };
    let out = run().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["created"], 188);
    let again: Value = serde_json::from_slice(&run().await.unwrap().stdout).unwrap();
    assert_eq!(again["created"], 0);
    let _ = std::fs::remove_file(&path);
    sandbox.destroy().await;
}

#[tokio::test]
async fn the_import_command_takes_data_inclusions_structures_and_services_files_together() {
    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../directory/src/domain/data_inclusion/fixtures");
    let sandbox = Sandbox::new().await;
    let run = |structures: &str, services: &str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_aiguillage"))
            .args(["import", &format!("{FIXTURES}/{structures}"), &format!("{FIXTURES}/{services}")])
            .args(["--source", "data-inclusion"])
            .env("DATABASE_URL", &sandbox.config.database_url)
            .env("AIGUILLAGE_NAMESPACE", &sandbox.namespace)
            .output()
    };
    let out = run("structures.csv", "services.csv").await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((report["received"].as_u64(), report["created"].as_u64()), (Some(11), Some(3)), "{report:#}");
    assert_eq!(report["skipped"], json!({"services_not_digital": 1, "structures_without_digital_service": 1}));
    // The JSON files, services first: the same places, unchanged.
    let out = run("services.json", "structures.json").await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((again["created"].as_u64(), again["unchanged"].as_u64()), (Some(0), Some(3)), "{again:#}");
    sandbox.destroy().await;
}

#[tokio::test]
async fn the_demo_loads_charente_prints_a_token_per_role_and_serves() {
    use tokio::io::AsyncBufReadExt;
    let sandbox = Sandbox::new().await;
    let port = crate::crash::free_port();
    // Without a master key, the demo makes one in a file outside the repository.
    let cache = std::env::temp_dir().join(format!("{}-cache", sandbox.namespace));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_aiguillage"))
        .args(["demo", "--listen", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", &sandbox.config.database_url)
        .env("AIGUILLAGE_NAMESPACE", &sandbox.namespace)
        .env_remove("AIGUILLAGE_MASTER_KEY")
        .env_remove("AIGUILLAGE_MASTER_KEY_FILE")
        .env("XDG_CACHE_HOME", &cache)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut tokens = std::collections::HashMap::new();
    while tokens.len() < 4 {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await.unwrap().unwrap().unwrap();
        if let Some(rest) = line.strip_prefix("export ")
            && let Some((name, value)) = rest.split_once('=')
            && name != "BASE"
        {
            tokens.insert(name.to_string(), value.split_whitespace().next().unwrap().to_string());
        }
    }
    let key_file = cache.join("aiguillage").join("master.key");
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert!(platform::vault::MasterKey::from_base64(&key, "test").is_ok(), "the demo's key file holds a key");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    eventually("the demo to serve", Duration::from_secs(30), || async {
        let r = client.get(format!("{base}/readyz")).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    let pool = sandbox.pool().await;
    eventually("the Charente directory in the matcher", Duration::from_secs(30), || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM matcher.structures").fetch_one(&pool).await.ok()?;
        (n == 188).then_some(())
    })
    .await;
    pool.close().await;
    let submitted: Value = client
        .post(format!("{base}/api/v1/referrals"))
        .bearer_auth(&tokens["REFERRER"])
        .json(&referral())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = submitted["id"].as_str().unwrap().to_string();
    let offered = eventually("the demo referral to be offered", Duration::from_secs(20), || async {
        let v: Value = client
            .get(format!("{base}/api/v1/referrals/{id}"))
            .bearer_auth(&tokens["REFERRER"])
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (v["status"] == "offered").then_some(v)
    })
    .await;
    // The printed mediator token belongs to the structure nearest to Angoulême that helps with paperwork.
    let inbox: Value = client
        .get(format!("{base}/api/v1/referrals?status=offered"))
        .bearer_auth(&tokens["MEDIATOR"])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(inbox["items"][0]["id"], offered["id"], "{inbox}");
    let funnel = client
        .get(format!("{base}/api/v1/insights/funnel?territory=16"))
        .bearer_auth(&tokens["COORDINATOR"])
        .send()
        .await
        .unwrap();
    assert_eq!(funnel.status(), 200);
    let orgs = client.get(format!("{base}/api/v1/organisations")).bearer_auth(&tokens["ADMIN"]).send().await.unwrap();
    assert_eq!(orgs.status(), 200);
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().unwrap().to_string()]).status();
    let status = tokio::time::timeout(Duration::from_secs(40), child.wait()).await.unwrap().unwrap();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(&cache);
    sandbox.destroy().await;
}
