//! Wiring: settings → catalog, pool, store, clock → the HTTP server and the workers.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle, Service};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{App, HttpMessage, HttpServer, web};
use credits_api::reads::BalanceReads;
use credits_api::{AppState, Credentials, Metrics};
use credits_db::{PgClock, PgPool, PgStore, PgTestClock};
use credits_domain::account::BillingRules;
use credits_domain::catalog::{Catalog, RawCatalog};
use credits_domain::mail::Mailer;
use credits_domain::payments::PaymentGateway;
use credits_domain::ports::{Clock, MailContext, Store, TestClock};
use credits_email::{SmtpConfig, SmtpMailer, Tls};
use credits_stripe::{StripeGateway, StripeWebhooks, UnconfiguredGateway};
use tracing_actix_web::{RequestId, TracingLogger};

use crate::settings::{ClockMode, Settings};
use crate::workers::{self, Workers};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
    #[error("{message} (in {source_name})")]
    Catalog { source_name: String, message: String },
    #[error("database: {0}")]
    Database(String),
    #[error("webhooks.encryption_key: {0}")]
    SealingKey(String),
    #[error("cannot listen on {addr}: {cause}")]
    Listen { addr: String, cause: std::io::Error },
    #[error("cannot start the {name} thread: {cause}")]
    Thread { name: &'static str, cause: std::io::Error },
}

/// The catalog from settings, validated: a bad one stops the service naming the bad entry.
pub fn load_catalog(settings: &Settings) -> Result<Catalog, StartError> {
    let (text, source_name) = settings.catalog_text()?;
    let raw: RawCatalog = toml::from_str(&text)
        .map_err(|e| StartError::Catalog { source_name: source_name.clone(), message: e.to_string() })?;
    let catalog = Catalog::from_raw(raw)
        .map_err(|e| StartError::Catalog { source_name: source_name.clone(), message: e.to_string() })?;
    tracing::info!(catalog = %source_name, plans = catalog.plans().len(), models = catalog.models().len(), "catalog loaded");
    Ok(catalog)
}

/// The calls the simulated Stripe answers with events (`payments.provider = "simulated"`).
type SimulatedCalls = std::sync::mpsc::Receiver<credits_domain::payments::SimulatedCall>;

/// Stripe at `stripe.api_base` with `stripe.secret_key`; without a key, checkout is unavailable.
/// Simulated, the calls it will answer with events come too.
fn payment_gateway(settings: &Settings) -> (Arc<dyn PaymentGateway>, Option<SimulatedCalls>) {
    if settings.payments.provider == crate::settings::PaymentsProvider::Simulated {
        tracing::warn!("payments.provider = \"simulated\": checkout opens this service's simulated payment pages");
        let (calls, answered) = std::sync::mpsc::channel();
        return (Arc::new(credits_stripe::SimulatedGateway::new(&settings.server.public_url, calls)), Some(answered));
    }
    let gateway: Arc<dyn PaymentGateway> =
        match settings.stripe.secret_key.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
            Some(key) => match StripeGateway::new(key, &settings.stripe.api_base) {
                Ok(gateway) => Arc::new(gateway),
                Err(e) => {
                    tracing::error!(error = %e, "the Stripe client could not be built; checkout is unavailable");
                    Arc::new(UnconfiguredGateway)
                }
            },
            None => {
                tracing::warn!("stripe.secret_key is not set; checkout answers PAYMENTS_UNAVAILABLE");
                Arc::new(UnconfiguredGateway)
            }
        };
    (gateway, None)
}

/// The SMTP sender of the outbox, from `smtp.*` and `mail.from`.
fn mailer(settings: &Settings) -> Option<Arc<dyn Mailer>> {
    let Some(tls) = Tls::parse(&settings.smtp.tls) else {
        tracing::error!(tls = %settings.smtp.tls, "smtp.tls must be none, starttls or tls; mail waits in the outbox");
        return None;
    };
    let config = SmtpConfig {
        host: settings.smtp.host.clone(),
        port: settings.smtp.port,
        username: settings.smtp.username.clone().filter(|u| !u.is_empty()),
        password: settings.smtp.password.clone().filter(|p| !p.is_empty()),
        tls,
        from: settings.mail.from.clone(),
    };
    match SmtpMailer::new(&config) {
        Ok(m) => Some(Arc::new(m)),
        Err(e) => {
            tracing::error!(error = %e, "mail cannot be sent; it waits in the outbox");
            None
        }
    }
}

/// How often an instance measures its clock against PostgreSQL's (section 7).
const CLOCK_MEASURE_SECONDS: u64 = 5;

