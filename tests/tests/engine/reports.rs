//! Section 10: usage, the export, and the liability report against the ledger itself.

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use credits_tests::TestApp;
use diesel::prelude::*;
use serde_json::{Value, json};

/// A small deterministic generator: the histories are random, and the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[derive(QueryableByName)]
struct Sum {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// What the ledger itself says is outstanding at `at`: the entries up to `at` of the buckets that
/// have not expired by then.
fn ledger_outstanding(app: &TestApp, at: DateTime<Utc>) -> i64 {
    diesel::sql_query(
        "SELECT COALESCE(sum(e.credits), 0)::bigint AS n FROM ledger_entries e JOIN buckets b ON b.id = e.bucket_id
          WHERE e.created_at <= $1 AND (b.expires_at IS NULL OR b.expires_at > $1)",
    )
    .bind::<diesel::sql_types::Timestamptz, _>(at)
    .get_result::<Sum>(&mut app.db.conn())
    .unwrap()
    .n
}

fn figure(v: &Value) -> i64 {
    v["credits"].as_i64().unwrap()
}

fn month_end(t: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if t.month() == 12 { (t.year() + 1, 1) } else { (t.year(), t.month() + 1) };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).unwrap() - Duration::microseconds(1)
}

/// For random histories of grants, runs, negative adjustments, expiries and sweeps across months:
/// at every month end, the report's outstanding credits are the ledger's, and granted − used −
/// expired − clawed back = outstanding.
#[actix_web::test]
async fn the_liability_report_agrees_with_the_ledger_at_every_month_end_of_random_histories() {
    let app = TestApp::spawn().await;
    let admin = app.admin();
    let mut rng = Lcg(0x5eed);
    let start = app.now().await;
    let mut accounts = Vec::new();
    for _ in 0..40 {
        match rng.next(6) {
            0 | 1 if accounts.len() < 6 => accounts.push(app.account().await),
            _ if accounts.is_empty() => accounts.push(app.account().await),
            2 => {
                let acct = &accounts[rng.next(accounts.len() as u64) as usize];
                let days = 1 + rng.next(60) as i64;
                let expires = (app.now().await + Duration::days(days)).to_rfc3339();
                app.adjust(acct, json!({"credits": 1 + rng.next(300), "reason": "random", "expires_at": expires}))
                    .await
                    .expect(201);
            }
            3 => {
                let acct = &accounts[rng.next(accounts.len() as u64) as usize];
                let images = 1 + rng.next(8);
                let _ = app.run(acct, json!({"model": "flux-schnell", "images": images, "capture": true})).await;
            }
            4 => {
                let acct = &accounts[rng.next(accounts.len() as u64) as usize];
                let _ =
                    app.adjust(acct, json!({"credits": -(1 + rng.next(20) as i64), "reason": "random removal"})).await;
            }
            _ => app.advance(3600 * (1 + rng.next(24 * 20) as i64)).await,
        }
    }
    // The sweep writes the expiries of what has expired (the report counts them either way).
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let now = app.now().await;
    let mut checks = vec![now];
    let mut t = month_end(start);
    while t < now {
        checks.push(t);
        t = month_end(t + Duration::days(1));
    }
    assert!(checks.len() >= 3, "the history crosses months: {checks:?}");
    for at in checks {
        let path = format!("/admin/v1/reports/liability?at={}", at.to_rfc3339().replace('+', "%2B"));
        let report = app.get(&admin, &path).await.expect(200);
        let outstanding = figure(&report["outstanding"]);
        assert_eq!(outstanding, ledger_outstanding(&app, at), "outstanding at {at}: {report}");
        let flows: i64 = report["months"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| figure(&m["granted"]) - figure(&m["used"]) - figure(&m["expired"]) - figure(&m["clawed_back"]))
            .sum();
        assert_eq!(flows, outstanding, "granted − used − expired − clawed back at {at}");
        let kinds = ["allowance", "topup"].iter().map(|k| figure(&report["outstanding"]["paid"][k])).sum::<i64>()
            + ["lifetime", "adjustment"].iter().map(|k| figure(&report["outstanding"]["promotional"][k])).sum::<i64>();
        assert_eq!(kinds, outstanding);
    }
    app.assert_invariants().await;
}

/// The export streams in chunks: 200,000 entries arrive whole while the server's memory stays
/// flat (a chunk of a thousand rows at a time, two in flight).
#[actix_web::test]
async fn an_export_of_two_hundred_thousand_entries_streams_with_flat_memory() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    let id = credits_tests::account_id(&acct).to_string();
    let from = (app.now().await - Duration::days(30)).to_rfc3339().replace('+', "%2B");
    let to = (app.now().await + Duration::days(1)).to_rfc3339().replace('+', "%2B");
    // The history written straight into the ledger (one statement), as a year of busy use leaves it.
    use diesel::connection::SimpleConnection;
    app.db
        .conn()
        .batch_execute(&format!(
            "INSERT INTO buckets (id, account_id, kind, granted, remaining, created_at)
               VALUES ('00000000-0000-0000-0000-00000000e0e0', '{id}', 'adjustment', 200000, 0, now());
             INSERT INTO ledger_entries (id, account_id, bucket_id, entry_type, credits, reason, created_at)
               SELECT gen_random_uuid(), '{id}', '00000000-0000-0000-0000-00000000e0e0', 'adjustment', 1,
                      'entry ' || n || ', with \"quotes\"', now() - interval '1 second' * n
                 FROM generate_series(1, 200000) AS n;
             UPDATE buckets SET remaining = 200000 WHERE id = '00000000-0000-0000-0000-00000000e0e0';"
        ))
        .unwrap();
    let rss = || {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<i64>()
            .unwrap()
    };
    let url = format!("{}/v1/ledger/export?from={from}&to={to}", app.instance.base_url);
    let before = rss();
    let mut peak = before;
    // A client of its own: the shared one's idle connection may have been closed meanwhile.
    let mut response = credits_tests::client()
        .get(url)
        .bearer_auth(credits_tests::INTERNAL_TOKEN)
        .header("X-Account-Id", &id)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let (mut rows, mut bytes, mut tail) = (0usize, 0usize, Vec::new());
    while let Some(chunk) = response.chunk().await.unwrap() {
        bytes += chunk.len();
        rows += chunk.iter().filter(|b| **b == b'\n').count();
        tail = chunk.to_vec();
        peak = peak.max(rss());
    }
    // Header, 200,000 entries and the lifetime grant.
    assert_eq!(
        rows,
        1 + 200_000 + 1,
        "{bytes} bytes; ends {:?}",
        String::from_utf8_lossy(&tail[tail.len().saturating_sub(200)..])
    );
    // The test and the server share this process: the whole export (~30 MB of CSV) never sits in it.
    assert!(peak - before < 16 * 1024, "RSS grew by {} KiB while {bytes} bytes streamed", peak - before);
}
