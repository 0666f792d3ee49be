//! Time, as every instance agrees on it (section 7): PostgreSQL's clock. An instance whose own
//! clock runs fast or slow still releases holds, expires buckets and counts rate limits at the
//! same moments as the others.
//!
//! - `clock.mode = "system"` ([`PgClock`]): the difference between PostgreSQL's clock and this
//!   machine's is measured at start and every few seconds after, by a thread of its own; `now()`
//!   is this machine's clock plus that difference. No request waits for a round trip.
//! - `clock.mode = "test"` ([`PgTestClock`]): PostgreSQL's clock plus an offset kept in the
//!   database, read with each `now()`, so moving it moves every instance at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use credits_domain::error::StoreError;
use credits_domain::ports::{Clock, TestClock};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Timestamptz};

use crate::schema::test_clock;
use crate::{PgPool, truncate_to_micros};

/// This machine's clock, shifted by `local_skew` (a test-only setting that pretends the machine's
/// clock is off).
fn local_now(local_skew: Duration) -> DateTime<Utc> {
    Utc::now() + local_skew
}

#[derive(QueryableByName)]
struct DbNow {
    #[diesel(sql_type = Timestamptz)]
    now: DateTime<Utc>,
}

pub struct PgClock {
    pool: PgPool,
    local_skew: Duration,
    /// PostgreSQL's clock less this machine's, in microseconds.
    difference: AtomicI64,
}

impl PgClock {
    /// Measured once before it is handed out (an unreachable database leaves the difference at 0
    /// until the next measurement).
    pub fn start(pool: PgPool, local_skew: Duration, every: StdDuration) -> Arc<PgClock> {
        let clock = Arc::new(PgClock { pool, local_skew, difference: AtomicI64::new(0) });
        if let Err(e) = clock.measure() {
            tracing::warn!(cause = %e, "the database clock could not be read; this machine's clock is used until it can");
        }
        let weak = Arc::downgrade(&clock);
        std::thread::Builder::new()
            .name("db-clock".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(every);
                    let Some(clock) = weak.upgrade() else { return };
                    if let Err(e) = clock.measure() {
                        tracing::debug!(cause = %e, "the database clock could not be read; the last difference stays");
                    }
                }
            })
            .expect("the clock thread starts");
        clock
    }

    /// One measurement: PostgreSQL's clock against the middle of the round trip.
    pub fn measure(&self) -> Result<Duration, StoreError> {
        let mut conn = self.pool.get().map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let sent = local_now(self.local_skew);
        let db: DbNow =
            diesel::sql_query("SELECT clock_timestamp() AS now").get_result(&mut conn).map_err(crate::store_error)?;
        let back = local_now(self.local_skew);
        let middle = sent + (back - sent) / 2;
        let difference = db.now - middle;
        self.difference.store(difference.num_microseconds().unwrap_or(0), Ordering::Relaxed);
        Ok(difference)
    }
}

impl Clock for PgClock {
    fn now(&self) -> Result<DateTime<Utc>, StoreError> {
        let difference = Duration::microseconds(self.difference.load(Ordering::Relaxed));
        Ok(truncate_to_micros(local_now(self.local_skew) + difference))
    }

    fn in_memory(&self) -> bool {
        true
    }
}

pub struct PgTestClock {
    pool: PgPool,
}

impl PgTestClock {
    pub fn new(pool: PgPool) -> PgTestClock {
        PgTestClock { pool }
    }

    fn conn(&self) -> Result<crate::Conn, StoreError> {
        self.pool.get().map_err(|e| StoreError::Unavailable(e.to_string()))
    }
}

#[derive(QueryableByName)]
struct Offset {
    #[diesel(sql_type = Timestamptz)]
    now: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    offset_micros: i64,
}

impl Clock for PgTestClock {
    fn now(&self) -> Result<DateTime<Utc>, StoreError> {
        let mut conn = self.conn()?;
        let read: Offset =
            diesel::sql_query("SELECT clock_timestamp() AS now, offset_micros FROM test_clock WHERE id = 1")
                .get_result(&mut conn)
                .map_err(crate::store_error)?;
        Ok(truncate_to_micros(read.now + Duration::microseconds(read.offset_micros)))
    }
}

impl TestClock for PgTestClock {
    fn advance(&self, seconds: i64) -> Result<DateTime<Utc>, StoreError> {
        let mut conn = self.conn()?;
        let micros =
            seconds.checked_mul(1_000_000).ok_or_else(|| StoreError::Internal("advance out of range".into()))?;
        diesel::update(test_clock::table.find(1i16))
            .set(test_clock::offset_micros.eq(test_clock::offset_micros + micros))
            .execute(&mut conn)
            .map_err(crate::store_error)?;
        drop(conn);
        self.now()
    }
}
