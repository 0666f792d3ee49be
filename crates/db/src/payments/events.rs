//! One Stripe event inside its transaction: find the account it concerns, lock its row before
//! any other row is written, record the event (a replay stops here), load the facts, let the
//! domain decide, write the effects.

use chrono::{DateTime, Utc};
use credits_domain::burn::{BucketKind, Portion};
use credits_domain::catalog::{Catalog, FREE_PLAN};
use credits_domain::credits::Credits;
use credits_domain::ids::{AccountId, BucketId};
use credits_domain::payments::{
    AllowanceBucket, Applied, Decision, Effect, Ignored, PaymentEvent, PlanChange, PurchaseFacts, SessionFacts,
    SessionMode, SessionRecord, SessionStatus, StripeEvent, SubscriptionChange, SubscriptionFacts, SubscriptionRecord,
    SubscriptionStatus, decide_invoice_failed, decide_invoice_paid, decide_refund, decide_session_completed,
    decide_session_failed, decide_session_paid, decide_subscription_deleted, decide_subscription_updated,
};
use credits_domain::views::EntryType;
use diesel::prelude::*;
use uuid::Uuid;

use crate::ledger::{EntryMeta, Grant, Posting, end_allowances, grant, load_wallet, lock_account, post, post_all};
use crate::outbox::enqueue;
use crate::rows::undecodable;
use crate::schema::{
    accounts, buckets, checkout_sessions, invoice_grants, stripe_events, subscriptions, topup_purchases,
};

/// Apply `event` once. The caller runs this in one transaction.
pub fn apply(
    conn: &mut PgConnection,
    catalog: &Catalog,
    event: &StripeEvent,
    now: DateTime<Utc>,
) -> QueryResult<Applied> {
    let ev = Event { conn, catalog, event, now };
    ev.apply()
}

struct Event<'a> {
    conn: &'a mut PgConnection,
    catalog: &'a Catalog,
    event: &'a StripeEvent,
    now: DateTime<Utc>,
}

/// What the effects are written about.
#[derive(Default)]
struct Subject<'s> {
    session: Option<&'s str>,
    subscription: Option<&'s str>,
    invoice: Option<&'s str>,
    purchase: Option<&'s str>,
}

