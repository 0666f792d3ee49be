//! Stripe's side of the store: what checkout needs, and applying Stripe events (SPEC section 5).
//! Each event is applied in one transaction: the account's row is locked first, the facts are
//! loaded, the domain decides (`credits_domain::payments::decide_*`), and the effects it decided
//! are written here (`events`), with the event recorded by id so a replay changes nothing.

mod effects;
mod events;

use chrono::{DateTime, Utc};
use credits_domain::credits::Credits;
use credits_domain::error::StoreError;
use credits_domain::idempotency::{IdempotencyKey, Recall, Replayable};
use credits_domain::ids::AccountId;
use credits_domain::jobs::StripeEventStatus;
use credits_domain::payments::{
    Applied, ApplyError, CheckoutContext, CheckoutRecord, CheckoutView, DisputeStatus, DisputeView, FailedEventView,
    LiveSubscription, OpenSession, PaymentError, PaymentLink, PaymentStore, PurchaseView, Purchases, SessionMode,
    SessionStatus, StripeEvent, SubscriptionStatus,
};
use diesel::prelude::*;

use crate::rows::{AccountRow, undecodable};
use crate::schema::{
    accounts, checkout_sessions, disputes, invoice_grants, stripe_events, subscriptions, topup_purchases,
};
use crate::{Fail, PgStore, read_tx};

pub use effects::{lift, restrict, to_free};

/// How many times a transaction that failed on a deadlock or a serialization failure is tried
/// again before the answer is 500 (section 5).
const RETRIES: usize = 3;

fn retryable(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
        // 40P01 deadlock_detected has no kind of its own.
        Error::DatabaseError(_, info) => info.message().contains("deadlock detected"),
        _ => false,
    }
}

/// One try at applying an event.
enum Attempt {
    Failed(ApplyError),
    /// A deadlock or a serialization failure: try again.
    Again,
}

impl From<StoreError> for Attempt {
    fn from(e: StoreError) -> Attempt {
        Attempt::Failed(ApplyError::Store(e))
    }
}

impl PaymentStore for PgStore {
    fn checkout_context(&self, account: AccountId, now: DateTime<Utc>) -> Result<CheckoutContext, PaymentError> {
        let mut conn = self.conn()?;
        read_tx(&mut conn, |conn| {
            let row = accounts::table
                .find(account.0)
                .select(AccountRow::as_select())
                .first(conn)
                .optional()?
                .ok_or(Fail::Rule(PaymentError::NotFound))?;
            type Row = (String, String, Option<String>, Option<String>, bool);
            let live: Option<Row> = subscriptions::table
                .filter(subscriptions::account_id.eq(account.0))
                .filter(subscriptions::ended_at.is_null())
                .filter(subscriptions::duplicate_of.is_null())
                .filter(subscriptions::stripe_status.eq_any(SubscriptionStatus::live().map(SubscriptionStatus::as_str)))
                .order(subscriptions::created_at.desc())
                .select((
                    subscriptions::id,
                    subscriptions::stripe_status,
                    subscriptions::item_id,
                    subscriptions::price_id,
                    subscriptions::cancel_at_period_end,
                ))
                .first(conn)
                .optional()?;
            let live = live
                .map(|(id, status, item_id, price_id, cancel_at_period_end)| {
                    let status = SubscriptionStatus::parse(&status)
                        .ok_or_else(|| undecodable("subscription status", &status))?;
                    Ok::<_, diesel::result::Error>(LiveSubscription {
                        id,
                        status,
                        item_id,
                        price_id,
                        cancel_at_period_end,
                    })
                })
                .transpose()?;
            let open_session = checkout_sessions::table
                .filter(checkout_sessions::account_id.eq(account.0))
                .filter(checkout_sessions::mode.eq(SessionMode::Subscription.as_str()))
                .filter(checkout_sessions::status.eq(SessionStatus::Open.as_str()))
                .order(checkout_sessions::created_at.desc())
                .select((checkout_sessions::id, checkout_sessions::url, checkout_sessions::item_id))
                .first::<(String, Option<String>, String)>(conn)
                .optional()?
                .map(|(id, url, plan)| OpenSession { id, url, plan });
            Ok(CheckoutContext {
                customer: row.stripe_customer_id.clone(),
                customer_generation: u32::try_from(row.stripe_customer_generation).unwrap_or(0),
                verified: row.business_verified_at.is_some(),
                account: row.to_domain()?.as_of(now),
                live,
                open_session,
            })
        })
    }

