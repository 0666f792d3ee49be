//! Stripe's side of the store: what checkout needs, and applying Stripe events (SPEC section 5,
//! R3, R4, R14, R17). Each event is applied in one transaction, recorded by id so a replay
//! changes nothing, and each effect is also keyed by what it is about: one invoice grants at
//! most one allowance, one paid session at most one pack, one refund amount claws back once.

use chrono::{DateTime, Utc};
use credits_domain::account::{Account, PlanStatus};
use credits_domain::burn::BucketKind;
use credits_domain::catalog::{Catalog, FREE_PLAN, Plan};
use credits_domain::credits::Credits;
use credits_domain::error::StoreError;
use credits_domain::idempotency::{IdempotencyKey, Recall, Replayable};
use credits_domain::ids::{AccountId, BucketId};
use credits_domain::payments::{
    Applied, ChargeInfo, CheckoutContext, CheckoutRecord, CheckoutView, InvoiceInfo, InvoicePurpose, LiveSubscription,
    PaymentError, PaymentEvent, PlanEnd, SessionInfo, SessionMode, StripeEvent, SubscriptionInfo, clawback,
    decide_subscription_update, invoice_purpose, is_stale, is_upgrade, plan_end, plan_for_price, topup_expiry,
    upgrade_increase,
};
use credits_domain::ports::PaymentStore;
use credits_domain::views::EntryType;
use diesel::prelude::*;
use serde_json::json;
use uuid::Uuid;

use crate::ledger::{EntryMeta, Grant, Posting, end_allowances, grant, load_wallet, lock_account, post, post_all};
use crate::rows::AccountRow;
use crate::schema::{
    accounts, buckets, checkout_sessions, invoice_grants, outbox, stripe_events, subscriptions, topup_purchases,
};
use crate::{Fail, PgStore, read_tx};

type Tx = Result<String, diesel::result::Error>;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = subscriptions, check_for_backend(diesel::pg::Pg))]
struct SubscriptionRow {
    id: String,
    account_id: Uuid,
    item_id: Option<String>,
    cancel_at_period_end: bool,
    last_event_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
}

