//! API keys (R8): stored as hashes, found by one unique-index lookup, revoked at once.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use credits_domain::apikey::{ApiKeyView, KeyIdentity, KeyRefusal, NewApiKey, choose_scopes, key_name};
use credits_domain::catalog::Capability;
use credits_domain::credits::Credits;
use credits_domain::error::{ApiKeyError, StoreError};
use credits_domain::idempotency::{IdempotencyKey, Replayable};
use credits_domain::ids::AccountId;
use credits_domain::ports::ApiKeyStore;
use credits_domain::runs::month_start;
use diesel::prelude::*;
use uuid::Uuid;

use crate::ledger::lock_account;
use crate::rows::AccountRow;
use crate::schema::{accounts, api_keys, members};
use crate::{Fail, PgStore};

type KeyRow = (Uuid, String, String, Vec<String>, Option<i64>, DateTime<Utc>, Option<Uuid>);

/// A live key by its hash: its id, scopes, cap, member and account.
type FoundKey = (Uuid, Vec<String>, Option<i64>, Option<Uuid>, AccountRow);

fn scopes(raw: &[String]) -> BTreeSet<Capability> {
    raw.iter().filter_map(|s| Capability::parse(s)).collect()
}

fn view((id, name, prefix, raw, limit, created_at, member_id): KeyRow, used: i64) -> ApiKeyView {
    ApiKeyView {
        id,
        name,
        prefix,
        scopes: scopes(&raw),
        monthly_credit_limit: limit.map(Credits::new),
        member_id,
        used_this_month: Credits::new(used),
        created_at,
    }
}

#[derive(QueryableByName)]
struct Used {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    key: Uuid,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    used: i64,
}

/// R21: what each key's runs started since `since` hold or captured (a released run counts
/// nothing), for the keys that have any.
pub fn used_since(conn: &mut PgConnection, keys: &[Uuid], since: DateTime<Utc>) -> QueryResult<Vec<(Uuid, i64)>> {
    let rows: Vec<Used> = diesel::sql_query(
        "SELECT api_key_id AS key,
                COALESCE(sum(CASE status WHEN $3 THEN cost WHEN $4 THEN captured_credits ELSE 0 END), 0)::bigint AS used
           FROM runs WHERE api_key_id = ANY($1) AND created_at >= $2 GROUP BY api_key_id",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(keys)
    .bind::<diesel::sql_types::Timestamptz, _>(since)
    .bind::<diesel::sql_types::Text, _>(credits_domain::runs::RunStatus::Held.as_str())
    .bind::<diesel::sql_types::Text, _>(credits_domain::runs::RunStatus::Captured.as_str())
    .load(conn)?;
    Ok(rows.into_iter().map(|r| (r.key, r.used)).collect())
}

fn key_columns() -> (
    api_keys::id,
    api_keys::name,
    api_keys::prefix,
    api_keys::scopes,
    api_keys::monthly_credit_limit,
    api_keys::created_at,
    api_keys::member_id,
) {
    (
        api_keys::id,
        api_keys::name,
        api_keys::prefix,
        api_keys::scopes,
        api_keys::monthly_credit_limit,
        api_keys::created_at,
        api_keys::member_id,
    )
}

impl ApiKeyStore for PgStore {
    fn api_key_by_hash(&self, secret_hash: &str, now: DateTime<Utc>) -> Result<Option<KeyIdentity>, StoreError> {
        let mut conn = self.conn()?;
        // R25: a removed member's keys are found no more.
        let member_current = diesel::dsl::exists(
            members::table
                .filter(members::account_id.eq(api_keys::account_id))
                .filter(members::id.nullable().eq(api_keys::member_id))
                .filter(members::removed_at.is_null()),
        );
        let found: Option<FoundKey> = api_keys::table
            .inner_join(accounts::table)
            .filter(api_keys::secret_hash.eq(secret_hash))
            .filter(api_keys::revoked_at.is_null())
            .filter(api_keys::member_id.is_null().or(member_current))
            .select((
                api_keys::id,
                api_keys::scopes,
                api_keys::monthly_credit_limit,
                api_keys::member_id,
                AccountRow::as_select(),
            ))
            .first(&mut conn)
            .optional()
            .map_err(crate::store_error)?;
        let Some((key_id, raw, limit, member, row)) = found else { return Ok(None) };
        let account = row.to_domain().map_err(crate::store_error)?.judged(now, &self.billing);
        Ok(Some(KeyIdentity {
            key_id,
            account: account.id,
            scopes: scopes(&raw),
            plan: account.plan,
            monthly_credit_limit: limit.map(Credits::new),
            member,
        }))
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
            |conn, log| {
                let row = lock_account(conn, log, account)?.ok_or(Fail::Rule(ApiKeyError::NotFound))?;
                let judged = row.to_domain()?.judged(now, &self.billing);
                if judged.restricted {
                    return Err(Fail::Rule(ApiKeyError::Refused(KeyRefusal::AccountRestricted)));
                }
                let plan = catalog.plan_or_free(&judged.plan);
                let chosen = choose_scopes(plan, key.requested_scopes.as_deref())
                    .map_err(|r| Fail::Rule(ApiKeyError::Refused(r)))?;
                let name = key_name(&key.name).map_err(|r| Fail::Rule(ApiKeyError::Refused(r)))?;
                if let Some(member) = key.member
                    && crate::members::current_one(conn, account, member)?.is_none()
                {
                    return Err(Fail::Rule(ApiKeyError::Refused(KeyRefusal::NotAMember(member))));
                }
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
                        api_keys::monthly_credit_limit.eq(key.monthly_credit_limit.map(|c| c.get())),
                        api_keys::created_at.eq(now),
                        api_keys::member_id.eq(key.member),
                    ))
                    .execute(conn)?;
                let limit = key.monthly_credit_limit.map(|c| c.get());
                Ok(view((id, name, key.prefix.clone(), raw, limit, now, key.member), 0))
            },
        )
    }

    fn api_keys(&self, account: AccountId, now: DateTime<Utc>) -> Result<Vec<ApiKeyView>, ApiKeyError> {
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
            .select(key_columns())
            .load(&mut conn)
            .map_err(crate::store_error)?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
        let used = used_since(&mut conn, &ids, month_start(now)).map_err(crate::store_error)?;
        let used_by = |id: Uuid| used.iter().find(|(k, _)| *k == id).map_or(0, |(_, u)| *u);
        Ok(rows
            .into_iter()
            .map(|r| {
                let u = used_by(r.0);
                view(r, u)
            })
            .collect())
    }

    fn set_key_limit(
        &self,
        account: AccountId,
        key: Uuid,
        limit: Option<Credits>,
        now: DateTime<Utc>,
    ) -> Result<ApiKeyView, ApiKeyError> {
        let mut conn = self.conn()?;
        let row: Option<KeyRow> = diesel::update(
            api_keys::table
                .filter(api_keys::id.eq(key))
                .filter(api_keys::account_id.eq(account.0))
                .filter(api_keys::revoked_at.is_null()),
        )
        .set(api_keys::monthly_credit_limit.eq(limit.map(|c| c.get())))
        .returning(key_columns())
        .get_result(&mut conn)
        .optional()
        .map_err(crate::store_error)?;
        let row = row.ok_or(ApiKeyError::NotFound)?;
        let used = used_since(&mut conn, &[key], month_start(now)).map_err(crate::store_error)?;
        Ok(view(row, used.first().map_or(0, |(_, u)| *u)))
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
