//! Background work in `credits serve` / `credits worker` (section 7): three loops, each with its
//! own interval and its own time budget, so a slow SMTP server or a slow Stripe delays only its
//! own work:
//! - sweeps: release holds past their TTL, expire buckets, refresh Enterprise allowances, end
//!   plans, forget old idempotency records;
//! - the outbound work queue (`credits_domain::jobs`), a loop per kind: mail (the outbox),
//!   payment jobs (the Stripe calls changes decided, R18), auto top-ups (the off-session
//!   PaymentIntents captures started, R22), and webhook deliveries (section 9), many at once, so
//!   one slow endpoint delays no other.
//!
//! Safe on several instances: the store claims each account with `FOR UPDATE SKIP LOCKED`, and
//! each job with a lease. A failed round (the database away) is logged and retried.

use std::sync::Arc;
use std::time::{Duration, Instant};

use credits_domain::jobs::{Answer, ClaimLimit, JobKind, Round, Work, Worker};
use credits_domain::payments::PaymentGateway;
use credits_domain::ports::{Clock, Store};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::app::Services;
use crate::settings::Settings;

/// The longest one round of mail or payment jobs goes on before it yields to the next round.
const ROUND_BUDGET: Duration = Duration::from_secs(30);

pub struct Workers {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Workers {
    /// Stop after the rounds in progress, if any.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        tracing::info!("workers stopped");
    }
}

/// One round of the sweeps; returns what each did.
pub fn sweep_once(
    store: &dyn Store,
    clock: &dyn Clock,
    batch: i64,
    purge: bool,
    expiry_notice: chrono::TimeDelta,
) -> Result<[usize; 5], String> {
    let now = clock.now().map_err(|e| e.to_string())?;
    let swept = store.sweep(now, batch).map_err(|e| e.to_string())?;
    // R23's notices last: they tell, the rest changes balances.
    let noticed = store.notice_expiring(now, expiry_notice, batch).map_err(|e| e.to_string())?;
    let purged = if purge { store.purge_idempotency(now).map_err(|e| e.to_string())? } else { 0 };
    Ok([swept.holds_released, swept.buckets_expired, swept.contracts_refreshed, noticed, purged])
}

/// A loop: `round` every `interval`, off the async threads, until stopped.
fn spawn_loop<F>(
    tasks: &mut JoinSet<()>,
    name: &'static str,
    interval: Duration,
    mut stopped: watch::Receiver<bool>,
    round: F,
) where
    F: Fn(u64) -> Result<(), String> + Send + Sync + 'static,
{
    let round = Arc::new(round);
    tasks.spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n: u64 = 0;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stopped.changed() => break,
            }
            n += 1;
            let round = round.clone();
            match tokio::task::spawn_blocking(move || round(n)).await {
                Ok(Ok(())) => {}
                Ok(Err(cause)) => tracing::warn!(worker = name, %cause, "background round failed; retrying next round"),
                Err(cause) => tracing::error!(worker = name, %cause, "background round panicked"),
            }
        }
    });
}

