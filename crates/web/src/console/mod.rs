//! SPEC section 8: the operator console (`/console`). Sign in with an operator token (a
//! server-side session in an HttpOnly cookie, ended by signing out, 30 minutes idle or 12 hours);
//! the navigation follows the role. Sales: the business-verification queue, approve or reject
//! with a reason. Support: an account's plan, balance, buckets and ledger; adjust credits;
//! restrict and lift. Every action is the admin API's use case, recorded in the audit trail.

mod admin;

pub use admin::{
    advance, clock, create_operator, dead_mail, enterprise, liability, operators, reprocess, resend_mail,
    revoke_operator, stripe_events, webhook_deliveries,
};

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use credits_domain::ids::AccountId;
use credits_domain::operator::{Adjustment, Operator, Role};
use credits_domain::pages::ConsoleSession;
use credits_domain::verification::{Decision, VerificationStatus};
use credits_domain::views::LedgerQuery;
use maud::{Markup, html};
use serde::Deserialize;

use crate::layout::{layout, message_page, page, when};
use crate::session::{cookie, random_token, same_token};
use credits_api::ApiError;
use credits_api::state::{AppState, token_hash};

const COOKIE: &str = "credits_console";
/// The sign-in form's CSRF token travels in this cookie and in the form (double submit).
const PRE: &str = "credits_console_signin";

fn secure(state: &AppState) -> &'static str {
    if state.pages.public_url.starts_with("https://") { "; Secure" } else { "" }
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, location)).finish()
}

fn frame(session: &ConsoleSession, title: &str, notice: Option<&str>, body: Markup) -> Markup {
    let role = session.operator.role;
    layout(
        title,
        html! {
            header class="top" {
                span class="brand" { "credits console" }
                nav aria-label="Console" {
                    @if role.allows(Role::Sales) { a href="/console/verifications" { "Verification queue" } " " }
                    @if role.allows(Role::Support) { a href="/console/accounts" { "Accounts" } " " }
                    @if role == Role::Admin {
                        a href="/console/operators" { "Operators" } " "
                        a href="/console/stripe-events" { "Failed Stripe events" } " "
                        a href="/console/mail" { "Dead mail" } " "
                        a href="/console/reports/liability" { "Liability" } " "
                        a href="/console/clock" { "Test clock" }
                    }
                }
                span { (session.operator.name) " (" (role.as_str()) ")" }
                form method="post" action="/console/sign-out" {
                    input type="hidden" name="csrf" value=(session.csrf);
                    button type="submit" class="link" { "Sign out" }
                }
            }
            main {
                h1 { (title) }
                @if let Some(n) = notice { p class="notice" role="status" { (n) } }
                (body)
            }
        },
    )
}

async fn session_of(req: &HttpRequest, state: &AppState) -> Result<Option<ConsoleSession>, ApiError> {
    let Some(token) = cookie(req, COOKIE) else { return Ok(None) };
    let hash = token_hash(&token);
    let session = state.console().call(move |console, now| Ok(console.console_session(&hash, now)?)).await?;
    // Section 7: a session of the bootstrap admin token ends where that token is no longer the
    // configured one (rotated, or removed).
    Ok(session.filter(|s| match (&s.operator.id, &s.bootstrap_token_hash) {
        (Some(_), _) => true,
        (None, Some(opened_with)) => state.credentials.is_bootstrap_admin(opened_with),
        (None, None) => false,
    }))
}

