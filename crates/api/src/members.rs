//! R24: `POST, GET /v1/members`, `PATCH, DELETE /v1/members/{id}` (canvas channel): the people
//! who spend the account's credits, their roles and their monthly caps.

use actix_web::{HttpRequest, HttpResponse, web};
use credits_domain::members::{MemberChange, MemberError, NewMember, credit_limit, role};
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

use crate::auth;
use crate::edge::{json_value, path_id, typed};
use crate::error::ApiError;
use crate::state::AppState;

/// A new member.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMember {
    #[schema(example = "ana@example.com")]
    email: String,
    name: String,
    /// `owner`, `admin`, `billing` or `member`.
    #[schema(example = "member")]
    role: String,
    /// R26: credits their runs may hold or capture a calendar month (UTC); null or absent: no cap.
    monthly_credit_limit: Option<i64>,
}

/// A change of a member: a field left out is kept; `monthly_credit_limit: null` removes the cap.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchMember {
    role: Option<String>,
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<i64>)]
    monthly_credit_limit: Option<Option<i64>>,
}

/// A field given (even as null) is `Some`; absent stays `None` (`#[serde(default)]`).
fn given<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

/// `GET /v1/members`.
#[derive(serde::Serialize, ToSchema)]
pub struct MemberList {
    pub members: Vec<credits_domain::members::MemberView>,
}

#[utoipa::path(post, path = "/v1/members", operation_id = "addMember", summary = "Add a member to the account", tag = "members",
    request_body = CreateMember,
    responses((status = 201, description = "the member; they are emailed that they were added", body = credits_domain::members::MemberView),
        (status = 403, description = "TEAM_SIZE_LIMIT: the plan's `max_members` are there (`limit`, `plan`)", body = crate::error::ErrorBody),
        (status = 409, description = "CONFLICT: the email is a current member already", body = crate::error::ErrorBody),
        (status = 422, description = "INVALID_PARAMETERS: an email, role or limit that is not one", body = crate::error::ErrorBody)),
    security(("canvas" = [])))]
pub async fn add(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = auth::canvas(&req, &state).await?;
    let input: CreateMember = typed(&json_value(&body)?)?;
    let new = NewMember::new(&input.email, &input.name, &input.role, input.monthly_credit_limit)
        .map_err(MemberError::from)?;
    let account = caller.account;
    let view =
        state.members().call_for(account, move |members, now| Ok(members.add_member(account, &new, now)?)).await?;
    Ok(HttpResponse::Created().json(view))
}

#[utoipa::path(get, path = "/v1/members", operation_id = "listMembers", summary = "The account's current members", tag = "members",
    responses((status = 200, description = "the current members, the first owner first, each with `used_this_month`", body = MemberList)),
    security(("canvas" = [])))]
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = auth::canvas(&req, &state).await?;
    let account = caller.account;
    let members = state.members().call(move |members, now| Ok(members.members(account, now)?)).await?;
    Ok(HttpResponse::Ok().json(MemberList { members }))
}

/// A member change as asked, checked.
pub fn change_of(role_name: Option<&str>, limit: Option<Option<i64>>) -> Result<MemberChange, MemberError> {
    Ok(MemberChange {
        role: role_name.map(role).transpose()?,
        monthly_credit_limit: limit.map(credit_limit).transpose()?,
    })
}

#[utoipa::path(patch, path = "/v1/members/{id}", operation_id = "changeMember", summary = "Change a member's role or monthly credit limit", tag = "members",
    request_body = PatchMember,
    params(("id" = String, Path, description = "the member's id")),
    responses((status = 200, description = "the member as changed", body = credits_domain::members::MemberView),
        (status = 404, description = "no such current member of this account", body = crate::error::ErrorBody),
        (status = 409, description = "CONFLICT: the last owner would be demoted", body = crate::error::ErrorBody),
        (status = 422, description = "INVALID_PARAMETERS", body = crate::error::ErrorBody)),
    security(("canvas" = [])))]
pub async fn change(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::canvas(&req, &state).await?;
    let id: uuid::Uuid = path_id(&path, "member")?;
    let input: PatchMember = typed(&json_value(&body)?)?;
    let change = change_of(input.role.as_deref(), input.monthly_credit_limit)?;
    let account = caller.account;
    let view = state
        .members()
        .call_for(account, move |members, now| Ok(members.change_member(account, id, &change, now)?))
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(delete, path = "/v1/members/{id}", operation_id = "removeMember", summary = "Remove a member (kept for history)", tag = "members",
    params(("id" = String, Path, description = "the member's id")),
    responses((status = 204, description = "removed: their runs still name them, their API keys stop working"),
        (status = 404, description = "no such current member of this account", body = crate::error::ErrorBody),
        (status = 409, description = "CONFLICT: the last owner", body = crate::error::ErrorBody)),
    security(("canvas" = [])))]
pub async fn remove(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::canvas(&req, &state).await?;
    let id: uuid::Uuid = path_id(&path, "member")?;
    let account = caller.account;
    state.members().call_for(account, move |members, now| Ok(members.remove_member(account, id, now)?)).await?;
    Ok(HttpResponse::NoContent().finish())
}
