//! The console's admin pages: operators (create — the token shown once —, revoke), failed Stripe
//! events (apply again), the test clock (test mode only), and Enterprise contracts (on an
//! account's page). Each is the admin API's use case, recorded in the audit trail where the API's
//! is.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use credits_domain::ids::AccountId;
use credits_domain::operator::{ContractTerms, Role};
use maud::html;
use serde::Deserialize;

use super::{CsrfForm, NoticeQuery, frame, gate, see_other};
use crate::layout::{message_page, page, when};
use credits_api::ApiError;
use credits_api::state::{AppState, token_hash};

/// `GET /console/operators` (admin).
pub async fn operators(
    req: HttpRequest,
    query: credits_api::edge::Query<NoticeQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let session = match gate(&req, &state, Role::Admin, None).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let list = state.operators().call(move |operators, _| Ok(operators.operators()?)).await?;
    let notice = (query.notice.as_deref() == Some("revoked")).then_some("Revoked: its token is refused from now on.");
    let body = html! {
        table {
            thead { tr { th scope="col" { "Name" } th scope="col" { "Role" } th scope="col" { "Since" } th scope="col" { "Status" } } }
            tbody { @for o in &list {
                tr class="operator" {
                    td { (o.name) } td { (o.role.as_str()) } td { (when(o.created_at)) }
                    td {
                        @if let Some(at) = o.revoked_at { "revoked " (when(at)) }
                        @else {
                            form method="post" action=(format!("/console/operators/{}/revoke", o.id)) {
                                input type="hidden" name="csrf" value=(session.csrf);
                                button type="submit" class="secondary" aria-label=(format!("Revoke {}", o.name)) { "Revoke" }
                            }
                        }
                    }
                }
            } }
        }
        section aria-labelledby="new-op-h" {
            h2 id="new-op-h" { "New operator" }
            form method="post" action="/console/operators" {
                input type="hidden" name="csrf" value=(session.csrf);
                label for="op-name" { "Name" } input type="text" id="op-name" name="name" required maxlength="100";
                label for="op-role" { "Role" }
                select id="op-role" name="role" { option value="sales" { "sales" } option value="support" { "support" } option value="admin" { "admin" } }
                button type="submit" { "Create" }
            }
        }
    };
    Ok(page(StatusCode::OK, frame(&session, "Operators", notice, body)))
}

#[derive(Deserialize)]
pub struct NewOperator {
    #[serde(default)]
    csrf: String,
    name: String,
    role: String,
}

/// `POST /console/operators` (admin): the token is on this answer, once (only its hash is kept).
pub async fn create_operator(
    req: HttpRequest,
    form: credits_api::edge::Form<NewOperator>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let session = match gate(&req, &state, Role::Admin, Some(&form.csrf)).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let form = form.into_inner();
    let role =
        Role::parse(&form.role).ok_or_else(|| ApiError::invalid_parameters("role must be sales, support or admin"))?;
    let name = credits_domain::operator::operator_name(&form.name).map_err(ApiError::invalid_parameters)?.to_string();
    let token = credits_api::state::new_token(credits_api::state::OPERATOR_TOKEN_PREFIX);
    let hash = token_hash(&token);
    let made =
        state.operators().call(move |operators, now| Ok(operators.create_operator(&name, role, &hash, now)?)).await?;
    let body = html! {
        div class="secret" role="status" {
            p { strong { "The token of " (made.name) " (" (role.as_str()) "): copy it now, it is shown this once." } }
            code id="new-token" { (token) }
        }
        p { a href="/console/operators" { "Back to the operators" } }
    };
    Ok(page(StatusCode::CREATED, frame(&session, "Operator created", None, body)))
}

/// `POST /console/operators/{id}/revoke` (admin).
pub async fn revoke_operator(
    req: HttpRequest,
    path: web::Path<String>,
    form: credits_api::edge::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if let Err(answer) = gate(&req, &state, Role::Admin, Some(&form.csrf)).await? {
        return Ok(answer);
    }
    let id: uuid::Uuid = credits_api::edge::path_id(&path, "operator")?;
    state.operators().call(move |operators, now| Ok(operators.revoke_operator(id, now)?)).await?;
    Ok(see_other("/console/operators?notice=revoked"))
}

