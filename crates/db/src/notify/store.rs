//! The notify use cases on PostgreSQL: settings (R22, R23), endpoints and their deliveries
//! (section 9), and the workers' claims and records.

use chrono::{DateTime, TimeDelta, Utc};
use credits_domain::credits::Credits;
use credits_domain::error::StoreError;
use credits_domain::ids::AccountId;
use credits_domain::jobs::DeliveryStatus;
use credits_domain::notify::alerts::{BalanceLevel, rebase};
use credits_domain::notify::autotopup::{AutoTopupRequest, AutoTopupSettings, month_start, validate};
use credits_domain::notify::mails::{self, Recipient};
use credits_domain::notify::payloads::{Payload, at};
use credits_domain::notify::store::{
    AlertsView, AutoTopupAttempt, AutoTopupView, DeliveryAttemptView, EndpointView, NewEndpoint, NotifyError,
    NotifyStore,
};
use credits_domain::notify::webhooks::{EventType, check_endpoint_count};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Int4, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use super::notice;
use crate::events::emit;
use crate::ledger::lock_account;
use crate::rows::undecodable;
use crate::schema::{accounts, auto_topups, webhook_endpoints};
use crate::{Fail, PgStore, read_tx};

type SettingsRow = (bool, Option<i64>, Option<String>, i32, Option<DateTime<Utc>>);

fn settings_of(row: &SettingsRow) -> AutoTopupSettings {
    AutoTopupSettings {
        enabled: row.0,
        threshold: row.1.map(Credits::new),
        pack: row.2.clone(),
        monthly_limit: u32::try_from(row.3).unwrap_or(0),
    }
}

fn read_settings(conn: &mut PgConnection, account: AccountId) -> QueryResult<Option<SettingsRow>> {
    accounts::table
        .find(account.0)
        .select((
            accounts::auto_topup_enabled,
            accounts::auto_topup_threshold,
            accounts::auto_topup_pack,
            accounts::auto_topup_monthly_limit,
            accounts::card_saved_at,
        ))
        .first(conn)
        .optional()
}

fn auto_topup_view(
    conn: &mut PgConnection,
    account: AccountId,
    now: DateTime<Utc>,
) -> QueryResult<Option<AutoTopupView>> {
    let Some(row) = read_settings(conn, account)? else { return Ok(None) };
    let settings = settings_of(&row);
    let used: i64 = auto_topups::table
        .filter(auto_topups::account_id.eq(account.0))
        .filter(auto_topups::created_at.ge(month_start(now)))
        .count()
        .get_result(conn)?;
    type Last = (Uuid, String, String, Option<String>, Option<String>, DateTime<Utc>, Option<DateTime<Utc>>);
    let last: Option<Last> = auto_topups::table
        .filter(auto_topups::account_id.eq(account.0))
        .order(auto_topups::created_at.desc())
        .select((
            auto_topups::id,
            auto_topups::pack_id,
            auto_topups::status,
            auto_topups::payment_intent_id,
            auto_topups::last_error,
            auto_topups::created_at,
            auto_topups::finished_at,
        ))
        .first(conn)
        .optional()?;
    Ok(Some(AutoTopupView {
        enabled: settings.enabled,
        threshold: settings.threshold,
        pack: settings.pack,
        monthly_limit: settings.monthly_limit,
        card_saved: row.4.is_some(),
        used_this_month: u32::try_from(used).unwrap_or(u32::MAX),
        last_attempt: last.map(|(id, pack, status, payment_intent, error, created_at, finished_at)| AutoTopupAttempt {
            id,
            pack,
            status,
            payment_intent,
            error,
            created_at,
            finished_at,
        }),
    }))
}

fn alerts_view(conn: &mut PgConnection, account: AccountId) -> QueryResult<Option<AlertsView>> {
    let row: Option<(Option<i64>, String)> = accounts::table
        .find(account.0)
        .select((accounts::low_balance_threshold, accounts::balance_level))
        .first(conn)
        .optional()?;
    row.map(|(threshold, level)| {
        Ok(AlertsView {
            low_balance_threshold: threshold.map(Credits::new),
            balance_level: BalanceLevel::parse(&level).ok_or_else(|| undecodable("balance level", &level))?,
        })
    })
    .transpose()
}

