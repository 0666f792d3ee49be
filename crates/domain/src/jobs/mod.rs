//! Outbound work: one queue shape for the four kinds of calls a change leaves to be made after
//! its commit — a mail (SMTP), a payment call (Stripe, R18), an auto top-up (an off-session
//! PaymentIntent, R22) and a webhook delivery (an account's endpoint, section 9).
//!
//! Every kind goes the same way through the [`Jobs`] port:
//! - **enqueued** in the transaction of the change that causes it (a row written with the change,
//!   so a rolled-back change leaves no job and a committed one cannot lose it);
//! - **claimed with a lease** ([`Jobs::claim`]): one statement moves a due row's next attempt past
//!   the lease, so instances never take the same job, and a crash gives it back when the lease
//!   runs out (at least once; the calls carry idempotency keys or event ids);
//! - **called with no transaction open** (the worker of its kind, with its own loop and budget);
//! - **recorded** ([`Jobs::record`]): the attempt's outcome, decided here (done, again at a time
//!   its [`RetrySchedule`] says, or dead), with the kind's own effects in the same transaction.
//!
//! Each kind's statuses are typed here and constrained by a CHECK in SQL; the store writes and
//! compares these, never a bare string.

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use crate::error::StoreError;
use crate::ids::AccountId;
use crate::mail::OutboxMessage;
use crate::notify::store::{AttemptResult, DueDelivery, DueTopup, IntentAnswer};
use crate::payments::PaymentJobKind;

mod worker;
pub use worker::{Round, Worker};

/// How long a claimed mail is left to its claimer before another may take it: longer than an
/// SMTP exchange may last (lettre's timeouts).
pub const MAIL_LEASE: TimeDelta = TimeDelta::minutes(3);
/// How long a claimed payment job is left to its claimer: longer than a Stripe call may last (20 s,
/// retried by the client).
pub const PAYMENT_JOB_LEASE: TimeDelta = TimeDelta::minutes(2);
/// How long a claimed delivery or auto top-up is left to its claimer: longer than an attempt can
/// last (the 10 s delivery timeout, Stripe's 20 s).
pub const DELIVERY_LEASE: TimeDelta = TimeDelta::seconds(60);
pub const AUTO_TOPUP_LEASE: TimeDelta = TimeDelta::seconds(60);

/// The kinds of outbound work; each has its own worker loop and time budget, so a slow SMTP
/// server delays only mail, a slow Stripe only payments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    Mail,
    PaymentCall,
    AutoTopup,
    Delivery,
}

impl JobKind {
    pub const ALL: &'static [JobKind] = &[JobKind::Mail, JobKind::PaymentCall, JobKind::AutoTopup, JobKind::Delivery];

    /// How long a claim of this kind lasts.
    pub const fn lease(self) -> TimeDelta {
        match self {
            JobKind::Mail => MAIL_LEASE,
            JobKind::PaymentCall => PAYMENT_JOB_LEASE,
            JobKind::AutoTopup => AUTO_TOPUP_LEASE,
            JobKind::Delivery => DELIVERY_LEASE,
        }
    }

    /// When a failed attempt of this kind is made again.
    pub const fn retry(self) -> RetrySchedule {
        match self {
            JobKind::Mail | JobKind::PaymentCall | JobKind::AutoTopup => CALL_RETRY,
            JobKind::Delivery => DELIVERY_RETRY,
        }
    }
}

/// Where a job stands in its queue, whatever its kind's own status calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Due at its next attempt (or claimed, until its lease runs out).
    Pending,
    /// Its call was made and answered (whatever the answer meant for the account).
    Done,
    /// Given up: its schedule ran out.
    Dead,
}

/// When to give a failing job up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// After this many failed attempts.
    After(u32),
    /// When the next attempt would fall later than this after the first.
    Window(TimeDelta),
}

/// A retry schedule, as data: `first` after the first failure, doubling, at most `most`, until
/// `give_up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySchedule {
    pub first: TimeDelta,
    pub most: TimeDelta,
    pub give_up: GiveUp,
}

