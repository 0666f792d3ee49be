//! `POST, GET, DELETE /v1/api-keys` (canvas channel only): keys are shown once, stored as hashes.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use credits_domain::apikey::{NewApiKey, credit_limit};
use credits_domain::error::ApiKeyError;
use credits_domain::idempotency::Replayable;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::{self, API_KEY_PREFIX};
use crate::edge::{idempotency_key, json_value, path_id, respond, typed};
use crate::error::ApiError;
use crate::state::{AppState, token_hash};

/// A new key: a name, and scopes within the plan's API capabilities (all of them if left out).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    name: String,
    #[schema(example = json!(["workflow:read", "workflow:run"]))]
    scopes: Option<Vec<String>>,
    /// R21: credits its runs may hold or capture a calendar month (UTC); null or absent: no cap.
    monthly_credit_limit: Option<i64>,
    /// R25: the member the key belongs to (its runs are theirs, and answer to their cap too).
    member_id: Option<uuid::Uuid>,
}

/// R21: a key's new monthly credit limit (null removes the cap).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchApiKey {
    #[serde(deserialize_with = "present")]
    monthly_credit_limit: Option<i64>,
}

/// The field must be there (null is a value: no cap).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Option::<i64>::deserialize(d)
}

/// `ck_` and 256 bits of randomness (64 hex digits).
fn new_secret() -> String {
    crate::state::new_token(API_KEY_PREFIX)
}

/// What an account asks for when it makes a key (the JSON API's body, the billing page's form).
pub struct KeyRequest {
    pub name: String,
    pub scopes: Option<Vec<String>>,
    pub monthly_credit_limit: Option<i64>,
    pub member: Option<uuid::Uuid>,
}

/// The use case of making an API key, for the API and the billing page alike: the secret drawn,
/// only its hash kept, the account's gate taken, the store asked. Returns the answer and the
/// secret (shown once, on a fresh answer).
pub async fn issue(
    state: &AppState,
    account: credits_domain::ids::AccountId,
    asked: KeyRequest,
    idem: Option<credits_domain::idempotency::IdempotencyKey>,
) -> Result<(Replayable<credits_domain::apikey::ApiKeyView>, String), ApiError> {
    let secret = new_secret();
    let key = NewApiKey {
        name: asked.name,
        requested_scopes: asked.scopes,
        monthly_credit_limit: credit_limit(asked.monthly_credit_limit).map_err(ApiKeyError::Refused)?,
        member: asked.member,
        secret_hash: token_hash(&secret),
        prefix: secret[..API_KEY_PREFIX.len() + 8].to_string(),
    };
    let _inside = state.gate.enter(account).await?;
    let result =
        state.keys().call(move |keys, now| Ok(keys.create_api_key(account, &key, now, idem.as_ref())?)).await?;
    Ok((result, secret))
}

#[utoipa::path(post, path = "/v1/api-keys", operation_id = "createApiKey", summary = "Create an API key; its secret is shown once", tag = "api keys", request_body = CreateApiKey,
    params(("Idempotency-Key" = Option<String>, Header, description = "R11")),
    responses((status = 201, description = "the key, with its secret `key` shown this once (a replay shows it no more)", body = crate::schemas::CreatedApiKey),
        (status = 403, description = "API_ACCESS_REQUIRED, CAPABILITY_REQUIRED, or FORBIDDEN on the api channel", body = crate::error::ErrorBody)),
    security(("canvas" = [])))]
pub async fn create(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = auth::canvas(&req, &state).await?;
    let value = json_value(&body)?;
    let input: CreateApiKey = typed(&value)?;
    let idem = idempotency_key(&req, caller.scope(), &value, StatusCode::CREATED)?;
    let asked = KeyRequest {
        name: input.name,
        scopes: input.scopes,
        monthly_credit_limit: input.monthly_credit_limit,
        member: input.member_id,
    };
    let (result, secret) = issue(&state, caller.account, asked, idem).await?;
    Ok(match result {
        Replayable::Fresh(view) => HttpResponse::Created().json(crate::schemas::CreatedApiKey::new(view, secret)),
        replay => respond(StatusCode::CREATED, replay),
    })
}

#[utoipa::path(get, path = "/v1/api-keys", operation_id = "listApiKeys", summary = "The account's live API keys", tag = "api keys",
    responses((status = 200, description = "the account's live keys, without their secrets", body = crate::schemas::ApiKeyList)),
    security(("canvas" = [])))]
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = auth::canvas(&req, &state).await?;
    let keys = state.keys().call(move |keys, now| Ok(keys.api_keys(caller.account, now)?)).await?;
    Ok(HttpResponse::Ok().json(crate::schemas::ApiKeyList { api_keys: keys }))
}

#[utoipa::path(delete, path = "/v1/api-keys/{id}", operation_id = "revokeApiKey", summary = "Revoke an API key at once", tag = "api keys",
    params(("id" = String, Path, description = "the key's id")),
    responses((status = 204, description = "revoked: the key stops working at once"),
        (status = 404, description = "no such key of this account", body = crate::error::ErrorBody)),
    security(("canvas" = [])))]
pub async fn revoke(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::canvas(&req, &state).await?;
    let id: uuid::Uuid = path_id(&path, "API key")?;
    state.keys().call(move |keys, now| Ok(keys.revoke_api_key(caller.account, id, now)?)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(patch, path = "/v1/api-keys/{id}", operation_id = "updateApiKey", summary = "Set or remove an API key's monthly credit limit", tag = "api keys",
    request_body = PatchApiKey,
    params(("id" = String, Path, description = "the key's id")),
    responses((status = 200, description = "the key with its new monthly_credit_limit and used_this_month", body = credits_domain::apikey::ApiKeyView),
        (status = 404, description = "no such key of this account", body = crate::error::ErrorBody),
        (status = 422, description = "INVALID_PARAMETERS: not a positive whole number or null", body = crate::error::ErrorBody)),
    security(("canvas" = [])))]
pub async fn patch(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::canvas(&req, &state).await?;
    let id: uuid::Uuid = path_id(&path, "API key")?;
    let input: PatchApiKey = typed(&json_value(&body)?)?;
    let limit = credit_limit(input.monthly_credit_limit).map_err(ApiKeyError::Refused)?;
    let view = state.keys().call(move |keys, now| Ok(keys.set_key_limit(caller.account, id, limit, now)?)).await?;
    Ok(HttpResponse::Ok().json(view))
}
