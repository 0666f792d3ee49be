//! Group commit of runs. The starts, completions and cancellations waiting in an instance are
//! written together: whatever is queued when a writer is free (no added wait when the queue is
//! empty), up to `runs.batch_max`, in ONE transaction, with one commit.
//!
//! A batch takes, without waiting, its requests' idempotency keys and then their accounts in id
//! order (`SKIP LOCKED`: two batches, on any number of instances, never wait on each other in a
//! cycle); reads its accounts' wallets and the runs its completions and cancellations name, one
//! statement each; judges each request in arrival order with the same code a request alone runs
//! (`PgStore::run_work`: the domain's `decide_run`, `decide_capture`, `decide_cancel`) against
//! the state the previous requests of the batch left, kept in memory; gathers what they write
//! (`runs::Pending`) and makes it with one statement, before anything that would read it (a start
//! judged on its account's runs, a read from the database, the settle); settles what the batch
//! tells each account (`notify::settle`) once; commits once; then answers each request. Every
//! refusal is decided before its request writes anything, so a refused request writes nothing
//! and disturbs no other.
//! A request whose key or account another transaction holds, and every request of a batch whose
//! transaction failed before its commit, is written alone on a thread of its own: it waits for
//! the lock as any request does, and for one of the account's few places on this instance
//! (`database.per_account_connections`, up to `database.lock_timeout_ms`, then ACCOUNT_BUSY).
//!
//! Requests wait in the queue holding neither a thread nor a connection: the caller hands its
//! request over (`RunStore::submit_run`) and awaits the answer. Only the writers
//! (`runs.batch_writers` threads at most per instance, started when requests come and ended
//! after `LINGER` without any) hold a connection, one each, while they write a batch.

use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use credits_domain::error::{RunError, StoreError};
use credits_domain::ids::AccountId;
use credits_domain::ports::RunReply;
use credits_domain::runs::{RunAnswer, RunJob, RunOp};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;
use uuid::Uuid;

use crate::idempotency::lock_name;
use crate::ledger::{TxLog, load_wallets, lock_accounts_skipping};
use crate::runs::{Held, Pending, load_runs};
use crate::{Fail, PgStore, idempotency, notify, store_error};

/// How runs are written together.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// `runs.batch_max`: the most requests one transaction takes.
    pub batch_max: usize,
    /// `runs.batch_writers`: how many batches one instance writes at once.
    pub writers: usize,
    /// `database.per_account_connections`: how many of one account's requests are written
    /// alone at once on this instance.
    pub alone_places: usize,
    /// `database.lock_timeout_ms`: the longest a request waits for one of those places.
    pub wait: Duration,
}

impl Default for Batching {
    fn default() -> Batching {
        Batching { batch_max: 256, writers: 2, alone_places: 2, wait: Duration::from_millis(2000) }
    }
}

/// How long a writer with nothing to write waits for more before its thread ends.
const LINGER: Duration = Duration::from_millis(500);

struct Waiting {
    job: RunJob,
    reply: RunReply,
}

#[derive(Default)]
struct Queue {
    pending: VecDeque<Waiting>,
    /// Writers' threads alive, and how many of them wait for work.
    writers: usize,
    idle: usize,
    /// Accounts in a batch being written: their later requests wait for the next batch, so two
    /// writers of one instance never contend for one account's lock.
    writing: HashSet<AccountId>,
}

/// An instance's run writer: the queue, its writers, and the places for requests written alone.
pub(crate) struct Batcher {
    settings: Batching,
    queue: Mutex<Queue>,
    /// Signalled when there may be something for an idle writer to take.
    work: Condvar,
    alone: AloneGate,
}

