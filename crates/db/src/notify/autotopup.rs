//! R22 in the store: an auto top-up is written in the capture's transaction (`start`), claimed by
//! the worker, which asks Stripe for an off-session PaymentIntent (idempotency key: the auto
//! top-up's id, so a retry after a crash is the same payment), and ended by Stripe's answer or its
//! event: the pack granted once per PaymentIntent, or auto top-up turned off and the account mailed.

use chrono::{DateTime, Utc};
use credits_domain::catalog::Catalog;
use credits_domain::credits::Credits;
use credits_domain::ids::AccountId;
use credits_domain::jobs::AutoTopupStatus;
use credits_domain::notify::autotopup::{AutoTopupSettings, PaymentOutcome, TopupOutcome, decide_topup_outcome};
use credits_domain::notify::mails::{self, Recipient};
use credits_domain::notify::payloads::Payload;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Int4, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use super::{NotifySettings, notice};
use crate::events::emit;
use crate::ledger::{PackSale, PaidBy, TxLog, grant_pack};
use crate::rows::undecodable;
use crate::schema::{accounts, auto_topups};

/// R22: start one for the account (the partial unique index keeps it to one open at a time,
/// whatever races).
pub(crate) fn start(
    conn: &mut PgConnection,
    catalog: &Catalog,
    account: AccountId,
    settings: &AutoTopupSettings,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let Some(pack) = settings.pack.as_deref().and_then(|p| catalog.pack(p)) else {
        tracing::warn!(account = %account.0, pack = ?settings.pack, "auto top-up not started: its pack is not in the catalog");
        return Ok(());
    };
    let id = Uuid::now_v7();
    let written = diesel::sql_query(
        "INSERT INTO auto_topups (id, account_id, pack_id, credits, expiry_days, amount, currency, status, \
                                  next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $9, $8, $8) \
         ON CONFLICT (account_id) WHERE status IN ('pending', 'processing') DO NOTHING",
        // The conflict's predicate repeats the partial index `auto_topups_one_open` word for word
        // (PostgreSQL infers the index from it; a parameter there would match no index).
    )
    .bind::<SqlUuid, _>(id)
    .bind::<SqlUuid, _>(account.0)
    .bind::<Text, _>(&pack.id)
    .bind::<BigInt, _>(pack.credits.get())
    .bind::<Int4, _>(i32::try_from(pack.expiry_days).unwrap_or(i32::MAX))
    .bind::<BigInt, _>(pack.price.amount)
    .bind::<Text, _>(&pack.price.currency)
    .bind::<Timestamptz, _>(now)
    .bind::<Text, _>(AutoTopupStatus::Pending.as_str())
    .execute(conn)?;
    if written == 1 {
        tracing::info!(account = %account.0, auto_topup = %id, pack = %pack.id, "auto top-up started");
    }
    Ok(())
}

/// One auto top-up as the rows have it.
#[derive(Queryable, Selectable, Debug)]
#[diesel(table_name = auto_topups)]
pub(crate) struct TopupRow {
    pub id: Uuid,
    pub account_id: Uuid,
    pub pack_id: String,
    pub credits: i64,
    pub expiry_days: i32,
    pub amount: i64,
    pub currency: String,
    pub status: String,
}

pub(crate) fn by_id(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<TopupRow>> {
    auto_topups::table.find(id).select(TopupRow::as_select()).first(conn).optional()
}

/// The auto top-up a PaymentIntent pays for: by the id in its metadata, else by its id.
pub(crate) fn find(
    conn: &mut PgConnection,
    topup: Option<Uuid>,
    payment_intent: &str,
) -> QueryResult<Option<TopupRow>> {
    let found = match topup {
        Some(id) => by_id(conn, id)?,
        None => None,
    };
    match found {
        Some(row) => Ok(Some(row)),
        None => auto_topups::table
            .filter(auto_topups::payment_intent_id.eq(payment_intent))
            .select(TopupRow::as_select())
            .first(conn)
            .optional(),
    }
}

/// What a PaymentIntent's outcome did to its auto top-up (the caller holds the account's lock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ended {
    Granted {
        credits: Credits,
    },
    Failed,
    /// It had already ended so (a second event, or the worker's answer before it).
    Already,
}

/// What Stripe answered for an auto top-up's PaymentIntent.
pub(crate) struct Answer<'a> {
    pub payment_intent: Option<&'a str>,
    pub outcome: PaymentOutcome,
    /// Why it failed, in Stripe's words.
    pub reason: Option<&'a str>,
}

