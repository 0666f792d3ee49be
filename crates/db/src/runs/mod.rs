//! Runs: start (hold or capture), quote, read, complete, cancel. Each write locks the account's
//! row first, so concurrent runs on one account, on any number of instances, are judged one
//! after the other against the balance the previous one left (R6).

use chrono::{DateTime, Utc};
use credits_domain::burn::{Portion, Wallet};
use credits_domain::credits::Credits;
use credits_domain::error::RunError;
use credits_domain::ids::{AccountId, BucketId, EntryId, RunId};
use credits_domain::ports::{RunReply, RunStore};
use credits_domain::runs::{
    Channel, Charge, FinishRefusal, Quote, RunJob, RunMember, RunOp, RunRequest, RunStatus, decide_cancel,
    decide_capture, decide_quote, decide_run, month_start,
};
use credits_domain::trial::TrialKind;
use credits_domain::views::{ChargeView, EntryType, RunView};
use diesel::prelude::*;
use uuid::Uuid;

use crate::accounts::record_trial;
use crate::ledger::{EntryMeta, TxLog, load_wallet, lock_account, post_all, read_account};
use crate::rows::{AccountRow, RunRow};
use crate::schema::{buckets, ledger_entries, run_reservations, runs};
use crate::{Fail, PgStore, read_tx};

mod facts;
use facts::RunFacts;

fn denied(d: credits_domain::runs::Denial) -> Fail<RunError> {
    Fail::Rule(RunError::Denied(d))
}

fn finish_refused(r: FinishRefusal) -> Fail<RunError> {
    match r {
        FinishRefusal::Forbidden(why) => Fail::Rule(RunError::Forbidden(why.to_string())),
        FinishRefusal::NotHeld(status) => Fail::Rule(RunError::Conflict(format!("the run is already {status}"))),
        FinishRefusal::InvalidParameters(message) => {
            denied(credits_domain::runs::Denial::InvalidParameters { message })
        }
    }
}

/// R20: the API key a run starts through.
fn key_of(channel: &Channel) -> Option<Uuid> {
    match channel {
        Channel::Api { key, .. } => Some(key.id),
        Channel::Canvas => None,
    }
}

fn found_account(row: Option<AccountRow>) -> Result<credits_domain::account::Account, Fail<RunError>> {
    row.map(|r| r.to_domain()).transpose()?.ok_or(Fail::Rule(RunError::NotFound))
}

/// Writes judged and not yet made: the runs that start and the held runs that finish, with
/// their debits. A batch makes all of them with one statement (`WriteRuns`), a request alone its
/// own. Made before anything that would read them: a start judged on more than its account's
/// wallet (R9's trial use, R12's window, R21's key spend), a wallet or run read from the
/// database, an expiry entry (so each account's entries keep their order), the batch's settle.
#[derive(Default)]
pub(crate) struct Pending {
    statement: crate::prepared::WriteRuns,
    accounts: std::collections::HashSet<Uuid>,
}

impl Pending {
    fn debit(&mut self, log: &mut TxLog, row: &RunRow, debits: &[Portion], at: DateTime<Utc>) {
        let s = &mut self.statement;
        for p in debits {
            s.debit_ids.push(EntryId::generate().0);
            s.debit_accounts.push(row.account_id);
            s.debit_buckets.push(p.bucket_id.0);
            s.debit_credits.push(p.credits.negated().get());
            s.debit_runs.push(row.id);
            s.debit_at.push(at);
            log.posted(EntryType::Debit, p.credits.negated());
        }
    }

