//! Bearer tokens for machine clients: issued and recorded by the command line, listed,
//! revoked (refused by the running server within its refresh interval), and signed by
//! keys that rotate with an overlap.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

async fn issue(app: &TestApp, args: &[&str]) -> String {
    let mut all = vec!["token", "issue"];
    all.extend_from_slice(args);
    let (ok, out, err) = app.sandbox.cli(&all).await;
    assert!(ok, "token issue {args:?}: {err}");
    out.trim().to_string()
}

fn kid(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    let header: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_revoked_token_is_refused_and_the_list_shows_it() {
    let app = TestApp::spawn().await;
    let token = issue(&app, &["--role", "coordinator", "--territory", "16", "--label", "tableau de bord"]).await;
    let (status, _) = app.get("/api/v1/insights/queues?territory=16", &token).await;
    assert_eq!(status, 200);

    let (ok, out, err) = app.sandbox.cli(&["token", "list"]).await;
    assert!(ok, "{err}");
    let listed: Vec<Value> = serde_json::from_str(&out).unwrap();
    let entry = listed.iter().find(|t| t["label"] == "tableau de bord").expect("the token is listed");
    assert_eq!(entry["role"], "coordinator");
    assert_eq!(entry["scope"]["territories"][0], "16");
    assert!(entry["revoked_at"].is_null());
    assert!(!out.contains(&token), "the list never shows a token itself");
    let id = entry["id"].as_str().unwrap().to_string();

    let (ok, _, err) = app.sandbox.cli(&["token", "revoke", &id]).await;
    assert!(ok, "{err}");
    eventually("the revoked token to be refused", Duration::from_secs(30), || async {
        let (status, body) = app.get("/api/v1/insights/queues?territory=16", &token).await;
        (status == 401).then_some(body)
    })
    .await;
    let (_, out, _) = app.sandbox.cli(&["token", "list"]).await;
    let listed: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert!(listed.iter().any(|t| t["id"] == id.as_str() && !t["revoked_at"].is_null()));
    // Another token is untouched; an unknown id is an error.
    let (status, _) = app.get("/api/v1/insights/queues?territory=16", &app.coordinator(&["16"])).await;
    assert_eq!(status, 200);
    let (ok, _, err) = app.sandbox.cli(&["token", "revoke", "0193b1a0-0000-7000-8000-000000000000"]).await;
    assert!(!ok && err.contains("no token"), "{err}");
    // Issue and revocation are in the audit, for admins and the token's départements.
    let (_, audit) = app.get("/api/v1/accounts/audit?limit=100", &app.admin).await;
    let entries = audit["items"].as_array().unwrap();
    for action in ["token_issued", "token_revoked"] {
        let entry = entries.iter().find(|e| e["action"] == action && e.to_string().contains(&id));
        let entry = entry.unwrap_or_else(|| panic!("no {action} for {id}: {audit}"));
        assert_eq!(entry["actor"], "operator:cli", "{entry}");
    }
    let (_, theirs) = app.get("/api/v1/accounts/audit?limit=100", &app.coordinator(&["16"])).await;
    assert!(theirs.to_string().contains("token_issued"), "{theirs}");
    assert!(!token.is_empty() && !audit.to_string().contains(&token), "never the token itself");
    app.stop().await;
}

#[tokio::test]
async fn a_key_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_key() {
    let app = TestApp::spawn().await;
    let before = issue(&app, &["--role", "admin"]).await;
    let (ok, _, err) = app.sandbox.cli(&["token", "rotate-key", "--overlap", "1h"]).await;
    assert!(ok, "{err}");
    let after = issue(&app, &["--role", "admin"]).await;
    assert_ne!(kid(&before), kid(&after), "the new token names the new key");
    eventually("the server to accept the new key", Duration::from_secs(30), || async {
        let (status, _) = app.get("/api/v1/organisations", &after).await;
        (status == 200).then_some(())
    })
    .await;
    let (status, _) = app.get("/api/v1/organisations", &before).await;
    assert_eq!(status, 200, "a token signed before the rotation stays valid during the overlap");

    // A second rotation with no overlap retires both earlier keys at once.
    let (ok, _, err) = app.sandbox.cli(&["token", "rotate-key", "--overlap", "1s"]).await;
    assert!(ok, "{err}");
    let newest = issue(&app, &["--role", "admin"]).await;
    eventually("tokens of the retired keys to be refused", Duration::from_secs(30), || async {
        let (old, _) = app.get("/api/v1/organisations", &before).await;
        let (mid, _) = app.get("/api/v1/organisations", &after).await;
        let (new, _) = app.get("/api/v1/organisations", &newest).await;
        (old == 401 && mid == 401 && new == 200).then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn the_command_line_refuses_a_scope_that_does_not_fit_the_role() {
    let sandbox = Sandbox::new().await;
    for args in [
        vec!["token", "issue", "--role", "referrer"],
        vec!["token", "issue", "--role", "admin", "--territory", "16"],
        vec!["token", "issue", "--role", "coordinator", "--territory", "1"],
        vec!["token", "issue", "--role", "admin", "--ttl", "0s"],
    ] {
        let (ok, out, err) = sandbox.cli(&args).await;
        assert!(!ok, "{args:?} should fail");
        assert!(out.is_empty(), "no token printed for {args:?}");
        assert!(!err.is_empty());
    }
    sandbox.destroy().await;
}
