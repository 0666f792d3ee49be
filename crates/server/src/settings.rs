//! Settings (SPEC section 7): the built-in defaults, then `$CREDITS_CONFIG_DIR/default.toml`,
//! then `$CREDITS_CONFIG_DIR/$CREDITS_ENV.toml`, then `CREDITS__SECTION__KEY` variables. The
//! settings are built once in `main` and handed down; nothing reads them from a global.

use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

/// The base layer, built into the binary so the service starts the same way from any directory.
pub const DEFAULTS: &str = include_str!("../../../config/default.toml");
/// The default catalog, built into the binary (used when `catalog.path` is left at its default
/// and that file is not there, e.g. a binary run outside the repository).
pub const DEFAULT_CATALOG: &str = include_str!("../../../config/catalog.toml");
pub const DEFAULT_CATALOG_PATH: &str = "config/catalog.toml";

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub clock: ClockSettings,
    pub runs: RunsSettings,
    pub workers: WorkerSettings,
    pub catalog: CatalogSettings,
    pub stripe: StripeSettings,
    pub smtp: SmtpSettings,
    pub mail: MailSettings,
    pub log: LogSettings,
    pub billing: BillingSettings,
    pub alerts: AlertsSettings,
    pub payments: PaymentsSettings,
    pub webhooks: WebhookSettings,
    #[serde(default)]
    pub metrics: MetricsSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PaymentsSettings {
    /// `stripe`, or `simulated` (SPEC section 5: this machine plays Stripe; refused in production).
    pub provider: PaymentsProvider,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentsProvider {
    Stripe,
    Simulated,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AlertsSettings {
    /// R23: `credits.expiring` this many days before a bucket with credits left expires.
    pub expiry_notice_days: i64,
}

#[derive(Clone, Deserialize)]
pub struct WebhookSettings {
    /// Base64 of 32 bytes: seals the endpoints' signing secrets at rest (env only).
    pub encryption_key: Option<String>,
    /// Tests: http URLs may be endpoints.
    pub allow_insecure: bool,
    /// Tests: private, loopback and link-local addresses may be targets.
    pub allow_private: bool,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("encryption_key", &self.encryption_key.as_ref().map(|_| "<set>"))
            .field("allow_insecure", &self.allow_insecure)
            .field("allow_private", &self.allow_private)
            .finish()
    }
}

#[derive(Clone, Default, Deserialize)]
pub struct MetricsSettings {
    /// When set, `/metrics` needs it as a bearer token (env only).
    pub token: Option<String>,
}

impl std::fmt::Debug for MetricsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsSettings").field("token", &self.token.as_ref().map(|_| "<set>")).finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct BillingSettings {
    /// R14: days a past_due account keeps its plan after the renewal's first failed payment.
    pub past_due_grace_days: i64,
    /// R22: the billing page mail links to; empty: `server.public_url` + `/billing`.
    #[serde(default)]
    pub page_url: String,
    /// R28: every payment taxed by Stripe Tax, prices before tax (every instance the same).
    #[serde(default)]
    pub automatic_tax: bool,
}

