//! SPEC section 8: the billing page (`/billing`), the product's "Settings → Billing". The canvas
//! backend asks `POST /v1/billing-page-sessions` for a one-time link; opening it starts a session
//! of that account alone (an HttpOnly cookie, one hour). Server-rendered HTML (maud: checked at
//! compile time, every value escaped), one stylesheet, no script and no third-party resource;
//! every form carries the session's CSRF token, and every action calls the same use case as the
//! API.

mod actions;

pub use actions::{
    api_key, buy_pack, change_plan, create_endpoint, delete_endpoint, ledger_csv, portal, revoke_key,
    submit_verification,
};

/// A secret shown once, on the answer that made it.
pub(super) enum Shown<'a> {
    ApiKey(&'a str),
    WebhookSecret(&'a str),
}

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use credits_domain::credits::Credits;
use credits_domain::notify::autotopup::AutoTopupRequest;
use credits_domain::pages::PageSession;
use credits_domain::reports::{GroupBy, Span};
use credits_domain::views::LedgerQuery;
use maud::{DOCTYPE, Markup, html};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth;
use crate::error::ApiError;
use crate::state::{AppState, token_hash};

/// The session cookie: its value is a random token; the store keeps only its hash.
const COOKIE: &str = "credits_billing";
/// The page's one stylesheet.
pub const STYLESHEET: &str = include_str!("../../assets/app.css");
/// Nothing but this origin's stylesheet and forms; no script at all.
const POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
                      frame-ancestors 'none'; base-uri 'none'";

pub(crate) fn random_token() -> String {
    crate::state::new_token("")
}

/// `POST /v1/billing-page-sessions`: a link the canvas opens for the account.
#[derive(Serialize, ToSchema)]
pub struct BillingPageLink {
    /// Opens the billing page once, within 5 minutes.
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

#[utoipa::path(post, path = "/v1/billing-page-sessions", operation_id = "createBillingPageSession", summary = "A one-time link to the account's billing page", tag = "pages",
    responses((status = 201, description = "a link that opens the billing page once, within 5 minutes, for this account alone", body = BillingPageLink)),
    security(("canvas" = [])))]
pub async fn create_link(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = auth::canvas(&req, &state).await?;
    let token = random_token();
    let hash = token_hash(&token);
    let expires_at = state.call(move |store, now| Ok(store.create_page_link(caller.account, &hash, now)?)).await?;
    let url = format!("{}/billing/open?token={token}", state.pages.public_url.trim_end_matches('/'));
    Ok(HttpResponse::Created().json(BillingPageLink { url, expires_at }))
}

#[derive(Deserialize)]
pub struct OpenQuery {
    token: Option<String>,
}

/// Every page answer: no caching, no framing, nothing but our own stylesheet.
pub(crate) fn page(status: StatusCode, body: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Content-Security-Policy", POLICY))
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(body.into_string())
}

pub(crate) fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — credits" }
                link rel="stylesheet" href="/assets/app.css";
                link rel="icon" href="data:,";
            }
            body { (body) }
        }
    }
}

pub(crate) fn message_page(status: StatusCode, title: &str, text: &str) -> HttpResponse {
    page(status, layout(title, html! { main class="narrow" { h1 { (title) } p { (text) } } }))
}

/// `GET /billing/open?token=`: uses the link once and starts the session.
pub async fn open(query: crate::edge::Query<OpenQuery>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let Some(token) = query.into_inner().token.filter(|t| !t.is_empty()) else {
        return Ok(message_page(StatusCode::BAD_REQUEST, "No link", "Open your billing page from the app."));
    };
    let (session, csrf) = (random_token(), random_token());
    let (link_hash, session_hash) = (token_hash(&token), token_hash(&session));
    let opened = state.call(move |store, now| Ok(store.open_page_link(&link_hash, &session_hash, &csrf, now)?)).await?;
    if opened.is_none() {
        return Ok(message_page(
            StatusCode::GONE,
            "This link has expired",
            "A billing link opens once, within five minutes. Open your billing page from the app again.",
        ));
    }
    let secure = if state.pages.public_url.starts_with("https://") { "; Secure" } else { "" };
    // Path=/: the simulated payment pages act within this session too (section 7).
    let cookie = format!("{COOKIE}={session}; Path=/; HttpOnly; SameSite=Lax; Max-Age=3600{secure}");
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/billing"))
        .insert_header((header::SET_COOKIE, HeaderValue::from_str(&cookie).map_err(|_| ApiError::internal())?))
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .finish())
}

