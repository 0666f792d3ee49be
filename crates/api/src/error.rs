//! The one mapping from the use cases' errors to SPEC's error format and codes:
//! `{"error": {"code": "…", "message": "…", …details}}`. Internal causes are logged, never sent.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use credits_domain::apikey::KeyRefusal;
use credits_domain::error::{AccountError, AdminError, ApiKeyError, RunError, StoreError, VerificationError};
use credits_domain::members::{MemberError, MemberRefusal};
use credits_domain::notify::store::NotifyError;
use credits_domain::payments::{CheckoutRefusal, GatewayError, PaymentError};
use credits_domain::runs::Denial;
use credits_domain::runs::RESTRICTED;
use serde_json::{Map, Value, json};

/// The largest body the service reads (a larger one is 400 INVALID_REQUEST).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Map<String, Value>,
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), details: Map::new(), retry_after: None }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> ApiError {
        self.details.insert(key.to_string(), value.into());
        self
    }

    pub fn invalid_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "INVALID_REQUEST", message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "CONFLICT", message)
    }

    pub fn invalid_parameters(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_PARAMETERS", message)
    }

    pub fn idempotency_key_reused() -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "IDEMPOTENCY_KEY_REUSED",
            "this Idempotency-Key was already used with another request",
        )
    }

    pub fn internal() -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "an internal error occurred; it has been logged")
    }

    pub fn unavailable() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "the service cannot reach its database right now; retry shortly",
        )
        .retry(1)
    }

    /// Section 7: the account's lock could not be had in time; nothing changed, retry.
    pub fn account_busy() -> ApiError {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "ACCOUNT_BUSY",
            "the account is busy with other requests; nothing was changed; retry shortly",
        )
        .retry(1)
    }

    fn retry(mut self, seconds: u32) -> ApiError {
        self.retry_after = Some(seconds);
        self
    }

    /// The error object, typed (a quote's `denial` is the object a run would get).
    pub fn typed_object(&self) -> ErrorObject {
        ErrorObject { code: self.code.to_string(), message: self.message.clone(), details: self.details.clone() }
    }

    /// The error object alone.
    pub fn object(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("code".into(), Value::from(self.code));
        obj.insert("message".into(), Value::from(self.message.clone()));
        for (k, v) in &self.details {
            obj.insert(k.clone(), v.clone());
        }
        Value::Object(obj)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            resp.insert_header((header::RETRY_AFTER, HeaderValue::from(secs)));
        }
        resp.json(json!({ "error": self.object() }))
    }
}

