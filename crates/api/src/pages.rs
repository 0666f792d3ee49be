//! The billing page's one-time link (SPEC section 8): a JSON route of the canvas. The pages
//! themselves are `credits-web`'s.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth;
use crate::edge::{json_value, typed};
use crate::error::ApiError;
use crate::state::{AppState, new_token, token_hash};

/// `POST /v1/billing-page-sessions`: a link the canvas opens for the account.
#[derive(Serialize, ToSchema)]
pub struct BillingPageLink {
    /// Opens the billing page once, within 5 minutes.
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// R27: the member the page acts as (their role decides what it shows and allows); left out,
/// the account's first owner.
#[derive(serde::Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct BillingPageRequest {
    member_id: Option<uuid::Uuid>,
}

#[utoipa::path(post, path = "/v1/billing-page-sessions", operation_id = "createBillingPageSession", summary = "A one-time link to the account's billing page", tag = "pages",
    request_body(content = Option<BillingPageRequest>, description = "optional: the member the page acts as (R27)"),
    responses((status = 201, description = "a link that opens the billing page once, within 5 minutes, for this account alone", body = BillingPageLink),
        (status = 403, description = "FORBIDDEN: `member_id` names no current member of this account", body = crate::error::ErrorBody)),
    security(("canvas" = [])))]
pub async fn create_link(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::canvas(&req, &state).await?;
    let asked: BillingPageRequest = if body.iter().all(u8::is_ascii_whitespace) {
        BillingPageRequest::default()
    } else {
        typed(&json_value(&body)?)?
    };
    let (account, member) = (caller.account, asked.member_id);
    if let Some(id) = member {
        let found = state.members().call(move |members, _| Ok(members.current_member(account, id)?)).await?;
        if found.is_none() {
            return Err(ApiError::forbidden("member_id names no current member of this account"));
        }
    }
    let token = new_token("");
    let hash = token_hash(&token);
    let expires_at =
        state.page_links().call(move |links, now| Ok(links.create_page_link(account, member, &hash, now)?)).await?;
    let url = format!("{}/billing/open?token={token}", state.pages.public_url.trim_end_matches('/'));
    Ok(HttpResponse::Created().json(BillingPageLink { url, expires_at }))
}
