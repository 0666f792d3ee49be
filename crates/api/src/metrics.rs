//! `GET /metrics`: Prometheus text. Counters live in this process (each instance exposes its
//! own); backlogs and pool figures are read from the store at each scrape.

use credits_domain::credits::Credits;
use credits_domain::ports::LedgerObserver;
use credits_domain::views::EntryType;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_seconds: HistogramVec,
    balance_batch: Histogram,
    run_batch: Histogram,
    runs: IntCounterVec,
    denials: IntCounterVec,
    credits_in: IntCounterVec,
    credits_out: IntCounterVec,
    webhooks: IntCounterVec,
    webhook_failures: IntCounterVec,
    open_holds: IntGauge,
    overdue_holds: IntGauge,
    outbox_pending: IntGauge,
    outbox_dead: IntGauge,
    pool_connections: IntGauge,
    pool_idle: IntGauge,
    pool_max: IntGauge,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry.register(Box::new(c.clone())).expect("registered once");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    registry.register(Box::new(g.clone())).expect("registered once");
    g
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let http_seconds = HistogramVec::new(
            HistogramOpts::new("credits_http_request_duration_seconds", "HTTP request latency by route")
                .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
            &["method", "route"],
        )
        .expect("valid metric");
        registry.register(Box::new(http_seconds.clone())).expect("registered once");
        let balance_batch = Histogram::with_opts(
            HistogramOpts::new("credits_balance_batch_size", "balances read by one statement (crate::reads)")
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]),
        )
        .expect("valid metric");
        registry.register(Box::new(balance_batch.clone())).expect("registered once");
        let run_batch = Histogram::with_opts(
            HistogramOpts::new("credits_run_batch_size", "run requests committed by one transaction (group commit)")
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
        )
        .expect("valid metric");
        registry.register(Box::new(run_batch.clone())).expect("registered once");
        Metrics {
            balance_batch,
            run_batch,
            http_requests: counter(
                &registry,
                "credits_http_requests_total",
                "HTTP requests by route and status",
                &["method", "route", "status"],
            ),
            http_seconds,
            runs: counter(
                &registry,
                "credits_runs_total",
                "run requests by outcome (held, captured, released, denied)",
                &["outcome"],
            ),
            denials: counter(&registry, "credits_run_denials_total", "refused run requests by error code", &["code"]),
            credits_in: counter(
                &registry,
                "credits_granted_total",
                "credits added to buckets, by ledger entry type",
                &["type"],
            ),
            credits_out: counter(
                &registry,
                "credits_debited_total",
                "credits taken from buckets, by ledger entry type",
                &["type"],
            ),
            webhooks: counter(
                &registry,
                "credits_stripe_events_total",
                "Stripe events received, by type and whether replayed",
                &["type", "replay"],
            ),
            webhook_failures: counter(
                &registry,
                "credits_stripe_events_failed_total",
                "Stripe events the configuration could not apply (kept for an admin), by type",
                &["type"],
            ),
            open_holds: gauge(&registry, "credits_open_holds", "holds open now"),
            overdue_holds: gauge(
                &registry,
                "credits_overdue_holds",
                "holds past their TTL not yet released by the sweep",
            ),
            outbox_pending: gauge(&registry, "credits_outbox_pending", "mails waiting in the outbox"),
            outbox_dead: gauge(&registry, "credits_outbox_dead", "mails given up after their retries"),
            pool_connections: gauge(&registry, "credits_db_pool_connections", "database connections open"),
            pool_idle: gauge(&registry, "credits_db_pool_idle", "database connections idle"),
            pool_max: gauge(&registry, "credits_db_pool_max", "database connections allowed"),
            registry,
        }
    }

    /// One request: labelled by its method from a fixed set, its route's pattern (or
    /// `unmatched`) and its status, so no request can add label values beyond those.
    pub fn http(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let method = match method {
            "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS" => method,
            _ => "OTHER",
        };
        self.http_requests.with_label_values(&[method, route, &status.to_string()]).inc();
        self.http_seconds.with_label_values(&[method, route]).observe(seconds);
    }

    pub fn balance_batch(&self, balances: usize) {
        self.balance_batch.observe(balances as f64);
    }

    pub fn run(&self, outcome: &str) {
        self.runs.with_label_values(&[outcome]).inc();
    }

    pub fn webhook(&self, event_type: &str, replay: bool) {
        self.webhooks.with_label_values(&[event_type, if replay { "true" } else { "false" }]).inc();
    }

    pub fn webhook_failed(&self, event_type: &str) {
        self.webhook_failures.with_label_values(&[event_type]).inc();
    }

    pub fn denial(&self, code: &str) {
        self.runs.with_label_values(&["denied"]).inc();
        self.denials.with_label_values(&[code]).inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl LedgerObserver for Metrics {
    fn committed(&self, entries: &[(EntryType, Credits)]) {
        for (entry_type, credits) in entries {
            let c = credits.get();
            let counter = if c > 0 { &self.credits_in } else { &self.credits_out };
            counter.with_label_values(&[entry_type.as_str()]).inc_by(c.unsigned_abs());
        }
    }

    fn batch_committed(&self, requests: usize) {
        self.run_batch.observe(requests as f64);
    }
}

impl Metrics {
    /// The store's gauges, as `stats` read them.
    pub fn set_stats(&self, stats: &credits_domain::ports::StoreStats) {
        self.open_holds.set(stats.open_holds);
        self.overdue_holds.set(stats.overdue_holds);
        self.outbox_pending.set(stats.outbox_pending);
        self.outbox_dead.set(stats.outbox_dead);
        self.pool_connections.set(i64::from(stats.pool_connections));
        self.pool_idle.set(i64::from(stats.pool_idle));
        self.pool_max.set(i64::from(stats.pool_max));
    }

    /// Every metric in Prometheus' text format.
    pub fn text(&self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).ok()?;
        Some(out)
    }
}
