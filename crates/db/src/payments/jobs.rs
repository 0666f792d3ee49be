//! R18: the calls to Stripe that a change decided (cancel a second subscription, refund its
//! invoice), written in the change's transaction and made here after the commit. One job per
//! transaction, claimed with `FOR UPDATE SKIP LOCKED` so instances never make one call twice at
//! once; each call carries an idempotency key of its own, so a retry after a crash is harmless.

use chrono::{DateTime, Utc};
use credits_domain::error::StoreError;
use credits_domain::jobs::PaymentJobStatus;
use credits_domain::mail::retry_at;
use credits_domain::payments::{PaymentGateway, PaymentJobKind};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::payment_jobs;
use crate::{Fail, PgStore};

pub fn run(
    store: &PgStore,
    now: DateTime<Utc>,
    batch: i64,
    gateway: &dyn PaymentGateway,
    until: std::time::Instant,
) -> Result<usize, StoreError> {
    let mut conn = store.conn()?;
    let mut done = 0;
    for _ in 0..batch {
        if std::time::Instant::now() >= until {
            break;
        }
        let claimed = store.write_tx(&mut conn, now, |conn, _| -> Result<Option<bool>, Fail<StoreError>> {
            let due: Option<(Uuid, String, String, i32)> = payment_jobs::table
                .filter(payment_jobs::status.eq(PaymentJobStatus::Pending.as_str()))
                .filter(payment_jobs::next_attempt_at.le(now))
                .order(payment_jobs::next_attempt_at.asc())
                .select((payment_jobs::id, payment_jobs::kind, payment_jobs::subject, payment_jobs::attempts))
                .for_update()
                .skip_locked()
                .first(conn)
                .optional()?;
            let Some((id, kind, subject, attempts)) = due else { return Ok(None) };
            let key = format!("credits-job-{id}");
            let outcome = match PaymentJobKind::parse(&kind) {
                Some(PaymentJobKind::CancelSubscription) => gateway.cancel_subscription(&subject, &key),
                Some(PaymentJobKind::RefundInvoice) => gateway.refund_invoice(&subject, &key),
                None => Err(credits_domain::payments::GatewayError::Unavailable(format!("unknown job kind {kind:?}"))),
            };
            let attempts = attempts + 1;
            match outcome {
                Ok(()) => {
                    diesel::update(payment_jobs::table.find(id))
                        .set((
                            payment_jobs::status.eq(PaymentJobStatus::Done.as_str()),
                            payment_jobs::attempts.eq(attempts),
                            payment_jobs::done_at.eq(Some(now)),
                        ))
                        .execute(conn)?;
                    tracing::info!(job = %id, %kind, %subject, "payment job done");
                    Ok(Some(true))
                }
                Err(cause) => {
                    let next = retry_at(attempts, now);
                    match next {
                        Some(_) => {
                            tracing::warn!(job = %id, %kind, %subject, attempts, %cause, "payment job failed; retrying")
                        }
                        None => {
                            tracing::error!(job = %id, %kind, %subject, attempts, %cause, "payment job given up (dead)")
                        }
                    }
                    diesel::update(payment_jobs::table.find(id))
                        .set((
                            payment_jobs::status.eq(if next.is_some() { "pending" } else { "dead" }),
                            payment_jobs::attempts.eq(attempts),
                            payment_jobs::next_attempt_at.eq(next.unwrap_or(now)),
                            payment_jobs::last_error.eq(Some(cause.to_string())),
                        ))
                        .execute(conn)?;
                    Ok(Some(false))
                }
            }
        })?;
        match claimed {
            None => break,
            Some(true) => done += 1,
            Some(false) => {}
        }
    }
    Ok(done)
}
