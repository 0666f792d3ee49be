//! The frame every page shares: the HTML skeleton, the answer's headers (no caching, no framing,
//! nothing but this origin's stylesheet), message pages, and how times and money are written.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

/// The page's one stylesheet.
pub const STYLESHEET: &str = include_str!("../assets/app.css");
/// Nothing but this origin's stylesheet and forms; no script at all.
const POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
                      frame-ancestors 'none'; base-uri 'none'";

/// Every page answer: no caching, no framing, nothing but our own stylesheet.
pub(crate) fn page(status: StatusCode, body: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Content-Security-Policy", POLICY))
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(body.into_string())
}

pub(crate) fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — credits" }
                link rel="stylesheet" href="/assets/app.css";
                link rel="icon" href="data:,";
            }
            body { (body) }
        }
    }
}

pub(crate) fn message_page(status: StatusCode, title: &str, text: &str) -> HttpResponse {
    page(status, layout(title, html! { main class="narrow" { h1 { (title) } p { (text) } } }))
}

pub(crate) fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// `1234` in `usd` is `$12.34`; other currencies by their code.
pub(crate) fn money(amount: i64, currency: &str) -> String {
    let major = format!("{}.{:02}", amount / 100, (amount % 100).abs());
    match currency.to_ascii_lowercase().as_str() {
        "usd" => format!("${major}"),
        "eur" => format!("€{major}"),
        other => format!("{major} {}", other.to_ascii_uppercase()),
    }
}

/// `GET /assets/app.css`.
pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(STYLESHEET)
}