/// Mail, Stripe calls and auto top-ups Stripe could not be asked: 2 s, doubling, at most 10
/// minutes, dead after 12 attempts (about an hour and a half).
pub const CALL_RETRY: RetrySchedule =
    RetrySchedule { first: TimeDelta::seconds(2), most: TimeDelta::seconds(600), give_up: GiveUp::After(12) };

/// Webhook deliveries (section 9): 30 s, doubling, at most 12 h, for 3 days. Exponential, so an
/// endpoint down for an hour hears again within about an hour of coming back, and a dead one is
/// not hammered.
pub const DELIVERY_RETRY: RetrySchedule = RetrySchedule {
    first: TimeDelta::seconds(30),
    most: TimeDelta::hours(12),
    give_up: GiveUp::Window(crate::notify::webhooks::RETRY_WINDOW),
};

impl RetrySchedule {
    /// The wait after the `attempts`-th failed attempt (1 for the first).
    pub fn delay(&self, attempts: u32) -> TimeDelta {
        let doublings = attempts.saturating_sub(1).min(30);
        let first = self.first.num_seconds();
        TimeDelta::seconds(first.checked_shl(doublings).unwrap_or(i64::MAX).min(self.most.num_seconds()))
    }

    /// When to try again after the `attempts`-th failure of a job first tried at
    /// `first_attempt_at`, or `None`: it is given up.
    pub fn next(&self, attempts: u32, first_attempt_at: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let next = now + self.delay(attempts);
        match self.give_up {
            GiveUp::After(most) => (attempts < most).then_some(next),
            GiveUp::Window(window) => (next <= first_attempt_at + window).then_some(next),
        }
    }

    /// What a failed attempt (the `attempts`-th) comes to: again at a time, or dead.
    pub fn after_failure(
        &self,
        attempts: u32,
        first_attempt_at: DateTime<Utc>,
        now: DateTime<Utc>,
        error: String,
    ) -> JobOutcome {
        match self.next(attempts, first_attempt_at, now) {
            Some(at) => JobOutcome::Retry { at, error },
            None => JobOutcome::Dead { error },
        }
    }
}

/// What the queue records of an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    Done,
    Retry { at: DateTime<Utc>, error: String },
    Dead { error: String },
}

impl JobOutcome {
    pub fn status(&self) -> JobStatus {
        match self {
            JobOutcome::Done => JobStatus::Done,
            JobOutcome::Retry { .. } => JobStatus::Pending,
            JobOutcome::Dead { .. } => JobStatus::Dead,
        }
    }
}

/// A plain call's answer (mail, a Stripe call): done, or a failure judged by `kind`'s schedule.
pub fn decide_call(kind: JobKind, attempts: u32, answer: Result<(), String>, now: DateTime<Utc>) -> JobOutcome {
    match answer {
        Ok(()) => JobOutcome::Done,
        Err(error) => kind.retry().after_failure(attempts, now, now, error),
    }
}

/// A job as claimed: what it is, its lease, and what its worker calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub id: Uuid,
    /// Attempts recorded before this claim.
    pub attempts: u32,
    pub work: Work,
}

impl Claimed {
    pub fn kind(&self) -> JobKind {
        self.work.kind()
    }
}

/// What a claimed job calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    /// A mail to send; `None` when its kind is unknown to this build (it is given up).
    Mail(Option<OutboxMessage>),
    /// A Stripe call of `kind` about `subject` (a subscription, an invoice); `None` kind: unknown.
    PaymentCall {
        kind: Option<PaymentJobKind>,
        subject: String,
    },
    AutoTopup(DueTopup),
    Delivery(DueDelivery),
}

impl Work {
    pub fn kind(&self) -> JobKind {
        match self {
            Work::Mail(_) => JobKind::Mail,
            Work::PaymentCall { .. } => JobKind::PaymentCall,
            Work::AutoTopup(_) => JobKind::AutoTopup,
            Work::Delivery(_) => JobKind::Delivery,
        }
    }
}

