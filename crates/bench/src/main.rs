//! `make bench`: how fast `credits serve` (release) is, measured beside the physical limit of the
//! same PostgreSQL server in the same run (pgbench doing the minimal SQL of one debit).
//!
//! It makes its own database, seeds 10,000 accounts (Enterprise without a rate limit, so the
//! limiter does not cap the figures, each with a large adjustment bucket and its ledger entry, and
//! a history of past runs),
//! starts the server, drives each scenario over keep-alive connections, and writes
//! `bench/results/<date>.md`. Usage: credits-bench [--seconds N] [--binary PATH] [--out DIR] [--only NAME] [--pool N]

mod pages;
mod pgbench;

use pages::*;
use pgbench::*;
use std::fmt::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use hdrhistogram::Histogram;
use serde_json::json;

const ACCOUNTS: usize = 10_000;
/// Past runs seeded per account, so the tables look like a service that has been running.
const HISTORY: usize = 5;
const TOKEN: &str = "bench-internal-token-0123456789abcdef";
/// The ledger entries of the account whose pages are measured.
const PAGE_ENTRIES: usize = 10_000;

struct Args {
    seconds: u64,
    binary: String,
    out: String,
    pg: String,
    /// Run only the scenarios whose name contains this (profiling one path).
    only: Option<String>,
    /// The server's database pool size.
    pool: usize,
}

fn args() -> Args {
    let mut a = Args {
        seconds: 6,
        binary: "target/release/credits".into(),
        out: "bench/results".into(),
        pg: std::env::var("CREDITS_BENCH_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into()),
        only: None,
        pool: 32,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--seconds" => a.seconds = value.parse().expect("--seconds N"),
            "--binary" => a.binary = value,
            "--out" => a.out = value,
            "--only" => a.only = Some(value),
            "--pool" => a.pool = value.parse().expect("--pool N"),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// What one scenario measured.
struct Outcome {
    name: String,
    connections: usize,
    requests: u64,
    errors: u64,
    seconds: f64,
    latency: Histogram<u64>,
}

impl Outcome {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    fn ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }
}

#[derive(Clone, Copy)]
enum Scenario {
    CaptureSpread,
    /// As `CaptureSpread`, each run for the account's capped member (`X-Member-Id`, R26).
    CaptureSpreadMember,
    CaptureHot,
    HoldThenComplete,
    Balance,
}

/// Keep-alive connections, each its own client, each looping requests until the deadline, spread
/// over the instances at `bases`.
async fn drive(
    bases: &[String],
    accounts: Arc<Vec<(String, String)>>,
    scenario: Scenario,
    connections: usize,
    seconds: u64,
) -> Outcome {
    // Each connection's client is built before the clock starts: building one reads the system's
    // CA bundle (tens of milliseconds of CPU), and 64 of them built inside the timed tasks stalled
    // the requests already in flight, which showed as 1-3 s tails in every scenario.
    let clients: Vec<reqwest::Client> = (0..connections)
        .map(|_| reqwest::Client::builder().pool_max_idle_per_host(1).tcp_nodelay(true).build().unwrap())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (c, http) in clients.into_iter().enumerate() {
        // Connections spread over the instances in turn.
        let base = bases[c % bases.len()].clone();
        let accounts = accounts.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let (mut n, mut errors) = (0u64, 0u64);
            let mut i = c;
            let capture = json!({"model": "upscale-4x", "capture": true});
            let hold = json!({"model": "flux-schnell", "images": 2});
            while Instant::now() < deadline {
                i = i.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let (account, member) = match scenario {
                    Scenario::CaptureHot => &accounts[0],
                    _ => &accounts[(i >> 33) % accounts.len()],
                };
                let t = Instant::now();
                let ok = match scenario {
                    Scenario::CaptureSpread | Scenario::CaptureHot | Scenario::CaptureSpreadMember => {
                        let mut req =
                            http.post(format!("{base}/v1/runs")).bearer_auth(TOKEN).header("X-Account-Id", account);
                        if matches!(scenario, Scenario::CaptureSpreadMember) {
                            req = req.header("X-Member-Id", member);
                        }
                        req.json(&capture).send().await.is_ok_and(|r| r.status().as_u16() == 201)
                    }
                    Scenario::HoldThenComplete => {
                        let held = http
                            .post(format!("{base}/v1/runs"))
                            .bearer_auth(TOKEN)
                            .header("X-Account-Id", account)
                            .json(&hold)
                            .send()
                            .await;
                        match held {
                            Ok(r) if r.status().as_u16() == 201 => {
                                let run: serde_json::Value = r.json().await.unwrap_or_default();
                                let id = run["id"].as_str().unwrap_or_default();
                                http.post(format!("{base}/v1/runs/{id}/complete"))
                                    .bearer_auth(TOKEN)
                                    .header("X-Account-Id", account)
                                    .json(&json!({}))
                                    .send()
                                    .await
                                    .is_ok_and(|r| r.status().is_success())
                            }
                            _ => false,
                        }
                    }
                    Scenario::Balance => http
                        .get(format!("{base}/v1/balance"))
                        .bearer_auth(TOKEN)
                        .header("X-Account-Id", account)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success()),
                };
                hist.record(t.elapsed().as_micros().max(1) as u64).ok();
                n += 1;
                if !ok {
                    errors += 1;
                }
            }
            (n, errors, hist)
        }));
    }
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let (mut requests, mut errors) = (0, 0);
    for t in tasks {
        let (n, e, h) = t.await.unwrap();
        requests += n;
        errors += e;
        latency.add(h).unwrap();
    }
    Outcome { name: String::new(), connections, requests, errors, seconds: started.elapsed().as_secs_f64(), latency }
}

