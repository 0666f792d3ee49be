//! In-memory fakes of the domain's ports, for unit tests of its use cases without PostgreSQL,
//! SMTP or Stripe. Each keeps what it was given so a test can assert what a user would check.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::credits::Credits;
use crate::error::StoreError;
use crate::ids::AccountId;
use crate::jobs::{Answer, ClaimLimit, Claimed, JobKind, JobStatus, Jobs};
use crate::mail::{Mailer, OutboxMessage};
use crate::notify::alerts::{BalanceLevel, rebase};
use crate::notify::autotopup::AutoTopupRequest;
use crate::notify::store::{
    AlertsView, AutoTopupView, DeliveryAttemptView, EndpointView, IntentAnswer, NewEndpoint, NotifyError, NotifyStore,
};
use crate::notify::webhooks::{SecretKeeper, check_endpoint_count};
use crate::payments::{
    CreatedSession, GatewayError, InvoiceView, LiveSubscription, OffSessionPayment, PaymentGateway, SessionRequest,
};
use crate::ports::Clock;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A clock that says what it is told.
pub struct FixedClock(pub Mutex<DateTime<Utc>>);

impl FixedClock {
    pub fn at(t: DateTime<Utc>) -> FixedClock {
        FixedClock(Mutex::new(t))
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Result<DateTime<Utc>, StoreError> {
        Ok(*lock(&self.0))
    }
}

/// Secrets whose sealed form is readable: enough to see that only the sealed form is kept.
pub struct PlainSecrets;

impl SecretKeeper for PlainSecrets {
    fn issue(&self, endpoint: Uuid) -> (String, Vec<u8>) {
        let secret = format!("whsec_{}", endpoint.simple());
        let sealed = format!("sealed:{secret}").into_bytes();
        (secret, sealed)
    }
}

/// One account's notify settings and endpoints.
#[derive(Default)]
pub struct MemoryNotify {
    endpoints: Mutex<Vec<NewEndpoint>>,
    threshold: Mutex<Option<Credits>>,
}

impl MemoryNotify {
    pub fn kept(&self) -> Vec<NewEndpoint> {
        lock(&self.endpoints).clone()
    }

    pub fn threshold(&self) -> Option<Credits> {
        *lock(&self.threshold)
    }

    fn view(e: &NewEndpoint) -> EndpointView {
        EndpointView {
            id: e.id,
            url: e.url.clone(),
            events: e.events.clone(),
            description: e.description.clone(),
            created_at: DateTime::UNIX_EPOCH,
            failing_since: None,
            disabled_at: None,
        }
    }
}

impl NotifyStore for MemoryNotify {
    fn auto_topup(&self, _: AccountId, _: DateTime<Utc>) -> Result<AutoTopupView, NotifyError> {
        Err(NotifyError::NotFound)
    }

    fn set_auto_topup(
        &self,
        _: AccountId,
        _: &AutoTopupRequest,
        _: DateTime<Utc>,
    ) -> Result<AutoTopupView, NotifyError> {
        Err(NotifyError::NotFound)
    }

    fn alerts(&self, _: AccountId) -> Result<AlertsView, NotifyError> {
        Ok(AlertsView { low_balance_threshold: self.threshold(), balance_level: BalanceLevel::Normal })
    }

    fn set_alerts(
        &self,
        _: AccountId,
        threshold: Option<Credits>,
        _: DateTime<Utc>,
    ) -> Result<AlertsView, NotifyError> {
        *lock(&self.threshold) = threshold;
        Ok(AlertsView { low_balance_threshold: threshold, balance_level: rebase(threshold, Credits::new(1_000)) })
    }

    fn endpoints(&self, _: AccountId) -> Result<Vec<EndpointView>, NotifyError> {
        Ok(lock(&self.endpoints).iter().map(MemoryNotify::view).collect())
    }

    fn create_endpoint(
        &self,
        _: AccountId,
        endpoint: &NewEndpoint,
        _: DateTime<Utc>,
    ) -> Result<EndpointView, NotifyError> {
        let mut kept = lock(&self.endpoints);
        check_endpoint_count(kept.len()).map_err(NotifyError::Invalid)?;
        kept.push(endpoint.clone());
        Ok(MemoryNotify::view(endpoint))
    }

    fn delete_endpoint(&self, _: AccountId, endpoint: Uuid) -> Result<(), NotifyError> {
        let mut kept = lock(&self.endpoints);
        let before = kept.len();
        kept.retain(|e| e.id != endpoint);
        if kept.len() == before { Err(NotifyError::NotFound) } else { Ok(()) }
    }

    fn deliveries(&self, _: AccountId, _: Uuid, _: i64) -> Result<Vec<DeliveryAttemptView>, NotifyError> {
        Ok(Vec::new())
    }

