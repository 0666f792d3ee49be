//! The effect writer of payments: what a decision of `credits_domain::payments` returns,
//! written as rows (`write`), and the account changes that operators and sweeps make too
//! (`restrict`, `lift`, `to_free`, a plan's or a subscription's columns). It decides nothing.

use chrono::{DateTime, Utc};
use credits_domain::burn::{BucketKind, Portion};
use credits_domain::catalog::FREE_PLAN;
use credits_domain::ids::AccountId;
use credits_domain::notify::payloads::Payload;
use credits_domain::operator::still_restricted;
use credits_domain::payments::{
    Decision, DisputeStatus, Effect, PlanChange, Purchase, SubscriptionChange, SubscriptionStatus,
};
use credits_domain::views::EntryType;
use diesel::prelude::*;
use uuid::Uuid;

use crate::jobs::{NewJob, enqueue};
use crate::ledger::{
    EntryMeta, Grant, PackSale, PaidBy, Posting, TxLog, end_allowances, grant, grant_pack, post, post_all,
};
use crate::schema::{
    account_restrictions, accounts, buckets, checkout_sessions, disputes, invoice_grants, subscriptions,
    topup_purchases,
};

/// What the effects are written about.
#[derive(Default)]
pub(super) struct Subject {
    pub session: Option<String>,
    pub subscription: Option<String>,
    pub invoice: Option<String>,
    pub dispute: Option<String>,
    pub payment_intent: Option<String>,
}

/// The account forgets this Stripe customer; the next customer gets a new idempotency key.
pub fn forget_customer(conn: &mut PgConnection, account: AccountId, customer: &str) -> QueryResult<usize> {
    diesel::update(accounts::table.find(account.0).filter(accounts::stripe_customer_id.eq(customer)))
        .set((
            accounts::stripe_customer_id.eq(None::<String>),
            accounts::stripe_customer_generation.eq(accounts::stripe_customer_generation + 1),
            // R22: its saved card went with it; auto top-up cannot charge until a pack saves one.
            accounts::card_saved_at.eq(None::<DateTime<Utc>>),
            accounts::auto_topup_enabled.eq(false),
        ))
        .execute(conn)
}

