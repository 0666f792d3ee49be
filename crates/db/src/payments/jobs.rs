//! R18: the calls to Stripe that a change decided (cancel a second subscription, refund its
//! invoice), written in the change's transaction and made here after the commit. Each job is
//! claimed with a lease (`queue`), so instances never make one call twice at once, and called with
//! no transaction open; each call carries an idempotency key of its own, so a retry after a crash
//! is harmless.

use chrono::{DateTime, Utc};
use credits_domain::error::StoreError;
use credits_domain::jobs::{PAYMENT_JOB_LEASE, PaymentJobStatus};
use credits_domain::mail::retry_at;
use credits_domain::payments::{PaymentGateway, PaymentJobKind};
use diesel::prelude::*;

use crate::schema::payment_jobs;
use crate::{PgStore, queue};

/// A payment job the worker claimed.
#[derive(QueryableByName)]
struct DueJob {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: uuid::Uuid,
    #[diesel(sql_type = diesel::sql_types::Text)]
    kind: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    subject: String,
    #[diesel(sql_type = diesel::sql_types::Int4)]
    attempts: i32,
}

pub fn run(
    store: &PgStore,
    now: DateTime<Utc>,
    batch: i64,
    gateway: &dyn PaymentGateway,
    until: std::time::Instant,
) -> Result<usize, StoreError> {
    let mut done = 0;
    for _ in 0..batch {
        if std::time::Instant::now() >= until {
            break;
        }
        // Claimed with a lease (`queue`): Stripe is called with no transaction open and no
        // connection held; a crash before the outcome is recorded calls again once the lease runs
        // out, with the same idempotency key.
        let mut conn = store.conn()?;
        let claimed: Option<DueJob> =
            queue::claim(&mut conn, &queue::PAYMENT_JOBS, "id, kind, subject, attempts", now, PAYMENT_JOB_LEASE)
                .map_err(crate::store_error)?;
        let Some(DueJob { id, kind, subject, attempts }) = claimed else { break };
        drop(conn);
        let key = format!("credits-job-{id}");
        let outcome = match PaymentJobKind::parse(&kind) {
            Some(PaymentJobKind::CancelSubscription) => gateway.cancel_subscription(&subject, &key),
            Some(PaymentJobKind::RefundInvoice) => gateway.refund_invoice(&subject, &key),
            None => Err(credits_domain::payments::GatewayError::Unavailable(format!("unknown job kind {kind:?}"))),
        };
        let mut conn = store.conn()?;
        let still_pending =
            payment_jobs::table.find(id).filter(payment_jobs::status.eq(PaymentJobStatus::Pending.as_str()));
        let attempts = attempts + 1;
        let recorded = match outcome {
            Ok(()) => {
                tracing::info!(job = %id, %kind, %subject, "payment job done");
                done += 1;
                diesel::update(still_pending)
                    .set((
                        payment_jobs::status.eq(PaymentJobStatus::Done.as_str()),
                        payment_jobs::attempts.eq(attempts),
                        payment_jobs::done_at.eq(Some(now)),
                    ))
                    .execute(&mut conn)
            }
            Err(cause) => {
                let next = retry_at(attempts, now);
                let status = match next {
                    Some(_) => {
                        tracing::warn!(job = %id, %kind, %subject, attempts, %cause, "payment job failed; retrying");
                        PaymentJobStatus::Pending
                    }
                    None => {
                        tracing::error!(job = %id, %kind, %subject, attempts, %cause, "payment job given up (dead)");
                        PaymentJobStatus::Dead
                    }
                };
                diesel::update(still_pending)
                    .set((
                        payment_jobs::status.eq(status.as_str()),
                        payment_jobs::attempts.eq(attempts),
                        payment_jobs::next_attempt_at.eq(next.unwrap_or(now)),
                        payment_jobs::last_error.eq(Some(cause.to_string())),
                    ))
                    .execute(&mut conn)
            }
        };
        recorded.map_err(crate::store_error)?;
    }
    Ok(done)
}