/// How many jobs a claim takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimLimit {
    pub batch: i64,
    /// Deliveries: at most this many of one account's in flight at once, less what `in_flight`
    /// says the claimer is already sending for it.
    pub per_account: Option<u32>,
    pub in_flight: Vec<(AccountId, u32)>,
}

impl ClaimLimit {
    pub fn batch(batch: i64) -> ClaimLimit {
        ClaimLimit { batch, per_account: None, in_flight: Vec::new() }
    }
}

/// An attempt's answer, as its worker got it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A mail or a Stripe call: made, or why not.
    Call(Result<(), String>),
    AutoTopup(IntentAnswer),
    Delivery(AttemptResult),
}

/// The outbound work queue.
pub trait Jobs {
    /// Claims up to `limit` due jobs of `kind`, oldest first, for the kind's lease.
    fn claim(&self, kind: JobKind, limit: &ClaimLimit, now: DateTime<Utc>) -> Result<Vec<Claimed>, StoreError>;
    /// Records what an attempt of `job` came to, with its kind's effects, in one transaction, and
    /// returns where the job stands after it; `None` when it was recorded already (its lease ran
    /// out and another claimer answered, or its endpoint was deleted): left as it is.
    fn record(&self, job: &Claimed, answer: Answer, now: DateTime<Utc>) -> Result<Option<JobStatus>, StoreError>;
}

