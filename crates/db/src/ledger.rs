//! The ledger's writing side (R15), shared by every use case: lock an account, load its wallet,
//! grant buckets, post entries. Every posting changes one bucket's `remaining` by exactly the
//! entry's credits, in the same transaction, so remaining = the sum of the entries always.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use credits_domain::burn::{Bucket, BucketKind, Portion, Reservation, Wallet};
use credits_domain::credits::Credits;
use credits_domain::ids::{AccountId, BucketId, EntryId, RunId};
use credits_domain::notify::payloads::{Payload, at};
use credits_domain::reports::UnitValue;
use credits_domain::views::EntryType;
use diesel::prelude::*;
use uuid::Uuid;

use crate::rows::{AccountRow, BucketRow, NewEntryRow};
use crate::schema::{accounts, buckets, topup_purchases};

/// What one write transaction did that is acted on at its end: the accounts it locked (as they
/// were when locked), which `notify::settle` judges before the commit, and the entries it posted,
/// which the ledger observer hears of after it. `write_tx` makes one for each transaction and hands
/// it, with the connection, to everything that locks an account or posts an entry.
#[derive(Debug, Default)]
pub struct TxLog {
    locked: Vec<Locked>,
    posted: Vec<(EntryType, Credits)>,
}

impl TxLog {
    pub(crate) fn note_locked(&mut self, row: &AccountRow) {
        if !self.locked.iter().any(|l| l.id == row.id) {
            self.locked.push(Locked { id: row.id, plan: row.plan_id.clone(), restricted: row.restricted_at.is_some() });
        }
    }

    /// The accounts this transaction locked, in the order it locked them.
    pub fn locked(&self) -> &[Locked] {
        &self.locked
    }

    /// Whether this transaction captured credits (a debit entry): R22 starts an auto top-up only
    /// after a capture.
    pub fn captured(&self) -> bool {
        self.posted.iter().any(|(t, _)| *t == EntryType::Debit)
    }

    /// Note an entry this transaction wrote, for the ledger observer (metrics) at its commit.
    pub fn posted(&mut self, entry_type: EntryType, credits: Credits) {
        self.posted.push((entry_type, credits));
    }

    /// Take in what one request of a batch did: the accounts it locked (the batch noted its own
    /// first, as they were before the batch) and its entries.
    pub fn absorb(&mut self, share: TxLog) {
        for l in share.locked {
            if !self.locked.iter().any(|k| k.id == l.id) {
                self.locked.push(l);
            }
        }
        self.posted.extend(share.posted);
    }

    /// The entries this transaction wrote.
    pub fn into_posted(self) -> Vec<(EntryType, Credits)> {
        self.posted
    }
}

/// Lock the account's row for the rest of the transaction: every change to an account's
/// buckets, holds and trials happens under this lock, on any number of instances (R6).
pub fn lock_account(conn: &mut PgConnection, log: &mut TxLog, id: AccountId) -> QueryResult<Option<AccountRow>> {
    let row = accounts::table.find(id.0).select(AccountRow::as_select()).for_update().first(conn).optional()?;
    Ok(row.inspect(|r| log.note_locked(r)))
}

/// The same, for background work: an account another instance holds is skipped, not waited for.
pub fn try_lock_account(conn: &mut PgConnection, log: &mut TxLog, id: Uuid) -> QueryResult<Option<AccountRow>> {
    let row =
        accounts::table.find(id).select(AccountRow::as_select()).for_update().skip_locked().first(conn).optional()?;
    Ok(row.inspect(|r| log.note_locked(r)))
}

/// A batch's accounts, locked in id order (so two batches never wait on each other in a cycle);
/// an account another transaction holds is skipped, not waited for. Returns the rows locked.
pub fn lock_accounts_skipping(conn: &mut PgConnection, log: &mut TxLog, ids: &[Uuid]) -> QueryResult<Vec<AccountRow>> {
    let rows: Vec<AccountRow> = accounts::table
        .filter(accounts::id.eq_any(ids))
        .order(accounts::id.asc())
        .select(AccountRow::as_select())
        .for_update()
        .skip_locked()
        .load(conn)?;
    rows.iter().for_each(|r| log.note_locked(r));
    Ok(rows)
}