    /// A run that starts: its row, the reservations of a hold (`held`) or the debits of a
    /// capture (`debited`) with their buckets' moves.
    fn start(&mut self, log: &mut TxLog, row: RunRow, held: &[Portion], debited: &[Portion]) {
        self.debit(log, &row, debited, row.created_at);
        self.accounts.insert(row.account_id);
        let s = &mut self.statement;
        for p in held {
            s.held_runs.push(row.id);
            s.held_buckets.push(p.bucket_id.0);
            s.held_accounts.push(row.account_id);
            s.held_credits.push(p.credits.get());
        }
        s.ids.push(row.id);
        s.account_ids.push(row.account_id);
        s.model_ids.push(row.model_id);
        s.channels.push(row.channel);
        s.workflow_ids.push(row.workflow_id);
        s.images.push(row.images);
        s.duration_seconds.push(row.duration_seconds);
        s.costs.push(row.cost);
        s.statuses.push(row.status);
        s.captured_credits.push(row.captured_credits);
        s.captured_images.push(row.captured_images);
        s.captured_duration_seconds.push(row.captured_duration_seconds);
        s.trial_kinds.push(row.trial_kind);
        s.trial_generations.push(row.trial_generations);
        s.trial_window_opens_at.push(row.trial_window_opens_at);
        s.trial_window_closes_at.push(row.trial_window_closes_at);
        s.hold_expires_at.push(row.hold_expires_at);
        s.created_at.push(row.created_at);
        s.finished_at.push(row.finished_at);
        s.api_key_ids.push(row.api_key_id);
        s.member_ids.push(row.member_id);
    }

    /// A held run that finishes as `row` says (captured or released): its row, its reservations
    /// closed, the debits of a capture with their buckets' moves.
    fn finish(&mut self, log: &mut TxLog, row: &RunRow, debits: &[Portion], at: DateTime<Utc>) {
        self.debit(log, row, debits, at);
        self.accounts.insert(row.account_id);
        let s = &mut self.statement;
        s.finished_ids.push(row.id);
        s.closing_runs.push(row.id);
        s.finished_statuses.push(row.status.clone());
        s.finished_captured_credits.push(row.captured_credits);
        s.finished_captured_images.push(row.captured_images);
        s.finished_captured_duration_seconds.push(row.captured_duration_seconds);
        s.finished_at_times.push(row.finished_at);
        s.finished_release_reasons.push(row.release_reason.clone());
    }

    /// Whether a write of `account` waits to be made.
    fn touches(&self, account: AccountId) -> bool {
        self.accounts.contains(&account.0)
    }

    /// Make every waiting write, in one round trip.
    pub(crate) fn write(&mut self, conn: &mut PgConnection) -> QueryResult<()> {
        if self.accounts.is_empty() {
            return Ok(());
        }
        self.accounts.clear();
        std::mem::take(&mut self.statement).execute(conn)?;
        Ok(())
    }
}

/// The charges of `portions` as a run shows them, each with its bucket's kind from `wallet` (the
/// wallet the charge was judged on, so its buckets are in it).
fn charge_views(wallet: &Wallet, portions: &[Portion]) -> QueryResult<Vec<ChargeView>> {
    portions
        .iter()
        .map(|p| {
            let bucket = wallet
                .bucket(p.bucket_id)
                .ok_or_else(|| crate::rows::undecodable("bucket of a charge", &p.bucket_id.0.to_string()))?;
            Ok(ChargeView { bucket_id: p.bucket_id, kind: bucket.kind, credits: p.credits })
        })
        .collect()
}

/// A run just started, as `run_view` would show it, built from what the transaction wrote (no
/// second read on the hot path) through the same constructor.
fn fresh_view(row: &RunRow, charge: &Charge, wallet: &Wallet, captured: bool) -> QueryResult<RunView> {
    let portions = match charge {
        Charge::Credits(portions) => charge_views(wallet, portions)?,
        Charge::Trial(_) => Vec::new(),
    };
    let (charged, reserved) = if captured { (portions, Vec::new()) } else { (Vec::new(), portions) };
    view(row, row.status()?, charged, reserved)
}

/// A run as the service shows it, from its row, its status now (a held run past its expiry is
/// released) and its charges: the one constructor of both a fresh run's view and a read one's.
fn view(row: &RunRow, status: RunStatus, charged: Vec<ChargeView>, reserved: Vec<ChargeView>) -> QueryResult<RunView> {
    Ok(RunView {
        id: RunId(row.id),
        account_id: AccountId(row.account_id),
        model: row.model_id.clone(),
        status,
        cost: Credits::new(row.cost),
        images: row.images,
        duration_seconds: row.duration_seconds,
        workflow_id: row.workflow_id.clone(),
        channel: row.channel.clone(),
        member_id: row.member_id,
        charged,
        reserved,
        captured_credits: row.captured_credits.map(Credits::new),
        trial: row.trial()?,
        hold_expires_at: if row.status()? == RunStatus::Held { row.hold_expires_at } else { None },
        created_at: row.created_at,
        finished_at: row.finished_at.or(if status == RunStatus::Released { row.hold_expires_at } else { None }),
    })
}

