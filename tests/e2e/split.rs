//! Issue 22: one owner per table, enforced by the database. Every service runs as its own
//! process of the real binary, under its own role of `deploy/postgres/roles.sql`, behind
//! the real proxy (`deploy/proxy/Caddyfile`, run by Caddy): seven processes, one
//! database, one broker. A whole journey goes through them, and each role is refused on
//! every other service's schema.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tokio::process::{Child, Command};

use crate::signin::{browser, grant, page, sign_in};
use crate::support::oidc::{Agent, CLAIRE, KARIM, OidcProvider, SOPHIE};
use crate::support::smtp::{Captured, SmtpServer};
use crate::support::*;

pub const SERVICES: [&str; 7] = ["referrals", "directory", "matcher", "insights", "accounts", "notify", "web"];
/// The services that hold personal data, and only they, are given the master key.
const HOLD_PERSONAL_DATA: [&str; 2] = ["referrals", "accounts"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The URL of the sandbox's database for one of roles.sql's roles.
fn as_role(sandbox: &Sandbox, role: &str) -> String {
    format!("postgres://{role}@%2Fvar%2Frun%2Fpostgresql/{}", sandbox.database)
}

/// The deployment's proxy (`deploy/proxy/Caddyfile`, run by Caddy) on `port`, sending
/// each service's paths to the port of the same index in `ports` (in the order of
/// [`SERVICES`]), on loopback. Its files go to `dir`; killed when dropped.
pub fn proxy(port: u16, ports: &[u16], dir: &std::path::Path) -> Command {
    let mut caddy = Command::new("caddy");
    caddy
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(repo().join("deploy/proxy/Caddyfile"))
        .env("AIGUILLAGE_SITE_ADDRESS", format!("http://127.0.0.1:{port}"))
        .env("AIGUILLAGE_PROXY_ADMIN", "off")
        .env("XDG_DATA_HOME", dir)
        .env("XDG_CONFIG_HOME", dir)
        .env("HOME", dir)
        .kill_on_drop(true);
    for (service, port) in SERVICES.iter().zip(ports) {
        let upper = service.to_uppercase();
        caddy
            .env(format!("AIGUILLAGE_{upper}_HOST"), "127.0.0.1")
            .env(format!("AIGUILLAGE_{upper}_PORT"), port.to_string());
    }
    caddy
}

/// Processes killed when the test ends, whatever way it ends; their output is kept in
/// `logs` and printed when the test fails.
struct Processes {
    children: Vec<(String, Child)>,
    logs: PathBuf,
}

impl Processes {
    fn log(&self, name: &str) -> std::fs::File {
        std::fs::File::create(self.logs.join(format!("{name}.log"))).unwrap()
    }

    fn keep(&mut self, name: &str, child: Child) {
        self.children.push((name.to_string(), child));
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.start_kill();
        }
        if std::thread::panicking() {
            for (name, _) in &self.children {
                let log = std::fs::read_to_string(self.logs.join(format!("{name}.log"))).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- {name} (last lines)\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            }
        }
    }
}