/// Ends an auto top-up by its PaymentIntent's outcome: R22 grants the pack once per
/// PaymentIntent, or turns auto top-up off and mails the account.
pub(crate) fn end(
    conn: &mut PgConnection,
    log: &mut TxLog,
    settings: &NotifySettings,
    row: &TopupRow,
    answer: Answer<'_>,
    now: DateTime<Utc>,
) -> QueryResult<Ended> {
    let Answer { payment_intent, outcome, reason } = answer;
    let row: TopupRow = auto_topups::table.find(row.id).select(TopupRow::as_select()).for_update().first(conn)?;
    let status = AutoTopupStatus::parse(&row.status).ok_or_else(|| undecodable("auto top-up status", &row.status))?;
    let decided = decide_topup_outcome(status, outcome, reason, i64::from(row.expiry_days), now);
    let account = AccountId(row.account_id);
    let (reason, disable) = match decided {
        TopupOutcome::Already => return Ok(Ended::Already),
        TopupOutcome::Fail { reason, disable } => (reason, disable),
        TopupOutcome::Grant { expires_at } => {
            let credits = Credits::new(row.credits);
            let reference = format!("auto_topup:{}", payment_intent.map_or_else(|| row.id.to_string(), str::to_string));
            let reason = format!("auto top-up: pack {}", row.pack_id);
            // R22: the payment is a pack purchase like a checkout's, refunded (R17) and disputed
            // (R19) through the same record.
            let sale = PackSale {
                account,
                pack: &row.pack_id,
                credits,
                expires_at,
                paid_by: PaidBy::AutoTopup(row.id),
                payment_intent,
                amount: row.amount,
                currency: &row.currency,
                reference: &reference,
                reason: &reason,
            };
            let bucket = grant_pack(conn, log, &sale, now)?;
            diesel::update(auto_topups::table.find(row.id))
                .set((
                    auto_topups::status.eq(AutoTopupStatus::Succeeded.as_str()),
                    auto_topups::payment_intent_id.eq(payment_intent),
                    auto_topups::bucket_id.eq(Some(bucket.id)),
                    auto_topups::finished_at.eq(Some(now)),
                    auto_topups::last_error.eq(None::<String>),
                ))
                .execute(conn)?;
            let payload = Payload::AutoTopupSucceeded {
                account_id: row.account_id,
                auto_topup_id: row.id,
                pack: row.pack_id.clone(),
                credits: row.credits,
                bucket_id: bucket.id,
                payment_intent: payment_intent.map(str::to_string),
            };
            emit(conn, row.account_id, &payload, now)?;
            return Ok(Ended::Granted { credits });
        }
    };
    diesel::update(auto_topups::table.find(row.id))
        .set((
            auto_topups::status.eq(AutoTopupStatus::Failed.as_str()),
            auto_topups::payment_intent_id.eq(payment_intent),
            auto_topups::finished_at.eq(Some(now)),
            auto_topups::last_error.eq(Some(&reason)),
        ))
        .execute(conn)?;
    fail_effects(conn, settings, &row, payment_intent, &reason, disable, now)?;
    Ok(Ended::Failed)
}

/// R22: a failed auto top-up turns auto top-up off, mails the account a link to its billing page,
/// and sends `auto_topup.failed`.
fn fail_effects(
    conn: &mut PgConnection,
    settings: &NotifySettings,
    row: &TopupRow,
    payment_intent: Option<&str>,
    reason: &str,
    disable: bool,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    if disable {
        diesel::update(accounts::table.find(row.account_id))
            .set(accounts::auto_topup_enabled.eq(false))
            .execute(conn)?;
    }
    let payload = Payload::AutoTopupFailed {
        account_id: row.account_id,
        auto_topup_id: row.id,
        pack: row.pack_id.clone(),
        payment_intent: payment_intent.map(str::to_string),
        reason: reason.to_string(),
        auto_topup_enabled: !disable,
    };
    let event = emit(conn, row.account_id, &payload, now)?;
    if disable {
        let (email, name): (String, String) =
            accounts::table.find(row.account_id).select((accounts::email, accounts::name)).first(conn)?;
        let who = Recipient { account: AccountId(row.account_id), email: &email, name: &name };
        notice(conn, settings, mails::auto_topup_failed(who, &row.pack_id, reason, &event), now)?;
    }
    Ok(())
}

/// Gives an auto top-up up without a payment (Stripe unreachable for its whole retry budget, or
/// turned off before it was made): no card was charged, so auto top-up stays as the account set it.
pub(crate) fn abandon(conn: &mut PgConnection, id: Uuid, reason: &str, now: DateTime<Utc>) -> QueryResult<()> {
    diesel::update(auto_topups::table.find(id).filter(auto_topups::status.eq(AutoTopupStatus::Pending.as_str())))
        .set((
            auto_topups::status.eq(AutoTopupStatus::Failed.as_str()),
            auto_topups::finished_at.eq(Some(now)),
            auto_topups::last_error.eq(Some(reason)),
        ))
        .execute(conn)?;
    Ok(())
}

/// The PaymentIntent was made and Stripe has not said yet: its event will.
pub(crate) fn processing(conn: &mut PgConnection, id: Uuid, payment_intent: &str) -> QueryResult<()> {
    diesel::update(auto_topups::table.find(id).filter(auto_topups::status.eq(AutoTopupStatus::Pending.as_str())))
        .set((
            auto_topups::status.eq(AutoTopupStatus::Processing.as_str()),
            auto_topups::payment_intent_id.eq(Some(payment_intent)),
        ))
        .execute(conn)?;
    Ok(())
}