/// The session of a console request with at least `role`, its form's CSRF token checked when
/// `csrf` is given; otherwise the answer to give.
async fn gate(
    req: &HttpRequest,
    state: &AppState,
    role: Role,
    csrf: Option<&str>,
) -> Result<Result<ConsoleSession, HttpResponse>, ApiError> {
    let Some(session) = session_of(req, state).await? else { return Ok(Err(see_other("/console"))) };
    if !session.operator.role.allows(role) {
        return Ok(Err(message_page(StatusCode::FORBIDDEN, "Not for your role", "Your role cannot open this page.")));
    }
    if let Some(given) = csrf
        && !same_token(&session.csrf, given)
    {
        return Ok(Err(message_page(
            StatusCode::FORBIDDEN,
            "The form has expired",
            "Nothing was changed. Go back, reload the page and try again.",
        )));
    }
    Ok(Ok(session))
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

/// `GET /console`: the sign-in form, or the operator's home.
pub async fn home(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if let Some(session) = session_of(&req, &state).await? {
        let body = html! { p { "Choose a page above." } };
        return Ok(page(StatusCode::OK, frame(&session, "Console", None, body)));
    }
    let pre = random_token();
    let form = layout(
        "Sign in",
        html! {
            main class="narrow" {
                h1 { "Operator console" }
                form method="post" action="/console/sign-in" class="wide" {
                    input type="hidden" name="csrf" value=(pre);
                    label for="token" { "Operator token" }
                    input type="password" id="token" name="token" required autocomplete="off";
                    button type="submit" { "Sign in" }
                }
            }
        },
    );
    let mut answer = page(StatusCode::OK, form);
    let cookie = format!("{PRE}={pre}; Path=/console; HttpOnly; SameSite=Strict; Max-Age=900{}", secure(&state));
    answer.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).map_err(|_| ApiError::internal())?);
    Ok(answer)
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    csrf: String,
    token: String,
}