impl Batcher {
    pub fn new(settings: Batching) -> Batcher {
        Batcher {
            settings,
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            alone: AloneGate {
                places: settings.alone_places.max(1),
                wait: settings.wait,
                inside: Mutex::new(HashMap::new()),
                freed: Condvar::new(),
            },
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue `job`; a writer answers it through `reply`. Never waits: an idle writer is woken, or
    /// a writer's thread started when fewer than `runs.batch_writers` are alive (a writer's
    /// thread ends after `LINGER` with nothing to write).
    pub fn submit(&self, store: &PgStore, job: RunJob, reply: RunReply) {
        let mut q = self.queue();
        q.pending.push_back(Waiting { job, reply });
        if q.idle > 0 {
            self.work.notify_one();
            return;
        }
        if q.writers >= self.settings.writers.max(1) {
            return; // a busy writer takes it when its batch is done
        }
        q.writers += 1;
        drop(q);
        let writer = store.clone();
        let started = std::thread::Builder::new().name("run-writer".into()).spawn(move || writer.runs.write(&writer));
        if let Err(e) = started {
            tracing::error!(cause = %e, "a run writer's thread did not start");
            let mut q = self.queue();
            q.writers -= 1;
            if q.writers == 0 {
                // No writer will take them: answer rather than strand them.
                let stranded: Vec<Waiting> = q.pending.drain(..).collect();
                drop(q);
                for w in stranded {
                    (w.reply)(Err(RunError::Store(StoreError::Unavailable("the run writer did not start".into()))));
                }
            }
        }
    }

    /// A writer's thread: batch after batch, until nothing has come for `LINGER`.
    fn write(&self, store: &PgStore) {
        while let Some((turn, batch)) = self.next_batch() {
            let (jobs, replies): (Vec<RunJob>, Vec<RunReply>) = batch.into_iter().map(|w| (w.job, w.reply)).unzip();
            // A panic in a batch fails its requests, not the writer.
            let outcomes = catch_unwind(AssertUnwindSafe(|| store.write_batch(&jobs))).unwrap_or_else(|_| {
                tracing::error!(requests = jobs.len(), "a batch of runs panicked");
                jobs.iter()
                    .map(|_| Some(Err(RunError::Store(StoreError::Internal("the batch failed".into())))))
                    .collect()
            });
            drop(turn);
            for ((job, reply), outcome) in jobs.into_iter().zip(replies).zip(outcomes) {
                match outcome {
                    Some(answer) => reply(answer),
                    None => self.alone_later(store, job, reply),
                }
            }
        }
    }

    /// The queued requests of accounts no other writer is writing, in arrival order, up to
    /// `batch_max`; waiting for some up to `LINGER`. `None`: this writer's thread ends.
    fn next_batch(&self) -> Option<(Turn<'_>, Vec<Waiting>)> {
        let mut q = self.queue();
        let mut lingered = false;
        loop {
            let Queue { pending, writing, idle, .. } = &mut *q;
            let (mut taken, mut kept) = (Vec::new(), VecDeque::new());
            while let Some(w) = pending.pop_front() {
                if taken.len() < self.settings.batch_max.max(1) && !writing.contains(&w.job.account) {
                    taken.push(w);
                } else {
                    kept.push_back(w);
                }
            }
            *pending = kept;
            if !taken.is_empty() {
                let mut accounts = Vec::new();
                for w in &taken {
                    if writing.insert(w.job.account) {
                        accounts.push(w.job.account);
                    }
                }
                if !pending.is_empty() && *idle > 0 {
                    self.work.notify_one();
                }
                return Some((Turn { batcher: self, accounts }, taken));
            }
            if lingered {
                q.writers -= 1;
                return None;
            }
            q.idle += 1;
            let (guard, waited) = self.work.wait_timeout(q, LINGER).unwrap_or_else(|p| p.into_inner());
            q = guard;
            q.idle -= 1;
            lingered = waited.timed_out();
        }
    }

    /// A request a batch could not take (its key or account held elsewhere, or its batch failed
    /// before its commit), written alone on a thread of its own: it waits for its locks as any
    /// request alone does, and the writer goes on meanwhile.
    fn alone_later(&self, store: &PgStore, job: RunJob, reply: RunReply) {
        let writer = store.clone();
        let started =
            std::thread::Builder::new().name("run-alone".into()).spawn(move || reply(writer.runs.alone(&writer, job)));
        if let Err(e) = started {
            // The reply went with the closure: its caller hears that the writer dropped it.
            tracing::error!(cause = %e, "a run written alone did not start");
        }
    }

    /// A request written alone, as before batching: its own transaction, waiting for its locks.
    fn alone(&self, store: &PgStore, job: RunJob) -> RunAnswer {
        let _place = self.alone.enter(job.account)?;
        store.once_tx(
            job.idem.as_ref(),
            job.now,
            || RunError::IdempotencyKeyReused,
            |conn, log| {
                let mut pending = Pending::default();
                let view = store.run_work(conn, log, &job, None, &mut pending)?;
                pending.write(conn)?;
                Ok(view)
            },
        )
    }
}

/// A writer's batch's accounts, marked as being written until dropped (also when the batch
/// panicked); then an idle writer is told they are free.
struct Turn<'a> {
    batcher: &'a Batcher,
    accounts: Vec<AccountId>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut q = self.batcher.queue();
        for a in &self.accounts {
            q.writing.remove(a);
        }
        if !q.pending.is_empty() && q.idle > 0 {
            self.batcher.work.notify_one();
        }
    }
}