/// Everything a process of the service needs, built once.
#[derive(Clone)]
pub struct Services {
    pub pool: PgPool,
    pub store: Arc<PgStore>,
    pub state: AppState,
    /// The outbox's sender; `None` when the SMTP settings are unusable (mail then waits).
    pub mailer: Option<Arc<dyn Mailer>>,
    /// Section 9: opens the endpoints' sealed secrets; `None` without `webhooks.encryption_key`.
    pub sealing: Option<credits_webhooks::seal::SealingKey>,
}

impl Services {
    pub fn build(settings: &Settings) -> Result<Services, StartError> {
        let catalog = Arc::new(load_catalog(settings)?);
        let timeouts = credits_db::Timeouts {
            lock: Duration::from_millis(settings.database.lock_timeout_ms),
            statement: Duration::from_millis(settings.database.statement_timeout_ms),
        };
        let pool = credits_db::bounded_pool(
            &settings.database.url,
            settings.database.pool_size,
            Duration::from_secs(settings.database.connect_timeout_seconds),
            Some(timeouts),
        );
        let metrics = Arc::new(Metrics::new());
        let store = Arc::new(
            PgStore::new(pool.clone(), catalog.clone(), settings.runs.hold_ttl_seconds)
                .with_billing(BillingRules {
                    past_due_grace: chrono::Duration::days(settings.billing.past_due_grace_days),
                })
                .with_notify(credits_db::NotifySettings { billing_url: settings.billing_page_url() })
                .with_observer(metrics.clone())
                .with_batching(credits_db::Batching {
                    batch_max: settings.runs.batch_max as usize,
                    writers: settings.runs.batch_writers as usize,
                    alone_places: settings.database.per_account_connections as usize,
                    wait: Duration::from_millis(settings.database.lock_timeout_ms),
                }),
        );
        let sealing = match settings.webhooks.encryption_key.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
            Some(key) => Some(
                credits_webhooks::seal::SealingKey::from_base64(key)
                    .map_err(|e| StartError::SealingKey(e.to_string()))?,
            ),
            None => {
                tracing::warn!(
                    "webhooks.encryption_key is not set: webhook endpoints cannot be registered or delivered to"
                );
                None
            }
        };
        let (clock, test_clock): (Arc<dyn Clock>, Option<Arc<dyn TestClock>>) = match settings.clock.mode {
            ClockMode::System => (
                PgClock::start(
                    pool.clone(),
                    chrono::Duration::seconds(settings.clock.skew_seconds),
                    Duration::from_secs(CLOCK_MEASURE_SECONDS),
                ),
                None,
            ),
            ClockMode::Test => {
                let c = Arc::new(PgTestClock::new(pool.clone()));
                (c.clone(), Some(c))
            }
        };
        let (payments, simulated) = payment_gateway(settings);
        let state = AppState {
            store: store.clone() as Arc<dyn Store>,
            balances: Arc::new(BalanceReads::start(
                store.clone() as Arc<dyn Store>,
                clock.clone(),
                metrics.clone(),
                settings.database.balance_readers,
                // A statement's longest run, and a little to get a connection and answer.
                Duration::from_millis(settings.database.statement_timeout_ms + 1000),
            )),
            clock,
            test_clock,
            catalog,
            credentials: Credentials::new(
                &settings.auth.canvas_tokens(),
                settings.auth.bootstrap_admin_token.as_deref(),
            )
            .with_metrics_token(settings.metrics.token.as_deref()),
            metrics,
            payments,
            mail: MailContext {
                sales_team: settings.mail.sales_team.clone(),
                admin_url: format!(
                    "{}/admin/v1/business-verifications",
                    settings.server.public_url.trim_end_matches('/')
                ),
            },
            webhooks: Arc::new(StripeWebhooks::new(&settings.stripe.webhook_secrets)),
            gate: Arc::new(credits_api::gate::AccountGate::new(
                settings.database.per_account_connections as usize,
                Duration::from_millis(settings.database.lock_timeout_ms),
            )),
            secrets: sealing.clone().map(|k| Arc::new(k) as Arc<dyn credits_domain::notify::webhooks::SecretKeeper>),
            pages: credits_api::state::PagesConfig {
                public_url: settings.server.public_url.clone(),
                simulated: settings.payments.provider == crate::settings::PaymentsProvider::Simulated,
            },
            automatic_tax: settings.billing.automatic_tax,
            webhook_policy: credits_domain::notify::service::TargetPolicy {
                allow_insecure: settings.webhooks.allow_insecure,
                allow_private: settings.webhooks.allow_private,
            },
        };
        if let Some(calls) = simulated {
            let follower = state.clone();
            std::thread::Builder::new()
                .name("simulated-stripe".into())
                .spawn(move || credits_web::follow_simulated_calls(&follower, calls))
                .map_err(|cause| StartError::Thread { name: "simulated-stripe", cause })?;
        }
        Ok(Services { pool, store, state, mailer: mailer(settings), sealing })
    }

    pub fn migrate(&self) -> Result<Vec<String>, StartError> {
        credits_db::migrate(&self.pool).map_err(|e| StartError::Database(e.to_string()))
    }
}

