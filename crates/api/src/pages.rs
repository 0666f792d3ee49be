//! The billing page's one-time link (SPEC section 8): a JSON route of the canvas. The pages
//! themselves are `credits-web`'s.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth;
use crate::error::ApiError;
use crate::state::{AppState, new_token, token_hash};

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
    let token = new_token("");
    let hash = token_hash(&token);
    let expires_at =
        state.page_links().call(move |links, now| Ok(links.create_page_link(caller.account, &hash, now)?)).await?;
    let url = format!("{}/billing/open?token={token}", state.pages.public_url.trim_end_matches('/'));
    Ok(HttpResponse::Created().json(BillingPageLink { url, expires_at }))
}