/// Section 7 for requests written alone: at most `places` of one account's hold a connection at
/// once on this instance; the others wait here, holding nothing, up to `wait`: then ACCOUNT_BUSY.
struct AloneGate {
    places: usize,
    wait: Duration,
    inside: Mutex<HashMap<AccountId, usize>>,
    freed: Condvar,
}

struct Place<'a> {
    gate: &'a AloneGate,
    account: AccountId,
}

impl AloneGate {
    fn enter(&self, account: AccountId) -> Result<Place<'_>, StoreError> {
        let deadline = Instant::now() + self.wait;
        let mut inside = self.inside.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let n = inside.entry(account).or_insert(0);
            if *n < self.places {
                *n += 1;
                return Ok(Place { gate: self, account });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::Busy("the account's other requests hold its places on this instance".into()));
            }
            inside = self.freed.wait_timeout(inside, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut inside = self.gate.inside.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = inside.get_mut(&self.account) {
            *n -= 1;
            if *n == 0 {
                inside.remove(&self.account);
            }
        }
        self.gate.freed.notify_all();
    }
}

#[derive(QueryableByName)]
struct Taken {
    #[diesel(sql_type = Text)]
    name: String,
}

/// R11: the keys' advisory locks, each taken if free (never waited for: a request alone takes its
/// key before its account, so a batch that waited for a key while holding accounts could deadlock).
fn try_lock_keys(conn: &mut PgConnection, names: Vec<String>) -> QueryResult<HashSet<String>> {
    if names.is_empty() {
        return Ok(HashSet::new());
    }
    let taken: Vec<Taken> = crate::prepared::TryLockKeys { names }.load(conn)?;
    Ok(taken.into_iter().map(|t| t.name).collect())
}

