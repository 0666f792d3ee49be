//! Checkout (SPEC section 5, R13, R14): what may be sold and how, and the use case that sells it
//! through the payment gateway and records it in the store.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::ports::{
    CheckoutContext, CheckoutRecord, GatewayError, InvoiceView, LiveSubscription, PaymentError, PaymentGateway,
    PaymentStore, SessionRequest, SessionSold, Sold,
};
use super::subscription::SubscriptionStatus;
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
    /// R19.
    #[error("{}", crate::runs::RESTRICTED)]
    Restricted,
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
    /// A new subscription through a Checkout Session; the account's open session for another plan
    /// is expired at Stripe first (R18).
    New { plan: &'c Plan, price_id: String, expire: Option<String> },
    /// R18: the account's open session for this plan, answered again.
    Reuse { session_id: String, url: Option<String> },
    /// A change of the live subscription's price: an upgrade when Stripe confirms its payment, a
    /// downgrade at the period's end (R14); a pending cancellation is resumed first.
    Change { plan: &'c Plan, price_id: String, subscription: LiveSubscription, upgrade: bool },
    /// R14: asking for the current plan while a cancellation is pending resumes the subscription.
    Resume { plan: &'c Plan, subscription: LiveSubscription },
}

/// SPEC section 5, R13, R14, R18, R19: which plans checkout sells, and how.
pub fn decide_plan_checkout<'c>(
    catalog: &'c Catalog,
    ctx: &CheckoutContext,
    plan_id: &str,
) -> Result<PlanCheckout<'c>, CheckoutRefusal> {
    let account = &ctx.account;
    if account.restricted {
        return Err(CheckoutRefusal::Restricted);
    }
    let plan =
        catalog.plan(plan_id).ok_or_else(|| CheckoutRefusal::InvalidParameters(format!("unknown plan {plan_id:?}")))?;
    let price_id = match (plan.sold, &plan.stripe_price_id) {
        (true, Some(p)) => p.clone(),
        _ => return Err(CheckoutRefusal::InvalidParameters(format!("the {} plan is not sold by checkout", plan.id))),
    };
    if account.plan == crate::catalog::ENTERPRISE_PLAN && account.contract.is_some() {
        return Err(CheckoutRefusal::Conflict("the account is on an Enterprise contract".into()));
    }
    if plan.requires_verification && !ctx.verified {
        return Err(CheckoutRefusal::BusinessVerificationRequired);
    }
    if let Some(sub) = ctx.live.clone() {
        if sub.status == SubscriptionStatus::Incomplete {
            return Err(CheckoutRefusal::Conflict(format!(
                "the subscription {} is waiting for its first payment; try again when it is paid",
                sub.id
            )));
        }
        if sub.price_id.as_deref() == Some(price_id.as_str()) {
            if sub.cancel_at_period_end {
                return Ok(PlanCheckout::Resume { plan, subscription: sub });
            }
            return Err(CheckoutRefusal::Conflict(format!("the subscription is already on the {} plan", plan.id)));
        }
        let current = account.plan(catalog);
        return Ok(PlanCheckout::Change { plan, price_id, upgrade: plan.rank > current.rank, subscription: sub });
    }
    if account.plan == plan.id {
        return Err(CheckoutRefusal::Conflict(format!("the account is already on the {} plan", plan.id)));
    }
    match &ctx.open_session {
        Some(open) if open.plan == plan.id => {
            Ok(PlanCheckout::Reuse { session_id: open.id.clone(), url: open.url.clone() })
        }
        Some(open) => Ok(PlanCheckout::New { plan, price_id, expire: Some(open.id.clone()) }),
        None => Ok(PlanCheckout::New { plan, price_id, expire: None }),
    }
}

pub fn decide_pack_checkout<'c>(
    catalog: &'c Catalog,
    ctx: &CheckoutContext,
    pack_id: &str,
) -> Result<&'c TopupPack, CheckoutRefusal> {
    let pack = catalog
        .pack(pack_id)
        .ok_or_else(|| CheckoutRefusal::InvalidParameters(format!("unknown top-up pack {pack_id:?}")))?;
    if ctx.account.restricted {
        return Err(CheckoutRefusal::Restricted);
    }
    Ok(pack)
}

/// What `POST /v1/checkout/*` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckoutView {
    pub checkout_url: Option<String>,
    pub session_id: Option<String>,
    /// For a plan change of a live subscription: its new state at Stripe.
    pub subscription: Option<SubscriptionChangeView>,
}

