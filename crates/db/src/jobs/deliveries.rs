//! Section 9's deliveries as jobs: claimed fairly (each account's due deliveries ranked, only
//! its free places of `IN_FLIGHT_PER_ACCOUNT` taken, so one account's backlog crowds no other
//! out), sent by the worker with no transaction open, and recorded with the delivery state
//! machine's decision (`decide_attempt`: delivered, again on `DELIVERY_RETRY`, failed after 3
//! days; the endpoint disabled and the account mailed after 5 days of failures).

use chrono::{DateTime, TimeDelta, Utc};
use credits_domain::error::StoreError;
use credits_domain::ids::AccountId;
use credits_domain::jobs::{ClaimLimit, Claimed, DeliveryStatus, JobStatus, Work};
use credits_domain::notify::mails::{self, Recipient};
use credits_domain::notify::store::{AttemptResult, DueDelivery};
use credits_domain::notify::webhooks::{DeliveryFacts, decide_attempt};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bytea, Int4, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use crate::notify::notice;
use crate::rows::undecodable;
use crate::schema::{accounts, webhook_endpoints};
use crate::{Fail, PgStore};

#[derive(QueryableByName)]
struct ClaimedRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Int4)]
    attempts: i32,
    #[diesel(sql_type = SqlUuid)]
    account: Uuid,
    #[diesel(sql_type = SqlUuid)]
    endpoint: Uuid,
    #[diesel(sql_type = Text)]
    url: String,
    #[diesel(sql_type = Bytea)]
    secret_sealed: Vec<u8>,
    #[diesel(sql_type = Text)]
    event_id: String,
    #[diesel(sql_type = Text)]
    body: String,
}

#[derive(QueryableByName)]
struct DeliveryState {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Int4)]
    attempts: i32,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    first_attempt_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = SqlUuid)]
    endpoint: Uuid,
    #[diesel(sql_type = SqlUuid)]
    account: Uuid,
    #[diesel(sql_type = Text)]
    url: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    failing_since: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    disabled_at: Option<DateTime<Utc>>,
}

pub(super) fn claim(
    conn: &mut PgConnection,
    limit: &ClaimLimit,
    now: DateTime<Utc>,
    lease: TimeDelta,
) -> QueryResult<Vec<Claimed>> {
    let (busy_accounts, busy): (Vec<Uuid>, Vec<i32>) =
        limit.in_flight.iter().map(|(a, n)| (a.0, i32::try_from(*n).unwrap_or(i32::MAX))).unzip();
    let per_account = limit.per_account.unwrap_or(u32::MAX);
    let pending = DeliveryStatus::Pending.as_str();
    // Each account's due deliveries are ranked oldest first and only its free places taken,
    // before the batch's LIMIT: so one account's backlog neither exceeds its share nor
    // crowds the others out of the batch.
    let rows: Vec<ClaimedRow> = diesel::sql_query(
        "WITH busy AS (SELECT * FROM unnest($5::uuid[], $6::int4[]) AS b (account_id, n)), \
         ranked AS ( \
           SELECT d.id, d.next_attempt_at, w.account_id, \
                  row_number() OVER (PARTITION BY w.account_id ORDER BY d.next_attempt_at, d.id) AS place \
           FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id \
           WHERE d.status = $7 AND d.next_attempt_at <= $1 AND w.disabled_at IS NULL), \
         picked AS ( \
           SELECT r.id FROM ranked r LEFT JOIN busy b USING (account_id) \
           WHERE r.place <= $4 - COALESCE(b.n, 0) \
           ORDER BY r.next_attempt_at LIMIT $3), \
         due AS ( \
           SELECT d.id FROM webhook_deliveries d JOIN picked USING (id) \
           WHERE d.status = $7 AND d.next_attempt_at <= $1 FOR UPDATE OF d SKIP LOCKED) \
         UPDATE webhook_deliveries d SET next_attempt_at = $2 \
         FROM due, webhook_endpoints w, webhook_events e \
         WHERE d.id = due.id AND w.id = d.endpoint_id AND e.id = d.event_id \
         RETURNING d.id, d.attempts, w.account_id AS account, w.id AS endpoint, w.url, w.secret_sealed, e.id AS event_id, e.body",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<Timestamptz, _>(now + lease)
    .bind::<BigInt, _>(limit.batch)
    .bind::<Int4, _>(i32::try_from(per_account).unwrap_or(i32::MAX))
    .bind::<Array<SqlUuid>, _>(busy_accounts)
    .bind::<Array<Int4>, _>(busy)
    .bind::<Text, _>(pending)
    .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| Claimed {
            id: r.id,
            attempts: u32::try_from(r.attempts).unwrap_or(0),
            work: Work::Delivery(DueDelivery {
                id: r.id,
                account: AccountId(r.account),
                endpoint: r.endpoint,
                url: r.url,
                secret_sealed: r.secret_sealed,
                event_id: r.event_id,
                body: r.body,
            }),
        })
        .collect())
}

