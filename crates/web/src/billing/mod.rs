//! SPEC section 8: the billing page (`/billing`), the product's "Settings → Billing". The canvas
//! backend asks `POST /v1/billing-page-sessions` for a one-time link; opening it starts a session
//! of that account alone (an HttpOnly cookie, one hour). Server-rendered HTML (maud: checked at
//! compile time, every value escaped), one stylesheet, no script and no third-party resource;
//! every form carries the session's CSRF token, and every action calls the same use case as the
//! API.

mod actions;
mod members;

pub use actions::{
    api_key, buy_pack, change_plan, create_endpoint, delete_endpoint, ledger_csv, portal, revoke_key,
    submit_verification,
};
pub use members::{add_member, change_member, remove_member};

/// A secret shown once, on the answer that made it.
pub(crate) enum Shown<'a> {
    ApiKey(&'a str),
    WebhookSecret(&'a str),
}

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Duration;
use credits_api::ApiError;
use credits_api::state::{AppState, token_hash};
use credits_domain::members::{KeyScope, MemberView, PageAccess, Role};
use credits_domain::notify::autotopup::AutoTopupRequest;
use credits_domain::pages::PageSession;
use credits_domain::reports::{GroupBy, Span};
use credits_domain::views::LedgerQuery;
use serde::Deserialize;

use crate::layout::{message_page, money, page};
use crate::session::{COOKIE, checked, cookie_token, permitted, random_token, refused_role, session_of};
use template::{render, render_with};

mod chart;
mod template;

#[derive(Deserialize)]
pub struct OpenQuery {
    token: Option<String>,
}

/// `GET /billing/open?token=`: uses the link once and starts the session.
pub async fn open(
    query: credits_api::edge::Query<OpenQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Some(token) = query.into_inner().token.filter(|t| !t.is_empty()) else {
        return Ok(message_page(StatusCode::BAD_REQUEST, "No link", "Open your billing page from the app."));
    };
    let (session, csrf) = (random_token(), random_token());
    let (link_hash, session_hash) = (token_hash(&token), token_hash(&session));
    let opened = state
        .page_links()
        .call(move |links, now| Ok(links.open_page_link(&link_hash, &session_hash, &csrf, now)?))
        .await?;
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
    /// R27: the role the page acts with, and what it shows of the team: every current member
    /// (owners and admins), and the member the page acts as.
    role: Role,
    members: Vec<MemberView>,
    me: Option<MemberView>,
}

/// The ports the billing page reads besides reports and Stripe's invoices.
type Ports<'a> = (
    &'a dyn credits_domain::ports::AccountStore,
    &'a dyn credits_domain::notify::store::NotifyStore,
    &'a dyn credits_domain::ports::ApiKeyStore,
    &'a dyn credits_domain::ports::VerificationStore,
    &'a dyn credits_domain::members::MemberStore,
);

pub(super) async fn read(state: &AppState, session: &PageSession) -> Result<Billing, ApiError> {
    read_at(state, session, None).await
}