/// A status: its SQL spelling, and back.
macro_rules! status {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

status!(
    /// A mail in the outbox.
    MailStatus {
        /// Due at its next attempt.
        Pending => "pending",
        Sent => "sent",
        /// Given up after its schedule ([`CALL_RETRY`]; an admin may send it again).
        Dead => "dead",
    }
);

status!(
    /// A payment job: a Stripe call a change decided (R18: cancel a duplicate subscription and
    /// refund it).
    PaymentJobStatus {
        Pending => "pending",
        Done => "done",
        Dead => "dead",
    }
);

status!(
    /// An auto top-up (R22).
    AutoTopupStatus {
        /// Written by the capture; the worker has not had Stripe's answer yet.
        Pending => "pending",
        /// The PaymentIntent was made; its event will say how it ended.
        Processing => "processing",
        Succeeded => "succeeded",
        Failed => "failed",
    }
);

status!(
    /// One event to one webhook endpoint (section 9).
    DeliveryStatus {
        /// Due at its next attempt.
        Pending => "pending",
        Delivered => "delivered",
        /// Given up after the retry window.
        Failed => "failed",
    }
);

status!(
    /// A Stripe event as received.
    StripeEventStatus {
        Applied => "applied",
        /// The configuration could not apply it: kept for an admin to apply again.
        Failed => "failed",
    }
);

impl MailStatus {
    pub const fn of(status: JobStatus) -> MailStatus {
        match status {
            JobStatus::Pending => MailStatus::Pending,
            JobStatus::Done => MailStatus::Sent,
            JobStatus::Dead => MailStatus::Dead,
        }
    }
}

impl PaymentJobStatus {
    pub const fn of(status: JobStatus) -> PaymentJobStatus {
        match status {
            JobStatus::Pending => PaymentJobStatus::Pending,
            JobStatus::Done => PaymentJobStatus::Done,
            JobStatus::Dead => PaymentJobStatus::Dead,
        }
    }
}

impl DeliveryStatus {
    pub const fn of(status: JobStatus) -> DeliveryStatus {
        match status {
            JobStatus::Pending => DeliveryStatus::Pending,
            JobStatus::Done => DeliveryStatus::Delivered,
            JobStatus::Dead => DeliveryStatus::Failed,
        }
    }

    pub const fn job_status(self) -> JobStatus {
        match self {
            DeliveryStatus::Pending => JobStatus::Pending,
            DeliveryStatus::Delivered => JobStatus::Done,
            DeliveryStatus::Failed => JobStatus::Dead,
        }
    }
}

impl AutoTopupStatus {
    /// An auto top-up's job is done once Stripe answered (processing, succeeded or failed by the
    /// card); `Failed` before any payment (Stripe unreachable all its schedule) is its dead end.
    pub const fn job_status(self) -> JobStatus {
        match self {
            AutoTopupStatus::Pending => JobStatus::Pending,
            AutoTopupStatus::Processing | AutoTopupStatus::Succeeded | AutoTopupStatus::Failed => JobStatus::Done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_from_its_sql_spelling() {
        for s in MailStatus::ALL {
            assert_eq!(MailStatus::parse(s.as_str()), Some(*s));
        }
        for s in PaymentJobStatus::ALL {
            assert_eq!(PaymentJobStatus::parse(s.as_str()), Some(*s));
        }
        for s in AutoTopupStatus::ALL {
            assert_eq!(AutoTopupStatus::parse(s.as_str()), Some(*s));
        }
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(*s));
        }
        for s in StripeEventStatus::ALL {
            assert_eq!(StripeEventStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(AutoTopupStatus::parse("Succeeded"), None);
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn a_call_backs_off_doubling_up_to_ten_minutes_then_is_dead_after_twelve_attempts() {
        let now = now();
        let waits: Vec<i64> = (1..12).map(|a| (CALL_RETRY.next(a, now, now).unwrap() - now).num_seconds()).collect();
        assert_eq!(&waits[..4], &[2, 4, 8, 16]);
        assert_eq!(*waits.last().unwrap(), 600);
        assert_eq!(CALL_RETRY.next(12, now, now), None);
    }

    #[test]
    fn every_kind_has_the_lease_and_schedule_of_its_calls() {
        assert_eq!(JobKind::Mail.lease(), MAIL_LEASE);
        assert_eq!(JobKind::PaymentCall.lease(), PAYMENT_JOB_LEASE);
        assert_eq!(JobKind::Delivery.retry(), DELIVERY_RETRY);
        for kind in JobKind::ALL {
            // A lease outlasts the call it covers: 10 s for a delivery, 20 s for Stripe.
            assert!(kind.lease() >= TimeDelta::seconds(60), "{kind:?}");
        }
    }

    #[test]
    fn a_call_answered_is_done_and_a_failure_follows_its_kinds_schedule() {
        let now = now();
        assert_eq!(decide_call(JobKind::Mail, 1, Ok(()), now), JobOutcome::Done);
        assert_eq!(
            decide_call(JobKind::PaymentCall, 3, Err("502".into()), now),
            JobOutcome::Retry { at: now + TimeDelta::seconds(8), error: "502".into() }
        );
        assert_eq!(
            decide_call(JobKind::Mail, 12, Err("refused".into()), now),
            JobOutcome::Dead { error: "refused".into() }
        );
        assert_eq!(JobOutcome::Dead { error: String::new() }.status(), JobStatus::Dead);
    }

    #[test]
    fn a_delivery_is_given_up_when_its_next_try_would_fall_past_its_window() {
        let first = now();
        let late = first + TimeDelta::days(3) - TimeDelta::seconds(10);
        assert_eq!(DELIVERY_RETRY.next(2, first, late), None);
        assert_eq!(DELIVERY_RETRY.next(1, first, first), Some(first + TimeDelta::seconds(30)));
    }

    #[test]
    fn each_kinds_status_reads_as_a_queue_status_and_back() {
        for s in [JobStatus::Pending, JobStatus::Done, JobStatus::Dead] {
            assert_eq!(DeliveryStatus::of(s).job_status(), s);
        }
        assert_eq!(MailStatus::of(JobStatus::Done), MailStatus::Sent);
        assert_eq!(PaymentJobStatus::of(JobStatus::Dead), PaymentJobStatus::Dead);
        assert_eq!(AutoTopupStatus::Processing.job_status(), JobStatus::Done);
        assert_eq!(AutoTopupStatus::Pending.job_status(), JobStatus::Pending);
    }
}
