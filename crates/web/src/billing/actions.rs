//! The billing page's forms beyond its settings: plans and packs through the checkout use case,
//! Stripe's portal, API keys, business verification and the ledger's CSV. Each checks the
//! session and its CSRF token first, then calls the same use case as the API.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use credits_domain::idempotency::Replayable;
use credits_domain::payments::ReturnUrls;
use credits_domain::verification::{RawRequest, VerificationRequest};
use serde::Deserialize;

use super::{Shown, after, checked, optional_number, page, permitted, read, refused_role, render_with, session_of};
use credits_api::ApiError;
use credits_api::apikeys::KeyRequest;
use credits_api::state::AppState;
use credits_domain::members::{KeyScope, PageAccess};

fn billing_url(state: &AppState, notice: &str) -> String {
    format!("{}/billing?notice={notice}", state.pages.public_url.trim_end_matches('/'))
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, location)).finish()
}

#[derive(Deserialize)]
pub struct PlanForm {
    #[serde(default)]
    csrf: String,
    plan: String,
}

/// `POST /billing/plan`: subscribe, change plan or resume, through the checkout use case; a new
/// subscription goes on to Stripe Checkout.
pub async fn change_plan(
    req: HttpRequest,
    form: credits_api::edge::Form<PlanForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let form = form.into_inner();
    checkout(&req, &state, &form.csrf, "plan", move |service, account, urls, now| {
        service.subscription(account, &form.plan, urls, None, now)
    })
    .await
}

type Service<'a> = credits_domain::payments::CheckoutService<
    'a,
    dyn credits_domain::ports::Store,
    dyn credits_domain::payments::PaymentGateway,
>;

