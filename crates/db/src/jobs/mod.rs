//! The outbound work queue on PostgreSQL (`credits_domain::jobs`): one shape for mail (`outbox`),
//! payment calls (`payment_jobs`), auto top-ups (`auto_topups`) and webhook deliveries
//! (`webhook_deliveries`).
//!
//! - **Enqueued** in the change's transaction: [`enqueue`] (mail, payment calls), the capture's
//!   `notify::autotopup::start` (auto top-ups) and `events::emit`'s fan-out (deliveries).
//! - **Claimed** by one statement that moves due rows' `next_attempt_at` past the kind's lease
//!   (`FOR UPDATE SKIP LOCKED`, so instances never take the same row); the worker calls SMTP,
//!   Stripe or the endpoint with no transaction open and no connection held.
//! - **Recorded** by one transaction that only writes a row still pending: the outcome the domain
//!   decided (`decide_call`, `decide_topup_outcome`, `decide_attempt`, each kind's
//!   `RetrySchedule`) and the kind's effects. A crash between the call and the record leaves the
//!   row to be claimed again when its lease runs out: at least once, with Stripe's idempotency
//!   keys and the events' ids making a repeat harmless.

mod deliveries;
mod topups;

use chrono::{DateTime, Utc};
use credits_domain::error::StoreError;
use credits_domain::ids::AccountId;
use credits_domain::jobs::{
    Answer, ClaimLimit, Claimed, JobKind, JobOutcome, JobStatus, Jobs, MailStatus, PaymentJobStatus, Work, decide_call,
};
use credits_domain::mail::{Mail, MailKind, OutboxMessage};
use credits_domain::payments::PaymentJobKind;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Int4, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use crate::PgStore;
use crate::schema::{outbox, payment_jobs};

/// What a change leaves to be called after its commit, written in its transaction.
pub(crate) enum NewJob<'a> {
    /// Once per dedupe key however often its change is applied.
    Mail(&'a Mail),
    /// Once per call and subject (R18).
    PaymentCall { account: AccountId, kind: PaymentJobKind, subject: &'a str },
}

pub(crate) fn enqueue(conn: &mut PgConnection, job: NewJob<'_>, now: DateTime<Utc>) -> QueryResult<()> {
    match job {
        NewJob::Mail(mail) => {
            let facts: serde_json::Map<String, serde_json::Value> =
                mail.facts.iter().map(|(k, v)| ((*k).to_string(), serde_json::Value::from(v.as_str()))).collect();
            diesel::insert_into(outbox::table)
                .values((
                    outbox::id.eq(Uuid::now_v7()),
                    outbox::dedupe_key.eq(&mail.dedupe_key),
                    outbox::kind.eq(mail.kind.as_str()),
                    outbox::account_id.eq(mail.account.map(|a| a.0)),
                    outbox::recipient.eq(&mail.to),
                    outbox::payload.eq(serde_json::Value::Object(facts)),
                    outbox::next_attempt_at.eq(now),
                    outbox::created_at.eq(now),
                ))
                .on_conflict(outbox::dedupe_key)
                .do_nothing()
                .execute(conn)?;
        }
        NewJob::PaymentCall { account, kind, subject } => {
            diesel::insert_into(payment_jobs::table)
                .values((
                    payment_jobs::id.eq(Uuid::now_v7()),
                    payment_jobs::account_id.eq(account.0),
                    payment_jobs::kind.eq(kind.as_str()),
                    payment_jobs::subject.eq(subject),
                    payment_jobs::next_attempt_at.eq(now),
                    payment_jobs::created_at.eq(now),
                ))
                .on_conflict((payment_jobs::kind, payment_jobs::subject))
                .do_nothing()
                .execute(conn)?;
        }
    }
    Ok(())
}

/// A plain call's table: mail and payment calls, whose record is the outcome alone.
struct CallQueue {
    table: &'static str,
    /// The columns a claim returns.
    returning: &'static str,
    /// The kind's spelling of each queue status.
    status: fn(JobStatus) -> &'static str,
    /// The column stamped when it is done.
    done_at: &'static str,
}

const OUTBOX: CallQueue = CallQueue {
    table: "outbox",
    returning: "id, kind, recipient, payload, attempts",
    status: |s| MailStatus::of(s).as_str(),
    done_at: "sent_at",
};

const PAYMENT_CALLS: CallQueue = CallQueue {
    table: "payment_jobs",
    returning: "id, kind, subject AS recipient, NULL::jsonb AS payload, attempts",
    status: |s| PaymentJobStatus::of(s).as_str(),
    done_at: "done_at",
};

/// A claimed row of either call table.
#[derive(QueryableByName)]
struct CallRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    kind: String,
    /// A mail's recipient, a payment call's subject.
    #[diesel(sql_type = Text)]
    recipient: String,
    #[diesel(sql_type = Nullable<Jsonb>)]
    payload: Option<serde_json::Value>,
    #[diesel(sql_type = Int4)]
    attempts: i32,
}