    fn set_customer(&self, account: AccountId, customer: &str) -> Result<String, PaymentError> {
        let mut conn = self.conn()?;
        let kept: Option<Option<String>> =
            diesel::update(accounts::table.find(account.0))
                .set(
                    accounts::stripe_customer_id.eq(diesel::dsl::sql::<
                        diesel::sql_types::Nullable<diesel::sql_types::Text>,
                    >("COALESCE(stripe_customer_id, ")
                    .bind::<diesel::sql_types::Text, _>(customer)
                    .sql(")")),
                )
                .returning(accounts::stripe_customer_id)
                .get_result(&mut conn)
                .optional()
                .map_err(crate::store_error)?;
        kept.flatten().ok_or(PaymentError::NotFound)
    }

    fn forget_customer(&self, account: AccountId, customer: &str) -> Result<(), PaymentError> {
        let mut conn = self.conn()?;
        effects::forget_customer(&mut conn, account, customer).map_err(crate::store_error)?;
        Ok(())
    }

    fn recall(&self, key: &IdempotencyKey, now: DateTime<Utc>) -> Result<Recall, StoreError> {
        let mut conn = self.conn()?;
        crate::idempotency::lookup(&mut conn, key, now).map_err(crate::store_error)
    }

    fn record_checkout(
        &self,
        account: AccountId,
        record: &CheckoutRecord,
        now: DateTime<Utc>,
        idem: Option<&IdempotencyKey>,
    ) -> Result<Replayable<CheckoutView>, PaymentError> {
        self.once_tx(
            idem,
            now,
            || PaymentError::IdempotencyKeyReused,
            |conn, _| {
                if let Some(expired) = &record.expired {
                    diesel::update(checkout_sessions::table.find(expired))
                        .set(checkout_sessions::status.eq(SessionStatus::Expired.as_str()))
                        .execute(conn)?;
                }
                if let Some(made) = &record.session {
                    let sold = &made.sold;
                    diesel::insert_into(checkout_sessions::table)
                        .values((
                            checkout_sessions::id.eq(&made.session.id),
                            checkout_sessions::account_id.eq(account.0),
                            checkout_sessions::mode.eq(sold.mode.as_str()),
                            checkout_sessions::item_id.eq(&sold.item),
                            checkout_sessions::stripe_price_id.eq(&sold.price_id),
                            checkout_sessions::url.eq(&made.session.url),
                            checkout_sessions::status.eq(SessionStatus::Open.as_str()),
                            checkout_sessions::created_at.eq(now),
                            checkout_sessions::credits.eq(Some(sold.credits.get())),
                            checkout_sessions::expiry_days.eq(sold.expiry_days.map(|d| d as i32)),
                            checkout_sessions::amount.eq(Some(sold.amount)),
                            checkout_sessions::currency.eq(Some(&sold.currency)),
                        ))
                        .on_conflict(checkout_sessions::id)
                        .do_nothing()
                        .execute(conn)?;
                }
                Ok(record.view.clone())
            },
        )
    }

    fn apply_stripe_event(&self, event: &StripeEvent, now: DateTime<Utc>) -> Result<Applied, ApplyError> {
        let mut conn = self.conn()?;
        for attempt in 1..=RETRIES {
            let result = self.write_tx(&mut conn, now, |conn, log| -> Result<Applied, Fail<Attempt>> {
                match events::apply(conn, log, &self.catalog, &self.notify, event, now) {
                    Ok(Ok(applied)) => Ok(applied),
                    // Nothing of it is written: the transaction rolls back.
                    Ok(Err(why)) => Err(Fail::Rule(Attempt::Failed(ApplyError::Unapplicable(why)))),
                    Err(db) if retryable(&db) && attempt < RETRIES => {
                        tracing::warn!(event = %event.id, cause = %db, attempt, "Stripe event tried again");
                        Err(Fail::Rule(Attempt::Again))
                    }
                    Err(db) => Err(Fail::Db(db)),
                }
            });
            match result {
                Ok(applied) => return Ok(applied),
                Err(Attempt::Again) => continue,
                Err(Attempt::Failed(ApplyError::Unapplicable(why))) => {
                    events::record_failed(&mut conn, event, &why.to_string(), now).map_err(crate::store_error)?;
                    return Err(ApplyError::Unapplicable(why));
                }
                Err(Attempt::Failed(e)) => return Err(e),
            }
        }
        Err(ApplyError::Store(StoreError::Internal("the Stripe event could not be applied".into())))
    }

    fn checkout_session(
        &self,
        id: &str,
    ) -> Result<Option<(AccountId, credits_domain::payments::SessionRecord, Option<String>)>, StoreError> {
        let mut conn = self.conn()?;
        events::session_record(&mut conn, id).map_err(crate::store_error)
    }

