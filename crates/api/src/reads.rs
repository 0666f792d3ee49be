//! Balance reads, coalesced. A balance is one small statement; on a busy service most of its cost
//! is the round trip to PostgreSQL and the hand-off to a blocking thread, not the query. So a
//! request for a balance waits in a queue, and a few dedicated threads (Diesel stays off the async
//! threads) each take what is waiting, up to `MAX_BATCH`, and read it in one statement.
//!
//! Nothing waits for company: a reader takes what is queued when it is free, so a lone request is
//! read at once, alone. Every answer comes from a statement that began after its request arrived,
//! so a caller whose write was acknowledged before it asked sees that write.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use credits_domain::error::{AccountError, StoreError};
use credits_domain::ids::AccountId;
use credits_domain::ports::{Clock, Store};
use credits_domain::views::BalanceView;
use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;
use crate::metrics::Metrics;

/// The most balances one statement reads.
const MAX_BATCH: usize = 128;
/// Requests that may wait for a reader before new ones wait to be queued.
const QUEUE: usize = 4096;

type Answer = Result<BalanceView, AccountError>;

struct Pending {
    account: AccountId,
    reply: oneshot::Sender<Answer>,
}

/// The queue of balance requests and its reader threads (they end when the last handle is dropped).
pub struct BalanceReads {
    queue: mpsc::Sender<Pending>,
    /// Section 7: the longest a balance request waits for its answer (then 503, retry).
    wait: std::time::Duration,
}

impl BalanceReads {
    /// Start `readers` threads reading balances from `store` at `clock`'s time.
    pub fn start(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        readers: usize,
        wait: std::time::Duration,
    ) -> BalanceReads {
        let (queue, waiting) = mpsc::channel(QUEUE);
        let waiting = Arc::new(Mutex::new(waiting));
        for n in 0..readers.max(1) {
            let (waiting, store, clock, metrics) = (waiting.clone(), store.clone(), clock.clone(), metrics.clone());
            std::thread::Builder::new()
                .name(format!("balance-reader-{n}"))
                .spawn(move || read_balances(&waiting, store.as_ref(), clock.as_ref(), &metrics))
                .expect("a balance reader thread starts");
        }
        BalanceReads { queue, wait }
    }

    /// One account's balance (R6), read with whatever else is waiting.
    pub async fn balance(&self, account: AccountId) -> Result<BalanceView, ApiError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || ApiError::from(AccountError::Store(StoreError::Unavailable("balance readers stopped".into())));
        let late = || ApiError::from(AccountError::Store(StoreError::Unavailable("no balance reader in time".into())));
        let asked = async {
            self.queue.send(Pending { account, reply }).await.map_err(|_| stopped())?;
            answer.await.map_err(|_| stopped())
        };
        Ok(tokio::time::timeout(self.wait, asked).await.map_err(|_| late())???)
    }
}

/// A reader: take what waits (blocking for the first), read it in one statement, answer each.
fn read_balances(waiting: &Mutex<mpsc::Receiver<Pending>>, store: &dyn Store, clock: &dyn Clock, metrics: &Metrics) {
    loop {
        let batch = {
            // While one reader queries, the next collects: the lock is held only to take a batch.
            let Ok(mut queue) = waiting.lock() else { return };
            let Some(first) = queue.blocking_recv() else { return };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH
                && let Ok(next) = queue.try_recv()
            {
                batch.push(next);
            }
            batch
        };
        metrics.balance_batch(batch.len());
        let ids: Vec<AccountId> = batch.iter().map(|p| p.account).collect();
        let read = catch_unwind(AssertUnwindSafe(|| clock.now().and_then(|now| store.balances(&ids, now))))
            .unwrap_or_else(|_| Err(StoreError::Internal("the balance read panicked".into())));
        match read {
            Ok(views) => {
                for (pending, view) in batch.into_iter().zip(views) {
                    let _ = pending.reply.send(view.ok_or(AccountError::NotFound));
                }
            }
            Err(e) => {
                tracing::error!(cause = %e, accounts = ids.len(), "balance read failed");
                for pending in batch {
                    let _ = pending.reply.send(Err(AccountError::Store(e.clone())));
                }
            }
        }
    }
}
