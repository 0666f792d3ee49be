//! What every handler shares: the ports, the catalog and the credentials it checks.

use std::sync::Arc;

use credits_domain::catalog::Catalog;
use credits_domain::ports::{
    AccountStore, ApiKeyStore, Clock, Maintenance, OperatorStore, ReportStore, RunStore, Store, TestClock,
    VerificationStore,
};
use sha2::{Digest, Sha256};

/// The SHA-256 of a token, hex: how operator tokens are stored and looked up, and how the
/// configured tokens are compared (comparing digests leaks nothing about the token).
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new secret token: `prefix` and 256 bits from the thread's CSPRNG, hex (API keys `ck_`,
/// operator tokens `cop_`, page links, sessions and CSRF tokens without a prefix).
pub fn new_token(prefix: &str) -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// Operator tokens start with this.
pub const OPERATOR_TOKEN_PREFIX: &str = "cop_";

#[derive(Clone)]
pub struct Credentials {
    /// Every canvas token accepted (several while one is rotated out).
    internal_token_hashes: Vec<String>,
    bootstrap_admin_hash: Option<String>,
    metrics_token_hash: Option<String>,
}

impl Credentials {
    /// Empty tokens count as unset: an empty bearer must never authenticate.
    pub fn new(internal_tokens: &[String], bootstrap_admin_token: Option<&str>) -> Credentials {
        let hash = |t: Option<&str>| t.map(str::trim).filter(|t| !t.is_empty()).map(token_hash);
        Credentials {
            internal_token_hashes: internal_tokens.iter().filter_map(|t| hash(Some(t))).collect(),
            bootstrap_admin_hash: hash(bootstrap_admin_token),
            metrics_token_hash: None,
        }
    }

    /// Section 7: `/metrics` needs this bearer token when one is set.
    pub fn with_metrics_token(mut self, token: Option<&str>) -> Credentials {
        self.metrics_token_hash = token.map(str::trim).filter(|t| !t.is_empty()).map(token_hash);
        self
    }

    pub fn is_internal(&self, token_hash: &str) -> bool {
        self.internal_token_hashes.iter().any(|h| h == token_hash)
    }

    /// Whether a scrape with this bearer token (if any) may read `/metrics`.
    pub fn may_scrape(&self, bearer: Option<&str>) -> bool {
        match &self.metrics_token_hash {
            None => true,
            Some(wanted) => bearer.is_some_and(|t| token_hash(t) == *wanted),
        }
    }

    pub fn is_bootstrap_admin(&self, token_hash: &str) -> bool {
        self.bootstrap_admin_hash.as_deref() == Some(token_hash)
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// Balance reads, coalesced (`crate::reads`).
    pub balances: Arc<crate::reads::BalanceReads>,
    /// Set when `clock.mode = "test"`: enables `/admin/v1/test-clock`.
    pub test_clock: Option<Arc<dyn TestClock>>,
    pub catalog: Arc<Catalog>,
    pub credentials: Credentials,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Stripe, as checkout calls it.
    pub payments: Arc<dyn credits_domain::payments::PaymentGateway>,
    /// Where verification mail goes besides the account.
    pub mail: credits_domain::ports::MailContext,
    /// Verifies and reads Stripe's webhook deliveries.
    pub webhooks: Arc<dyn credits_domain::payments::WebhookDecoder>,
    /// Section 7: how many of one account's requests hold a connection at once.
    pub gate: Arc<crate::gate::AccountGate>,
    /// Section 9: makes and seals endpoint secrets; `None` without `webhooks.encryption_key`.
    pub secrets: Option<Arc<dyn credits_domain::notify::webhooks::SecretKeeper>>,
    pub webhook_policy: credits_domain::notify::service::TargetPolicy,
    pub pages: PagesConfig,
    /// R28: `billing.automatic_tax`.
    pub automatic_tax: bool,
}

/// What the pages need of the configuration.
#[derive(Debug, Clone, Default)]
pub struct PagesConfig {
    /// `server.public_url`: where a person's browser reaches the service (the billing link).
    pub public_url: String,
    /// `payments.provider = "simulated"`: the `/simulated/…` pages play Stripe's part.
    pub simulated: bool,
}

impl AppState {
    /// A use case off the async threads (Diesel is synchronous), with the whole store and the time
    /// now read from the one clock: the base of the use cases' ports (`Port`), and of a page that
    /// composes several use cases' reads on one connection (it narrows the store to their ports).
    pub async fn call<T, F>(&self, work: F) -> Result<T, crate::error::ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&(dyn Store + 'static), chrono::DateTime<chrono::Utc>) -> Result<T, crate::error::ApiError>
            + Send
            + 'static,
    {
        let (store, clock) = (self.store.clone(), self.clock.clone());
        crate::edge::blocking(move || {
            let now = clock.now()?;
            work(store.as_ref(), now)
        })
        .await
    }

    /// A run request of `account` handed to the store's run writer (`RunStore::submit_run`) with
    /// the time now, its answer awaited holding no thread: many requests wait for one batch's
    /// commit at the cost of none. The clock is read in place when it is in memory, else off the
    /// async threads (the test clock reads the database).
    pub async fn run(
        &self,
        account: credits_domain::ids::AccountId,
        op: credits_domain::runs::RunOp,
        idem: Option<credits_domain::idempotency::IdempotencyKey>,
    ) -> Result<credits_domain::idempotency::Replayable<credits_domain::views::RunView>, crate::error::ApiError> {
        let now = if self.clock.in_memory() {
            self.clock.now()?
        } else {
            let clock = self.clock.clone();
            crate::edge::blocking(move || Ok(clock.now()?)).await?
        };
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.store.submit_run(
            credits_domain::runs::RunJob { account, op, now, idem },
            Box::new(move |a| {
                // The request may have gone (its client left); its run is written all the same.
                let _ = answer.send(a);
            }),
        );
        match answered.await {
            Ok(a) => Ok(a?),
            Err(_) => {
                tracing::error!("the run writer dropped a request unanswered");
                Err(crate::error::ApiError::internal())
            }
        }
    }

    /// The accounts use case's port: accounts, balances, the ledger, trials.
    pub fn accounts(&self) -> Port<'_, dyn AccountStore> {
        Port { state: self, narrow: |s| s }
    }

