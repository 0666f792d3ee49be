//! `credits`: one binary for every part of the service (SPEC section 7).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use credits_domain::operator::Role;
use credits_domain::ports::OperatorStore;
use credits_server::app::{self, Services};
use credits_server::settings::Settings;
use credits_server::telemetry;

#[derive(Parser)]
#[command(name = "credits", version, about = "The credits and billing service")]
struct Cli {
    /// Where the configuration files are (default.toml, <CREDITS_ENV>.toml).
    #[arg(long, env = "CREDITS_CONFIG_DIR", default_value = "config", global = true)]
    config_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API (public, webhooks, admin) with the background workers.
    Serve {
        /// Run the HTTP API alone; run `credits worker` elsewhere.
        #[arg(long)]
        no_workers: bool,
    },
    /// Run the background workers alone.
    Worker,
    /// Apply pending database migrations.
    Migrate,
    /// Check the ledger's invariants for every account; exit 1 listing the broken ones.
    Check,
    /// Print the OpenAPI document (the one served at /openapi.json).
    Openapi,
    /// Exit 0 if the service at ADDR answers GET PATH (/readyz, or /healthz) with 200 (a
    /// container health check).
    Ready {
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        #[arg(long, default_value = "/readyz", value_parser = ["/readyz", "/healthz"])]
        path: String,
    },
    /// Manage operators.
    Operator {
        #[command(subcommand)]
        command: OperatorCommand,
    },
    /// Reports for finance, straight from the database (no operator token needed).
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
}

#[derive(Subcommand)]
enum ReportCommand {
    /// The liability report (SPEC section 10) as of --at (RFC 3339; default now).
    Liability {
        #[arg(long)]
        at: Option<String>,
        #[arg(long, default_value = "json", value_parser = ["json", "csv"])]
        format: String,
    },
}

#[derive(Subcommand)]
enum OperatorCommand {
    /// Create an operator and print its token, once.
    Create {
        #[arg(long)]
        name: String,
        /// sales, support or admin
        #[arg(long)]
        role: String,
    },
    /// List the operators: id, name, role, created, revoked (never a token).
    List,
    /// Revoke an operator's token (an id from `list`): refused from the next request on.
    Revoke { id: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Ready { addr, path } = &cli.command {
        return match ready(addr, path) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("credits ready: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Command::Openapi = cli.command {
        use utoipa::OpenApi;
        println!("{}", credits_api::openapi::ApiDoc::openapi().to_pretty_json().expect("the document serializes"));
        return ExitCode::SUCCESS;
    }
    let env_name = std::env::var("CREDITS_ENV").ok();
    let settings = match Settings::load(&cli.config_dir, env_name.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("credits: {e}");
            return ExitCode::from(2);
        }
    };
    // The commands print their results on stdout; their logs go to stderr.
    let logs_to_stderr =
        matches!(cli.command, Command::Migrate | Command::Check | Command::Operator { .. } | Command::Report { .. });
    telemetry::init(settings.log.format, &settings.log.level, logs_to_stderr);
    let result = match cli.command {
        Command::Serve { no_workers } => serve(&settings, !no_workers),
        Command::Worker => worker(&settings),
        Command::Migrate => migrate(&settings),
        Command::Check => check(&settings),
        Command::Openapi | Command::Ready { .. } => unreachable!("handled before the settings are read"),
        Command::Operator { command: OperatorCommand::Create { name, role } } => {
            create_operator(&settings, &name, &role)
        }
        Command::Operator { command: OperatorCommand::List } => list_operators(&settings),
        Command::Report { command: ReportCommand::Liability { at, format } } => {
            report_liability(&settings, at.as_deref(), &format)
        }
        Command::Operator { command: OperatorCommand::Revoke { id } } => revoke_operator(&settings, &id),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!(error = %message, "credits stopped");
            eprintln!("credits: {message}");
            ExitCode::FAILURE
        }
    }
}

