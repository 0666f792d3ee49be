//! One Stripe event inside its transaction: find the account it concerns, lock its row before
//! any other row is written, record the event (a replay stops here), load the facts, let the
//! domain decide, write the effects.

use chrono::{DateTime, Utc};
use credits_domain::account::Account;
use credits_domain::burn::BucketKind;
use credits_domain::catalog::Catalog;
use credits_domain::credits::Credits;
use credits_domain::ids::{AccountId, BucketId};
use credits_domain::jobs::StripeEventStatus;
use credits_domain::notify::autotopup::PaymentOutcome;
use credits_domain::payments::{
    AllowanceBucket, Applied, Decision, DisputeFacts, DisputeInfo, DisputeStatus, Ignored, OUTCOME_APPLYING,
    OUTCOME_FAILED, PackSold, PaymentEvent, PaymentLink, Purchase, PurchaseFacts, SessionFacts, SessionMode,
    SessionRecord, SessionStatus, StripeEvent, SubscriptionFacts, SubscriptionRecord, SubscriptionStatus, Unapplicable,
    decide_customer_deleted, decide_dispute_closed, decide_dispute_created, decide_invoice_failed, decide_invoice_paid,
    decide_refund, decide_session_completed, decide_session_expired, decide_session_failed, decide_session_paid,
    decide_subscription_deleted, decide_subscription_updated,
};
use diesel::prelude::*;
use uuid::Uuid;

use super::effects::{self, Subject};
use crate::ledger::{TxLog, load_wallet, lock_account};
use crate::notify::NotifySettings;
use crate::notify::autotopup;
use crate::rows::undecodable;
use crate::schema::{
    accounts, buckets, checkout_sessions, disputes, invoice_grants, stripe_events, subscriptions, topup_purchases,
};

/// Apply `event` once: `Ok(Err(_))` when the service's configuration cannot apply it (the caller
/// rolls back and keeps the event as failed). The caller runs this in one transaction.
pub fn apply(
    conn: &mut PgConnection,
    log: &mut TxLog,
    catalog: &Catalog,
    notify: &NotifySettings,
    event: &StripeEvent,
    now: DateTime<Utc>,
) -> QueryResult<Result<Applied, Unapplicable>> {
    Event { conn, log, catalog, notify, event, now }.apply()
}

/// A session as recorded, with its account and the account's Stripe customer (no lock: a read).
pub fn session_record(
    conn: &mut PgConnection,
    id: &str,
) -> QueryResult<Option<(AccountId, SessionRecord, Option<String>)>> {
    type Row = (Uuid, String, String, String, Option<i64>, Option<i32>, Option<i64>, Option<String>, Option<String>);
    let found: Option<Row> = checkout_sessions::table
        .inner_join(accounts::table)
        .filter(checkout_sessions::id.eq(id))
        .select((
            checkout_sessions::account_id,
            checkout_sessions::mode,
            checkout_sessions::item_id,
            checkout_sessions::status,
            checkout_sessions::credits,
            checkout_sessions::expiry_days,
            checkout_sessions::amount,
            checkout_sessions::currency,
            accounts::stripe_customer_id,
        ))
        .first(conn)
        .optional()?;
    let Some((account, mode, item, status, credits, expiry_days, amount, currency, customer)) = found else {
        return Ok(None);
    };
    Ok(Some((
        AccountId(account),
        record_of(id, &mode, item, &status, (credits, expiry_days, amount), currency)?,
        customer,
    )))
}

fn record_of(
    id: &str,
    mode: &str,
    item: String,
    status: &str,
    (credits, expiry_days, amount): (Option<i64>, Option<i32>, Option<i64>),
    currency: Option<String>,
) -> QueryResult<SessionRecord> {
    let sold = match (credits, expiry_days, amount) {
        (Some(credits), Some(days), Some(amount)) => {
            Some(PackSold { credits: Credits::new(credits), expiry_days: u32::try_from(days).unwrap_or(0), amount })
        }
        _ => None,
    };
    Ok(SessionRecord {
        id: id.to_string(),
        mode: SessionMode::parse(mode).ok_or_else(|| undecodable("session mode", mode))?,
        item,
        status: SessionStatus::parse(status).ok_or_else(|| undecodable("session status", status))?,
        sold,
        currency,
    })
}

