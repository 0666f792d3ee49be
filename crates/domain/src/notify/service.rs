//! The notify use cases (R22, R23, section 9) over the ports they need: the `NotifyStore` and,
//! to register an endpoint, a `SecretKeeper`. The JSON API and the billing page call these; they
//! parse and answer, the rules are applied here once.
//!
//! A webhook URL's host is resolved by the adapter (it is I/O, with its own timeout) between
//! [`NotifyService::check_endpoint`] and [`NotifyService::create_endpoint`], which judges every
//! address it got.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::alerts;
use super::autotopup::AutoTopupRequest;
use super::store::{
    AlertsView, AutoTopupView, DeliveryAttemptView, EndpointView, NewEndpoint, NotifyError, NotifyStore,
};
use super::webhooks::{EndpointRequest, EventType, SecretKeeper, check_target, validate_endpoint};
use crate::ids::AccountId;

/// `webhooks.allow_insecure` and `webhooks.allow_private` (false outside tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    pub allow_insecure: bool,
    pub allow_private: bool,
}

/// An endpoint's request as the adapter parsed it: the URL as written, and its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInput<'a> {
    /// The URL, normalised by the adapter's parser.
    pub url: &'a str,
    pub scheme: &'a str,
    pub host: Option<&'a str>,
    /// The host as an address, when it is one (no resolution then).
    pub address: Option<IpAddr>,
    pub events: &'a [String],
    pub description: Option<String>,
}

/// An endpoint request that passed the checks that need no network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedEndpoint {
    pub url: String,
    pub events: Vec<EventType>,
    pub description: Option<String>,
    /// The address the URL names, when it names one; otherwise its host is resolved.
    pub address: Option<IpAddr>,
}

/// What a host name resolved to (the adapter's lookup), or why it did not.
pub type Resolved = Result<Vec<IpAddr>, String>;

pub struct NotifyService<'a, S: NotifyStore + ?Sized> {
    pub store: &'a S,
    /// `None` without `webhooks.encryption_key`: endpoints cannot be registered.
    pub secrets: Option<&'a dyn SecretKeeper>,
    pub policy: TargetPolicy,
}