/// An account the current transaction locked, as it was when locked: every change of an
/// account's balance, plan or restriction happens under its lock, so these are the accounts
/// whose alerts and events `notify::settle` judges before the commit.
#[derive(Debug, Clone)]
pub struct Locked {
    pub id: Uuid,
    pub plan: String,
    pub restricted: bool,
}

pub fn read_account(conn: &mut PgConnection, id: AccountId) -> QueryResult<Option<AccountRow>> {
    accounts::table.find(id.0).select(AccountRow::as_select()).first(conn).optional()
}

#[derive(QueryableByName)]
struct WalletRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    account_id: uuid::Uuid,
    /// 'b' for a bucket, 'r' for an open reservation.
    #[diesel(sql_type = diesel::sql_types::Text)]
    source: String,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: uuid::Uuid,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Uuid>)]
    bucket_id: Option<uuid::Uuid>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    kind: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    granted: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    credits: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    at: Option<DateTime<Utc>>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    created_at: Option<DateTime<Utc>>,
}

/// What the burn-down needs: the buckets with anything left, and the open reservations, in one
/// round trip (the hot path of every run).
pub fn load_wallet(conn: &mut PgConnection, account: AccountId) -> QueryResult<Wallet> {
    Ok(load_wallets(conn, &[account.0])?.remove(&account.0).unwrap_or_else(|| Wallet::new(Vec::new(), Vec::new())))
}

/// A `WalletQuery` row of a bucket (`'b'`); the others are open reservations (`'r'`).
const WALLET_BUCKET_ROW: &str = "b";

/// [`load_wallet`] of many accounts in one round trip (a batch of runs): each account's wallet.
pub fn load_wallets(conn: &mut PgConnection, accounts: &[Uuid]) -> QueryResult<HashMap<Uuid, Wallet>> {
    let rows: Vec<WalletRow> =
        crate::prepared::WalletQuery { accounts: accounts.to_vec(), accounts_again: accounts.to_vec() }.load(conn)?;
    let mut parts: HashMap<Uuid, (Vec<Bucket>, Vec<Reservation>)> =
        accounts.iter().map(|a| (*a, (Vec::new(), Vec::new()))).collect();
    for r in rows {
        let (buckets, reservations) = parts.entry(r.account_id).or_default();
        if r.source == WALLET_BUCKET_ROW {
            buckets.push(Bucket {
                id: BucketId(r.id),
                kind: crate::rows::bucket_kind(r.kind.as_deref().unwrap_or_default())?,
                granted: Credits::new(r.granted.unwrap_or(r.credits)),
                remaining: Credits::new(r.credits),
                expires_at: r.at,
                created_at: r.created_at.unwrap_or(DateTime::<Utc>::MIN_UTC),
            });
        } else if let Some(bucket) = r.bucket_id {
            reservations.push(Reservation {
                run_id: RunId(r.id),
                bucket_id: BucketId(bucket),
                credits: Credits::new(r.credits),
                hold_expires_at: r.at.unwrap_or(DateTime::<Utc>::MIN_UTC),
            });
        }
    }
    Ok(parts.into_iter().map(|(id, (buckets, reservations))| (id, Wallet::new(buckets, reservations))).collect())
}

/// One ledger entry to write.
pub struct Posting<'a> {
    pub account: AccountId,
    pub bucket: BucketId,
    pub entry_type: EntryType,
    /// Signed: positive adds to the bucket, negative takes from it.
    pub credits: Credits,
    pub run: Option<RunId>,
    pub reference: Option<&'a str>,
    pub reason: Option<&'a str>,
}

/// Write one entry and move its bucket's remaining by the same credits.
pub fn post(conn: &mut PgConnection, log: &mut TxLog, p: Posting<'_>, now: DateTime<Utc>) -> QueryResult<NewEntryRow> {
    let row = NewEntryRow {
        id: EntryId::generate().0,
        account_id: p.account.0,
        bucket_id: p.bucket.0,
        entry_type: p.entry_type.as_str().to_string(),
        credits: p.credits.get(),
        run_id: p.run.map(|r| r.0),
        reference: p.reference.map(str::to_string),
        reason: p.reason.map(str::to_string),
        created_at: now,
    };
    // The entry and its bucket's move in one cached statement: one round trip per posting.
    crate::prepared::PostEntry {
        id: row.id,
        account_id: row.account_id,
        bucket_id: row.bucket_id,
        entry_type: row.entry_type.clone(),
        credits: row.credits,
        run_id: row.run_id,
        reference: row.reference.clone(),
        reason: row.reason.clone(),
        created_at: row.created_at,
    }
    .execute(conn)?;
    log.posted(p.entry_type, p.credits);
    Ok(row)
}