pub(super) fn cookie_token(req: &HttpRequest) -> Option<String> {
    cookie(req, COOKIE)
}

/// The value of the cookie `name`.
pub(crate) fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    let raw = req.headers().get(header::COOKIE)?.to_str().ok()?;
    raw.split(';').filter_map(|c| c.trim().split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
}

/// The request's session, or the page that says there is none.
pub(crate) async fn session_of(
    req: &HttpRequest,
    state: &AppState,
) -> Result<Result<PageSession, HttpResponse>, ApiError> {
    let Some(token) = cookie_token(req) else {
        return Ok(Err(message_page(
            StatusCode::UNAUTHORIZED,
            "Not signed in",
            "Open your billing page from the app: its link signs you in for an hour.",
        )));
    };
    let hash = token_hash(&token);
    let found = state.call(move |store, now| Ok(store.page_session(&hash, now)?)).await?;
    Ok(found.ok_or_else(|| {
        message_page(
            StatusCode::UNAUTHORIZED,
            "Your session has ended",
            "Billing sessions last an hour. Open your billing page from the app again.",
        )
    }))
}

/// Constant-time comparison of the form's CSRF token with the session's.
/// The session of a form's request, its CSRF token checked; otherwise the answer to give.
pub(super) async fn checked(
    req: &HttpRequest,
    state: &AppState,
    csrf: &str,
) -> Result<Result<PageSession, HttpResponse>, ApiError> {
    Ok(match session_of(req, state).await? {
        Err(page) => Err(page),
        Ok(s) if !csrf_matches(&s, csrf) => Err(refused_csrf()),
        Ok(s) => Ok(s),
    })
}

fn csrf_matches(session: &PageSession, given: &str) -> bool {
    same_token(&session.csrf, given)
}