fn serve(settings: &Settings, with_workers: bool) -> Result<(), String> {
    let bound = app::bind(settings).map_err(|e| e.to_string())?;
    let services = Services::build(&bound.settings).map_err(|e| e.to_string())?;
    let settings = &bound.settings;
    if settings.database.migrate_on_start {
        let applied = services.migrate().map_err(|e| e.to_string())?;
        if !applied.is_empty() {
            tracing::info!(?applied, "migrations applied");
        }
    }
    // The services outlive the runtime: the last handle on what owns a runtime of its own (the
    // Stripe client) is dropped here, after `block_on`, never from inside an async context.
    let kept = services.clone();
    let result = actix_web::rt::System::new().block_on(async move {
        let running = app::start(bound, services, with_workers).map_err(|e| e.to_string())?;
        running.wait().await.map_err(|e| e.to_string())
    });
    drop(kept);
    result
}

fn worker(settings: &Settings) -> Result<(), String> {
    let services = Services::build(settings).map_err(|e| e.to_string())?;
    let result = actix_web::rt::System::new().block_on(async {
        let workers = app::start_workers(settings, &services);
        tracing::info!("credits worker running");
        stopped().await?;
        tracing::info!("stopping: the workers finish their round");
        workers.stop().await;
        Ok(())
    });
    drop(services);
    result
}

/// Until SIGTERM (how containers are stopped) or Ctrl-C.
async fn stopped() -> Result<(), String> {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(|e| e.to_string())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(|e| e.to_string()),
        _ = term.recv() => Ok(()),
    }
}

fn migrate(settings: &Settings) -> Result<(), String> {
    let pool = credits_db::pool(
        &settings.database.url,
        1,
        std::time::Duration::from_secs(settings.database.connect_timeout_seconds),
    );
    let applied = credits_db::migrate(&pool).map_err(|e| e.to_string())?;
    println!(
        "migrations applied: {}",
        if applied.is_empty() { "none pending".to_string() } else { applied.join(", ") }
    );
    Ok(())
}

fn check(settings: &Settings) -> Result<(), String> {
    let services = Services::build(settings).map_err(|e| e.to_string())?;
    let now = services.state.clock.now().map_err(|e| e.to_string())?;
    // Its own connection, without the service's statement timeout: a large ledger takes a while.
    let pool = credits_db::pool(
        &settings.database.url,
        1,
        std::time::Duration::from_secs(settings.database.connect_timeout_seconds),
    );
    let violations = credits_db::invariants::check(&pool, now).map_err(|e| e.to_string())?;
    if violations.is_empty() {
        println!("credits check: every invariant holds");
        return Ok(());
    }
    let mut accounts: Vec<&str> = violations.iter().map(|v| v.account.as_str()).collect();
    accounts.sort();
    accounts.dedup();
    for v in &violations {
        println!("account {}: {}", v.account, v.problem);
    }
    Err(format!("{} violation(s) in {} account(s)", violations.len(), accounts.len()))
}

fn create_operator(settings: &Settings, name: &str, role: &str) -> Result<(), String> {
    let role = Role::parse(role).ok_or_else(|| format!("--role must be sales, support or admin, not {role:?}"))?;
    let name = credits_domain::operator::operator_name(name).map_err(|e| format!("--name: {e}"))?;
    let services = Services::build(settings).map_err(|e| e.to_string())?;
    let token = credits_api::new_token(credits_api::OPERATOR_TOKEN_PREFIX);
    let now = services.state.clock.now().map_err(|e| e.to_string())?;
    let operator =
        services.store.create_operator(name, role, &credits_api::token_hash(&token), now).map_err(|e| e.to_string())?;
    println!("created operator {} with role {}", operator.name, role.as_str());
    println!("its token, shown this once (only its hash is stored):");
    println!("{token}");
    Ok(())
}