/// `POST /console/sign-in`.
pub async fn sign_in(
    req: HttpRequest,
    form: credits_api::edge::Form<SignInForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let pre = cookie(&req, PRE).unwrap_or_default();
    if pre.is_empty() || !same_token(&pre, &form.csrf) {
        return Ok(message_page(StatusCode::FORBIDDEN, "The form has expired", "Open the console again and sign in."));
    }
    let hash = token_hash(form.token.trim());
    let bootstrap = state.credentials.is_bootstrap_admin(&hash);
    let operator: Option<Operator> = if bootstrap {
        Some(Operator { id: None, name: "bootstrap-admin".into(), role: Role::Admin })
    } else {
        let hash = hash.clone();
        state.operators().call(move |operators, _| Ok(operators.operator_by_token_hash(&hash)?)).await?
    };
    let Some(operator) = operator else {
        return Ok(message_page(
            StatusCode::UNAUTHORIZED,
            "Not an operator token",
            "Check the token and sign in again.",
        ));
    };
    let (session, csrf) = (random_token(), random_token());
    let session_hash = token_hash(&session);
    let opened = ConsoleSession { operator, csrf, bootstrap_token_hash: bootstrap.then_some(hash) };
    state.console().call(move |console, now| Ok(console.start_console_session(&session_hash, &opened, now)?)).await?;
    let cookie = format!("{COOKIE}={session}; Path=/console; HttpOnly; SameSite=Lax{}", secure(&state));
    let mut answer = see_other("/console");
    answer.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).map_err(|_| ApiError::internal())?);
    Ok(answer)
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /console/sign-out`.
pub async fn sign_out(
    req: HttpRequest,
    form: credits_api::edge::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if let Some(session) = session_of(&req, &state).await?
        && same_token(&session.csrf, &form.csrf)
        && let Some(token) = cookie(&req, COOKIE)
    {
        let hash = token_hash(&token);
        state.console().call(move |console, _| Ok(console.end_console_session(&hash)?)).await?;
    }
    let mut answer = see_other("/console");
    answer.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("credits_console=; Path=/console; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    Ok(answer)
}

/// `GET /console/verifications` (sales): the pending requests, oldest first.
pub async fn verifications(
    req: HttpRequest,
    query: credits_api::edge::Query<NoticeQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let session = match gate(&req, &state, Role::Sales, None).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let queue = state
        .verifications()
        .call(move |verifications, _| {
            Ok(verifications.verification_queue(Some(VerificationStatus::Pending), 100, None)?)
        })
        .await?;
    let notice = match query.notice.as_deref() {
        Some("approved") => Some("Approved: the account may buy Business now, and it is mailed."),
        Some("rejected") => Some("Rejected: the account is mailed the reason."),
        _ => None,
    };
    let body = html! {
        @if queue.requests.is_empty() { p { "No request is waiting." } }
        @for r in &queue.requests {
            article class="request" {
                h2 { (r.request.company_name) }
                dl class="facts" {
                    dt { "Website" } dd { (r.request.website) }
                    dt { "Country" } dd { (r.request.country) }
                    dt { "Contact" } dd { (r.request.contact_name) " <" (r.request.contact_email) ">" }
                    dt { "Intended use" } dd { (r.request.intended_use) }
                    dt { "Account" } dd { code { (r.account_id) } }
                    dt { "Sent" } dd { (when(r.created_at)) }
                }
                form method="post" action=(format!("/console/verifications/{}/approve", r.id)) {
                    input type="hidden" name="csrf" value=(session.csrf);
                    button type="submit" { "Approve " (r.request.company_name) }
                }
                form method="post" action=(format!("/console/verifications/{}/reject", r.id)) {
                    input type="hidden" name="csrf" value=(session.csrf);
                    label for=(format!("reason-{}", r.id)) { "Reason for a rejection" }
                    input type="text" id=(format!("reason-{}", r.id)) name="reason" required;
                    button type="submit" class="secondary" { "Reject" }
                }
            }
        }
    };
    Ok(page(StatusCode::OK, frame(&session, "Verification queue", notice, body)))
}

#[derive(Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    csrf: String,
    reason: Option<String>,
}

async fn decide(
    req: HttpRequest,
    id: String,
    form: DecisionForm,
    state: web::Data<AppState>,
    approve: bool,
) -> Result<HttpResponse, ApiError> {
    let session = match gate(&req, &state, Role::Sales, Some(&form.csrf)).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let request: uuid::Uuid = credits_api::edge::path_id(&id, "business-verification request")?;
    let decision = if approve {
        Decision::Approve { note: None }
    } else {
        Decision::reject(form.reason.as_deref()).map_err(ApiError::invalid_parameters)?
    };
    let by = session.operator.clone();
    state
        .verifications()
        .call(move |verifications, now| Ok(verifications.decide_verification(&by, request, &decision, now)?))
        .await?;
    Ok(see_other(if approve {
        "/console/verifications?notice=approved"
    } else {
        "/console/verifications?notice=rejected"
    }))
}

/// `POST /console/verifications/{id}/approve`.
pub async fn approve(
    req: HttpRequest,
    path: web::Path<String>,
    form: credits_api::edge::Form<DecisionForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    decide(req, path.into_inner(), form.into_inner(), state, true).await
}

/// `POST /console/verifications/{id}/reject`.
pub async fn reject(
    req: HttpRequest,
    path: web::Path<String>,
    form: credits_api::edge::Form<DecisionForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    decide(req, path.into_inner(), form.into_inner(), state, false).await
}

#[derive(Deserialize)]
pub struct FindQuery {
    q: Option<String>,
}

/// `GET /console/accounts` (support): find an account by its id.
pub async fn accounts(
    req: HttpRequest,
    query: credits_api::edge::Query<FindQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let session = match gate(&req, &state, Role::Support, None).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let q = query.q.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let found = match q.clone() {
        None => None,
        Some(q) => {
            let by = session.operator.clone();
            Some(state.operators().call(move |operators, now| Ok(operators.find_accounts(&by, &q, now)?)).await?)
        }
    };
    if let Some([only]) = found.as_deref() {
        return Ok(see_other(&format!("/console/accounts/{}", only.id.0)));
    }
    let body = html! {
        form method="get" action="/console/accounts" {
            label for="q" { "Account id, email or Stripe customer id" }
            input type="search" id="q" name="q" required value=[q.as_deref()];
            button type="submit" { "Find" }
        }
        @if let Some(found) = &found {
            @if found.is_empty() { p { "No account matches." } }
            ul { @for a in found { li { a href=(format!("/console/accounts/{}", a.id.0)) { (a.name) } " — " (a.email) " (" (a.plan) ")" } } }
        }
    };
    Ok(page(StatusCode::OK, frame(&session, "Accounts", None, body)))
}

/// `GET /console/accounts/{id}` (support): the account, its credits and ledger, and the actions.
pub async fn account(
    req: HttpRequest,
    path: web::Path<String>,
    query: credits_api::edge::Query<NoticeQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let session = match gate(&req, &state, Role::Support, None).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let id: uuid::Uuid = credits_api::edge::path_id(&path, "account")?;
    let by = session.operator.clone();
    let (view, ledger, (runs, audit), team) = state
        .call(move |store, now| {
            let (operators, accounts, members): (
                &dyn credits_domain::ports::OperatorStore,
                &dyn credits_domain::ports::AccountStore,
                &dyn credits_domain::members::MemberStore,
            ) = (store, store, store);
            let view = operators.admin_account(&by, AccountId(id), now)?;
            let ledger = accounts.ledger(AccountId(id), &LedgerQuery { limit: 50, cursor: None })?;
            let team = members.members(AccountId(id), now)?;
            Ok((view, ledger, operators.account_activity(AccountId(id), 20)?, team))
        })
        .await?;
    let notice = match query.notice.as_deref() {
        Some("adjusted") => Some("The adjustment is in the ledger."),
        Some("restricted") => Some("The account is restricted."),
        Some("lifted") => Some("The restriction is lifted."),
        Some("contract") => Some("The Enterprise contract is set."),
        _ => None,
    };
    let a = &view.account;
    let body = html! {
        dl class="facts" {
            dt { "Name" } dd { (a.name) } dt { "Email" } dd { (a.email) }
            dt { "Plan" } dd { (a.plan) " (" (a.status.as_str()) ")" }
            dt { "Available" } dd id="available" { (view.balance.available.get()) }
            dt { "Held" } dd { (view.balance.held.get()) }
            dt { "Restricted" } dd { (if a.restricted { "yes" } else { "no" }) }
            @if let Some(v) = &a.business_verification { dt { "Business verification" } dd { (v.status) } }
        }
        section aria-labelledby="adjust-h" {
            h2 id="adjust-h" { "Adjust credits" }
            form method="post" action=(format!("/console/accounts/{id}/adjust")) {
                input type="hidden" name="csrf" value=(session.csrf);
                label for="credits" { "Credits (negative to take back)" }
                input type="number" id="credits" name="credits" required;
                label for="reason" { "Reason (kept in the ledger and the audit trail)" }
                input type="text" id="reason" name="reason" required;
                button type="submit" { "Adjust" }
            }
        }
        section aria-labelledby="restrict-h" {
            h2 id="restrict-h" { "Restriction" }
            form method="post" action=(format!("/console/accounts/{id}/{}", if a.restricted { "lift" } else { "restrict" })) {
                input type="hidden" name="csrf" value=(session.csrf);
                label for="restrict-reason" { "Reason" }
                input type="text" id="restrict-reason" name="reason" required;
                button type="submit" class="secondary" { (if a.restricted { "Lift the restriction" } else { "Restrict the account" }) }
            }
        }
        @if session.operator.role == Role::Admin {
            p { a href=(format!("/console/accounts/{id}/webhooks")) { "Webhook endpoints and deliveries" } }
            section aria-labelledby="contract-h" {
                h2 id="contract-h" { "Enterprise contract" }
                form method="post" action=(format!("/console/accounts/{id}/enterprise")) {
                    input type="hidden" name="csrf" value=(session.csrf);
                    label for="monthly_credits" { "Monthly credits" }
                    input type="number" id="monthly_credits" name="monthly_credits" min="1" required
                        value=[a.enterprise_contract.as_ref().map(|c| c.monthly_credits.get())];
                    label for="runs_per_minute" { "Runs per minute (empty: no limit)" }
                    input type="number" id="runs_per_minute" name="runs_per_minute" min="1";
                    button type="submit" { "Set the contract" }
                }
            }
        }
        section aria-labelledby="members-h" {
            h2 id="members-h" { "Members" }
            table {
                caption { "Who spends this account's credits (R24)" }
                thead { tr { th scope="col" { "Name" } th scope="col" { "Email" } th scope="col" { "Role" } th scope="col" { "Monthly cap" } th scope="col" { "Used this month" } } }
                tbody { @for m in &team {
                    tr class="member" {
                        td { (m.name) } td { (m.email) } td { (m.role.as_str()) }
                        td class="num" { (m.monthly_credit_limit.map(|l| l.get().to_string()).unwrap_or_else(|| "none".into())) }
                        td class="num" { (m.used_this_month.get()) }
                    }
                } }
            }
        }
        section aria-labelledby="buckets-h" {
            h2 id="buckets-h" { "Buckets" }
            table {
                thead { tr { th scope="col" { "Kind" } th scope="col" { "Granted" } th scope="col" { "Left" } th scope="col" { "Held" } th scope="col" { "Expires" } } }
                tbody { @for b in &view.balance.buckets {
                    tr { td { (b.kind.as_str()) } td class="num" { (b.granted.get()) } td class="num" { (b.remaining.get()) } td class="num" { (b.held.get()) }
                         td { (b.expires_at.map(when).unwrap_or_else(|| "never".into())) } }
                } }
            }
        }
        section aria-labelledby="runs-h" {
            h2 id="runs-h" { "Latest runs" }
            @if runs.is_empty() { p { "No runs." } }
            @else {
                table id="runs" {
                    thead { tr { th scope="col" { "When" } th scope="col" { "Model" } th scope="col" { "Status" } th scope="col" { "Channel" } th scope="col" { "Cost" } th scope="col" { "Captured" } } }
                    tbody { @for r in &runs {
                        tr { td { (when(r.created_at)) } td { (r.model) } td { (r.status) } td { (r.channel) } td class="num" { (r.cost.get()) }
                             td class="num" { (r.captured.map(|c| c.get().to_string()).unwrap_or_default()) } }
                    } }
                }
            }
        }
        section aria-labelledby="audit-h" {
            h2 id="audit-h" { "Audit trail" }
            table id="audit" {
                thead { tr { th scope="col" { "When" } th scope="col" { "Operator" } th scope="col" { "Action" } th scope="col" { "Details" } } }
                tbody { @for e in &audit {
                    tr { td { (when(e.at)) } td { (e.operator) " (" (e.role) ")" } td { (e.action) } td { code { (e.details) } } }
                } }
            }
        }
        section aria-labelledby="ledger-h" {
            h2 id="ledger-h" { "Ledger" }
            table id="ledger" {
                thead { tr { th scope="col" { "When" } th scope="col" { "Type" } th scope="col" { "Credits" } th scope="col" { "Reason" } } }
                tbody { @for e in &ledger.entries {
                    tr { td { (when(e.created_at)) } td { (e.entry_type.as_str()) } td class="num" { (e.credits.get()) } td { (e.reason.as_deref().unwrap_or("")) } }
                } }
            }
        }
    };
    Ok(page(StatusCode::OK, frame(&session, &format!("Account {}", a.name), notice, body)))
}

#[derive(Deserialize)]
pub struct AdjustForm {
    #[serde(default)]
    csrf: String,
    credits: i64,
    reason: String,
}

/// `POST /console/accounts/{id}/adjust` (support): the admin API's adjustment.
pub async fn adjust(
    req: HttpRequest,
    path: web::Path<String>,
    form: credits_api::edge::Form<AdjustForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let session = match gate(&req, &state, Role::Support, Some(&form.csrf)).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let id: uuid::Uuid = credits_api::edge::path_id(&path, "account")?;
    let (by, form) = (session.operator.clone(), form.into_inner());
    state
        .operators()
        .call_for(AccountId(id), move |operators, now| {
            let adjustment =
                Adjustment::new(form.credits, &form.reason, None, now).map_err(ApiError::invalid_parameters)?;
            Ok(operators.adjust(&by, AccountId(id), &adjustment, now, None).map(|_| ())?)
        })
        .await?;
    Ok(see_other(&format!("/console/accounts/{id}?notice=adjusted")))
}

#[derive(Deserialize)]
pub struct ReasonForm {
    #[serde(default)]
    csrf: String,
    reason: String,
}

/// `POST /console/accounts/{id}/restrict` and `/lift` (support): R19 by hand.
pub async fn restriction(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    form: credits_api::edge::Form<ReasonForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let session = match gate(&req, &state, Role::Support, Some(&form.csrf)).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let (raw, action) = path.into_inner();
    let id: uuid::Uuid = credits_api::edge::path_id(&raw, "account")?;
    let restrict = match action.as_str() {
        "restrict" => true,
        "lift" => false,
        _ => return Err(ApiError::not_found("no such action")),
    };
    let (by, reason) = (session.operator.clone(), form.into_inner().reason);
    state
        .operators()
        .call_for(AccountId(id), move |operators, now| {
            let done = if restrict {
                operators.restrict(&by, AccountId(id), &reason, now)
            } else {
                operators.lift_restriction(&by, AccountId(id), &reason, now)
            };
            Ok(done.map(|_| ())?)
        })
        .await?;
    Ok(see_other(&format!("/console/accounts/{id}?notice={}", if restrict { "restricted" } else { "lifted" })))
}