#[tokio::test]
async fn seven_services_under_their_own_roles_carry_a_referral_from_submission_to_the_funnel() {
    let sandbox = Sandbox::new().await;
    apply_roles_sql(&sandbox).await;
    let oidc = OidcProvider::start().await;
    let smtp = SmtpServer::start(&[]).await;
    let secret = format!("split-{}", sandbox.namespace);
    let key = platform::auth::KeyRing::new(secret.as_bytes());

    let proxy_port = crate::crash::free_port();
    let base = format!("http://127.0.0.1:{proxy_port}");
    let ports: Vec<u16> = SERVICES.iter().map(|_| crate::crash::free_port()).collect();
    let logs = std::env::temp_dir().join(format!("aiguillage-split-{}", sandbox.namespace));
    std::fs::create_dir_all(&logs).unwrap();
    let mut processes = Processes { children: vec![], logs: logs.clone() };

    // The proxy, with the deployment's own Caddyfile.
    let log = processes.log("caddy");
    let child = proxy(proxy_port, &ports, &logs).stdout(log.try_clone().unwrap()).stderr(log).spawn().expect("caddy");
    processes.keep("caddy", child);

    for (service, port) in SERVICES.iter().zip(&ports) {
        let c = &sandbox.config;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_aiguillage"));
        cmd.args(["serve", "--services", service, "--listen", &format!("127.0.0.1:{port}")])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", as_role(&sandbox, &format!("aiguillage_{service}")))
            .env("AMQP_URL", &c.amqp_url)
            .env("AIGUILLAGE_NAMESPACE", &c.namespace)
            .env("AIGUILLAGE_TOKEN_SECRET", &secret)
            .env("AIGUILLAGE_API_URL", format!("{base}/"))
            .env("AIGUILLAGE_PUBLIC_URL", &base)
            .env("AIGUILLAGE_AUTH_REFRESH", "1s")
            .env("RUST_LOG", "info,sqlx=warn,lapin=warn,amq_protocol=warn");
        if HOLD_PERSONAL_DATA.contains(service) {
            cmd.env("AIGUILLAGE_MASTER_KEY", &sandbox.master_key);
        }
        match *service {
            "notify" => {
                cmd.env("AIGUILLAGE_SMTP_URL", smtp.url());
            }
            "web" => {
                cmd.env("AIGUILLAGE_OIDC_ISSUER", oidc.issuer())
                    .env("AIGUILLAGE_OIDC_CLIENT_ID", &oidc.client().id)
                    .env("AIGUILLAGE_OIDC_CLIENT_SECRET", &oidc.client().secret);
            }
            _ => {}
        }
        let log = processes.log(service);
        let child =
            cmd.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log).kill_on_drop(true).spawn().unwrap();
        processes.keep(service, child);
    }
    let client = reqwest::Client::new();
    for service in SERVICES {
        eventually(&format!("{service} to be ready behind the proxy"), Duration::from_secs(60), || async {
            let r = client.get(format!("{base}/readyz/{service}")).send().await.ok()?;
            (r.status() == 200).then_some(())
        })
        .await;
    }

    // The whole journey, through the proxy only.
    let app = TestApp::external(sandbox.alias(), base.clone(), key);
    let organisation = app.organisation("16").await;
    app.structure("lieu-split", structure("Médiathèque Séparée", 45.6500, 0.1550, &[AIDE], 5)).await;
    for args in [
        [
            "--email",
            "claire.dubois@ccas-angouleme.example",
            "--role",
            "referrer",
            "--organisation",
            &organisation.to_string(),
        ],
        ["--email", "karim.benali@regie-urbaine-angouleme.example", "--role", "mediator", "--structure", "lieu-split"],
        ["--email", "sophie.martin@departement-charente.example", "--role", "coordinator", "--territory", "16"],
    ] {
        grant(&app, &args).await;
    }
    let claire = browser();
    let karim = browser();
    let sophie = browser();
    for (b, who) in [(&claire, CLAIRE), (&karim, KARIM), (&sophie, SOPHIE)] {
        let done = sign_in(&app, &oidc, b, &Agent::Demo(who), "/").await;
        assert_eq!(done.status(), StatusCode::SEE_OTHER, "{who}: {}", done.text().await.unwrap());
    }
    // Notify learns the memberships from accounts' events (its role cannot read accounts).
    let pool = sandbox.pool().await;
    eventually("notify to know the three memberships", Duration::from_secs(30), || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notify.memberships").fetch_one(&pool).await.ok()?;
        (n == 3).then_some(())
    })
    .await;

    let referrer = app.referrer(organisation);
    let id = app.submit(&referrer, referral()).await;
    app.until_status(&id, &referrer, "offered").await;
    let offer = until_mail(&smtp, "karim.benali@regie-urbaine-angouleme.example", "Nouvelle proposition").await;
    assert!(offer.text().contains(&format!("{base}/propositions/{id}")), "{}", offer.text());
    let mediator = app.mediator("lieu-split");
    app.step(&id, "accept", &mediator, json!({})).await;
    app.step(&id, "contact", &mediator, json!({"kind": "first_contact"})).await;
    app.step(&id, "close", &mediator, json!({"outcome": "completed"})).await;
    let accepted = until_mail(&smtp, "claire.dubois@ccas-angouleme.example", "acceptée").await;
    let closed = until_mail(&smtp, "claire.dubois@ccas-angouleme.example", "clôturée").await;
    for mail in [&offer, &accepted, &closed] {
        let all = format!("{}\n{}", mail.eml, mail.text());
        for personal in ["Camille", "Essai", "+33612345678", "Dossier CAF"] {
            assert!(!all.contains(personal), "{personal:?} in {:?}", mail.subject());
        }
    }

    // The coordinator's funnel, a page of the web process reading insights through the proxy.
    let html = eventually("the funnel to count the closed referral", Duration::from_secs(30), || async {
        let (status, _, html) = page(&app, &sophie, "/territoire/entonnoir?du=2020-01-01&au=2099-12-31").await;
        (status == StatusCode::OK && html.contains("<th scope=\"row\">Clôturées</th><td>1</td>")).then_some(html)
    })
    .await;
    assert!(html.contains("<th scope=\"row\">Envoyées</th><td>1</td>"), "{html}");
    // The referrer reads the referral and its person on her page.
    let (status, _, html) = page(&app, &claire, &format!("/orientations/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Camille"), "the referrer sees the person");
    // An answer link's token never reaches the proxy's log (a made-up one: 404 page).
    let token = "jetonQuiNeDoitJamaisEtreJournalise0123456789";
    let (status, _, _) = page(&app, &browser(), &format!("/reponse/{token}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let log = eventually("the proxy to log the page, its token replaced", Duration::from_secs(10), || async {
        let log = std::fs::read_to_string(logs.join("caddy.log")).ok()?;
        log.contains("/reponse/***").then_some(log)
    })
    .await;
    assert!(!log.contains(token), "the token in the proxy's log");

    // Each role reaches its own schema (and the platform's keys), and no other.
    let schemas: Vec<(String, String)> = sqlx::query_as(
        "SELECT DISTINCT ON (schemaname) schemaname::text, tablename::text FROM pg_tables
         WHERE schemaname = ANY($1) AND tablename NOT LIKE '\\_%' ORDER BY schemaname, tablename",
    )
    .bind(SERVICES.to_vec())
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(schemas.len(), SERVICES.len(), "a table in each service's schema: {schemas:?}");
    for service in SERVICES {
        let role = format!("aiguillage_{service}");
        let conn = platform::db::pool(&as_role(&sandbox, &role), 1).unwrap();
        for (schema, table) in &schemas {
            let read = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT 1 FROM {schema}.{table} LIMIT 1")))
                .fetch_optional(&conn)
                .await;
            if schema == service {
                assert!(read.is_ok(), "{role} reads its own {schema}.{table}: {read:?}");
            } else {
                let err = read.expect_err(&format!("{role} must not read {schema}.{table}"));
                let code = err.as_database_error().and_then(|e| e.code()).map(|c| c.to_string());
                assert_eq!(code.as_deref(), Some("42501"), "{role} on {schema}.{table}: {err}");
            }
        }
        let keys = sqlx::query("SELECT count(*) FROM platform.tokens").fetch_one(&conn).await;
        assert!(keys.is_ok(), "{role} reads the revoked tokens: {keys:?}");
        let forge = sqlx::query("INSERT INTO platform.signing_keys (kid, secret) VALUES ('forged', 'x')")
            .execute(&conn)
            .await
            .expect_err("a service role may not add a signing key");
        assert!(forge.to_string().contains("permission denied"), "{forge}");
        conn.close().await;
    }
    pool.close().await;
    drop(processes);
    drop(app);
    sandbox.destroy().await;
}

async fn until_mail(smtp: &SmtpServer, to: &str, subject: &str) -> Captured {
    eventually(&format!("an e-mail {subject:?} to {to}"), Duration::from_secs(60), || async {
        smtp.messages().into_iter().find(|m| m.rcpt_tos.iter().any(|r| r == to) && m.subject().contains(subject))
    })
    .await
}