impl Event<'_> {
    fn apply(mut self) -> QueryResult<Applied> {
        let event = self.event;
        let catalog = self.catalog;
        let now = self.now;
        let created = event.created;
        let (account, decision, subject) = match &event.payload {
            PaymentEvent::CheckoutCompleted(s)
            | PaymentEvent::AsyncPaymentSucceeded(s)
            | PaymentEvent::AsyncPaymentFailed(s) => {
                let facts = self.session_facts(&s.id)?;
                if !self.record()? {
                    return Ok(Applied::Replay);
                }
                let decision = match &event.payload {
                    PaymentEvent::CheckoutCompleted(_) => decide_session_completed(catalog, facts.as_ref(), s, now),
                    PaymentEvent::AsyncPaymentSucceeded(_) => decide_session_paid(catalog, facts.as_ref(), s, now),
                    _ => decide_session_failed(facts.as_ref()),
                };
                let subject = Subject { session: Some(&s.id), ..Subject::default() };
                (facts.map(|f| f.account.id), decision, subject)
            }
            PaymentEvent::InvoicePaid(inv) | PaymentEvent::InvoicePaymentFailed(inv) => {
                let Some(sub) = inv.subscription.as_deref() else {
                    return self.ignored(Ignored::NothingToDo("not a subscription invoice"));
                };
                let Some(facts) = self.subscription_facts(sub, inv.customer.as_deref(), Some(&inv.id))? else {
                    return self.ignored(Ignored::NotOurs);
                };
                if !self.record()? {
                    return Ok(Applied::Replay);
                }
                let decision = match &event.payload {
                    PaymentEvent::InvoicePaid(_) => decide_invoice_paid(catalog, &facts, inv, sub, now),
                    _ => decide_invoice_failed(&facts, inv, sub),
                };
                let subject = Subject { subscription: Some(sub), invoice: Some(&inv.id), ..Subject::default() };
                (Some(facts.account.id), decision, subject)
            }
            PaymentEvent::SubscriptionUpdated(s) | PaymentEvent::SubscriptionDeleted(s) => {
                let Some(facts) = self.subscription_facts(&s.id, s.customer.as_deref(), None)? else {
                    return self.ignored(Ignored::NotOurs);
                };
                if !self.record()? {
                    return Ok(Applied::Replay);
                }
                let decision = match &event.payload {
                    PaymentEvent::SubscriptionUpdated(_) => {
                        decide_subscription_updated(catalog, &facts, s, created, now)
                    }
                    _ => decide_subscription_deleted(catalog, &facts, s, created, now),
                };
                (Some(facts.account.id), decision, Subject { subscription: Some(&s.id), ..Subject::default() })
            }
            PaymentEvent::ChargeRefunded(c) => {
                let found = match &c.payment_intent {
                    Some(pi) => self.purchase_facts(pi)?,
                    None => None,
                };
                if !self.record()? {
                    return Ok(Applied::Replay);
                }
                let decision = decide_refund(found.as_ref().map(|(f, _)| f), c);
                let subject = Subject { purchase: found.as_ref().map(|(_, s)| s.as_str()), ..Subject::default() };
                let account = found.as_ref().map(|(f, _)| f.account.id);
                // The subject borrows `found`; write before it goes.
                if let Some(account) = account {
                    self.write(account, &decision, &subject)?;
                }
                return self.finish(decision.applied);
            }
            PaymentEvent::Other => return self.ignored(Ignored::NotActedOn),
        };
        if let Some(account) = account {
            self.write(account, &decision, &subject)?;
        }
        self.finish(decision.applied)
    }

    /// Record the event as being applied; false if it was applied before (a replay).
    fn record(&mut self) -> QueryResult<bool> {
        let fresh = diesel::insert_into(stripe_events::table)
            .values((
                stripe_events::id.eq(&self.event.id),
                stripe_events::event_type.eq(&self.event.event_type),
                stripe_events::created.eq(self.event.created),
                stripe_events::outcome.eq("applying"),
                stripe_events::received_at.eq(self.now),
            ))
            .on_conflict(stripe_events::id)
            .do_nothing()
            .execute(self.conn)?;
        Ok(fresh == 1)
    }

    fn ignored(mut self, why: Ignored) -> QueryResult<Applied> {
        if !self.record()? {
            return Ok(Applied::Replay);
        }
        self.finish(Applied::Ignored(why))
    }

    fn finish(self, applied: Applied) -> QueryResult<Applied> {
        diesel::update(stripe_events::table.find(&self.event.id))
            .set(stripe_events::outcome.eq(applied.to_string()))
            .execute(self.conn)?;
        Ok(applied)
    }

    fn lock(&mut self, account: Uuid) -> QueryResult<Option<credits_domain::account::Account>> {
        lock_account(self.conn, AccountId(account))?.map(|r| r.to_domain()).transpose()
    }

    // ---- facts ------------------------------------------------------------------------------

    /// Our record of a session (only what this service sold is granted), under its account's lock.
    fn session_facts(&mut self, id: &str) -> QueryResult<Option<SessionFacts>> {
        let found: Option<(Uuid, String, String, String)> = checkout_sessions::table
            .find(id)
            .select((
                checkout_sessions::account_id,
                checkout_sessions::mode,
                checkout_sessions::item_id,
                checkout_sessions::status,
            ))
            .first(self.conn)
            .optional()?;
        let Some((account, mode, item, status)) = found else { return Ok(None) };
        let Some(account) = self.lock(account)? else { return Ok(None) };
        let pack_granted: bool =
            diesel::select(diesel::dsl::exists(topup_purchases::table.find(id))).get_result(self.conn)?;
        Ok(Some(SessionFacts {
            account,
            record: SessionRecord {
                id: id.to_string(),
                mode: SessionMode::parse(&mode).ok_or_else(|| undecodable("session mode", &mode))?,
                item,
                status: SessionStatus::parse(&status).ok_or_else(|| undecodable("session status", &status))?,
            },
            pack_granted,
        }))
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
            (Some((account, customer)), _) => (account, customer),
            (None, Some(customer)) => {
                let by_customer: Option<Uuid> = accounts::table
                    .filter(accounts::stripe_customer_id.eq(customer))
                    .select(accounts::id)
                    .first(self.conn)
                    .optional()?;
                let Some(account) = by_customer else { return Ok(None) };
                (account, customer.to_string())
            }
            (None, None) => return Ok(None),
        };
        let Some(account) = self.lock(account)? else { return Ok(None) };
        type Row = (String, bool, Option<String>, Option<DateTime<Utc>>, Option<DateTime<Utc>>);
        let record: Option<Row> = subscriptions::table
            .find(id)
            .select((
                subscriptions::stripe_status,
                subscriptions::cancel_at_period_end,
                subscriptions::item_id,
                subscriptions::last_event_at,
                subscriptions::ended_at,
            ))
            .first(self.conn)
            .optional()?;
        let subscription = record
            .map(|(status, cancel_at_period_end, item_id, last_event_at, ended_at)| {
                Ok::<_, diesel::result::Error>(SubscriptionRecord {
                    id: id.to_string(),
                    status: SubscriptionStatus::parse(&status)
                        .ok_or_else(|| undecodable("subscription status", &status))?,
                    item_id,
                    cancel_at_period_end,
                    last_event_at,
                    ended_at,
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
        Ok(Some(SubscriptionFacts { account, subscription, customer, started, invoice_applied, allowance }))
    }

    /// The pack a payment bought (and its session id), under its account's lock.
    fn purchase_facts(&mut self, payment_intent: &str) -> QueryResult<Option<(PurchaseFacts, String)>> {
        let found: Option<(String, Uuid, Uuid, i64, i64)> = topup_purchases::table
            .filter(topup_purchases::payment_intent_id.eq(payment_intent))
            .select((
                topup_purchases::session_id,
                topup_purchases::account_id,
                topup_purchases::bucket_id,
                topup_purchases::credits,
                topup_purchases::clawed_back,
            ))
            .first(self.conn)
            .optional()?;
        let Some((session, account, bucket, bought, clawed)) = found else { return Ok(None) };
        let Some(account) = self.lock(account)? else { return Ok(None) };
        let wallet = load_wallet(self.conn, account.id)?;
        let left = wallet.bucket(BucketId(bucket)).map(|b| wallet.free_in(b, self.now)).unwrap_or(Credits::ZERO);
        Ok(Some((
            PurchaseFacts {
                account,
                bucket: BucketId(bucket),
                bought: Credits::new(bought),
                clawed: Credits::new(clawed),
                left,
            },
            session,
        )))
    }

    // ---- effects ----------------------------------------------------------------------------

    fn write(&mut self, account: AccountId, decision: &Decision, subject: &Subject<'_>) -> QueryResult<()> {
        let now = self.now;
        // The allowance this decision granted, for the invoice's record.
        let mut granted: Option<Uuid> = None;
        for effect in &decision.effects {
            match effect {
                Effect::SetCustomer(customer) => {
                    diesel::update(accounts::table.find(account.0).filter(accounts::stripe_customer_id.is_null()))
                        .set(accounts::stripe_customer_id.eq(customer))
                        .execute(self.conn)?;
                }
                Effect::LinkSubscription { id, customer } => {
                    diesel::insert_into(subscriptions::table)
                        .values((
                            subscriptions::id.eq(id),
                            subscriptions::account_id.eq(account.0),
                            subscriptions::customer_id.eq(customer),
                            subscriptions::stripe_status.eq(SubscriptionStatus::Incomplete.as_str()),
                            subscriptions::created_at.eq(now),
                        ))
                        .on_conflict(subscriptions::id)
                        .do_nothing()
                        .execute(self.conn)?;
                }
                Effect::SessionStatus(status) => {
                    if let Some(session) = subject.session {
                        diesel::update(checkout_sessions::table.find(session))
                            .set(checkout_sessions::status.eq(status.as_str()))
                            .execute(self.conn)?;
                    }
                }
                Effect::GrantPack { pack, credits, expires_at, payment_intent, amount, currency } => {
                    let Some(session) = subject.session else { continue };
                    let reference = format!("checkout:{session}");
                    let reason = format!("top-up pack {pack}");
                    let (bucket, _) = grant(
                        self.conn,
                        Grant {
                            account,
                            kind: BucketKind::Topup,
                            credits: *credits,
                            expires_at: Some(*expires_at),
                            entry_type: EntryType::Grant,
                            reference: Some(&reference),
                            reason: Some(&reason),
                        },
                        now,
                    )?;
                    diesel::insert_into(topup_purchases::table)
                        .values((
                            topup_purchases::session_id.eq(session),
                            topup_purchases::account_id.eq(account.0),
                            topup_purchases::pack_id.eq(pack),
                            topup_purchases::bucket_id.eq(bucket.id),
                            topup_purchases::credits.eq(credits.get()),
                            topup_purchases::payment_intent_id.eq(payment_intent),
                            topup_purchases::amount.eq(amount),
                            topup_purchases::currency.eq(currency),
                            topup_purchases::created_at.eq(now),
                        ))
                        .execute(self.conn)?;
                }
                Effect::EndAllowances => end_allowances(self.conn, account, now)?,
                Effect::GrantAllowance { credits, expires_at, reason } => {
                    let reference = subject.invoice.map(|i| format!("invoice:{i}"));
                    let (bucket, _) = grant(
                        self.conn,
                        Grant {
                            account,
                            kind: BucketKind::Allowance,
                            credits: *credits,
                            expires_at: Some(*expires_at),
                            entry_type: EntryType::Grant,
                            reference: reference.as_deref(),
                            reason: Some(reason),
                        },
                        now,
                    )?;
                    granted = Some(bucket.id);
                }
                Effect::GrowAllowance { bucket, credits, reason } => {
                    diesel::update(buckets::table.find(bucket.0))
                        .set(buckets::granted.eq(buckets::granted + credits.get()))
                        .execute(self.conn)?;
                    let reference = subject.invoice.map(|i| format!("invoice:{i}"));
                    post(
                        self.conn,
                        Posting {
                            account,
                            bucket: *bucket,
                            entry_type: EntryType::Grant,
                            credits: *credits,
                            run: None,
                            reference: Some(reference.as_deref().unwrap_or("upgrade")),
                            reason: Some(reason),
                        },
                        now,
                    )?;
                }
                Effect::RecordInvoice { subscription, billing_reason } => {
                    let Some(invoice) = subject.invoice else { continue };
                    diesel::insert_into(invoice_grants::table)
                        .values((
                            invoice_grants::invoice_id.eq(invoice),
                            invoice_grants::account_id.eq(account.0),
                            invoice_grants::subscription_id.eq(subscription),
                            invoice_grants::billing_reason.eq(billing_reason.as_str()),
                            invoice_grants::bucket_id.eq(granted),
                            invoice_grants::created_at.eq(now),
                        ))
                        .execute(self.conn)?;
                }
                Effect::Plan(change) => set_plan(self.conn, account, change)?,
                Effect::Subscription(change) => {
                    if let Some(id) = subject.subscription {
                        set_subscription(self.conn, id, change)?;
                    }
                }
                Effect::ToFree => to_free(self.conn, account, now)?,
                Effect::Clawback { bucket, credits, reference, reason } => {
                    let meta = EntryMeta::new(EntryType::Clawback, reason).reference(reference);
                    post_all(self.conn, account, &[Portion { bucket_id: *bucket, credits: *credits }], &meta, now)?;
                }
                Effect::RecordRefund { refunded_amount, clawed } => {
                    let Some(session) = subject.purchase else { continue };
                    diesel::update(topup_purchases::table.find(session))
                        .set((
                            topup_purchases::refunded_amount.eq(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                                "GREATEST(refunded_amount, ",
                            )
                            .bind::<diesel::sql_types::BigInt, _>(*refunded_amount)
                            .sql(")")),
                            topup_purchases::clawed_back.eq(topup_purchases::clawed_back + clawed.get()),
                        ))
                        .execute(self.conn)?;
                }
                Effect::Mail(mail) => enqueue(self.conn, mail, now)?,
            }
        }
        Ok(())
    }
}

#[derive(AsChangeset)]
#[diesel(table_name = accounts)]
struct PlanColumns {
    plan_id: Option<String>,
    plan_status: Option<&'static str>,
    period_start: Option<Option<DateTime<Utc>>>,
    period_end: Option<Option<DateTime<Utc>>>,
    pending_change: Option<Option<String>>,
    plan_ends_at: Option<Option<DateTime<Utc>>>,
}

/// One statement for the whole change (nothing when it changes nothing).
fn set_plan(conn: &mut PgConnection, account: AccountId, c: &PlanChange) -> QueryResult<()> {
    if *c == PlanChange::default() {
        return Ok(());
    }
    let columns = PlanColumns {
        plan_id: c.plan.clone(),
        plan_status: c.status.map(|s| s.as_str()),
        period_start: c.period.map(|p| Some(p.start)),
        period_end: c.period.map(|p| Some(p.end)),
        pending_change: c.pending_change.as_ref().map(|p| p.as_ref().map(|p| p.to_text())),
        plan_ends_at: c.plan_ends_at,
    };
    diesel::update(accounts::table.find(account.0)).set(columns).execute(conn)?;
    Ok(())
}

#[derive(AsChangeset)]
#[diesel(table_name = subscriptions)]
struct SubscriptionColumns {
    stripe_status: Option<&'static str>,
    price_id: Option<Option<String>>,
    item_id: Option<Option<String>>,
    cancel_at_period_end: Option<bool>,
    current_period_start: Option<Option<DateTime<Utc>>>,
    current_period_end: Option<Option<DateTime<Utc>>>,
    last_event_at: Option<Option<DateTime<Utc>>>,
    ended_at: Option<Option<DateTime<Utc>>>,
}

fn set_subscription(conn: &mut PgConnection, id: &str, c: &SubscriptionChange) -> QueryResult<()> {
    if *c == SubscriptionChange::default() {
        return Ok(());
    }
    let columns = SubscriptionColumns {
        stripe_status: c.status.map(SubscriptionStatus::as_str),
        price_id: c.price_id.clone(),
        item_id: c.item_id.clone().map(Some),
        cancel_at_period_end: c.cancel_at_period_end,
        current_period_start: c.period.map(|(start, _)| start),
        current_period_end: c.period.map(|(_, end)| end),
        last_event_at: c.last_event_at.map(Some),
        // The first end is the one kept.
        ended_at: None,
    };
    if let Some(at) = c.ended_at {
        diesel::update(subscriptions::table.find(id).filter(subscriptions::ended_at.is_null()))
            .set(subscriptions::ended_at.eq(Some(at)))
            .execute(conn)?;
    }
    if columns.stripe_status.is_some()
        || columns.price_id.is_some()
        || columns.item_id.is_some()
        || columns.cancel_at_period_end.is_some()
        || columns.current_period_start.is_some()
        || columns.last_event_at.is_some()
    {
        diesel::update(subscriptions::table.find(id)).set(columns).execute(conn)?;
    }
    Ok(())
}

/// R14: back on Free: allowance gone, top-ups and the lifetime remainder kept, no new grant.
pub fn to_free(conn: &mut PgConnection, account: AccountId, now: DateTime<Utc>) -> QueryResult<()> {
    end_allowances(conn, account, now)?;
    diesel::update(accounts::table.find(account.0))
        .set((
            accounts::plan_id.eq(FREE_PLAN),
            accounts::plan_status.eq(credits_domain::account::PlanStatus::Active.as_str()),
            accounts::period_start.eq(None::<DateTime<Utc>>),
            accounts::period_end.eq(None::<DateTime<Utc>>),
            accounts::pending_change.eq(None::<String>),
            accounts::plan_ends_at.eq(None::<DateTime<Utc>>),
        ))
        .execute(conn)?;
    Ok(())
}
