//! The real binary, killed with SIGKILL while it works, loses and duplicates nothing.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;

use crate::support::*;

pub struct Server {
    child: tokio::process::Child,
    pub base: String,
}

impl Server {
    pub async fn start(sandbox: &Sandbox, port: u16, extra_env: &[(&str, String)]) -> Self {
        Self::start_services(sandbox, port, "all", extra_env).await
    }

    /// `serve --services {services}` (a comma-separated list, or `all`).
    pub async fn start_services(sandbox: &Sandbox, port: u16, services: &str, extra_env: &[(&str, String)]) -> Self {
        let c = &sandbox.config;
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_aiguillage"));
        cmd.args(["serve", "--services", services, "--listen", &format!("127.0.0.1:{port}")])
            .env("DATABASE_URL", &c.database_url)
            .env("AMQP_URL", &c.amqp_url)
            .env("AIGUILLAGE_NAMESPACE", &c.namespace)
            .env("AIGUILLAGE_MASTER_KEY", &sandbox.master_key)
            .env("AIGUILLAGE_DB_POOL_SIZE", "6")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start the aiguillage binary");
        let server = Self { child, base: format!("http://127.0.0.1:{port}") };
        let client = reqwest::Client::new();
        eventually("the server to be ready", Duration::from_secs(30), || async {
            let r = client.get(format!("{}/readyz", server.base)).send().await.ok()?;
            (r.status() == 200).then_some(())
        })
        .await;
        server
    }

    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Waits until the process dies by itself (an injected fault).
    pub async fn wait_for_death(&mut self, timeout: Duration) {
        tokio::time::timeout(timeout, self.child.wait()).await.expect("the injected fault never fired").unwrap();
    }

    /// SIGTERM, then wait for a graceful exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
        tokio::time::timeout(Duration::from_secs(40), self.child.wait()).await.expect("graceful exit").unwrap()
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn a_server_killed_during_a_burst_of_submissions_offers_each_referral_exactly_once() {
    let sandbox = Sandbox::new().await;
    let port = free_port();
    let mut server = Server::start(&sandbox, port, &[]).await;
    let key = sandbox.key().await;
    let admin = key.issue(
        &platform::auth::Claims::new(contracts::Role::Admin, platform::auth::Scope::All, chrono::Duration::hours(1))
            .unwrap(),
    );
    let client = reqwest::Client::new();
    let base = server.base.clone();
    let org: serde_json::Value = client
        .post(format!("{base}/api/v1/organisations"))
        .bearer_auth(&admin)
        .json(&json!({"name": "CCAS", "kind": "social_service", "territory": "16"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let referrer = key.issue(
        &platform::auth::Claims::new(
            contracts::Role::Referrer,
            platform::auth::Scope::Organisation(org["id"].as_str().unwrap().parse().unwrap()),
            chrono::Duration::hours(1),
        )
        .unwrap(),
    );
    for (id, lat) in [("a", 45.65), ("b", 45.66), ("c", 45.67)] {
        let r = client
            .put(format!("{base}/api/v1/structures/{id}"))
            .bearer_auth(&admin)
            .json(&structure(id, lat, 0.15, &[AIDE], 100))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    // 80 submissions from 8 concurrent clients; the server dies in the middle (once 20
    // went through).
    let (progress, mut went_through) = tokio::sync::watch::channel(0usize);
    let progress = std::sync::Arc::new(progress);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (client, base, referrer) = (client.clone(), base.clone(), referrer.clone());
        let progress = std::sync::Arc::clone(&progress);
        tasks.push(tokio::spawn(async move {
            let mut ok = Vec::new();
            for _ in 0..10 {
                if let Ok(r) = client
                    .post(format!("{base}/api/v1/referrals"))
                    .bearer_auth(&referrer)
                    .json(&referral())
                    .send()
                    .await
                    && r.status() == 201
                {
                    let v: serde_json::Value = r.json().await.unwrap_or_default();
                    ok.push(v["id"].as_str().unwrap_or_default().to_string());
                    progress.send_modify(|n| *n += 1);
                }
            }
            ok
        }));
    }
    tokio::time::timeout(Duration::from_secs(60), went_through.wait_for(|n| *n >= 20))
        .await
        .expect("20 submissions within a minute")
        .unwrap();
    server.kill().await;
    let mut accepted = Vec::new();
    for t in tasks {
        accepted.extend(t.await.unwrap());
    }
    assert!(!accepted.is_empty(), "no submission got through before the kill");

    let mut server = Server::start(&sandbox, port, &[]).await;
    let pool = sandbox.pool().await;
    let (referrals, offered, held): (i64, i64, i64) =
        eventually("every referral offered once", Duration::from_secs(60), || async {
            let counts: (i64, i64, i64) = sqlx::query_as(
                "SELECT (SELECT count(*) FROM referrals.referrals),
                    (SELECT count(*) FROM referrals.referrals WHERE status = 'offered' AND attempts = 1),
                    (SELECT count(*) FROM matcher.reservations WHERE state = 'held')",
            )
            .fetch_one(&pool)
            .await
            .ok()?;
            (counts.0 == counts.1 && counts.1 == counts.2).then_some(counts)
        })
        .await;
    assert!(referrals >= accepted.len() as i64);
    assert_eq!(offered, held);
    for id in &accepted {
        let status: String = sqlx::query_scalar("SELECT status FROM referrals.referrals WHERE id = $1::uuid")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(status, "offered", "{id}");
    }
    let usage: i64 = sqlx::query_scalar("SELECT COALESCE(sum(used), 0)::bigint FROM matcher.capacity_usage")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(usage, held, "capacity used must equal the offers held");
    // Rows claimed by the killed relay are published once their claim lapses.
    eventually("the outboxes to drain", Duration::from_secs(60), || async {
        let backlog: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM referrals.outbox) + (SELECT count(*) FROM matcher.outbox)
                  + (SELECT count(*) FROM directory.outbox)",
        )
        .fetch_one(&pool)
        .await
        .ok()?;
        (backlog == 0).then_some(())
    })
    .await;
    pool.close().await;
    let status = server.terminate().await;
    assert!(status.success(), "graceful exit on SIGTERM: {status}");
    sandbox.destroy().await;
}