/// The runs `ids`, in one round trip (a batch's completions and cancellations).
pub(crate) fn load_runs(conn: &mut PgConnection, ids: &[Uuid]) -> QueryResult<Vec<RunRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    runs::table.filter(runs::id.eq_any(ids)).select(RunRow::as_select()).load(conn)
}

/// A run as the service shows it: its debits from the ledger, its open reservations.
fn run_view(conn: &mut PgConnection, row: &RunRow, now: DateTime<Utc>) -> QueryResult<RunView> {
    let charged: Vec<(Uuid, String, i64)> = ledger_entries::table
        .inner_join(buckets::table)
        .filter(ledger_entries::run_id.eq(row.id))
        .filter(ledger_entries::entry_type.eq(EntryType::Debit.as_str()))
        .order(ledger_entries::seq.asc())
        .select((ledger_entries::bucket_id, buckets::kind, ledger_entries::credits))
        .load(conn)?;
    let status = row.to_held()?.effective_status(now);
    let reserved: Vec<(Uuid, String, i64)> = if status == RunStatus::Held {
        run_reservations::table
            .inner_join(buckets::table)
            .filter(run_reservations::run_id.eq(row.id))
            .filter(run_reservations::open.eq(true))
            .select((run_reservations::bucket_id, buckets::kind, run_reservations::credits))
            .load(conn)?
    } else {
        Vec::new()
    };
    let to_view = |(bucket, kind, credits): (Uuid, String, i64), sign: i64| -> QueryResult<ChargeView> {
        Ok(ChargeView {
            bucket_id: BucketId(bucket),
            kind: crate::rows::bucket_kind(&kind)?,
            credits: Credits::new(credits * sign),
        })
    };
    view(
        row,
        status,
        charged.into_iter().map(|c| to_view(c, -1)).collect::<QueryResult<_>>()?,
        reserved.into_iter().map(|c| to_view(c, 1)).collect::<QueryResult<_>>()?,
    )
}

