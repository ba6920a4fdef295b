//! The fast tier: the directory API's rules that need only PostgreSQL, through the router
//! with `oneshot`, each test on a database of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::Router;
use contracts::Role;
use platform::auth::Scope;
use platform::testing::{Keys, call, migrate_platform};
use serde_json::{Value, json};
use sqlx::PgPool;

async fn app(pool: PgPool) -> (Router, Keys) {
    migrate_platform(&pool).await;
    directory::migrate(&pool).await.unwrap();
    let keys = Keys::default();
    let config = Arc::new(platform::Config::from_lookup(|_| None).unwrap());
    let state = directory::Directory { pool, auth: keys.authenticator(), config };
    (directory::router(state), keys)
}

fn structure() -> Value {
    json!({
        "name": "France services Mansle", "services": ["aide_demarches_administratives"],
        "modes": ["individual"], "languages": ["fr"], "accessibility": [],
        "address": {"street": "21 Rue Martin", "postcode": "16230", "commune": "Mansle", "commune_code": "16206"},
        "opening_hours": "Mo-Fr 10:00-12:00; PH off", "weekly_capacity": 5, "accepting": true,
        "contact": {"phone": "05 45 20 72 08", "email": "mansle@france-services.example"}
    })
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|e| e.iter().map(|e| e["field"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[sqlx::test(migrations = false)]
async fn a_structure_with_bad_fields_is_refused_naming_each(pool: PgPool) {
    let (router, keys) = app(pool.clone()).await;
    let admin = keys.token(Role::Admin, Scope::All);
    let mut bad = structure();
    bad["services"] = json!(["teleportation"]);
    bad["opening_hours"] = json!("Mo-Fr 9h-12h tous les jours");
    bad["weekly_capacity"] = json!(-1);
    bad["contact"]["email"] = json!("pas une adresse");
    let (s, problem, _) = call(&router, "PUT", "/api/v1/structures/mansle", Some(&admin), Some(&bad), &[]).await;
    assert_eq!(s, 422, "{problem}");
    let named = fields(&problem);
    for field in ["services[0]", "opening_hours", "weekly_capacity", "contact.email"] {
        assert!(named.iter().any(|f| f == field), "{field} in {named:?}");
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM directory.structures").fetch_one(&pool).await.unwrap();
    assert_eq!(stored, 0);
    let (s, created, _) =
        call(&router, "PUT", "/api/v1/structures/mansle", Some(&admin), Some(&structure()), &[]).await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["territory"], "16");
    assert_eq!(created["contact"]["phone"], "+33545207208");
}

#[sqlx::test(migrations = false)]
async fn roles_and_territories_bound_who_edits_what(pool: PgPool) {
    let (router, keys) = app(pool).await;
    let admin = keys.token(Role::Admin, Scope::All);
    call(&router, "PUT", "/api/v1/structures/mansle", Some(&admin), Some(&structure()), &[]).await;
    let referrer = keys.token(Role::Referrer, Scope::Organisation(contracts::OrganisationId::new()));
    let (s, _, _) = call(&router, "PUT", "/api/v1/structures/mansle", Some(&referrer), Some(&structure()), &[]).await;
    assert_eq!(s, 403);
    let elsewhere = keys.token(Role::Coordinator, Scope::Territories(vec!["17".parse().unwrap()]));
    let (s, _, _) = call(&router, "DELETE", "/api/v1/structures/mansle", Some(&elsewhere), None, &[]).await;
    assert_eq!(s, 404, "a structure outside the coordinator's territory does not exist for them");
    let capacity = json!({"weekly_capacity": 8});
    let other = keys.token(Role::Mediator, Scope::Structure("another".parse().unwrap()));
    let (s, _, _) =
        call(&router, "PUT", "/api/v1/structures/mansle/capacity", Some(&other), Some(&capacity), &[]).await;
    assert_eq!(s, 404);
    let own = keys.token(Role::Mediator, Scope::Structure("mansle".parse().unwrap()));
    let (s, v, _) = call(&router, "PUT", "/api/v1/structures/mansle/capacity", Some(&own), Some(&capacity), &[]).await;
    assert_eq!((s, v["weekly_capacity"].as_i64()), (200, Some(8)), "{v}");
    let (s, _, _) =
        call(&router, "POST", "/api/v1/organisations", Some(&own), Some(&json!({"name": "x", "territory": "16"})), &[])
            .await;
    assert_eq!(s, 403);
}

#[sqlx::test(migrations = false)]
async fn an_organisation_is_created_once_per_idempotency_key_and_seen_only_by_its_own(pool: PgPool) {
    let (router, keys) = app(pool).await;
    let admin = keys.token(Role::Admin, Scope::All);
    let body =
        json!({"name": "CCAS d'Angoulême", "kind": "social_service", "territory": "16", "siret": "26160011800010"});
    let key = [("idempotency-key", "ccas-16")];
    let (s1, a, _) = call(&router, "POST", "/api/v1/organisations", Some(&admin), Some(&body), &key).await;
    let (s2, b, _) = call(&router, "POST", "/api/v1/organisations", Some(&admin), Some(&body), &key).await;
    assert_eq!((s1, s2), (201, 201), "{a} {b}");
    assert_eq!(a["id"], b["id"]);
    let (s3, _, _) = call(
        &router,
        "POST",
        "/api/v1/organisations",
        Some(&admin),
        Some(&json!({"name": "Autre", "territory": "16"})),
        &key,
    )
    .await;
    assert_eq!(s3, 409);
    let id = a["id"].as_str().unwrap();
    let own = keys.token(Role::Referrer, Scope::Organisation(id.parse().unwrap()));
    let other = keys.token(Role::Referrer, Scope::Organisation(contracts::OrganisationId::new()));
    let path = format!("/api/v1/organisations/{id}");
    assert_eq!(call(&router, "GET", &path, Some(&own), None, &[]).await.0, 200);
    assert_eq!(call(&router, "GET", &path, Some(&other), None, &[]).await.0, 404);
    let (s, problem, _) = call(
        &router,
        "POST",
        "/api/v1/organisations",
        Some(&admin),
        Some(&json!({"name": "", "territory": "00", "siret": "12"})),
        &[],
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(fields(&problem), vec!["name", "territory", "siret"]);
}

// -- data·inclusion

const DI_STRUCTURES_JSON: &str = include_str!("../src/domain/data_inclusion/fixtures/structures.json");
const DI_SERVICES_JSON: &str = include_str!("../src/domain/data_inclusion/fixtures/services.json");
const DI_STRUCTURES_CSV: &[u8] = include_bytes!("../src/domain/data_inclusion/fixtures/structures.csv");
const DI_SERVICES_CSV: &[u8] = include_bytes!("../src/domain/data_inclusion/fixtures/services.csv");

/// The fixtures' agent: their name, e-mail and phone, in every spelling they could be stored in.
const AGENT: &[&str] =
    &["Josiane", "Vérandier", "verandier", "agents.example.org", "+33698765432", "698765432", "98 76 54 32"];

/// Everything the test database holds, as text: `pg_dump --data-only` when it can reach the
/// server, and a scan of every row of every table through SQL in any case.
async fn whole_database(pool: &PgPool) -> String {
    let mut text = String::new();
    let database: String = sqlx::query_scalar("SELECT current_database()").fetch_one(pool).await.unwrap();
    if let Ok(url) = std::env::var("DATABASE_URL")
        && let Some((server, _)) = url.rsplit_once('/')
    {
        let dump = std::process::Command::new("pg_dump")
            .args(["--data-only", "--no-owner", "--dbname", &format!("{server}/{database}")])
            .output();
        match dump {
            Ok(out) if out.status.success() => {
                let dump = String::from_utf8_lossy(&out.stdout);
                assert!(dump.contains("COPY directory.structures"), "pg_dump dumps the directory");
                text.push_str(&dump);
            }
            Ok(out) => eprintln!("pg_dump failed, the SQL scan stands alone: {}", String::from_utf8_lossy(&out.stderr)),
            Err(e) => eprintln!("pg_dump not run, the SQL scan stands alone: {e}"),
        }
    }
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text FROM information_schema.tables
         WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(tables.iter().any(|(s, t)| s == "directory" && t == "structures"), "{tables:?}");
    for (schema, table) in tables {
        let sql = format!(
            "SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM \"{}\".\"{}\" t",
            schema.replace('"', "\"\""),
            table.replace('"', "\"\"")
        );
        let rows: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(pool).await.unwrap();
        text.push_str(&rows);
        text.push('\n');
    }
    text
}

fn rejected_errors(report: &Value) -> Vec<(u64, String)> {
    report["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let errors: Vec<&str> = r["errors"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
            (r["index"].as_u64().unwrap(), errors.join("; "))
        })
        .collect()
}

#[sqlx::test(migrations = false)]
async fn a_data_inclusion_pair_imports_its_digital_places_and_never_an_agent(pool: PgPool) {
    let (router, keys) = app(pool.clone()).await;
    let admin = keys.token(Role::Admin, Scope::All);
    let body = json!({
        "structures": serde_json::from_str::<Value>(DI_STRUCTURES_JSON).unwrap(),
        "services": serde_json::from_str::<Value>(DI_SERVICES_JSON).unwrap(),
    });
    let (s, report, _) = call(&router, "POST", "/api/v1/structures/import", Some(&admin), Some(&body), &[]).await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(report["received"], 11, "{report:#}");
    assert_eq!((report["created"].as_u64(), report["updated"].as_u64()), (Some(3), Some(0)), "{report:#}");
    assert_eq!(
        rejected_errors(&report),
        [
            (3, "structure: missing required field `nom`".to_string()),
            (9, "service: missing required field `description`".to_string()),
            (10, "service: `structure_id` 'dora--inconnue' (source 'dora') is not in the structures file".to_string()),
        ]
    );
    assert_eq!(report["unmapped_values"], json!({"thematiques": {"numerique--teleporter-ses-fichiers": 1}}));
    assert_eq!(report["skipped"], json!({"services_not_digital": 1, "structures_without_digital_service": 1}));
    assert_eq!(report["eligibility_zones"]["di-dora--s4@service"], json!(["16", "200070514"]));
    assert!(report["warnings"].as_array().unwrap().iter().any(|w| w["field"] == "horaires_accueil"), "{report:#}");

    let (s, tournesol, _) = call(&router, "GET", "/api/v1/structures/di-dora--42", Some(&admin), None, &[]).await;
    assert_eq!(s, 200, "{tournesol}");
    assert_eq!(tournesol["services"], json!(["maitrise_outils_numeriques", "acquisition_materiel_solidaire"]));
    assert_eq!(tournesol["modes"], json!(["individual", "workshop", "remote"]));
    assert_eq!(tournesol["opening_hours"], "Mo-Fr 08:30-12:30; PH off");
    assert_eq!(tournesol["fees"], json!(["Gratuit", "Payant"]));
    assert_eq!(tournesol["siret"], "13003013300016");
    assert_eq!(tournesol["source"], "data-inclusion/dora");
    assert_eq!(tournesol["contact"]["email"], "exemple@inclusion.gouv.fr");
    let (s, cognac, _) = call(&router, "GET", "/api/v1/structures/di-dora--s4@service", Some(&admin), None, &[]).await;
    assert_eq!(s, 200, "{cognac}");
    assert_eq!(cognac["address"]["commune_code"], "16102");
    assert_eq!(cognac["services"], json!(["aide_demarches_administratives"]));
    let (s, aidants, _) =
        call(&router, "GET", "/api/v1/structures/di-dora--AidantsConnect:2024-47BXY", Some(&admin), None, &[]).await;
    assert_eq!(s, 200, "{aidants}");
    assert_eq!(aidants["opening_hours"], Value::Null);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM directory.structures").fetch_one(&pool).await.unwrap();
    assert_eq!(stored, 3);

    // The same pair again changes nothing and publishes nothing.
    let outbox = |pool: PgPool| async move {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM directory.outbox").fetch_one(&pool).await.unwrap();
        n
    };
    let before = outbox(pool.clone()).await;
    let (s, again, _) = call(&router, "POST", "/api/v1/structures/import", Some(&admin), Some(&body), &[]).await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(
        (again["created"].as_u64(), again["updated"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(0), Some(3))
    );
    assert_eq!(outbox(pool.clone()).await, before);

    for given in ["Josiane", "Vérandier", "agents.example.org", "98 76 54 32"] {
        assert!(DI_SERVICES_JSON.contains(given), "the fixture gives {given}");
    }
    let everything = whole_database(&pool).await;
    assert!(everything.contains("Centre social Le Tournesol"), "the scan reads the structures");
    for secret in AGENT {
        assert!(!everything.contains(secret), "{secret} is stored");
    }
}

#[sqlx::test(migrations = false)]
async fn a_data_inclusion_csv_pair_imports_through_the_command_lines_path(pool: PgPool) {
    let (_router, _keys) = app(pool.clone()).await;
    let options = directory::import::Options { territories: None, source: None };
    let report =
        directory::import::import_data_inclusion(&pool, DI_STRUCTURES_CSV, DI_SERVICES_CSV, options, 5).await.unwrap();
    assert_eq!((report.received, report.created, report.rejected.len()), (11, 3, 3), "{report:?}");
    assert_eq!(report.unmapped_values["thematiques"]["numerique--teleporter-ses-fichiers"], 1);
    // Files in the other order, as a coordinator of Charente-Maritime: every place is elsewhere.
    let territories = ["17".to_string()];
    let options = directory::import::Options { territories: Some(&territories), source: None };
    let report =
        directory::import::import_data_inclusion(&pool, DI_SERVICES_CSV, DI_STRUCTURES_CSV, options, 5).await.unwrap();
    assert_eq!((report.created, report.updated, report.unchanged, report.rejected.len()), (0, 0, 0, 6));
    let everything = whole_database(&pool).await;
    for secret in AGENT {
        assert!(!everything.contains(secret), "{secret} is stored");
    }
}
