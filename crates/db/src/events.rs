//! Section 9's events, written in the transaction of the change that causes them: the event
//! (its body, `Payload` serialized) and one pending delivery to each of the account's live
//! endpoints that subscribed to its type. Below the ledger and the notices, it depends on
//! neither.

use chrono::{DateTime, SecondsFormat, Utc};
use credits_domain::notify::payloads::Payload;
use diesel::prelude::*;
use diesel::sql_types::{Text, Timestamptz, Uuid as SqlUuid};
use serde_json::json;
use uuid::Uuid;

/// A new event's id: its `webhook-id`, the same on every attempt and for every endpoint.
fn event_id() -> String {
    format!("msg_{}", Uuid::now_v7().simple())
}

/// Writes an event of `account` and one pending delivery to each of its live endpoints that
/// subscribed to its type. Returns the event's id.
pub fn emit(conn: &mut PgConnection, account: Uuid, payload: &Payload, now: DateTime<Utc>) -> QueryResult<String> {
    let id = event_id();
    let event = payload.event_type();
    let data = serde_json::to_value(payload).map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    let body = json!({
        "type": event.as_str(),
        "timestamp": now.to_rfc3339_opts(SecondsFormat::Millis, true),
        "data": data,
    })
    .to_string();
    diesel::sql_query(
        "WITH e AS (INSERT INTO webhook_events (id, account_id, event_type, body, created_at) \
                    VALUES ($1, $2, $3, $4, $5) RETURNING id) \
         INSERT INTO webhook_deliveries (id, event_id, endpoint_id, status, next_attempt_at, created_at) \
         SELECT gen_random_uuid(), e.id, w.id, $6, $5, $5 FROM e, webhook_endpoints w \
         WHERE w.account_id = $2 AND w.disabled_at IS NULL AND $3 = ANY (w.events)",
    )
    .bind::<Text, _>(&id)
    .bind::<SqlUuid, _>(account)
    .bind::<Text, _>(event.as_str())
    .bind::<Text, _>(&body)
    .bind::<Timestamptz, _>(now)
    .bind::<Text, _>(credits_domain::jobs::DeliveryStatus::Pending.as_str())
    .execute(conn)?;
    Ok(id)
}
