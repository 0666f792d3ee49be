//! Outbound work claimed with a lease (mail, payment jobs): a claim is one statement that moves a
//! due row's `next_attempt_at` past the lease (`FOR UPDATE SKIP LOCKED`, so instances never take
//! the same row), the external call (SMTP, Stripe) is made with no transaction open and no
//! connection held, and its outcome is recorded by another statement that only writes a row still
//! pending. A crash between the call and the record leaves the row to be claimed again when its
//! lease runs out: at least once, as before, with Stripe's idempotency keys making a repeat
//! harmless.

use chrono::{DateTime, TimeDelta, Utc};
use credits_domain::jobs::{MailStatus, PaymentJobStatus};
use diesel::prelude::*;
use diesel::sql_types::{Text, Timestamptz};

/// A table of outbound work: each row has `id`, `status`, `attempts` and `next_attempt_at`.
pub(crate) struct Queue {
    table: &'static str,
    pending: &'static str,
}

pub(crate) const OUTBOX: Queue = Queue { table: "outbox", pending: MailStatus::Pending.as_str() };
pub(crate) const PAYMENT_JOBS: Queue = Queue { table: "payment_jobs", pending: PaymentJobStatus::Pending.as_str() };

/// Claims the oldest due row of `queue` for `lease` and returns its columns `returning` (read as
/// `T`), or none when nothing is due: one statement.
pub(crate) fn claim<T: QueryableByName<diesel::pg::Pg> + 'static>(
    conn: &mut PgConnection,
    queue: &Queue,
    returning: &'static str,
    now: DateTime<Utc>,
    lease: TimeDelta,
) -> QueryResult<Option<T>> {
    // The table and the columns are the constants of the callers, never input.
    let sql = format!(
        "UPDATE {t} SET next_attempt_at = $2 WHERE id = ( \
           SELECT id FROM {t} WHERE status = $3 AND next_attempt_at <= $1 \
           ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED) \
         RETURNING {returning}",
        t = queue.table
    );
    diesel::sql_query(sql)
        .bind::<Timestamptz, _>(now)
        .bind::<Timestamptz, _>(now + lease)
        .bind::<Text, _>(queue.pending)
        .get_result(conn)
        .optional()
}