    fn subscription_account(&self, subscription: &str) -> Result<Option<AccountId>, StoreError> {
        let mut conn = self.conn()?;
        let found: Option<uuid::Uuid> = subscriptions::table
            .find(subscription)
            .select(subscriptions::account_id)
            .first(&mut conn)
            .optional()
            .map_err(crate::store_error)?;
        Ok(found.map(AccountId))
    }

    fn purchases(&self, account: AccountId) -> Result<Purchases, StoreError> {
        let mut conn = self.conn()?;
        read_tx(&mut conn, |conn| {
            type Pack = (String, Option<uuid::Uuid>, Option<String>, i64, i64, i64, DateTime<Utc>);
            let packs: Vec<Pack> = topup_purchases::table
                .filter(topup_purchases::account_id.eq(account.0))
                .select((
                    topup_purchases::pack_id,
                    topup_purchases::auto_topup_id,
                    topup_purchases::payment_intent_id,
                    topup_purchases::credits,
                    topup_purchases::amount,
                    topup_purchases::refunded_amount,
                    topup_purchases::created_at,
                ))
                .load(conn)?;
            type Invoice = (String, String, i64, i64, i64, DateTime<Utc>);
            let invoices: Vec<Invoice> = invoice_grants::table
                .filter(invoice_grants::account_id.eq(account.0))
                .filter(invoice_grants::amount_paid.gt(0))
                .select((
                    invoice_grants::invoice_id,
                    invoice_grants::billing_reason,
                    invoice_grants::credits,
                    invoice_grants::amount_paid,
                    invoice_grants::refunded_amount,
                    invoice_grants::created_at,
                ))
                .load(conn)?;
            let mut payments: Vec<PurchaseView> = packs
                .into_iter()
                // A pack paid with no PaymentIntent (a free promotion) has nothing to refund.
                .filter_map(|(pack, auto_topup, intent, credits, amount, refunded_amount, created_at)| {
                    Some(PurchaseView {
                        payment: PaymentLink { payment_intent: Some(intent?), invoice: None },
                        // R22: an auto top-up's pack is listed, refunded and disputed like a checkout's.
                        what: if auto_topup.is_some() { format!("{pack} (auto top-up)") } else { pack },
                        credits: Credits::new(credits),
                        amount,
                        refunded_amount,
                        created_at,
                    })
                })
                .chain(invoices.into_iter().map(|(invoice, reason, credits, amount, refunded_amount, created_at)| {
                    PurchaseView {
                        payment: PaymentLink { payment_intent: None, invoice: Some(invoice) },
                        what: reason,
                        credits: Credits::new(credits),
                        amount,
                        refunded_amount,
                        created_at,
                    }
                }))
                .collect();
            payments.sort_by_key(|p| std::cmp::Reverse(p.created_at));
            let found: Vec<(String, Option<String>, String)> = disputes::table
                .filter(disputes::account_id.eq(account.0))
                .order(disputes::created_at.desc())
                .select((disputes::id, disputes::payment_intent_id, disputes::status))
                .load(conn)?;
            let disputes = found
                .into_iter()
                .map(|(id, payment_intent, status)| {
                    let status = DisputeStatus::parse(&status).ok_or_else(|| undecodable("dispute status", &status))?;
                    Ok(DisputeView { id, payment_intent, status })
                })
                .collect::<QueryResult<Vec<_>>>()?;
            Ok(Purchases { payments, disputes })
        })
    }

    fn failed_stripe_events(&self, limit: i64) -> Result<Vec<FailedEventView>, StoreError> {
        let mut conn = self.conn()?;
        type Row = (String, String, DateTime<Utc>, Option<String>, i32, DateTime<Utc>);
        let rows: Vec<Row> = stripe_events::table
            .filter(stripe_events::status.eq(StripeEventStatus::Failed.as_str()))
            .order(stripe_events::received_at.asc())
            .limit(limit)
            .select((
                stripe_events::id,
                stripe_events::event_type,
                stripe_events::created,
                stripe_events::error,
                stripe_events::attempts,
                stripe_events::received_at,
            ))
            .load(&mut conn)
            .map_err(crate::store_error)?;
        Ok(rows
            .into_iter()
            .map(|(id, event_type, created, error, attempts, received_at)| FailedEventView {
                id,
                event_type,
                created,
                error,
                attempts,
                received_at,
            })
            .collect())
    }

    fn stripe_event_payload(&self, id: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn()?;
        let found: Option<Option<String>> = stripe_events::table
            .find(id)
            .filter(stripe_events::status.eq(StripeEventStatus::Failed.as_str()))
            .select(stripe_events::payload)
            .first(&mut conn)
            .optional()
            .map_err(crate::store_error)?;
        Ok(found.flatten())
    }
}