type EndpointRow =
    (Uuid, String, Vec<String>, Option<String>, DateTime<Utc>, Option<DateTime<Utc>>, Option<DateTime<Utc>>);

fn endpoint_view(row: EndpointRow) -> QueryResult<EndpointView> {
    let (id, url, events, description, created_at, failing_since, disabled_at) = row;
    let events = events
        .iter()
        .map(|e| EventType::parse(e).ok_or_else(|| undecodable("event type", e)))
        .collect::<QueryResult<Vec<_>>>()?;
    Ok(EndpointView { id, url, events, description, created_at, failing_since, disabled_at })
}

fn endpoint_columns() -> (
    webhook_endpoints::id,
    webhook_endpoints::url,
    webhook_endpoints::events,
    webhook_endpoints::description,
    webhook_endpoints::created_at,
    webhook_endpoints::failing_since,
    webhook_endpoints::disabled_at,
) {
    (
        webhook_endpoints::id,
        webhook_endpoints::url,
        webhook_endpoints::events,
        webhook_endpoints::description,
        webhook_endpoints::created_at,
        webhook_endpoints::failing_since,
        webhook_endpoints::disabled_at,
    )
}

#[derive(QueryableByName)]
struct AttemptRow {
    #[diesel(sql_type = Text)]
    event_id: String,
    #[diesel(sql_type = Text)]
    event_type: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<Int4>)]
    response_code: Option<i32>,
    #[diesel(sql_type = Nullable<Text>)]
    error: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    attempted_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    next_attempt_at: Option<DateTime<Utc>>,
}

#[derive(QueryableByName)]
struct ExpiringRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    account_id: Uuid,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = BigInt)]
    remaining: i64,
    #[diesel(sql_type = Timestamptz)]
    expires_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    email: String,
    #[diesel(sql_type = Text)]
    name: String,
}

fn found<T>(value: Option<T>) -> Result<T, Fail<NotifyError>> {
    value.ok_or(Fail::Rule(NotifyError::NotFound))
}

impl NotifyStore for PgStore {
    fn auto_topup(&self, account: AccountId, now: DateTime<Utc>) -> Result<AutoTopupView, NotifyError> {
        let mut conn = self.conn()?;
        read_tx(&mut conn, |conn| found(auto_topup_view(conn, account, now)?))
    }

    fn set_auto_topup(
        &self,
        account: AccountId,
        request: &AutoTopupRequest,
        now: DateTime<Utc>,
    ) -> Result<AutoTopupView, NotifyError> {
        let mut conn = self.conn()?;
        self.write_tx(&mut conn, now, |conn, log| {
            found(lock_account(conn, log, account)?)?;
            let row = found(read_settings(conn, account)?)?;
            let previous = settings_of(&row);
            let settings = validate(request, Some(&previous), &self.catalog, row.4.is_some())
                .map_err(|m| Fail::Rule(NotifyError::Invalid(m)))?;
            diesel::update(accounts::table.find(account.0))
                .set((
                    accounts::auto_topup_enabled.eq(settings.enabled),
                    accounts::auto_topup_threshold.eq(settings.threshold.map(Credits::get)),
                    accounts::auto_topup_pack.eq(&settings.pack),
                    accounts::auto_topup_monthly_limit.eq(i32::try_from(settings.monthly_limit).unwrap_or(i32::MAX)),
                ))
                .execute(conn)?;
            found(auto_topup_view(conn, account, now)?)
        })
    }

    fn alerts(&self, account: AccountId) -> Result<AlertsView, NotifyError> {
        let mut conn = self.conn()?;
        read_tx(&mut conn, |conn| found(alerts_view(conn, account)?))
    }

    fn set_alerts(
        &self,
        account: AccountId,
        threshold: Option<Credits>,
        now: DateTime<Utc>,
    ) -> Result<AlertsView, NotifyError> {
        let mut conn = self.conn()?;
        self.write_tx(&mut conn, now, |conn, log| {
            found(lock_account(conn, log, account)?)?;
            let balance = found(crate::accounts::balances_of(conn, &self.catalog, &[account], now)?.pop().flatten())?;
            let level = rebase(threshold, balance.available);
            diesel::update(accounts::table.find(account.0))
                .set((
                    accounts::low_balance_threshold.eq(threshold.map(Credits::get)),
                    accounts::balance_level.eq(level.as_str()),
                ))
                .execute(conn)?;
            found(alerts_view(conn, account)?)
        })
    }

