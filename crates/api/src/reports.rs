//! Section 10: `GET /v1/usage`, `GET /v1/ledger/export` (CSV, streamed) and
//! `GET /admin/v1/reports/liability`.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use credits_domain::csv::Csv;
use credits_domain::operator::Role;
use credits_domain::reports::{ExportRow, GroupBy, LiabilityReport, Span, UsageView, liability};
use serde::Deserialize;

use crate::auth;
use crate::error::ApiError;
use crate::state::AppState;

/// Entries read and written per chunk of an export: memory does not grow with the span.
const EXPORT_CHUNK: i64 = 1000;

fn time(name: &str, raw: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    raw.filter(|r| !r.is_empty())
        .map(|r| {
            DateTime::parse_from_rfc3339(r)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| ApiError::invalid_parameters(format!("{name} must be an RFC 3339 time")))
        })
        .transpose()
}

#[derive(Deserialize)]
struct SpanParams {
    from: Option<String>,
    to: Option<String>,
    group_by: Option<String>,
}

fn span_params(req: &HttpRequest) -> Result<SpanParams, ApiError> {
    crate::edge::query::<SpanParams>(req)
}

#[utoipa::path(get, path = "/v1/usage", operation_id = "getUsage", summary = "Credits captured and runs, by day, model, API key or workflow", tag = "accounts",
    params(("from" = Option<String>, Query, description = "RFC 3339; default 30 days before to"),
        ("to" = Option<String>, Query, description = "RFC 3339, excluded; default now"),
        ("group_by" = Option<String>, Query, description = "day (UTC, the default), model, api_key, workflow or member (R25)")),
    responses((status = 200, description = "the groups with something captured, with their credits and runs; the sums agree with the ledger's debits", body = UsageView),
        (status = 403, description = "CAPABILITY_REQUIRED (workflow:read) through the api", body = crate::error::ErrorBody),
        (status = 422, description = "INVALID_PARAMETERS: an unknown group_by, a bad time, from not before to, a span over 366 days", body = crate::error::ErrorBody)),
    security(("canvas" = [], "account_id" = []), ("api_key" = [])))]
pub async fn usage(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = auth::reader(&req, &state).await?;
    let params = span_params(&req)?;
    let group_by = match params.group_by.as_deref() {
        None | Some("") => GroupBy::Day,
        Some(raw) => GroupBy::parse(raw)
            .ok_or_else(|| ApiError::invalid_parameters("group_by must be day, model, api_key, workflow or member"))?,
    };
    let (from, to) = (time("from", params.from.as_deref())?, time("to", params.to.as_deref())?);
    let view = state
        .reports()
        .call(move |reports, now| {
            let span = Span::new(from, to, now).map_err(ApiError::invalid_parameters)?;
            let groups = reports.usage(caller.account, group_by, span)?;
            Ok(UsageView { group_by, from: span.from, to: span.to, groups })
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// The export's columns.
pub const EXPORT_HEADER: [&str; 10] =
    ["id", "type", "credits", "bucket_id", "bucket_kind", "run_id", "member_id", "reference", "reason", "created_at"];

fn csv_row(csv: &mut Csv, row: &ExportRow) {
    let e = &row.entry;
    let run = e.run_id.map(|r| r.to_string()).unwrap_or_default();
    let member = row.member_id.map(|m| m.to_string()).unwrap_or_default();
    csv.text(&e.id.to_string())
        .text(e.entry_type.as_str())
        .number(e.credits.get())
        .text(&e.bucket_id.to_string())
        .text(e.bucket_kind.as_str())
        .text(&run)
        .text(&member)
        .text(e.reference.as_deref().unwrap_or_default())
        .text(e.reason.as_deref().unwrap_or_default())
        .text(&e.created_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .end_row();
}

/// The chunks of an export, as the blocking reader sends them.
struct Chunks(tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl futures_core::Stream for Chunks {
    type Item = Result<Bytes, actix_web::Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|c| c.map_err(actix_web::Error::from)))
    }
}

#[utoipa::path(get, path = "/v1/ledger/export", operation_id = "exportLedger", summary = "The ledger entries of a span as CSV, streamed", tag = "accounts",
    params(("from" = Option<String>, Query, description = "RFC 3339; default 30 days before to"),
        ("to" = Option<String>, Query, description = "RFC 3339, excluded; default now")),
    responses((status = 200, description = "text/csv (RFC 4180): a header row, then one row per entry, oldest first", content_type = "text/csv", body = String),
        (status = 403, description = "CAPABILITY_REQUIRED (workflow:read) through the api", body = crate::error::ErrorBody),
        (status = 422, description = "INVALID_PARAMETERS: a bad time, from not before to, a span over 366 days", body = crate::error::ErrorBody)),
    security(("canvas" = [], "account_id" = []), ("api_key" = [])))]
