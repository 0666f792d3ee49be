//! The operators' audit trail (`operator_actions`): every change and every account read an
//! operator makes, written in the same transaction.

use chrono::{DateTime, Utc};
use credits_domain::ids::AccountId;
use credits_domain::operator::Operator;
use diesel::prelude::*;

use crate::schema::operator_actions;

pub fn record_action(
    conn: &mut PgConnection,
    by: &Operator,
    action: &str,
    account: Option<AccountId>,
    details: serde_json::Value,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(operator_actions::table)
        .values((
            operator_actions::operator_id.eq(by.id.map(|i| i.0)),
            operator_actions::operator_name.eq(&by.name),
            operator_actions::operator_role.eq(by.role.as_str()),
            operator_actions::action.eq(action),
            operator_actions::account_id.eq(account.map(|a| a.0)),
            operator_actions::details.eq(details),
            operator_actions::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}