fn sql(url: &str, text: &str) {
    let mut conn = PgConnection::establish(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    conn.batch_execute(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
}

fn seed(db_url: &str) {
    sql(
        db_url,
        &format!(
            "CREATE TABLE bench_accounts (n int PRIMARY KEY, account_id uuid NOT NULL, bucket_id uuid NOT NULL,
                                          member_id uuid NOT NULL);
             INSERT INTO bench_accounts
               SELECT g, gen_random_uuid(), gen_random_uuid(), gen_random_uuid() FROM generate_series(1, {ACCOUNTS}) g;
             INSERT INTO accounts (id, email, name, plan_id, created_at)
               SELECT account_id, 'bench' || n || '@example.test', 'Bench ' || n, 'enterprise', now() FROM bench_accounts;
             -- R26: each account's owner, with a monthly cap far above what the bench spends, so
             -- every run for them is judged against it (the member read, their use this month).
             INSERT INTO members (account_id, id, email, name, role, monthly_credit_limit, created_at)
               SELECT account_id, member_id, 'bench' || n || '@example.test', 'Bench ' || n, 'owner', 1000000000000, now()
                 FROM bench_accounts;
             INSERT INTO buckets (id, account_id, kind, granted, remaining, created_at)
               SELECT bucket_id, account_id, 'adjustment', 1000000000000, 0, now() FROM bench_accounts;
             INSERT INTO ledger_entries (id, account_id, bucket_id, entry_type, credits, reason, created_at)
               SELECT gen_random_uuid(), account_id, bucket_id, 'adjustment', 1000000000000, 'bench seed', now() FROM bench_accounts;
             UPDATE buckets SET remaining = granted;
             -- The pages' account (n = 2): 10,000 ledger entries, its grant and 9,999 captured runs
             -- spread over the last 30 days (section 8's budget for a page).
             INSERT INTO runs (id, account_id, model_id, channel, cost, status, captured_credits, created_at, finished_at)
               SELECT gen_random_uuid(), account_id, (ARRAY['flux-schnell', 'upscale-4x', 'kling-2.1'])[1 + g % 3],
                      'canvas', 5, 'captured', 5, now() - g * interval '259 seconds', now() - g * interval '259 seconds'
                 FROM bench_accounts, generate_series(1, {PAGE_ENTRIES} - 1) g WHERE n = 2;
             INSERT INTO ledger_entries (id, account_id, bucket_id, entry_type, credits, run_id, created_at)
               SELECT gen_random_uuid(), r.account_id, a.bucket_id, 'debit', -5, r.id, r.finished_at
                 FROM runs r JOIN bench_accounts a USING (account_id) WHERE a.n = 2 AND r.status = 'captured';
             UPDATE buckets SET remaining = remaining - 5 * ({PAGE_ENTRIES} - 1)
               WHERE id = (SELECT bucket_id FROM bench_accounts WHERE n = 2);
             -- History: a service that has run has runs (here five cancelled holds per account). On
             -- empty tables the planner's plans (the foreign-key checks' too) scan them.
             INSERT INTO runs (id, account_id, model_id, channel, cost, status, hold_expires_at, created_at,
                               finished_at, release_reason)
               SELECT gen_random_uuid(), account_id, 'upscale-4x', 'canvas', 5, 'released',
                      now() - interval '1 day', now() - interval '1 day', now() - interval '1 day', 'cancelled'
                 FROM bench_accounts, generate_series(1, {HISTORY});
             INSERT INTO run_reservations (run_id, bucket_id, account_id, credits, open)
               SELECT r.id, a.bucket_id, r.account_id, 5, false FROM runs r JOIN bench_accounts a USING (account_id);
             ANALYZE;"
        ),
    );
}

fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmHWM:").map(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
            })
        })
        .flatten()
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_string())))
        .unwrap_or_default();
    let pg = Command::new("psql")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!("{cores} cores ({cpu}), {mem} memory; {pg}; server, PostgreSQL and load generator on the same machine")
}