/// Writes a decision's effects, in order, in the event's transaction (the account's row is
/// locked already): the one place a payment decision becomes rows.
pub(super) fn write(
    conn: &mut PgConnection,
    log: &mut TxLog,
    account: AccountId,
    decision: &Decision,
    subject: &Subject,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    // The allowance this decision granted or grew, for the invoice's record.
    let mut touched: Option<Uuid> = None;
    for effect in &decision.effects {
        match effect {
            Effect::SetCustomer(customer) => {
                diesel::update(accounts::table.find(account.0).filter(accounts::stripe_customer_id.is_null()))
                    .set(accounts::stripe_customer_id.eq(customer))
                    .execute(conn)?;
            }
            Effect::ForgetCustomer(customer) => {
                forget_customer(conn, account, customer)?;
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
                    .execute(conn)?;
            }
            Effect::SessionStatus(status) => {
                if let Some(session) = &subject.session {
                    diesel::update(checkout_sessions::table.find(session))
                        .set(checkout_sessions::status.eq(status.as_str()))
                        .execute(conn)?;
                }
            }
            Effect::GrantPack { pack, credits, expires_at, payment_intent, amount, currency } => {
                let Some(session) = &subject.session else { continue };
                let reference = format!("checkout:{session}");
                let reason = format!("top-up pack {pack}");
                let sale = PackSale {
                    account,
                    pack,
                    credits: *credits,
                    expires_at: *expires_at,
                    paid_by: PaidBy::Session(session),
                    payment_intent: payment_intent.as_deref(),
                    amount: *amount,
                    currency,
                    reference: &reference,
                    reason: &reason,
                };
                grant_pack(conn, log, &sale, now)?;
                // R22: a pack's checkout saves the card (setup_future_usage=off_session).
                diesel::update(accounts::table.find(account.0))
                    .set(accounts::card_saved_at.eq(Some(now)))
                    .execute(conn)?;
            }
            Effect::EndAllowances => end_allowances(conn, log, account, now)?,
            Effect::GrantAllowance { credits, expires_at, reason, value } => {
                let reference = subject.invoice.as_ref().map(|i| format!("invoice:{i}"));
                let (bucket, _) = grant(
                    conn,
                    log,
                    Grant {
                        account,
                        kind: BucketKind::Allowance,
                        credits: *credits,
                        expires_at: Some(*expires_at),
                        entry_type: EntryType::Grant,
                        reference: reference.as_deref(),
                        reason: Some(reason),
                        value: value.as_ref(),
                    },
                    now,
                )?;
                touched = Some(bucket.id);
            }
            Effect::GrowAllowance { bucket, credits, reason } => {
                diesel::update(buckets::table.find(bucket.0))
                    .set(buckets::granted.eq(buckets::granted + credits.get()))
                    .execute(conn)?;
                let reference = subject.invoice.as_ref().map(|i| format!("invoice:{i}"));
                post(
                    conn,
                    log,
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
                touched = Some(bucket.0);
            }
            Effect::RecordInvoice { subscription, billing_reason, credits, amount_paid } => {
                let Some(invoice) = &subject.invoice else { continue };
                diesel::insert_into(invoice_grants::table)
                    .values((
                        invoice_grants::invoice_id.eq(invoice),
                        invoice_grants::account_id.eq(account.0),
                        invoice_grants::subscription_id.eq(subscription),
                        invoice_grants::billing_reason.eq(billing_reason.as_str()),
                        invoice_grants::bucket_id.eq(touched.filter(|_| credits.is_positive())),
                        invoice_grants::credits.eq(credits.get()),
                        invoice_grants::amount_paid.eq(amount_paid),
                        invoice_grants::created_at.eq(now),
                    ))
                    .execute(conn)?;
            }
            Effect::Plan(change) => set_plan(conn, account, change)?,
            Effect::Subscription(change) => {
                if let Some(id) = &subject.subscription {
                    set_subscription(conn, id, change)?;
                }
            }
            Effect::ToFree => to_free(conn, log, account, now)?,
            Effect::Clawback { bucket, credits, reference, reason } => {
                let meta = EntryMeta::new(EntryType::Clawback, reason).reference(reference);
                post_all(conn, log, account, &[Portion { bucket_id: *bucket, credits: *credits }], &meta, now)?;
            }
            Effect::RecordRefund { purchase, refunded_amount, clawed } => {
                let greatest = |current: &str| {
                    diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!("GREATEST({current}, "))
                        .bind::<diesel::sql_types::BigInt, _>(*refunded_amount)
                        .sql(")")
                };
                match purchase {
                    Purchase::Pack { id } => {
                        diesel::update(topup_purchases::table.find((account.0, id)))
                            .set((
                                topup_purchases::refunded_amount.eq(greatest("refunded_amount")),
                                topup_purchases::clawed_back.eq(topup_purchases::clawed_back + clawed.get()),
                            ))
                            .execute(conn)?;
                    }
                    Purchase::Invoice { invoice } => {
                        diesel::update(invoice_grants::table.find(invoice))
                            .set((
                                invoice_grants::refunded_amount.eq(greatest("refunded_amount")),
                                invoice_grants::clawed_back.eq(invoice_grants::clawed_back + clawed.get()),
                            ))
                            .execute(conn)?;
                    }
                }
            }
            Effect::RecordDispute { purchase, bucket, kind, expires_at, clawed } => {
                let Some(dispute) = &subject.dispute else { continue };
                diesel::insert_into(disputes::table)
                    .values((
                        disputes::id.eq(dispute),
                        disputes::account_id.eq(account.0),
                        disputes::payment_intent_id.eq(&subject.payment_intent),
                        disputes::bucket_id.eq(Some(bucket.0)),
                        disputes::bucket_kind.eq(Some(kind.as_str())),
                        disputes::bucket_expires_at.eq(expires_at),
                        disputes::clawed_back.eq(clawed.get()),
                        disputes::status.eq(DisputeStatus::Open.as_str()),
                        disputes::created_at.eq(now),
                    ))
                    .on_conflict(disputes::id)
                    .do_nothing()
                    .execute(conn)?;
                // What a dispute took is taken from what refunds may take too.
                match purchase {
                    Purchase::Pack { id } => {
                        diesel::update(topup_purchases::table.find((account.0, id)))
                            .set(topup_purchases::clawed_back.eq(topup_purchases::clawed_back + clawed.get()))
                            .execute(conn)?;
                    }
                    Purchase::Invoice { invoice } => {
                        diesel::update(invoice_grants::table.find(invoice))
                            .set(invoice_grants::clawed_back.eq(invoice_grants::clawed_back + clawed.get()))
                            .execute(conn)?;
                    }
                }
            }
            Effect::CloseDispute(status) => {
                if let Some(dispute) = &subject.dispute {
                    diesel::update(disputes::table.find(dispute))
                        .set((disputes::status.eq(status.as_str()), disputes::closed_at.eq(Some(now))))
                        .execute(conn)?;
                }
            }
            Effect::RestoreBucket { kind, credits, expires_at, reason } => {
                let reference = subject.dispute.as_ref().map(|d| format!("dispute:{d}"));
                grant(
                    conn,
                    log,
                    Grant {
                        account,
                        kind: *kind,
                        credits: *credits,
                        expires_at: *expires_at,
                        entry_type: EntryType::Grant,
                        reference: reference.as_deref(),
                        reason: Some(reason),
                        value: None,
                    },
                    now,
                )?;
            }
            Effect::Restrict { reason } => {
                restrict(conn, account, "dispute", subject.dispute.as_deref(), reason, "stripe", now)?;
            }
            Effect::LiftDisputeRestriction => {
                if let Some(dispute) = &subject.dispute {
                    lift(conn, account, Some(dispute), "stripe", "the dispute was won", now)?;
                }
            }
            Effect::PaymentJob { kind, subject: about } => {
                enqueue(conn, NewJob::PaymentCall { account, kind: *kind, subject: about }, now)?;
            }
            Effect::Mail(mail) => {
                enqueue(conn, NewJob::Mail(mail), now)?;
                // Section 9: a payment that failed is told to the account's systems too.
                let told =
                    Payload::payment_failed(account.0, mail, subject.invoice.clone(), subject.subscription.clone());
                if let Some(payload) = told {
                    crate::events::emit(conn, account.0, &payload, now)?;
                }
            }
        }
    }
    Ok(())
}

