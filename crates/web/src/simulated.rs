//! SPEC section 5, "Simulated payments": with `payments.provider = "simulated"`, checkout and
//! portal links open these pages, whose buttons produce the events Stripe would send, applied by
//! the same use case as Stripe's deliveries (`WebhookService`). Off (404) with the Stripe provider.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Months, Utc};
use credits_domain::ids::AccountId;
use credits_domain::pages::PageSession;
use credits_domain::payments::{
    BillingReason, ChargeInfo, DisputeInfo, DisputeStatus, InvoiceInfo, InvoiceLine, LiveSubscription, PaymentEvent,
    SessionInfo, SessionMode, SessionStatus, SimulatedCall, StripeEvent, SubscriptionInfo, SubscriptionStatus,
    WebhookService, plan_for_price,
};
use maud::html;
use serde::Deserialize;

use crate::layout::{layout, message_page, page};
use crate::session::same_token;
use credits_api::ApiError;
use credits_api::edge::blocking;
use credits_api::state::AppState;

fn sim_id(prefix: &str) -> String {
    format!("{prefix}_sim_{}", uuid::Uuid::now_v7().simple())
}

fn enabled(state: &AppState) -> Result<(), ApiError> {
    if state.pages.simulated { Ok(()) } else { Err(ApiError::not_found("payments are not simulated here")) }
}

fn billing(state: &AppState, notice: &str) -> HttpResponse {
    let to = format!("{}/billing?notice={notice}", state.pages.public_url.trim_end_matches('/'));
    HttpResponse::SeeOther().insert_header((header::LOCATION, to)).finish()
}

/// One event, as Stripe would send it now, applied as Stripe's are.
fn event(event_type: &str, payload: PaymentEvent, now: DateTime<Utc>) -> StripeEvent {
    let id = sim_id("evt");
    let raw = serde_json::json!({"id": id, "type": event_type, "simulated": true}).to_string();
    StripeEvent { id, event_type: event_type.to_string(), created: now, payload, raw }
}

async fn apply(
    state: &AppState,
    events: impl FnOnce(DateTime<Utc>) -> Vec<StripeEvent> + Send + 'static,
) -> Result<(), ApiError> {
    let state = state.clone();
    blocking(move || {
        let now = state.clock.now()?;
        apply_now(&state, events(now), now)
    })
    .await
}

fn apply_now(state: &AppState, events: Vec<StripeEvent>, now: DateTime<Utc>) -> Result<(), ApiError> {
    let service = WebhookService { store: &*state.store, gateway: &*state.payments };
    for e in events {
        let (id, kind) = (e.id.clone(), e.event_type.clone());
        let applied = service.apply(e, now).map_err(|why| {
            tracing::error!(event = %id, %kind, %why, "a simulated event could not be applied");
            ApiError::internal()
        })?;
        tracing::info!(event = %id, %kind, outcome = %applied, "simulated Stripe event");
    }
    Ok(())
}

/// The events Stripe sends after the calls the simulated gateway took (`SimulatedCall`), applied
/// as Stripe's are, in the calls' order; run on a thread of its own, so never inside the
/// caller's transaction. Each event is made a microsecond after the one before at least, as
/// Stripe's are ordered: two calls read within one microsecond of the clock (a resume, then the
/// price change it precedes) must not make the second look stale.
pub fn follow(state: &AppState, calls: std::sync::mpsc::Receiver<SimulatedCall>) {
    let mut last: Option<DateTime<Utc>> = None;
    for call in calls {
        let followed = (|| -> Result<(), ApiError> {
            let mut now = state.clock.now()?;
            if let Some(before) = last
                && now <= before
            {
                now = before + chrono::Duration::microseconds(1);
            }
            last = Some(now);
            let events = follow_up(state, &call, now)?;
            apply_now(state, events, now)
        })();
        if let Err(why) = followed {
            tracing::error!(?call, %why, "a simulated Stripe call's events could not be applied");
        }
    }
}