/// `GET /console/stripe-events` (admin): the events the configuration could not apply.
pub async fn stripe_events(
    req: HttpRequest,
    query: credits_api::edge::Query<NoticeQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let session = match gate(&req, &state, Role::Admin, None).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let failed = state.purchases().call(move |purchases, _| Ok(purchases.failed_stripe_events(100)?)).await?;
    let notice = (query.notice.as_deref() == Some("applied")).then_some("The event is applied.");
    let body = html! {
        @if failed.is_empty() { p { "No failed event." } }
        @else {
            table {
                thead { tr { th scope="col" { "Event" } th scope="col" { "Type" } th scope="col" { "Error" } th scope="col" { "Tries" } th scope="col" { span class="visually-hidden" { "Actions" } } } }
                tbody { @for e in &failed {
                    tr {
                        td { code { (e.id) } } td { (e.event_type) } td { (e.error.as_deref().unwrap_or("")) } td class="num" { (e.attempts) }
                        td { form method="post" action=(format!("/console/stripe-events/{}/reprocess", e.id)) {
                            input type="hidden" name="csrf" value=(session.csrf);
                            button type="submit" { "Apply again" }
                        } }
                    }
                } }
            }
        }
    };
    Ok(page(StatusCode::OK, frame(&session, "Failed Stripe events", notice, body)))
}

/// `POST /console/stripe-events/{id}/reprocess` (admin): as `POST /admin/v1/stripe-events/{id}/reprocess`.
pub async fn reprocess(
    req: HttpRequest,
    path: web::Path<String>,
    form: credits_api::edge::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let session = match gate(&req, &state, Role::Admin, Some(&form.csrf)).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    match credits_api::admin::apply_again(&state, &session.operator, path.into_inner()).await {
        Ok(_) => Ok(see_other("/console/stripe-events?notice=applied")),
        Err(e) => Ok(message_page(e.status, "Not applied", &e.message)),
    }
}

/// `GET /console/clock` (admin, test mode).
pub async fn clock(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let session = match gate(&req, &state, Role::Admin, None).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let Some(clock) = state.test_clock.clone() else {
        return Ok(page(
            StatusCode::OK,
            frame(&session, "Test clock", None, html! { p { "The test clock is off (clock.mode = \"system\")." } }),
        ));
    };
    let now = credits_api::edge::blocking(move || Ok(clock.now()?)).await?;
    let body = html! {
        p { "Now, by the test clock: " strong id="clock-now" { (when(now)) } }
        form method="post" action="/console/clock" {
            input type="hidden" name="csrf" value=(session.csrf);
            label for="days" { "Move forward by (days)" }
            input type="number" id="days" name="days" min="0" max="3660" required;
            button type="submit" { "Move the clock" }
        }
    };
    Ok(page(StatusCode::OK, frame(&session, "Test clock", None, body)))
}

#[derive(Deserialize)]
pub struct AdvanceForm {
    #[serde(default)]
    csrf: String,
    days: i64,
}

/// `POST /console/clock` (admin, test mode): as `POST /admin/v1/test-clock`.
pub async fn advance(
    req: HttpRequest,
    form: credits_api::edge::Form<AdvanceForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if let Err(answer) = gate(&req, &state, Role::Admin, Some(&form.csrf)).await? {
        return Ok(answer);
    }
    credits_api::admin::advance_clock(&state, form.days.saturating_mul(86_400)).await?;
    Ok(see_other("/console/clock"))
}

#[derive(Deserialize)]
pub struct ContractForm {
    #[serde(default)]
    csrf: String,
    monthly_credits: i64,
    runs_per_minute: Option<String>,
}