impl PgStore {
    /// Write `jobs` in one transaction (see the module's note): each one's answer (written and
    /// committed, or refused), in order, or `None` for one to be written alone.
    pub(crate) fn write_batch(&self, jobs: &[RunJob]) -> Vec<Option<RunAnswer>> {
        let all_alone = || jobs.iter().map(|_| None).collect();
        let Ok(mut conn) = self.conn() else { return all_alone() };
        let Some(now) = jobs.iter().map(|j| j.now).max() else { return Vec::new() };
        let mut log = TxLog::default();
        let mut answers: Vec<Option<RunAnswer>> = jobs.iter().map(|_| None).collect();
        let mut committing = false;
        let written = conn.build_transaction().run(|conn| -> Result<(), Fail<RunError>> {
            // The batch's statements run their generic plans. Left to choose, PostgreSQL kept
            // planning `WriteRuns` (six data-modifying CTEs over 38 arrays) anew at each batch:
            // a custom plan, knowing the arrays' lengths, always looks cheaper than the generic
            // one, whose plan is the same. bench/notes.md has the measurement.
            conn.batch_execute("SET LOCAL plan_cache_mode = force_generic_plan")?;
            let mut names: Vec<String> = jobs.iter().filter_map(|j| j.idem.as_ref()).map(lock_name).collect();
            names.sort();
            names.dedup();
            let keys = try_lock_keys(conn, names)?;
            let keyed = |j: &RunJob| j.idem.as_ref().is_none_or(|k| keys.contains(&lock_name(k)));
            let mut ids: Vec<Uuid> = jobs.iter().filter(|j| keyed(j)).map(|j| j.account.0).collect();
            ids.sort();
            ids.dedup();
            // The members its starts name (R25), with their use this month (R26), read with the
            // accounts' lock in the same round trip.
            let named: Vec<(Uuid, Uuid)> = jobs
                .iter()
                .filter(|j| keyed(j))
                .filter_map(|j| match &j.op {
                    RunOp::Start { req, .. } => req.member.map(|m| (j.account.0, m)),
                    _ => None,
                })
                .collect();
            let month = credits_domain::runs::month_start(now);
            let held = |row: crate::rows::AccountRow, known: Vec<crate::members::KnownRow>| {
                let mut members: HashMap<Uuid, Option<crate::runs::KnownMember>> =
                    named.iter().filter(|(a, _)| *a == row.id).map(|(_, m)| (*m, None)).collect();
                for (member, used) in known {
                    members.insert(member.id, Some(crate::runs::KnownMember { row: member, used }));
                }
                let month = (!members.is_empty()).then_some(month);
                (row.id, Held { row, wallet: None, runs: HashMap::new(), members, month })
            };
            let mut locked: HashMap<Uuid, Held> = if named.is_empty() {
                lock_accounts_skipping(conn, &mut log, &ids)?.into_iter().map(|row| held(row, Vec::new())).collect()
            } else {
                crate::members::lock_accounts_with_members(conn, &mut log, &ids, &named, month)?
                    .into_iter()
                    .map(|(row, known)| held(row, known))
                    .collect()
            };
            // The wallets of the batch's accounts, in one round trip.
            let accounts: Vec<Uuid> = locked.keys().copied().collect();
            for (id, wallet) in load_wallets(conn, &accounts)? {
                if let Some(held) = locked.get_mut(&id) {
                    held.wallet = Some(wallet);
                }
            }
            // The runs its completions and cancellations name, in one round trip.
            let finishing: Vec<Uuid> = jobs
                .iter()
                .filter(|j| keyed(j) && locked.contains_key(&j.account.0))
                .filter_map(|j| match j.op {
                    RunOp::Complete { run, .. } | RunOp::Cancel { run, .. } => Some(run.0),
                    RunOp::Start { .. } => None,
                })
                .collect();
            for run in load_runs(conn, &finishing)? {
                if let Some(held) = locked.get_mut(&run.account_id) {
                    held.runs.insert(run.id, run);
                }
            }
            // Their keys' records, in one round trip.
            let mut keys = idempotency::Keys::read(
                conn,
                jobs.iter().filter(|j| keyed(j) && locked.contains_key(&j.account.0)).filter_map(|j| j.idem.as_ref()),
            )?;
            let mut pending = Pending::default();
            let mut captured: HashSet<Uuid> = HashSet::new();
            for (job, answer) in jobs.iter().zip(answers.iter_mut()) {
                if !keyed(job) {
                    continue;
                }
                let Some(held) = locked.get_mut(&job.account.0) else { continue };
                let mut share = TxLog::default();
                // The batch holds the key's lock (`Keys::once`). No savepoint: every refusal (the rules', R11's replay or reuse) is decided before
                // the request writes anything (`run_work`), so a refused request leaves nothing to
                // roll back; a database error fails the whole batch, which is then written request
                // by request. The property test compares each batch with the requests one by one.
                let done = keys.once(
                    job.idem.as_ref(),
                    job.now,
                    || RunError::IdempotencyKeyReused,
                    || self.run_work(conn, &mut share, job, Some(held), &mut pending),
                );
                match done {
                    Ok(view) => {
                        if share.captured() {
                            captured.insert(job.account.0);
                        }
                        log.absorb(share);
                        *answer = Some(Ok(view));
                    }
                    Err(Fail::Rule(refused)) => *answer = Some(Err(refused)),
                    Err(Fail::Db(e)) => return Err(Fail::Db(e)),
                }
            }
            pending.write(conn)?;
            keys.write(conn)?;
            // Each account's auto top-up is judged on whether its own runs captured.
            notify::settle(conn, &self.catalog, &self.notify, log.locked(), &|id| captured.contains(&id), now)?;
            committing = true;
            Ok(())
        });
        match written {
            Ok(()) => {
                if let Some(observer) = &self.observer {
                    observer.batch_committed(answers.iter().filter(|a| a.is_some()).count());
                    let posted = log.into_posted();
                    if !posted.is_empty() {
                        observer.committed(&posted);
                    }
                }
                answers
            }
            // The commit itself failed: what it wrote may or may not be there, so a written request
            // is answered with the failure (its retry, with its key, is judged afresh); a refused
            // one wrote nothing and is written alone.
            Err(Fail::Db(e)) if committing => {
                let error = store_error(e);
                answers
                    .into_iter()
                    .map(|a| match a {
                        Some(Ok(_)) => Some(Err(RunError::Store(error.clone()))),
                        _ => None,
                    })
                    .collect()
            }
            // Nothing was written: each request alone, so one bad request cannot fail its neighbours.
            Err(_) => all_alone(),
        }
    }

    /// Write `jobs` as one batch of this instance's writer would, and those it could not take
    /// alone: each request's answer, in order (tests compare this with writing them one by one).
    pub fn write_runs_together(&self, jobs: Vec<RunJob>) -> Vec<RunAnswer> {
        let outcomes = self.write_batch(&jobs);
        jobs.into_iter()
            .zip(outcomes)
            .map(|(job, answer)| match answer {
                Some(answer) => answer,
                None => self.runs.alone(self, job),
            })
            .collect()
    }

    /// Write `job` alone, in its own transaction, as before batching.
    pub fn write_run_alone(&self, job: RunJob) -> RunAnswer {
        self.runs.alone(self, job)
    }
}