/// When a plan change takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Effective {
    /// Applied when Stripe confirms it (an upgrade).
    Now,
    /// At the end of the paid period (a downgrade).
    PeriodEnd,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// R28: `billing.automatic_tax`.
    pub automatic_tax: bool,
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
        let made = self.gateway.create_customer(ctx.account.id, &ctx.account.email, &ctx.account.name, 0)?;
        self.store.set_customer(ctx.account.id, &made)
    }

    /// The account's customer `gone` was deleted at Stripe: forget it and make the next one (a new
    /// generation, so Stripe's idempotency key does not answer with the deleted customer).
    fn replace_customer(&self, ctx: &CheckoutContext, gone: &str) -> Result<String, PaymentError> {
        self.store.forget_customer(ctx.account.id, gone)?;
        let generation = ctx.customer_generation + 1;
        let made = self.gateway.create_customer(ctx.account.id, &ctx.account.email, &ctx.account.name, generation)?;
        self.store.set_customer(ctx.account.id, &made)
    }

    fn session(
        &self,
        ctx: &CheckoutContext,
        sold: Sold,
        urls: ReturnUrls,
        idem: Option<&IdempotencyKey>,
    ) -> Result<CheckoutRecord, PaymentError> {
        let mut request = SessionRequest {
            account: ctx.account.id,
            customer: self.customer(ctx)?,
            sold: sold.clone(),
            urls,
            idempotency: stripe_idempotency(ctx.account.id, "session", idem),
            tax: super::tax::session_tax(self.automatic_tax),
        };
        let session = match self.gateway.create_session(&request) {
            // Section 5: a customer deleted at Stripe (and no customer.deleted seen yet): forget
            // it and make a new one, never "retry shortly" forever.
            Err(GatewayError::MissingCustomer(gone)) => {
                request.customer = self.replace_customer(ctx, &gone)?;
                request.idempotency = format!("{}-customer-{}", request.idempotency, ctx.customer_generation + 1);
                self.gateway.create_session(&request)?
            }
            other => other?,
        };
        Ok(CheckoutRecord {
            view: CheckoutView {
                checkout_url: session.url.clone(),
                session_id: Some(session.id.clone()),
                subscription: None,
            },
            session: Some(SessionSold { session, sold }),
            expired: None,
        })
    }

    /// `POST /v1/checkout/subscription`: a new subscription, or a change of the live one (R14, R18).
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
        let ctx = self.store.checkout_context(account, now)?;
        let change_view = |sub: &LiveSubscription, plan: &Plan, effective: Effective| CheckoutRecord {
            session: None,
            expired: None,
            view: CheckoutView {
                checkout_url: None,
                session_id: None,
                subscription: Some(SubscriptionChangeView { id: sub.id.clone(), plan: plan.id.clone(), effective }),
            },
        };
        let record = match decide_plan_checkout(self.catalog, &ctx, plan)? {
            PlanCheckout::Reuse { session_id, url } => CheckoutRecord {
                session: None,
                expired: None,
                view: CheckoutView { checkout_url: url, session_id: Some(session_id), subscription: None },
            },
            PlanCheckout::New { plan, price_id, expire } => {
                if let Some(open) = &expire {
                    self.gateway.expire_session(open)?;
                }
                let sold = Sold::plan(plan, &price_id);
                let mut record = self.session(&ctx, sold, urls, idem)?;
                record.expired = expire;
                record
            }
            PlanCheckout::Resume { plan, subscription } => {
                self.gateway.resume(&subscription, &stripe_idempotency(account, "resume", idem))?;
                change_view(&subscription, plan, Effective::Now)
            }
            PlanCheckout::Change { plan, price_id, subscription, upgrade } => {
                // Stripe takes no cancel_at_period_end beside pending_if_incomplete: two calls.
                if subscription.cancel_at_period_end {
                    self.gateway.resume(&subscription, &stripe_idempotency(account, "resume", idem))?;
                }
                let key = stripe_idempotency(account, "change", idem);
                self.gateway.change_price(&subscription, &price_id, upgrade, &key)?;
                change_view(&subscription, plan, if upgrade { Effective::Now } else { Effective::PeriodEnd })
            }
        };
        self.store.record_checkout(account, &record, now, idem)
    }

    /// `POST /v1/checkout/topup`: a Checkout Session for a pack, keeping what it sells (R18).
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
        let ctx = self.store.checkout_context(account, now)?;
        let pack = decide_pack_checkout(self.catalog, &ctx, pack)?;
        let record = self.session(&ctx, Sold::pack(pack), urls, idem)?;
        self.store.record_checkout(account, &record, now, idem)
    }

    /// `GET /v1/invoices`: the account's invoices as Stripe has them, newest first.
    pub fn invoices(&self, account: AccountId, now: DateTime<Utc>) -> Result<Vec<InvoiceView>, PaymentError> {
        let ctx = self.store.checkout_context(account, now)?;
        match &ctx.customer {
            Some(customer) => Ok(self.gateway.invoices(customer)?),
            None => Ok(Vec::new()),
        }
    }

    /// `POST /v1/stripe-portal-sessions`: Stripe's Customer Portal for the account's customer
    /// (made first if the account has none).
    pub fn portal(&self, account: AccountId, return_url: &str, now: DateTime<Utc>) -> Result<PortalView, PaymentError> {
        let return_url = url("return_url", return_url)?;
        let ctx = self.store.checkout_context(account, now)?;
        let customer = self.customer(&ctx)?;
        let url = match self.gateway.portal_session(&customer, &return_url) {
            // Section 5, as for a session: the customer is gone at Stripe; make a new one.
            Err(GatewayError::MissingCustomer(gone)) => {
                self.gateway.portal_session(&self.replace_customer(&ctx, &gone)?, &return_url)?
            }
            other => other?,
        };
        Ok(PortalView { url })
    }
}

/// What `POST /v1/stripe-portal-sessions` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PortalView {
    pub url: String,
}