/// What a set of entries is: its type, reference and reason.
pub struct EntryMeta<'a> {
    pub entry_type: EntryType,
    pub reference: Option<&'a str>,
    pub reason: Option<&'a str>,
}

impl<'a> EntryMeta<'a> {
    pub fn new(entry_type: EntryType, reason: &'a str) -> EntryMeta<'a> {
        EntryMeta { entry_type, reference: None, reason: Some(reason) }
    }

    pub fn reference(mut self, reference: &'a str) -> Self {
        self.reference = Some(reference);
        self
    }
}

/// Take `portions` out of their buckets with one entry each (debit, adjustment, clawback, expire).
pub fn post_all(
    conn: &mut PgConnection,
    log: &mut TxLog,
    account: AccountId,
    portions: &[Portion],
    meta: &EntryMeta<'_>,
    now: DateTime<Utc>,
) -> QueryResult<Vec<NewEntryRow>> {
    portions
        .iter()
        .map(|p| {
            post(
                conn,
                log,
                Posting {
                    account,
                    bucket: p.bucket_id,
                    entry_type: meta.entry_type,
                    credits: p.credits.negated(),
                    run: None,
                    reference: meta.reference,
                    reason: meta.reason,
                },
                now,
            )
        })
        .collect()
}

/// A new bucket of `credits`, with its `grant` (or `adjustment`) entry.
pub struct Grant<'a> {
    pub account: AccountId,
    pub kind: BucketKind,
    pub credits: Credits,
    pub expires_at: Option<DateTime<Utc>>,
    pub entry_type: EntryType,
    pub reference: Option<&'a str>,
    pub reason: Option<&'a str>,
    /// What a paid bucket was sold for (section 10's liability report).
    pub value: Option<&'a UnitValue>,
}

pub fn grant(
    conn: &mut PgConnection,
    log: &mut TxLog,
    g: Grant<'_>,
    now: DateTime<Utc>,
) -> QueryResult<(BucketRow, NewEntryRow)> {
    let bucket = BucketRow {
        id: BucketId::generate().0,
        account_id: g.account.0,
        kind: g.kind.as_str().to_string(),
        granted: g.credits.get(),
        remaining: 0,
        expires_at: g.expires_at,
        reference: g.reference.map(str::to_string),
        created_at: now,
        value_amount: g.value.map(|v| v.amount),
        value_credits: g.value.map(|v| v.credits),
        currency: g.value.map(|v| v.currency.clone()),
    };
    diesel::insert_into(buckets::table).values(&bucket).execute(conn)?;
    // Section 9: `credits.granted`, a new bucket (allowance, top-up, adjustment, restored credits).
    let told = Payload::CreditsGranted {
        account_id: g.account.0,
        bucket_id: bucket.id,
        kind: g.kind.as_str(),
        credits: g.credits.get(),
        expires_at: g.expires_at.map(at),
        entry_type: g.entry_type.as_str(),
        reason: g.reason.map(str::to_string),
    };
    crate::events::emit(conn, g.account.0, &told, now)?;
    let entry = post(
        conn,
        log,
        Posting {
            account: g.account,
            bucket: BucketId(bucket.id),
            entry_type: g.entry_type,
            credits: g.credits,
            run: None,
            reference: g.reference,
            reason: g.reason,
        },
        now,
    )?;
    Ok((BucketRow { remaining: g.credits.get(), ..bucket }, entry))
}

/// R10 + R16: credits released back to a bucket that has expired expire at once. `wallet` is the
/// state after the release; only the buckets the release touched are looked at.
pub fn expire_released(
    conn: &mut PgConnection,
    log: &mut TxLog,
    account: AccountId,
    wallet: &Wallet,
    touched: &[BucketId],
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let due = wallet.expirations(now, Some(touched));
    post_all(conn, log, account, &due, &EntryMeta::new(EntryType::Expire, "bucket expired"), now)?;
    Ok(())
}