fn load_run(conn: &mut PgConnection, account: AccountId, run: RunId) -> Result<RunRow, Fail<RunError>> {
    runs::table
        .filter(runs::id.eq(run.0))
        .filter(runs::account_id.eq(account.0))
        .select(RunRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(Fail::Rule(RunError::NotFound))
}

/// A held run finishes as `row` says (captured or released): its row, reservations and `debits`
/// wait in `pending`; what went back to buckets that expired meanwhile expires now. `wallet` is
/// left as the wallet query would read it after both.
fn finish(
    conn: &mut PgConnection,
    log: &mut TxLog,
    pending: &mut Pending,
    wallet: &mut Wallet,
    row: &RunRow,
    debits: &[Portion],
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let (account, run) = (AccountId(row.account_id), RunId(row.id));
    let touched: Vec<BucketId> = wallet.reservations.iter().filter(|r| r.run_id == run).map(|r| r.bucket_id).collect();
    pending.finish(log, row, debits, now);
    wallet.take(debits);
    wallet.drop_run(run);
    let due = wallet.expirations(now, Some(&touched));
    if !due.is_empty() {
        pending.write(conn)?;
        post_all(conn, log, account, &due, &EntryMeta::new(EntryType::Expire, "bucket expired"), now)?;
        wallet.take(&due);
    }
    wallet.buckets.retain(|b| b.remaining.get() > 0);
    Ok(())
}

impl RunStore for PgStore {
    fn submit_run(&self, job: RunJob, reply: RunReply) {
        self.runs.submit(self, job, reply)
    }

    fn quote(
        &self,
        account_id: AccountId,
        channel: &Channel,
        req: &RunRequest,
        now: DateTime<Utc>,
    ) -> Result<Quote, RunError> {
        let mut conn = self.conn()?;
        let catalog = &self.catalog;
        read_tx(&mut conn, |conn| {
            let account = found_account(read_account(conn, account_id)?)?.judged(now, &self.billing);
            let member = match req.member {
                Some(id) => crate::members::current_one(conn, account_id, id)?,
                None => None,
            };
            let facts = RunFacts::read(conn, catalog, &account, channel, req, now, None, (member.as_ref(), None))?;
            decide_quote(&facts.state(catalog, &account, channel, now), req).map_err(denied)
        })
    }

    fn run(&self, account: AccountId, run: RunId, now: DateTime<Utc>) -> Result<RunView, RunError> {
        let mut conn = self.conn()?;
        read_tx(&mut conn, |conn| {
            let row = load_run(conn, account, run)?;
            Ok(run_view(conn, &row, now)?)
        })
    }
}

/// An account a batch holds: its row as the batch locked it (the run paths never change it), and
/// its wallet as the batch's earlier requests left it: read for all the batch's accounts at once,
/// then kept in memory (what the wallet query would read after each request's statements).
pub(crate) struct Held {
    pub row: AccountRow,
    pub wallet: Option<Wallet>,
    /// The runs the batch's completions and cancellations name, read at once, as the batch's
    /// earlier requests left them.
    pub runs: std::collections::HashMap<Uuid, RunRow>,
    /// R25, R26: the members the batch's starts name, read at once: each a current member with
    /// their use in `month` (kept as the batch's earlier requests leave it), or `None`: not one.
    pub members: std::collections::HashMap<Uuid, Option<KnownMember>>,
    pub month: Option<DateTime<Utc>>,
}

/// A member as a batch knows them: their row, and (when capped) what their runs started in the
/// batch's month hold or captured.
pub(crate) struct KnownMember {
    pub row: crate::members::MemberRow,
    pub used: i64,
}

/// What a run counts toward its member's use this month (R26): its cost while held, what it
/// captured once captured, nothing once released.
fn counted(row: &RunRow) -> i64 {
    match row.status() {
        Ok(RunStatus::Held) => row.cost,
        Ok(RunStatus::Captured) => row.captured_credits.unwrap_or(0),
        _ => 0,
    }
}

/// Keep `wallet` as the account's, for the batch's next request (a request alone keeps nothing).
fn keep(known_wallet: Option<&mut Option<Wallet>>, wallet: Wallet) {
    if let Some(known) = known_wallet {
        *known = Some(wallet);
    }
}

/// The wallet a start leaves, as `load_wallet` would read it after the start's statement: a
/// capture's debits taken from their buckets (a bucket left empty is not read), a hold's
/// reservations added.
fn after_start(mut wallet: Wallet, row: &RunRow, held: &[Portion], debited: &[Portion]) -> Wallet {
    wallet.take(debited);
    wallet.buckets.retain(|b| b.remaining.get() > 0);
    if let Some(expires) = row.hold_expires_at {
        wallet.reservations.extend(held.iter().map(|p| credits_domain::burn::Reservation {
            run_id: RunId(row.id),
            bucket_id: p.bucket_id,
            credits: p.credits,
            hold_expires_at: expires,
        }));
    }
    wallet
}

/// A held run as it is released at `at` for `reason` (cancelled, expired).
fn released(row: &RunRow, reason: &str, at: DateTime<Utc>) -> RunRow {
    RunRow {
        status: RunStatus::Released.as_str().to_string(),
        finished_at: Some(at),
        release_reason: Some(reason.into()),
        ..row.clone()
    }
}

/// Release a hold (the sweep of expired holds): its reservations close, a trial gets its
/// generations back, and what went back to an expired bucket expires; `wallet` is left as the
/// wallet query would read it after, for the account's next release.
pub fn release(
    conn: &mut PgConnection,
    log: &mut TxLog,
    wallet: &mut Wallet,
    row: &RunRow,
    generations_returned: i64,
    reason: &str,
    finished_at: DateTime<Utc>,
) -> QueryResult<()> {
    let released = released(row, reason, finished_at);
    let mut pending = Pending::default();
    finish(conn, log, &mut pending, wallet, &released, &[], finished_at)?;
    pending.write(conn)?;
    if generations_returned > 0 {
        record_trial(conn, AccountId(row.account_id), &row.model_id, -generations_returned, None)?;
    }
    Ok(())
}

impl PgStore {
    /// One run request's work inside a write transaction (alone, or one share of a batch): lock
    /// the account (already held by a batch), read what the rules need, let the domain decide,
    /// write what it decided. A refusal returns before anything is written.
    ///
    /// `held`: the account as a batch holds it, or `None` for a request alone, which locks it here.
    pub(crate) fn run_work(
        &self,
        conn: &mut PgConnection,
        log: &mut TxLog,
        job: &RunJob,
        held: Option<&mut Held>,
        pending: &mut Pending,
    ) -> Result<RunView, Fail<RunError>> {
        let (account_id, now) = (job.account, job.now);
        let (held_row, mut known_wallet, mut known_runs, mut known_members) = match held {
            Some(h) => {
                // The batch's members serve only the requests of the month it read them in.
                let members = h.month.filter(|m| *m == month_start(now)).map(|_| &mut h.members);
                (Some(&h.row), Some(&mut h.wallet), Some(&mut h.runs), members)
            }
            None => (None, None, None, None),
        };
        let locked = |conn: &mut PgConnection, log: &mut TxLog| match held_row {
            Some(row) => Ok(Some(row.clone())),
            None => lock_account(conn, log, account_id),
        };
        match &job.op {
            RunOp::Start { channel, req } => {
                let catalog = &self.catalog;
                let ttl = self.hold_ttl;
                let billing = self.billing;
                // R14: judged as it stands now (an ended plan, a past_due grace run out).
                let account = found_account(locked(conn, log)?)?.judged(now, &billing);
                let known = known_wallet.as_mut().and_then(|w| w.take());
                // R25: the member it names, under the account's lock (a member removed a moment
                // ago is no longer one): as the batch read them, else read now.
                let batch_known = req.member.and_then(|id| known_members.as_ref().and_then(|m| m.get(&id)));
                let (member, used_known) = match (req.member, batch_known) {
                    (None, _) => (None, None),
                    (Some(_), Some(known)) => {
                        (known.as_ref().map(|k| k.row.clone()), known.as_ref().map(|k| Credits::new(k.used)))
                    }
                    (Some(id), None) => (crate::members::current_one(conn, account_id, id)?, None),
                };
                let capped = member.as_ref().is_some_and(|m| m.monthly_credit_limit.is_some());
                // What this start is judged on must include the starts still to be written (a
                // capped member's use, unless the batch keeps it).
                if (known.is_none()
                    || (capped && used_known.is_none())
                    || RunFacts::reads_runs(catalog, &account, channel, &req.model))
                    && pending.touches(account_id)
                {
                    pending.write(conn)?;
                }
                let facts =
                    RunFacts::read(conn, catalog, &account, channel, req, now, known, (member.as_ref(), used_known))?;
                let admitted = match decide_run(&facts.state(catalog, &account, channel, now), req) {
                    Ok(admitted) => admitted,
                    Err(denial) => {
                        // A refusal changes nothing: the wallet stays known as it was.
                        keep(known_wallet, facts.wallet);
                        return Err(denied(denial));
                    }
                };
                let run_id = RunId::generate();
                let trial_grant = match &admitted.charge {
                    Charge::Trial(t) => Some(*t),
                    Charge::Credits(_) => None,
                };
                let row = RunRow {
                    id: run_id.0,
                    account_id: account_id.0,
                    model_id: admitted.model.clone(),
                    channel: channel.as_str().to_string(),
                    workflow_id: req.workflow_id.clone(),
                    images: admitted.priced.images,
                    duration_seconds: admitted.priced.duration_seconds,
                    cost: admitted.priced.cost.get(),
                    status: if req.capture { RunStatus::Captured } else { RunStatus::Held }.as_str().to_string(),
                    captured_credits: req
                        .capture
                        .then(|| if trial_grant.is_some() { 0 } else { admitted.priced.cost.get() }),
                    captured_images: if req.capture { admitted.priced.images } else { None },
                    captured_duration_seconds: if req.capture { admitted.priced.duration_seconds } else { None },
                    trial_kind: trial_grant.map(|t| t.kind.as_str().to_string()),
                    trial_generations: trial_grant.map(|t| t.generations).unwrap_or(0),
                    trial_window_opens_at: trial_grant.and_then(|t| t.window_opens_at),
                    trial_window_closes_at: trial_grant.and_then(|t| t.window_closes_at),
                    hold_expires_at: (!req.capture).then(|| now + ttl),
                    created_at: now,
                    finished_at: req.capture.then_some(now),
                    release_reason: None,
                    api_key_id: key_of(channel),
                    member_id: facts.member.id(),
                };
                let (held, debited): (&[Portion], &[Portion]) = match &admitted.charge {
                    Charge::Credits(portions) if req.capture => (&[], portions),
                    Charge::Credits(portions) => (portions, &[]),
                    Charge::Trial(_) => (&[], &[]),
                };
                if let Charge::Trial(t) = &admitted.charge {
                    let opens = (t.kind == TrialKind::Window).then_some(t.window_opens_at).flatten();
                    record_trial(conn, account_id, &admitted.model, t.generations, opens)?;
                }
                // R26: what the member has used now, and the notices it earns.
                if let (Some(m), RunMember::Current { used_this_month, .. }, Charge::Credits(_)) =
                    (&member, facts.member, &admitted.charge)
                    && m.monthly_credit_limit.is_some()
                {
                    let used = Credits::new(used_this_month.get() + admitted.priced.cost.get());
                    let noticed = crate::members::notice_use(conn, &self.notify, m, used, now)?;
                    if let Some(Some(k)) = known_members.as_mut().and_then(|ms| ms.get_mut(&m.id)) {
                        k.used = used.get();
                        if let Some(percent) = noticed {
                            (k.row.noticed_month, k.row.noticed_percent) = (Some(month_start(now)), percent);
                        }
                    }
                }
                let view = fresh_view(&row, &admitted.charge, &facts.wallet, req.capture)?;
                keep(known_wallet, after_start(facts.wallet, &row, held, debited));
                pending.start(log, row, held, debited);
                Ok(view)
            }
            RunOp::Complete { channel, run, .. } | RunOp::Cancel { channel, run } => {
                let run = *run;
                // The run and the wallet as the batch knows them, else read after the writes
                // waiting for the account.
                let known_run = known_runs
                    .as_ref()
                    .and_then(|runs| runs.get(&run.0))
                    .filter(|r| r.account_id == account_id.0)
                    .cloned();
                if (known_run.is_none() || known_wallet.as_ref().is_none_or(|w| w.is_none()))
                    && pending.touches(account_id)
                {
                    pending.write(conn)?;
                }
                found_account(locked(conn, log)?)?;
                let row = match known_run {
                    Some(row) => row,
                    None => load_run(conn, account_id, run)?,
                };
                let mut wallet = match known_wallet.as_mut().and_then(|w| w.take()) {
                    Some(known) => known,
                    None => load_wallet(conn, account_id)?,
                };
                let decided = match &job.op {
                    RunOp::Complete { actual, .. } => {
                        decide_capture(&self.catalog, &wallet, &row.to_held()?, channel, *actual, now).map(|capture| {
                            let updated = RunRow {
                                status: RunStatus::Captured.as_str().to_string(),
                                captured_credits: Some(capture.charged().get()),
                                captured_images: capture.actual.images,
                                captured_duration_seconds: capture.actual.duration_seconds,
                                finished_at: Some(now),
                                ..row.clone()
                            };
                            (updated, capture.debits, capture.generations_returned)
                        })
                    }
                    _ => decide_cancel(&row.to_held()?, channel, now)
                        .map(|returned| (released(&row, "cancelled", now), Vec::new(), returned)),
                };
                let (updated, debits, returned) = match decided {
                    Ok(decided) => decided,
                    Err(refused) => {
                        // A refusal changes nothing: the wallet stays known as it was.
                        keep(known_wallet, wallet);
                        return Err(finish_refused(refused));
                    }
                };
                let charged = charge_views(&wallet, &debits)?;
                finish(conn, log, pending, &mut wallet, &updated, &debits, now)?;
                if returned > 0 {
                    record_trial(conn, account_id, &updated.model_id, -returned, None)?;
                }
                keep(known_wallet, wallet);
                // R26: the member's use as the batch keeps it moves with the run.
                if let Some(Some(k)) = row.member_id.and_then(|m| known_members.as_mut().and_then(|ms| ms.get_mut(&m)))
                    && row.created_at >= month_start(now)
                {
                    k.used += counted(&updated) - counted(&row);
                }
                if let Some(runs) = known_runs.as_mut() {
                    runs.insert(updated.id, updated.clone());
                }
                Ok(view(&updated, updated.status()?, charged, Vec::new())?)
            }
        }
    }
}