/// A running service: its HTTP server (if any) and its workers (if any).
pub struct Running {
    pub port: u16,
    pub handle: ServerHandle,
    server: Option<Server>,
    workers: Option<Workers>,
}

impl Running {
    /// Serve until a signal (or `handle.stop`), let in-flight requests finish, then stop the workers.
    pub async fn wait(mut self) -> std::io::Result<()> {
        let served = match self.server.take() {
            Some(server) => server.await,
            None => Ok(()),
        };
        if let Some(workers) = self.workers.take() {
            workers.stop().await;
        }
        served
    }

    /// Start the server on the current runtime in the background (tests).
    pub fn spawn(mut self) -> (u16, ServerHandle, tokio::task::JoinHandle<std::io::Result<()>>) {
        let port = self.port;
        let handle = self.handle.clone();
        let server = self.server.take();
        let workers = self.workers.take();
        let task = tokio::spawn(async move {
            let served = match server {
                Some(s) => s.await,
                None => Ok(()),
            };
            if let Some(w) = workers {
                w.stop().await;
            }
            served
        });
        (port, handle, task)
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The listening socket, bound before anything else is built, and the settings with
/// `server.public_url` following the port it got (section 7: port 0 or another port still hands
/// out links that open).
pub struct Bound {
    listener: TcpListener,
    addr: String,
    pub port: u16,
    pub settings: Settings,
}

pub fn bind(settings: &Settings) -> Result<Bound, StartError> {
    let addr = format!("{}:{}", settings.server.host, settings.server.port);
    let listener = TcpListener::bind(&addr).map_err(|cause| StartError::Listen { addr: addr.clone(), cause })?;
    let port = listener.local_addr().map_err(|cause| StartError::Listen { addr: addr.clone(), cause })?.port();
    let mut settings = settings.clone();
    if settings.server.public_url_defaulted {
        settings.server.public_url = settings.server.default_public_url(port);
    }
    Ok(Bound { listener, addr, port, settings })
}

/// Start the HTTP server on what `bind` bound (and the background workers when `with_workers`);
/// `services` are built from `bound.settings`.
pub fn start(bound: Bound, services: Services, with_workers: bool) -> Result<Running, StartError> {
    let Bound { listener, addr, port, settings } = bound;
    let settings = &settings;
    let state = web::Data::new(services.state.clone());
    let metrics = services.state.metrics.clone();
    let mut http = HttpServer::new(move || {
        let metrics = metrics.clone();
        App::new()
            .wrap_fn(move |req, srv| {
                let metrics = metrics.clone();
                let id = req.extensions().get::<RequestId>().map(|r| r.to_string());
                let started = std::time::Instant::now();
                let fut = srv.call(req);
                async move {
                    let mut res = fut.await?;
                    let seconds = started.elapsed().as_secs_f64();
                    let status = res.status().as_u16();
                    // The route's pattern, not its path: ids would make the label set unbounded.
                    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".into());
                    metrics.http(res.request().method().as_str(), &route, status, seconds);
                    // One access-log line per request, inside the request's span (its id).
                    tracing::info!(status, latency_ms = seconds * 1000.0, "request");
                    if let Some(v) = id.and_then(|id| HeaderValue::from_str(&id).ok()) {
                        res.headers_mut().insert(REQUEST_ID, v);
                    }
                    // The service's own time for the answer (W3C Server Timing): what the pages'
                    // budget (section 8) and `make bench` measure, without the network's share.
                    if let Ok(v) = HeaderValue::from_str(&format!("app;dur={:.2}", seconds * 1000.0)) {
                        res.headers_mut().insert(actix_web::http::header::HeaderName::from_static("server-timing"), v);
                    }
                    Ok(res)
                }
            })
            .wrap(credits_api::contract_errors())
            .wrap(TracingLogger::default())
            .app_data(state.clone())
            .app_data(credits_api::payload_config())
            .configure(credits_api::configure)
            .configure(credits_web::configure)
    })
    .shutdown_timeout(settings.server.shutdown_timeout_seconds);
    if settings.server.http_workers > 0 {
        http = http.workers(settings.server.http_workers);
    }
    let server = http.listen(listener).map_err(|cause| StartError::Listen { addr: addr.clone(), cause })?.run();
    let handle = server.handle();
    let workers = with_workers.then(|| workers::spawn(settings, &services));
    tracing::info!(%addr, port, workers = with_workers, "credits listening");
    Ok(Running { port, handle, server: Some(server), workers })
}

/// Only the background workers (`credits worker`).
pub fn start_workers(settings: &Settings, services: &Services) -> Workers {
    workers::spawn(settings, services)
}
