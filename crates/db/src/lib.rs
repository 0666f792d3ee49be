//! PostgreSQL persistence of `credits`: Diesel rows and schema, the r2d2 pool, the embedded
//! migrations, and the store ports of `credits-domain`. One use case is one transaction: the
//! account's row is locked (`SELECT … FOR UPDATE`), the rules decide, and everything they
//! decided (ledger rows, bucket balances, the idempotency record) is written before the commit.

mod accounts;
pub(crate) mod apikeys;
mod audit;
mod batch;
mod clock;
mod events;
mod idempotency;
pub mod invariants;
mod jobs;
mod ledger;
mod maintenance;
mod members;
mod notify;
mod operators;
mod pages;
mod payments;
mod prepared;
mod reports;
mod rows;
mod runs;
pub mod schema;
mod verification;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use credits_domain::account::BillingRules;
use credits_domain::catalog::Catalog;
use credits_domain::error::StoreError;
use credits_domain::ports::LedgerObserver;
use diesel::PgConnection;
use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub use batch::Batching;
pub use clock::{PgClock, PgTestClock};
pub use credits_domain::runs::{RunAnswer, RunJob, RunOp};
pub use notify::NotifySettings;

pub type PgPool = Pool<ConnectionManager<PgConnection>>;
type Conn = PooledConnection<ConnectionManager<PgConnection>>;

/// The migrations in `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// A pool of `size` connections to `url`. Connections are made lazily, so the service starts
/// (and answers `/readyz` 503) while the database is down, and recovers when it is back.
pub fn pool(url: &str, size: u32, connect_timeout: Duration) -> PgPool {
    bounded_pool(url, size, connect_timeout, None)
}

/// Section 7: every wait bounded. Each connection of the pool gets `lock_timeout` and
/// `statement_timeout` as it is made.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub lock: Duration,
    pub statement: Duration,
}