    fn notice_expiring(&self, _: DateTime<Utc>, _: chrono::TimeDelta, _: i64) -> Result<usize, StoreError> {
        Ok(0)
    }
}

/// A queue of jobs given by the test: claims hand them out in order, each once; records keep
/// the answers and say the job is where `status_after` says.
pub struct MemoryJobs {
    due: Mutex<Vec<Claimed>>,
    pub answers: Mutex<Vec<(Uuid, Answer)>>,
    pub status_after: fn(&Answer) -> Option<JobStatus>,
}

impl MemoryJobs {
    pub fn new(due: Vec<Claimed>) -> MemoryJobs {
        MemoryJobs {
            due: Mutex::new(due),
            answers: Mutex::new(Vec::new()),
            status_after: |a| match a {
                Answer::Call(Ok(())) => Some(JobStatus::Done),
                Answer::Call(Err(_)) => Some(JobStatus::Pending),
                _ => Some(JobStatus::Done),
            },
        }
    }

    pub fn left(&self) -> usize {
        lock(&self.due).len()
    }
}

impl Jobs for MemoryJobs {
    fn claim(&self, kind: JobKind, limit: &ClaimLimit, _: DateTime<Utc>) -> Result<Vec<Claimed>, StoreError> {
        let mut due = lock(&self.due);
        let mut taken = Vec::new();
        while taken.len() < usize::try_from(limit.batch).unwrap_or(0) {
            let Some(i) = due.iter().position(|j| j.kind() == kind) else { break };
            taken.push(due.remove(i));
        }
        Ok(taken)
    }

    fn record(&self, job: &Claimed, answer: Answer, _: DateTime<Utc>) -> Result<Option<JobStatus>, StoreError> {
        let status = (self.status_after)(&answer);
        lock(&self.answers).push((job.id, answer));
        Ok(status)
    }
}

/// A mail server that takes every mail, or refuses every one.
pub struct RecordingMailer {
    pub sent: Mutex<Vec<OutboxMessage>>,
    pub refuse: Option<&'static str>,
}

impl Mailer for RecordingMailer {
    fn deliver(&self, message: &OutboxMessage) -> Result<(), String> {
        match self.refuse {
            Some(why) => Err(why.to_string()),
            None => {
                lock(&self.sent).push(message.clone());
                Ok(())
            }
        }
    }
}

/// Stripe as the workers call it: every call is kept (what, about what, with which key), and
/// answered as set.
pub struct ScriptedGateway {
    pub calls: Mutex<Vec<(String, String, String)>>,
    pub fail: Option<&'static str>,
    pub intent: IntentAnswer,
}

impl ScriptedGateway {
    pub fn answering(intent: IntentAnswer) -> ScriptedGateway {
        ScriptedGateway { calls: Mutex::new(Vec::new()), fail: None, intent }
    }

    fn call(&self, what: &str, subject: &str, key: &str) -> Result<(), GatewayError> {
        lock(&self.calls).push((what.into(), subject.into(), key.into()));
        match self.fail {
            Some(why) => Err(GatewayError::Unavailable(why.into())),
            None => Ok(()),
        }
    }
}

impl PaymentGateway for ScriptedGateway {
    fn create_customer(&self, _: AccountId, _: &str, _: &str, _: u32) -> Result<String, GatewayError> {
        unreachable!("no worker makes a customer")
    }
    fn create_session(&self, _: &SessionRequest) -> Result<CreatedSession, GatewayError> {
        unreachable!("no worker makes a session")
    }
    fn expire_session(&self, _: &str) -> Result<(), GatewayError> {
        unreachable!("no worker expires a session")
    }
    fn change_price(&self, _: &LiveSubscription, _: &str, _: bool, _: &str) -> Result<(), GatewayError> {
        unreachable!("no worker changes a price")
    }
    fn resume(&self, _: &LiveSubscription, _: &str) -> Result<(), GatewayError> {
        unreachable!("no worker resumes a subscription")
    }
    fn cancel_subscription(&self, subscription: &str, key: &str) -> Result<(), GatewayError> {
        self.call("cancel_subscription", subscription, key)
    }
    fn refund_invoice(&self, invoice: &str, key: &str) -> Result<(), GatewayError> {
        self.call("refund_invoice", invoice, key)
    }
    fn invoice_for_payment(&self, _: &str) -> Result<Option<String>, GatewayError> {
        Ok(None)
    }
    fn invoices(&self, _: &str) -> Result<Vec<InvoiceView>, GatewayError> {
        Ok(Vec::new())
    }
    fn portal_session(&self, _: &str, _: &str) -> Result<String, GatewayError> {
        unreachable!("no worker opens a portal")
    }
    fn pay_off_session(&self, payment: &OffSessionPayment<'_>) -> IntentAnswer {
        lock(&self.calls).push(("pay_off_session".into(), payment.customer.into(), payment.auto_topup.to_string()));
        self.intent.clone()
    }
}
