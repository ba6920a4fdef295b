//! Accounts, memberships, requests and invitations through the real API: an agent signs
//! in (as the web app records it), asks for a membership, a coordinator of that
//! département approves it, and its removal takes effect on the next call.

use std::time::Duration;

use contracts::Role;
use platform::auth::Scope;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::*;

/// Waits until accounts knows a place from the directory's events.
pub async fn until_place(app: &TestApp, id: &str) {
    let pool = app.sandbox.pool().await;
    eventually(&format!("accounts to know {id}"), Duration::from_secs(20), || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts.places WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .ok()?;
        (n > 0).then_some(())
    })
    .await;
    pool.close().await;
}

fn membership_of(me: &Value, role: &str) -> Option<(Uuid, Value)> {
    me["memberships"]
        .as_array()?
        .iter()
        .find(|m| m["role"] == role)
        .map(|m| (m["id"].as_str().unwrap().parse().unwrap(), m.clone()))
}

#[tokio::test]
async fn an_agent_signs_in_asks_to_be_a_mediator_and_a_coordinator_of_the_departement_approves() {
    let app = TestApp::spawn().await;
    let mut lieu = structure("Médiathèque de Mansle", 45.87, 0.18, &[AIDE], 5);
    lieu["address"]["commune"] = json!("Mansle");
    app.structure("lieu-mansle", lieu).await;
    until_place(&app, "lieu-mansle").await;

    let account = app.sign_in_agent("sub-karim", "karim.benali@mediation.example", None).await;
    let pending = app.agent(account, None);
    let (s, me) = app.get("/api/v1/me", &pending).await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["kind"], "agent");
    assert_eq!(me["memberships"], json!([]));
    assert_eq!(me["email"], "karim.benali@mediation.example");

    // The place search finds it by name, without accents and in any case.
    let (s, places) = app.get("/api/v1/accounts/places?q=mediatheque%20MANSLE", &pending).await;
    assert_eq!(s, 200, "{places}");
    assert_eq!(places["items"][0]["id"], "lieu-mansle");

    let (s, request) = app
        .post("/api/v1/accounts/requests", &pending, json!({"role": "mediator", "structure_id": "lieu-mansle"}))
        .await;
    assert_eq!(s, 201, "{request}");
    assert_eq!(request["status"], "pending");
    assert_eq!(request["label"], "Médiathèque de Mansle");
    let (s, again) = app
        .post("/api/v1/accounts/requests", &pending, json!({"role": "mediator", "structure_id": "lieu-mansle"}))
        .await;
    assert_eq!(s, 409, "{again}");

    // A coordinator of another département does not see it, and cannot decide on it.
    let elsewhere = app.coordinator(&["17"]);
    let (_, list) = app.get("/api/v1/accounts/requests", &elsewhere).await;
    assert_eq!(list["items"], json!([]));
    let id = request["id"].as_str().unwrap();
    let (s, _) = app.post(&format!("/api/v1/accounts/requests/{id}/approve"), &elsewhere, json!({})).await;
    assert_eq!(s, 404);

    let coordinator = app.coordinator(&["16"]);
    let (_, list) = app.get("/api/v1/accounts/requests", &coordinator).await;
    assert_eq!(list["items"][0]["id"], id);
    assert_eq!(list["items"][0]["account"]["email"], "karim.benali@mediation.example");
    let (s, approved) = app.post(&format!("/api/v1/accounts/requests/{id}/approve"), &coordinator, json!({})).await;
    assert_eq!(s, 200, "{approved}");
    assert_eq!(approved["status"], "approved");
    let (s, _) = app.post(&format!("/api/v1/accounts/requests/{id}/refuse"), &coordinator, json!({})).await;
    assert_eq!(s, 409, "a decided request cannot be decided again");

    let (_, me) = app.get("/api/v1/me", &pending).await;
    let (membership, view) = membership_of(&me, "mediator").expect("the approved membership");
    assert_eq!(view["structure_id"], "lieu-mansle");
    assert_eq!(view["label"], "Médiathèque de Mansle");
    let acting =
        app.agent(account, Some((membership, Role::Mediator, Scope::Structure("lieu-mansle".parse().unwrap()))));
    let (_, me) = app.get("/api/v1/me", &acting).await;
    assert_eq!(me["active"], membership.to_string());

    // Removed: the next call no longer sees it as active.
    let (s, v, _) = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/accounts/memberships/{membership}"),
            Some(&coordinator),
            None,
        )
        .await;
    assert_eq!(s, 204, "{v}");
    let (_, me) = app.get("/api/v1/me", &acting).await;
    assert_eq!(me["memberships"], json!([]));
    assert!(me["active"].is_null());

    // Everything is in the audit, with no personal value.
    let (s, audit) = app.get("/api/v1/accounts/audit", &app.admin).await;
    assert_eq!(s, 200, "{audit}");
    let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap()).collect();
    for action in ["sign_in", "membership_requested", "request_approved", "membership_removed"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    assert!(!audit.to_string().contains("karim"), "the audit holds no name or e-mail: {audit}");
    let (_, theirs) = app.get("/api/v1/accounts/audit", &coordinator).await;
    assert!(theirs["items"].as_array().unwrap().iter().any(|a| a["action"] == "request_approved"));
    let (_, others) = app.get("/api/v1/accounts/audit", &elsewhere).await;
    assert!(!others["items"].as_array().unwrap().iter().any(|a| a["action"] == "request_approved"));
    app.stop().await;
}

