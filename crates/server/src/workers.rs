//! Background work in `credits serve` / `credits worker` (section 7): three loops, each with its
//! own interval and its own time budget, so a slow SMTP server or a slow Stripe delays only its
//! own work:
//! - sweeps: release holds past their TTL, expire buckets, refresh Enterprise allowances, end
//!   plans, forget old idempotency records;
//! - mail: send what the outbox holds;
//! - payment jobs: the Stripe calls changes decided (R18).
//!
//! Safe on several instances: the store claims each account, mail and job with
//! `FOR UPDATE SKIP LOCKED`. A failed round (the database away) is logged and retried.

use std::sync::Arc;
use std::time::{Duration, Instant};

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
pub fn sweep_once(store: &dyn Store, clock: &dyn Clock, batch: i64, purge: bool) -> Result<[usize; 4], String> {
    let now = clock.now().map_err(|e| e.to_string())?;
    let holds = store.release_expired_holds(now, batch).map_err(|e| e.to_string())?;
    let expired = store.expire_buckets(now, batch).map_err(|e| e.to_string())?;
    let refreshed = store.refresh_contracts(now, batch).map_err(|e| e.to_string())?
        + store.end_plans(now, batch).map_err(|e| e.to_string())?;
    let purged = if purge { store.purge_idempotency(now).map_err(|e| e.to_string())? } else { 0 };
    Ok([holds, expired, refreshed, purged])
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
    spawn_loop(&mut tasks, "sweeps", interval, stopped.clone(), move |n| {
        let [holds, expired, refreshed, purged] = sweep_once(s.as_ref(), c.as_ref(), batch, n % purge_every == 1)?;
        if holds + expired + refreshed + purged > 0 {
            tracing::info!(
                holds_released = holds,
                buckets_expired = expired,
                contracts_refreshed = refreshed,
                idempotency_purged = purged,
                "background round"
            );
        }
        Ok(())
    });

    if let Some(mailer) = services.mailer.clone() {
        let (s, c) = (store.clone(), clock.clone());
        spawn_loop(&mut tasks, "mail", interval, stopped.clone(), move |_| {
            let now = c.now().map_err(|e| e.to_string())?;
            let d = s
                .deliver_mail(now, batch, mailer.as_ref(), Instant::now() + ROUND_BUDGET)
                .map_err(|e| e.to_string())?;
            if d.sent + d.retried + d.dead > 0 {
                tracing::info!(sent = d.sent, retried = d.retried, dead = d.dead, "outbox round");
            }
            Ok(())
        });
    }

    let gateway: Arc<dyn PaymentGateway> = services.state.payments.clone();
    let (s, c) = (store.clone(), clock.clone());
    spawn_loop(&mut tasks, "payment jobs", interval, stopped, move |_| {
        let now = c.now().map_err(|e| e.to_string())?;
        let done = s
            .run_payment_jobs(now, batch, gateway.as_ref(), Instant::now() + ROUND_BUDGET)
            .map_err(|e| e.to_string())?;
        if done > 0 {
            tracing::info!(jobs = done, "payment jobs done");
        }
        Ok(())
    });
    Workers { stop, tasks }
}
