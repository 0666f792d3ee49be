//! Teams on PostgreSQL (SPEC section 11): members kept per account (`members`, keyed by the
//! account first), each change under the account's lock and judged by `credits_domain::members`;
//! what a member's runs hold or captured this month read from `runs` under the same lock as R21's
//! key spend, so concurrent runs of one member never pass their cap.

use chrono::{DateTime, Utc};
use credits_domain::credits::Credits;
use credits_domain::error::StoreError;
use credits_domain::ids::AccountId;
use credits_domain::members::{
    LimitNotice, Member, MemberChange, MemberError, MemberRefusal, MemberStore, MemberView, NewMember, Role,
    decide_add, decide_role, limit_notices,
};
use credits_domain::notify::mails;
use credits_domain::notify::payloads::Payload;
use credits_domain::runs::{RunStatus, month_start};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use crate::events::emit;
use crate::ledger::lock_account;
use crate::notify::NotifySettings;
use crate::schema::{accounts, members};
use crate::{Fail, PgStore, read_tx};

/// A member as its row has it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = members, check_for_backend(diesel::pg::Pg))]
pub(crate) struct MemberRow {
    pub account_id: Uuid,
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: String,
    pub monthly_credit_limit: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub removed_at: Option<DateTime<Utc>>,
    pub noticed_month: Option<DateTime<Utc>>,
    pub noticed_percent: i32,
}

impl MemberRow {
    pub(crate) fn role(&self) -> QueryResult<Role> {
        Role::parse(&self.role).ok_or_else(|| crate::rows::undecodable("member role", &self.role))
    }

    fn to_domain(&self) -> QueryResult<Member> {
        Ok(Member {
            id: self.id,
            account: AccountId(self.account_id),
            email: self.email.clone(),
            role: self.role()?,
            monthly_credit_limit: self.monthly_credit_limit.map(Credits::new),
            removed_at: self.removed_at,
        })
    }

    fn view(&self, used: i64) -> QueryResult<MemberView> {
        Ok(MemberView {
            id: self.id,
            email: self.email.clone(),
            name: self.name.clone(),
            role: self.role()?,
            monthly_credit_limit: self.monthly_credit_limit.map(Credits::new),
            used_this_month: Credits::new(used),
            created_at: self.created_at,
        })
    }

    /// R26: the notices this member has had in the month that starts at `month`.
    pub(crate) fn noticed(&self, month: DateTime<Utc>) -> Option<LimitNotice> {
        match (self.noticed_month == Some(month), self.noticed_percent) {
            (true, 100) => Some(LimitNotice::Reached),
            (true, 80) => Some(LimitNotice::Nearly),
            _ => None,
        }
    }
}