/// Keep an event that could not be applied, for an admin (its own transaction, after the
/// event's rolled back): answered 500 each time, never recorded as applied.
pub fn record_failed(conn: &mut PgConnection, event: &StripeEvent, error: &str, now: DateTime<Utc>) -> QueryResult<()> {
    diesel::insert_into(stripe_events::table)
        .values((
            stripe_events::id.eq(&event.id),
            stripe_events::event_type.eq(&event.event_type),
            stripe_events::created.eq(event.created),
            stripe_events::outcome.eq(OUTCOME_FAILED),
            stripe_events::received_at.eq(now),
            stripe_events::status.eq(StripeEventStatus::Failed.as_str()),
            stripe_events::payload.eq(Some(&event.raw)),
            stripe_events::error.eq(Some(error)),
        ))
        .on_conflict(stripe_events::id)
        .do_update()
        .set((
            stripe_events::error.eq(Some(error)),
            stripe_events::attempts.eq(stripe_events::attempts + 1),
            stripe_events::received_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

struct Event<'a> {
    conn: &'a mut PgConnection,
    /// The transaction's log: the accounts locked and entries posted (`ledger::TxLog`).
    log: &'a mut TxLog,
    catalog: &'a Catalog,
    notify: &'a NotifySettings,
    event: &'a StripeEvent,
    now: DateTime<Utc>,
}

type Decided = Result<Decision, Unapplicable>;

impl Event<'_> {
    fn apply(mut self) -> QueryResult<Result<Applied, Unapplicable>> {
        let event = self.event;
        let catalog = self.catalog;
        let (now, created) = (self.now, event.created);
        let (account, decided, subject): (Option<AccountId>, Decided, Subject) = match &event.payload {
            PaymentEvent::CheckoutCompleted(s)
            | PaymentEvent::AsyncPaymentSucceeded(s)
            | PaymentEvent::AsyncPaymentFailed(s)
            | PaymentEvent::SessionExpired(s) => {
                let facts = self.session_facts(&s.id)?;
                if !self.record()? {
                    return Ok(Ok(Applied::Replay));
                }
                let f = facts.as_ref();
                let decided = match &event.payload {
                    PaymentEvent::CheckoutCompleted(_) => decide_session_completed(catalog, f, s, now),
                    PaymentEvent::AsyncPaymentSucceeded(_) => decide_session_paid(catalog, f, s, now),
                    PaymentEvent::AsyncPaymentFailed(_) => Ok(decide_session_failed(f)),
                    _ => Ok(decide_session_expired(f)),
                };
                let subject = Subject { session: Some(s.id.clone()), ..Subject::default() };
                (facts.map(|f| f.account.id), decided, subject)
            }
            PaymentEvent::InvoicePaid(inv) | PaymentEvent::InvoicePaymentFailed(inv) => {
                let Some(sub) = inv.subscription.as_deref() else {
                    return self.ignored(Ignored::NothingToDo("not a subscription invoice"));
                };
                let Some(facts) = self.subscription_facts(sub, inv.customer.as_deref(), Some(&inv.id))? else {
                    return self.ignored(Ignored::NotOurs);
                };
                if !self.record()? {
                    return Ok(Ok(Applied::Replay));
                }
                let decided = match &event.payload {
                    PaymentEvent::InvoicePaid(_) => decide_invoice_paid(catalog, &facts, inv, sub, created),
                    _ => Ok(decide_invoice_failed(catalog, &facts, inv, sub, created)),
                };
                let subject = Subject {
                    subscription: Some(sub.to_string()),
                    invoice: Some(inv.id.clone()),
                    ..Subject::default()
                };
                (Some(facts.account.id), decided, subject)
            }
            PaymentEvent::SubscriptionUpdated(s) | PaymentEvent::SubscriptionDeleted(s) => {
                let Some(facts) = self.subscription_facts(&s.id, s.customer.as_deref(), None)? else {
                    return self.ignored(Ignored::NotOurs);
                };
                if !self.record()? {
                    return Ok(Ok(Applied::Replay));
                }
                let decided = match &event.payload {
                    PaymentEvent::SubscriptionUpdated(_) => {
                        decide_subscription_updated(catalog, &facts, s, created, now)
                    }
                    _ => Ok(decide_subscription_deleted(catalog, &facts, s, created, now)),
                };
                (Some(facts.account.id), decided, Subject { subscription: Some(s.id.clone()), ..Subject::default() })
            }
            PaymentEvent::ChargeRefunded(c, link) => {
                let facts = self.purchase_facts(link)?;
                if !self.record()? {
                    return Ok(Ok(Applied::Replay));
                }
                let decided = Ok(decide_refund(facts.as_ref(), c));
                (facts.map(|f| f.account.id), decided, Subject::default())
            }
            PaymentEvent::DisputeCreated(d, link) => {
                let facts = self.purchase_facts(link)?;
                if !self.record()? {
                    return Ok(Ok(Applied::Replay));
                }
                let decided = Ok(decide_dispute_created(facts.as_ref(), d));
                let subject = Subject {
                    dispute: Some(d.id.clone()),
                    payment_intent: link.payment_intent.clone(),
                    ..Subject::default()
                };
                (facts.map(|f| f.account.id), decided, subject)
            }
            PaymentEvent::DisputeClosed(d) => {
                let facts = self.dispute_facts(d)?;
                if !self.record()? {
                    return Ok(Ok(Applied::Replay));
                }
                let decided = Ok(decide_dispute_closed(facts.as_ref(), d));
                let subject = Subject { dispute: Some(d.id.clone()), ..Subject::default() };
                (facts.map(|f| f.account.id), decided, subject)
            }
            PaymentEvent::CustomerDeleted { customer } => {
                let account = self.customer_account(customer)?;
                if !self.record()? {
                    return Ok(Ok(Applied::Replay));
                }
                let decided = Ok(decide_customer_deleted(account.as_ref(), customer));
                (account.map(|a| a.id), decided, Subject::default())
            }
            PaymentEvent::IntentSucceeded(i) | PaymentEvent::IntentFailed(i) => {
                // R22: only the PaymentIntents of auto top-ups are acted on (a pack's checkout is
                // granted by its session's events).
                let topup = i.auto_topup.as_deref().and_then(|s| Uuid::parse_str(s).ok());
                let Some(row) = autotopup::find(self.conn, topup, &i.id)? else {
                    return self.ignored(Ignored::NotOurs);
                };
                if self.lock(row.account_id)?.is_none() {
                    return self.ignored(Ignored::NotOurs);
                }
                if !self.record()? {
                    return Ok(Ok(Applied::Replay));
                }
                let outcome = match &event.payload {
                    PaymentEvent::IntentSucceeded(_) => PaymentOutcome::Succeeded,
                    _ => PaymentOutcome::of_failure(i.failure_code.as_deref()),
                };
                let answer = autotopup::Answer { payment_intent: Some(&i.id), outcome, reason: i.failure.as_deref() };
                let ended = autotopup::end(self.conn, self.log, self.notify, &row, answer, now)?;
                let applied = match ended {
                    autotopup::Ended::Granted { credits } => {
                        Applied::Done(credits_domain::payments::Outcome::PackGranted {
                            pack: row.pack_id.clone(),
                            credits,
                        })
                    }
                    autotopup::Ended::Failed => Applied::Done(credits_domain::payments::Outcome::PaymentFailed),
                    autotopup::Ended::Already => Applied::Ignored(Ignored::AlreadyApplied),
                };
                return self.finish(applied).map(Ok);
            }
            PaymentEvent::Other => return self.ignored(Ignored::NotActedOn),
        };
        let decision = match decided {
            Ok(d) => d,
            Err(why) => return Ok(Err(why)),
        };
        if let Some(account) = account {
            effects::write(self.conn, self.log, account, &decision, &subject, self.now)?;
        }
        self.finish(decision.applied).map(Ok)
    }

    /// Record the event as being applied; false if it was applied before (a replay). A failed
    /// event kept for an admin is taken over: it is being applied now.
    fn record(&mut self) -> QueryResult<bool> {
        let fresh = diesel::insert_into(stripe_events::table)
            .values((
                stripe_events::id.eq(&self.event.id),
                stripe_events::event_type.eq(&self.event.event_type),
                stripe_events::created.eq(self.event.created),
                stripe_events::outcome.eq(OUTCOME_APPLYING),
                stripe_events::received_at.eq(self.now),
            ))
            .on_conflict(stripe_events::id)
            .do_nothing()
            .execute(self.conn)?;
        if fresh == 1 {
            return Ok(true);
        }
        let taken_over = diesel::update(
            stripe_events::table
                .find(&self.event.id)
                .filter(stripe_events::status.eq(StripeEventStatus::Failed.as_str())),
        )
        .set((
            stripe_events::status.eq(StripeEventStatus::Applied.as_str()),
            stripe_events::outcome.eq(OUTCOME_APPLYING),
        ))
        .execute(self.conn)?;
        Ok(taken_over == 1)
    }

    fn ignored(mut self, why: Ignored) -> QueryResult<Result<Applied, Unapplicable>> {
        if !self.record()? {
            return Ok(Ok(Applied::Replay));
        }
        self.finish(Applied::Ignored(why)).map(Ok)
    }

    fn finish(self, applied: Applied) -> QueryResult<Applied> {
        diesel::update(stripe_events::table.find(&self.event.id))
            .set((
                stripe_events::outcome.eq(applied.to_string()),
                stripe_events::status.eq(StripeEventStatus::Applied.as_str()),
            ))
            .execute(self.conn)?;
        Ok(applied)
    }

    fn lock(&mut self, account: Uuid) -> QueryResult<Option<Account>> {
        lock_account(self.conn, self.log, AccountId(account))?.map(|r| r.to_domain()).transpose()
    }

    // ---- facts ------------------------------------------------------------------------------

    /// Our record of a session (only what this service sold is granted), under its account's lock.
    fn session_facts(&mut self, id: &str) -> QueryResult<Option<SessionFacts>> {
        type Row = (Uuid, String, String, String, Option<i64>, Option<i32>, Option<i64>, Option<String>);
        let found: Option<Row> = checkout_sessions::table
            .find(id)
            .select((
                checkout_sessions::account_id,
                checkout_sessions::mode,
                checkout_sessions::item_id,
                checkout_sessions::status,
                checkout_sessions::credits,
                checkout_sessions::expiry_days,
                checkout_sessions::amount,
                checkout_sessions::currency,
            ))
            .first(self.conn)
            .optional()?;
        let Some((account, mode, item, status, credits, expiry_days, amount, currency)) = found else {
            return Ok(None);
        };
        let Some(account) = self.lock(account)? else { return Ok(None) };
        let pack_granted: bool =
            diesel::select(diesel::dsl::exists(topup_purchases::table.filter(topup_purchases::session_id.eq(id))))
                .get_result(self.conn)?;
        let record = record_of(id, &mode, item, &status, (credits, expiry_days, amount), currency)?;
        Ok(Some(SessionFacts { account, record, pack_granted }))
    }

    fn customer_account(&mut self, customer: &str) -> QueryResult<Option<Account>> {
        let found: Option<Uuid> = accounts::table
            .filter(accounts::stripe_customer_id.eq(customer))
            .select(accounts::id)
            .first(self.conn)
            .optional()?;
        match found {
            Some(id) => self.lock(id),
            None => Ok(None),
        }
    }

    /// The subscription's account (by the subscription, or by its customer: events arrive in any
    /// order, an invoice may come before the checkout's completion), locked, and what is known.
    fn subscription_facts(
        &mut self,
        id: &str,
        customer: Option<&str>,
        invoice: Option<&str>,
    ) -> QueryResult<Option<SubscriptionFacts>> {
        let known: Option<(Uuid, String)> = subscriptions::table
            .find(id)
            .select((subscriptions::account_id, subscriptions::customer_id))
            .first(self.conn)
            .optional()?;
        let (account, customer) = match (known, customer) {
            (Some((account, customer)), _) => match self.lock(account)? {
                Some(a) => (a, customer),
                None => return Ok(None),
            },
            (None, Some(customer)) => match self.customer_account(customer)? {
                Some(a) => (a, customer.to_string()),
                None => return Ok(None),
            },
            (None, None) => return Ok(None),
        };
        type Row = (String, bool, Option<String>, Option<DateTime<Utc>>, Option<DateTime<Utc>>, Option<String>);
        let record: Option<Row> = subscriptions::table
            .find(id)
            .select((
                subscriptions::stripe_status,
                subscriptions::cancel_at_period_end,
                subscriptions::item_id,
                subscriptions::last_event_at,
                subscriptions::ended_at,
                subscriptions::duplicate_of,
            ))
            .first(self.conn)
            .optional()?;
        let subscription = record
            .map(|(status, cancel_at_period_end, item_id, last_event_at, ended_at, duplicate_of)| {
                Ok::<_, diesel::result::Error>(SubscriptionRecord {
                    id: id.to_string(),
                    status: SubscriptionStatus::parse(&status)
                        .ok_or_else(|| undecodable("subscription status", &status))?,
                    item_id,
                    cancel_at_period_end,
                    last_event_at,
                    ended_at,
                    duplicate_of,
                })
            })
            .transpose()?;
        let started: bool =
            diesel::select(diesel::dsl::exists(invoice_grants::table.filter(invoice_grants::subscription_id.eq(id))))
                .get_result(self.conn)?;
        let invoice_applied = match invoice {
            Some(inv) => diesel::select(diesel::dsl::exists(invoice_grants::table.find(inv))).get_result(self.conn)?,
            None => false,
        };
        // R18: another subscription of the account that started and has not ended.
        let other_live: Option<String> = subscriptions::table
            .filter(subscriptions::account_id.eq(account.id.0))
            .filter(subscriptions::id.ne(id))
            .filter(subscriptions::ended_at.is_null())
            .filter(subscriptions::duplicate_of.is_null())
            .filter(subscriptions::stripe_status.eq_any(SubscriptionStatus::live().map(SubscriptionStatus::as_str)))
            .filter(diesel::dsl::exists(
                invoice_grants::table.filter(invoice_grants::subscription_id.eq(subscriptions::id)),
            ))
            .select(subscriptions::id)
            .first(self.conn)
            .optional()?;
        let allowance = buckets::table
            .filter(buckets::account_id.eq(account.id.0))
            .filter(buckets::kind.eq(BucketKind::Allowance.as_str()))
            .filter(buckets::expires_at.gt(self.now))
            .order(buckets::created_at.desc())
            .select((buckets::id, buckets::granted, buckets::remaining))
            .first::<(Uuid, i64, i64)>(self.conn)
            .optional()?
            .map(|(id, granted, remaining)| AllowanceBucket {
                id: BucketId(id),
                granted: Credits::new(granted),
                remaining: Credits::new(remaining),
            });
        Ok(Some(SubscriptionFacts { account, subscription, customer, started, invoice_applied, allowance, other_live }))
    }

    /// What a payment bought: a pack (by its PaymentIntent) or a subscription invoice's allowance
    /// (by the invoice Stripe links the payment to), under its account's lock.
    fn purchase_facts(&mut self, link: &PaymentLink) -> QueryResult<Option<PurchaseFacts>> {
        type Found = (Purchase, Uuid, Option<Uuid>, i64, i64);
        let mut found: Option<Found> = None;
        if let Some(pi) = &link.payment_intent {
            found = topup_purchases::table
                .filter(topup_purchases::payment_intent_id.eq(pi))
                .select((
                    topup_purchases::id,
                    topup_purchases::account_id,
                    topup_purchases::bucket_id,
                    topup_purchases::credits,
                    topup_purchases::clawed_back,
                ))
                .first::<(Uuid, Uuid, Uuid, i64, i64)>(self.conn)
                .optional()?
                .map(|(id, account, bucket, bought, clawed)| {
                    (Purchase::Pack { id }, account, Some(bucket), bought, clawed)
                });
        }
        if found.is_none()
            && let Some(invoice) = &link.invoice
        {
            found = invoice_grants::table
                .find(invoice)
                .select((
                    invoice_grants::account_id,
                    invoice_grants::bucket_id,
                    invoice_grants::credits,
                    invoice_grants::clawed_back,
                ))
                .first::<(Uuid, Option<Uuid>, i64, i64)>(self.conn)
                .optional()?
                .map(|(account, bucket, bought, clawed)| {
                    (Purchase::Invoice { invoice: invoice.clone() }, account, bucket, bought, clawed)
                });
        }
        let Some((purchase, account, bucket, bought, clawed)) = found else { return Ok(None) };
        let Some(account) = self.lock(account)? else { return Ok(None) };
        let wallet = load_wallet(self.conn, account.id)?;
        let (kind, expires_at, left) = match bucket.and_then(|b| wallet.bucket(BucketId(b))) {
            Some(b) => (b.kind, b.expires_at, wallet.free_in(b, self.now)),
            None => {
                let stored: Option<(String, Option<DateTime<Utc>>)> = match bucket {
                    Some(b) => buckets::table
                        .find(b)
                        .select((buckets::kind, buckets::expires_at))
                        .first(self.conn)
                        .optional()?,
                    None => None,
                };
                match stored {
                    Some((kind, expires_at)) => (
                        BucketKind::parse(&kind).ok_or_else(|| undecodable("bucket kind", &kind))?,
                        expires_at,
                        Credits::ZERO,
                    ),
                    None => (BucketKind::Allowance, None, Credits::ZERO),
                }
            }
        };
        let disputed: bool = match &link.payment_intent {
            Some(pi) => diesel::select(diesel::dsl::exists(disputes::table.filter(disputes::payment_intent_id.eq(pi))))
                .get_result(self.conn)?,
            None => false,
        };
        Ok(Some(PurchaseFacts {
            account,
            purchase,
            bucket: bucket.map(BucketId),
            kind,
            expires_at,
            bought: Credits::new(bought),
            clawed: Credits::new(clawed),
            left,
            disputed,
        }))
    }

    fn dispute_facts(&mut self, d: &DisputeInfo) -> QueryResult<Option<DisputeFacts>> {
        type Row = (Uuid, String, Option<String>, Option<DateTime<Utc>>, i64);
        let found: Option<Row> = disputes::table
            .find(&d.id)
            .select((
                disputes::account_id,
                disputes::status,
                disputes::bucket_kind,
                disputes::bucket_expires_at,
                disputes::clawed_back,
            ))
            .first(self.conn)
            .optional()?;
        let Some((account, status, kind, expires_at, clawed)) = found else { return Ok(None) };
        let Some(account) = self.lock(account)? else { return Ok(None) };
        Ok(Some(DisputeFacts {
            account,
            status: DisputeStatus::parse(&status).ok_or_else(|| undecodable("dispute status", &status))?,
            kind: kind.map(|k| BucketKind::parse(&k).ok_or_else(|| undecodable("bucket kind", &k))).transpose()?,
            expires_at,
            clawed: Credits::new(clawed),
        }))
    }
}
