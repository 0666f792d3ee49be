//! Who is calling: the canvas backend (internal token + `X-Account-Id`), an API key, or an
//! operator. Judged first: a request without valid credentials is 401 before anything else.

use actix_web::HttpRequest;
use credits_domain::catalog::Capability;
use credits_domain::ids::AccountId;
use credits_domain::operator::{Operator, Role};
use credits_domain::runs::{Channel, Denial, KeyRef};

use crate::edge::blocking;
use crate::error::ApiError;
use crate::state::{AppState, token_hash};

/// Every API key starts so: 256 bits of randomness follow.
pub const API_KEY_PREFIX: &str = "ck_";

fn bearer(req: &HttpRequest) -> Result<&str, ApiError> {
    let header = req
        .headers()
        .get("Authorization")
        .ok_or_else(|| ApiError::unauthenticated("an Authorization: Bearer token is required"))?;
    let value = header.to_str().map_err(|_| ApiError::unauthenticated("the Authorization header is not readable"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthenticated("the Authorization header must be 'Bearer <token>'"))?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::unauthenticated("the Authorization header must be 'Bearer <token>'"));
    }
    Ok(token)
}

/// The canvas backend with no account named: only `POST /v1/accounts` takes it.
pub fn internal(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let token = bearer(req)?;
    if state.credentials.is_internal(&token_hash(token)) {
        Ok(())
    } else {
        Err(ApiError::unauthenticated("the token is not valid here"))
    }
}

/// A caller acting for one account, and how it came.
#[derive(Debug, Clone)]
pub struct AccountCaller {
    pub account: AccountId,
    pub channel: Channel,
    /// Whether the account's plan has API access now (always true on the canvas channel).
    pub api_access: bool,
    /// R25: the member it acts for: named by the canvas (`X-Member-Id`), or its API key's. Whether
    /// it is a current member of the account is judged where it is used, under the account's lock.
    pub member: Option<uuid::Uuid>,
}

impl AccountCaller {
    /// Idempotency keys are the account's, whatever channel brings them (R11: keys of
    /// different accounts never meet).
    pub fn scope(&self) -> String {
        format!("account:{}", self.account)
    }
}

/// The canvas channel (`X-Account-Id`) or the api channel (an API key). Judging the channel
/// itself (API access, capabilities) is left to the rules for runs, in SPEC's order, and to
/// [`reader`] for everything else.
pub async fn account(req: &HttpRequest, state: &AppState) -> Result<AccountCaller, ApiError> {
    let token = bearer(req)?;
    if token.starts_with(API_KEY_PREFIX) {
        let hash = token_hash(token);
        let key = state
            .keys()
            .call(move |keys, now| Ok(keys.api_key_by_hash(&hash, now)?))
            .await?
            .ok_or_else(|| ApiError::unauthenticated("unknown or revoked API key"))?;
        let plan = state.catalog.plan_or_free(&key.plan);
        // R8: a key holds the scopes chosen at its creation that the plan still has.
        let scopes = key.scopes.into_iter().filter(|c| plan.has(*c)).collect();
        let key_ref = KeyRef { id: key.key_id, monthly_credit_limit: key.monthly_credit_limit };
        let channel = Channel::Api { scopes, key: key_ref };
        return Ok(AccountCaller { account: key.account, channel, api_access: plan.api_access, member: key.member });
    }
    if !state.credentials.is_internal(&token_hash(token)) {
        return Err(ApiError::unauthenticated("the token is not valid here"));
    }
    let raw = req
        .headers()
        .get("X-Account-Id")
        .ok_or_else(|| ApiError::unauthenticated("the canvas channel needs X-Account-Id"))?;
    let account =
        raw.to_str().ok().and_then(|s| s.parse().ok()).ok_or_else(|| ApiError::not_found("no such account"))?;
    // R25: an id that names no member is refused as one that names another account's.
    let member = match req.headers().get("X-Member-Id") {
        None => None,
        Some(raw) => Some(
            raw.to_str()
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| ApiError::forbidden("X-Member-Id names no member of this account"))?,
        ),
    };
    Ok(AccountCaller { account, channel: Channel::Canvas, api_access: true, member })
}

/// R8 for the routes other than starting a run and quoting: the api channel needs a plan with
/// API access, checked against the account's plan at this request (a downgrade takes effect at
/// once). Completing and cancelling a run take this; R20 is judged with the run.
pub async fn caller(req: &HttpRequest, state: &AppState) -> Result<AccountCaller, ApiError> {
    let caller = account(req, state).await?;
    if !caller.api_access {
        return Err(Denial::ApiAccessRequired.into());
    }
    Ok(caller)
}

/// R20: through the api, reading needs `workflow:read`.
pub fn may_read(caller: &AccountCaller) -> Result<(), ApiError> {
    match &caller.channel {
        Channel::Api { scopes, .. } if !scopes.contains(&Capability::WorkflowRead) => {
            Err(Denial::CapabilityRequired { capability: Capability::WorkflowRead }.into())
        }
        _ => Ok(()),
    }
}

/// The read routes (`GET /v1/account`, `/v1/balance`, `/v1/ledger`, `/v1/trials`,
/// `/v1/runs/{id}`, …): [`caller`], and through the api the `workflow:read` scope (R20).
pub async fn reader(req: &HttpRequest, state: &AppState) -> Result<AccountCaller, ApiError> {
    let caller = caller(req, state).await?;
    may_read(&caller)?;
    Ok(caller)
}

/// The canvas channel only (API keys cannot manage keys or start checkouts).
pub async fn canvas(req: &HttpRequest, state: &AppState) -> Result<AccountCaller, ApiError> {
    let caller = account(req, state).await?;
    match caller.channel {
        Channel::Canvas => Ok(caller),
        Channel::Api { .. } => Err(ApiError::forbidden("this route is for the canvas channel only")),
    }
}

/// An operator with at least `role` (admin may do all).
pub async fn operator(req: &HttpRequest, state: &AppState, role: Role) -> Result<Operator, ApiError> {
    let token = bearer(req)?;
    let hash = token_hash(token);
    let operator = if state.credentials.is_bootstrap_admin(&hash) {
        Operator { id: None, name: "bootstrap-admin".into(), role: Role::Admin }
    } else {
        let store = state.store.clone();
        blocking(move || Ok(store.operator_by_token_hash(&hash)?))
            .await?
            .ok_or_else(|| ApiError::unauthenticated("not an operator token"))?
    };
    if !operator.role.allows(role) {
        return Err(ApiError::forbidden(format!("this needs the {} role", role.as_str())));
    }
    Ok(operator)
}