/// A form that buys through the checkout use case: the browser goes on to the session's page, or
/// back to the billing page with `notice` (a change of a live plan), or sees the refusal.
async fn checkout<F>(
    req: &HttpRequest,
    state: &AppState,
    csrf: &str,
    notice: &'static str,
    buy: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnOnce(
            &Service<'_>,
            credits_domain::ids::AccountId,
            ReturnUrls,
            chrono::DateTime<chrono::Utc>,
        )
            -> Result<Replayable<credits_domain::payments::CheckoutView>, credits_domain::payments::PaymentError>
        + Send
        + 'static,
{
    let session = match permitted(req, state, csrf, PageAccess::Payments).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let account = session.account;
    let urls = ReturnUrls::new(&billing_url(state, notice), &billing_url(state, "checkout-cancelled"))?;
    let _inside = state.gate.enter(account).await?;
    let back = format!("/billing?notice={notice}");
    match state.checkout(move |service, now| Ok(buy(service, account, urls, now)?)).await {
        Ok(Replayable::Fresh(view)) => Ok(see_other(view.checkout_url.as_deref().unwrap_or(&back))),
        Ok(Replayable::Replay(_)) => Ok(see_other(&back)),
        Err(e) => after(state, &session, Err(e), "").await,
    }
}

#[derive(Deserialize)]
pub struct PackForm {
    #[serde(default)]
    csrf: String,
    pack: String,
}

/// `POST /billing/pack`: a pack through Stripe Checkout (which saves the card for auto top-up).
pub async fn buy_pack(
    req: HttpRequest,
    form: credits_api::edge::Form<PackForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let form = form.into_inner();
    checkout(&req, &state, &form.csrf, "paid", move |service, account, urls, now| {
        service.topup(account, &form.pack, urls, None, now)
    })
    .await
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /billing/portal`: Stripe's Customer Portal (cards, cancellation, invoices).
pub async fn portal(
    req: HttpRequest,
    form: credits_api::edge::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let session = match permitted(&req, &state, &form.csrf, PageAccess::Payments).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let account = session.account;
    let back = format!("{}/billing", state.pages.public_url.trim_end_matches('/'));
    match state.checkout(move |service, now| Ok(service.portal(account, &back, now)?)).await {
        Ok(view) => Ok(see_other(&view.url)),
        Err(e) => after(&state, &session, Err(e), "").await,
    }
}

#[derive(Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    csrf: String,
    name: String,
    monthly_credit_limit: Option<String>,
}

/// `POST /billing/api-keys`: a key with every API scope of the plan; its secret is on the page
/// this once (the answer is the page itself, never a redirect that would carry it).
pub async fn api_key(
    req: HttpRequest,
    form: credits_api::edge::Form<KeyForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let session = match checked(&req, &state, &form.csrf).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    // R27: owners and admins make the account's keys; a member makes their own.
    let Some(member) = session.role.keys(session.member).maker() else { return Ok(refused_role(&session)) };
    let form = form.into_inner();
    let made = match optional_number("monthly_credit_limit", form.monthly_credit_limit.as_deref()) {
        Err(e) => Err(e),
        Ok(limit) => {
            let asked = KeyRequest { name: form.name, scopes: None, monthly_credit_limit: limit, member };
            credits_api::apikeys::issue(&state, session.account, asked, None).await
        }
    };
    match made {
        Ok((_, secret)) => {
            let billing = read(&state, &session).await?;
            Ok(page(StatusCode::CREATED, render_with(&session, &billing, None, None, Some(Shown::ApiKey(&secret)))))
        }
        Err(e) => after(&state, &session, Err(e), "").await,
    }
}

/// `POST /billing/api-keys/{id}/revoke`.
pub async fn revoke_key(
    req: HttpRequest,
    path: web::Path<String>,
    form: credits_api::edge::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let session = match checked(&req, &state, &form.csrf).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let scope = session.role.keys(session.member);
    if scope == KeyScope::None {
        return Ok(refused_role(&session));
    }
    let id: uuid::Uuid = credits_api::edge::path_id(&path, "API key")?;
    let account = session.account;
    let done = state
        .keys()
        .call_for(account, move |keys, now| {
            // A member revokes only their own keys: another's is no key of theirs (404).
            if scope != KeyScope::Account
                && !keys.api_keys(account, now)?.iter().any(|k| k.id == id && scope.shows(k.member_id))
            {
                return Err(ApiError::not_found("no such API key of yours"));
            }
            Ok(keys.revoke_api_key(account, id, now)?)
        })
        .await;
    after(&state, &session, done, "revoked").await
}

#[derive(Deserialize)]
pub struct VerificationForm {
    #[serde(default)]
    csrf: String,
    company_name: String,
    website: String,
    country: String,
    tax_id: Option<String>,
    contact_name: String,
    contact_email: String,
    intended_use: String,
}

/// `POST /billing/verification`: the business-verification request (SPEC section 6).
pub async fn submit_verification(
    req: HttpRequest,
    form: credits_api::edge::Form<VerificationForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let session = match permitted(&req, &state, &form.csrf, PageAccess::Payments).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let f = form.into_inner();
    let request = VerificationRequest::new(RawRequest {
        company_name: f.company_name,
        website: f.website,
        country: f.country,
        tax_id: f.tax_id.filter(|t| !t.trim().is_empty()),
        contact_name: f.contact_name,
        contact_email: f.contact_email,
        intended_use: f.intended_use,
        expected_monthly_credits: None,
    })
    .map_err(ApiError::invalid_parameters);
    let (account, mail, clock) = (session.account, state.mail.clone(), state.clock.clone());
    let done = match request {
        Err(e) => Err(e),
        Ok(request) => {
            let store = state.store.clone();
            let _inside = state.gate.enter(account).await?;
            credits_api::edge::blocking(move || {
                Ok(store.submit_verification(account, &request, &mail, clock.now()?, None).map(|_| ())?)
            })
            .await
        }
    };
    after(&state, &session, done, "verification").await
}

/// `GET /billing/ledger.csv`: the last 30 days of the ledger, as the export streams it.
pub async fn ledger_csv(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match session_of(&req, &state).await? {
        Err(answer) => Ok(answer),
        Ok(session) if !session.role.may(PageAccess::Usage) => Ok(refused_role(&session)),
        Ok(session) => credits_api::reports::ledger_csv(&state, session.account, None, None).await,
    }
}

/// `POST /billing/webhook-endpoints`: a new endpoint (section 9), its secret on the answer, once.
/// The form repeats `events`, so the body is read pair by pair.
pub async fn create_endpoint(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    credits_api::edge::checked_pairs(&body)?;
    let (mut csrf, mut url, mut events) = (String::new(), String::new(), Vec::new());
    for (k, v) in url::form_urlencoded::parse(&body) {
        match k.as_ref() {
            "csrf" => csrf = v.into_owned(),
            "url" => url = v.into_owned(),
            "events" => events.push(v.into_owned()),
            _ => {}
        }
    }
    let session = match permitted(&req, &state, &csrf, PageAccess::WebhookEndpoints).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let done = credits_api::notify::create(&state, session.account, &url, events, None).await.map(|(_, secret)| secret);
    match done {
        Ok(secret) => {
            let billing = read(&state, &session).await?;
            Ok(page(
                StatusCode::CREATED,
                render_with(&session, &billing, None, None, Some(Shown::WebhookSecret(&secret))),
            ))
        }
        Err(e) => after(&state, &session, Err(e), "").await,
    }
}

/// `POST /billing/webhook-endpoints/{id}/delete`.
pub async fn delete_endpoint(
    req: HttpRequest,
    path: web::Path<String>,
    form: credits_api::edge::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let session = match permitted(&req, &state, &form.csrf, PageAccess::WebhookEndpoints).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let id: uuid::Uuid = credits_api::edge::path_id(&path, "webhook endpoint")?;
    let account = session.account;
    let done = state.notify(account, true, move |notify, _| notify.delete_endpoint(account, id)).await;
    after(&state, &session, done, "endpoint-deleted").await
}