impl From<Denial> for ApiError {
    fn from(d: Denial) -> ApiError {
        let message = d.to_string();
        match d {
            Denial::RateLimited { limit, retry_after_seconds } => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED", message)
                    .with("limit", limit)
                    .with("retry_after_seconds", retry_after_seconds)
                    .retry(retry_after_seconds)
            }
            Denial::UnknownModel { model } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "UNKNOWN_MODEL", message).with("model", model)
            }
            Denial::InvalidParameters { .. } => ApiError::invalid_parameters(message),
            Denial::AccountRestricted { .. } => ApiError::new(StatusCode::FORBIDDEN, "ACCOUNT_RESTRICTED", message),
            Denial::ApiAccessRequired => ApiError::new(StatusCode::FORBIDDEN, "API_ACCESS_REQUIRED", message),
            Denial::CapabilityRequired { capability } => {
                ApiError::new(StatusCode::FORBIDDEN, "CAPABILITY_REQUIRED", message)
                    .with("capability", capability.as_str())
            }
            Denial::TrialExhausted { required_plan } => {
                ApiError::new(StatusCode::FORBIDDEN, "TRIAL_EXHAUSTED", message).with("required_plan", required_plan)
            }
            Denial::TrialExpired { required_plan } => {
                ApiError::new(StatusCode::FORBIDDEN, "TRIAL_EXPIRED", message).with("required_plan", required_plan)
            }
            Denial::ModelTierRequired { required_plan } => {
                ApiError::new(StatusCode::FORBIDDEN, "MODEL_TIER_REQUIRED", message)
                    .with("required_plan", required_plan)
            }
            Denial::NotAMember { .. } => ApiError::forbidden(message),
            Denial::MemberCreditLimit { limit, used, required } => {
                ApiError::new(StatusCode::PAYMENT_REQUIRED, "MEMBER_CREDIT_LIMIT", message)
                    .with("limit", limit.get())
                    .with("used", used.get())
                    .with("required", required.get())
            }
            Denial::KeyCreditLimit { limit, used, required } => {
                ApiError::new(StatusCode::PAYMENT_REQUIRED, "KEY_CREDIT_LIMIT", message)
                    .with("limit", limit.get())
                    .with("used", used.get())
                    .with("required", required.get())
            }
            Denial::InsufficientCredits { required, available } => {
                ApiError::new(StatusCode::PAYMENT_REQUIRED, "INSUFFICIENT_CREDITS", message)
                    .with("required", required.get())
                    .with("available", available.get())
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "database unavailable");
                ApiError::unavailable()
            }
            StoreError::Busy(cause) => {
                tracing::info!(%cause, "account busy: its lock was not had in time");
                ApiError::account_busy()
            }
            StoreError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                ApiError::internal()
            }
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> ApiError {
        match e {
            AccountError::NotFound => ApiError::not_found("no such account"),
            AccountError::InvalidParameters(m) => ApiError::invalid_parameters(m),
            AccountError::IdempotencyKeyReused => ApiError::idempotency_key_reused(),
            AccountError::Store(s) => s.into(),
        }
    }
}