pub(super) fn record(
    store: &PgStore,
    job: &Claimed,
    result: &AttemptResult,
    now: DateTime<Utc>,
) -> Result<Option<JobStatus>, StoreError> {
    let delivery = job.id;
    let mut conn = store.conn()?;
    store.write_tx(&mut conn, now, |conn, _| -> Result<Option<JobStatus>, Fail<StoreError>> {
        let Some(state) = diesel::sql_query(
            "SELECT d.status, d.attempts, d.first_attempt_at, w.id AS endpoint, w.account_id AS account, w.url, \
                    w.failing_since, w.disabled_at \
             FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id \
             WHERE d.id = $1 FOR NO KEY UPDATE OF d, w",
        )
        .bind::<SqlUuid, _>(delivery)
        .get_result::<DeliveryState>(conn)
        .optional()?
        else {
            return Ok(None); // its endpoint was deleted meanwhile
        };
        let facts = DeliveryFacts {
            status: DeliveryStatus::parse(&state.status)
                .ok_or_else(|| undecodable("delivery status", &state.status))?,
            attempts: u32::try_from(state.attempts).unwrap_or(0),
            first_attempt_at: state.first_attempt_at,
            failing_since: state.failing_since,
            disabled_at: state.disabled_at,
        };
        let Some(r) = decide_attempt(&facts, result, now) else { return Ok(None) };
        let attempts = i32::try_from(r.attempts).unwrap_or(i32::MAX);
        diesel::sql_query(
            "UPDATE webhook_deliveries SET status = $2, attempts = $3, first_attempt_at = $4, next_attempt_at = $5 \
             WHERE id = $1",
        )
        .bind::<SqlUuid, _>(delivery)
        .bind::<Text, _>(r.status.as_str())
        .bind::<Int4, _>(attempts)
        .bind::<Timestamptz, _>(r.first_attempt_at)
        .bind::<Nullable<Timestamptz>, _>(r.next_attempt_at)
        .execute(conn)?;
        diesel::sql_query(
            "INSERT INTO webhook_attempts (delivery_id, attempted_at, response_code, error, delivered, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind::<SqlUuid, _>(delivery)
        .bind::<Timestamptz, _>(now)
        .bind::<Nullable<Int4>, _>(r.response_code.map(i32::from))
        .bind::<Nullable<Text>, _>(r.error.as_deref())
        .bind::<diesel::sql_types::Bool, _>(r.delivered)
        .bind::<Nullable<Timestamptz>, _>(r.next_attempt_at)
        .execute(conn)?;
        diesel::update(webhook_endpoints::table.find(state.endpoint))
            .set((
                webhook_endpoints::failing_since.eq(r.failing_since),
                webhook_endpoints::disabled_at.eq(if r.disable { Some(now) } else { state.disabled_at }),
            ))
            .execute(conn)?;
        let (disable, since) = (r.disable, r.failing_since.unwrap_or(now));
        if disable {
            tracing::warn!(endpoint = %state.endpoint, url = %state.url, "webhook endpoint disabled: failing for 5 days");
            let (email, name): (String, String) =
                accounts::table.find(state.account).select((accounts::email, accounts::name)).first(conn)?;
            let who = Recipient { account: AccountId(state.account), email: &email, name: &name };
            notice(conn, &store.notify, mails::endpoint_disabled(who, state.endpoint, &state.url, since), now)?;
        }
        Ok(Some(r.status.job_status()))
    })
}