/// The account's first member: its own email, an owner (R24), written with the account.
pub(crate) fn add_owner(
    conn: &mut PgConnection,
    account: AccountId,
    email: &str,
    name: &str,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(members::table)
        .values((
            members::account_id.eq(account.0),
            members::id.eq(Uuid::now_v7()),
            members::email.eq(email),
            members::name.eq(name),
            members::role.eq(Role::Owner.as_str()),
            members::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// The current members of an account, oldest first.
fn current(conn: &mut PgConnection, account: AccountId) -> QueryResult<Vec<MemberRow>> {
    members::table
        .filter(members::account_id.eq(account.0))
        .filter(members::removed_at.is_null())
        .order((members::created_at.asc(), members::id.asc()))
        .select(MemberRow::as_select())
        .load(conn)
}

/// A current member of the account, if `id` is one.
pub(crate) fn current_one(conn: &mut PgConnection, account: AccountId, id: Uuid) -> QueryResult<Option<MemberRow>> {
    members::table
        .filter(members::account_id.eq(account.0))
        .filter(members::id.eq(id))
        .filter(members::removed_at.is_null())
        .select(MemberRow::as_select())
        .first(conn)
        .optional()
}

#[derive(QueryableByName)]
struct Used {
    #[diesel(sql_type = SqlUuid)]
    member: Uuid,
    #[diesel(sql_type = BigInt)]
    used: i64,
}

/// R26: what each member's runs started since `since` hold or captured (a released run counts
/// nothing), for the members that have any.
pub(crate) fn used_since(
    conn: &mut PgConnection,
    account: AccountId,
    members: &[Uuid],
    since: DateTime<Utc>,
) -> QueryResult<Vec<(Uuid, i64)>> {
    let rows: Vec<Used> = diesel::sql_query(
        "SELECT member_id AS member,
                COALESCE(sum(CASE status WHEN $4 THEN cost WHEN $5 THEN captured_credits ELSE 0 END), 0)::bigint AS used
           FROM runs WHERE account_id = $1 AND member_id = ANY($2) AND created_at >= $3 GROUP BY member_id",
    )
    .bind::<SqlUuid, _>(account.0)
    .bind::<Array<SqlUuid>, _>(members)
    .bind::<Timestamptz, _>(since)
    .bind::<Text, _>(RunStatus::Held.as_str())
    .bind::<Text, _>(RunStatus::Captured.as_str())
    .load(conn)?;
    Ok(rows.into_iter().map(|r| (r.member, r.used)).collect())
}

/// R26: a capped member's run was admitted and their use is now `used`: the notices it earns
/// (80%, 100%; once each a month) are mailed to the member, the 100% one told to the account's
/// endpoints too, in the run's transaction.
/// Returns the notices' level now kept, when it moved.
pub(crate) fn notice_use(
    conn: &mut PgConnection,
    settings: &NotifySettings,
    member: &MemberRow,
    used: Credits,
    now: DateTime<Utc>,
) -> QueryResult<Option<i32>> {
    let Some(limit) = member.monthly_credit_limit.map(Credits::new) else { return Ok(None) };
    let month = month_start(now);
    let due = limit_notices(limit, used, member.noticed(month));
    let Some(last) = due.last() else { return Ok(None) };
    let account = AccountId(member.account_id);
    for notice in &due {
        let reached = *notice == LimitNotice::Reached;
        let who = mails::Recipient { account, email: &member.email, name: &member.name };
        let mail = mails::member_limit(member.id, who, reached, (limit.get(), used.get()), month);
        crate::notify::notice(conn, settings, mail, now)?;
        if reached {
            let payload = Payload::MemberLimitReached {
                account_id: member.account_id,
                member_id: member.id,
                monthly_credit_limit: limit.get(),
                used_this_month: used.get(),
            };
            emit(conn, member.account_id, &payload, now)?;
        }
    }
    diesel::update(members::table.find((member.account_id, member.id)))
        .set((members::noticed_month.eq(Some(month)), members::noticed_percent.eq(last.percent())))
        .execute(conn)?;
    Ok(Some(last.percent()))
}

/// A member a batch names, and their use this month.
pub(crate) type KnownRow = (MemberRow, i64);

/// A batch's accounts locked as `ledger::lock_accounts_skipping` locks them, each with the
/// members the batch's starts name (`named`: account, member) in the same round trip: the current
/// ones, each with what their runs started since `month` hold or captured when they are capped
/// (zero otherwise: an uncapped member's use is never judged). One statement, so naming members
/// adds no round trip to a batch (R26's cost on the hot path, `make bench`).
pub(crate) fn lock_accounts_with_members(
    conn: &mut PgConnection,
    log: &mut crate::ledger::TxLog,
    ids: &[Uuid],
    named: &[(Uuid, Uuid)],
    month: DateTime<Utc>,
) -> QueryResult<Vec<(crate::rows::AccountRow, Vec<KnownRow>)>> {
    let (named_accounts, named_ids): (Vec<Uuid>, Vec<Uuid>) = named.iter().copied().unzip();
    let known = diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Jsonb>>(
        "(SELECT json_agg(json_build_object('id', m.id, 'email', m.email, 'name', m.name, 'role', m.role,
                 'limit', m.monthly_credit_limit, 'created_at', m.created_at, 'noticed_month', m.noticed_month,
                 'noticed_percent', m.noticed_percent,
                 'used', CASE WHEN m.monthly_credit_limit IS NULL THEN 0 ELSE COALESCE((
                   SELECT sum(CASE r.status WHEN ",
    )
    .bind::<Text, _>(RunStatus::Held.as_str())
    .sql(" THEN r.cost WHEN ")
    .bind::<Text, _>(RunStatus::Captured.as_str())
    .sql(
        " THEN r.captured_credits ELSE 0 END)
                     FROM runs r WHERE r.account_id = m.account_id AND r.member_id = m.id AND r.created_at >= ",
    )
    .bind::<Timestamptz, _>(month)
    .sql("), 0) END))::jsonb FROM members m WHERE m.account_id = accounts.id AND m.removed_at IS NULL AND m.id IN (SELECT k.id FROM unnest(")
    .bind::<Array<SqlUuid>, _>(named_accounts)
    .sql("::uuid[], ")
    .bind::<Array<SqlUuid>, _>(named_ids)
    .sql("::uuid[]) AS k (account_id, id) WHERE k.account_id = accounts.id))");
    let rows: Vec<(crate::rows::AccountRow, Option<serde_json::Value>)> = accounts::table
        .filter(accounts::id.eq_any(ids))
        .order(accounts::id.asc())
        .select((crate::rows::AccountRow::as_select(), known))
        .for_update()
        .skip_locked()
        .load(conn)?;
    rows.into_iter()
        .map(|(account, members)| {
            log.note_locked(&account);
            let members = members
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default()
                .iter()
                .map(|m| known_member(account.id, m))
                .collect::<QueryResult<Vec<_>>>()?;
            Ok((account, members))
        })
        .collect()
}

/// A member as `lock_accounts_with_members` reads them (JSON).
fn known_member(account: Uuid, m: &serde_json::Value) -> QueryResult<KnownRow> {
    let bad = || crate::rows::undecodable("a batch's member", &m.to_string());
    let text = |k: &str| m[k].as_str().map(str::to_string).ok_or_else(bad);
    let time = |k: &str| -> QueryResult<Option<DateTime<Utc>>> {
        match m[k].as_str() {
            None => Ok(None),
            Some(t) => Ok(Some(DateTime::parse_from_rfc3339(t).map_err(|_| bad())?.with_timezone(&Utc))),
        }
    };
    let row = MemberRow {
        account_id: account,
        id: text("id")?.parse().map_err(|_| bad())?,
        email: text("email")?,
        name: text("name")?,
        role: text("role")?,
        monthly_credit_limit: m["limit"].as_i64(),
        created_at: time("created_at")?.ok_or_else(bad)?,
        removed_at: None,
        noticed_month: time("noticed_month")?,
        noticed_percent: m["noticed_percent"].as_i64().and_then(|p| i32::try_from(p).ok()).ok_or_else(bad)?,
    };
    Ok((row, m["used"].as_i64().ok_or_else(bad)?))
}

fn refused(r: MemberRefusal) -> Fail<MemberError> {
    Fail::Rule(MemberError::Refused(r))
}

fn views(
    conn: &mut PgConnection,
    account: AccountId,
    rows: &[MemberRow],
    now: DateTime<Utc>,
) -> QueryResult<Vec<MemberView>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let used = used_since(conn, account, &ids, month_start(now))?;
    rows.iter().map(|r| r.view(used.iter().find(|(m, _)| *m == r.id).map_or(0, |(_, u)| *u))).collect()
}

fn member_payload(row: &MemberRow, added: bool) -> QueryResult<Payload> {
    Ok(Payload::Member {
        added,
        account_id: row.account_id,
        member_id: row.id,
        email: row.email.clone(),
        role: row.role()?.as_str(),
    })
}

impl MemberStore for PgStore {
    fn add_member(&self, account: AccountId, new: &NewMember, now: DateTime<Utc>) -> Result<MemberView, MemberError> {
        let mut conn = self.conn()?;
        let catalog = &self.catalog;
        let billing = self.billing;
        self.write_tx(&mut conn, now, |conn, log| -> Result<MemberView, Fail<MemberError>> {
            let row = lock_account(conn, log, account)?.ok_or(Fail::Rule(MemberError::NotFound))?;
            let judged = row.to_domain()?.judged(now, &billing);
            let team = current(conn, account)?.iter().map(MemberRow::to_domain).collect::<QueryResult<Vec<_>>>()?;
            decide_add(catalog.plan_or_free(&judged.plan), &team, new).map_err(refused)?;
            let added = MemberRow {
                account_id: account.0,
                id: Uuid::now_v7(),
                email: new.email.clone(),
                name: new.name.clone(),
                role: new.role.as_str().to_string(),
                monthly_credit_limit: new.monthly_credit_limit.map(Credits::get),
                created_at: now,
                removed_at: None,
                noticed_month: None,
                noticed_percent: 0,
            };
            diesel::insert_into(members::table)
                .values((
                    members::account_id.eq(added.account_id),
                    members::id.eq(added.id),
                    members::email.eq(&added.email),
                    members::name.eq(&added.name),
                    members::role.eq(&added.role),
                    members::monthly_credit_limit.eq(added.monthly_credit_limit),
                    members::created_at.eq(now),
                ))
                .execute(conn)?;
            let mail =
                mails::member_added(account, added.id, &added.email, &added.name, &judged.name, new.role.as_str());
            crate::jobs::enqueue(conn, crate::jobs::NewJob::Mail(&mail), now)?;
            emit(conn, account.0, &member_payload(&added, true)?, now)?;
            Ok(added.view(0)?)
        })
    }

    fn members(&self, account: AccountId, now: DateTime<Utc>) -> Result<Vec<MemberView>, MemberError> {
        let mut conn = self.conn()?;
        read_tx(&mut conn, |conn| -> Result<Vec<MemberView>, Fail<MemberError>> {
            let exists: bool = diesel::select(diesel::dsl::exists(accounts::table.find(account.0))).get_result(conn)?;
            if !exists {
                return Err(Fail::Rule(MemberError::NotFound));
            }
            let rows = current(conn, account)?;
            Ok(views(conn, account, &rows, now)?)
        })
    }

    fn change_member(
        &self,
        account: AccountId,
        member: Uuid,
        change: &MemberChange,
        now: DateTime<Utc>,
    ) -> Result<MemberView, MemberError> {
        let mut conn = self.conn()?;
        self.write_tx(&mut conn, now, |conn, log| -> Result<MemberView, Fail<MemberError>> {
            lock_account(conn, log, account)?.ok_or(Fail::Rule(MemberError::NotFound))?;
            let rows = current(conn, account)?;
            let row = rows.iter().find(|r| r.id == member).ok_or(Fail::Rule(MemberError::NotFound))?.clone();
            let team = rows.iter().map(MemberRow::to_domain).collect::<QueryResult<Vec<_>>>()?;
            if let Some(role) = change.role {
                decide_role(&team, &row.to_domain()?, Some(role)).map_err(refused)?;
            }
            let role = change.role.map_or(row.role.clone(), |r| r.as_str().to_string());
            let limit = change.monthly_credit_limit.map_or(row.monthly_credit_limit, |l| l.map(Credits::get));
            let changed: MemberRow = diesel::update(members::table.find((account.0, member)))
                .set((members::role.eq(role), members::monthly_credit_limit.eq(limit)))
                .returning(MemberRow::as_returning())
                .get_result(conn)?;
            Ok(views(conn, account, std::slice::from_ref(&changed), now)?.remove(0))
        })
    }

    fn remove_member(&self, account: AccountId, member: Uuid, now: DateTime<Utc>) -> Result<(), MemberError> {
        let mut conn = self.conn()?;
        self.write_tx(&mut conn, now, |conn, log| -> Result<(), Fail<MemberError>> {
            lock_account(conn, log, account)?.ok_or(Fail::Rule(MemberError::NotFound))?;
            let rows = current(conn, account)?;
            let row = rows.iter().find(|r| r.id == member).ok_or(Fail::Rule(MemberError::NotFound))?.clone();
            let team = rows.iter().map(MemberRow::to_domain).collect::<QueryResult<Vec<_>>>()?;
            decide_role(&team, &row.to_domain()?, None).map_err(refused)?;
            diesel::update(members::table.find((account.0, member)))
                .set(members::removed_at.eq(Some(now)))
                .execute(conn)?;
            emit(conn, account.0, &member_payload(&row, false)?, now)?;
            Ok(())
        })
    }

    fn current_member(&self, account: AccountId, member: Uuid) -> Result<Option<Member>, StoreError> {
        let mut conn = self.conn()?;
        current_one(&mut conn, account, member)
            .and_then(|r| r.map(|r| r.to_domain()).transpose())
            .map_err(crate::store_error)
    }
}