pub async fn export(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = auth::reader(&req, &state).await?;
    let params = span_params(&req)?;
    let (from, to) = (time("from", params.from.as_deref())?, time("to", params.to.as_deref())?);
    ledger_csv(&state, caller.account, from, to).await
}

/// An account's ledger entries of [from, to) as CSV, streamed (the export, and the billing
/// page's download).
pub async fn ledger_csv(
    state: &AppState,
    account: credits_domain::ids::AccountId,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<HttpResponse, ApiError> {
    // The first chunk before the answer starts: a missing account or a bad span is an error answer.
    let (span, first) = state
        .reports()
        .call(move |reports, now| {
            let span = Span::new(from, to, now).map_err(ApiError::invalid_parameters)?;
            Ok((span, reports.ledger_chunk(account, span, None, EXPORT_CHUNK)?))
        })
        .await?;
    // Two chunks in flight at most: the reader waits for the client (memory stays flat).
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || {
        let mut csv = Csv::with_header(&EXPORT_HEADER);
        let mut chunk = first;
        loop {
            for row in &chunk {
                csv_row(&mut csv, row);
            }
            if tx.blocking_send(Ok(Bytes::from(csv.take()))).is_err() {
                return; // the client went away
            }
            let Some(last) = chunk.last().map(|r| r.seq) else { return };
            if (chunk.len() as i64) < EXPORT_CHUNK {
                return;
            }
            chunk = match store.ledger_chunk(account, span, Some(last), EXPORT_CHUNK) {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(error = %e, "the ledger export stopped");
                    let _ = tx.blocking_send(Err(std::io::Error::other("the export stopped")));
                    return;
                }
            };
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(("Content-Disposition", "attachment; filename=\"ledger.csv\""))
        .streaming(Chunks(rx)))
}

#[derive(Deserialize)]
struct AtParams {
    at: Option<String>,
}

/// The report as of `at` (default now).
pub async fn liability_at(state: &AppState, at: Option<DateTime<Utc>>) -> Result<LiabilityReport, ApiError> {
    state
        .reports()
        .call(move |reports, now| {
            let at = at.unwrap_or(now);
            let (buckets, flows) = reports.liability_sums(at)?;
            Ok(liability(at, &buckets, &flows))
        })
        .await
}

#[utoipa::path(get, path = "/admin/v1/reports/liability", operation_id = "getLiabilityReport", summary = "What the business owes in credits at a moment", tag = "operators",
    params(("at" = Option<String>, Query, description = "RFC 3339; default now. Entries after it are ignored: a past report never changes")),
    responses((status = 200, description = "outstanding credits by kind (paid, promotional) with their value, what expires within 30/60/90 days, and month by month granted, used, expired and clawed back", body = LiabilityReport),
        (status = 403, description = "FORBIDDEN: needs admin", body = crate::error::ErrorBody),
        (status = 422, description = "INVALID_PARAMETERS: a bad time", body = crate::error::ErrorBody)),
    security(("operator" = [])))]
pub async fn liability_report(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    auth::operator(&req, &state, Role::Admin).await?;
    let params = crate::edge::query::<AtParams>(&req)?;
    let at = time("at", params.at.as_deref())?;
    Ok(HttpResponse::Ok().json(liability_at(&state, at).await?))
}