/// What Stripe sends after `call`, at `now`.
fn follow_up(state: &AppState, call: &SimulatedCall, now: DateTime<Utc>) -> Result<Vec<StripeEvent>, ApiError> {
    let sub = match call {
        SimulatedCall::ChangePrice { subscription, .. } | SimulatedCall::Resume { subscription } => subscription,
    };
    let account =
        state.store.subscription_account(&sub.id)?.ok_or_else(|| ApiError::not_found("no such subscription"))?;
    let ctx = state.store.checkout_context(account, now)?;
    let period = ctx.account.period;
    let updated = |price_id: Option<String>| {
        let info = SubscriptionInfo { price_id, ..subscription_info(sub.clone(), ctx.customer.clone(), period, false) };
        event("customer.subscription.updated", PaymentEvent::SubscriptionUpdated(info), now)
    };
    let SimulatedCall::ChangePrice { price_id, upgrade, .. } = call else {
        return Ok(vec![updated(sub.price_id.clone())]);
    };
    let mut events = vec![updated(Some(price_id.clone()))];
    if *upgrade {
        // R14: the proration invoice, paid at once: the old price's unused share back, the new
        // price's share charged.
        let share = |price: Option<&str>| -> i64 {
            let amount = monthly_price(&state.catalog, price);
            match period {
                Some(p) if p.end > p.start => {
                    let left = (p.end - now).num_seconds().clamp(0, (p.end - p.start).num_seconds());
                    (i128::from(amount) * i128::from(left) / i128::from((p.end - p.start).num_seconds())) as i64
                }
                _ => amount,
            }
        };
        let (start, end) = period.map_or((now, now), |p| (now, p.end));
        let (old, new) = (share(sub.price_id.as_deref()), share(Some(price_id)));
        let line = |price: &str, amount: i64| InvoiceLine {
            price_id: Some(price.to_string()),
            amount,
            period_start: start,
            period_end: end,
            proration: true,
        };
        let mut lines = vec![line(price_id, new)];
        if let Some(before) = &sub.price_id {
            lines.insert(0, line(before, -old));
        }
        events.push(event(
            "invoice.paid",
            PaymentEvent::InvoicePaid(InvoiceInfo {
                id: sim_id("in"),
                customer: ctx.customer.clone(),
                subscription: Some(sub.id.clone()),
                billing_reason: BillingReason::Update,
                hosted_invoice_url: None,
                amount_paid: (new - old).max(0),
                lines,
            }),
            now,
        ));
    }
    Ok(events)
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Section 7: the simulated pages act only within the billing-page session of the account they
/// belong to (401 otherwise), and their forms carry that session's CSRF token.
async fn session_for(
    req: &HttpRequest,
    state: &AppState,
    account: AccountId,
) -> Result<Result<PageSession, HttpResponse>, ApiError> {
    Ok(match crate::session::session_of(req, state).await? {
        Ok(session) if session.account == account => Ok(session),
        Ok(_) => Err(message_page(
            StatusCode::UNAUTHORIZED,
            "Not your payment",
            "This payment page belongs to another account. Open your billing page from the app.",
        )),
        Err(answer) => Err(answer),
    })
}

/// As `session_for`, for a form: its CSRF token must be the session's.
async fn form_session(
    req: &HttpRequest,
    state: &AppState,
    account: AccountId,
    csrf: &str,
) -> Result<Result<PageSession, HttpResponse>, ApiError> {
    Ok(match session_for(req, state, account).await? {
        Ok(session) if same_token(&session.csrf, csrf) => Ok(session),
        Ok(_) => Err(expired_form()),
        Err(answer) => Err(answer),
    })
}

fn expired_form() -> HttpResponse {
    message_page(StatusCode::FORBIDDEN, "The form has expired", "Nothing was charged. Open the payment page again.")
}

/// `GET /simulated/checkout/{id}`: what the session sells, with Pay and Decline.
pub async fn checkout(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    enabled(&state)?;
    let id = path.into_inner();
    let (store, lookup) = (state.store.clone(), id.clone());
    let found = blocking(move || Ok(store.checkout_session(&lookup)?)).await?;
    let Some((account, record, _)) = found else { return Err(ApiError::not_found("no such checkout session")) };
    let session = match session_for(&req, &state, account).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let what = match record.mode {
        SessionMode::Payment => state
            .catalog
            .pack(&record.item)
            .map(|p| (format!("{} — {} credits", p.name, p.credits), p.price.amount, p.price.currency.clone())),
        SessionMode::Subscription => state.catalog.plan(&record.item).and_then(|p| {
            p.price.as_ref().map(|pr| (format!("{} plan, monthly", p.name), pr.amount, pr.currency.clone()))
        }),
    };
    let Some((label, amount, currency)) = what else { return Err(ApiError::not_found("no such item in the catalog")) };
    let token = session.csrf;
    let body = layout(
        "Simulated checkout",
        html! {
            main class="narrow" {
                h1 { "Simulated checkout" }
                p class="notice" { "Payments are simulated on this instance: nothing is charged." }
                dl class="facts" {
                    dt { "You buy" } dd id="item" { (label) }
                    dt { "Price" } dd { (format!("{}.{:02} {}", amount / 100, amount % 100, currency.to_uppercase())) }
                }
                div class="choices" {
                    form method="post" action=(format!("/simulated/checkout/{id}/pay")) {
                        input type="hidden" name="csrf" value=(token);
                        button type="submit" { "Pay" }
                    }
                    form method="post" action=(format!("/simulated/checkout/{id}/decline")) {
                        input type="hidden" name="csrf" value=(token);
                        button type="submit" class="secondary" { "Decline" }
                    }
                }
            }
        },
    );
    Ok(page(StatusCode::OK, body))
}

/// `POST /simulated/checkout/{id}/pay`: what Stripe sends for a paid session — a pack's
/// `checkout.session.completed`; a subscription's completed session, its subscription and its
/// first paid invoice.
pub async fn pay(
    req: HttpRequest,
    path: web::Path<String>,
    form: credits_api::edge::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    enabled(&state)?;
    let id = path.into_inner();
    let (store, lookup) = (state.store.clone(), id.clone());
    let found = blocking(move || Ok(store.checkout_session(&lookup)?)).await?;
    let Some((account, record, customer)) = found else { return Err(ApiError::not_found("no such checkout session")) };
    if let Err(answer) = form_session(&req, &state, account, &form.csrf).await? {
        return Ok(answer);
    }
    if record.status != SessionStatus::Open {
        // Stripe's page of a completed or expired session takes no payment: no second plan or
        // pack is ever paid for one session.
        return Ok(message_page(
            StatusCode::CONFLICT,
            "This checkout is over",
            "It was paid already, or it expired. Nothing was charged.",
        ));
    }
    let customer = customer.unwrap_or_else(|| format!("cus_sim_{}_0", account.0.simple()));
    let catalog = state.catalog.clone();
    let mode = record.mode;
    apply(&state, move |now| {
        let session = |subscription: Option<String>, amount: Option<i64>, currency: Option<String>| SessionInfo {
            id: id.clone(),
            mode: Some(mode),
            paid: true,
            customer: Some(customer.clone()),
            subscription,
            payment_intent: (mode == SessionMode::Payment).then(|| sim_id("pi")),
            amount_total: amount,
            // The simulated provider taxes nothing yet (R28's test rate is the next step).
            amount_subtotal: amount,
            currency,
        };
        match mode {
            SessionMode::Payment => {
                let (amount, currency) = catalog
                    .pack(&record.item)
                    .map(|p| (Some(p.price.amount), Some(p.price.currency.clone())))
                    .unwrap_or((None, None));
                vec![event(
                    "checkout.session.completed",
                    PaymentEvent::CheckoutCompleted(session(None, amount, currency)),
                    now,
                )]
            }
            SessionMode::Subscription => {
                let Some(plan) = catalog.plan(&record.item) else { return Vec::new() };
                let (price_id, amount, currency) = (
                    plan.stripe_price_id.clone(),
                    plan.price.as_ref().map_or(0, |p| p.amount),
                    plan.price.as_ref().map(|p| p.currency.clone()),
                );
                let sub = sim_id("sub");
                let end = now.checked_add_months(Months::new(1)).unwrap_or(now);
                vec![
                    event(
                        "checkout.session.completed",
                        PaymentEvent::CheckoutCompleted(session(Some(sub.clone()), Some(amount), currency)),
                        now,
                    ),
                    event(
                        "customer.subscription.created",
                        PaymentEvent::SubscriptionUpdated(SubscriptionInfo {
                            id: sub.clone(),
                            customer: Some(customer.clone()),
                            status: SubscriptionStatus::Active,
                            price_id: price_id.clone(),
                            item_id: Some(sim_id("si")),
                            cancel_at_period_end: false,
                            period_start: Some(now),
                            period_end: Some(end),
                            pending_update: false,
                        }),
                        now,
                    ),
                    event(
                        "invoice.paid",
                        PaymentEvent::InvoicePaid(InvoiceInfo {
                            id: sim_id("in"),
                            customer: Some(customer.clone()),
                            subscription: Some(sub),
                            billing_reason: BillingReason::Create,
                            hosted_invoice_url: None,
                            amount_paid: amount,
                            lines: vec![InvoiceLine {
                                price_id,
                                amount,
                                period_start: now,
                                period_end: end,
                                proration: false,
                            }],
                        }),
                        now,
                    ),
                ]
            }
        }
    })
    .await?;
    Ok(billing(&state, if mode == SessionMode::Payment { "paid" } else { "plan" }))
}

/// `POST /simulated/checkout/{id}/decline`: the card is declined; the session stays unpaid.
pub async fn decline(
    req: HttpRequest,
    path: web::Path<String>,
    form: credits_api::edge::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    enabled(&state)?;
    let id = path.into_inner();
    let store = state.store.clone();
    let found = blocking(move || Ok(store.checkout_session(&id)?)).await?;
    let Some((account, ..)) = found else { return Err(ApiError::not_found("no such checkout session")) };
    if let Err(answer) = form_session(&req, &state, account, &form.csrf).await? {
        return Ok(answer);
    }
    Ok(billing(&state, "checkout-cancelled"))
}

/// The account a simulated customer id names (`cus_sim_<account>_<generation>`).
fn account_of(customer: &str) -> Option<AccountId> {
    let simple = customer.strip_prefix("cus_sim_")?.split('_').next()?;
    uuid::Uuid::parse_str(simple).ok().map(AccountId)
}

/// `GET /simulated/portal/{customer}`: Stripe's portal, and what Stripe's dashboard and clock
/// would do to the account's payments: the plan cancelled at the period's end or resumed, the
/// period renewed (or ended) now, a payment refunded or disputed, a dispute won or lost.
pub async fn portal(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    enabled(&state)?;
    let customer = path.into_inner();
    let account = account_of(&customer).ok_or_else(|| ApiError::not_found("no such customer"))?;
    let session = match session_for(&req, &state, account).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let live = state.checkout(move |service, now| Ok(service.store.checkout_context(account, now)?.live)).await?;
    let store = state.store.clone();
    let bought = blocking(move || Ok(store.purchases(account)?)).await?;
    let token = session.csrf;
    let action = |what: &str| format!("/simulated/portal/{customer}/{what}");
    let money = |amount: i64| format!("{}.{:02}", amount / 100, amount % 100);
    let body = layout(
        "Simulated billing portal",
        html! {
            main class="narrow" {
                h1 { "Simulated billing portal" }
                p class="notice" { "Payments are simulated on this instance: nothing is charged." }
                h2 { "Subscription" }
                @match &live {
                    None => p { "No subscription." },
                    Some(sub) => {
                        p { "Subscription " code { (sub.id) } (if sub.cancel_at_period_end { ": ends at the period's end." } else { ": renews every month." }) }
                        div class="choices" {
                            form method="post" action=(action(if sub.cancel_at_period_end { "resume" } else { "cancel" })) {
                                input type="hidden" name="csrf" value=(token);
                                button type="submit" { (if sub.cancel_at_period_end { "Resume the subscription" } else { "Cancel at the period's end" }) }
                            }
                            form method="post" action=(action(if sub.cancel_at_period_end { "end" } else { "renew" })) {
                                input type="hidden" name="csrf" value=(token);
                                button type="submit" class="secondary" { (if sub.cancel_at_period_end { "End the period now" } else { "Renew now" }) }
                            }
                        }
                    }
                }
                h2 { "Payments" }
                @if bought.payments.is_empty() {
                    p { "No payments yet." }
                } @else {
                    table id="payments" {
                        thead { tr { th scope="col" { "Paid for" } th scope="col" { "Credits" } th scope="col" { "Amount" } th scope="col" { "Refunded" } th scope="col" { span class="visually-hidden" { "Actions" } } } }
                        tbody {
                            @for paid in &bought.payments {
                                @let reference = paid.payment.payment_intent.clone().or_else(|| paid.payment.invoice.clone()).unwrap_or_default();
                                @let disputed = paid.payment.payment_intent.is_some() && bought.disputes.iter().any(|d| d.payment_intent == paid.payment.payment_intent);
                                tr {
                                    td { (paid.what) }
                                    td class="num" { (paid.credits) }
                                    td class="num" { (money(paid.amount)) }
                                    td class="num" { (money(paid.refunded_amount)) }
                                    td {
                                        @if paid.refunded_amount < paid.amount && !disputed {
                                            div class="choices" {
                                                form method="post" action=(action("refund")) {
                                                    input type="hidden" name="csrf" value=(token);
                                                    input type="hidden" name="payment" value=(reference);
                                                    button type="submit" class="secondary" aria-label=(format!("Refund {reference}")) { "Refund" }
                                                }
                                                form method="post" action=(action("dispute")) {
                                                    input type="hidden" name="csrf" value=(token);
                                                    input type="hidden" name="payment" value=(reference);
                                                    button type="submit" class="secondary" aria-label=(format!("Dispute {reference}")) { "Dispute" }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                @if !bought.disputes.is_empty() {
                    h2 { "Disputes" }
                    ul id="disputes" {
                        @for d in &bought.disputes {
                            li {
                                code { (d.id) } ": " (d.status.as_str())
                                @if d.status == DisputeStatus::Open {
                                    div class="choices" {
                                        @for (end, label) in [("won", "The dispute is won"), ("lost", "The dispute is lost")] {
                                            form method="post" action=(action(end)) {
                                                input type="hidden" name="csrf" value=(token);
                                                input type="hidden" name="dispute" value=(d.id);
                                                button type="submit" class="secondary" { (label) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                p { a href="/billing" { "Back to billing" } }
            }
        },
    );
    Ok(page(StatusCode::OK, body))
}

/// The events a portal action makes, at the time they are applied.
type Events = Box<dyn FnOnce(DateTime<Utc>) -> Vec<StripeEvent> + Send>;

#[derive(Deserialize)]
pub struct PortalForm {
    #[serde(default)]
    csrf: String,
    /// A payment's PaymentIntent or invoice (refund, dispute).
    #[serde(default)]
    payment: String,
    /// A dispute's id (won, lost).
    #[serde(default)]
    dispute: String,
}

/// `POST /simulated/portal/{customer}/{action}`: the events Stripe sends for it —
/// `customer.subscription.updated` (`cancel`, `resume`), a renewal's `invoice.paid` (`renew`),
/// `customer.subscription.deleted` (`end`), `charge.refunded` (`refund`),
/// `charge.dispute.created` (`dispute`), `charge.dispute.closed` (`won`, `lost`).
pub async fn portal_action(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    form: credits_api::edge::Form<PortalForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    enabled(&state)?;
    let form = form.into_inner();
    let (customer, action) = path.into_inner();
    let account = account_of(&customer).ok_or_else(|| ApiError::not_found("no such customer"))?;
    if let Err(answer) = form_session(&req, &state, account, &form.csrf).await? {
        return Ok(answer);
    }
    let ctx = state.checkout(move |service, now| Ok(service.store.checkout_context(account, now)?)).await?;
    let subscription = |ctx: credits_domain::payments::CheckoutContext| {
        let period = ctx.account.period;
        ctx.live.map(|sub| (sub, period)).ok_or_else(|| ApiError::not_found("no live subscription"))
    };
    let catalog = state.catalog.clone();
    let (events, notice): (Events, &str) = match action.as_str() {
        "cancel" | "resume" => {
            let (sub, period) = subscription(ctx)?;
            let cancel = action == "cancel";
            let info = subscription_info(sub, Some(customer.clone()), period, cancel);
            (
                Box::new(move |now| {
                    vec![event("customer.subscription.updated", PaymentEvent::SubscriptionUpdated(info), now)]
                }),
                "plan",
            )
        }
        "end" => {
            let (sub, period) = subscription(ctx)?;
            let info = SubscriptionInfo {
                status: SubscriptionStatus::Canceled,
                ..subscription_info(sub, Some(customer.clone()), period, true)
            };
            (
                Box::new(move |now| {
                    vec![event("customer.subscription.deleted", PaymentEvent::SubscriptionDeleted(info), now)]
                }),
                "plan",
            )
        }
        "renew" => {
            let (sub, _) = subscription(ctx)?;
            let amount = monthly_price(&catalog, sub.price_id.as_deref());
            let customer = customer.clone();
            (
                Box::new(move |now| {
                    let end = now.checked_add_months(Months::new(1)).unwrap_or(now);
                    vec![event(
                        "invoice.paid",
                        PaymentEvent::InvoicePaid(InvoiceInfo {
                            id: sim_id("in"),
                            customer: Some(customer),
                            subscription: Some(sub.id),
                            billing_reason: BillingReason::Cycle,
                            hosted_invoice_url: None,
                            amount_paid: amount,
                            lines: vec![InvoiceLine {
                                price_id: sub.price_id,
                                amount,
                                period_start: now,
                                period_end: end,
                                proration: false,
                            }],
                        }),
                        now,
                    )]
                }),
                "plan",
            )
        }
        "refund" | "dispute" | "won" | "lost" => {
            let store = state.store.clone();
            let bought = blocking(move || Ok(store.purchases(account)?)).await?;
            if action == "won" || action == "lost" {
                let Some(d) =
                    bought.disputes.into_iter().find(|d| d.id == form.dispute && d.status == DisputeStatus::Open)
                else {
                    return Err(ApiError::not_found("no such open dispute"));
                };
                let status = if action == "won" { DisputeStatus::Won } else { DisputeStatus::Lost };
                let info = DisputeInfo { id: d.id, charge: None, payment_intent: d.payment_intent, status };
                (
                    Box::new(move |now| vec![event("charge.dispute.closed", PaymentEvent::DisputeClosed(info), now)]),
                    "portal",
                )
            } else {
                let reference = Some(form.payment.clone());
                let Some(paid) = bought
                    .payments
                    .into_iter()
                    .find(|p| p.payment.payment_intent == reference || p.payment.invoice == reference)
                else {
                    return Err(ApiError::not_found("no such payment"));
                };
                let link = paid.payment.clone();
                let charge = sim_id("ch");
                if action == "refund" {
                    let info = ChargeInfo {
                        id: charge,
                        payment_intent: link.payment_intent.clone(),
                        amount: paid.amount,
                        amount_refunded: paid.amount,
                    };
                    (
                        Box::new(move |now| {
                            vec![event("charge.refunded", PaymentEvent::ChargeRefunded(info, link), now)]
                        }),
                        "portal",
                    )
                } else {
                    let info = DisputeInfo {
                        id: sim_id("dp"),
                        charge: Some(charge),
                        payment_intent: link.payment_intent.clone(),
                        status: DisputeStatus::Open,
                    };
                    (
                        Box::new(move |now| {
                            vec![event("charge.dispute.created", PaymentEvent::DisputeCreated(info, link), now)]
                        }),
                        "portal",
                    )
                }
            }
        }
        _ => return Err(ApiError::not_found("no such action")),
    };
    apply(&state, events).await?;
    Ok(billing(&state, notice))
}

/// What a plan's Stripe price charges a month (0 for a price the catalog does not sell).
fn monthly_price(catalog: &credits_domain::catalog::Catalog, price: Option<&str>) -> i64 {
    price.and_then(|p| plan_for_price(catalog, p)).and_then(|plan| plan.price.as_ref()).map_or(0, |p| p.amount)
}

/// The subscription as Stripe would describe it now, its cancellation at the period's end set.
fn subscription_info(
    sub: LiveSubscription,
    customer: Option<String>,
    period: Option<credits_domain::account::Period>,
    cancel_at_period_end: bool,
) -> SubscriptionInfo {
    SubscriptionInfo {
        id: sub.id,
        customer,
        status: sub.status,
        price_id: sub.price_id,
        item_id: sub.item_id,
        cancel_at_period_end,
        period_start: period.map(|p| p.start),
        period_end: period.map(|p| p.end),
        pending_update: false,
    }
}