fn list_operators(settings: &Settings) -> Result<(), String> {
    let services = Services::build(settings).map_err(|e| e.to_string())?;
    let operators = services.store.operators().map_err(|e| e.to_string())?;
    println!("{:<36}  {:<24}  {:<8}  {:<20}  revoked", "id", "name", "role", "created");
    for o in operators {
        let revoked = o.revoked_at.map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()).unwrap_or_else(|| "-".into());
        println!(
            "{:<36}  {:<24}  {:<8}  {:<20}  {revoked}",
            o.id,
            o.name,
            o.role.as_str(),
            o.created_at.format("%Y-%m-%dT%H:%M:%SZ")
        );
    }
    Ok(())
}

fn revoke_operator(settings: &Settings, id: &str) -> Result<(), String> {
    let id: uuid::Uuid =
        id.trim().parse().map_err(|_| format!("{id:?} is not an operator id (see `credits operator list`)"))?;
    let services = Services::build(settings).map_err(|e| e.to_string())?;
    let now = services.state.clock.now().map_err(|e| e.to_string())?;
    if services.store.revoke_operator(id, now).map_err(|e| e.to_string())? {
        println!("revoked operator {id}: its token is refused from now on");
        Ok(())
    } else {
        Err(format!("no live operator {id}"))
    }
}

fn report_liability(settings: &Settings, at: Option<&str>, format: &str) -> Result<(), String> {
    use credits_domain::ports::ReportStore;
    let at = at
        .map(|raw| {
            chrono::DateTime::parse_from_rfc3339(raw)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|_| format!("--at {raw:?} is not an RFC 3339 time"))
        })
        .transpose()?;
    let services = Services::build(settings).map_err(|e| e.to_string())?;
    let at = match at {
        Some(at) => at,
        None => services.state.clock.now().map_err(|e| e.to_string())?,
    };
    let (buckets, flows) = services.store.liability_sums(at).map_err(|e| e.to_string())?;
    let report = credits_domain::reports::liability(at, &buckets, &flows);
    match format {
        "csv" => print!("{}", liability_csv(&report)),
        _ => println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?),
    }
    Ok(())
}

/// The report as one CSV table: section, name, credits, value (minor units).
fn liability_csv(r: &credits_domain::reports::LiabilityReport) -> String {
    let mut csv = credits_domain::csv::Csv::with_header(&["section", "name", "credits", "value"]);
    let mut row = |section: &str, name: &str, a: (i64, i64)| {
        csv.text(section).text(name).number(a.0).number(a.1).end_row();
    };
    let o = &r.outstanding;
    row("outstanding", "total", (o.credits, o.value));
    row("outstanding", "paid", (o.paid.credits, o.paid.value));
    row("outstanding", "allowance", (o.paid.allowance.credits, o.paid.allowance.value));
    row("outstanding", "topup", (o.paid.topup.credits, o.paid.topup.value));
    row("outstanding", "promotional", (o.promotional.credits, o.promotional.value));
    row("outstanding", "lifetime", (o.promotional.lifetime.credits, o.promotional.lifetime.value));
    row("outstanding", "adjustment", (o.promotional.adjustment.credits, o.promotional.adjustment.value));
    for (days, a) in [(30, r.expiring.next_30_days), (60, r.expiring.next_60_days), (90, r.expiring.next_90_days)] {
        row("expiring", &format!("next_{days}_days"), (a.credits, a.value));
    }
    for m in &r.months {
        for (name, a) in
            [("granted", m.granted), ("used", m.used), ("expired", m.expired), ("clawed_back", m.clawed_back)]
        {
            row(&format!("month {}", m.month), name, (a.credits, a.value));
        }
    }
    csv.finish()
}

/// GET `path` over a plain TCP connection: 200 or an error.
fn ready(addr: &str, path: &str) -> Result<(), String> {
    use std::io::{Read, Write};
    use std::net::{TcpStream, ToSocketAddrs};
    use std::time::Duration;
    let target = addr.to_socket_addrs().map_err(|e| e.to_string())?.next().ok_or("no address")?;
    let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).map_err(|e| e.to_string())?;
    if &head[9..12] == b"200" { Ok(()) } else { Err(format!("answered {}", String::from_utf8_lossy(&head[9..12]))) }
}
