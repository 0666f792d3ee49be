//! SPEC section 5, "Simulated payments": with `payments.provider = "simulated"`, checkout and
//! portal links open these pages, whose buttons produce the events Stripe would send, applied by
//! the same use case as Stripe's deliveries (`WebhookService`). Off (404) with the Stripe provider.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Months, Utc};
use credits_domain::ids::AccountId;
use credits_domain::payments::{
    BillingReason, InvoiceInfo, InvoiceLine, PaymentEvent, SessionInfo, SessionMode, StripeEvent, SubscriptionInfo,
    SubscriptionStatus, WebhookService,
};
use maud::html;
use serde::Deserialize;

use crate::billing::{cookie, layout, message_page, page, random_token, same_token};
use crate::edge::blocking;
use crate::error::ApiError;
use crate::state::AppState;

/// The pages' forms carry this cookie's value too (double submit).
const CSRF: &str = "credits_simulated";

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
    let (store, clock, gateway) = (state.store.clone(), state.clock.clone(), state.payments.clone());
    blocking(move || {
        let now = clock.now()?;
        let service = WebhookService { store: &*store, gateway: &*gateway };
        for e in events(now) {
            let (id, kind) = (e.id.clone(), e.event_type.clone());
            let applied = service.apply(e, now).map_err(|why| {
                tracing::error!(event = %id, %kind, %why, "a simulated event could not be applied");
                ApiError::internal()
            })?;
            tracing::info!(event = %id, %kind, outcome = %applied, "simulated Stripe event");
        }
        Ok(())
    })
    .await
}

fn with_csrf(mut answer: HttpResponse, token: &str) -> Result<HttpResponse, ApiError> {
    let cookie = format!("{CSRF}={token}; Path=/simulated; HttpOnly; SameSite=Strict; Max-Age=3600");
    answer.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).map_err(|_| ApiError::internal())?);
    Ok(answer)
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

fn csrf_ok(req: &HttpRequest, form: &CsrfForm) -> bool {
    cookie(req, CSRF).is_some_and(|c| !c.is_empty() && same_token(&c, &form.csrf))
}

fn expired_form() -> HttpResponse {
    message_page(StatusCode::FORBIDDEN, "The form has expired", "Nothing was charged. Open the payment page again.")
}

/// `GET /simulated/checkout/{id}`: what the session sells, with Pay and Decline.
pub async fn checkout(path: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    enabled(&state)?;
    let id = path.into_inner();
    let (store, lookup) = (state.store.clone(), id.clone());
    let found = blocking(move || Ok(store.checkout_session(&lookup)?)).await?;
    let Some((_, record, _)) = found else { return Err(ApiError::not_found("no such checkout session")) };
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
    let token = random_token();
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
    with_csrf(page(StatusCode::OK, body), &token)
}

/// `POST /simulated/checkout/{id}/pay`: what Stripe sends for a paid session — a pack's
/// `checkout.session.completed`; a subscription's completed session, its subscription and its
/// first paid invoice.
pub async fn pay(
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    enabled(&state)?;
    if !csrf_ok(&req, &form) {
        return Ok(expired_form());
    }
    let id = path.into_inner();
    let (store, lookup) = (state.store.clone(), id.clone());
    let found = blocking(move || Ok(store.checkout_session(&lookup)?)).await?;
    let Some((account, record, customer)) = found else { return Err(ApiError::not_found("no such checkout session")) };
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
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    enabled(&state)?;
    if !csrf_ok(&req, &form) {
        return Ok(expired_form());
    }
    Ok(billing(&state, "checkout-cancelled"))
}

/// The account a simulated customer id names (`cus_sim_<account>_<generation>`).
fn account_of(customer: &str) -> Option<AccountId> {
    let simple = customer.strip_prefix("cus_sim_")?.split('_').next()?;
    uuid::Uuid::parse_str(simple).ok().map(AccountId)
}

/// `GET /simulated/portal/{customer}`: Stripe's portal, as far as the plan goes: cancel at the
/// period's end, or resume.
pub async fn portal(path: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    enabled(&state)?;
    let customer = path.into_inner();
    let account = account_of(&customer).ok_or_else(|| ApiError::not_found("no such customer"))?;
    let live = state.checkout(move |service, now| Ok(service.store.checkout_context(account, now)?.live)).await?;
    let token = random_token();
    let body = layout(
        "Simulated billing portal",
        html! {
            main class="narrow" {
                h1 { "Simulated billing portal" }
                p class="notice" { "Payments are simulated on this instance: nothing is charged." }
                @match &live {
                    None => p { "No subscription." },
                    Some(sub) => {
                        p { "Subscription " code { (sub.id) } (if sub.cancel_at_period_end { ": ends at the period's end." } else { ": renews every month." }) }
                        form method="post" action=(format!("/simulated/portal/{customer}/{}", if sub.cancel_at_period_end { "resume" } else { "cancel" })) {
                            input type="hidden" name="csrf" value=(token);
                            button type="submit" { (if sub.cancel_at_period_end { "Resume the subscription" } else { "Cancel at the period's end" }) }
                        }
                    }
                }
                p { a href="/billing" { "Back to billing" } }
            }
        },
    );
    with_csrf(page(StatusCode::OK, body), &token)
}

/// `POST /simulated/portal/{customer}/cancel` and `/resume`: `customer.subscription.updated`
/// with `cancel_at_period_end` set or cleared.
pub async fn portal_action(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    enabled(&state)?;
    if !csrf_ok(&req, &form) {
        return Ok(expired_form());
    }
    let (customer, action) = path.into_inner();
    let cancel = match action.as_str() {
        "cancel" => true,
        "resume" => false,
        _ => return Err(ApiError::not_found("no such action")),
    };
    let account = account_of(&customer).ok_or_else(|| ApiError::not_found("no such customer"))?;
    let ctx = state.checkout(move |service, now| Ok(service.store.checkout_context(account, now)?)).await?;
    let Some(sub) = ctx.live else { return Err(ApiError::not_found("no live subscription")) };
    let period = ctx.account.period;
    apply(&state, move |now| {
        vec![event(
            "customer.subscription.updated",
            PaymentEvent::SubscriptionUpdated(SubscriptionInfo {
                id: sub.id,
                customer: Some(customer),
                status: sub.status,
                price_id: sub.price_id,
                item_id: sub.item_id,
                cancel_at_period_end: cancel,
                period_start: period.map(|p| p.start),
                period_end: period.map(|p| p.end),
                pending_update: false,
            }),
            now,
        )]
    })
    .await?;
    Ok(billing(&state, "plan"))
}
