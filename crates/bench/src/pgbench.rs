//! pgbench doing the minimal SQL of one debit on the same PostgreSQL: the physical limit every
//! scenario is a ratio of.

use super::*;

pub(crate) const PGBENCH_DEBIT: &str = "\\set n random(1, 10000)
BEGIN;
SELECT account_id AS acct, bucket_id AS bkt FROM bench_accounts WHERE n = :n \\gset
SELECT 1 FROM accounts WHERE id = ':acct' FOR UPDATE;
UPDATE buckets SET remaining = remaining - 5 WHERE id = ':bkt';
INSERT INTO ledger_entries (id, account_id, bucket_id, entry_type, credits, created_at) VALUES (gen_random_uuid(), ':acct', ':bkt', 'debit', -5, now());
COMMIT;
";

/// How many debits of different accounts the batched limit writes in one transaction.
pub(crate) const BATCH: usize = 32;

/// The batched limit: `BATCH` debits of random accounts in one transaction, set-based (the
/// accounts locked in id order, so clients never deadlock) — the ceiling a batched writer aims at.
pub(crate) fn pgbench_batched_script() -> String {
    let picks: Vec<String> = (1..=BATCH).map(|k| format!(":n{k}")).collect();
    let sets: String = (1..=BATCH).map(|k| format!("\\set n{k} random(1, 10000)\n")).collect();
    let any = format!("ARRAY[{}]", picks.join(", "));
    format!(
        "{sets}BEGIN;
SELECT 1 FROM accounts WHERE id IN (SELECT account_id FROM bench_accounts WHERE n = ANY({any})) ORDER BY id FOR UPDATE;
UPDATE buckets SET remaining = remaining - 5 WHERE id IN (SELECT bucket_id FROM bench_accounts WHERE n = ANY({any}));
INSERT INTO ledger_entries (id, account_id, bucket_id, entry_type, credits, created_at) SELECT gen_random_uuid(), account_id, bucket_id, 'debit', -5, now() FROM bench_accounts WHERE n = ANY({any});
COMMIT;
"
    )
}

/// pgbench doing the minimal debit, over many accounts or one: its transactions a second and each
/// transaction's latency (from its per-transaction log), as a scenario's outcome.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Limit {
    Spread,
    Hot,
    Batched,
}

pub(crate) fn pgbench(db_url: &str, clients: usize, seconds: u64, limit: Limit) -> Outcome {
    let dir = std::env::temp_dir().join(format!("credits-bench-{}-{limit:?}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("debit.sql");
    let text = match limit {
        Limit::Spread => PGBENCH_DEBIT.to_string(),
        Limit::Hot => PGBENCH_DEBIT.replace("random(1, 10000)", "1"),
        Limit::Batched => pgbench_batched_script(),
    };
    std::fs::write(&script, text).unwrap();
    let out = Command::new("pgbench")
        .args(["-n", "-M", "simple", "-c", &clients.to_string(), "-j", "2", "-T", &seconds.to_string(), "-l"])
        .arg(format!("--log-prefix={}", dir.join("log").display()))
        .arg("-f")
        .arg(&script)
        .arg(db_url)
        .output()
        .expect("pgbench runs (PostgreSQL's client package)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let tps: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("tps = ").and_then(|r| r.split_whitespace().next()).and_then(|v| v.parse().ok()))
        .unwrap_or_else(|| panic!("pgbench printed no tps: {stdout} {}", String::from_utf8_lossy(&out.stderr)));
    // Each log line: client, transaction, latency in microseconds, script, epoch seconds, microseconds.
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with("log") {
            for line in std::fs::read_to_string(entry.path()).unwrap_or_default().lines() {
                if let Some(us) = line.split_whitespace().nth(2).and_then(|v| v.parse::<u64>().ok()) {
                    latency.record(us.max(1)).ok();
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let (name, per_transaction) = match limit {
        Limit::Spread => ("pgbench debit (the limit), 10,000 accounts", 1.0),
        Limit::Hot => ("pgbench debit (the limit), one row", 1.0),
        Limit::Batched => ("pgbench batched debits (32 a transaction), 10,000 accounts", BATCH as f64),
    };
    Outcome {
        name: name.into(),
        connections: clients,
        // Debits, not transactions: the batched limit writes BATCH in each.
        requests: (tps * per_transaction * seconds as f64) as u64,
        errors: 0,
        seconds: seconds as f64,
        latency,
    }
}
