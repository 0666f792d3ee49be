//! Checkout (SPEC section 5, R13, R14): what may be sold and how, and the use case that sells it
//! through the payment gateway and records it in the store.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::events::SessionMode;
use super::ports::{
    CheckoutContext, CheckoutRecord, LiveSubscription, PaymentError, PaymentGateway, PaymentStore, SessionRequest,
    SessionSold,
};
use crate::account::Account;
use crate::catalog::{Catalog, Plan, TopupPack};
use crate::idempotency::{IdempotencyKey, Recall, Replayable};
use crate::ids::AccountId;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckoutRefusal {
    #[error("{0}")]
    InvalidParameters(String),
    #[error("the Business plan needs an approved business verification")]
    BusinessVerificationRequired,
    #[error("{0}")]
    Conflict(String),
}

fn url(field: &str, value: &str) -> Result<String, CheckoutRefusal> {
    let v = value.trim();
    let ok = (v.starts_with("https://") || v.starts_with("http://"))
        && v.len() <= 2048
        && v.split("://").nth(1).is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
        && !v.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(v.to_string())
    } else {
        Err(CheckoutRefusal::InvalidParameters(format!("{field} must be an http(s) URL")))
    }
}

/// The return URLs of a Checkout Session, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnUrls {
    pub success_url: String,
    pub cancel_url: String,
}

impl ReturnUrls {
    pub fn new(success_url: &str, cancel_url: &str) -> Result<ReturnUrls, CheckoutRefusal> {
        Ok(ReturnUrls { success_url: url("success_url", success_url)?, cancel_url: url("cancel_url", cancel_url)? })
    }
}

/// What a plan checkout does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanCheckout<'c> {
    /// A new subscription through a Checkout Session.
    New { plan: &'c Plan, price_id: String },
    /// A change of the live subscription's price: an upgrade at once (prorated), a downgrade
    /// at the period's end (R14).
    Change { plan: &'c Plan, price_id: String, subscription: LiveSubscription, upgrade: bool },
}

/// SPEC section 5 and R13: which plans checkout sells, and how.
pub fn decide_plan_checkout<'c>(
    catalog: &'c Catalog,
    account: &Account,
    plan_id: &str,
    verified: bool,
    live: Option<LiveSubscription>,
) -> Result<PlanCheckout<'c>, CheckoutRefusal> {
    let plan =
        catalog.plan(plan_id).ok_or_else(|| CheckoutRefusal::InvalidParameters(format!("unknown plan {plan_id:?}")))?;
    let price_id = match (plan.sold, &plan.stripe_price_id) {
        (true, Some(p)) => p.clone(),
        _ => return Err(CheckoutRefusal::InvalidParameters(format!("the {} plan is not sold by checkout", plan.id))),
    };
    if plan.requires_verification && !verified {
        return Err(CheckoutRefusal::BusinessVerificationRequired);
    }
    match live {
        Some(sub) => {
            if sub.price_id.as_deref() == Some(price_id.as_str()) {
                return Err(CheckoutRefusal::Conflict(format!("the subscription is already on the {} plan", plan.id)));
            }
            let current = account.plan(catalog);
            Ok(PlanCheckout::Change { plan, price_id, upgrade: plan.rank > current.rank, subscription: sub })
        }
        None if account.plan == plan.id => {
            Err(CheckoutRefusal::Conflict(format!("the account is already on the {} plan", plan.id)))
        }
        None => Ok(PlanCheckout::New { plan, price_id }),
    }
}

pub fn decide_pack_checkout<'c>(catalog: &'c Catalog, pack_id: &str) -> Result<&'c TopupPack, CheckoutRefusal> {
    catalog.pack(pack_id).ok_or_else(|| CheckoutRefusal::InvalidParameters(format!("unknown top-up pack {pack_id:?}")))
}

/// What `POST /v1/checkout/*` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckoutView {
    pub checkout_url: Option<String>,
    pub session_id: Option<String>,
    /// For a plan change of a live subscription: its new state at Stripe.
    pub subscription: Option<SubscriptionChangeView>,
}

/// When a plan change takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effective {
    /// Applied when Stripe confirms it (an upgrade).
    Now,
    /// At the end of the paid period (a downgrade).
    PeriodEnd,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionChangeView {
    pub id: String,
    pub plan: String,
    pub effective: Effective,
}

/// The checkout use case: decides, calls the payment gateway, records. Generic over its ports.
pub struct CheckoutService<'a, S: ?Sized, G: ?Sized> {
    pub store: &'a S,
    pub gateway: &'a G,
    pub catalog: &'a Catalog,
}

