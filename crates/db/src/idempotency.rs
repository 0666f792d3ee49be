//! R11 inside the use case's transaction: an advisory lock on (scope, key) serializes requests
//! with the same key on every instance; the record is written with the change it answers, so a
//! refused request (rolled back) keeps nothing.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use credits_domain::idempotency::{IdempotencyKey, Recall, Recorded, Replayable, StoredResponse, recall};
use diesel::prelude::*;
use serde::Serialize;

use crate::Fail;

/// The name of a key's advisory lock (hashed by `hashtextextended(name, 0)` in SQL).
pub fn lock_name(key: &IdempotencyKey) -> String {
    format!("idempotency\u{1f}{}\u{1f}{}", key.scope, key.key)
}

/// What the store knows of a key (no lock: `once` takes one first; a read before calling
/// Stripe does not need one).
pub fn lookup(conn: &mut PgConnection, key: &IdempotencyKey, now: DateTime<Utc>) -> QueryResult<Recall> {
    Ok(Keys::read(conn, std::iter::once(key))?.recall(key, now))
}

/// Do `work` once per key: replay the first answer to the same request, refuse another request
/// under the same key with `reused()`, and record a fresh success.
pub fn once<T: Serialize, E>(
    conn: &mut PgConnection,
    key: Option<&IdempotencyKey>,
    now: DateTime<Utc>,
    reused: impl FnOnce() -> E,
    work: impl FnOnce(&mut PgConnection) -> Result<T, Fail<E>>,
) -> Result<Replayable<T>, Fail<E>> {
    if let Some(key) = key {
        crate::prepared::LockKey { name: lock_name(key) }.execute(conn)?;
    }
    let mut keys = Keys::read(conn, key.into_iter())?;
    let done = keys.once(key, now, reused, || work(conn))?;
    keys.write(conn)?;
    Ok(done)
}

#[derive(QueryableByName)]
struct RecordRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    scope: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    key: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    fingerprint: String,
    #[diesel(sql_type = diesel::sql_types::SmallInt)]
    response_status: i16,
    #[diesel(sql_type = diesel::sql_types::Text)]
    response_body: String,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    created_at: DateTime<Utc>,
}

/// R11 for a batch that holds its keys' locks: the records of its keys read at once, kept as its
/// requests write them, and saved together before its commit.
#[derive(Default)]
pub struct Keys {
    known: HashMap<(String, String), Recorded>,
    save: crate::prepared::SaveKeys,
}

impl Keys {
    /// The records of `keys`, in one round trip.
    pub fn read<'a>(conn: &mut PgConnection, keys: impl Iterator<Item = &'a IdempotencyKey>) -> QueryResult<Keys> {
        let (scopes, names): (Vec<String>, Vec<String>) = keys.map(|k| (k.scope.clone(), k.key.clone())).unzip();
        if scopes.is_empty() {
            return Ok(Keys::default());
        }
        let rows: Vec<RecordRow> = crate::prepared::LookupKeys { scopes, keys: names }.load(conn)?;
        let known = rows
            .into_iter()
            .map(|r| {
                let recorded = Recorded {
                    fingerprint: r.fingerprint,
                    created_at: r.created_at,
                    response: StoredResponse { status: r.response_status as u16, body: r.response_body },
                };
                ((r.scope, r.key), recorded)
            })
            .collect();
        Ok(Keys { known, save: Default::default() })
    }

    /// R11's verdict on `key` from what is known of it.
    fn recall(&self, key: &IdempotencyKey, now: DateTime<Utc>) -> Recall {
        recall(self.known.get(&(key.scope.clone(), key.key.clone())).cloned(), key, now)
    }

    /// R11 against what is known of the key (read by [`Keys::read`], or written before by this
    /// batch): replay, refuse a reuse, or do
    /// `work` and keep its answer as the key's record (saved by [`Keys::write`]).
    pub fn once<T: Serialize, E>(
        &mut self,
        key: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
        reused: impl FnOnce() -> E,
        work: impl FnOnce() -> Result<T, Fail<E>>,
    ) -> Result<Replayable<T>, Fail<E>> {
        let Some(key) = key else {
            return work().map(Replayable::Fresh);
        };
        match self.recall(key, now) {
            Recall::Replay(response) => return Ok(Replayable::Replay(response)),
            Recall::Reused => return Err(Fail::Rule(reused())),
            Recall::Unused => {}
        }
        let value = work()?;
        let body = serde_json::to_string(&value)
            .map_err(|e| Fail::Db(diesel::result::Error::SerializationError(Box::new(e))))?;
        let status = key.success_status;
        let s = &mut self.save;
        s.scopes.push(key.scope.clone());
        s.keys.push(key.key.clone());
        s.fingerprints.push(key.fingerprint.clone());
        s.statuses.push(status as i16);
        s.bodies.push(body.clone());
        s.created_at.push(now);
        self.known.insert(
            (key.scope.clone(), key.key.clone()),
            Recorded {
                fingerprint: key.fingerprint.clone(),
                created_at: now,
                response: StoredResponse { status, body },
            },
        );
        Ok(Replayable::Fresh(value))
    }

    /// Save the records the batch's requests wrote, in one round trip.
    pub fn write(&mut self, conn: &mut PgConnection) -> QueryResult<()> {
        if self.save.scopes.is_empty() {
            return Ok(());
        }
        std::mem::take(&mut self.save).execute(conn)?;
        Ok(())
    }
}
