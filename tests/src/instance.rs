//! A running instance of the service: its settings for tests, started in-process, and the built binary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use actix_web::dev::ServerHandle;
use credits_server::app::{self, Services};
use credits_server::settings::Settings;

use crate::*;

pub const INTERNAL_TOKEN: &str = "test-internal-token-0123456789abcdef";
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";
/// The tests' `webhooks.encryption_key` (32 bytes, base64): a test fixture, sealing test secrets only.
pub const WEBHOOKS_KEY: &str = "dGVzdC1vbmx5LXdlYmhvb2stc2VhbGluZy1rZXktMzI=";

/// Settings for a test instance: the test clock, quick workers, a free port.
pub fn test_settings(db_url: &str, overrides: &[(&str, &str)]) -> Settings {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("CREDITS__DATABASE__URL".into(), db_url.to_string()),
        ("CREDITS__DATABASE__POOL_SIZE".into(), "8".into()),
        ("CREDITS__SERVER__PORT".into(), "0".into()),
        ("CREDITS__SERVER__HTTP_WORKERS".into(), "2".into()),
        ("CREDITS__SERVER__SHUTDOWN_TIMEOUT_SECONDS".into(), "1".into()),
        ("CREDITS__AUTH__INTERNAL_TOKEN".into(), INTERNAL_TOKEN.into()),
        ("CREDITS__AUTH__BOOTSTRAP_ADMIN_TOKEN".into(), ADMIN_TOKEN.into()),
        ("CREDITS__CLOCK__MODE".into(), "test".into()),
        ("CREDITS__WORKERS__INTERVAL_SECONDS".into(), "1".into()),
        (
            "CREDITS__CATALOG__PATH".into(),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/catalog.toml").display().to_string(),
        ),
        ("CREDITS__LOG__LEVEL".into(), "warn".into()),
        ("CREDITS__STRIPE__WEBHOOK_SECRETS".into(), stripe::WEBHOOK_SECRETS.join(",")),
        ("CREDITS__WEBHOOKS__ENCRYPTION_KEY".into(), WEBHOOKS_KEY.into()),
        // The tests' receivers are http on 127.0.0.1.
        ("CREDITS__WEBHOOKS__ALLOW_INSECURE".into(), "true".into()),
        ("CREDITS__WEBHOOKS__ALLOW_PRIVATE".into(), "true".into()),
    ]);
    for (k, v) in overrides {
        vars.insert(k.to_string(), v.to_string());
    }
    let env = config::Environment::with_prefix("CREDITS").source(Some(vars));
    Settings::load_with(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../config"), None, env)
        .expect("test settings load")
}

/// One running instance of the service.
pub struct Instance {
    pub base_url: String,
    handle: ServerHandle,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<std::io::Result<()>>>>,
}

impl Instance {
    pub fn start(db_url: &str, overrides: &[(&str, &str)]) -> Instance {
        Instance::start_serving(db_url, overrides, true)
    }

    /// The HTTP API alone when `with_workers` is false (another process does the background work).
    pub fn start_serving(db_url: &str, overrides: &[(&str, &str)], with_workers: bool) -> Instance {
        let settings = test_settings(db_url, overrides);
        // Warnings and errors on stderr: nextest shows them for a failing test.
        credits_server::telemetry::init(credits_server::settings::LogFormat::Pretty, "warn", true);
        let bound = app::bind(&settings).expect("server binds");
        let services = Services::build(&bound.settings).expect("services build");
        let running = app::start(bound, services, with_workers).expect("server starts");
        let (port, handle, task) = running.spawn();
        Instance { base_url: format!("http://127.0.0.1:{port}"), handle, task: std::sync::Mutex::new(Some(task)) }
    }

    /// Stop gracefully: no new connections, in-flight requests finish, then the workers stop.
    pub async fn stop(&self) {
        self.handle.stop(true).await;
        let task = self.task.lock().unwrap().take();
        if let Some(task) = task {
            task.await.expect("the server task ends").expect("the server ends cleanly");
        }
    }
}

/// The built `credits` binary (`make unit` builds it first): `CREDITS_BIN`, or target/debug/credits.
pub fn credits_bin() -> PathBuf {
    let path = std::env::var("CREDITS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/credits"));
    assert!(path.exists(), "{} is not built: run `cargo build -p credits-server` (make unit does)", path.display());
    path
}