impl From<RunError> for ApiError {
    fn from(e: RunError) -> ApiError {
        match e {
            RunError::Denied(d) => d.into(),
            RunError::NotFound => ApiError::not_found("no such run or account"),
            RunError::Forbidden(m) => ApiError::forbidden(m),
            RunError::Conflict(m) => ApiError::conflict(m),
            RunError::IdempotencyKeyReused => ApiError::idempotency_key_reused(),
            RunError::Store(s) => s.into(),
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> ApiError {
        match e {
            AdminError::NotFound => ApiError::not_found("no such account"),
            AdminError::InvalidParameters { message, available } => {
                let err = ApiError::invalid_parameters(message);
                match available {
                    Some(a) => err.with("available", a.get()),
                    None => err,
                }
            }
            AdminError::Conflict(m) => ApiError::conflict(m),
            AdminError::IdempotencyKeyReused => ApiError::idempotency_key_reused(),
            AdminError::Store(s) => s.into(),
        }
    }
}

impl From<VerificationError> for ApiError {
    fn from(e: VerificationError) -> ApiError {
        match e {
            VerificationError::NotFound => ApiError::not_found("no such account or request"),
            VerificationError::InvalidParameters(m) => ApiError::invalid_parameters(m),
            VerificationError::Conflict(m) => ApiError::conflict(m),
            VerificationError::IdempotencyKeyReused => ApiError::idempotency_key_reused(),
            VerificationError::Store(s) => s.into(),
        }
    }
}

impl From<ApiKeyError> for ApiError {
    fn from(e: ApiKeyError) -> ApiError {
        match e {
            ApiKeyError::NotFound => ApiError::not_found("no such API key"),
            ApiKeyError::Refused(KeyRefusal::ApiAccessRequired) => Denial::ApiAccessRequired.into(),
            ApiKeyError::Refused(KeyRefusal::AccountRestricted) => {
                Denial::AccountRestricted { reason: RESTRICTED.into() }.into()
            }
            ApiKeyError::Refused(KeyRefusal::CapabilityRequired(capability)) => {
                Denial::CapabilityRequired { capability }.into()
            }
            ApiKeyError::Refused(KeyRefusal::InvalidParameters(m)) => ApiError::invalid_parameters(m),
            ApiKeyError::Refused(r @ KeyRefusal::NotAMember(_)) => ApiError::forbidden(r.to_string()),
            ApiKeyError::IdempotencyKeyReused => ApiError::idempotency_key_reused(),
            ApiKeyError::Store(s) => s.into(),
        }
    }
}

impl From<PaymentError> for ApiError {
    fn from(e: PaymentError) -> ApiError {
        match e {
            PaymentError::NotFound => ApiError::not_found("no such account"),
            PaymentError::Refused(CheckoutRefusal::InvalidParameters(m)) => ApiError::invalid_parameters(m),
            PaymentError::Refused(CheckoutRefusal::BusinessVerificationRequired) => ApiError::new(
                StatusCode::FORBIDDEN,
                "BUSINESS_VERIFICATION_REQUIRED",
                "the Business plan needs an approved business verification",
            ),
            PaymentError::Refused(CheckoutRefusal::Conflict(m)) => ApiError::conflict(m),
            PaymentError::Refused(CheckoutRefusal::Restricted) => {
                Denial::AccountRestricted { reason: RESTRICTED.into() }.into()
            }
            PaymentError::Gateway(cause @ GatewayError::MissingCustomer(_))
            | PaymentError::Gateway(cause @ GatewayError::Unavailable(_)) => {
                tracing::warn!(%cause, "Stripe call failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "PAYMENTS_UNAVAILABLE",
                    "payments are unavailable right now; nothing was charged; retry shortly",
                )
            }
            PaymentError::IdempotencyKeyReused => ApiError::idempotency_key_reused(),
            PaymentError::Store(s) => s.into(),
        }
    }
}

impl From<CheckoutRefusal> for ApiError {
    fn from(e: CheckoutRefusal) -> ApiError {
        PaymentError::Refused(e).into()
    }
}

impl From<NotifyError> for ApiError {
    fn from(e: NotifyError) -> ApiError {
        match e {
            NotifyError::NotFound => ApiError::not_found("no such webhook endpoint"),
            NotifyError::Invalid(m) => ApiError::invalid_parameters(m),
            NotifyError::Unconfigured(m) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE", m),
            NotifyError::Store(s) => s.into(),
        }
    }
}

impl From<MemberError> for ApiError {
    fn from(e: MemberError) -> ApiError {
        match e {
            MemberError::NotFound => ApiError::not_found("no such member"),
            MemberError::Refused(r) => match r {
                MemberRefusal::Invalid(m) => ApiError::invalid_parameters(m),
                MemberRefusal::AlreadyMember(_) | MemberRefusal::LastOwner => {
                    ApiError::new(StatusCode::CONFLICT, "CONFLICT", r.to_string())
                }
                MemberRefusal::TeamSizeLimit { limit, ref plan } => {
                    let plan = plan.clone();
                    ApiError::new(StatusCode::FORBIDDEN, "TEAM_SIZE_LIMIT", r.to_string())
                        .with("limit", limit)
                        .with("plan", plan)
                }
            },
            MemberError::Store(s) => s.into(),
        }
    }
}

/// Errors that arise before a handler runs (an oversized body, a method a route does not take)
/// come from actix as plain text: this rewrites every such 4xx into SPEC's format.
pub fn contract_errors<B: 'static>() -> actix_web::middleware::ErrorHandlers<B> {
    actix_web::middleware::ErrorHandlers::new().default_handler_client(to_contract)
}

fn to_contract<B>(
    res: actix_web::dev::ServiceResponse<B>,
) -> actix_web::Result<actix_web::middleware::ErrorHandlerResponse<B>> {
    use actix_web::middleware::ErrorHandlerResponse;
    let json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        // The pages' own answers (section 8) are HTML for a person, and stay so.
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let err = match res.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::invalid_request(format!("the body exceeds {} bytes", MAX_BODY_BYTES))
        }
        StatusCode::UNAUTHORIZED => ApiError::unauthenticated("authentication is required"),
        StatusCode::NOT_FOUND => ApiError::not_found("no such route"),
        StatusCode::METHOD_NOT_ALLOWED => {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "this route does not take that method")
        }
        status => ApiError::new(status, "INVALID_REQUEST", status.canonical_reason().unwrap_or("bad request")),
    };
    let (req, _) = res.into_parts();
    let res = actix_web::dev::ServiceResponse::new(req, err.error_response());
    Ok(ErrorHandlerResponse::Response(res.map_into_right_body()))
}