/// What Stripe's Idempotency-Key is made from: the client's key, so a retried request makes no
/// second object at Stripe either; without one, a key of its own.
fn stripe_idempotency(account: AccountId, what: &str, idem: Option<&IdempotencyKey>) -> String {
    match idem {
        Some(k) => format!("credits-{what}-{account}-{}", k.key),
        None => format!("credits-{what}-{}", uuid::Uuid::new_v4().simple()),
    }
}

impl<S: PaymentStore + ?Sized, G: PaymentGateway + ?Sized> CheckoutService<'_, S, G> {
    /// R11 before anything reaches Stripe.
    fn recalled(
        &self,
        idem: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
    ) -> Result<Option<Replayable<CheckoutView>>, PaymentError> {
        let Some(key) = idem else { return Ok(None) };
        match self.store.recall(key, now)? {
            Recall::Replay(r) => Ok(Some(Replayable::Replay(r))),
            Recall::Reused => Err(PaymentError::IdempotencyKeyReused),
            Recall::Unused => Ok(None),
        }
    }

    /// The account's Stripe customer: created once, kept.
    fn customer(&self, ctx: &CheckoutContext) -> Result<String, PaymentError> {
        if let Some(c) = &ctx.customer {
            return Ok(c.clone());
        }
        let made = self.gateway.create_customer(ctx.account.id, &ctx.account.email, &ctx.account.name)?;
        self.store.set_customer(ctx.account.id, &made)
    }

    fn session(
        &self,
        ctx: &CheckoutContext,
        mode: SessionMode,
        item: &str,
        price_id: &str,
        urls: ReturnUrls,
        idem: Option<&IdempotencyKey>,
    ) -> Result<CheckoutRecord, PaymentError> {
        let request = SessionRequest {
            account: ctx.account.id,
            customer: self.customer(ctx)?,
            mode,
            price_id: price_id.to_string(),
            item_id: item.to_string(),
            urls,
            idempotency: stripe_idempotency(ctx.account.id, "session", idem),
        };
        let session = self.gateway.create_session(&request)?;
        Ok(CheckoutRecord {
            view: CheckoutView {
                checkout_url: session.url.clone(),
                session_id: Some(session.id.clone()),
                subscription: None,
            },
            session: Some(SessionSold { session, mode, item: item.to_string(), price_id: price_id.to_string() }),
        })
    }

    /// `POST /v1/checkout/subscription`: a new subscription, or a change of the live one (R14).
    pub fn subscription(
        &self,
        account: AccountId,
        plan: &str,
        urls: ReturnUrls,
        idem: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
    ) -> Result<Replayable<CheckoutView>, PaymentError> {
        if let Some(replay) = self.recalled(idem, now)? {
            return Ok(replay);
        }
        let ctx = self.store.checkout_context(account)?;
        let record = match decide_plan_checkout(self.catalog, &ctx.account, plan, ctx.verified, ctx.live.clone())? {
            PlanCheckout::New { plan, price_id } => {
                self.session(&ctx, SessionMode::Subscription, &plan.id, &price_id, urls, idem)?
            }
            PlanCheckout::Change { plan, price_id, subscription, upgrade } => {
                let key = stripe_idempotency(account, "change", idem);
                self.gateway.change_price(&subscription, &price_id, upgrade, &key)?;
                CheckoutRecord {
                    session: None,
                    view: CheckoutView {
                        checkout_url: None,
                        session_id: None,
                        subscription: Some(SubscriptionChangeView {
                            id: subscription.id,
                            plan: plan.id.clone(),
                            effective: if upgrade { Effective::Now } else { Effective::PeriodEnd },
                        }),
                    },
                }
            }
        };
        self.store.record_checkout(account, &record, now, idem)
    }

    /// `POST /v1/checkout/topup`: a Checkout Session for a pack.
    pub fn topup(
        &self,
        account: AccountId,
        pack: &str,
        urls: ReturnUrls,
        idem: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
    ) -> Result<Replayable<CheckoutView>, PaymentError> {
        if let Some(replay) = self.recalled(idem, now)? {
            return Ok(replay);
        }
        let pack = decide_pack_checkout(self.catalog, pack)?;
        let ctx = self.store.checkout_context(account)?;
        let record = self.session(&ctx, SessionMode::Payment, &pack.id, &pack.stripe_price_id, urls, idem)?;
        self.store.record_checkout(account, &record, now, idem)
    }
}