impl Settings {
    /// R22: where mail sends an account to manage its billing.
    pub fn billing_page_url(&self) -> String {
        match self.billing.page_url.trim() {
            "" => format!("{}/billing", self.server.public_url.trim_end_matches('/')),
            url => url.to_string(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// The service's address as people and Stripe reach it (billing-page links, mail, checkout
    /// return pages). Empty in the configuration: `http://{host}:{port}`, the port being the one
    /// it listens on once bound (`app::bind`).
    pub public_url: String,
    /// Whether `public_url` was left to its default (and so follows the bound port).
    #[serde(skip)]
    pub public_url_defaulted: bool,
    pub http_workers: usize,
    pub shutdown_timeout_seconds: u64,
}

impl ServerSettings {
    /// `http://{host}:{port}` (an IPv6 host in brackets).
    pub fn default_public_url(&self, port: u16) -> String {
        let host = self.host.trim();
        if host.contains(':') && !host.starts_with('[') {
            format!("http://[{host}]:{port}")
        } else {
            format!("http://{host}:{port}")
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: String,
    pub pool_size: u32,
    /// Threads that read balances, each many at once (`credits_api::reads`).
    pub balance_readers: usize,
    pub migrate_on_start: bool,
    pub connect_timeout_seconds: u64,
    /// Section 7: the longest a statement waits for a lock (then 429 ACCOUNT_BUSY).
    pub lock_timeout_ms: u64,
    /// Section 7: the longest any statement runs.
    pub statement_timeout_ms: u64,
    /// Requests of one account that may hold a database connection at once on this instance;
    /// the others wait without one, up to `lock_timeout_ms` (then 429 ACCOUNT_BUSY).
    pub per_account_connections: u32,
}

#[derive(Clone, Default, Deserialize)]
pub struct AuthSettings {
    pub internal_token: Option<String>,
    /// Several canvas tokens at once (rotation); `internal_token`, if set, is one more.
    #[serde(default)]
    pub internal_tokens: Vec<String>,
    pub bootstrap_admin_token: Option<String>,
}

impl AuthSettings {
    /// Every canvas token accepted.
    pub fn canvas_tokens(&self) -> Vec<String> {
        self.internal_tokens
            .iter()
            .chain(self.internal_token.iter())
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect()
    }
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("internal_token", &self.internal_token.as_ref().map(|_| "<set>"))
            .field("internal_tokens", &self.internal_tokens.len())
            .field("bootstrap_admin_token", &self.bootstrap_admin_token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockMode {
    System,
    Test,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ClockSettings {
    pub mode: ClockMode,
    /// Test-only: pretend this machine's clock is this many seconds off (every instance reads
    /// the time from PostgreSQL, so rules do not move with it).
    #[serde(default)]
    pub skew_seconds: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RunsSettings {
    pub hold_ttl_seconds: i64,
    /// The most run requests one transaction writes (group commit).
    pub batch_max: u32,
    /// How many batches of runs one instance writes at once (each holds a connection).
    pub batch_writers: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WorkerSettings {
    pub interval_seconds: u64,
    pub batch: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CatalogSettings {
    pub path: PathBuf,
}

#[derive(Clone, Deserialize)]
pub struct StripeSettings {
    pub secret_key: Option<String>,
    #[serde(default)]
    pub webhook_secrets: Vec<String>,
    pub api_base: String,
}

impl std::fmt::Debug for StripeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeSettings")
            .field("secret_key", &self.secret_key.as_ref().map(|_| "<set>"))
            .field("webhook_secrets", &self.webhook_secrets.len())
            .field("api_base", &self.api_base)
            .finish()
    }
}

#[derive(Clone, Deserialize)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls: String,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .field("tls", &self.tls)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct MailSettings {
    pub from: String,
    pub sales_team: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct SettingsError(String);

impl Settings {
    /// The layers of SPEC section 7, read from `config_dir` and the process environment.
    pub fn load(config_dir: &Path, env_name: Option<&str>) -> Result<Settings, SettingsError> {
        Settings::load_with(config_dir, env_name, Environment::with_prefix("CREDITS"))
    }

    /// The same with another source of variables (tests pass their own).
    pub fn load_with(config_dir: &Path, env_name: Option<&str>, env: Environment) -> Result<Settings, SettingsError> {
        let mut builder = Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .add_source(File::from(config_dir.join("default.toml")).required(false));
        if let Some(name) = env_name.filter(|n| !n.is_empty()) {
            if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(SettingsError(format!("CREDITS_ENV {name:?} is not a plain name")));
            }
            builder = builder.add_source(File::from(config_dir.join(format!("{name}.toml"))).required(true));
        }
        let mut settings: Settings = builder
            .add_source(
                env.prefix_separator("__")
                    .separator("__")
                    .list_separator(",")
                    .with_list_parse_key("stripe.webhook_secrets")
                    .with_list_parse_key("auth.internal_tokens")
                    .try_parsing(true),
            )
            .build()
            .and_then(Config::try_deserialize)
            .map_err(|e| SettingsError(e.to_string()))?;
        settings.validate()?;
        if env_name == Some("production") {
            settings.refuse_test_settings()?;
        }
        if settings.server.public_url.trim().is_empty() {
            settings.server.public_url_defaulted = true;
            settings.server.public_url = settings.server.default_public_url(settings.server.port);
        }
        Ok(settings)
    }

    /// SPEC section 7: the settings that exist for tests are refused with
    /// `CREDITS_ENV=production`, naming the key.
    fn refuse_test_settings(&self) -> Result<(), SettingsError> {
        let refused = |key: &str, why: &str| {
            Err(SettingsError(format!("{key} {why}; it is for tests and refused with CREDITS_ENV=production")))
        };
        if self.payments.provider == PaymentsProvider::Simulated {
            return refused("payments.provider = \"simulated\"", "plays Stripe on this machine");
        }
        if self.clock.mode == ClockMode::Test {
            return refused("clock.mode = \"test\"", "lets an admin move the service's time");
        }
        if self.webhooks.allow_private {
            return refused("webhooks.allow_private", "lets webhooks reach private and loopback addresses");
        }
        if self.webhooks.allow_insecure {
            return refused("webhooks.allow_insecure", "lets webhooks go over plain http");
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), SettingsError> {
        if !(0..=365).contains(&self.billing.past_due_grace_days) {
            return Err(SettingsError("billing.past_due_grace_days must be between 0 and 365".into()));
        }
        if !(1..=90).contains(&self.alerts.expiry_notice_days) {
            return Err(SettingsError("alerts.expiry_notice_days must be between 1 and 90".into()));
        }
        if self.runs.hold_ttl_seconds <= 0 {
            return Err(SettingsError("runs.hold_ttl_seconds must be positive".into()));
        }
        if self.workers.interval_seconds == 0 || self.workers.batch <= 0 {
            return Err(SettingsError("workers.interval_seconds and workers.batch must be positive".into()));
        }
        if self.database.lock_timeout_ms == 0 || self.database.statement_timeout_ms == 0 {
            return Err(SettingsError("database.lock_timeout_ms and statement_timeout_ms must be positive".into()));
        }
        if self.runs.batch_max == 0 || self.runs.batch_writers == 0 {
            return Err(SettingsError("runs.batch_max and runs.batch_writers must be positive".into()));
        }
        if self.database.per_account_connections == 0 {
            return Err(SettingsError("database.per_account_connections must be positive".into()));
        }
        // Section 7: credentials never cross the network in clear.
        let loopback = matches!(self.smtp.host.trim(), "localhost" | "::1" | "[::1]")
            || self.smtp.host.trim().parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback());
        let credentials = self.smtp.username.as_deref().is_some_and(|u| !u.is_empty())
            || self.smtp.password.as_deref().is_some_and(|p| !p.is_empty());
        if credentials && self.smtp.tls.trim().eq_ignore_ascii_case("none") && !loopback {
            return Err(SettingsError(format!(
                "smtp.tls = \"none\" would send the SMTP credentials in clear to {}; set smtp.tls to \"starttls\" or \"tls\"",
                self.smtp.host
            )));
        }
        if self.database.pool_size == 0 {
            return Err(SettingsError("database.pool_size must be positive".into()));
        }
        if self.database.balance_readers == 0 || self.database.balance_readers as u32 >= self.database.pool_size {
            return Err(SettingsError("database.balance_readers must be positive and below database.pool_size".into()));
        }
        Ok(())
    }

    /// The catalog's text: the configured file; the built-in one only when the path was left at
    /// its default and no such file exists (a configured path that is missing is an error).
    pub fn catalog_text(&self) -> Result<(String, String), SettingsError> {
        match std::fs::read_to_string(&self.catalog.path) {
            Ok(text) => Ok((text, self.catalog.path.display().to_string())),
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound && self.catalog.path == Path::new(DEFAULT_CATALOG_PATH) =>
            {
                Ok((DEFAULT_CATALOG.to_string(), "the built-in default catalog".to_string()))
            }
            Err(e) => Err(SettingsError(format!("catalog.path {}: {e}", self.catalog.path.display()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(env_name: Option<&str>, vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        Settings::load_with(&dir, env_name, Environment::with_prefix("CREDITS").source(Some(vars)))
    }

    #[test]
    fn simulated_payments_are_for_trying_and_refused_in_production() {
        let simulated = [("CREDITS__PAYMENTS__PROVIDER", "simulated")];
        assert_eq!(load(None, &simulated).unwrap().payments.provider, PaymentsProvider::Simulated);
        assert_eq!(load(None, &[]).unwrap().payments.provider, PaymentsProvider::Stripe);
        let refused = load(Some("production"), &simulated).unwrap_err().to_string();
        assert!(refused.contains("simulated") && refused.contains("production"), "{refused}");
    }
}