impl<S: NotifyStore + ?Sized> NotifyService<'_, S> {
    pub fn auto_topup(&self, account: AccountId, now: DateTime<Utc>) -> Result<AutoTopupView, NotifyError> {
        self.store.auto_topup(account, now)
    }

    /// R22: validated under the account's lock (a saved card, a real pack), by the store.
    pub fn set_auto_topup(
        &self,
        account: AccountId,
        request: &AutoTopupRequest,
        now: DateTime<Utc>,
    ) -> Result<AutoTopupView, NotifyError> {
        self.store.set_auto_topup(account, request, now)
    }

    pub fn alerts(&self, account: AccountId) -> Result<AlertsView, NotifyError> {
        self.store.alerts(account)
    }

    /// R23: a positive whole number of credits, or none.
    pub fn set_alerts(
        &self,
        account: AccountId,
        raw: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<AlertsView, NotifyError> {
        let threshold = alerts::threshold(raw).map_err(NotifyError::Invalid)?;
        self.store.set_alerts(account, threshold, now)
    }

    pub fn endpoints(&self, account: AccountId) -> Result<Vec<EndpointView>, NotifyError> {
        self.store.endpoints(account)
    }

    /// Section 9's checks that need no network: https, a host, known events, a description's
    /// length; and that endpoints can be registered here at all (an encryption key).
    pub fn check_endpoint(&self, input: &EndpointInput<'_>) -> Result<CheckedEndpoint, NotifyError> {
        let events = validate_endpoint(
            &EndpointRequest {
                url: input.url,
                scheme: input.scheme,
                host: input.host,
                events: input.events,
                description: input.description.as_deref(),
            },
            self.policy.allow_insecure,
        )
        .map_err(NotifyError::Invalid)?;
        Ok(CheckedEndpoint {
            url: input.url.to_string(),
            events,
            description: input.description.clone().filter(|d| !d.trim().is_empty()),
            address: input.address,
        })
    }

    /// Section 9: the URL's host may not lead inside: an address is judged as it is, a name by
    /// what it `resolved` to (refused when none of its addresses may be a target). Then its
    /// secret is made and sealed, and the store keeps it unless the account has 10 already.
    /// Returns the endpoint and its `whsec_` secret, shown this once.
    pub fn create_endpoint(
        &self,
        account: AccountId,
        endpoint: CheckedEndpoint,
        resolved: Option<Resolved>,
        now: DateTime<Utc>,
    ) -> Result<(EndpointView, String), NotifyError> {
        self.judge_target(&endpoint, resolved)?;
        let Some(keeper) = self.secrets else {
            return Err(NotifyError::Unconfigured(
                "webhook endpoints cannot be registered: this instance has no webhooks.encryption_key".into(),
            ));
        };
        let id = Uuid::now_v7();
        let (secret, sealed) = keeper.issue(id);
        let new = NewEndpoint {
            id,
            url: endpoint.url,
            events: endpoint.events,
            description: endpoint.description,
            secret_sealed: sealed,
        };
        let view = self.store.create_endpoint(account, &new, now)?;
        Ok((view, secret))
    }

    fn judge_target(&self, endpoint: &CheckedEndpoint, resolved: Option<Resolved>) -> Result<(), NotifyError> {
        let refused = |why: String| NotifyError::Invalid(format!("url may not be a webhook target: {why}"));
        let allow = self.policy.allow_private;
        if let Some(ip) = endpoint.address {
            return check_target(ip, allow).map_err(|e| refused(e.to_string()));
        }
        let addresses = match resolved {
            None => return Err(refused("its host was not resolved".into())),
            Some(Err(why)) => return Err(refused(why)),
            Some(Ok(addresses)) => addresses,
        };
        let mut last = None;
        for ip in addresses {
            match check_target(ip, allow) {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e.to_string()),
            }
        }
        Err(refused(last.unwrap_or_else(|| "its host has no address".into())))
    }

    pub fn delete_endpoint(&self, account: AccountId, endpoint: Uuid) -> Result<(), NotifyError> {
        self.store.delete_endpoint(account, endpoint)
    }

    pub fn deliveries(
        &self,
        account: AccountId,
        endpoint: Uuid,
        limit: i64,
    ) -> Result<Vec<DeliveryAttemptView>, NotifyError> {
        self.store.deliveries(account, endpoint, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{MemoryNotify, PlainSecrets};
    use crate::notify::webhooks::MAX_ENDPOINTS;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    const ACCOUNT: AccountId = AccountId(Uuid::nil());

    fn input<'a>(url: &'a str, host: &'a str, events: &'a [String]) -> EndpointInput<'a> {
        EndpointInput {
            url,
            scheme: url.split(':').next().unwrap(),
            host: Some(host),
            address: host.parse().ok(),
            events,
            description: Some("  ".into()),
        }
    }

    fn public() -> Option<Resolved> {
        Some(Ok(vec!["93.184.216.34".parse().unwrap()]))
    }

    #[test]
    fn an_endpoint_is_checked_judged_sealed_and_kept_and_its_secret_shown_once() {
        let store = MemoryNotify::default();
        let service = NotifyService { store: &store, secrets: Some(&PlainSecrets), policy: TargetPolicy::default() };
        let events = ["balance.low".to_string(), "balance.low".to_string()];
        let checked =
            service.check_endpoint(&input("https://hooks.example.com/x", "hooks.example.com", &events)).unwrap();
        assert_eq!(
            (checked.events.len(), checked.description.as_deref()),
            (1, None),
            "events once, a blank description none"
        );
        let (view, secret) = service.create_endpoint(ACCOUNT, checked, public(), now()).unwrap();
        assert!(secret.starts_with("whsec_"));
        let kept = store.kept();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].secret_sealed, format!("sealed:{secret}").into_bytes(), "the store keeps it sealed only");
        assert_eq!(service.endpoints(ACCOUNT).unwrap(), vec![view]);
    }

    #[test]
    fn a_target_inside_or_unresolved_is_refused_and_nothing_is_kept() {
        let store = MemoryNotify::default();
        let service = NotifyService { store: &store, secrets: Some(&PlainSecrets), policy: TargetPolicy::default() };
        let events = ["balance.low".to_string()];
        let refused = |host: &str, resolved: Option<Resolved>| {
            let url = format!("https://{host}/x");
            let checked = service.check_endpoint(&input(&url, host, &events)).unwrap();
            service.create_endpoint(ACCOUNT, checked, resolved, now())
        };
        assert!(matches!(refused("10.0.0.1", None), Err(NotifyError::Invalid(m)) if m.contains("10.0.0.1")));
        let inside = Some(Ok(vec!["127.0.0.1".parse().unwrap(), "192.168.1.1".parse().unwrap()]));
        assert!(
            matches!(refused("internal.example", inside), Err(NotifyError::Invalid(m)) if m.contains("192.168.1.1"))
        );
        assert!(
            matches!(refused("nowhere.example", Some(Err("does not resolve".into()))), Err(NotifyError::Invalid(m)) if m.contains("does not resolve"))
        );
        assert!(
            matches!(refused("empty.example", Some(Ok(vec![]))), Err(NotifyError::Invalid(m)) if m.contains("no address"))
        );
        // One public address among them is enough (the delivery connects only to one it judged).
        let mixed = Some(Ok(vec!["10.0.0.1".parse().unwrap(), "93.184.216.34".parse().unwrap()]));
        assert!(refused("mixed.example", mixed).is_ok());
        assert_eq!(store.kept().len(), 1);

        let allowing = NotifyService {
            store: &store,
            secrets: Some(&PlainSecrets),
            policy: TargetPolicy { allow_insecure: true, allow_private: true },
        };
        let checked = allowing.check_endpoint(&input("http://127.0.0.1:9/x", "127.0.0.1", &events)).unwrap();
        assert!(allowing.create_endpoint(ACCOUNT, checked, None, now()).is_ok(), "tests may allow inside targets");
    }

    #[test]
    fn a_request_not_https_or_of_unknown_events_is_refused_before_any_lookup() {
        let store = MemoryNotify::default();
        let service = NotifyService { store: &store, secrets: Some(&PlainSecrets), policy: TargetPolicy::default() };
        let events = ["balance.low".to_string()];
        assert!(service.check_endpoint(&input("http://hooks.example.com/x", "hooks.example.com", &events)).is_err());
        let unknown = ["balance.sideways".to_string()];
        assert!(matches!(
            service.check_endpoint(&input("https://hooks.example.com/x", "hooks.example.com", &unknown)),
            Err(NotifyError::Invalid(m)) if m.contains("balance.sideways")
        ));
    }

    #[test]
    fn without_an_encryption_key_no_endpoint_is_registered() {
        let store = MemoryNotify::default();
        let service = NotifyService { store: &store, secrets: None, policy: TargetPolicy::default() };
        let events = ["balance.low".to_string()];
        let checked =
            service.check_endpoint(&input("https://hooks.example.com/x", "hooks.example.com", &events)).unwrap();
        assert!(matches!(
            service.create_endpoint(ACCOUNT, checked, public(), now()),
            Err(NotifyError::Unconfigured(_))
        ));
        assert!(store.kept().is_empty());
    }

    #[test]
    fn the_eleventh_endpoint_is_refused_by_the_store_with_the_real_count() {
        let store = MemoryNotify::default();
        let service = NotifyService { store: &store, secrets: Some(&PlainSecrets), policy: TargetPolicy::default() };
        let events = ["balance.low".to_string()];
        for _ in 0..MAX_ENDPOINTS {
            let checked =
                service.check_endpoint(&input("https://hooks.example.com/x", "hooks.example.com", &events)).unwrap();
            service.create_endpoint(ACCOUNT, checked, public(), now()).unwrap();
        }
        let checked =
            service.check_endpoint(&input("https://hooks.example.com/x", "hooks.example.com", &events)).unwrap();
        assert!(
            matches!(service.create_endpoint(ACCOUNT, checked, public(), now()), Err(NotifyError::Invalid(m)) if m.contains("at most 10"))
        );
        assert_eq!(store.kept().len(), MAX_ENDPOINTS);
    }

    #[test]
    fn an_alert_threshold_is_a_positive_whole_number_or_none() {
        let store = MemoryNotify::default();
        let service = NotifyService { store: &store, secrets: None, policy: TargetPolicy::default() };
        assert!(matches!(service.set_alerts(ACCOUNT, Some(0), now()), Err(NotifyError::Invalid(_))));
        assert!(matches!(service.set_alerts(ACCOUNT, Some(-5), now()), Err(NotifyError::Invalid(_))));
        assert_eq!(store.threshold(), None, "a refused threshold is not kept");
        service.set_alerts(ACCOUNT, Some(100), now()).unwrap();
        assert_eq!(store.threshold(), Some(crate::Credits::new(100)));
        service.set_alerts(ACCOUNT, None, now()).unwrap();
        assert_eq!(store.threshold(), None);
    }
}