#[tokio::test]
async fn an_invitation_by_the_command_line_becomes_a_membership_at_the_first_sign_in() {
    let app = TestApp::spawn().await;
    let (ok, _, err) =
        app.sandbox.cli(&["account", "grant", "--email", "Camille.Lefevre@Admin.example", "--role", "admin"]).await;
    assert!(ok, "{err}");
    assert!(err.contains("invitation"), "{err}");
    let account = app.sign_in_agent("sub-camille", "camille.lefevre@admin.example", None).await;
    let (_, me) = app.get("/api/v1/me", &app.agent(account, None)).await;
    assert!(membership_of(&me, "admin").is_some(), "{me}");
    // Signing in again does not grant it twice, nor create another account.
    assert_eq!(app.sign_in_agent("sub-camille", "camille.lefevre@admin.example", None).await, account);
    let (_, me) = app.get("/api/v1/me", &app.agent(account, None)).await;
    assert_eq!(me["memberships"].as_array().unwrap().len(), 1);

    let (ok, out, _) = app.sandbox.cli(&["account", "list"]).await;
    assert!(ok);
    let listed: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(listed[0]["email"], "camille.lefevre@admin.example");
    let (ok, _, err) = app.sandbox.cli(&["account", "revoke", "--email", "camille.lefevre@admin.example"]).await;
    assert!(ok && err.starts_with("1 membership"), "{err}");
    let (_, me) = app.get("/api/v1/me", &app.agent(account, None)).await;
    assert_eq!(me["memberships"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn the_agent_s_siret_puts_their_workplace_first() {
    let app = TestApp::spawn().await;
    let (s, org) = app
        .post(
            "/api/v1/organisations",
            &app.admin,
            json!({"name": "CCAS d'Angoulême", "kind": "social_service", "territory": "16", "siret": "26160011800010"}),
        )
        .await;
    assert_eq!(s, 201, "{org}");
    let org_id = org["id"].as_str().unwrap().to_string();
    app.post(
        "/api/v1/organisations",
        &app.admin,
        json!({"name": "CCAS de Cognac", "kind": "social_service", "territory": "16"}),
    )
    .await;
    until_place(&app, &org_id).await;
    let account = app.sign_in_agent("sub-claire", "claire@ccas.example", Some("261 600 118 00010")).await;
    let (s, places) = app.get("/api/v1/accounts/places?q=ccas", &app.agent(account, None)).await;
    assert_eq!(s, 200, "{places}");
    assert_eq!(places["items"][0]["id"], org_id.as_str());
    assert_eq!(places["items"][0]["matches_siret"], true);
    app.stop().await;
}

#[tokio::test]
async fn account_endpoints_refuse_what_they_must() {
    let app = TestApp::spawn().await;
    let account = app.sign_in_agent("sub-x", "x@example.org", None).await;
    let pending = app.agent(account, None);
    // Only the web app records sign-ins.
    for token in [&app.admin, &pending] {
        let (s, _) = app
            .post("/api/v1/accounts/sign-ins", token, json!({"issuer": "i", "subject": "s", "email": "a@b.example"}))
            .await;
        assert_eq!(s, 403);
    }
    let (s, v) = app
        .post("/api/v1/accounts/sign-ins", &app.web_service(), json!({"issuer": "i", "subject": "s", "email": "nope"}))
        .await;
    assert_eq!((s, v["errors"][0]["field"].as_str()), (422, Some("email")), "{v}");
    let (s, v) = app
        .post("/api/v1/accounts/sign-in-failures", &app.web_service(), json!({"reason": "Jean Dupont a raté"}))
        .await;
    assert_eq!(s, 422, "{v}");
    let (s, _) =
        app.post("/api/v1/accounts/sign-in-failures", &app.web_service(), json!({"reason": "state_mismatch"})).await;
    assert_eq!(s, 204);
    // Bad requests name their fields; an unknown place is refused; nobody requests admin.
    let cases = [
        (json!({"role": "mediator"}), "structure_id"),
        (json!({"role": "mediator", "structure_id": "nowhere"}), "structure_id"),
        (json!({"role": "coordinator", "territories": ["1"]}), "territories"),
        (json!({"role": "admin"}), "role"),
        (json!({"role": "referrer", "organisation_id": "not-a-uuid"}), "organisation_id"),
        (json!({"role": "mediator", "structure_id": "x", "extra": 1}), "extra"),
    ];
    for (body, field) in cases {
        let (s, v) = app.post("/api/v1/accounts/requests", &pending, body.clone()).await;
        assert_eq!(s, 422, "{body}: {v}");
        assert!(v.to_string().contains(field), "{field} named for {body}: {v}");
    }
    // A bearer token is no agent: it cannot file a request.
    let (s, _) =
        app.post("/api/v1/accounts/requests", &app.admin, json!({"role": "coordinator", "territories": ["16"]})).await;
    assert_eq!(s, 403);
    // Only managers list, invite, remove and audit.
    for path in
        ["/api/v1/accounts/requests", "/api/v1/accounts/invitations", "/api/v1/accounts", "/api/v1/accounts/audit"]
    {
        let (s, _) = app.get(path, &pending).await;
        assert_eq!(s, 403, "{path}");
        let (s, _) = app.get(path, &app.mediator("x")).await;
        assert_eq!(s, 403, "{path}");
    }
    // A coordinator cannot make an admin, nor invite outside their départements.
    let coordinator = app.coordinator(&["16"]);
    let (s, v) = app
        .post(
            "/api/v1/accounts/invitations",
            &coordinator,
            json!({"email": "z@example.org", "membership": {"role": "admin"}}),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    let (s, _) = app
        .post(
            "/api/v1/accounts/invitations",
            &coordinator,
            json!({"email": "z@example.org", "membership": {"role": "coordinator", "territories": ["17"]}}),
        )
        .await;
    assert_eq!(s, 403);
    let (s, v) = app
        .post(
            "/api/v1/accounts/invitations",
            &coordinator,
            json!({"email": "z@example.org", "membership": {"role": "coordinator", "territories": ["16"]}}),
        )
        .await;
    assert_eq!((s, v["status"].as_str()), (201, Some("invited")), "{v}");
    let (_, list) = app.get("/api/v1/accounts/invitations", &coordinator).await;
    assert_eq!(list["items"][0]["email"], "z@example.org");
    app.stop().await;
}

#[tokio::test]
async fn the_operator_approves_and_refuses_requests_from_the_command_line() {
    let app = TestApp::spawn().await;
    let org = app.organisation("16").await;
    until_place(&app, &org.to_string()).await;
    let coordinator_org = app.organisation("17").await;
    until_place(&app, &coordinator_org.to_string()).await;
    let account = app.sign_in_agent("cli-decided", "decidee@example.org", None).await;
    let pending = app.agent(account, None);
    let (s, first) = app
        .post("/api/v1/accounts/requests", &pending, json!({"role": "referrer", "organisation_id": org.to_string()}))
        .await;
    assert_eq!(s, 201, "{first}");
    let (s, second) = app
        .post(
            "/api/v1/accounts/requests",
            &pending,
            json!({"role": "referrer", "organisation_id": coordinator_org.to_string()}),
        )
        .await;
    assert_eq!(s, 201, "{second}");
    let (first, second) = (first["id"].as_str().unwrap(), second["id"].as_str().unwrap());

    let (ok, out, err) = app.sandbox.cli(&["account", "requests"]).await;
    assert!(ok, "{err}");
    assert!(out.contains(first) && out.contains(second), "{out}");

    let (ok, _, err) = app.sandbox.cli(&["account", "approve", first]).await;
    assert!(ok, "{err}");
    let (ok, _, err) = app.sandbox.cli(&["account", "refuse", second, "--reason", "Pas dans ce département"]).await;
    assert!(ok, "{err}");
    // Decided once: a second decision says so and fails.
    let (ok, _, err) = app.sandbox.cli(&["account", "approve", second]).await;
    assert!(!ok && err.contains("already refused"), "{err}");
    let (ok, _, err) = app.sandbox.cli(&["account", "approve", &Uuid::now_v7().to_string()]).await;
    assert!(!ok && err.contains("no membership request"), "{err}");

    let (_, me) = app.get("/api/v1/me", &pending).await;
    let memberships = me["memberships"].as_array().unwrap();
    assert_eq!(memberships.len(), 1, "{me}");
    assert_eq!(memberships[0]["organisation_id"], org.to_string());
    let (_, audit) = app.get("/api/v1/accounts/audit", &app.admin).await;
    let text = audit.to_string();
    assert!(text.contains("request_approved") && text.contains("request_refused"), "{text}");
    assert!(text.contains("operator:cli"), "{text}");
    app.stop().await;
}
