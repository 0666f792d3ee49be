//! The real clock: the only place that reads the system time (the test clock is in credits-db).

use chrono::{DateTime, Utc};
use credits_domain::error::StoreError;
use credits_domain::ports::Clock;

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Result<DateTime<Utc>, StoreError> {
        Ok(credits_db::truncate_to_micros(Utc::now()))
    }
}
