//! `aiguillage`: migrate, serve, issue tokens, import the directory, run the demo, and
//! look after dead letters.

use std::process::ExitCode;

use aiguillage::{Service, parse_services};
use clap::{Parser, Subcommand};
use contracts::{OrganisationId, Role, StructureId, Territory};
use platform::Config;
use platform::auth::{Claims, KeyRing, Scope};
use tokio_util::sync::CancellationToken;

/// mimalloc instead of glibc's allocator: under load, glibc's malloc and free were about
/// a fifth of this process's CPU samples (per-message JSON, SQL rows, HTTP bodies).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "aiguillage",
    version,
    about = "Routes digital-mediation referrals to the structure that can help, and tracks them until closed."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Creates the database if it does not exist, then every service's objects (idempotent).
    Migrate,
    /// Runs services until SIGTERM/SIGINT.
    Serve {
        /// `all`, or a comma-separated list of referrals, directory, matcher, insights, accounts, notify.
        #[arg(long, default_value = "all", value_parser = parse_services)]
        services: std::vec::Vec<Service>,
        /// Listen address (default: AIGUILLAGE_LISTEN, else 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Bearer tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Imports into the directory and prints the report: a Mednum JSON or CSV file, or
    /// data·inclusion's structures file and services file (JSON or CSV), given together.
    Import {
        #[arg(required = true, num_args = 1..=2, value_name = "FILE")]
        files: Vec<std::path::PathBuf>,
        /// Only accept records of these départements (as a coordinator would).
        #[arg(long = "territory")]
        territories: Vec<String>,
        /// Stored as the `source` of every imported place (default: the file's own).
        #[arg(long)]
        source: Option<String>,
    },
    /// Migrates, loads the Charente directory, prints ready-to-use tokens, and serves.
    Demo {
        #[arg(long)]
        listen: Option<String>,
    },
    /// Agents' accounts and memberships.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Prints the OpenAPI 3.1 document that `GET /api/v1/openapi.json` serves.
    Openapi,
    /// Dead-lettered messages.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Runs the retention purge now (it also runs daily): removes the personal data of
    /// referrals inactive for longer than AIGUILLAGE_RETENTION, and prints what it did.
    Purge {
        /// Only count what would be purged.
        #[arg(long)]
        dry_run: bool,
    },
    /// The data keys that seal personal data.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The audit of access to personal data.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Replays one what-if simulation read from stdin (JSON), in the background, and
    /// writes its answer to stdout: what `serve` starts for each simulation.
    #[command(name = matcher::SIMULATION_WORKER_COMMAND, hide = true)]
    SimulationWorker,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Adds a data key that seals from now on and re-wraps every data key under the
    /// current master key (moving them off AIGUILLAGE_MASTER_KEY_PREVIOUS). Online:
    /// running servers keep reading everything and pick the new key up.
    Rotate,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Prints the audit, oldest first, as JSON.
    List {
        #[arg(long)]
        referral: Option<uuid::Uuid>,
        /// An account or token id.
        #[arg(long)]
        agent: Option<uuid::Uuid>,
        /// RFC 3339 (2026-12-01T00:00:00Z) or a date (2026-12-01).
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: i64,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Prints one bearer token, alone on stdout.
    Issue {
        #[arg(long)]
        role: Role,
        #[arg(long)]
        organisation: Option<OrganisationId>,
        #[arg(long)]
        structure: Option<StructureId>,
        #[arg(long = "territory")]
        territories: Vec<Territory>,
        /// Validity, such as 30d or 12h.
        #[arg(long, default_value = "90d")]
        ttl: String,
        /// What the token is for, shown by `token list`.
        #[arg(long)]
        label: Option<String>,
    },
    /// Lists the issued bearer tokens (id, role, scope, expiry, revocation), never the tokens.
    List,
    /// Revokes a token: every replica refuses it within a minute.
    Revoke { id: uuid::Uuid },
    /// Adds a signing key that signs from now on; tokens signed with the previous keys
    /// stay valid for the overlap.
    RotateKey {
        #[arg(long, default_value = "7d")]
        overlap: String,
    },
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Gives the agent with this e-mail address a membership now, or at their first
    /// sign-in (this is how the first admin is made).
    Grant {
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: Role,
        #[arg(long)]
        organisation: Option<OrganisationId>,
        #[arg(long)]
        structure: Option<StructureId>,
        #[arg(long = "territory")]
        territories: Vec<Territory>,
    },
    /// Lists accounts and their memberships (e-mail addresses are shown to the operator).
    List,
    /// Removes memberships of the agent with this e-mail address (all, or one role's);
    /// takes effect on the agent's next request.
    Revoke {
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: Option<Role>,
    },
    /// Lists the membership requests waiting for a decision (with who asked).
    Requests,
    /// Approves a membership request: the agent gets the membership on their next request.
    Approve { id: uuid::Uuid },
    /// Refuses a membership request.
    Refuse {
        id: uuid::Uuid,
        /// Told to the agent.
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Shows each dead letter's type, id, reason and first failure time.
    List {
        #[arg(long)]
        service: Option<String>,
    },
    /// Puts dead letters back into their service's queue.
    Replay {
        #[arg(long)]
        service: Option<String>,
        #[arg(long)]
        id: Option<String>,
    },
}

fn main() -> ExitCode {
    platform::telemetry::init();
    let cli = Cli::parse();
    if let Command::SimulationWorker = cli.command {
        return match matcher::simulation_worker() {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: the simulation: {err:#}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(err) => {
            eprintln!("error: could not start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Openapi = cli.command {
        println!("{}", serde_json::to_string_pretty(&aiguillage::openapi::document())?);
        return Ok(());
    }
    let mut config = Config::from_env()?;
    // Simulations run in this same program, in the background (see `matcher`).
    config.simulation_worker = std::env::current_exe().ok();
    match cli.command {
        Command::Migrate => {
            let pool = aiguillage::migrate(&config).await?;
            pool.close().await;
            eprintln!("migrated");
            Ok(())
        }
        Command::Serve { services, listen } => {
            let listen = listen.unwrap_or_else(|| config.listen.clone());
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
            let shutdown = CancellationToken::new();
            aiguillage::cancel_on_signals(shutdown.clone());
            aiguillage::run(config, &services, listener, shutdown).await
        }
        Command::Token { command } => token(config, command).await,
        Command::Account { command } => account(config, command).await,
        Command::Import { files, territories, source } => {
            let read = |file: &std::path::PathBuf| {
                std::fs::read(file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))
            };
            let contents = files.iter().map(read).collect::<anyhow::Result<Vec<_>>>()?;
            let pool = aiguillage::migrate(&config).await?;
            let territories = (!territories.is_empty()).then_some(territories);
            let options = directory::import::Options { territories: territories.as_deref(), source: source.as_deref() };
            let capacity = config.default_weekly_capacity;
            let report = match contents.as_slice() {
                [first, second] => {
                    directory::import::import_data_inclusion(&pool, first, second, options, capacity).await
                }
                [file] => directory::import::import_with(&pool, file, None, options, capacity).await,
                _ => anyhow::bail!("give one file, or a structures file and a services file"),
            }
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            pool.close().await;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::Demo { listen } => aiguillage::demo::run(config, listen).await,
        Command::Openapi | Command::SimulationWorker => Ok(()),
        Command::Dlq { command } => dlq(config, command).await,
        Command::Purge { dry_run } => {
            let pool = aiguillage::migrate(&config).await?;
            let report = referrals::privacy::purge(&pool, config.retention, dry_run).await?;
            let accounts = accounts::privacy::purge(&pool, config.account_retention, dry_run).await?;
            if !dry_run {
                let mut conn = pool.acquire().await?;
                referrals::privacy::record_operator(&mut conn, contracts::AuditAction::Purge, None).await?;
            }
            pool.close().await;
            eprintln!(
                "{} {} referral(s) inactive since before {}",
                if dry_run { "would purge" } else { "purged" },
                report.referrals,
                report.cutoff.format("%Y-%m-%d %H:%M UTC")
            );
            eprintln!(
                "{} {} account(s) without a sign-in since before {}",
                if dry_run { "would purge" } else { "purged" },
                accounts.accounts,
                accounts.cutoff.format("%Y-%m-%d %H:%M UTC")
            );
            // The referrals' report as before, with the accounts' beside it.
            let mut out = serde_json::to_value(&report)?;
            out["accounts"] = serde_json::to_value(&accounts)?;
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
        Command::Keys { command: KeysCommand::Rotate } => {
            let (master, previous) = config.master_keys()?;
            let pool = aiguillage::migrate(&config).await?;
            // Every schema holding personal data; the first keys exist before a rotation
            // adds one.
            let mut rotations = Vec::new();
            for schema in [referrals::SCHEMA, accounts::SCHEMA] {
                platform::vault::Vault::open(&pool, schema, master.clone(), previous.clone()).await?;
                rotations.push(platform::vault::rotate(&pool, schema, &master, previous.as_ref()).await?);
            }
            let mut conn = pool.acquire().await?;
            referrals::privacy::record_operator(&mut conn, contracts::AuditAction::KeysRotated, None).await?;
            accounts::service::record(&mut conn, "keys_rotated", OPERATOR, None, None, &[], serde_json::json!({}))
                .await?;
            drop(conn);
            pool.close().await;
            for rotation in &rotations {
                eprintln!(
                    "{}: data key {} seals from now on; {} key(s) re-wrapped under master key {}; running servers pick it up within {} s",
                    rotation.schema,
                    rotation.new_key,
                    rotation.rewrapped,
                    rotation.master_key,
                    config.auth_refresh.as_secs()
                );
            }
            // The referrals' rotation as before, with the accounts' beside it.
            let mut out = serde_json::to_value(&rotations[0])?;
            out["accounts"] = serde_json::to_value(&rotations[1])?;
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
        Command::Audit { command: AuditCommand::List { referral, agent, since, limit } } => {
            anyhow::ensure!((1..=100_000).contains(&limit), "--limit: between 1 and 100000");
            let from = match since.as_deref() {
                None => None,
                Some(s) => Some(parse_since(s)?),
            };
            let pool = aiguillage::migrate(&config).await?;
            let mut conn = pool.acquire().await?;
            let filter =
                referrals::privacy::AuditFilter { referral_id: referral, agent, from, to: None, after: None, limit };
            let rows = referrals::privacy::audit(&mut conn, &filter).await?;
            let items: Vec<_> = rows.into_iter().map(referrals::privacy::AuditRow::entry).collect();
            drop(conn);
            pool.close().await;
            println!("{}", serde_json::to_string_pretty(&items)?);
            Ok(())
        }
    }
}

fn parse_since(s: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s.trim()) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let day = chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| anyhow::anyhow!("--since: expected 2026-12-01T00:00:00Z or 2026-12-01, got {s:?}"))?;
    Ok(day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
}

async fn token(config: Config, command: TokenCommand) -> anyhow::Result<()> {
    let pool = aiguillage::migrate(&config).await?;
    match command {
        TokenCommand::Issue { role, organisation, structure, territories, ttl, label } => {
            let scope = Scope::for_role(role, organisation, structure, territories)
                .map_err(|e| anyhow::anyhow!("{e} (--organisation, --structure, --territory)"))?;
            let ttl = platform::config::parse_duration(&ttl).map_err(|e| anyhow::anyhow!("--ttl: {e}"))?;
            let claims =
                Claims::new(role, scope, chrono::Duration::from_std(ttl)?).map_err(|e| anyhow::anyhow!("{e}"))?;
            let ring = KeyRing::load(&pool, config.token_secret.as_deref()).await?;
            let token = platform::auth::issue_recorded(&pool, &ring, &claims, label.as_deref()).await?;
            let territories = claims.territories.clone();
            let detail = serde_json::json!({ "token_id": claims.sub, "role": role, "scope": claims.scope_json(),
                                             "label": label, "kid": ring.current_kid() });
            audit(&pool, "token_issued", &territories, detail).await?;
            eprintln!(
                "token {} ({role}), expires {}",
                claims.sub,
                chrono::DateTime::from_timestamp(claims.exp, 0).unwrap_or_default()
            );
            println!("{token}");
        }
        TokenCommand::List => {
            println!("{}", serde_json::to_string_pretty(&platform::auth::list_tokens(&pool).await?)?);
        }
        TokenCommand::Revoke { id } => {
            anyhow::ensure!(
                platform::auth::revoke_token(&pool, id).await?,
                "no token {id} (see `aiguillage token list`)"
            );
            audit(&pool, "token_revoked", &[], serde_json::json!({ "token_id": id })).await?;
            eprintln!(
                "revoked {id}: refused within {} s on every running server (AIGUILLAGE_AUTH_REFRESH)",
                config.auth_refresh.as_secs()
            );
        }
        TokenCommand::RotateKey { overlap } => {
            anyhow::ensure!(
                config.token_secret.is_none(),
                "AIGUILLAGE_TOKEN_SECRET is set: rotate by changing that secret, the database keys are not used"
            );
            let overlap = platform::config::parse_duration(&overlap).map_err(|e| anyhow::anyhow!("--overlap: {e}"))?;
            let kid = KeyRing::rotate(&pool, overlap).await?;
            eprintln!("new signing key {kid}; the previous keys are accepted for {}", humantime_of(overlap));
        }
    }
    pool.close().await;
    Ok(())
}

async fn account(config: Config, command: AccountCommand) -> anyhow::Result<()> {
    let pool = aiguillage::migrate(&config).await?;
    // Agents' names and addresses are sealed: the commands that read or write them open
    // the accounts' vault (and so need the master key).
    let vault = || async {
        let (master, previous) = config.master_keys()?;
        accounts::open_vault(&pool, master, previous).await
    };
    match command {
        AccountCommand::Grant { email, role, organisation, structure, territories } => {
            let grant = accounts::domain::Grant::from_parts(role, organisation, structure, territories)
                .map_err(|e| anyhow::anyhow!("{e} (--organisation, --structure, --territory)"))?;
            match accounts::service::grant_by_email(&pool, &vault().await?, &email, &grant, OPERATOR).await? {
                accounts::service::Granted::Now { account_id, membership_id: Some(id) } => {
                    eprintln!("membership {id} ({role}) given to account {account_id}")
                }
                accounts::service::Granted::Now { account_id, membership_id: None } => {
                    eprintln!("account {account_id} already holds this membership")
                }
                accounts::service::Granted::Invited { invitation_id } => {
                    eprintln!("invitation {invitation_id}: the membership is given at that address's first sign-in")
                }
            }
        }
        AccountCommand::List => {
            println!("{}", serde_json::to_string_pretty(&accounts::service::list(&pool, &vault().await?).await?)?);
        }
        AccountCommand::Revoke { email, role } => {
            let removed = accounts::service::revoke_by_email(&pool, &vault().await?, &email, role, OPERATOR).await?;
            eprintln!("{removed} membership(s) removed; they take effect on the agent's next request");
        }
        AccountCommand::Requests => {
            println!(
                "{}",
                serde_json::to_string_pretty(&accounts::service::pending_requests(&pool, &vault().await?).await?)?
            );
        }
        AccountCommand::Approve { id } => {
            decide(&pool, &vault().await?, id, accounts::service::Decision::Approve).await?;
            eprintln!("request {id} approved");
        }
        AccountCommand::Refuse { id, reason } => {
            if reason.as_deref().is_some_and(|r| r.chars().count() > 500 || r.chars().any(char::is_control)) {
                anyhow::bail!("--reason: at most 500 characters, no control characters");
            }
            decide(&pool, &vault().await?, id, accounts::service::Decision::Refuse { reason }).await?;
            eprintln!("request {id} refused");
        }
    }
    pool.close().await;
    Ok(())
}

async fn decide(
    pool: &sqlx::PgPool,
    vault: &platform::vault::Vault,
    id: uuid::Uuid,
    decision: accounts::service::Decision,
) -> anyhow::Result<()> {
    use accounts::service::DecideError;
    let manager = accounts::domain::Manager::Admin;
    match accounts::service::decide(pool, vault, id, &decision, &manager, OPERATOR, None).await {
        Ok(_) => Ok(()),
        Err(DecideError::NotFound) => anyhow::bail!("no membership request {id}"),
        Err(err) => Err(err.into()),
    }
}

/// Records what the command line did in the audit (`GET /api/v1/accounts/audit`).
async fn audit(
    pool: &sqlx::PgPool,
    action: &str,
    territories: &[contracts::Territory],
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    accounts::service::record(&mut conn, action, OPERATOR, None, None, territories, detail).await?;
    Ok(())
}

/// Who the command line acts as, in the audit.
const OPERATOR: &str = "operator:cli";

fn humantime_of(d: std::time::Duration) -> String {
    format!("{} h", d.as_secs() / 3600)
}

async fn dlq(config: Config, command: DlqCommand) -> anyhow::Result<()> {
    let topology = aiguillage::topology(&config.namespace);
    let known: Vec<&str> = topology.services.iter().map(|s| s.service).collect();
    let check = |s: &Option<String>| -> anyhow::Result<()> {
        match s {
            Some(s) if !known.contains(&s.as_str()) => {
                anyhow::bail!("unknown service {s}; services with a queue: {}", known.join(", "))
            }
            _ => Ok(()),
        }
    };
    let connection = lapin_connect(&config.amqp_url).await?;
    match command {
        DlqCommand::List { service } => {
            check(&service)?;
            let letters = bus::dlq::list(&connection, &topology, service.as_deref()).await?;
            println!("{}", serde_json::to_string_pretty(&letters)?);
        }
        DlqCommand::Replay { service, id } => {
            check(&service)?;
            let replayed = bus::dlq::replay(&connection, &topology, service.as_deref(), id.as_deref()).await?;
            eprintln!("replayed {} message(s)", replayed.len());
            println!("{}", serde_json::to_string_pretty(&replayed)?);
        }
    }
    Ok(())
}

async fn lapin_connect(url: &str) -> anyhow::Result<bus::Connection> {
    bus::connect(url).await
}
