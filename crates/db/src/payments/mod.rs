//! Stripe's side of the store: what checkout needs, and applying Stripe events (SPEC section 5).
//! Each event is applied in one transaction: the account's row is locked first, the facts are
//! loaded, the domain decides (`credits_domain::payments::decide_*`), and the effects it decided
//! are written here (`events`), with the event recorded by id so a replay changes nothing.

mod events;

use chrono::{DateTime, Utc};
use credits_domain::error::StoreError;
use credits_domain::idempotency::{IdempotencyKey, Recall, Replayable};
use credits_domain::ids::AccountId;
use credits_domain::payments::{
    Applied, CheckoutContext, CheckoutRecord, CheckoutView, LiveSubscription, PaymentError, PaymentStore,
    SessionStatus, StripeEvent, SubscriptionStatus,
};
use diesel::prelude::*;

use crate::rows::{AccountRow, undecodable};
use crate::schema::{accounts, checkout_sessions, subscriptions};
use crate::{Fail, PgStore, read_tx};

pub use events::to_free;

impl PaymentStore for PgStore {
    fn checkout_context(&self, account: AccountId) -> Result<CheckoutContext, PaymentError> {
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
                .filter(
                    subscriptions::stripe_status.eq_any(
                        [SubscriptionStatus::Active, SubscriptionStatus::PastDue, SubscriptionStatus::Trialing]
                            .map(SubscriptionStatus::as_str),
                    ),
                )
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
            Ok(CheckoutContext {
                customer: row.stripe_customer_id.clone(),
                verified: row.business_verified_at.is_some(),
                account: row.to_domain()?,
                live,
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
            |conn| {
                if let Some(sold) = &record.session {
                    diesel::insert_into(checkout_sessions::table)
                        .values((
                            checkout_sessions::id.eq(&sold.session.id),
                            checkout_sessions::account_id.eq(account.0),
                            checkout_sessions::mode.eq(sold.mode.as_str()),
                            checkout_sessions::item_id.eq(&sold.item),
                            checkout_sessions::stripe_price_id.eq(&sold.price_id),
                            checkout_sessions::url.eq(&sold.session.url),
                            checkout_sessions::status.eq(SessionStatus::Open.as_str()),
                            checkout_sessions::created_at.eq(now),
                        ))
                        .on_conflict(checkout_sessions::id)
                        .do_nothing()
                        .execute(conn)?;
                }
                Ok(record.view.clone())
            },
        )
    }

    fn apply_stripe_event(&self, event: &StripeEvent, now: DateTime<Utc>) -> Result<Applied, StoreError> {
        let mut conn = self.conn()?;
        self.write_tx(&mut conn, |conn| -> Result<Applied, Fail<StoreError>> {
            Ok(events::apply(conn, &self.catalog, event, now)?)
        })
    }
}