/// Constant-time equality of two tokens.
pub(crate) fn same_token(expected: &str, given: &str) -> bool {
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn refused_csrf() -> HttpResponse {
    message_page(
        StatusCode::FORBIDDEN,
        "The form has expired",
        "Nothing was changed. Go back to your billing page, reload it and try again.",
    )
}

pub(crate) fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Credits used per day over the last 30 days, drawn as an SVG bar chart (no script).
fn usage_chart(days: &[(String, i64)]) -> Markup {
    let (width, height, gap) = (600.0_f64, 140.0_f64, 2.0_f64);
    let most = days.iter().map(|(_, c)| *c).max().unwrap_or(0).max(1) as f64;
    let bar = width / days.len().max(1) as f64;
    let total: i64 = days.iter().map(|(_, c)| c).sum();
    html! {
        svg class="chart" viewBox=(format!("0 0 {width} {}", height + 20.0)) role="img"
            aria-label=(format!("Credits used per day over the last 30 days: {total} in all")) {
            @for (i, (day, credits)) in days.iter().enumerate() {
                @let h = (*credits as f64 / most * height).max(if *credits > 0 { 1.0 } else { 0.0 });
                rect x=(format!("{:.1}", i as f64 * bar)) y=(format!("{:.1}", height - h))
                    width=(format!("{:.1}", (bar - gap).max(1.0))) height=(format!("{h:.1}")) {
                    title { (day) ": " (credits) " credits" }
                }
            }
            text x="0" y=(height + 16.0) { (days.first().map(|d| d.0.as_str()).unwrap_or("")) }
            text x=(width) y=(height + 16.0) text-anchor="end" { (days.last().map(|d| d.0.as_str()).unwrap_or("")) }
        }
    }
}

/// What the page shows, read through the use cases.
pub(super) struct Billing {
    account: credits_domain::views::AccountView,
    balance: credits_domain::views::BalanceView,
    days: Vec<(String, i64)>,
    models: Vec<credits_domain::reports::UsageGroup>,
    trials: Vec<credits_domain::trial::TrialView>,
    ledger: credits_domain::views::LedgerPage,
    alerts: credits_domain::notify::store::AlertsView,
    auto_topup: credits_domain::notify::store::AutoTopupView,
    endpoints: Vec<credits_domain::notify::store::EndpointView>,
    keys: Vec<credits_domain::apikey::ApiKeyView>,
    /// Packs and plans sold: id, name, price.
    packs: Vec<(String, String, String)>,
    plans: Vec<(String, String, String)>,
    /// The invoices as Stripe has them, or why they cannot be shown now.
    invoices: Result<Vec<credits_domain::payments::InvoiceView>, String>,
    verification: Option<credits_domain::verification::VerificationView>,
}

/// `1234` in `usd` is `$12.34`; other currencies by their code.
pub(crate) fn money(amount: i64, currency: &str) -> String {
    let major = format!("{}.{:02}", amount / 100, (amount % 100).abs());
    match currency.to_ascii_lowercase().as_str() {
        "usd" => format!("${major}"),
        "eur" => format!("€{major}"),
        other => format!("{major} {}", other.to_ascii_uppercase()),
    }
}

pub(super) async fn read(state: &AppState, session: &PageSession) -> Result<Billing, ApiError> {
    read_at(state, session, None).await
}

/// The page's facts, the ledger from `cursor` (newest first).
async fn read_at(state: &AppState, session: &PageSession, cursor: Option<i64>) -> Result<Billing, ApiError> {
    let account = session.account;
    let catalog = state.catalog.clone();
    let (gateway, catalog2) = (state.payments.clone(), state.catalog.clone());
    // Four reads at once, each on its own connection: Stripe's invoices, the two usage
    // aggregates (the page's costliest statements on a long ledger), and the rest; the page takes
    // as long as the slowest, not their sum (the 50 ms budget, measured by `make bench`).
    let invoices = state.call(move |store, now| {
        let service =
            credits_domain::payments::CheckoutService { store, gateway: gateway.as_ref(), catalog: &catalog2 };
        Ok(service.invoices(account, now).map_err(|e| e.to_string()))
    });
    let days = state.call(move |store, now| {
        let span = Span::new(None, None, now).map_err(ApiError::invalid_parameters)?;
        let by_day = store.usage(account, GroupBy::Day, span)?;
        Ok((0..30)
            .rev()
            .map(|back| {
                let day = (now - Duration::days(back)).format("%Y-%m-%d").to_string();
                let credits = by_day.iter().find(|g| g.key.as_deref() == Some(&day)).map_or(0, |g| g.credits.get());
                (day, credits)
            })
            .collect::<Vec<_>>())
    });
    let models = state.call(move |store, now| {
        let span = Span::new(None, None, now).map_err(ApiError::invalid_parameters)?;
        Ok(store.usage(account, GroupBy::Model, span)?)
    });
    let rest = state.call(move |store, now| {
        let balance =
            store.balances(&[account], now)?.pop().flatten().ok_or_else(|| ApiError::not_found("no such account"))?;
        Ok(Billing {
            account: store.account_view(account, now)?,
            balance,
            days: Vec::new(),
            models: Vec::new(),
            trials: store.trials(account, now)?,
            ledger: store.ledger(account, &LedgerQuery { limit: 20, cursor })?,
            alerts: store.alerts(account)?,
            auto_topup: store.auto_topup(account, now)?,
            endpoints: store.endpoints(account)?,
            keys: store.api_keys(account, now).unwrap_or_default(),
            packs: catalog
                .packs()
                .iter()
                .map(|p| {
                    let label = format!("{} ({} credits)", p.name, p.credits);
                    (p.id.clone(), label, money(p.price.amount, &p.price.currency))
                })
                .collect(),
            plans: catalog
                .plans()
                .iter()
                .filter(|p| p.sold)
                .map(|p| {
                    let price = p.price.as_ref().map(|pr| format!("{} a month", money(pr.amount, &pr.currency)));
                    (p.id.clone(), p.name.clone(), price.unwrap_or_default())
                })
                .collect(),
            invoices: Ok(Vec::new()),
            verification: store.latest_verification(account)?,
        })
    });
    let (invoices, days, models, rest) = tokio::join!(invoices, days, models, rest);
    Ok(Billing { invoices: invoices?, days: days?, models: models?, ..rest? })
}

fn csrf_field(session: &PageSession) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

fn render(session: &PageSession, b: &Billing, notice: Option<&str>, error: Option<&str>) -> Markup {
    render_with(session, b, notice, error, None)
}

/// The page; `secret` is a new API key's, shown this once.
pub(super) fn render_with(
    session: &PageSession,
    b: &Billing,
    notice: Option<&str>,
    error: Option<&str>,
    shown: Option<Shown<'_>>,
) -> Markup {
    let (secret, hook_secret) = match shown {
        Some(Shown::ApiKey(s)) => (Some(s), None),
        Some(Shown::WebhookSecret(s)) => (None, Some(s)),
        None => (None, None),
    };
    let a = &b.account;
    layout(
        "Billing",
        html! {
            header class="top" {
                span class="brand" { "credits" }
                span { (a.name) " · " (a.email) }
                form method="post" action="/billing/sign-out" {
                    (csrf_field(session))
                    button type="submit" class="link" { "Sign out" }
                }
            }
            main {
                h1 { "Billing" }
                @if let Some(n) = notice { p class="notice" role="status" { (n) } }
                @if let Some(e) = error { p class="error" role="alert" { (e) } }

                section aria-labelledby="plan-h" {
                    h2 id="plan-h" { "Plan" }
                    dl class="facts" {
                        dt { "Plan" } dd id="plan" { (a.plan) }
                        dt { "Status" } dd { (a.status.as_str()) }
                        @if let Some(end) = a.period_end { dt { "Current period ends" } dd { (when(end)) } }
                        @if let Some(change) = &a.pending_change { dt { "Pending change" } dd { (match change {
                            credits_domain::payments::PendingChange::Plan(p) => format!("a change to {p} at the period's end"),
                            credits_domain::payments::PendingChange::Cancel => "ends at the period's end".to_string(),
                        }) } }
                        @if a.restricted { dt { "Restricted" } dd { "Runs, checkouts and new keys are refused; contact support." } }
                    }
                }

                section aria-labelledby="plans-h" {
                    h2 id="plans-h" { "Change plan" }
                    @let canceling = matches!(a.pending_change, Some(credits_domain::payments::PendingChange::Cancel));
                    div class="choices" {
                        @for (id, name, price) in &b.plans {
                            @if *id != a.plan || canceling {
                                form method="post" action="/billing/plan" {
                                    (csrf_field(session))
                                    input type="hidden" name="plan" value=(id);
                                    button type="submit" {
                                        @if *id == a.plan { "Resume " (name) } @else { "Switch to " (name) }
                                        @if !price.is_empty() { " — " (price) }
                                    }
                                }
                            }
                        }
                    }
                    p { "Upgrades apply once Stripe has the payment; downgrades at the end of the period. "
                        "To cancel, or to change your card, use Stripe's portal:" }
                    form method="post" action="/billing/portal" {
                        (csrf_field(session))
                        button type="submit" class="secondary" { "Open Stripe's billing portal" }
                    }
                }

                section aria-labelledby="packs-h" {
                    h2 id="packs-h" { "Buy credits" }
                    div class="choices" {
                        @for (id, name, price) in &b.packs {
                            form method="post" action="/billing/pack" {
                                (csrf_field(session))
                                input type="hidden" name="pack" value=(id);
                                button type="submit" { "Buy " (name) " — " (price) }
                            }
                        }
                    }
                }

                section aria-labelledby="balance-h" {
                    h2 id="balance-h" { "Credits" }
                    div class="figures" {
                        div { span class="figure" id="available" { (b.balance.available.get()) } span { "available" } }
                        div { span class="figure" { (b.balance.held.get()) } span { "held by runs in progress" } }
                        div { span class="figure" { (b.balance.total.get()) } span { "in all" } }
                    }
                    table {
                        caption { "Your credits, in the order runs use them" }
                        thead { tr { th scope="col" { "Kind" } th scope="col" { "Granted" } th scope="col" { "Left" } th scope="col" { "Held" } th scope="col" { "Expires" } } }
                        tbody {
                            @for bucket in &b.balance.buckets {
                                tr class="bucket" {
                                    td { (bucket.kind.as_str()) }
                                    td class="num" { (bucket.granted.get()) }
                                    td class="num" { (bucket.remaining.get()) }
                                    td class="num" { (bucket.held.get()) }
                                    td { (bucket.expires_at.map(when).unwrap_or_else(|| "never".into())) }
                                }
                            }
                        }
                    }
                }

                section aria-labelledby="usage-h" {
                    h2 id="usage-h" { "Usage, last 30 days" }
                    @if b.days.iter().all(|(_, c)| *c == 0) { p { "No credits used in the last 30 days." } }
                    @else { (usage_chart(&b.days)) }
                    @if !b.models.is_empty() {
                        table {
                            caption { "By model" }
                            thead { tr { th scope="col" { "Model" } th scope="col" { "Credits" } th scope="col" { "Runs" } } }
                            tbody {
                                @for g in &b.models {
                                    tr { td { (g.key.as_deref().unwrap_or("—")) } td class="num" { (g.credits.get()) } td class="num" { (g.runs) } }
                                }
                            }
                        }
                    }
                }

                section aria-labelledby="trials-h" {
                    h2 id="trials-h" { "Free trials" }
                    @if b.trials.iter().all(|t| t.status == "not_applicable") {
                        p { "Your plan has no trials: its models run from your credits." }
                    } @else {
                        table id="trials" {
                            caption { "Models you may try without spending credits" }
                            thead { tr { th scope="col" { "Model" } th scope="col" { "Trial" } th scope="col" { "Status" } } }
                            tbody {
                                @for t in b.trials.iter().filter(|t| t.status != "not_applicable") {
                                    tr {
                                        td { (t.model) }
                                        td { (match (t.kind, t.window_closes_at) {
                                            (credits_domain::trial::TrialKind::Count, _) => format!("{} of {} generations left", t.remaining.unwrap_or(0), t.total),
                                            (_, Some(closes)) => format!("unlimited until {}", when(closes)),
                                            (_, None) => format!("unlimited for {} days from the first run", t.days.unwrap_or(0)),
                                        }) }
                                        td { (t.status) }
                                    }
                                }
                            }
                        }
                    }
                }

                section aria-labelledby="ledger-h" {
                    h2 id="ledger-h" { "Ledger" }
                    p { a href="/billing/ledger.csv" { "Download the last 30 days as CSV" } }
                    table {
                        caption { "The latest entries (every change of your credits)" }
                        thead { tr { th scope="col" { "When" } th scope="col" { "Type" } th scope="col" { "Credits" } th scope="col" { "Reason" } } }
                        tbody {
                            @for e in &b.ledger.entries {
                                tr { td { (when(e.created_at)) } td { (e.entry_type.as_str()) } td class="num" { (e.credits.get()) } td { (e.reason.as_deref().unwrap_or("")) } }
                            }
                        }
                    }
                    @if let Some(next) = &b.ledger.next_cursor {
                        p { a href=(format!("/billing?ledger={next}#ledger-h")) id="older" { "Older entries" } }
                    }
                }

                section aria-labelledby="alerts-h" {
                    h2 id="alerts-h" { "Low-balance alert" }
                    form method="post" action="/billing/alerts" {
                        (csrf_field(session))
                        label for="low_balance_threshold" { "Email me when available credits fall below" }
                        input type="number" min="1" id="low_balance_threshold" name="low_balance_threshold"
                            value=[b.alerts.low_balance_threshold.map(Credits::get)];
                        button type="submit" { "Save alert" }
                    }
                }

                section aria-labelledby="topup-h" {
                    h2 id="topup-h" { "Auto top-up" }
                    @if !b.auto_topup.card_saved {
                        p { "Buy a top-up pack once: its checkout saves your card, and auto top-up can use it." }
                    }
                    form method="post" action="/billing/auto-topup" {
                        (csrf_field(session))
                        div class="check" {
                            input type="checkbox" id="enabled" name="enabled" value="on" checked[b.auto_topup.enabled];
                            label for="enabled" { "Buy a pack when available credits fall below the threshold" }
                        }
                        label for="threshold" { "Threshold (credits)" }
                        input type="number" min="1" id="threshold" name="threshold" value=[b.auto_topup.threshold.map(Credits::get)];
                        label for="pack" { "Pack" }
                        select id="pack" name="pack" {
                            @for (id, label, _) in &b.packs {
                                option value=(id) selected[b.auto_topup.pack.as_deref() == Some(id.as_str())] { (label) }
                            }
                        }
                        label for="monthly_limit" { "At most this many a month" }
                        input type="number" min="1" max="31" id="monthly_limit" name="monthly_limit" value=(b.auto_topup.monthly_limit);
                        button type="submit" { "Save auto top-up" }
                    }
                    p { "This month: " (b.auto_topup.used_this_month) " of " (b.auto_topup.monthly_limit) "."
                        @if let Some(last) = &b.auto_topup.last_attempt { " Last: " (last.pack) ", " (last.status) " (" (when(last.created_at)) ")." } }
                }

                section aria-labelledby="hooks-h" {
                    h2 id="hooks-h" { "Webhook endpoints" }
                    @if let Some(secret) = hook_secret {
                        div class="secret" role="status" {
                            p { strong { "The endpoint's signing secret — copy it now: it is shown this once." } }
                            code id="new-hook-secret" { (secret) }
                        }
                    }
                    @if b.endpoints.is_empty() { p { "None yet." } }
                    ul {
                        @for e in &b.endpoints {
                            li class="endpoint" { code { (e.url) } " — " (e.events.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", "))
                                @if e.disabled_at.is_some() { " (disabled: it failed for 5 days)" }
                                form method="post" action=(format!("/billing/webhook-endpoints/{}/delete", e.id)) {
                                    (csrf_field(session))
                                    button type="submit" class="secondary" aria-label=(format!("Delete the endpoint {}", e.url)) { "Delete" }
                                }
                            }
                        }
                    }
                    form method="post" action="/billing/webhook-endpoints" class="wide" {
                        (csrf_field(session))
                        label for="hook-url" { "Endpoint URL (https)" }
                        input type="url" id="hook-url" name="url" required;
                        fieldset {
                            legend { "Events to send" }
                            @for t in credits_domain::notify::webhooks::EventType::ALL {
                                div class="check" {
                                    input type="checkbox" id=(format!("ev-{}", t.as_str())) name="events" value=(t.as_str());
                                    label for=(format!("ev-{}", t.as_str())) { (t.as_str()) }
                                }
                            }
                        }
                        button type="submit" { "Add endpoint" }
                    }
                }

                section aria-labelledby="keys-h" {
                    h2 id="keys-h" { "API keys" }
                    @if let Some(secret) = secret {
                        div class="secret" role="status" {
                            p { strong { "Your new key — copy it now: it is shown this once." } }
                            code id="new-key" { (secret) }
                        }
                    }
                    @if !a.api_access { p { "API keys come with plans that include API access." } }
                    @else {
                        @if b.keys.is_empty() { p { "No keys yet." } }
                        table {
                            caption { "Live keys" }
                            thead { tr { th scope="col" { "Name" } th scope="col" { "Key" } th scope="col" { "Used this month" } th scope="col" { "Monthly cap" } th scope="col" { span class="visually-hidden" { "Actions" } } } }
                            tbody {
                                @for k in &b.keys {
                                    tr class="key" {
                                        td { (k.name) } td { code { (k.prefix) "…" } } td class="num" { (k.used_this_month.get()) }
                                        td class="num" { (k.monthly_credit_limit.map(|l| l.get().to_string()).unwrap_or_else(|| "none".into())) }
                                        td {
                                            form method="post" action=(format!("/billing/api-keys/{}/revoke", k.id)) {
                                                (csrf_field(session))
                                                button type="submit" class="secondary" aria-label=(format!("Revoke {}", k.name)) { "Revoke" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        form method="post" action="/billing/api-keys" {
                            (csrf_field(session))
                            label for="key-name" { "Name" }
                            input type="text" id="key-name" name="name" required maxlength="100";
                            label for="key-limit" { "Monthly credit cap (optional)" }
                            input type="number" min="1" id="key-limit" name="monthly_credit_limit";
                            button type="submit" { "Create key" }
                        }
                    }
                }

                section aria-labelledby="invoices-h" {
                    h2 id="invoices-h" { "Invoices" }
                    @match &b.invoices {
                        Err(why) => p { "Invoices cannot be shown right now (" (why) ")." },
                        Ok(list) if list.is_empty() => p { "No invoices yet." },
                        Ok(list) => table {
                            thead { tr { th scope="col" { "Number" } th scope="col" { "Date" } th scope="col" { "Amount" } th scope="col" { "Status" } } }
                            tbody {
                                @for inv in list {
                                    tr {
                                        td { @if let Some(url) = &inv.hosted_invoice_url { a href=(url) { (inv.number.as_deref().unwrap_or(&inv.id)) } } @else { (inv.number.as_deref().unwrap_or(&inv.id)) } }
                                        td { (when(inv.created)) } td class="num" { (money(inv.amount_paid, &inv.currency)) } td { (inv.status.as_deref().unwrap_or("")) }
                                    }
                                }
                            }
                        },
                    }
                }

                section aria-labelledby="verify-h" {
                    h2 id="verify-h" { "Business verification" }
                    @if let Some(v) = &b.verification {
                        p id="verification-status" { "Your request is " strong { (v.status.as_str()) } "."
                            @if let Some(reason) = &v.reason { " Reason: " (reason) } }
                    }
                    @let open = b.verification.as_ref().is_none_or(|v| v.status.as_str() == "rejected");
                    @if open && a.business_verification.as_ref().is_none_or(|v| v.status != "approved") {
                        p { "The Business plan needs a verified business. Tell the sales team about yours:" }
                        form method="post" action="/billing/verification" class="wide" {
                            (csrf_field(session))
                            label for="company_name" { "Company name" } input type="text" id="company_name" name="company_name" required;
                            label for="website" { "Website" } input type="url" id="website" name="website" required;
                            label for="country" { "Country (two letters, e.g. DE)" } input type="text" id="country" name="country" required maxlength="2";
                            label for="tax_id" { "Tax id (optional)" } input type="text" id="tax_id" name="tax_id";
                            label for="contact_name" { "Contact name" } input type="text" id="contact_name" name="contact_name" required;
                            label for="contact_email" { "Contact email" } input type="email" id="contact_email" name="contact_email" required;
                            label for="intended_use" { "What you will use credits for" } textarea id="intended_use" name="intended_use" required {}
                            button type="submit" { "Send for verification" }
                        }
                    }
                }
            }
        },
    )
}

#[derive(Deserialize)]
pub struct PageQuery {
    notice: Option<String>,
    /// The ledger's page: `next_cursor` of the one before.
    ledger: Option<String>,
}

/// `GET /billing`.
pub async fn show(
    req: HttpRequest,
    query: crate::edge::Query<PageQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let session = match session_of(&req, &state).await? {
        Ok(s) => s,
        Err(page) => return Ok(page),
    };
    let cursor = query.ledger.as_deref().and_then(|c| c.parse::<i64>().ok()).filter(|c| *c > 0);
    let billing = read_at(&state, &session, cursor).await?;
    let notice = match query.notice.as_deref() {
        Some("alerts") => Some("Your alert is saved."),
        Some("auto-topup") => Some("Auto top-up is saved."),
        Some("plan") => Some("Your plan change is on its way: it shows here once Stripe confirms it."),
        Some("paid") => Some("Thank you: your purchase shows here as soon as Stripe confirms the payment."),
        Some("portal") => Some("What you did in the billing portal shows here once Stripe tells us."),
        Some("checkout-cancelled") => Some("Checkout was cancelled; nothing was charged."),
        Some("revoked") => Some("The key is revoked: it stops working at once."),
        Some("verification") => Some("Your request is sent: the sales team will answer by email."),
        Some("endpoint-deleted") => Some("The endpoint is deleted: nothing more is sent to it."),
        _ => None,
    };
    Ok(page(StatusCode::OK, render(&session, &billing, notice, None)))
}

/// After a form: back to the page (303, so a reload does not post again), or the page with the
/// use case's refusal (422) when it refused.
pub(super) async fn after(
    state: &AppState,
    session: &PageSession,
    done: Result<(), ApiError>,
    notice: &str,
) -> Result<HttpResponse, ApiError> {
    match done {
        Ok(()) => {
            Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, format!("/billing?notice={notice}"))).finish())
        }
        Err(e) if e.status.is_client_error() => {
            let billing = read(state, session).await?;
            Ok(page(StatusCode::UNPROCESSABLE_ENTITY, render(session, &billing, None, Some(&e.message))))
        }
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
pub struct AlertsForm {
    #[serde(default)]
    csrf: String,
    low_balance_threshold: Option<String>,
}

pub(super) fn optional_number(field: &str, raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => {
            s.parse().map(Some).map_err(|_| ApiError::invalid_parameters(format!("{field} must be a whole number")))
        }
    }
}

/// `POST /billing/alerts`.
pub async fn set_alerts(
    req: HttpRequest,
    form: crate::edge::Form<AlertsForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let session = match checked(&req, &state, &form.csrf).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let account = session.account;
    let threshold = optional_number("low_balance_threshold", form.low_balance_threshold.as_deref())
        .and_then(|raw| credits_domain::notify::alerts::threshold(raw).map_err(ApiError::invalid_parameters));
    let done = match threshold {
        Err(e) => Err(e),
        Ok(t) => state.call(move |store, now| Ok(store.set_alerts(account, t, now).map(|_| ())?)).await,
    };
    after(&state, &session, done, "alerts").await
}

#[derive(Deserialize)]
pub struct AutoTopupForm {
    #[serde(default)]
    csrf: String,
    enabled: Option<String>,
    threshold: Option<String>,
    pack: Option<String>,
    monthly_limit: Option<String>,
}

/// `POST /billing/auto-topup`.
pub async fn set_auto_topup(
    req: HttpRequest,
    form: crate::edge::Form<AutoTopupForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let session = match checked(&req, &state, &form.csrf).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let form = form.into_inner();
    let request = (|| -> Result<AutoTopupRequest, ApiError> {
        Ok(AutoTopupRequest {
            enabled: form.enabled.is_some(),
            threshold: optional_number("threshold", form.threshold.as_deref())?,
            pack: form.pack.filter(|p| !p.is_empty()),
            monthly_limit: optional_number("monthly_limit", form.monthly_limit.as_deref())?,
        })
    })();
    let account = session.account;
    let done = match request {
        Err(e) => Err(e),
        Ok(request) => {
            state.call(move |store, now| Ok(store.set_auto_topup(account, &request, now).map(|_| ())?)).await
        }
    };
    after(&state, &session, done, "auto-topup").await
}

#[derive(Deserialize)]
pub struct SignOutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /billing/sign-out`.
pub async fn sign_out(
    req: HttpRequest,
    form: crate::edge::Form<SignOutForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if let Err(answer) = checked(&req, &state, &form.csrf).await? {
        return Ok(answer);
    }
    if let Some(token) = cookie_token(&req) {
        let hash = token_hash(&token);
        state.call(move |store, _| Ok(store.end_page_session(&hash)?)).await?;
    }
    let mut answer = message_page(StatusCode::OK, "Signed out", "Open your billing page from the app to come back.");
    answer.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("credits_billing=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    Ok(answer)
}

/// `GET /assets/app.css`.
pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(STYLESHEET)
}