fn attempts_of(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

/// Claims up to `batch` of `queue`'s due rows for `lease`, oldest first: one statement.
fn claim_calls(
    conn: &mut PgConnection,
    queue: &CallQueue,
    batch: i64,
    now: DateTime<Utc>,
    lease: chrono::TimeDelta,
) -> QueryResult<Vec<CallRow>> {
    // The table and the columns are this module's constants, never input.
    let sql = format!(
        "UPDATE {t} SET next_attempt_at = $2 WHERE id IN ( \
           SELECT id FROM {t} WHERE status = $3 AND next_attempt_at <= $1 \
           ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
         RETURNING {r}",
        t = queue.table,
        r = queue.returning
    );
    diesel::sql_query(sql)
        .bind::<Timestamptz, _>(now)
        .bind::<Timestamptz, _>(now + lease)
        .bind::<Text, _>((queue.status)(JobStatus::Pending))
        .bind::<BigInt, _>(batch)
        .load(conn)
}

/// Writes `outcome` to a row of `queue` still pending; whether it was.
fn record_call(
    conn: &mut PgConnection,
    queue: &CallQueue,
    id: Uuid,
    attempts: u32,
    outcome: &JobOutcome,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    let (next, error) = match outcome {
        JobOutcome::Done => (None, None),
        JobOutcome::Retry { at, error } => (Some(*at), Some(error.as_str())),
        JobOutcome::Dead { error } => (None, Some(error.as_str())),
    };
    let sql = format!(
        "UPDATE {t} SET status = $3, attempts = $4, next_attempt_at = COALESCE($5, next_attempt_at), \
                last_error = COALESCE($6, last_error), \
                {done} = CASE WHEN $3 = $7 THEN $8 ELSE {done} END \
         WHERE id = $1 AND status = $2",
        t = queue.table,
        done = queue.done_at
    );
    let written = diesel::sql_query(sql)
        .bind::<SqlUuid, _>(id)
        .bind::<Text, _>((queue.status)(JobStatus::Pending))
        .bind::<Text, _>((queue.status)(outcome.status()))
        .bind::<Int4, _>(i32::try_from(attempts).unwrap_or(i32::MAX))
        .bind::<Nullable<Timestamptz>, _>(next)
        .bind::<Nullable<Text>, _>(error)
        .bind::<Text, _>((queue.status)(JobStatus::Done))
        .bind::<Timestamptz, _>(now)
        .execute(conn)?;
    Ok(written == 1)
}

impl Jobs for PgStore {
    fn claim(&self, kind: JobKind, limit: &ClaimLimit, now: DateTime<Utc>) -> Result<Vec<Claimed>, StoreError> {
        let mut conn = self.conn()?;
        let lease = kind.lease();
        let claimed = match kind {
            JobKind::Mail => claim_calls(&mut conn, &OUTBOX, limit.batch, now, lease).map(|rows| {
                rows.into_iter()
                    .map(|r| Claimed {
                        id: r.id,
                        attempts: attempts_of(r.attempts),
                        work: Work::Mail(MailKind::parse(&r.kind).map(|kind| OutboxMessage {
                            id: r.id,
                            kind,
                            recipient: r.recipient,
                            payload: r.payload.unwrap_or_default().to_string(),
                            attempts: r.attempts,
                        })),
                    })
                    .collect()
            }),
            JobKind::PaymentCall => claim_calls(&mut conn, &PAYMENT_CALLS, limit.batch, now, lease).map(|rows| {
                rows.into_iter()
                    .map(|r| Claimed {
                        id: r.id,
                        attempts: attempts_of(r.attempts),
                        work: Work::PaymentCall { kind: PaymentJobKind::parse(&r.kind), subject: r.recipient },
                    })
                    .collect()
            }),
            JobKind::AutoTopup => topups::claim(&mut conn, limit.batch, now, lease),
            JobKind::Delivery => deliveries::claim(&mut conn, limit, now, lease),
        };
        claimed.map_err(crate::store_error)
    }

    fn record(&self, job: &Claimed, answer: Answer, now: DateTime<Utc>) -> Result<Option<JobStatus>, StoreError> {
        let attempts = job.attempts.saturating_add(1);
        let call = |queue: &CallQueue, outcome: JobOutcome| -> Result<Option<JobStatus>, StoreError> {
            let mut conn = self.conn()?;
            let written = record_call(&mut conn, queue, job.id, attempts, &outcome, now).map_err(crate::store_error)?;
            Ok(written.then(|| outcome.status()))
        };
        match (&job.work, answer) {
            (Work::Mail(message), Answer::Call(made)) => {
                let outcome = match message {
                    Some(_) => decide_call(JobKind::Mail, attempts, made, now),
                    // Written by a newer build, or by hand: no template here to send it with.
                    None => JobOutcome::Dead { error: "unknown mail kind".into() },
                };
                call(&OUTBOX, outcome)
            }
            (Work::PaymentCall { .. }, Answer::Call(made)) => {
                call(&PAYMENT_CALLS, decide_call(JobKind::PaymentCall, attempts, made, now))
            }
            (Work::AutoTopup(_), Answer::AutoTopup(answer)) => topups::record(self, job, &answer, now),
            (Work::Delivery(_), Answer::Delivery(result)) => deliveries::record(self, job, &result, now),
            (work, answer) => {
                Err(StoreError::Internal(format!("a {:?} job cannot be answered by {answer:?}", work.kind())))
            }
        }
    }
}