/// R19: restrict the account (one more reason; the account is restricted while any stands).
pub fn restrict(
    conn: &mut PgConnection,
    account: AccountId,
    source: &str,
    dispute: Option<&str>,
    reason: &str,
    by: &str,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(account_restrictions::table)
        .values((
            account_restrictions::id.eq(Uuid::now_v7()),
            account_restrictions::account_id.eq(account.0),
            account_restrictions::source.eq(source),
            account_restrictions::dispute_id.eq(dispute),
            account_restrictions::reason.eq(reason),
            account_restrictions::created_by.eq(by),
            account_restrictions::created_at.eq(now),
        ))
        .execute(conn)?;
    diesel::update(accounts::table.find(account.0).filter(accounts::restricted_at.is_null()))
        .set(accounts::restricted_at.eq(Some(now)))
        .execute(conn)?;
    Ok(())
}

/// R19: lift the restriction one dispute caused (`Some`), or every one (`None`: an operator);
/// the account is free again when none stands.
pub fn lift(
    conn: &mut PgConnection,
    account: AccountId,
    dispute: Option<&str>,
    by: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    let open = account_restrictions::table
        .filter(account_restrictions::account_id.eq(account.0))
        .filter(account_restrictions::lifted_at.is_null());
    let set = (
        account_restrictions::lifted_at.eq(Some(now)),
        account_restrictions::lifted_by.eq(Some(by)),
        account_restrictions::lift_reason.eq(Some(reason)),
    );
    let lifted = match dispute {
        Some(d) => diesel::update(open.filter(account_restrictions::dispute_id.eq(d))).set(set).execute(conn)?,
        None => diesel::update(open).set(set).execute(conn)?,
    };
    let standing: i64 = account_restrictions::table
        .filter(account_restrictions::account_id.eq(account.0))
        .filter(account_restrictions::lifted_at.is_null())
        .count()
        .get_result(conn)?;
    if !still_restricted(usize::try_from(standing).unwrap_or(usize::MAX)) {
        diesel::update(accounts::table.find(account.0))
            .set(accounts::restricted_at.eq(None::<DateTime<Utc>>))
            .execute(conn)?;
    }
    Ok(lifted)
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
    past_due_since: Option<Option<DateTime<Utc>>>,
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
        past_due_since: c.past_due_since,
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
    duplicate_of: Option<Option<String>>,
}

fn set_subscription(conn: &mut PgConnection, id: &str, c: &SubscriptionChange) -> QueryResult<()> {
    if let Some(at) = c.ended_at {
        // The first end is the one kept.
        diesel::update(subscriptions::table.find(id).filter(subscriptions::ended_at.is_null()))
            .set(subscriptions::ended_at.eq(Some(at)))
            .execute(conn)?;
    }
    let columns = SubscriptionColumns {
        stripe_status: c.status.map(SubscriptionStatus::as_str),
        price_id: c.price_id.clone(),
        item_id: c.item_id.clone().map(Some),
        cancel_at_period_end: c.cancel_at_period_end,
        current_period_start: c.period.map(|(start, _)| start),
        current_period_end: c.period.map(|(_, end)| end),
        last_event_at: c.last_event_at.map(Some),
        duplicate_of: c.duplicate_of.clone().map(Some),
    };
    let changes_something = columns.stripe_status.is_some()
        || columns.price_id.is_some()
        || columns.item_id.is_some()
        || columns.cancel_at_period_end.is_some()
        || columns.current_period_start.is_some()
        || columns.last_event_at.is_some()
        || columns.duplicate_of.is_some();
    if changes_something {
        diesel::update(subscriptions::table.find(id)).set(columns).execute(conn)?;
    }
    Ok(())
}

/// R14: back on Free: allowance gone, top-ups and the lifetime remainder kept, no new grant.
pub fn to_free(conn: &mut PgConnection, log: &mut TxLog, account: AccountId, now: DateTime<Utc>) -> QueryResult<()> {
    end_allowances(conn, log, account, now)?;
    diesel::update(accounts::table.find(account.0))
        .set((
            accounts::plan_id.eq(FREE_PLAN),
            accounts::plan_status.eq(credits_domain::account::PlanStatus::Active.as_str()),
            accounts::period_start.eq(None::<DateTime<Utc>>),
            accounts::period_end.eq(None::<DateTime<Utc>>),
            accounts::pending_change.eq(None::<String>),
            accounts::plan_ends_at.eq(None::<DateTime<Utc>>),
            accounts::past_due_since.eq(None::<DateTime<Utc>>),
        ))
        .execute(conn)?;
    Ok(())
}