const LIVE_STATUSES: [&str; 3] = ["active", "past_due", "trialing"];

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
            let live = subscriptions::table
                .filter(subscriptions::account_id.eq(account.0))
                .filter(subscriptions::ended_at.is_null())
                .filter(subscriptions::stripe_status.eq_any(LIVE_STATUSES))
                .order(subscriptions::created_at.desc())
                .select((subscriptions::id, subscriptions::item_id, subscriptions::price_id))
                .first::<(String, Option<String>, Option<String>)>(conn)
                .optional()?
                .map(|(id, item_id, price_id)| LiveSubscription { id, item_id, price_id });
            Ok(CheckoutContext {
                customer: row.stripe_customer_id.clone(),
                verified: row.business_verified_at.is_some(),
                account: row.to_domain(),
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
                if let Some((session, mode, item, price)) = &record.session {
                    diesel::insert_into(checkout_sessions::table)
                        .values((
                            checkout_sessions::id.eq(&session.id),
                            checkout_sessions::account_id.eq(account.0),
                            checkout_sessions::mode.eq(if *mode == SessionMode::Subscription {
                                "subscription"
                            } else {
                                "payment"
                            }),
                            checkout_sessions::item_id.eq(item),
                            checkout_sessions::stripe_price_id.eq(price),
                            checkout_sessions::url.eq(&session.url),
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
        let catalog = &self.catalog;
        self.write_tx(&mut conn, |conn| -> Result<Applied, Fail<StoreError>> {
            let fresh = diesel::insert_into(stripe_events::table)
                .values((
                    stripe_events::id.eq(&event.id),
                    stripe_events::event_type.eq(&event.event_type),
                    stripe_events::created.eq(event.created),
                    stripe_events::outcome.eq("applying"),
                    stripe_events::received_at.eq(now),
                ))
                .on_conflict(stripe_events::id)
                .do_nothing()
                .execute(conn)?;
            if fresh == 0 {
                return Ok(Applied::Replay);
            }
            let apply = Apply { conn, catalog, now, created: event.created };
            let outcome = apply.event(&event.payload)?;
            diesel::update(stripe_events::table.find(&event.id))
                .set(stripe_events::outcome.eq(&outcome))
                .execute(conn)?;
            Ok(if outcome.starts_with("ignored") { Applied::Ignored(outcome) } else { Applied::Done(outcome) })
        })
    }
}

/// One event being applied, inside its transaction.
struct Apply<'a> {
    conn: &'a mut PgConnection,
    catalog: &'a Catalog,
    now: DateTime<Utc>,
    created: DateTime<Utc>,
}

impl Apply<'_> {
    fn event(mut self, payload: &PaymentEvent) -> Tx {
        match payload {
            PaymentEvent::CheckoutCompleted(s) => self.session_completed(s),
            PaymentEvent::AsyncPaymentSucceeded(s) => self.session_paid(s),
            PaymentEvent::AsyncPaymentFailed(s) => self.session_failed(s),
            PaymentEvent::InvoicePaid(i) => self.invoice_paid(i),
            PaymentEvent::InvoicePaymentFailed(i) => self.invoice_failed(i),
            PaymentEvent::SubscriptionUpdated(s) => self.subscription_updated(s),
            PaymentEvent::SubscriptionDeleted(s) => self.subscription_deleted(s),
            PaymentEvent::ChargeRefunded(c) => self.charge_refunded(c),
            PaymentEvent::Other => Ok("ignored: not a type this service acts on".into()),
        }
    }

    fn lock(&mut self, account: Uuid) -> Result<Account, diesel::result::Error> {
        lock_account(self.conn, AccountId(account))?.map(|r| r.to_domain()).ok_or(diesel::result::Error::NotFound)
    }

    // ---- checkout sessions ----------------------------------------------------------------

    /// Our record of a session: only what this service sold is granted.
    fn our_session(&mut self, id: &str) -> QueryResult<Option<(Uuid, String, String)>> {
        checkout_sessions::table
            .find(id)
            .select((checkout_sessions::account_id, checkout_sessions::mode, checkout_sessions::item_id))
            .first(self.conn)
            .optional()
    }

    fn session_completed(&mut self, s: &SessionInfo) -> Tx {
        let Some((account, mode, item)) = self.our_session(&s.id)? else {
            return Ok(format!("ignored: session {} was not made by this service", s.id));
        };
        self.lock(account)?;
        if let Some(customer) = &s.customer {
            diesel::update(accounts::table.find(account).filter(accounts::stripe_customer_id.is_null()))
                .set(accounts::stripe_customer_id.eq(customer))
                .execute(self.conn)?;
        }
        if mode == "subscription" {
            let (Some(sub), Some(customer)) = (&s.subscription, &s.customer) else {
                return Ok("ignored: a subscription session without its subscription".into());
            };
            self.link_subscription(sub, account, customer)?;
            diesel::update(checkout_sessions::table.find(&s.id))
                .set(checkout_sessions::status.eq("completed"))
                .execute(self.conn)?;
            // R14: the plan starts when the first invoice is paid, not here.
            return Ok(format!("linked subscription {sub}"));
        }
        if s.paid {
            self.grant_pack(account, &item, s)
        } else {
            diesel::update(checkout_sessions::table.find(&s.id))
                .set(checkout_sessions::status.eq("completed"))
                .execute(self.conn)?;
            Ok("awaiting an asynchronous payment".into())
        }
    }

    fn session_paid(&mut self, s: &SessionInfo) -> Tx {
        let Some((account, mode, pack_id)) = self.our_session(&s.id)? else {
            return Ok(format!("ignored: session {} was not made by this service", s.id));
        };
        if mode != "payment" {
            return Ok("ignored: not a pack".into());
        }
        self.lock(account)?;
        self.grant_pack(account, &pack_id, s)
    }

    fn session_failed(&mut self, s: &SessionInfo) -> Tx {
        let updated = diesel::update(checkout_sessions::table.find(&s.id).filter(checkout_sessions::status.ne("paid")))
            .set(checkout_sessions::status.eq("failed"))
            .execute(self.conn)?;
        Ok(if updated == 0 { "ignored: unknown or already paid session".into() } else { "payment failed".into() })
    }

    /// R4: one paid session grants its pack once, expiring `expiry_days` after payment.
    fn grant_pack(&mut self, account: Uuid, pack_id: &str, s: &SessionInfo) -> Tx {
        let already: bool =
            diesel::select(diesel::dsl::exists(topup_purchases::table.find(&s.id))).get_result(self.conn)?;
        if already {
            return Ok("pack already granted for this session".into());
        }
        let Some(pack) = self.catalog.pack(pack_id) else {
            tracing::error!(session = %s.id, pack = %pack_id, "a paid session names a pack the catalog no longer has");
            return Ok(format!("ignored: pack {pack_id} is not in the catalog"));
        };
        let reference = format!("checkout:{}", s.id);
        let reason = format!("top-up pack {}", pack.id);
        let (bucket, _) = grant(
            self.conn,
            Grant {
                account: AccountId(account),
                kind: BucketKind::Topup,
                credits: pack.credits,
                expires_at: Some(topup_expiry(pack, self.now)),
                entry_type: EntryType::Grant,
                reference: Some(&reference),
                reason: Some(&reason),
            },
            self.now,
        )?;
        diesel::insert_into(topup_purchases::table)
            .values((
                topup_purchases::session_id.eq(&s.id),
                topup_purchases::account_id.eq(account),
                topup_purchases::pack_id.eq(&pack.id),
                topup_purchases::bucket_id.eq(bucket.id),
                topup_purchases::credits.eq(pack.credits.get()),
                topup_purchases::payment_intent_id.eq(&s.payment_intent),
                topup_purchases::amount.eq(s.amount_total.unwrap_or(pack.price.amount)),
                topup_purchases::currency.eq(s.currency.clone().unwrap_or_else(|| pack.price.currency.clone())),
                topup_purchases::created_at.eq(self.now),
            ))
            .execute(self.conn)?;
        diesel::update(checkout_sessions::table.find(&s.id))
            .set(checkout_sessions::status.eq("paid"))
            .execute(self.conn)?;
        Ok(format!("granted pack {} ({} credits)", pack.id, pack.credits))
    }

    // ---- subscriptions ------------------------------------------------------------------

    fn link_subscription(&mut self, id: &str, account: Uuid, customer: &str) -> QueryResult<()> {
        diesel::insert_into(subscriptions::table)
            .values((
                subscriptions::id.eq(id),
                subscriptions::account_id.eq(account),
                subscriptions::customer_id.eq(customer),
                subscriptions::stripe_status.eq("incomplete"),
                subscriptions::created_at.eq(self.now),
            ))
            .on_conflict(subscriptions::id)
            .do_nothing()
            .execute(self.conn)?;
        Ok(())
    }

    /// The subscription's row; one not seen yet is linked through its customer (events arrive
    /// in any order: an invoice may come before the checkout's completion).
    fn subscription(&mut self, id: &str, customer: Option<&str>) -> QueryResult<Option<SubscriptionRow>> {
        let find = |conn: &mut PgConnection| {
            subscriptions::table.find(id).select(SubscriptionRow::as_select()).first(conn).optional()
        };
        if let Some(row) = find(self.conn)? {
            return Ok(Some(row));
        }
        let Some(customer) = customer else { return Ok(None) };
        let account: Option<Uuid> = accounts::table
            .filter(accounts::stripe_customer_id.eq(customer))
            .select(accounts::id)
            .first(self.conn)
            .optional()?;
        let Some(account) = account else { return Ok(None) };
        self.link_subscription(id, account, customer)?;
        find(self.conn)
    }

    fn has_paid_invoice(&mut self, subscription: &str) -> QueryResult<bool> {
        diesel::select(diesel::dsl::exists(
            invoice_grants::table.filter(invoice_grants::subscription_id.eq(subscription)),
        ))
        .get_result(self.conn)
    }

    fn invoice_paid(&mut self, inv: &InvoiceInfo) -> Tx {
        let Some(sub_id) = &inv.subscription else { return Ok("ignored: not a subscription invoice".into()) };
        let Some(sub) = self.subscription(sub_id, inv.customer.as_deref())? else {
            return Ok(format!("ignored: subscription {sub_id} belongs to no account here"));
        };
        let account = self.lock(sub.account_id)?;
        let done: bool =
            diesel::select(diesel::dsl::exists(invoice_grants::table.find(&inv.id))).get_result(self.conn)?;
        if done {
            return Ok("invoice already applied".into());
        }
        let Some(line) = inv.plan_line().cloned() else { return Ok("ignored: no priced line".into()) };
        let Some(plan) = line.price_id.as_deref().and_then(|p| plan_for_price(self.catalog, p)) else {
            return Ok(format!("ignored: price {:?} sells no plan", line.price_id));
        };
        let reason = inv.billing_reason.clone().unwrap_or_default();
        let bucket = match invoice_purpose(inv.billing_reason.as_deref()) {
            // R14 start, and R3 renewal: the period's allowance in full, the old one gone.
            InvoicePurpose::Period => {
                end_allowances(self.conn, account.id, self.now)?;
                let monthly = plan.monthly_credits.unwrap_or(Credits::ZERO);
                let bucket = if monthly.is_positive() {
                    let reference = format!("invoice:{}", inv.id);
                    let why = format!("{} allowance", plan.name);
                    let (bucket, _) = grant(
                        self.conn,
                        Grant {
                            account: account.id,
                            kind: BucketKind::Allowance,
                            credits: monthly,
                            expires_at: Some(line.period_end),
                            entry_type: EntryType::Grant,
                            reference: Some(&reference),
                            reason: Some(&why),
                        },
                        self.now,
                    )?;
                    Some(bucket.id)
                } else {
                    None
                };
                let status = if sub.cancel_at_period_end { PlanStatus::Canceling } else { PlanStatus::Active };
                diesel::update(accounts::table.find(account.id.0))
                    .set((
                        accounts::plan_id.eq(&plan.id),
                        accounts::plan_status.eq(status.as_str()),
                        accounts::period_start.eq(Some(line.period_start)),
                        accounts::period_end.eq(Some(line.period_end)),
                        accounts::pending_change.eq(if sub.cancel_at_period_end { Some("cancel") } else { None }),
                        accounts::plan_ends_at.eq(None::<DateTime<Utc>>),
                    ))
                    .execute(self.conn)?;
                diesel::update(subscriptions::table.find(&sub.id))
                    .set((
                        subscriptions::stripe_status.eq("active"),
                        subscriptions::price_id.eq(&line.price_id),
                        subscriptions::current_period_start.eq(Some(line.period_start)),
                        subscriptions::current_period_end.eq(Some(line.period_end)),
                    ))
                    .execute(self.conn)?;
                bucket
            }
            // R14 upgrade, confirmed by the proration invoice (or already by the subscription update).
            InvoicePurpose::PriceChange => {
                if is_upgrade(self.catalog, &account, plan) {
                    self.upgrade(&account, plan)?;
                }
                None
            }
            InvoicePurpose::Other => return Ok(format!("ignored: billing_reason {reason:?}")),
        };
        diesel::insert_into(invoice_grants::table)
            .values((
                invoice_grants::invoice_id.eq(&inv.id),
                invoice_grants::account_id.eq(account.id.0),
                invoice_grants::subscription_id.eq(&sub.id),
                invoice_grants::billing_reason.eq(&reason),
                invoice_grants::bucket_id.eq(bucket),
                invoice_grants::created_at.eq(self.now),
            ))
            .execute(self.conn)?;
        Ok(format!("{reason}: {} for the period", plan.id))
    }

    /// R14: the period's allowance becomes the new plan's allowance less what was charged to it.
    fn upgrade(&mut self, account: &Account, plan: &Plan) -> QueryResult<()> {
        let current: Option<(Uuid, i64, i64)> = buckets::table
            .filter(buckets::account_id.eq(account.id.0))
            .filter(buckets::kind.eq(BucketKind::Allowance.as_str()))
            .filter(buckets::expires_at.gt(self.now))
            .order(buckets::created_at.desc())
            .select((buckets::id, buckets::granted, buckets::remaining))
            .first(self.conn)
            .optional()?;
        let monthly = plan.monthly_credits.unwrap_or(Credits::ZERO);
        if let Some((bucket, granted, remaining)) = current {
            let more = upgrade_increase(monthly, Credits::new(granted), Credits::new(remaining));
            if more.is_positive() {
                diesel::update(buckets::table.find(bucket))
                    .set(buckets::granted.eq(buckets::granted + more.get()))
                    .execute(self.conn)?;
                let why = format!("upgrade to {}", plan.name);
                post(
                    self.conn,
                    Posting {
                        account: account.id,
                        bucket: BucketId(bucket),
                        entry_type: EntryType::Grant,
                        credits: more,
                        run: None,
                        reference: Some("upgrade"),
                        reason: Some(&why),
                    },
                    self.now,
                )?;
            }
        }
        diesel::update(accounts::table.find(account.id.0))
            .set((accounts::plan_id.eq(&plan.id), accounts::pending_change.eq(None::<String>)))
            .execute(self.conn)?;
        Ok(())
    }

    fn invoice_failed(&mut self, inv: &InvoiceInfo) -> Tx {
        let Some(sub_id) = &inv.subscription else { return Ok("ignored: not a subscription invoice".into()) };
        let Some(sub) = self.subscription(sub_id, inv.customer.as_deref())? else {
            return Ok(format!("ignored: subscription {sub_id} belongs to no account here"));
        };
        let account = self.lock(sub.account_id)?;
        diesel::update(subscriptions::table.find(&sub.id))
            .set(subscriptions::stripe_status.eq("past_due"))
            .execute(self.conn)?;
        // R14: past_due, no new allowance; the account is told by email (the outbox).
        diesel::update(accounts::table.find(account.id.0))
            .set(accounts::plan_status.eq(PlanStatus::PastDue.as_str()))
            .execute(self.conn)?;
        diesel::insert_into(outbox::table)
            .values((
                outbox::id.eq(Uuid::now_v7()),
                outbox::dedupe_key.eq(format!("payment_failed:{}", inv.id)),
                outbox::kind.eq("payment_failed"),
                outbox::account_id.eq(Some(account.id.0)),
                outbox::recipient.eq(&account.email),
                outbox::payload.eq(json!({"invoice": inv.id, "plan": account.plan, "name": account.name})),
                outbox::next_attempt_at.eq(self.now),
                outbox::created_at.eq(self.now),
            ))
            .on_conflict(outbox::dedupe_key)
            .do_nothing()
            .execute(self.conn)?;
        Ok("past_due; the account is mailed".into())
    }

    fn subscription_updated(&mut self, s: &SubscriptionInfo) -> Tx {
        let Some(sub) = self.subscription(&s.id, s.customer.as_deref())? else {
            return Ok(format!("ignored: subscription {} belongs to no account here", s.id));
        };
        let account = self.lock(sub.account_id)?;
        if is_stale(sub.last_event_at, self.created) {
            return Ok("ignored: older than the last event applied".into());
        }
        if sub.ended_at.is_some() {
            return Ok("ignored: the subscription has ended".into());
        }
        diesel::update(subscriptions::table.find(&sub.id))
            .set((
                subscriptions::stripe_status.eq(&s.status),
                subscriptions::price_id.eq(&s.price_id),
                subscriptions::item_id.eq(s.item_id.clone().or(sub.item_id.clone())),
                subscriptions::cancel_at_period_end.eq(s.cancel_at_period_end),
                subscriptions::current_period_start.eq(s.period_start),
                subscriptions::current_period_end.eq(s.period_end),
                subscriptions::last_event_at.eq(Some(self.created)),
            ))
            .execute(self.conn)?;
        if s.status == "canceled" {
            return self.end_subscription(&account, &sub);
        }
        // Before the first paid invoice the plan has not started (R14): nothing more to do.
        if !self.has_paid_invoice(&sub.id)? {
            return Ok("recorded; the plan starts with the first paid invoice".into());
        }
        let change = decide_subscription_update(self.catalog, &account, s);
        if let Some(plan) = change.upgrade {
            self.upgrade(&account, plan)?;
        }
        diesel::update(accounts::table.find(account.id.0))
            .set((
                accounts::plan_status.eq(change.status.as_str()),
                accounts::pending_change.eq(&change.pending_change),
            ))
            .execute(self.conn)?;
        Ok(if change.summary.is_empty() {
            format!("status {}", change.status.as_str())
        } else {
            change.summary.join("; ")
        })
    }

    fn subscription_deleted(&mut self, s: &SubscriptionInfo) -> Tx {
        let Some(sub) = self.subscription(&s.id, s.customer.as_deref())? else {
            return Ok(format!("ignored: subscription {} belongs to no account here", s.id));
        };
        let account = self.lock(sub.account_id)?;
        if sub.ended_at.is_some() {
            return Ok("the subscription had already ended".into());
        }
        diesel::update(subscriptions::table.find(&sub.id))
            .set((
                subscriptions::stripe_status.eq("canceled"),
                subscriptions::ended_at.eq(Some(self.now)),
                subscriptions::last_event_at.eq(Some(self.created)),
            ))
            .execute(self.conn)?;
        self.end_subscription(&account, &sub)
    }

    /// R14: the plan is kept to the end of the paid period, then the account is on Free.
    fn end_subscription(&mut self, account: &Account, sub: &SubscriptionRow) -> Tx {
        diesel::update(subscriptions::table.find(&sub.id).filter(subscriptions::ended_at.is_null()))
            .set(subscriptions::ended_at.eq(Some(self.now)))
            .execute(self.conn)?;
        match plan_end(self.catalog, account, self.now) {
            PlanEnd::NotBought => Ok("ended; the account was on no plan it bought".into()),
            PlanEnd::At(end) => {
                diesel::update(accounts::table.find(account.id.0))
                    .set((
                        accounts::plan_status.eq(PlanStatus::Canceling.as_str()),
                        accounts::pending_change.eq(Some("cancel")),
                        accounts::plan_ends_at.eq(Some(end)),
                    ))
                    .execute(self.conn)?;
                Ok(format!("ended; the plan lasts to {end}"))
            }
            PlanEnd::Now => {
                to_free(self.conn, account.id, self.now)?;
                Ok("ended; the account is on Free".into())
            }
        }
    }

    // ---- refunds --------------------------------------------------------------------------

    /// R17: the refunded share of the pack, at most what is left of it, once per refunded amount.
    fn charge_refunded(&mut self, c: &ChargeInfo) -> Tx {
        let Some(pi) = &c.payment_intent else { return Ok("ignored: a charge without a payment intent".into()) };
        let found: Option<(String, Uuid, Uuid, i64, i64)> = topup_purchases::table
            .filter(topup_purchases::payment_intent_id.eq(pi))
            .select((
                topup_purchases::session_id,
                topup_purchases::account_id,
                topup_purchases::bucket_id,
                topup_purchases::credits,
                topup_purchases::clawed_back,
            ))
            .first(self.conn)
            .optional()?;
        let Some((session, account, bucket, credits, clawed)) = found else {
            return Ok("ignored: the charge paid for no pack here".into());
        };
        let account = self.lock(account)?;
        let wallet = load_wallet(self.conn, account.id)?;
        let left = wallet.bucket(BucketId(bucket)).map(|b| wallet.free_in(b, self.now)).unwrap_or(Credits::ZERO);
        let take = clawback(Credits::new(credits), c.amount, c.amount_refunded, Credits::new(clawed), left);
        if take.is_positive() {
            let reference = format!("refund:{}", c.id);
            let meta = EntryMeta::new(EntryType::Clawback, "top-up refunded").reference(&reference);
            post_all(
                self.conn,
                account.id,
                &[credits_domain::burn::Portion { bucket_id: BucketId(bucket), credits: take }],
                &meta,
                self.now,
            )?;
        }
        diesel::update(topup_purchases::table.find(&session))
            .set((
                topup_purchases::refunded_amount.eq(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                    "GREATEST(refunded_amount, ",
                )
                .bind::<diesel::sql_types::BigInt, _>(c.amount_refunded)
                .sql(")")),
                topup_purchases::clawed_back.eq(topup_purchases::clawed_back + take.get()),
            ))
            .execute(self.conn)?;
        Ok(format!("clawed back {take} credits"))
    }
}

/// R14: back on Free: allowance gone, top-ups and the lifetime remainder kept, no new grant.
pub fn to_free(conn: &mut PgConnection, account: AccountId, now: DateTime<Utc>) -> QueryResult<()> {
    end_allowances(conn, account, now)?;
    diesel::update(accounts::table.find(account.0))
        .set((
            accounts::plan_id.eq(FREE_PLAN),
            accounts::plan_status.eq(PlanStatus::Active.as_str()),
            accounts::period_start.eq(None::<DateTime<Utc>>),
            accounts::period_end.eq(None::<DateTime<Utc>>),
            accounts::pending_change.eq(None::<String>),
            accounts::plan_ends_at.eq(None::<DateTime<Utc>>),
        ))
        .execute(conn)?;
    Ok(())
}
