//! API keys (R8): stored as hashes, found by one unique-index lookup, revoked at once.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use credits_domain::apikey::{ApiKeyView, KeyIdentity, KeyRefusal, NewApiKey, choose_scopes, key_name};
use credits_domain::catalog::Capability;
use credits_domain::error::{ApiKeyError, StoreError};
use credits_domain::idempotency::{IdempotencyKey, Replayable};
use credits_domain::ids::AccountId;
use credits_domain::ports::ApiKeyStore;
use diesel::prelude::*;
use uuid::Uuid;

use crate::ledger::lock_account;
use crate::rows::AccountRow;
use crate::schema::{accounts, api_keys};
use crate::{Fail, PgStore};

type KeyRow = (Uuid, String, String, Vec<String>, DateTime<Utc>);

fn scopes(raw: &[String]) -> BTreeSet<Capability> {
    raw.iter().filter_map(|s| Capability::parse(s)).collect()
}

fn view((id, name, prefix, raw, created_at): KeyRow) -> ApiKeyView {
    ApiKeyView { id, name, prefix, scopes: scopes(&raw), created_at }
}

impl ApiKeyStore for PgStore {
    fn api_key_by_hash(&self, secret_hash: &str, now: DateTime<Utc>) -> Result<Option<KeyIdentity>, StoreError> {
        let mut conn = self.conn()?;
        let found: Option<(Uuid, Vec<String>, AccountRow)> = api_keys::table
            .inner_join(accounts::table)
            .filter(api_keys::secret_hash.eq(secret_hash))
            .filter(api_keys::revoked_at.is_null())
            .select((api_keys::id, api_keys::scopes, AccountRow::as_select()))
            .first(&mut conn)
            .optional()
            .map_err(crate::store_error)?;
        let Some((key_id, raw, row)) = found else { return Ok(None) };
        let account = row.to_domain().map_err(crate::store_error)?.judged(now, &self.billing);
        Ok(Some(KeyIdentity { key_id, account: account.id, scopes: scopes(&raw), plan: account.plan }))
    }

    fn create_api_key(
        &self,
        account: AccountId,
        key: &NewApiKey,
        now: DateTime<Utc>,
        idem: Option<&IdempotencyKey>,
    ) -> Result<Replayable<ApiKeyView>, ApiKeyError> {
        let catalog = &self.catalog;
        self.once_tx(
            idem,
            now,
            || ApiKeyError::IdempotencyKeyReused,
            |conn| {
                let row = lock_account(conn, account)?.ok_or(Fail::Rule(ApiKeyError::NotFound))?;
                let judged = row.to_domain()?.judged(now, &self.billing);
                if judged.restricted {
                    return Err(Fail::Rule(ApiKeyError::Refused(KeyRefusal::AccountRestricted)));
                }
                let plan = catalog.plan_or_free(&judged.plan);
                let chosen = choose_scopes(plan, key.requested_scopes.as_deref())
                    .map_err(|r| Fail::Rule(ApiKeyError::Refused(r)))?;
                let name = key_name(&key.name).map_err(|r| Fail::Rule(ApiKeyError::Refused(r)))?;
                let raw: Vec<String> = chosen.iter().map(|c| c.as_str().to_string()).collect();
                let id = Uuid::now_v7();
                diesel::insert_into(api_keys::table)
                    .values((
                        api_keys::id.eq(id),
                        api_keys::account_id.eq(account.0),
                        api_keys::name.eq(&name),
                        api_keys::prefix.eq(&key.prefix),
                        api_keys::secret_hash.eq(&key.secret_hash),
                        api_keys::scopes.eq(&raw),
                        api_keys::created_at.eq(now),
                    ))
                    .execute(conn)?;
                Ok(view((id, name, key.prefix.clone(), raw, now)))
            },
        )
    }

    fn api_keys(&self, account: AccountId) -> Result<Vec<ApiKeyView>, ApiKeyError> {
        let mut conn = self.conn()?;
        let exists: bool = diesel::select(diesel::dsl::exists(accounts::table.find(account.0)))
            .get_result(&mut conn)
            .map_err(crate::store_error)?;
        if !exists {
            return Err(ApiKeyError::NotFound);
        }
        let rows: Vec<KeyRow> = api_keys::table
            .filter(api_keys::account_id.eq(account.0))
            .filter(api_keys::revoked_at.is_null())
            .order(api_keys::created_at.asc())
            .select((api_keys::id, api_keys::name, api_keys::prefix, api_keys::scopes, api_keys::created_at))
            .load(&mut conn)
            .map_err(crate::store_error)?;
        Ok(rows.into_iter().map(view).collect())
    }

    fn revoke_api_key(&self, account: AccountId, key: Uuid, now: DateTime<Utc>) -> Result<(), ApiKeyError> {
        let mut conn = self.conn()?;
        let revoked = diesel::update(
            api_keys::table
                .filter(api_keys::id.eq(key))
                .filter(api_keys::account_id.eq(account.0))
                .filter(api_keys::revoked_at.is_null()),
        )
        .set(api_keys::revoked_at.eq(Some(now)))
        .execute(&mut conn)
        .map_err(crate::store_error)?;
        if revoked == 0 { Err(ApiKeyError::NotFound) } else { Ok(()) }
    }
}
