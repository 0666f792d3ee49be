//! The billing page's session and every page's CSRF tokens, in one place: the cookie that carries
//! a session (its value a random token, only its hash stored), reading it back, and the
//! constant-time comparison of a form's token with the session's.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use credits_api::ApiError;
use credits_api::state::{AppState, token_hash};
use credits_domain::members::PageAccess;
use credits_domain::pages::PageSession;

use crate::layout::message_page;

/// The session cookie: its value is a random token; the store keeps only its hash.
pub(crate) const COOKIE: &str = "credits_billing";

pub(crate) fn random_token() -> String {
    credits_api::state::new_token("")
}

pub(super) fn cookie_token(req: &HttpRequest) -> Option<String> {
    cookie(req, COOKIE)
}

/// The value of the cookie `name`.
pub(crate) fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    let raw = req.headers().get(header::COOKIE)?.to_str().ok()?;
    raw.split(';').filter_map(|c| c.trim().split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
}

/// The request's session, or the page that says there is none.
pub(crate) async fn session_of(
    req: &HttpRequest,
    state: &AppState,
) -> Result<Result<PageSession, HttpResponse>, ApiError> {
    let Some(token) = cookie_token(req) else {
        return Ok(Err(message_page(
            StatusCode::UNAUTHORIZED,
            "Not signed in",
            "Open your billing page from the app: its link signs you in for an hour.",
        )));
    };
    let hash = token_hash(&token);
    let found = state.page_links().call(move |links, now| Ok(links.page_session(&hash, now)?)).await?;
    Ok(found.ok_or_else(|| {
        message_page(
            StatusCode::UNAUTHORIZED,
            "Your session has ended",
            "Billing sessions last an hour. Open your billing page from the app again.",
        )
    }))
}

/// Constant-time comparison of the form's CSRF token with the session's.
/// The session of a form's request, its CSRF token checked; otherwise the answer to give.
pub(super) async fn checked(
    req: &HttpRequest,
    state: &AppState,
    csrf: &str,
) -> Result<Result<PageSession, HttpResponse>, ApiError> {
    Ok(match session_of(req, state).await? {
        Err(page) => Err(page),
        Ok(s) if !csrf_matches(&s, csrf) => Err(refused_csrf()),
        Ok(s) => Ok(s),
    })
}

/// As [`checked`], and the session's role may use this form (R27); otherwise 403, nothing changed.
pub(super) async fn permitted(
    req: &HttpRequest,
    state: &AppState,
    csrf: &str,
    access: PageAccess,
) -> Result<Result<PageSession, HttpResponse>, ApiError> {
    Ok(match checked(req, state, csrf).await? {
        Ok(s) if !s.role.may(access) => Err(refused_role(&s)),
        other => other,
    })
}

/// R27: what a role may not use is refused, whatever the form.
pub(crate) fn refused_role(session: &PageSession) -> HttpResponse {
    message_page(
        StatusCode::FORBIDDEN,
        "Not for your role",
        &format!("As a {} of this account you may not do this. Nothing was changed.", session.role.as_str()),
    )
}

fn csrf_matches(session: &PageSession, given: &str) -> bool {
    same_token(&session.csrf, given)
}

/// Constant-time equality of two tokens.
pub(crate) fn same_token(expected: &str, given: &str) -> bool {
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn refused_csrf() -> HttpResponse {
    message_page(
        StatusCode::FORBIDDEN,
        "The form has expired",
        "Nothing was changed. Go back to your billing page, reload it and try again.",
    )
}
