//! The test clock (`clock.mode = "test"`): an offset from the real clock kept in the database,
//! so every instance reads the same time and moving it moves every rule at once.

use chrono::{DateTime, Duration, Utc};
use credits_domain::error::StoreError;
use credits_domain::ports::{Clock, TestClock};
use diesel::prelude::*;

use crate::schema::test_clock;
use crate::{PgPool, truncate_to_micros};

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

impl Clock for PgTestClock {
    fn now(&self) -> Result<DateTime<Utc>, StoreError> {
        let mut conn = self.conn()?;
        let offset: i64 = test_clock::table
            .find(1i16)
            .select(test_clock::offset_micros)
            .first(&mut conn)
            .map_err(crate::store_error)?;
        Ok(truncate_to_micros(Utc::now() + Duration::microseconds(offset)))
    }
}

impl TestClock for PgTestClock {
    fn advance(&self, seconds: i64) -> Result<DateTime<Utc>, StoreError> {
        let mut conn = self.conn()?;
        let micros =
            seconds.checked_mul(1_000_000).ok_or_else(|| StoreError::Internal("advance out of range".into()))?;
        let offset: i64 = diesel::update(test_clock::table.find(1i16))
            .set(test_clock::offset_micros.eq(test_clock::offset_micros + micros))
            .returning(test_clock::offset_micros)
            .get_result(&mut conn)
            .map_err(crate::store_error)?;
        Ok(truncate_to_micros(Utc::now() + Duration::microseconds(offset)))
    }
}