/// `POST /console/accounts/{id}/enterprise` (admin): as `PUT /admin/v1/accounts/{id}/enterprise`.
pub async fn enterprise(
    req: HttpRequest,
    path: web::Path<String>,
    form: credits_api::edge::Form<ContractForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let session = match gate(&req, &state, Role::Admin, Some(&form.csrf)).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let id: uuid::Uuid = credits_api::edge::path_id(&path, "account")?;
    let form = form.into_inner();
    let rpm = match form.runs_per_minute.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => {
            Some(s.parse::<i64>().map_err(|_| ApiError::invalid_parameters("runs_per_minute must be a whole number"))?)
        }
    };
    let terms = ContractTerms::new(form.monthly_credits, rpm).map_err(ApiError::invalid_parameters)?;
    let by = session.operator.clone();
    state
        .operators()
        .call_for(AccountId(id), move |operators, now| {
            Ok(operators.set_enterprise(&by, AccountId(id), terms, now).map(|_| ())?)
        })
        .await?;
    Ok(see_other(&format!("/console/accounts/{id}?notice=contract")))
}

/// `GET /console/mail` (admin): the mails given up, each with Send again.
pub async fn dead_mail(
    req: HttpRequest,
    query: credits_api::edge::Query<NoticeQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let session = match gate(&req, &state, Role::Admin, None).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let dead = state.operators().call(move |operators, _| Ok(operators.dead_mail(100)?)).await?;
    let notice = (query.notice.as_deref() == Some("resent"))
        .then_some("Back in the outbox: it is sent on the mail worker's next round.");
    let body = html! {
        @if dead.is_empty() { p { "No dead mail." } }
        @else {
            table id="dead-mail" {
                thead { tr { th scope="col" { "Created" } th scope="col" { "Kind" } th scope="col" { "To" } th scope="col" { "Tries" } th scope="col" { "Last error" } th scope="col" { span class="visually-hidden" { "Actions" } } } }
                tbody { @for m in &dead {
                    tr {
                        td { (when(m.created_at)) } td { (m.kind) } td { (m.recipient) } td class="num" { (m.attempts) } td { (m.last_error.as_deref().unwrap_or("")) }
                        td { form method="post" action=(format!("/console/mail/{}/resend", m.id)) {
                            input type="hidden" name="csrf" value=(session.csrf);
                            button type="submit" aria-label=(format!("Send again to {}", m.recipient)) { "Send again" }
                        } }
                    }
                } }
            }
        }
    };
    Ok(page(StatusCode::OK, frame(&session, "Dead mail", notice, body)))
}

/// `POST /console/mail/{id}/resend` (admin).
pub async fn resend_mail(
    req: HttpRequest,
    path: web::Path<String>,
    form: credits_api::edge::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let session = match gate(&req, &state, Role::Admin, Some(&form.csrf)).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let id: uuid::Uuid = credits_api::edge::path_id(&path, "mail")?;
    let by = session.operator.clone();
    if !state.operators().call(move |operators, now| Ok(operators.resend_mail(&by, id, now)?)).await? {
        return Err(ApiError::not_found("no dead mail with that id"));
    }
    Ok(see_other("/console/mail?notice=resent"))
}

