//! Who is calling: the canvas backend (internal token + `X-Account-Id`), an API key, or an
//! operator. Judged first: a request without valid credentials is 401 before anything else.

use actix_web::HttpRequest;
use credits_domain::ids::AccountId;
use credits_domain::operator::{Operator, Role};
use credits_domain::runs::Channel;

use crate::edge::blocking;
use crate::error::ApiError;
use crate::state::{AppState, token_hash};

fn bearer(req: &HttpRequest) -> Result<&str, ApiError> {
    let header = req
        .headers()
        .get("Authorization")
        .ok_or_else(|| ApiError::unauthenticated("an Authorization: Bearer token is required"))?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::unauthenticated("the Authorization header is not readable"))?;
    let (scheme, token) = value.split_once(' ').ok_or_else(|| {
        ApiError::unauthenticated("the Authorization header must be 'Bearer <token>'")
    })?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::unauthenticated(
            "the Authorization header must be 'Bearer <token>'",
        ));
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
}

impl AccountCaller {
    /// Idempotency keys are the account's, whatever channel brings them (R11: keys of
    /// different accounts never meet).
    pub fn scope(&self) -> String {
        format!("account:{}", self.account)
    }
}

/// The canvas channel (`X-Account-Id`) or the api channel (an API key).
pub fn account(req: &HttpRequest, state: &AppState) -> Result<AccountCaller, ApiError> {
    let token = bearer(req)?;
    if token.starts_with("ck_") {
        // API keys arrive with the access issue; until then no key is valid.
        return Err(ApiError::unauthenticated("unknown API key"));
    }
    if !state.credentials.is_internal(&token_hash(token)) {
        return Err(ApiError::unauthenticated("the token is not valid here"));
    }
    let raw = req
        .headers()
        .get("X-Account-Id")
        .ok_or_else(|| ApiError::unauthenticated("the canvas channel needs X-Account-Id"))?;
    let account = raw
        .to_str()
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ApiError::not_found("no such account"))?;
    Ok(AccountCaller {
        account,
        channel: Channel::Canvas,
    })
}

/// The canvas channel only (API keys cannot manage keys or start checkouts).
pub fn canvas(req: &HttpRequest, state: &AppState) -> Result<AccountCaller, ApiError> {
    let caller = account(req, state)?;
    match caller.channel {
        Channel::Canvas => Ok(caller),
        Channel::Api { .. } => Err(ApiError::forbidden(
            "this route is for the canvas channel only",
        )),
    }
}

/// An operator with at least `role` (admin may do all).
pub async fn operator(
    req: &HttpRequest,
    state: &AppState,
    role: Role,
) -> Result<Operator, ApiError> {
    let token = bearer(req)?;
    let hash = token_hash(token);
    let operator = if state.credentials.is_bootstrap_admin(&hash) {
        Operator {
            id: None,
            name: "bootstrap-admin".into(),
            role: Role::Admin,
        }
    } else {
        let store = state.store.clone();
        blocking(move || Ok(store.operator_by_token_hash(&hash)?))
            .await?
            .ok_or_else(|| ApiError::unauthenticated("not an operator token"))?
    };
    if !operator.role.allows(role) {
        return Err(ApiError::forbidden(format!(
            "this needs the {} role",
            role.as_str()
        )));
    }
    Ok(operator)
}