    /// The runs use case's port (quotes and reads; runs themselves go through [`AppState::run`]).
    pub fn runs(&self) -> Port<'_, dyn RunStore> {
        Port { state: self, narrow: |s| s }
    }

    /// The API keys use case's port.
    pub fn keys(&self) -> Port<'_, dyn ApiKeyStore> {
        Port { state: self, narrow: |s| s }
    }

    /// The operators' use cases' port (the console and `/admin/v1`).
    pub fn operators(&self) -> Port<'_, dyn OperatorStore> {
        Port { state: self, narrow: |s| s }
    }

    /// Section 10's reports' port.
    pub fn reports(&self) -> Port<'_, dyn ReportStore> {
        Port { state: self, narrow: |s| s }
    }

    /// Business verification's port.
    pub fn verifications(&self) -> Port<'_, dyn VerificationStore> {
        Port { state: self, narrow: |s| s }
    }

    /// The payments use cases' store port (checkout and Stripe's events go through
    /// [`AppState::checkout`] and `WebhookService`).
    pub fn purchases(&self) -> Port<'_, dyn credits_domain::payments::PaymentStore> {
        Port { state: self, narrow: |s| s }
    }

    /// The billing page's links and sessions.
    pub fn page_links(&self) -> Port<'_, dyn credits_domain::pages::PageStore> {
        Port { state: self, narrow: |s| s }
    }

    /// The console's sessions.
    pub fn console(&self) -> Port<'_, dyn credits_domain::pages::ConsoleStore> {
        Port { state: self, narrow: |s| s }
    }

    /// R24's team.
    pub fn members(&self) -> Port<'_, dyn credits_domain::members::MemberStore> {
        Port { state: self, narrow: |s| s }
    }

    /// Readiness and the figures `/metrics` shows.
    pub fn upkeep(&self) -> Port<'_, dyn Maintenance> {
        Port { state: self, narrow: |s| s }
    }

    /// The notify use cases (`NotifyService`) for `account`, with one of its places (`gate`) when
    /// `changes` (a read takes none), off the async threads, with the time now.
    pub async fn notify<T, F>(
        &self,
        account: credits_domain::ids::AccountId,
        changes: bool,
        work: F,
    ) -> Result<T, crate::error::ApiError>
    where
        T: Send + 'static,
        F: FnOnce(
                &credits_domain::notify::service::NotifyService<'_, dyn Store>,
                chrono::DateTime<chrono::Utc>,
            ) -> Result<T, credits_domain::notify::store::NotifyError>
            + Send
            + 'static,
    {
        let _inside = if changes { Some(self.gate.enter(account).await?) } else { None };
        let (secrets, policy) = (self.secrets.clone(), self.webhook_policy);
        self.call(move |store, now| {
            let service = credits_domain::notify::service::NotifyService { store, secrets: secrets.as_deref(), policy };
            Ok(work(&service, now)?)
        })
        .await
    }

    /// The checkout use case (`CheckoutService`) off the async threads, with the time now.
    pub async fn checkout<T, F>(&self, work: F) -> Result<T, crate::error::ApiError>
    where
        T: Send + 'static,
        F: FnOnce(
                &credits_domain::payments::CheckoutService<'_, dyn Store, dyn credits_domain::payments::PaymentGateway>,
                chrono::DateTime<chrono::Utc>,
            ) -> Result<T, crate::error::ApiError>
            + Send
            + 'static,
    {
        let (gateway, catalog, automatic_tax) = (self.payments.clone(), self.catalog.clone(), self.automatic_tax);
        self.call(move |store, now| {
            work(
                &credits_domain::payments::CheckoutService {
                    store,
                    gateway: gateway.as_ref(),
                    catalog: &catalog,
                    automatic_tax,
                },
                now,
            )
        })
        .await
    }
}

/// One use case's port of the store: a handler or a page reaches the store only through the few
/// methods its use case needs (`AppState::accounts`, `keys`, …), off the async threads, with the
/// time now from the one clock, and — for a change of an account — one of its places (`gate`).
pub struct Port<'s, P: ?Sized> {
    state: &'s AppState,
    narrow: for<'a> fn(&'a (dyn Store + 'static)) -> &'a P,
}

impl<P: ?Sized + 'static> Port<'_, P> {
    /// A read, or a change not of one account (operators, links).
    pub async fn call<T, F>(self, work: F) -> Result<T, crate::error::ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&P, chrono::DateTime<chrono::Utc>) -> Result<T, crate::error::ApiError> + Send + 'static,
    {
        let narrow = self.narrow;
        self.state.call(move |store, now| work(narrow(store), now)).await
    }

    /// A change of `account`: first one of its places on this instance (section 7).
    pub async fn call_for<T, F>(
        self,
        account: credits_domain::ids::AccountId,
        work: F,
    ) -> Result<T, crate::error::ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&P, chrono::DateTime<chrono::Utc>) -> Result<T, crate::error::ApiError> + Send + 'static,
    {
        let _inside = self.state.gate.enter(account).await?;
        self.call(work).await
    }
}
