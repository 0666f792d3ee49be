//! R24 and R27 on the billing page: owners and admins add members, change their role and cap,
//! and remove them, through the same use case as `/v1/members`. Every other role is refused
//! (403) before anything is read or changed.

use actix_web::{HttpRequest, HttpResponse, web};
use credits_api::ApiError;
use credits_api::members::change_of;
use credits_api::state::AppState;
use credits_domain::members::{MemberError, NewMember, PageAccess};
use serde::Deserialize;

use super::{after, optional_number, permitted};

#[derive(Deserialize)]
pub struct AddForm {
    #[serde(default)]
    csrf: String,
    email: String,
    name: String,
    role: String,
    monthly_credit_limit: Option<String>,
}

/// `POST /billing/members`: the member is emailed that they were added.
pub async fn add_member(
    req: HttpRequest,
    form: credits_api::edge::Form<AddForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let session = match permitted(&req, &state, &form.csrf, PageAccess::Members).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let form = form.into_inner();
    let account = session.account;
    let done = match optional_number("monthly_credit_limit", form.monthly_credit_limit.as_deref())
        .and_then(|limit| Ok(NewMember::new(&form.email, &form.name, &form.role, limit).map_err(MemberError::from)?))
    {
        Err(e) => Err(e),
        Ok(new) => {
            state
                .members()
                .call_for(account, move |members, now| Ok(members.add_member(account, &new, now).map(|_| ())?))
                .await
        }
    };
    after(&state, &session, done, "member-added").await
}

#[derive(Deserialize)]
pub struct ChangeForm {
    #[serde(default)]
    csrf: String,
    role: String,
    /// Empty: no cap.
    monthly_credit_limit: Option<String>,
}

/// `POST /billing/members/{id}`: the role and the cap as the form sets them (an empty cap: none).
pub async fn change_member(
    req: HttpRequest,
    path: web::Path<String>,
    form: credits_api::edge::Form<ChangeForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let session = match permitted(&req, &state, &form.csrf, PageAccess::Members).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let id: uuid::Uuid = credits_api::edge::path_id(&path, "member")?;
    let form = form.into_inner();
    let account = session.account;
    let change = optional_number("monthly_credit_limit", form.monthly_credit_limit.as_deref())
        .and_then(|limit| Ok(change_of(Some(&form.role), Some(limit))?));
    let done = match change {
        Err(e) => Err(e),
        Ok(change) => {
            state
                .members()
                .call_for(account, move |members, now| {
                    Ok(members.change_member(account, id, &change, now).map(|_| ())?)
                })
                .await
        }
    };
    after(&state, &session, done, "member-changed").await
}

#[derive(Deserialize)]
pub struct RemoveForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /billing/members/{id}/remove`.
pub async fn remove_member(
    req: HttpRequest,
    path: web::Path<String>,
    form: credits_api::edge::Form<RemoveForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let session = match permitted(&req, &state, &form.csrf, PageAccess::Members).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let id: uuid::Uuid = credits_api::edge::path_id(&path, "member")?;
    let account = session.account;
    let done =
        state.members().call_for(account, move |members, now| Ok(members.remove_member(account, id, now)?)).await;
    after(&state, &session, done, "member-removed").await
}
