//! SPEC section 8: the billing page's one-time links and sessions.

use chrono::{DateTime, Utc};
use credits_domain::error::{AccountError, StoreError};
use credits_domain::ids::{AccountId, OperatorId};
use credits_domain::members::Role as MemberRole;
use credits_domain::operator::{Operator, Role};
use credits_domain::pages::{
    CONSOLE_IDLE, CONSOLE_MOST, ConsoleSession, ConsoleStore, LINK_TTL, PageSession, PageStore, SESSION_TTL, may_open,
};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::{accounts, console_sessions, members, operators, page_links, page_sessions};
use crate::{Fail, PgStore};

/// A link: its account, when it was made and used, the member it acts as.
type LinkRow = (Uuid, DateTime<Utc>, Option<DateTime<Utc>>, Option<Uuid>);
/// A session: its account and member, CSRF token, expiry, and the member's role now.
type SessionRow = (Uuid, Option<Uuid>, String, DateTime<Utc>, Option<String>);

impl PageStore for PgStore {
    fn create_page_link(
        &self,
        account: AccountId,
        member: Option<Uuid>,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, AccountError> {
        let mut conn = self.conn()?;
        conn.transaction(|conn| -> Result<DateTime<Utc>, Fail<AccountError>> {
            let exists: bool = diesel::select(diesel::dsl::exists(accounts::table.find(account.0))).get_result(conn)?;
            if !exists {
                return Err(Fail::Rule(AccountError::NotFound));
            }
            diesel::insert_into(page_links::table)
                .values((
                    page_links::token_hash.eq(token_hash),
                    page_links::account_id.eq(account.0),
                    page_links::member_id.eq(member),
                    page_links::created_at.eq(now),
                ))
                .execute(conn)?;
            Ok(now + LINK_TTL)
        })
        .map_err(Fail::into_error)
    }

    fn open_page_link(
        &self,
        token_hash: &str,
        session_hash: &str,
        csrf: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<PageSession>, StoreError> {
        let mut conn = self.conn()?;
        conn.transaction(|conn| -> Result<Option<PageSession>, Fail<StoreError>> {
            let link: Option<LinkRow> = page_links::table
                .find(token_hash)
                .select((page_links::account_id, page_links::created_at, page_links::used_at, page_links::member_id))
                .for_update()
                .first(conn)
                .optional()?;
            let Some((account, created_at, used_at, member)) = link else { return Ok(None) };
            if !may_open(created_at, used_at.is_some(), now) {
                return Ok(None);
            }
            // R27: a link for a member removed since opens nothing.
            let role = match member {
                None => MemberRole::Owner,
                Some(id) => match crate::members::current_one(conn, AccountId(account), id)? {
                    Some(m) => m.role()?,
                    None => return Ok(None),
                },
            };
            diesel::update(page_links::table.find(token_hash)).set(page_links::used_at.eq(Some(now))).execute(conn)?;
            let expires_at = now + SESSION_TTL;
            diesel::insert_into(page_sessions::table)
                .values((
                    page_sessions::id_hash.eq(session_hash),
                    page_sessions::account_id.eq(account),
                    page_sessions::csrf.eq(csrf),
                    page_sessions::created_at.eq(now),
                    page_sessions::expires_at.eq(expires_at),
                    page_sessions::member_id.eq(member),
                ))
                .execute(conn)?;
            Ok(Some(PageSession { account: AccountId(account), member, role, csrf: csrf.to_string(), expires_at }))
        })
        .map_err(Fail::into_error)
    }

    fn page_session(&self, session_hash: &str, now: DateTime<Utc>) -> Result<Option<PageSession>, StoreError> {
        let mut conn = self.conn()?;
        // R27: the role of the member it acts as, as it is now; a member removed since ends it.
        let current = members::account_id
            .eq(page_sessions::account_id)
            .and(members::id.nullable().eq(page_sessions::member_id))
            .and(members::removed_at.is_null());
        let found: Option<SessionRow> = page_sessions::table
            .left_join(members::table.on(current))
            .filter(page_sessions::id_hash.eq(session_hash))
            .filter(page_sessions::expires_at.gt(now))
            .select((
                page_sessions::account_id,
                page_sessions::member_id,
                page_sessions::csrf,
                page_sessions::expires_at,
                members::role.nullable(),
            ))
            .first(&mut conn)
            .optional()
            .map_err(crate::store_error)?;
        let Some((account, member, csrf, expires_at, role)) = found else { return Ok(None) };
        let role = match (member, role) {
            (None, _) => MemberRole::Owner,
            (Some(_), None) => return Ok(None),
            (Some(_), Some(r)) => {
                MemberRole::parse(&r).ok_or_else(|| crate::store_error(crate::rows::undecodable("member role", &r)))?
            }
        };
        Ok(Some(PageSession { account: AccountId(account), member, role, csrf, expires_at }))
    }

    fn end_page_session(&self, session_hash: &str) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        diesel::delete(page_sessions::table.find(session_hash)).execute(&mut conn).map_err(crate::store_error)?;
        Ok(())
    }
}

impl ConsoleStore for PgStore {
    fn start_console_session(
        &self,
        session_hash: &str,
        session: &ConsoleSession,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let operator = &session.operator;
        diesel::insert_into(console_sessions::table)
            .values((
                console_sessions::id_hash.eq(session_hash),
                console_sessions::operator_id.eq(operator.id.map(|i| i.0)),
                console_sessions::operator_name.eq(&operator.name),
                console_sessions::operator_role.eq(operator.role.as_str()),
                console_sessions::csrf.eq(&session.csrf),
                console_sessions::bootstrap_token_hash.eq(&session.bootstrap_token_hash),
                console_sessions::created_at.eq(now),
                console_sessions::last_seen_at.eq(now),
            ))
            .execute(&mut conn)
            .map_err(crate::store_error)?;
        Ok(())
    }

    fn console_session(&self, session_hash: &str, now: DateTime<Utc>) -> Result<Option<ConsoleSession>, StoreError> {
        let mut conn = self.conn()?;
        // Idle and absolute expiry, and a revoked operator's sessions end with its token.
        type Row = (Option<Uuid>, String, String, String, Option<String>);
        let found: Option<Row> = diesel::update(
            console_sessions::table
                .find(session_hash)
                .filter(console_sessions::last_seen_at.gt(now - CONSOLE_IDLE))
                .filter(console_sessions::created_at.gt(now - CONSOLE_MOST))
                .filter(console_sessions::operator_id.is_null().or(console_sessions::operator_id.eq_any(
                    operators::table.filter(operators::disabled_at.is_null()).select(operators::id.nullable()),
                ))),
        )
        .set(console_sessions::last_seen_at.eq(now))
        .returning((
            console_sessions::operator_id,
            console_sessions::operator_name,
            console_sessions::operator_role,
            console_sessions::csrf,
            console_sessions::bootstrap_token_hash,
        ))
        .get_result(&mut conn)
        .optional()
        .map_err(crate::store_error)?;
        found
            .map(|(id, name, role, csrf, bootstrap_token_hash)| {
                let role = Role::parse(&role)
                    .ok_or_else(|| StoreError::Internal(format!("unknown operator role {role:?} in the database")))?;
                Ok(ConsoleSession {
                    operator: Operator { id: id.map(OperatorId), name, role },
                    csrf,
                    bootstrap_token_hash,
                })
            })
            .transpose()
    }

    fn end_console_session(&self, session_hash: &str) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        diesel::delete(console_sessions::table.find(session_hash)).execute(&mut conn).map_err(crate::store_error)?;
        Ok(())
    }
}
