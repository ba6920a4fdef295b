//! `aiguillage demo`: a ready-to-try territory. It migrates, loads the real Charente
//! directory (188 places, ANCT 2023) with the default capacity, creates a demo referrer
//! organisation, prints one token per role, and serves everything.

use contracts::events::{Point, Structure};
use contracts::{Language, Need, OrganisationId, OrganisationKind, ReferralMode, Role, StructureId, Urgency};
use matcher::domain::engine::{self, Demand};
use matcher::domain::index::{Index, IndexedStructure};
use platform::Config;
use platform::auth::{Claims, Scope, TokenKey};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The demo organisation keeps the same id from one run to the next.
pub const DEMO_ORGANISATION: OrganisationId =
    OrganisationId::from_uuid(Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0016));

pub async fn run(mut config: Config, listen: Option<String>) -> anyhow::Result<()> {
    let key_note = ensure_master_key(&mut config)?;
    let pool = crate::migrate(&config).await?;
    let report =
        directory::import::import(&pool, directory::SAMPLE_DIRECTORY, None, None, config.default_weekly_capacity)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    eprintln!(
        "directory: {} places read, {} created, {} updated, {} unchanged, {} rejected",
        report.received,
        report.created,
        report.updated,
        report.unchanged,
        report.rejected.len()
    );
    directory::ensure_organisation(
        &pool,
        DEMO_ORGANISATION,
        "CCAS d'Angoulême (démo)",
        OrganisationKind::SocialService,
        "16",
    )
    .await?;
    let nearest = example_structure(directory::structures_of(&pool, "16").await?, config.max_distance_km);
    let key = TokenKey::load(&pool, config.token_secret.as_deref()).await?;
    let agents = match std::env::var("AIGUILLAGE_DEMO_AGENTS") {
        Ok(path) if !path.trim().is_empty() => invite_demo_agents(&pool, &config, &path).await?,
        _ => vec![],
    };
    pool.close().await;

    let ttl = chrono::Duration::days(30);
    let token = |role, scope| Claims::new(role, scope, ttl).map(|c| key.issue(&c)).map_err(|e| anyhow::anyhow!("{e}"));
    let listen = listen.unwrap_or_else(|| config.listen.clone());
    let listener =
        tokio::net::TcpListener::bind(&listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let base = format!("http://{}", listener.local_addr()?);
    println!("Aiguillage demo on {base} (namespace {})", config.namespace);
    if let Some(note) = key_note {
        println!("{note}");
    }
    println!();
    println!("export BASE={base}");
    println!("export ADMIN={}", token(Role::Admin, Scope::All)?);
    println!(
        "export REFERRER={}   # {} ",
        token(Role::Referrer, Scope::Organisation(DEMO_ORGANISATION))?,
        DEMO_ORGANISATION
    );
    println!(
        "export COORDINATOR={}   # territory 16",
        token(Role::Coordinator, Scope::Territories(vec!["16".parse()?]))?
    );
    if let Some((id, name)) = &nearest {
        println!("export MEDIATOR={}   # {name} ({id})", token(Role::Mediator, Scope::Structure(id.clone()))?);
    }
    println!();
    println!("Try:");
    println!(
        r#"  curl -s -X POST $BASE/api/v1/referrals -H "Authorization: Bearer $REFERRER" -H 'Content-Type: application/json' -d '{{"person":{{"first_name":"Camille","last_name":"Martin","phone":"06 12 34 56 78","commune_code":"16015"}},"needs":["aide_demarches_administratives"],"consent":{{"obtained":true,"method":"oral"}}}}'"#
    );
    println!(r#"  curl -s $BASE/api/v1/referrals?status=offered -H "Authorization: Bearer $MEDIATOR""#);
    println!(r#"  curl -s "$BASE/api/v1/insights/funnel?territory=16" -H "Authorization: Bearer $COORDINATOR""#);
    println!();
    if config.oidc_value("AIGUILLAGE_OIDC_ISSUER").is_some() {
        let public = config.public_url.clone().unwrap_or_else(|| base.clone());
        println!("Sign in: open {public}/connexion, click \"S'identifier avec ProConnect\", and pick an agent:");
        for (name, what) in &agents {
            println!("  {name:<18} {what}");
        }
        println!();
    }

    let shutdown = CancellationToken::new();
    crate::cancel_on_signals(shutdown.clone());
    crate::run(config, &crate::Service::ALL, listener, shutdown).await
}

/// Grants the demo agents of the development provider (`deploy/dev/oidc/agents.json`)
/// their memberships, at their first sign-in. Returns (name, what) for the banner.
async fn invite_demo_agents(pool: &sqlx::PgPool, config: &Config, path: &str) -> anyhow::Result<Vec<(String, String)>> {
    let (master, previous) = config.master_keys()?;
    let vault = accounts::open_vault(pool, master, previous).await?;
    #[derive(serde::Deserialize)]
    struct File {
        agents: Vec<DemoAgent>,
    }
    #[derive(serde::Deserialize)]
    struct DemoAgent {
        given_name: String,
        usual_name: String,
        email: String,
        label: String,
        membership: Option<serde_json::Value>,
    }
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {path}: {e}"))?;
    let file: File = serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
    let mut banner = Vec::new();
    for agent in file.agents {
        banner.push((format!("{} {}", agent.given_name, agent.usual_name), agent.label.clone()));
        let Some(m) = agent.membership else { continue };
        let grant = match m["role"].as_str() {
            Some("admin") => accounts::domain::Grant::Admin,
            Some("dpo") => accounts::domain::Grant::Dpo,
            Some("referrer") => accounts::domain::Grant::Referrer(DEMO_ORGANISATION),
            Some("mediator") => match m["structure_id"].as_str() {
                Some(id) => accounts::domain::Grant::Mediator(id.parse()?),
                None => continue,
            },
            Some("coordinator") => accounts::domain::Grant::Coordinator(
                m["territories"].as_array().into_iter().flatten().filter_map(|t| t.as_str()?.parse().ok()).collect(),
            ),
            _ => continue,
        };
        // Once: a second run of the demo finds the invitation or the account (by the
        // address's blind index).
        if !accounts::service::known_email(pool, &vault, &agent.email).await? {
            accounts::service::grant_by_email(pool, &vault, &agent.email, &grant, "demo").await?;
        }
    }
    Ok(banner)
}

/// The structure the example referral (Angoulême, help with paperwork) goes to, picked
/// by the matching engine itself, so the printed mediator token sees it arrive. A token is
/// not an account: the matcher counts no mediator there, so the place is one that the
/// directory gives a public e-mail address (53 of the 188 have one; the others are
/// offered referrals once a mediator of theirs signs in, as Karim's is).
fn example_structure(structures: Vec<Structure>, max_distance_km: f64) -> Option<(StructureId, String)> {
    let angouleme = geo::communes().by_code("16015")?;
    let demand = Demand {
        location: Point { lat: angouleme.location.lat, lon: angouleme.location.lon },
        needs: vec![Need::AideDemarchesAdministratives],
        modes: vec![ReferralMode::InPerson],
        languages: vec![Language::french()],
        accessibility: vec![],
        max_distance_km,
        urgency: Urgency::Normal,
    };
    let index = Index::build(structures.iter().map(IndexedStructure::from));
    let feasible = engine::feasible(&index, &demand, &Default::default());
    let (candidates, _) = engine::rank(&feasible, |_| 0, Some(contracts::week::paris_local(chrono::Utc::now())));
    candidates.into_iter().next().map(|c| (c.structure_id, c.name))
}

/// Without a master key in the environment, the demo keeps one in a file outside the
/// repository (`$XDG_CACHE_HOME/aiguillage/master.key`, else `~/.cache/…`), made on the
/// first run and reused after, so the demo's database stays readable between runs.
/// Returns the line that says where it is.
fn ensure_master_key(config: &mut Config) -> anyhow::Result<Option<String>> {
    if config.master_keys.is_some() {
        return Ok(None);
    }
    let dir = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(cache) => std::path::PathBuf::from(cache),
        None => std::path::PathBuf::from(
            std::env::var_os("HOME").ok_or_else(|| anyhow::anyhow!("set HOME or AIGUILLAGE_MASTER_KEY"))?,
        )
        .join(".cache"),
    }
    .join("aiguillage");
    let path = dir.join("master.key");
    let made = if path.exists() {
        false
    } else {
        std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        write_private(&path, &platform::vault::MasterKey::generate_base64())
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        true
    };
    let text = std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let master = platform::vault::MasterKey::from_base64(&text, "AIGUILLAGE_MASTER_KEY_FILE")?;
    config.master_keys = Some((master, None));
    Ok(Some(format!(
        "master key: {} ({}; AIGUILLAGE_MASTER_KEY_FILE={} reads the same data)",
        path.display(),
        if made { "made now" } else { "kept from a previous run" },
        path.display()
    )))
}

/// Writes a file only its owner can read.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}