#[cfg(test)]
mod tests {
    use credits_domain::catalog::Capability;
    use credits_domain::credits::Credits;

    use super::*;

    /// A status and a code.
    type Answer = (u16, &'static str);

    fn seen(e: impl Into<ApiError>) -> Answer {
        let e = e.into();
        (e.status.as_u16(), e.code)
    }

    /// SPEC section 4's table, variant by variant: each use case's error becomes one status and
    /// one code, and an internal cause never reaches the body.
    #[test]
    fn every_variant_maps_to_specs_status_and_code() {
        let c = Credits::new;
        let table: Vec<(Answer, Answer)> = vec![
            (seen(Denial::RateLimited { limit: 5, retry_after_seconds: 3 }), (429, "RATE_LIMITED")),
            (seen(Denial::UnknownModel { model: "m".into() }), (422, "UNKNOWN_MODEL")),
            (seen(Denial::AccountRestricted { reason: "r".into() }), (403, "ACCOUNT_RESTRICTED")),
            (seen(Denial::ApiAccessRequired), (403, "API_ACCESS_REQUIRED")),
            (seen(Denial::CapabilityRequired { capability: Capability::ModelRun }), (403, "CAPABILITY_REQUIRED")),
            (seen(Denial::TrialExhausted { required_plan: "pro".into() }), (403, "TRIAL_EXHAUSTED")),
            (seen(Denial::TrialExpired { required_plan: "pro".into() }), (403, "TRIAL_EXPIRED")),
            (seen(Denial::ModelTierRequired { required_plan: "pro".into() }), (403, "MODEL_TIER_REQUIRED")),
            (seen(Denial::KeyCreditLimit { limit: c(1), used: c(1), required: c(2) }), (402, "KEY_CREDIT_LIMIT")),
            (seen(Denial::InsufficientCredits { required: c(2), available: c(1) }), (402, "INSUFFICIENT_CREDITS")),
            (seen(StoreError::Unavailable("x".into())), (503, "SERVICE_UNAVAILABLE")),
            (seen(StoreError::Busy("x".into())), (429, "ACCOUNT_BUSY")),
            (seen(StoreError::Internal("x".into())), (500, "INTERNAL")),
            (seen(AccountError::NotFound), (404, "NOT_FOUND")),
            (seen(AccountError::InvalidParameters("x".into())), (422, "INVALID_PARAMETERS")),
            (seen(AccountError::IdempotencyKeyReused), (422, "IDEMPOTENCY_KEY_REUSED")),
            (seen(RunError::NotFound), (404, "NOT_FOUND")),
            (seen(RunError::Forbidden("x".into())), (403, "FORBIDDEN")),
            (seen(RunError::Conflict("x".into())), (409, "CONFLICT")),
            (seen(AdminError::InvalidParameters { message: "x".into(), available: None }), (422, "INVALID_PARAMETERS")),
            (seen(AdminError::Conflict("x".into())), (409, "CONFLICT")),
            (seen(VerificationError::Conflict("x".into())), (409, "CONFLICT")),
            (seen(ApiKeyError::NotFound), (404, "NOT_FOUND")),
            (seen(ApiKeyError::Refused(KeyRefusal::ApiAccessRequired)), (403, "API_ACCESS_REQUIRED")),
            (seen(ApiKeyError::Refused(KeyRefusal::AccountRestricted)), (403, "ACCOUNT_RESTRICTED")),
            (
                seen(PaymentError::Refused(CheckoutRefusal::BusinessVerificationRequired)),
                (403, "BUSINESS_VERIFICATION_REQUIRED"),
            ),
            (seen(PaymentError::Refused(CheckoutRefusal::Restricted)), (403, "ACCOUNT_RESTRICTED")),
            (seen(PaymentError::Gateway(GatewayError::Unavailable("x".into()))), (503, "PAYMENTS_UNAVAILABLE")),
            (seen(NotifyError::NotFound), (404, "NOT_FOUND")),
            (seen(NotifyError::Invalid("x".into())), (422, "INVALID_PARAMETERS")),
            (seen(NotifyError::Unconfigured("x".into())), (503, "SERVICE_UNAVAILABLE")),
            (seen(NotifyError::Store(StoreError::Busy("x".into()))), (429, "ACCOUNT_BUSY")),
            (seen(Denial::NotAMember { member: uuid::Uuid::nil() }), (403, "FORBIDDEN")),
            (seen(Denial::MemberCreditLimit { limit: c(1), used: c(1), required: c(2) }), (402, "MEMBER_CREDIT_LIMIT")),
            (seen(ApiKeyError::Refused(KeyRefusal::NotAMember(uuid::Uuid::nil()))), (403, "FORBIDDEN")),
            (seen(MemberError::NotFound), (404, "NOT_FOUND")),
            (seen(MemberError::Refused(MemberRefusal::Invalid("x".into()))), (422, "INVALID_PARAMETERS")),
            (seen(MemberError::Refused(MemberRefusal::AlreadyMember("x".into()))), (409, "CONFLICT")),
            (seen(MemberError::Refused(MemberRefusal::LastOwner)), (409, "CONFLICT")),
            (
                seen(MemberError::Refused(MemberRefusal::TeamSizeLimit { limit: 1, plan: "free".into() })),
                (403, "TEAM_SIZE_LIMIT"),
            ),
            (seen(MemberError::Store(StoreError::Busy("x".into()))), (429, "ACCOUNT_BUSY")),
        ];
        for (got, want) in table {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn an_internal_cause_is_never_in_the_body() {
        let e: ApiError = StoreError::Internal("relation \"secret_table\" does not exist".into()).into();
        let body = serde_json::to_string(&e.object()).unwrap();
        assert!(!body.contains("secret_table"), "{body}");
    }
}

// ---- the error format as the OpenAPI document describes it --------------------------------

/// SPEC section 4's error format.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    error: ErrorObject,
}

/// `code` is one of SPEC's codes; details (e.g. `required`, `available`, `required_plan`,
/// `capability`, `limit`, `used`, `retry_after_seconds`) sit beside `message`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorObject {
    #[schema(value_type = ErrorCode, example = "INSUFFICIENT_CREDITS")]
    pub code: String,
    pub message: String,
    #[serde(flatten)]
    #[schema(ignore)]
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// SPEC section 4's error codes.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, non_camel_case_types, clippy::upper_case_acronyms)]
pub enum ErrorCode {
    INVALID_REQUEST,
    UNAUTHENTICATED,
    INSUFFICIENT_CREDITS,
    KEY_CREDIT_LIMIT,
    MEMBER_CREDIT_LIMIT,
    FORBIDDEN,
    API_ACCESS_REQUIRED,
    CAPABILITY_REQUIRED,
    MODEL_TIER_REQUIRED,
    TRIAL_EXHAUSTED,
    TRIAL_EXPIRED,
    BUSINESS_VERIFICATION_REQUIRED,
    ACCOUNT_RESTRICTED,
    TEAM_SIZE_LIMIT,
    NOT_FOUND,
    METHOD_NOT_ALLOWED,
    CONFLICT,
    INVALID_PARAMETERS,
    UNKNOWN_MODEL,
    IDEMPOTENCY_KEY_REUSED,
    RATE_LIMITED,
    ACCOUNT_BUSY,
    INTERNAL,
    PAYMENTS_UNAVAILABLE,
    SERVICE_UNAVAILABLE,
}
