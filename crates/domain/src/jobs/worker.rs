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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::DateTime;
    use uuid::Uuid;

    use super::*;
    use crate::fakes::{FixedClock, MemoryJobs, RecordingMailer, ScriptedGateway};
    use crate::ids::AccountId;
    use crate::mail::{MailKind, OutboxMessage};
    use crate::notify::store::DueTopup;

    fn clock() -> FixedClock {
        FixedClock::at(DateTime::from_timestamp(1_800_000_000, 0).unwrap())
    }

    fn mail(n: u128) -> Claimed {
        let id = Uuid::from_u128(n);
        let message = OutboxMessage {
            id,
            kind: MailKind::BalanceLow,
            recipient: "a@b.co".into(),
            payload: "{}".into(),
            attempts: 0,
        };
        Claimed { id, attempts: 0, work: Work::Mail(Some(message)) }
    }

    fn call(n: u128, kind: Option<PaymentJobKind>) -> Claimed {
        Claimed { id: Uuid::from_u128(n), attempts: 2, work: Work::PaymentCall { kind, subject: format!("sub_{n}") } }
    }

    fn topup(customer: Option<&str>) -> Claimed {
        let id = Uuid::from_u128(7);
        let due = DueTopup {
            id,
            account: AccountId(Uuid::nil()),
            customer: customer.map(str::to_string),
            pack: "small".into(),
            amount: 500,
            currency: "usd".into(),
        };
        Claimed { id, attempts: 0, work: Work::AutoTopup(due) }
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    fn paid() -> IntentAnswer {
        IntentAnswer::Succeeded { payment_intent: "pi_1".into() }
    }

    #[test]
    fn a_mail_round_sends_each_due_mail_once_and_records_it_sent() {
        let jobs = MemoryJobs::new(vec![mail(1), mail(2), call(3, Some(PaymentJobKind::RefundInvoice))]);
        let mailer = RecordingMailer { sent: Default::default(), refuse: None };
        let gateway = ScriptedGateway::answering(paid());
        let clock = clock();
        let worker = Worker { jobs: &jobs, clock: &clock, mailer: Some(&mailer), gateway: &gateway };
        let round = worker.round(JobKind::Mail, 10, later()).unwrap();
        assert_eq!(round, Round { done: 2, retried: 0, dead: 0 });
        assert_eq!(mailer.sent.lock().unwrap().iter().map(|m| m.id.as_u128()).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(jobs.left(), 1, "a mail round takes no payment call");
        assert!(gateway.calls.lock().unwrap().is_empty());
    }

    #[test]
    fn a_refused_mail_is_recorded_as_failed_for_its_schedule_and_a_mail_of_unknown_kind_too() {
        let unknown = Claimed { id: Uuid::from_u128(9), attempts: 0, work: Work::Mail(None) };
        let jobs = MemoryJobs::new(vec![mail(1), unknown]);
        let mailer = RecordingMailer { sent: Default::default(), refuse: Some("421 try later") };
        let gateway = ScriptedGateway::answering(paid());
        let clock = clock();
        let worker = Worker { jobs: &jobs, clock: &clock, mailer: Some(&mailer), gateway: &gateway };
        assert_eq!(worker.round(JobKind::Mail, 10, later()).unwrap().retried, 2);
        let answers = jobs.answers.lock().unwrap();
        assert_eq!(answers[0].1, Answer::Call(Err("421 try later".into())));
        assert_eq!(answers[1].1, Answer::Call(Err("unknown mail kind".into())));
    }

    #[test]
    fn a_round_takes_no_job_once_its_budget_is_spent_and_at_most_its_batch() {
        let jobs = MemoryJobs::new(vec![mail(1), mail(2), mail(3)]);
        let mailer = RecordingMailer { sent: Default::default(), refuse: None };
        let gateway = ScriptedGateway::answering(paid());
        let clock = clock();
        let worker = Worker { jobs: &jobs, clock: &clock, mailer: Some(&mailer), gateway: &gateway };
        assert_eq!(worker.round(JobKind::Mail, 10, Instant::now()).unwrap(), Round::default());
        assert_eq!(jobs.left(), 3, "nothing claimed: nothing waits for a lease to run out");
        assert_eq!(worker.round(JobKind::Mail, 2, later()).unwrap().done, 2);
        assert_eq!(jobs.left(), 1);
    }

    #[test]
    fn a_payment_call_is_made_with_its_own_idempotency_key_and_an_unknown_kind_is_not_made() {
        let jobs = MemoryJobs::new(vec![
            call(1, Some(PaymentJobKind::CancelSubscription)),
            call(2, Some(PaymentJobKind::RefundInvoice)),
            call(3, None),
        ]);
        let gateway = ScriptedGateway::answering(paid());
        let clock = clock();
        let worker = Worker { jobs: &jobs, clock: &clock, mailer: None, gateway: &gateway };
        let round = worker.round(JobKind::PaymentCall, 10, later()).unwrap();
        assert_eq!(round, Round { done: 2, retried: 1, dead: 0 });
        let calls = gateway.calls.lock().unwrap();
        let key = |n: u128| format!("credits-job-{}", Uuid::from_u128(n));
        assert_eq!(
            *calls,
            [
                ("cancel_subscription".to_string(), "sub_1".to_string(), key(1)),
                ("refund_invoice".to_string(), "sub_2".to_string(), key(2)),
            ]
        );
        assert!(matches!(&jobs.answers.lock().unwrap()[2].1, Answer::Call(Err(e)) if e.contains("unknown job kind")));
    }

    #[test]
    fn stripe_unreachable_is_recorded_as_the_calls_failure() {
        let jobs = MemoryJobs::new(vec![call(1, Some(PaymentJobKind::RefundInvoice))]);
        let gateway = ScriptedGateway { fail: Some("503"), ..ScriptedGateway::answering(paid()) };
        let clock = clock();
        let worker = Worker { jobs: &jobs, clock: &clock, mailer: None, gateway: &gateway };
        assert_eq!(worker.round(JobKind::PaymentCall, 10, later()).unwrap().retried, 1);
        assert!(matches!(&jobs.answers.lock().unwrap()[0].1, Answer::Call(Err(e)) if e.contains("503")));
    }

    #[test]
    fn an_auto_top_up_asks_stripe_once_for_its_customer_and_records_stripes_answer() {
        let jobs = MemoryJobs::new(vec![topup(Some("cus_1"))]);
        let gateway = ScriptedGateway::answering(paid());
        let clock = clock();
        let worker = Worker { jobs: &jobs, clock: &clock, mailer: None, gateway: &gateway };
        assert_eq!(worker.round(JobKind::AutoTopup, 10, later()).unwrap().done, 1);
        let calls = gateway.calls.lock().unwrap();
        assert_eq!(*calls, [("pay_off_session".to_string(), "cus_1".to_string(), Uuid::from_u128(7).to_string())]);
        assert_eq!(jobs.answers.lock().unwrap()[0].1, Answer::AutoTopup(paid()));
    }

    #[test]
    fn an_auto_top_up_with_no_customer_fails_without_asking_stripe() {
        let jobs = MemoryJobs::new(vec![topup(None)]);
        let gateway = ScriptedGateway::answering(paid());
        let clock = clock();
        let worker = Worker { jobs: &jobs, clock: &clock, mailer: None, gateway: &gateway };
        worker.round(JobKind::AutoTopup, 10, later()).unwrap();
        assert!(gateway.calls.lock().unwrap().is_empty());
        assert!(matches!(
            &jobs.answers.lock().unwrap()[0].1,
            Answer::AutoTopup(IntentAnswer::Failed { payment_intent: None, needs_customer: false, .. })
        ));
    }

    #[test]
    fn without_smtp_a_mail_is_failed_not_dropped() {
        let worker_jobs = MemoryJobs::new(vec![mail(1)]);
        let gateway = ScriptedGateway::answering(paid());
        let clock = clock();
        let worker = Worker { jobs: &worker_jobs, clock: &clock, mailer: None, gateway: &gateway };
        assert_eq!(worker.round(JobKind::Mail, 1, later()).unwrap().retried, 1);
    }
}