/// `GET /console/accounts/{id}/webhooks` (admin): the account's webhook endpoints and each one's
/// latest delivery attempts (section 9), as the account's `GET …/deliveries` lists them. Opening
/// it is an account read in the audit trail, as the account page is.
pub async fn webhook_deliveries(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let session = match gate(&req, &state, Role::Admin, None).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let id: uuid::Uuid = credits_api::edge::path_id(&path, "account")?;
    let by = session.operator.clone();
    let (name, endpoints) = state
        .call(move |store, now| {
            let (operators, notify): (
                &dyn credits_domain::ports::OperatorStore,
                &dyn credits_domain::notify::store::NotifyStore,
            ) = (store, store);
            let view = operators.admin_account(&by, AccountId(id), now)?;
            let mut endpoints = Vec::new();
            for e in notify.endpoints(AccountId(id))? {
                let attempts = notify.deliveries(AccountId(id), e.id, 20)?;
                endpoints.push((e, attempts));
            }
            Ok((view.account.name, endpoints))
        })
        .await?;
    let body = html! {
        p { "Account " a href=(format!("/console/accounts/{id}")) { (name) } }
        @if endpoints.is_empty() { p { "No webhook endpoints." } }
        @for (e, attempts) in &endpoints {
            section class="endpoint" aria-label=(format!("Endpoint {}", e.url)) {
                h2 { code { (e.url) } }
                dl class="facts" {
                    dt { "Events" } dd { (e.events.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")) }
                    dt { "Since" } dd { (when(e.created_at)) }
                    @if let Some(at) = e.disabled_at { dt { "Disabled" } dd { (when(at)) " (every attempt failed for 5 days)" } }
                    @else if let Some(at) = e.failing_since { dt { "Failing since" } dd { (when(at)) } }
                }
                @if attempts.is_empty() { p { "Nothing sent yet." } }
                @else {
                    table class="deliveries" {
                        caption { "The latest attempts, newest first" }
                        thead { tr { th scope="col" { "Event" } th scope="col" { "Type" } th scope="col" { "Status" } th scope="col" { "Answer" } th scope="col" { "Tried" } th scope="col" { "Next try" } } }
                        tbody { @for d in attempts {
                            tr {
                                td { code { (d.event_id) } } td { (d.event_type.as_str()) } td { (d.status) }
                                td { (d.response_code.map(|c| c.to_string()).or_else(|| d.error.clone()).unwrap_or_default()) }
                                td { (d.attempted_at.map(when).unwrap_or_default()) }
                                td { (d.next_attempt_at.map(when).unwrap_or_default()) }
                            }
                        } }
                    }
                }
            }
        }
    };
    Ok(page(StatusCode::OK, frame(&session, "Webhook deliveries", None, body)))
}

/// `GET /console/reports/liability` (admin): the liability report now (section 10), as
/// `GET /admin/v1/reports/liability` answers it.
pub async fn liability(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let session = match gate(&req, &state, Role::Admin, None).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let report = credits_api::reports::liability_at(&state, None).await?;
    let currency = report.currency.clone().unwrap_or_default();
    let value = |v: i64| crate::layout::money(v, &currency);
    let o = &report.outstanding;
    let body = html! {
        p { "As of " (when(report.at)) "." }
        table id="outstanding" {
            caption { "Outstanding credits and their value" }
            thead { tr { th scope="col" { "Kind" } th scope="col" { "Credits" } th scope="col" { "Value" } } }
            tbody {
                tr { th scope="row" { "Paid" } td class="num" { (o.paid.credits) } td class="num" { (value(o.paid.value)) } }
                tr { th scope="row" { "Promotional" } td class="num" { (o.promotional.credits) } td class="num" { (value(o.promotional.value)) } }
                tr { th scope="row" { "In all" } td class="num" { (o.credits) } td class="num" { (value(o.value)) } }
            }
        }
        table id="expiring" {
            caption { "Expiring" }
            thead { tr { th scope="col" { "Within" } th scope="col" { "Credits" } th scope="col" { "Value" } } }
            tbody {
                @for (label, a) in [("30 days", &report.expiring.next_30_days), ("60 days", &report.expiring.next_60_days), ("90 days", &report.expiring.next_90_days)] {
                    tr { th scope="row" { (label) } td class="num" { (a.credits) } td class="num" { (value(a.value)) } }
                }
            }
        }
        table id="months" {
            caption { "Month by month" }
            thead { tr { th scope="col" { "Month" } th scope="col" { "Granted" } th scope="col" { "Used" } th scope="col" { "Expired" } th scope="col" { "Clawed back" } } }
            tbody { @for m in &report.months {
                tr { th scope="row" { (m.month) } td class="num" { (m.granted.credits) } td class="num" { (m.used.credits) } td class="num" { (m.expired.credits) } td class="num" { (m.clawed_back.credits) } }
            } }
        }
        p { "Values are what the credits were sold for; promotional credits were given. The same report as JSON: " code { "GET /admin/v1/reports/liability?at=" } "." }
    };
    Ok(page(StatusCode::OK, frame(&session, "Liability", None, body)))
}
