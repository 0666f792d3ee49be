//! R22's auto top-ups as jobs: claimed for the worker to ask Stripe an off-session PaymentIntent
//! (idempotency key: the auto top-up's id), recorded by Stripe's answer: the pack granted once per
//! PaymentIntent, auto top-up turned off and the account mailed, or asked again on the schedule.

use chrono::{DateTime, TimeDelta, Utc};
use credits_domain::error::StoreError;
use credits_domain::ids::AccountId;
use credits_domain::jobs::{AutoTopupStatus, Claimed, JobKind, JobOutcome, JobStatus, Work};
use credits_domain::notify::autotopup::PaymentOutcome;
use credits_domain::notify::store::{DueTopup, IntentAnswer};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use crate::ledger::lock_account;
use crate::notify::autotopup;
use crate::schema::auto_topups;
use crate::{Fail, PgStore};

#[derive(QueryableByName)]
struct ClaimedTopup {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    account_id: Uuid,
    #[diesel(sql_type = Nullable<Text>)]
    customer: Option<String>,
    #[diesel(sql_type = Text)]
    pack_id: String,
    #[diesel(sql_type = BigInt)]
    amount: i64,
    #[diesel(sql_type = Text)]
    currency: String,
    #[diesel(sql_type = diesel::sql_types::Int4)]
    attempts: i32,
}

/// What an abandoned auto top-up says when auto top-up was turned off before its payment.
const TURNED_OFF: &str = "auto top-up was turned off before the payment was made";

pub(super) fn claim(
    conn: &mut PgConnection,
    batch: i64,
    now: DateTime<Utc>,
    lease: TimeDelta,
) -> QueryResult<Vec<Claimed>> {
    let (pending, failed) = (AutoTopupStatus::Pending.as_str(), AutoTopupStatus::Failed.as_str());
    // Turned off before its payment was made: no card is charged (R22).
    diesel::sql_query(
        "UPDATE auto_topups t SET status = $3, finished_at = $1, last_error = $4 \
         FROM accounts a WHERE a.id = t.account_id AND t.status = $2 AND NOT a.auto_topup_enabled",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<Text, _>(pending)
    .bind::<Text, _>(failed)
    .bind::<Text, _>(TURNED_OFF)
    .execute(conn)?;
    let rows: Vec<ClaimedTopup> = diesel::sql_query(
        "WITH due AS (SELECT id FROM auto_topups WHERE status = $4 AND next_attempt_at <= $1 \
                      ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
         UPDATE auto_topups t SET next_attempt_at = $2 \
         FROM due, accounts a WHERE t.id = due.id AND a.id = t.account_id \
         RETURNING t.id, t.account_id, a.stripe_customer_id AS customer, t.pack_id, t.amount, t.currency, t.attempts",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<Timestamptz, _>(now + lease)
    .bind::<BigInt, _>(batch)
    .bind::<Text, _>(pending)
    .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| Claimed {
            id: r.id,
            attempts: u32::try_from(r.attempts).unwrap_or(0),
            work: Work::AutoTopup(DueTopup {
                id: r.id,
                account: AccountId(r.account_id),
                customer: r.customer,
                pack: r.pack_id,
                amount: r.amount,
                currency: r.currency,
            }),
        })
        .collect())
}

/// Stripe's answer for one: granted, failed, processing, or asked again (`JobKind::AutoTopup`'s
/// schedule) while Stripe could not be asked.
pub(super) fn record(
    store: &PgStore,
    job: &Claimed,
    answer: &IntentAnswer,
    now: DateTime<Utc>,
) -> Result<Option<JobStatus>, StoreError> {
    let mut conn = store.conn()?;
    store.write_tx(&mut conn, now, |conn, log| -> Result<Option<JobStatus>, Fail<StoreError>> {
        let Some(row) = autotopup::by_id(conn, job.id)? else { return Ok(None) };
        // The account's row first, as every change of its balance.
        if lock_account(conn, log, AccountId(row.account_id))?.is_none() {
            return Ok(None);
        }
        let attempts = job.attempts.saturating_add(1);
        diesel::update(auto_topups::table.find(row.id))
            .set(auto_topups::attempts.eq(i32::try_from(attempts).unwrap_or(i32::MAX)))
            .execute(conn)?;
        let mut end = |conn: &mut PgConnection, payment_intent: Option<&str>, outcome, reason: Option<&str>| {
            let answer = autotopup::Answer { payment_intent, outcome, reason };
            autotopup::end(conn, log, &store.notify, &row, answer, now)
        };
        // Where the job stands after it, as the branch taken says (an answer to one already ended
        // by its event is no record of this job's).
        let ended = |e: autotopup::Ended| (!matches!(e, autotopup::Ended::Already)).then_some(JobStatus::Done);
        Ok(match answer {
            IntentAnswer::Succeeded { payment_intent } => {
                ended(end(conn, Some(payment_intent), PaymentOutcome::Succeeded, None)?)
            }
            IntentAnswer::Processing { payment_intent } => {
                autotopup::processing(conn, row.id, payment_intent)?;
                Some(JobStatus::Done)
            }
            IntentAnswer::Failed { payment_intent, reason, needs_customer } => {
                let outcome = if *needs_customer { PaymentOutcome::RequiresAction } else { PaymentOutcome::Declined };
                ended(end(conn, payment_intent.as_deref(), outcome, Some(reason))?)
            }
            IntentAnswer::Unavailable(cause) => {
                match JobKind::AutoTopup.retry().after_failure(attempts, now, now, cause.clone()) {
                    JobOutcome::Retry { at, error } => {
                        tracing::warn!(auto_topup = %row.id, attempts, %error, "auto top-up payment not asked; retrying");
                        diesel::update(auto_topups::table.find(row.id))
                            .set((auto_topups::next_attempt_at.eq(at), auto_topups::last_error.eq(Some(error))))
                            .execute(conn)?;
                        Some(JobStatus::Pending)
                    }
                    // `after_failure` never answers done: a failure is tried again or given up.
                    JobOutcome::Dead { error } => {
                        tracing::error!(auto_topup = %row.id, attempts, %error, "auto top-up given up: Stripe unreachable");
                        autotopup::abandon(conn, row.id, &error, now)?;
                        Some(JobStatus::Dead)
                    }
                    JobOutcome::Done => None,
                }
            }
        })
    })
}