    fn endpoints(&self, account: AccountId) -> Result<Vec<EndpointView>, NotifyError> {
        let mut conn = self.conn()?;
        read_tx(&mut conn, |conn| {
            found(crate::ledger::read_account(conn, account)?)?;
            let rows: Vec<EndpointRow> = webhook_endpoints::table
                .filter(webhook_endpoints::account_id.eq(account.0))
                .order((webhook_endpoints::created_at.asc(), webhook_endpoints::id.asc()))
                .select(endpoint_columns())
                .load(conn)?;
            Ok(rows.into_iter().map(endpoint_view).collect::<QueryResult<Vec<_>>>()?)
        })
    }

    fn create_endpoint(
        &self,
        account: AccountId,
        endpoint: &NewEndpoint,
        now: DateTime<Utc>,
    ) -> Result<EndpointView, NotifyError> {
        let mut conn = self.conn()?;
        self.write_tx(&mut conn, now, |conn, log| {
            found(lock_account(conn, log, account)?)?;
            let existing: i64 = webhook_endpoints::table
                .filter(webhook_endpoints::account_id.eq(account.0))
                .count()
                .get_result(conn)?;
            check_endpoint_count(usize::try_from(existing).unwrap_or(usize::MAX))
                .map_err(|m| Fail::Rule(NotifyError::Invalid(m)))?;
            let events: Vec<&str> = endpoint.events.iter().map(|e| e.as_str()).collect();
            diesel::insert_into(webhook_endpoints::table)
                .values((
                    webhook_endpoints::id.eq(endpoint.id),
                    webhook_endpoints::account_id.eq(account.0),
                    webhook_endpoints::url.eq(&endpoint.url),
                    webhook_endpoints::events.eq(&events),
                    webhook_endpoints::description.eq(&endpoint.description),
                    webhook_endpoints::secret_sealed.eq(&endpoint.secret_sealed),
                    webhook_endpoints::created_at.eq(now),
                ))
                .execute(conn)?;
            let row: EndpointRow = webhook_endpoints::table.find(endpoint.id).select(endpoint_columns()).first(conn)?;
            Ok(endpoint_view(row)?)
        })
    }

    fn delete_endpoint(&self, account: AccountId, endpoint: Uuid) -> Result<(), NotifyError> {
        let mut conn = self.conn()?;
        let deleted = diesel::delete(
            webhook_endpoints::table
                .filter(webhook_endpoints::id.eq(endpoint))
                .filter(webhook_endpoints::account_id.eq(account.0)),
        )
        .execute(&mut conn)
        .map_err(crate::store_error)?;
        if deleted == 0 { Err(NotifyError::NotFound) } else { Ok(()) }
    }