impl diesel::r2d2::CustomizeConnection<PgConnection, diesel::r2d2::Error> for Timeouts {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        use diesel::connection::SimpleConnection;
        conn.batch_execute(&format!(
            "SET lock_timeout = {}; SET statement_timeout = {}",
            self.lock.as_millis(),
            self.statement.as_millis()
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// [`pool`] with `timeouts` on every connection.
pub fn bounded_pool(url: &str, size: u32, connect_timeout: Duration, timeouts: Option<Timeouts>) -> PgPool {
    let builder = Pool::builder()
        .max_size(size.max(1))
        .min_idle(Some(0))
        .connection_timeout(connect_timeout)
        .test_on_check_out(false);
    let builder = match timeouts {
        Some(t) => builder.connection_customizer(Box::new(t)),
        None => builder,
    };
    builder.build_unchecked(ConnectionManager::new(url))
}

/// Apply the pending migrations; returns their names.
pub fn migrate(pool: &PgPool) -> Result<Vec<String>, StoreError> {
    let mut conn = pool.get().map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let applied =
        conn.run_pending_migrations(MIGRATIONS).map_err(|e| StoreError::Internal(format!("migration failed: {e}")))?;
    Ok(applied.iter().map(|m| m.to_string()).collect())
}

/// Revert every migration (tests check that migrations are reversible).
pub fn revert_all(pool: &PgPool) -> Result<(), StoreError> {
    let mut conn = pool.get().map_err(|e| StoreError::Unavailable(e.to_string()))?;
    conn.revert_all_migrations(MIGRATIONS).map_err(|e| StoreError::Internal(format!("revert failed: {e}")))?;
    Ok(())
}

/// The PostgreSQL implementation of every store port.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    catalog: Arc<Catalog>,
    hold_ttl: chrono::Duration,
    billing: BillingRules,
    notify: NotifySettings,
    observer: Option<Arc<dyn LedgerObserver>>,
    /// The instance's run writer (`batch`): shared by every clone of the store.
    runs: Arc<batch::Batcher>,
}

impl PgStore {
    pub fn new(pool: PgPool, catalog: Arc<Catalog>, hold_ttl_seconds: i64) -> PgStore {
        PgStore {
            pool,
            catalog,
            hold_ttl: chrono::Duration::seconds(hold_ttl_seconds),
            billing: BillingRules::default(),
            notify: NotifySettings::default(),
            observer: None,
            runs: Arc::new(batch::Batcher::new(Batching::default())),
        }
    }

    /// How runs are written together (`runs.batch_max`, `runs.batch_writers`, and the account's
    /// places for a request written alone).
    pub fn with_batching(mut self, batching: Batching) -> PgStore {
        self.runs = Arc::new(batch::Batcher::new(batching));
        self
    }

    /// The billing settings (`billing.*`) the rules read.
    pub fn with_billing(mut self, billing: BillingRules) -> PgStore {
        self.billing = billing;
        self
    }

    /// What notices link to (R22, R23, section 9).
    pub fn with_notify(mut self, notify: NotifySettings) -> PgStore {
        self.notify = notify;
        self
    }

    /// Tell `observer` of every ledger entry, once its transaction has committed.
    pub fn with_observer(mut self, observer: Arc<dyn LedgerObserver>) -> PgStore {
        self.observer = Some(observer);
        self
    }

    /// One idempotent use case: its own connection and transaction, with R11's record checked
    /// and written inside it (`idempotency::once`).
    fn once_tx<T: serde::Serialize, E: From<StoreError>>(
        &self,
        idem: Option<&credits_domain::idempotency::IdempotencyKey>,
        now: DateTime<Utc>,
        reused: impl FnOnce() -> E,
        work: impl FnOnce(&mut PgConnection, &mut ledger::TxLog) -> Result<T, Fail<E>>,
    ) -> Result<credits_domain::idempotency::Replayable<T>, E> {
        let mut conn = self.conn()?;
        self.write_tx(&mut conn, now, |conn, log| idempotency::once(conn, idem, now, reused, |conn| work(conn, log)))
    }

    /// Run `work` in one read-committed transaction (writers lock the account row explicitly),
    /// with the transaction's log (`ledger::TxLog`: the accounts it locked, the entries it
    /// posted). Before the commit, what its changes tell the accounts it locked is written with
    /// them (`notify::settle`: alerts, events, an auto top-up to start); after the commit, the
    /// observer hears of the entries it wrote.
    fn write_tx<T, E: From<StoreError>>(
        &self,
        conn: &mut PgConnection,
        now: DateTime<Utc>,
        work: impl FnOnce(&mut PgConnection, &mut ledger::TxLog) -> Result<T, Fail<E>>,
    ) -> Result<T, E> {
        let mut log = ledger::TxLog::default();
        let result = conn
            .build_transaction()
            .run(|conn| {
                let done = work(conn, &mut log)?;
                if !log.locked().is_empty() {
                    let captured = log.captured();
                    notify::settle(conn, &self.catalog, &self.notify, log.locked(), &|_| captured, now)?;
                }
                Ok(done)
            })
            .map_err(Fail::into_error);
        let posted = log.into_posted();
        if result.is_ok()
            && let Some(observer) = &self.observer
            && !posted.is_empty()
        {
            observer.committed(&posted);
        }
        result
    }

    fn conn(&self) -> Result<Conn, StoreError> {
        self.pool.get().map_err(|e| StoreError::Unavailable(e.to_string()))
    }
}

/// A transaction's failure: the rules refused (`Rule`), or the database failed (`Db`).
enum Fail<E> {
    Rule(E),
    Db(diesel::result::Error),
}

impl<E> From<diesel::result::Error> for Fail<E> {
    fn from(e: diesel::result::Error) -> Self {
        Fail::Db(e)
    }
}

fn store_error(e: diesel::result::Error) -> StoreError {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        Error::DatabaseError(DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand, info) => {
            StoreError::Unavailable(info.message().to_string())
        }
        // 55P03 lock_not_available: `lock_timeout` ran out (section 7).
        Error::DatabaseError(_, info) if info.message().contains("lock timeout") => {
            StoreError::Busy(info.message().to_string())
        }
        // 57014 query_canceled: `statement_timeout` ran out.
        Error::DatabaseError(_, info) if info.message().contains("statement timeout") => {
            StoreError::Unavailable(info.message().to_string())
        }
        other => StoreError::Internal(other.to_string()),
    }
}

impl<E: From<StoreError>> Fail<E> {
    fn into_error(self) -> E {
        match self {
            Fail::Rule(e) => e,
            Fail::Db(d) => E::from(store_error(d)),
        }
    }
}

/// Run `work` in one read-only repeatable-read transaction: a consistent snapshot, so a balance
/// never mixes a bucket before a capture with reservations after it.
fn read_tx<T, E: From<StoreError>>(
    conn: &mut PgConnection,
    work: impl FnOnce(&mut PgConnection) -> Result<T, Fail<E>>,
) -> Result<T, E> {
    conn.build_transaction().read_only().repeatable_read().run(work).map_err(Fail::into_error)
}

/// Timestamps are stored with microsecond precision; the clock hands out the same precision so
/// a value read back equals the value written (and an idempotent replay equals a fresh read).
pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}
