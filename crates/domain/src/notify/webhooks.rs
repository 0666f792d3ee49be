//! SPEC section 9: outbound webhooks. The events an account's systems may subscribe to, what an
//! endpoint may be and where it may point, and when a failed delivery is tried again.
//! Signing (Standard Webhooks) and sending are the adapter's; the rules are here.

use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::addresses::{self, Reach};
use super::store::AttemptResult;
use crate::jobs::{DELIVERY_RETRY, DeliveryStatus};

/// At most this many endpoints an account (section 9).
pub const MAX_ENDPOINTS: usize = 10;
/// A URL longer than this is refused (browsers and proxies stop near here anyway).
pub const MAX_URL_LEN: usize = 2048;
pub const MAX_DESCRIPTION_LEN: usize = 500;
/// A delivery is a success when the endpoint answers 2xx within this.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Section 7: the most attempts of one account's deliveries in flight at once on an instance, so
/// one account's slow endpoints delay only that account's deliveries.
pub const IN_FLIGHT_PER_ACCOUNT: u32 = 4;
/// A delivery is tried again for up to this long after its first attempt.
pub const RETRY_WINDOW: TimeDelta = TimeDelta::days(3);
/// An endpoint failing for this long is disabled and its account emailed.
pub const DISABLE_AFTER: TimeDelta = TimeDelta::days(5);

macro_rules! event_types {
    ($($variant:ident => $name:literal),+ $(,)?) => {
        /// The event types of section 9, as they travel (`type` in the body).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub enum EventType {
            $(#[serde(rename = $name)] $variant,)+
        }

        impl EventType {
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $name,)+
                }
            }

            pub fn parse(name: &str) -> Option<EventType> {
                match name {
                    $($name => Some(EventType::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

event_types! {
    BalanceLow => "balance.low",
    BalanceDepleted => "balance.depleted",
    BalanceRecovered => "balance.recovered",
    CreditsExpiring => "credits.expiring",
    CreditsGranted => "credits.granted",
    PlanChanged => "plan.changed",
    PaymentFailed => "payment.failed",
    AutoTopupSucceeded => "auto_topup.succeeded",
    AutoTopupFailed => "auto_topup.failed",
    AccountRestricted => "account.restricted",
    AccountUnrestricted => "account.unrestricted",
    BusinessVerificationDecided => "business_verification.decided",
    MemberAdded => "member.added",
    MemberRemoved => "member.removed",
    MemberLimitReached => "member.limit_reached",
}

/// What `POST /v1/webhook-endpoints` asks for, with the URL already taken apart by the adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRequest<'a> {
    pub url: &'a str,
    pub scheme: &'a str,
    pub host: Option<&'a str>,
    pub events: &'a [String],
    pub description: Option<&'a str>,
}

/// Section 9: an account with `existing` endpoints may add one more only below
/// [`MAX_ENDPOINTS`]. Judged by the store with the real count, under the account's lock (so two
/// concurrent registrations cannot both pass). The message is the 422's.
pub fn check_endpoint_count(existing: usize) -> Result<(), String> {
    if existing >= MAX_ENDPOINTS {
        return Err(format!("an account may have at most {MAX_ENDPOINTS} webhook endpoints; delete one first"));
    }
    Ok(())
}

/// Checks a new endpoint's request. Returns its events, each once, in a stable order. The message
/// is the 422's. (How many the account has is `check_endpoint_count`'s, in the store.)
pub fn validate_endpoint(request: &EndpointRequest<'_>, allow_insecure: bool) -> Result<Vec<EventType>, String> {
    if request.url.len() > MAX_URL_LEN {
        return Err(format!("url must be at most {MAX_URL_LEN} characters"));
    }
    check_scheme(request.scheme, allow_insecure)?;
    if request.host.is_none_or(str::is_empty) {
        return Err("url must name a host".into());
    }
    if request.description.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_LEN) {
        return Err(format!("description must be at most {MAX_DESCRIPTION_LEN} characters"));
    }
    if request.events.is_empty() {
        return Err("events must name at least one event type".into());
    }
    let mut events = Vec::with_capacity(request.events.len());
    for name in request.events {
        let Some(event) = EventType::parse(name) else {
            return Err(format!("{name:?} is not an event type"));
        };
        events.push(event);
    }
    events.sort_unstable();
    events.dedup();
    Ok(events)
}

/// Section 9: a webhook URL is https; http only with `webhooks.allow_insecure` (tests).
pub fn check_scheme(scheme: &str, allow_insecure: bool) -> Result<(), String> {
    match scheme {
        "https" => Ok(()),
        "http" if allow_insecure => Ok(()),
        "http" => Err("url must be https".into()),
        other => Err(format!("url must be https, not {other:?}")),
    }
}

/// Why an address may not be a webhook's target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetRefused {
    #[error("{0} is a private, loopback, link-local or special-purpose address")]
    Private(IpAddr),
    #[error("{0} is not an address anyone can be reached at")]
    Unroutable(IpAddr),
}

/// May a delivery connect to `ip`? The adapter resolves the host, checks every address with this
/// and connects to an address it checked, so a DNS answer that changes in between (rebinding)
/// cannot send it inside. Only the global unicast space is a target (`addresses`);
/// `allow_private` (tests) lets the private ranges through, and nothing lets the unspecified,
/// multicast or broadcast addresses through.
pub fn check_target(ip: IpAddr, allow_private: bool) -> Result<(), TargetRefused> {
    match addresses::reach(ip) {
        Reach::Global => Ok(()),
        Reach::Private if allow_private => Ok(()),
        Reach::Private => Err(TargetRefused::Private(ip)),
        Reach::Unroutable => Err(TargetRefused::Unroutable(ip)),
    }
}

/// A delivery as the store has it when an attempt ends, and its endpoint's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryFacts {
    pub status: DeliveryStatus,
    /// Attempts made before this one.
    pub attempts: u32,
    pub first_attempt_at: Option<DateTime<Utc>>,
    /// Since when the endpoint has failed every delivery (none: its last one succeeded).
    pub failing_since: Option<DateTime<Utc>>,
    pub disabled_at: Option<DateTime<Utc>>,
}