/// The databases of earlier runs that ended without dropping theirs (a panic, a kill): each is
/// named after its run's process, dropped here once that process is gone. Left behind, they hold
/// disk and, with their names alike, mislead whoever inspects the running one.
fn drop_abandoned(admin: &str) {
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let mut conn = PgConnection::establish(admin).unwrap_or_else(|e| panic!("{admin}: {e}"));
    let names: Vec<Name> = diesel::RunQueryDsl::load(
        diesel::sql_query("SELECT datname::text AS name FROM pg_database WHERE datname LIKE 'credits\\_bench\\_%'"),
        &mut conn,
    )
    .unwrap();
    for Name { name } in names {
        let alive = name
            .strip_prefix("credits_bench_")
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_none_or(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            eprintln!("bench: dropping {name}, left by a run that is gone");
            conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).unwrap();
        }
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let db = format!("credits_bench_{}", std::process::id());
    let admin = format!("{}/postgres", a.pg);
    drop_abandoned(&admin);
    sql(&admin, &format!("DROP DATABASE IF EXISTS {db}"));
    sql(&admin, &format!("CREATE DATABASE {db}"));
    let db_url = format!("{}/{db}?sslmode=disable", a.pg);
    eprintln!("bench: database {db}");
    let env = |c: &mut Command| {
        c.env("CREDITS__DATABASE__URL", &db_url)
            .env("CREDITS__AUTH__INTERNAL_TOKEN", TOKEN)
            .env("CREDITS__LOG__LEVEL", "error")
            .env("CREDITS__DATABASE__POOL_SIZE", a.pool.to_string())
            .env("CREDITS__SERVER__PORT", "18099");
    };
    let mut migrate = Command::new(&a.binary);
    migrate.arg("migrate");
    env(&mut migrate);
    assert!(migrate.status().expect("the credits binary runs").success(), "credits migrate failed");
    seed(&db_url);
    let mut serve = Command::new(&a.binary);
    serve.arg("serve").stdout(Stdio::null()).stderr(Stdio::inherit());
    env(&mut serve);
    let server = Server(serve.spawn().expect("credits serve starts"));
    let base = "http://127.0.0.1:18099".to_string();
    let probe = reqwest::Client::new();
    for _ in 0..200 {
        if probe.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Each account and its capped member.
    let accounts: Arc<Vec<(String, String)>> = {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            id: String,
            #[diesel(sql_type = diesel::sql_types::Text)]
            member: String,
        }
        let mut conn = PgConnection::establish(&db_url).unwrap();
        let rows: Vec<Row> = diesel::sql_query(
            "SELECT account_id::text AS id, member_id::text AS member FROM bench_accounts ORDER BY n",
        )
        .load(&mut conn)
        .unwrap();
        Arc::new(rows.into_iter().map(|r| (r.id, r.member)).collect())
    };

    // The pages first, before the load adds to the tables.
    let pages = if a.only.as_ref().is_none_or(|only| "pages".contains(only.as_str())) {
        eprintln!("bench: the pages of an account with {PAGE_ENTRIES} ledger entries");
        measure_pages(&a, &env, &base, &accounts[1].0).await
    } else {
        Vec::new()
    };
    let mut outcomes = Vec::new();
    let plan: Vec<(&str, Scenario, usize)> = vec![
        ("capture, 10,000 accounts", Scenario::CaptureSpread, 8),
        ("capture, 10,000 accounts", Scenario::CaptureSpread, 32),
        ("capture, 10,000 accounts", Scenario::CaptureSpread, 64),
        // R26's cost: the capped member's captures between two plain runs of the same load, so
        // neither side has the tables' growth and the machine's drift to itself.
        ("capture, 10,000 accounts, capped member", Scenario::CaptureSpreadMember, 64),
        ("capture, 10,000 accounts, again", Scenario::CaptureSpread, 64),
        ("capture, one hot account", Scenario::CaptureHot, 8),
        ("capture, one hot account", Scenario::CaptureHot, 32),
        ("capture, one hot account", Scenario::CaptureHot, 64),
        ("hold then complete", Scenario::HoldThenComplete, 32),
        ("GET /v1/balance", Scenario::Balance, 64),
    ];
    for (name, scenario, connections) in plan {
        if a.only.as_ref().is_some_and(|only| !name.contains(only.as_str())) {
            continue;
        }
        eprintln!("bench: {name} at {connections} connections");
        let mut o = drive(std::slice::from_ref(&base), accounts.clone(), scenario, connections, a.seconds).await;
        o.name = name.to_string();
        outcomes.push(o);
    }
    let rss = peak_rss_mb(server.0.id());
    // Two instances on the same database, the connections split between them: what a second
    // instance adds (the account lock and idempotency hold across them; `credits check` after).
    let two = "capture, 10,000 accounts, 2 instances";
    if a.only.as_ref().is_none_or(|only| two.contains(only.as_str())) {
        let mut serve = Command::new(&a.binary);
        serve.arg("serve").stdout(Stdio::null()).stderr(Stdio::inherit());
        env(&mut serve);
        serve.env("CREDITS__SERVER__PORT", "18100");
        let second = Server(serve.spawn().expect("a second credits serve starts"));
        let other = "http://127.0.0.1:18100".to_string();
        for _ in 0..200 {
            if probe.get(format!("{other}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!("bench: {two} at 64 connections");
        let mut o = drive(&[base.clone(), other], accounts.clone(), Scenario::CaptureSpread, 64, a.seconds).await;
        o.name = two.to_string();
        outcomes.push(o);
        drop(second);
    }
    drop(server);
    eprintln!("bench: pgbench, the debit limit");
    let limits = [
        pgbench(&db_url, 64, a.seconds, Limit::Spread),
        pgbench(&db_url, 64, a.seconds, Limit::Hot),
        pgbench(&db_url, 64, a.seconds, Limit::Batched),
    ];
    let (limit_spread, limit_hot, limit_batched) = (limits[0].rps(), limits[1].rps(), limits[2].rps());
    let check = Command::new(&a.binary)
        .arg("check")
        .env("CREDITS__DATABASE__URL", &db_url)
        .output()
        .expect("credits check runs");
    sql(&admin, &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE);"));

    let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let mut md = String::new();
    writeln!(md, "# credits benchmark, {date}\n").unwrap();
    writeln!(md, "Machine: {}.\n", machine()).unwrap();
    writeln!(
        md,
        "Each scenario ran {} s over HTTP/1.1 keep-alive connections against `credits serve` (release, pool {}).",
        a.seconds, a.pool
    )
    .unwrap();
    writeln!(md, "The limit: pgbench, 64 clients, the minimal SQL of one debit (lock the account row, update the bucket, insert one ledger row, one transaction) on the same PostgreSQL: **{limit_spread:.0} tps** over 10,000 accounts, **{limit_hot:.0} tps** on one row; batched, {BATCH} debits of different accounts in one set-based transaction: **{limit_batched:.0} debits/s**.\n").unwrap();
    writeln!(md, "| scenario | connections | requests/s | p50 ms | p99 ms | p99.9 ms | errors | × pgbench |").unwrap();
    writeln!(md, "|---|---|---|---|---|---|---|---|").unwrap();
    for o in limits.iter().chain(&outcomes) {
        let limit = if o.name.contains("hot") || o.name.contains("one row") { limit_hot } else { limit_spread };
        let ratio = if o.name.starts_with("capture") || o.name.starts_with("hold") || o.name.starts_with("pgbench") {
            format!("{:.2}", o.rps() / limit)
        } else {
            "—".into()
        };
        writeln!(
            md,
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} |",
            o.name,
            o.connections,
            o.rps(),
            o.ms(0.5),
            o.ms(0.99),
            o.ms(0.999),
            o.errors,
            ratio
        )
        .unwrap();
    }
    if !pages.is_empty() {
        writeln!(
            md,
            "\nPages of an account with {PAGE_ENTRIES} ledger entries ({PAGE_REQUESTS} requests each, one after the other; SPEC section 8's budget: rendered in {PAGE_BUDGET_MS:.0} ms server-side — the answer's `Server-Timing` — and at most {PAGE_BUDGET_KB:.0} KB):\n"
        )
        .unwrap();
        writeln!(
            md,
            "| page | server p50 ms | server p99 ms | server max ms | client p99 ms | size KB | within budget |"
        )
        .unwrap();
        writeln!(md, "|---|---|---|---|---|---|---|").unwrap();
        for p in &pages {
            let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            let (p99, kb) = (ms(&p.server, 0.99), p.bytes as f64 / 1024.0);
            writeln!(
                md,
                "| {} | {:.2} | {p99:.2} | {:.2} | {:.2} | {kb:.1} | {} |",
                p.name,
                ms(&p.server, 0.5),
                p.server.max() as f64 / 1000.0,
                ms(&p.latency, 0.99),
                if p99 <= PAGE_BUDGET_MS && kb <= PAGE_BUDGET_KB { "yes" } else { "**no**" }
            )
            .unwrap();
        }
    }
    writeln!(md, "\nServer peak RSS: **{rss:.1} MB**.\n").unwrap();
    // The summary: one figure a line, `ratio NAME VALUE`, `p99_ms NAME VALUE` or `rss_mb NAME VALUE`.
    let find =
        |name: &str, connections: usize| outcomes.iter().find(|o| o.name == name && o.connections == connections);
    let mut summary = Vec::new();
    if let Some(o) = find("capture, 10,000 accounts", 64) {
        summary.push(format!("ratio capture_many_64 {:.2}", o.rps() / limit_spread));
        summary.push(format!("ratio capture_many_64_vs_batched {:.2}", o.rps() / limit_batched));
        summary.push(format!("p99_ms capture_many_64 {:.2}", o.ms(0.99)));
    }
    // R26's cost on the hot path: the same load, each run for the account's capped member.
    if let (Some(before), Some(member), Some(after)) = (
        find("capture, 10,000 accounts", 64),
        find("capture, 10,000 accounts, capped member", 64),
        find("capture, 10,000 accounts, again", 64),
    ) {
        let plain = (before.rps() + after.rps()) / 2.0;
        summary.push(format!("ratio member_vs_plain_capture_many_64 {:.2}", member.rps() / plain));
        summary.push(format!("p99_ms capture_many_64_member {:.2}", member.ms(0.99)));
    }
    if let Some(o) = find("capture, 10,000 accounts, 2 instances", 64) {
        summary.push(format!("ratio capture_many_64_2_instances {:.2}", o.rps() / limit_spread));
        summary.push(format!("p99_ms capture_many_64_2_instances {:.2}", o.ms(0.99)));
    }
    if let Some(o) = find("capture, one hot account", 64) {
        summary.push(format!("ratio hot_64 {:.2}", o.rps() / limit_hot));
        summary.push(format!("p99_ms hot_64 {:.2}", o.ms(0.99)));
    }
    if let Some(o) = find("hold then complete", 32) {
        summary.push(format!("ratio hold_complete_32 {:.2}", o.rps() / limit_spread));
    }
    for p in &pages {
        let key = if p.name.starts_with("billing") { "billing_page" } else { "console_account_page" };
        summary.push(format!("p99_ms {key} {:.2}", p.server.value_at_quantile(0.99) as f64 / 1000.0));
    }
    summary.push(format!("rss_mb peak {rss:.1}"));
    writeln!(md, "Summary:\n\n```\n{}\n```\n", summary.join("\n")).unwrap();
    writeln!(
        md,
        "`credits check` after the load: {}",
        if check.status.success() { "every invariant holds." } else { "VIOLATIONS (see its output)." }
    )
    .unwrap();
    // The analysis written by hand beside the generated table (profile findings, limits).
    if let Ok(notes) = std::fs::read_to_string("bench/notes.md") {
        writeln!(md, "\n{notes}").unwrap();
    }
    std::fs::create_dir_all(&a.out).unwrap();
    let path = format!("{}/{date}.md", a.out);
    std::fs::write(&path, &md).unwrap();
    println!("{md}");
    eprintln!("bench: wrote {path}");
    if !check.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&check.stdout));
        std::process::exit(1);
    }
}
