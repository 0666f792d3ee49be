//! The outbox (SPEC section 6, R14): a mail is a row written in the transaction of the change
//! that causes it; the mail worker sends it (`maintenance::deliver_mail`).

use chrono::{DateTime, Utc};
use credits_domain::mail::Mail;
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::outbox;

/// Queue `mail`, once per dedupe key however often its change is applied.
pub fn enqueue(conn: &mut PgConnection, mail: &Mail, now: DateTime<Utc>) -> QueryResult<()> {
    let facts: serde_json::Map<String, serde_json::Value> =
        mail.facts.iter().map(|(k, v)| ((*k).to_string(), serde_json::Value::from(v.as_str()))).collect();
    diesel::insert_into(outbox::table)
        .values((
            outbox::id.eq(Uuid::now_v7()),
            outbox::dedupe_key.eq(&mail.dedupe_key),
            outbox::kind.eq(mail.kind.as_str()),
            outbox::account_id.eq(mail.account.map(|a| a.0)),
            outbox::recipient.eq(&mail.to),
            outbox::payload.eq(serde_json::Value::Object(facts)),
            outbox::next_attempt_at.eq(now),
            outbox::created_at.eq(now),
        ))
        .on_conflict(outbox::dedupe_key)
        .do_nothing()
        .execute(conn)?;
    Ok(())
}