/// The page's facts, the ledger from `cursor` (newest first).
async fn read_at(state: &AppState, session: &PageSession, cursor: Option<i64>) -> Result<Billing, ApiError> {
    let (account, member, role) = (session.account, session.member, session.role);
    // R28: with automatic tax on, prices are before tax, and the page says so.
    let plus_tax = if state.automatic_tax { " plus tax" } else { "" };
    let catalog = state.catalog.clone();
    // Four reads at once, each on its own connection: Stripe's invoices, the two usage
    // aggregates (the page's costliest statements on a long ledger), and the rest; the page takes
    // as long as the slowest, not their sum (the 50 ms budget, measured by `make bench`).
    // Stripe is asked for invoices only for a role that sees them (R27).
    let invoices = async move {
        if role.may(PageAccess::Payments) {
            state.checkout(move |checkout, now| Ok(checkout.invoices(account, now).map_err(|e| e.to_string()))).await
        } else {
            Ok(Ok(Vec::new()))
        }
    };
    let days = state.reports().call(move |reports, now| {
        let span = Span::new(None, None, now).map_err(ApiError::invalid_parameters)?;
        let by_day = reports.usage(account, GroupBy::Day, span)?;
        Ok((0..30)
            .rev()
            .map(|back| {
                let day = (now - Duration::days(back)).format("%Y-%m-%d").to_string();
                let credits = by_day.iter().find(|g| g.key.as_deref() == Some(&day)).map_or(0, |g| g.credits.get());
                (day, credits)
            })
            .collect::<Vec<_>>())
    });
    let models = state.reports().call(move |reports, now| {
        let span = Span::new(None, None, now).map_err(ApiError::invalid_parameters)?;
        Ok(reports.usage(account, GroupBy::Model, span)?)
    });
    // One connection for the rest, read through the ports of the use cases the page shows.
    let rest = state.call(move |store, now| {
        let (accounts, notify, keys, verifications, members): Ports<'_> = (store, store, store, store, store);
        let team = members.members(account, now)?;
        let me = member.and_then(|id| team.iter().find(|m| m.id == id).cloned());
        // R27: the keys within the role's scope (a member's own; billing none).
        let scope = role.keys(member);
        let keys = match scope {
            KeyScope::None => Vec::new(),
            _ => keys
                .api_keys(account, now)
                .unwrap_or_default()
                .into_iter()
                .filter(|k| scope.shows(k.member_id))
                .collect(),
        };
        let balance = accounts
            .balances(&[account], now)?
            .pop()
            .flatten()
            .ok_or_else(|| ApiError::not_found("no such account"))?;
        Ok(Billing {
            account: accounts.account_view(account, now)?,
            balance,
            days: Vec::new(),
            models: Vec::new(),
            trials: accounts.trials(account, now)?,
            ledger: accounts.ledger(account, &LedgerQuery { limit: 20, cursor })?,
            alerts: notify.alerts(account)?,
            auto_topup: notify.auto_topup(account, now)?,
            endpoints: notify.endpoints(account)?,
            keys,
            packs: catalog
                .packs()
                .iter()
                .map(|p| {
                    let label = format!("{} ({} credits)", p.name, p.credits);
                    (p.id.clone(), label, format!("{}{plus_tax}", money(p.price.amount, &p.price.currency)))
                })
                .collect(),
            plans: catalog
                .plans()
                .iter()
                .filter(|p| p.sold)
                .map(|p| {
                    let price =
                        p.price.as_ref().map(|pr| format!("{} a month{plus_tax}", money(pr.amount, &pr.currency)));
                    (p.id.clone(), p.name.clone(), price.unwrap_or_default())
                })
                .collect(),
            invoices: Ok(Vec::new()),
            verification: verifications.latest_verification(account)?,
            role,
            members: if role.may(PageAccess::Members) { team } else { Vec::new() },
            me,
        })
    });
    let (invoices, days, models, rest) = tokio::join!(invoices, days, models, rest);
    Ok(Billing { invoices: invoices?, days: days?, models: models?, ..rest? })
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
    query: credits_api::edge::Query<PageQuery>,
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
        Some("member-added") => Some("The member is added and emailed."),
        Some("member-changed") => Some("The member's role and cap are saved."),
        Some("member-removed") => Some("The member is removed: their API keys stop working at once."),
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
    form: credits_api::edge::Form<AlertsForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let session = match permitted(&req, &state, &form.csrf, PageAccess::Alerts).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let account = session.account;
    let done = match optional_number("low_balance_threshold", form.low_balance_threshold.as_deref()) {
        Err(e) => Err(e),
        Ok(raw) => {
            state.notify(account, true, move |notify, now| notify.set_alerts(account, raw, now).map(|_| ())).await
        }
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
    form: credits_api::edge::Form<AutoTopupForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let session = match permitted(&req, &state, &form.csrf, PageAccess::AutoTopup).await? {
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
            state
                .notify(account, true, move |notify, now| notify.set_auto_topup(account, &request, now).map(|_| ()))
                .await
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
    form: credits_api::edge::Form<SignOutForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if let Err(answer) = checked(&req, &state, &form.csrf).await? {
        return Ok(answer);
    }
    if let Some(token) = cookie_token(&req) {
        let hash = token_hash(&token);
        state.page_links().call(move |links, _| Ok(links.end_page_session(&hash)?)).await?;
    }
    let mut answer = message_page(StatusCode::OK, "Signed out", "Open your billing page from the app to come back.");
    answer.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("credits_billing=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    Ok(answer)
}
