//! `GET /openapi.json` (generated from the handlers' `#[utoipa::path]` annotations) and `/docs`.

use actix_web::HttpResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorCode, ErrorObject};

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(description)).build(),
            )
        };
        components.add_security_scheme(
            "canvas",
            bearer("the canvas backend's internal token, with the X-Account-Id header naming the account"),
        );
        components.add_security_scheme(
            "account_id",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Account-Id"))),
        );
        components.add_security_scheme("api_key", bearer("an API key (ck_…) of a plan with API access"));
        components.add_security_scheme("operator", bearer("an operator token (role sales, support or admin)"));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "credits",
        description = include_str!("../assets/api-description.md"),
        license(name = "Proprietary: all rights reserved (UNLICENSED)"),
    ),
    paths(
        crate::healthz, crate::readyz, crate::metrics_text, openapi_json, docs,
        crate::catalog::plans, crate::catalog::models, crate::catalog::topup_packs,
        crate::accounts::create, crate::accounts::show, crate::accounts::balance, crate::accounts::ledger,
        crate::accounts::trials,
        crate::runs::quote, crate::runs::start, crate::runs::show, crate::runs::complete, crate::runs::cancel,
        crate::apikeys::create, crate::apikeys::list, crate::apikeys::revoke, crate::apikeys::patch,
        crate::members::add, crate::members::list, crate::members::change, crate::members::remove,
        crate::checkout::subscription, crate::checkout::topup, crate::checkout::invoices, crate::checkout::portal,
        crate::webhooks::stripe_webhook,
        crate::verification::submit, crate::verification::status, crate::verification::queue,
        crate::verification::approve, crate::verification::reject,
        crate::admin::search, crate::admin::account, crate::admin::adjust, crate::admin::enterprise, crate::admin::clock_now,
        crate::admin::clock_advance, crate::admin::restrict, crate::admin::lift_restriction, crate::admin::stripe_events,
        crate::admin::reprocess_stripe_event, crate::reports::usage, crate::reports::export,
        crate::reports::liability_report,
        crate::notify::auto_topup, crate::notify::set_auto_topup, crate::notify::alerts, crate::notify::set_alerts,
        crate::notify::create_endpoint, crate::notify::endpoints, crate::notify::delete_endpoint,
        crate::notify::deliveries, crate::pages::create_link,
    ),
    components(schemas(ErrorBody, ErrorObject, ErrorCode)),
    modifiers(&Security),
    tags((name = "catalog"), (name = "accounts"), (name = "runs"), (name = "api keys"), (name = "members"), (name = "checkout"), (name = "webhooks"), (name = "business verification"), (name = "operators"), (name = "notify"), (name = "pages"),
        (name = "operations")),
)]
pub struct ApiDoc;

#[utoipa::path(get, path = "/openapi.json", operation_id = "getOpenApiDocument", summary = "This OpenAPI document", tag = "operations",
    responses((status = 200, description = "this document", body = crate::schemas::OpenApiDocument)))]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

const DOCS_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>credits API</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
</head>
<body>
  <redoc spec-url="/openapi.json"></redoc>
  <noscript>The API document is at <a href="/openapi.json">/openapi.json</a>.</noscript>
  <script src="/docs/redoc.standalone.js"></script>
</body>
</html>
"#;

#[utoipa::path(get, path = "/docs", operation_id = "getDocs", summary = "The API documentation page", tag = "operations",
    responses((status = 200, description = "the API documentation page (Redoc over /openapi.json)", content_type = "text/html")))]
pub async fn docs() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Content-Security-Policy", DOCS_POLICY))
        .body(DOCS_PAGE)
}

/// Everything the page loads comes from this service (Redoc styles inline and searches in a
/// worker it makes from a blob).
const DOCS_POLICY: &str = "default-src 'self'; script-src 'self'; worker-src 'self' blob:; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'";

/// Redoc's standalone bundle, vendored from the npm registry (`assets/redoc/README.md`).
const REDOC: &[u8] = include_bytes!("../assets/redoc/redoc.standalone.js");

pub async fn redoc_bundle() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/javascript; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=86400"))
        .body(REDOC)
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    /// Issue 16: a client generated from the document gets a type for every success answer.
    #[test]
    fn no_success_response_is_an_untyped_object() {
        let doc = serde_json::to_value(super::ApiDoc::openapi()).unwrap();
        let mut untyped = Vec::new();
        let mut operations = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                operations += 1;
                assert!(
                    op["operationId"].as_str().is_some_and(|id| !id.contains('_')),
                    "{method} {path}: a method-like operationId"
                );
                assert!(op["summary"].as_str().is_some_and(|s| !s.is_empty()), "{method} {path}: a summary");
                for (status, response) in op["responses"].as_object().unwrap() {
                    if !status.starts_with('2') {
                        continue;
                    }
                    for (content_type, content) in response["content"].as_object().into_iter().flatten() {
                        let schema = &content["schema"];
                        let bare =
                            schema["type"] == "object" && schema["properties"].is_null() && schema["$ref"].is_null();
                        if content_type.contains("json") && (bare || schema.is_null()) {
                            untyped.push(format!("{method} {path} {status}"));
                        }
                    }
                }
            }
        }
        assert!(operations > 40, "every route is documented ({operations})");
        assert!(untyped.is_empty(), "success answers without a type: {untyped:?}");
    }
}
