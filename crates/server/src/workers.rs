//! Background work in `credits serve` / `credits worker`: every `workers.interval_seconds`,
//! release holds past their TTL, expire buckets, refresh Enterprise allowances and forget old
//! idempotency records. Safe on several instances: the store claims each account with
//! `FOR UPDATE SKIP LOCKED`. A failed round (the database away) is logged and retried.

use std::sync::Arc;
use std::time::Duration;

use credits_domain::mail::Mailer;
use credits_domain::payments::PaymentGateway;
use credits_domain::ports::{Clock, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::Services;
use crate::settings::Settings;

pub struct Workers {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Workers {
    /// Stop after the round in progress, if any.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        tracing::info!("workers stopped");
    }
}

/// One round of every sweep; returns what each did.
pub fn run_once(
    store: &dyn Store,
    clock: &dyn Clock,
    mailer: Option<&dyn Mailer>,
    gateway: &dyn PaymentGateway,
    batch: i64,
    purge: bool,
) -> Result<[usize; 4], String> {
    let now = clock.now().map_err(|e| e.to_string())?;
    // R18: Stripe calls that changes decided (cancel and refund a second subscription).
    let jobs = store.run_payment_jobs(now, batch, gateway).map_err(|e| e.to_string())?;
    if jobs > 0 {
        tracing::info!(jobs, "payment jobs done");
    }
    if let Some(mailer) = mailer {
        let d = store.deliver_mail(now, batch, mailer).map_err(|e| e.to_string())?;
        if d.sent + d.retried + d.dead > 0 {
            tracing::info!(sent = d.sent, retried = d.retried, dead = d.dead, "outbox round");
        }
    }
    let holds = store.release_expired_holds(now, batch).map_err(|e| e.to_string())?;
    let expired = store.expire_buckets(now, batch).map_err(|e| e.to_string())?;
    let refreshed = store.refresh_contracts(now, batch).map_err(|e| e.to_string())?
        + store.end_plans(now, batch).map_err(|e| e.to_string())?;
    let purged = if purge { store.purge_idempotency(now).map_err(|e| e.to_string())? } else { 0 };
    Ok([holds, expired, refreshed, purged])
}

pub fn spawn(settings: &Settings, services: &Services) -> Workers {
    let (stop, mut stopped) = watch::channel(false);
    let store: Arc<dyn Store> = services.store.clone();
    let clock: Arc<dyn Clock> = services.state.clock.clone();
    let mailer: Option<Arc<dyn Mailer>> = services.mailer.clone();
    let gateway: Arc<dyn PaymentGateway> = services.state.payments.clone();
    let interval = Duration::from_secs(settings.workers.interval_seconds);
    let batch = settings.workers.batch;
    let task = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut round: u64 = 0;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stopped.changed() => break,
            }
            round += 1;
            let (store, clock, mailer, gateway) = (store.clone(), clock.clone(), mailer.clone(), gateway.clone());
            // Idempotency records are purged about once a minute; the rest every round.
            let purge = round % (60 / interval.as_secs().max(1)).max(1) == 1;
            match tokio::task::spawn_blocking(move || {
                run_once(store.as_ref(), clock.as_ref(), mailer.as_deref(), gateway.as_ref(), batch, purge)
            })
            .await
            {
                Ok(Ok([holds, expired, refreshed, purged])) => {
                    if holds + expired + refreshed + purged > 0 {
                        tracing::info!(
                            holds_released = holds,
                            buckets_expired = expired,
                            contracts_refreshed = refreshed,
                            idempotency_purged = purged,
                            "background round"
                        );
                    }
                }
                Ok(Err(cause)) => {
                    tracing::warn!(%cause, "background round failed; retrying next round")
                }
                Err(cause) => tracing::error!(%cause, "background round panicked"),
            }
        }
    });
    Workers { stop, task }
}