pub fn spawn(settings: &Settings, services: &Services) -> Workers {
    let (stop, stopped) = watch::channel(false);
    let store: Arc<dyn Store> = services.store.clone();
    let clock: Arc<dyn Clock> = services.state.clock.clone();
    let interval = Duration::from_secs(settings.workers.interval_seconds);
    let batch = settings.workers.batch;
    let mut tasks = JoinSet::new();

    let (s, c) = (store.clone(), clock.clone());
    // Idempotency records are purged about once a minute; the rest every round.
    let purge_every = (60 / interval.as_secs().max(1)).max(1);
    let notice = chrono::TimeDelta::days(settings.alerts.expiry_notice_days);
    spawn_loop(&mut tasks, "sweeps", interval, stopped.clone(), move |n| {
        let [holds, expired, refreshed, noticed, purged] =
            sweep_once(s.as_ref(), c.as_ref(), batch, n % purge_every == 1, notice)?;
        if holds + expired + refreshed + noticed + purged > 0 {
            tracing::info!(
                holds_released = holds,
                buckets_expired = expired,
                contracts_refreshed = refreshed,
                expiry_notices = noticed,
                idempotency_purged = purged,
                "background round"
            );
        }
        Ok(())
    });

    // Mail, payment calls and auto top-ups: each kind its own loop and budget, through one queue.
    let gateway: Arc<dyn PaymentGateway> = services.state.payments.clone();
    let mailer = services.mailer.clone();
    let kinds: &[(JobKind, &'static str)] = if mailer.is_some() {
        &[(JobKind::Mail, "mail"), (JobKind::PaymentCall, "payment jobs"), (JobKind::AutoTopup, "auto top-ups")]
    } else {
        &[(JobKind::PaymentCall, "payment jobs"), (JobKind::AutoTopup, "auto top-ups")]
    };
    for &(kind, name) in kinds {
        let (s, c, g, m) = (store.clone(), clock.clone(), gateway.clone(), mailer.clone());
        spawn_loop(&mut tasks, name, interval, stopped.clone(), move |_| {
            let worker = Worker { jobs: s.as_ref(), clock: c.as_ref(), mailer: m.as_deref(), gateway: g.as_ref() };
            let round = worker.round(kind, batch, Instant::now() + ROUND_BUDGET).map_err(|e| e.to_string())?;
            if round != Round::default() {
                tracing::info!(
                    worker = name,
                    done = round.done,
                    retried = round.retried,
                    dead = round.dead,
                    "jobs round"
                );
            }
            Ok(())
        });
    }

    if let Some(key) = services.sealing.clone() {
        let policy = credits_webhooks::deliver::Policy {
            allow_insecure: settings.webhooks.allow_insecure,
            allow_private: settings.webhooks.allow_private,
        };
        spawn_deliveries(&mut tasks, interval, stopped.clone(), store.clone(), clock.clone(), key, policy, batch);
    }

    Workers { stop, tasks }
}

/// Deliveries in flight at once on an instance.
const IN_FLIGHT: usize = 64;

/// The delivery loop (section 9): every tick, claim what is due (up to the free sending slots, and
/// at most `IN_FLIGHT_PER_ACCOUNT` of one account's attempts at once) and send each on its own
/// task, which records its outcome as soon as it has one. So a slow or dead endpoint holds one
/// slot for at most the 10 s timeout, and one account's slow endpoints hold at most its share of
/// the slots: they delay no other account's delivery (section 7).
/// `webhook-timestamp` is the wall clock's, never the test clock's.
#[allow(clippy::too_many_arguments)]
fn spawn_deliveries(
    tasks: &mut JoinSet<()>,
    interval: Duration,
    mut stopped: watch::Receiver<bool>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    key: credits_webhooks::seal::SealingKey,
    policy: credits_webhooks::deliver::Policy,
    batch: i64,
) {
    use credits_domain::notify::webhooks::IN_FLIGHT_PER_ACCOUNT;
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let per_account = Arc::new(InFlight::default());
    tasks.spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sending = JoinSet::new();
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stopped.changed() => break,
            }
            while sending.try_join_next().is_some() {}
            let free = slots.available_permits().min(usize::try_from(batch).unwrap_or(IN_FLIGHT));
            if free == 0 {
                continue;
            }
            let (s, c) = (store.clone(), clock.clone());
            let busy = per_account.snapshot();
            let claimed = tokio::task::spawn_blocking(move || -> Result<_, String> {
                let now = c.now().map_err(|e| e.to_string())?;
                let limit = ClaimLimit { batch: free as i64, per_account: Some(IN_FLIGHT_PER_ACCOUNT), in_flight: busy };
                s.claim(JobKind::Delivery, &limit, now).map_err(|e| e.to_string())
            })
            .await;
            let due = match claimed {
                Ok(Ok(due)) => due,
                Ok(Err(cause)) => {
                    tracing::warn!(worker = "webhooks", %cause, "background round failed; retrying next round");
                    continue;
                }
                Err(cause) => {
                    tracing::error!(worker = "webhooks", %cause, "background round panicked");
                    continue;
                }
            };
            for job in due {
                let Work::Delivery(d) = &job.work else { continue };
                let Ok(slot) = slots.clone().acquire_owned().await else { break };
                let (s, c, key) = (store.clone(), clock.clone(), key.clone());
                let place = per_account.take(d.account);
                sending.spawn(async move {
                    let Work::Delivery(d) = &job.work else { return };
                    let result = attempt(&key, d, policy).await;
                    let id = job.id;
                    let recorded = tokio::task::spawn_blocking(move || -> Result<_, String> {
                        let now = c.now().map_err(|e| e.to_string())?;
                        s.record(&job, Answer::Delivery(result), now).map_err(|e| e.to_string())
                    })
                    .await;
                    if let Ok(Err(cause)) = recorded {
                        tracing::warn!(worker = "webhooks", delivery = %id, %cause, "attempt not recorded; its lease gives it back");
                    }
                    drop((slot, place));
                });
            }
        }
        // Attempts in flight finish (each within its timeout) and are recorded.
        while sending.join_next().await.is_some() {}
    });
}

/// The attempts in flight per account on this instance; a `Place` gives its place back when
/// dropped (its task ended, however).
#[derive(Default)]
struct InFlight(std::sync::Mutex<std::collections::HashMap<credits_domain::ids::AccountId, u32>>);

struct Place(Arc<InFlight>, credits_domain::ids::AccountId);

impl InFlight {
    fn snapshot(&self) -> Vec<(credits_domain::ids::AccountId, u32)> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().map(|(a, n)| (*a, *n)).collect()
    }

    fn take(self: &Arc<Self>, account: credits_domain::ids::AccountId) -> Place {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(account).or_default() += 1;
        Place(self.clone(), account)
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut map = self.0.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.1);
            }
        }
    }
}

/// One attempt of one delivery.
async fn attempt(
    key: &credits_webhooks::seal::SealingKey,
    d: &credits_domain::notify::store::DueDelivery,
    policy: credits_webhooks::deliver::Policy,
) -> credits_domain::notify::store::AttemptResult {
    use credits_domain::notify::store::AttemptResult;
    use credits_domain::notify::webhooks::DELIVERY_TIMEOUT;
    use credits_webhooks::deliver::{Attempt, Outcome, deliver};
    let secret = match key.open(&d.secret_sealed, d.endpoint.as_bytes()) {
        Ok(secret) => secret,
        Err(e) => return AttemptResult::Failed { status: None, error: e.to_string() },
    };
    let attempt = Attempt {
        url: &d.url,
        id: &d.event_id,
        body: d.body.as_bytes(),
        secret: &secret,
        timestamp: chrono::Utc::now().timestamp(),
    };
    match deliver(attempt, policy, DELIVERY_TIMEOUT).await {
        Outcome::Delivered { status } => AttemptResult::Delivered { status },
        Outcome::Answered { status } => {
            AttemptResult::Failed { status: Some(status), error: format!("answered {status}") }
        }
        Outcome::Unreachable { error } => AttemptResult::Failed { status: None, error },
        Outcome::Refused { reason } => AttemptResult::Failed { status: None, error: reason },
    }
}