    fn deliveries(
        &self,
        account: AccountId,
        endpoint: Uuid,
        limit: i64,
    ) -> Result<Vec<DeliveryAttemptView>, NotifyError> {
        let mut conn = self.conn()?;
        read_tx(&mut conn, |conn| {
            let owned: bool = diesel::select(diesel::dsl::exists(
                webhook_endpoints::table
                    .filter(webhook_endpoints::id.eq(endpoint))
                    .filter(webhook_endpoints::account_id.eq(account.0)),
            ))
            .get_result(conn)?;
            if !owned {
                return Err(Fail::Rule(NotifyError::NotFound));
            }
            let rows: Vec<AttemptRow> = diesel::sql_query(
                "SELECT * FROM ( \
                   SELECT d.event_id, e.event_type, CASE WHEN a.delivered THEN $3 ELSE $4 END AS status, \
                          a.response_code, a.error, a.attempted_at, a.next_attempt_at, a.id AS seq \
                   FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id \
                   JOIN webhook_events e ON e.id = d.event_id WHERE d.endpoint_id = $1 \
                   UNION ALL \
                   SELECT d.event_id, e.event_type, $5, NULL, NULL, NULL, d.next_attempt_at, NULL \
                   FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id \
                   WHERE d.endpoint_id = $1 AND d.status = $5 AND d.attempts = 0 \
                 ) x ORDER BY attempted_at DESC NULLS FIRST, seq DESC NULLS FIRST LIMIT $2",
            )
            .bind::<SqlUuid, _>(endpoint)
            .bind::<BigInt, _>(limit)
            .bind::<Text, _>(DeliveryStatus::Delivered.as_str())
            .bind::<Text, _>(DeliveryStatus::Failed.as_str())
            .bind::<Text, _>(DeliveryStatus::Pending.as_str())
            .load(conn)?;
            Ok(rows
                .into_iter()
                .map(|r| {
                    Ok(DeliveryAttemptView {
                        event_type: EventType::parse(&r.event_type)
                            .ok_or_else(|| undecodable("event type", &r.event_type))?,
                        event_id: r.event_id,
                        status: r.status,
                        response_code: r.response_code.and_then(|c| u16::try_from(c).ok()),
                        error: r.error,
                        attempted_at: r.attempted_at,
                        next_attempt_at: r.next_attempt_at,
                    })
                })
                .collect::<QueryResult<Vec<_>>>()?)
        })
    }

    fn notice_expiring(&self, now: DateTime<Utc>, notice_within: TimeDelta, batch: i64) -> Result<usize, StoreError> {
        // The accounts first, then their buckets under each account's lock, as every writer of
        // buckets does: locking buckets first would deadlock with a run holding the account and
        // waiting for its bucket (an event's row takes a key-share lock on its account).
        let mut conn = self.conn()?;
        let due: Vec<crate::maintenance::AccountIdRow> = diesel::sql_query(
            "SELECT DISTINCT account_id FROM buckets \
             WHERE expiry_noticed_at IS NULL AND expires_at IS NOT NULL \
               AND expires_at > $1 AND expires_at <= $2 AND remaining > 0 LIMIT $3",
        )
        .bind::<Timestamptz, _>(now)
        .bind::<Timestamptz, _>(now + notice_within)
        .bind::<BigInt, _>(batch)
        .load(&mut conn)
        .map_err(crate::store_error)?;
        drop(conn);
        self.per_account(due.into_iter().map(|d| d.account_id).collect(), now, |conn, _, account| {
            let due: Vec<ExpiringRow> = diesel::sql_query(
                "SELECT b.id, b.account_id, b.kind, b.remaining, b.expires_at, a.email, a.name \
                 FROM buckets b JOIN accounts a ON a.id = b.account_id \
                 WHERE b.account_id = $3 AND b.expiry_noticed_at IS NULL AND b.expires_at IS NOT NULL \
                   AND b.expires_at > $1 AND b.expires_at <= $2 AND b.remaining > 0 \
                 ORDER BY b.expires_at FOR NO KEY UPDATE OF b",
            )
            .bind::<Timestamptz, _>(now)
            .bind::<Timestamptz, _>(now + notice_within)
            .bind::<SqlUuid, _>(account.0)
            .load(conn)?;
            for b in &due {
                let expires = at(b.expires_at);
                let payload = Payload::CreditsExpiring {
                    account_id: b.account_id,
                    bucket_id: b.id,
                    kind: b.kind.clone(),
                    credits: b.remaining,
                    expires_at: expires.clone(),
                };
                emit(conn, b.account_id, &payload, now)?;
                let who = Recipient { account: AccountId(b.account_id), email: &b.email, name: &b.name };
                let mail = mails::credits_expiring(who, b.id, b.remaining, &b.kind, b.expires_at, &expires);
                notice(conn, &self.notify, mail, now)?;
            }
            let ids: Vec<Uuid> = due.iter().map(|b| b.id).collect();
            diesel::sql_query("UPDATE buckets SET expiry_noticed_at = $2 WHERE id = ANY ($1)")
                .bind::<Array<SqlUuid>, _>(&ids)
                .bind::<Timestamptz, _>(now)
                .execute(conn)?;
            Ok(due.len())
        })
    }
}
