//! The calls a job's worker makes, and one round of a kind: claim, call with nothing held,
//! record. Mail, payment calls and auto top-ups go through [`Worker::round`]; deliveries are
//! sent many at once by the delivery loop (an async HTTP client), which claims and records
//! through the same [`Jobs`] port.

use std::time::Instant;

use crate::error::StoreError;
use crate::mail::Mailer;
use crate::notify::store::IntentAnswer;
use crate::payments::{GatewayError, OffSessionPayment, PaymentGateway, PaymentJobKind};
use crate::ports::Clock;

use super::{Answer, ClaimLimit, Claimed, JobKind, JobStatus, Jobs, Work};

/// What one round of a kind did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Round {
    /// Answered: a mail sent, a Stripe call made, an auto top-up's payment asked.
    pub done: usize,
    /// Failed and due again later.
    pub retried: usize,
    /// Failed for good (its schedule ran out).
    pub dead: usize,
}

/// The worker of mail, payment calls and auto top-ups: the ports it calls.
pub struct Worker<'a, J: Jobs + ?Sized> {
    pub jobs: &'a J,
    pub clock: &'a dyn Clock,
    /// `None` without SMTP: mail is then left in the outbox.
    pub mailer: Option<&'a dyn Mailer>,
    pub gateway: &'a dyn PaymentGateway,
}

impl<J: Jobs + ?Sized> Worker<'_, J> {
    /// Claims, calls and records up to `batch` jobs of `kind`, one at a time (so what is claimed
    /// is called before its lease runs out), and takes no more once `until` has passed.
    pub fn round(&self, kind: JobKind, batch: i64, until: Instant) -> Result<Round, StoreError> {
        let mut round = Round::default();
        for _ in 0..batch {
            if Instant::now() >= until {
                break;
            }
            let Some(job) = self.jobs.claim(kind, &ClaimLimit::batch(1), self.clock.now()?)?.pop() else { break };
            let answer = self.call(&job);
            match self.jobs.record(&job, answer, self.clock.now()?)? {
                Some(JobStatus::Pending) => round.retried += 1,
                Some(JobStatus::Dead) => round.dead += 1,
                Some(JobStatus::Done) => round.done += 1,
                None => {}
            }
        }
        Ok(round)
    }

    /// The call `job` asks for, made with no transaction open.
    pub fn call(&self, job: &Claimed) -> Answer {
        match &job.work {
            Work::Mail(None) => Answer::Call(Err("unknown mail kind".into())),
            Work::Mail(Some(message)) => match self.mailer {
                Some(mailer) => Answer::Call(mailer.deliver(message)),
                None => Answer::Call(Err("no SMTP server is configured".into())),
            },
            Work::PaymentCall { kind, subject } => {
                // Its own idempotency key: a call made again after a crash is the same call.
                let key = format!("credits-job-{}", job.id);
                let made = match kind {
                    Some(PaymentJobKind::CancelSubscription) => self.gateway.cancel_subscription(subject, &key),
                    Some(PaymentJobKind::RefundInvoice) => self.gateway.refund_invoice(subject, &key),
                    None => Err(GatewayError::Unavailable("unknown job kind".into())),
                };
                Answer::Call(made.map_err(|e| e.to_string()))
            }
            Work::AutoTopup(topup) => Answer::AutoTopup(match &topup.customer {
                None => IntentAnswer::Failed {
                    payment_intent: None,
                    reason: "the account has no Stripe customer with a saved card".into(),
                    needs_customer: false,
                },
                Some(customer) => self.gateway.pay_off_session(&OffSessionPayment {
                    customer,
                    amount: topup.amount,
                    currency: &topup.currency,
                    account: topup.account,
                    pack: &topup.pack,
                    auto_topup: topup.id,
                }),
            }),
            // Sent by the delivery loop's HTTP client, never here.
            Work::Delivery(_) => Answer::Call(Err("a delivery is sent by the delivery loop".into())),
        }
    }
}