/// R3: an account's live allowances end now (no rollover); what they still hold beyond open
/// holds expires with an `expire` entry.
pub fn end_allowances(
    conn: &mut PgConnection,
    log: &mut TxLog,
    account: AccountId,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let ended: Vec<uuid::Uuid> = diesel::update(
        buckets::table
            .filter(buckets::account_id.eq(account.0))
            .filter(buckets::kind.eq(BucketKind::Allowance.as_str()))
            .filter(buckets::remaining.gt(0))
            .filter(buckets::expires_at.gt(now)),
    )
    .set(buckets::expires_at.eq(Some(now)))
    .returning(buckets::id)
    .get_results(conn)?;
    if ended.is_empty() {
        return Ok(());
    }
    let wallet = load_wallet(conn, account)?;
    let touched: Vec<BucketId> = ended.into_iter().map(BucketId).collect();
    expire_released(conn, log, account, &wallet, &touched, now)
}

/// How a pack was paid for.
pub enum PaidBy<'a> {
    /// A checkout session (R4).
    Session(&'a str),
    /// An auto top-up's off-session PaymentIntent (R22).
    AutoTopup(Uuid),
}

/// A pack bought: its bucket, and its purchase record (one per pack payment, however paid, found
/// by its PaymentIntent when Stripe reports a refund or a dispute: R17, R19, R22).
pub struct PackSale<'a> {
    pub account: AccountId,
    pub pack: &'a str,
    pub credits: Credits,
    pub expires_at: DateTime<Utc>,
    pub paid_by: PaidBy<'a>,
    pub payment_intent: Option<&'a str>,
    /// What it was sold for (minor units of `currency`).
    pub amount: i64,
    pub currency: &'a str,
    pub reference: &'a str,
    pub reason: &'a str,
}

/// Grants a pack sold and records its purchase; returns its bucket.
pub fn grant_pack(
    conn: &mut PgConnection,
    log: &mut TxLog,
    sale: &PackSale<'_>,
    now: DateTime<Utc>,
) -> QueryResult<BucketRow> {
    // Section 10: what the pack was sold for, over its credits.
    let value = UnitValue { amount: sale.amount, credits: sale.credits.get(), currency: sale.currency.to_string() };
    let (bucket, _) = grant(
        conn,
        log,
        Grant {
            account: sale.account,
            kind: BucketKind::Topup,
            credits: sale.credits,
            expires_at: Some(sale.expires_at),
            entry_type: EntryType::Grant,
            reference: Some(sale.reference),
            reason: Some(sale.reason),
            value: Some(&value),
        },
        now,
    )?;
    let (session, auto_topup) = match sale.paid_by {
        PaidBy::Session(s) => (Some(s), None),
        PaidBy::AutoTopup(id) => (None, Some(id)),
    };
    diesel::insert_into(topup_purchases::table)
        .values((
            topup_purchases::id.eq(Uuid::now_v7()),
            topup_purchases::session_id.eq(session),
            topup_purchases::auto_topup_id.eq(auto_topup),
            topup_purchases::account_id.eq(sale.account.0),
            topup_purchases::pack_id.eq(sale.pack),
            topup_purchases::bucket_id.eq(bucket.id),
            topup_purchases::credits.eq(sale.credits.get()),
            topup_purchases::payment_intent_id.eq(sale.payment_intent),
            topup_purchases::amount.eq(sale.amount),
            topup_purchases::currency.eq(sale.currency),
            topup_purchases::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(bucket)
}

/// R3 for Enterprise: the allowance of one contract period, expiring at its end.
pub fn grant_contract_allowance(
    conn: &mut PgConnection,
    log: &mut TxLog,
    account: AccountId,
    credits: Credits,
    period: &credits_domain::account::Period,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let reference = format!("enterprise:{}", period.start.format("%Y-%m-%d"));
    grant(
        conn,
        log,
        Grant {
            account,
            kind: BucketKind::Allowance,
            credits,
            expires_at: Some(period.end),
            entry_type: EntryType::Grant,
            reference: Some(&reference),
            reason: Some("Enterprise monthly allowance"),
            value: None,
        },
        now,
    )?;
    Ok(())
}