/// What an attempt's end writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The delivery's next state: delivered, pending again (at `next_attempt_at`), or failed
    /// for good once its 3 days are over.
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub first_attempt_at: DateTime<Utc>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered: bool,
    pub response_code: Option<u16>,
    pub error: Option<String>,
    /// The endpoint's `failing_since` after it.
    pub failing_since: Option<DateTime<Utc>>,
    /// Disable the endpoint now (and mail the account): it has failed every delivery for
    /// [`DISABLE_AFTER`].
    pub disable: bool,
}

/// Section 9: an attempt of a delivery ended with `result`. `None` when the delivery was
/// recorded already (a lease that ran out, another instance).
pub fn decide_attempt(facts: &DeliveryFacts, result: &AttemptResult, now: DateTime<Utc>) -> Option<AttemptRecord> {
    if facts.status != DeliveryStatus::Pending {
        return None;
    }
    let attempts = facts.attempts.saturating_add(1);
    let first = facts.first_attempt_at.unwrap_or(now);
    Some(match result {
        AttemptResult::Delivered { status } => AttemptRecord {
            status: DeliveryStatus::Delivered,
            attempts,
            first_attempt_at: first,
            next_attempt_at: None,
            delivered: true,
            response_code: Some(*status),
            error: None,
            failing_since: None,
            disable: false,
        },
        AttemptResult::Failed { status, error } => {
            let next = DELIVERY_RETRY.next(attempts, first, now);
            let since = facts.failing_since.unwrap_or(now);
            AttemptRecord {
                status: if next.is_some() { DeliveryStatus::Pending } else { DeliveryStatus::Failed },
                attempts,
                first_attempt_at: first,
                next_attempt_at: next,
                delivered: false,
                response_code: *status,
                error: Some(error.clone()),
                failing_since: Some(since),
                disable: facts.disabled_at.is_none() && should_disable(Some(since), now),
            }
        }
    })
}

/// An endpoint that has failed every delivery since `failing_since` is disabled once that is
/// [`DISABLE_AFTER`] ago. A success clears `failing_since`.
pub fn should_disable(failing_since: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    failing_since.is_some_and(|since| now - since >= DISABLE_AFTER)
}

/// The adapter that makes endpoint secrets and seals them for the store (section 9: kept so
/// deliveries can be signed, never in clear).
pub trait SecretKeeper: Send + Sync {
    /// A new secret for endpoint `endpoint`: the `whsec_` text shown once, and the sealed bytes
    /// the store keeps.
    fn issue(&self, endpoint: uuid::Uuid) -> (String, Vec<u8>);
}
