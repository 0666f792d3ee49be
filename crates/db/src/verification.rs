//! Business verification (SPEC section 6): requests, the sales queue, decisions, and their mail
//! written to the outbox in the same transaction.

use chrono::{DateTime, Utc};
use credits_domain::error::VerificationError;
use credits_domain::idempotency::{IdempotencyKey, Replayable};
use credits_domain::ids::AccountId;
use credits_domain::mail::MailKind;
use credits_domain::notify::mails;
use credits_domain::operator::Operator;
use credits_domain::ports::{MailContext, VerificationPage, VerificationStore};
use credits_domain::verification::{
    Decision, VerificationRequest, VerificationStatus, VerificationView, may_decide, may_submit,
};
use credits_domain::views::VerificationSummary;
use diesel::prelude::*;
use serde_json::json;
use uuid::Uuid;

use crate::audit::record_action;
use crate::jobs::{NewJob, enqueue};
use crate::ledger::lock_account;
use crate::schema::{accounts, business_verifications};
use crate::{Fail, PgStore, read_tx};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = business_verifications, check_for_backend(diesel::pg::Pg))]
struct Row {
    id: Uuid,
    account_id: Uuid,
    company_name: String,
    website: String,
    country: String,
    tax_id: Option<String>,
    contact_name: String,
    contact_email: String,
    intended_use: String,
    expected_monthly_credits: Option<i64>,
    status: String,
    reason: Option<String>,
    note: Option<String>,
    decided_by: Option<String>,
    decided_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl Row {
    fn status(&self) -> QueryResult<VerificationStatus> {
        crate::rows::decode("verification status", &self.status, VerificationStatus::parse)
    }

    fn view(self) -> QueryResult<VerificationView> {
        Ok(VerificationView {
            id: self.id,
            account_id: self.account_id,
            status: self.status()?,
            request: VerificationRequest {
                company_name: self.company_name,
                website: self.website,
                country: self.country,
                tax_id: self.tax_id,
                contact_name: self.contact_name,
                contact_email: self.contact_email,
                intended_use: self.intended_use,
                expected_monthly_credits: self.expected_monthly_credits,
            },
            reason: self.reason,
            note: self.note,
            decided_by: self.decided_by,
            decided_at: self.decided_at,
            created_at: self.created_at,
        })
    }
}

fn latest(conn: &mut PgConnection, account: Uuid) -> QueryResult<Option<Row>> {
    business_verifications::table
        .filter(business_verifications::account_id.eq(account))
        .order((business_verifications::created_at.desc(), business_verifications::id.desc()))
        .select(Row::as_select())
        .first(conn)
        .optional()
}

/// What `GET /v1/account` shows of the latest request.
pub fn summary(conn: &mut PgConnection, account: AccountId) -> QueryResult<Option<VerificationSummary>> {
    Ok(latest(conn, account.0)?.map(|r| VerificationSummary { id: r.id, status: r.status.clone(), reason: r.reason }))
}

fn conflict(m: String) -> Fail<VerificationError> {
    Fail::Rule(VerificationError::Conflict(m))
}

fn encode_cursor(created: DateTime<Utc>, id: Uuid) -> String {
    format!("{}_{}", created.timestamp_micros(), id.simple())
}

fn decode_cursor(cursor: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let (micros, id) = cursor.split_once('_')?;
    Some((DateTime::from_timestamp_micros(micros.parse().ok()?)?, Uuid::parse_str(id).ok()?))
}

impl VerificationStore for PgStore {
    fn submit_verification(
        &self,
        account: AccountId,
        request: &VerificationRequest,
        ctx: &MailContext,
        now: DateTime<Utc>,
        idem: Option<&IdempotencyKey>,
    ) -> Result<Replayable<VerificationView>, VerificationError> {
        let catalog = &self.catalog;
        self.once_tx(
            idem,
            now,
            || VerificationError::IdempotencyKeyReused,
            |conn, log| {
                let acct =
                    lock_account(conn, log, account)?.ok_or(Fail::Rule(VerificationError::NotFound))?.to_domain()?;
                let previous = latest(conn, account.0)?.map(|r| r.status()).transpose()?;
                may_submit(catalog, &acct, previous).map_err(conflict)?;
                let id = Uuid::now_v7();
                diesel::insert_into(business_verifications::table)
                    .values((
                        business_verifications::id.eq(id),
                        business_verifications::account_id.eq(account.0),
                        business_verifications::company_name.eq(&request.company_name),
                        business_verifications::website.eq(&request.website),
                        business_verifications::country.eq(&request.country),
                        business_verifications::tax_id.eq(&request.tax_id),
                        business_verifications::contact_name.eq(&request.contact_name),
                        business_verifications::contact_email.eq(&request.contact_email),
                        business_verifications::intended_use.eq(&request.intended_use),
                        business_verifications::expected_monthly_credits.eq(request.expected_monthly_credits),
                        business_verifications::created_at.eq(now),
                    ))
                    .execute(conn)?;
                let admin_link = format!("{}/{id}", ctx.admin_url.trim_end_matches('/'));
                let submitted = mails::Submitted {
                    id,
                    request,
                    account: mails::Recipient { account, email: &acct.email, name: &acct.name },
                    sales_team: &ctx.sales_team,
                    admin_link: &admin_link,
                };
                for mail in mails::verification_submitted(&submitted) {
                    enqueue(conn, NewJob::Mail(&mail), now)?;
                }
                let row = business_verifications::table.find(id).select(Row::as_select()).first(conn)?;
                Ok(row.view()?)
            },
        )
        .map_err(|e| match e {
            // The unique index on open requests: another submission won the race.
            VerificationError::Store(s) if s.to_string().contains("business_verifications_one_open") => {
                VerificationError::Conflict("a request is already pending".into())
            }
            other => other,
        })
    }

    fn latest_verification(&self, account: AccountId) -> Result<Option<VerificationView>, VerificationError> {
        let mut conn = self.conn()?;
        read_tx(&mut conn, |conn| {
            let exists: bool = diesel::select(diesel::dsl::exists(accounts::table.find(account.0))).get_result(conn)?;
            if !exists {
                return Err(Fail::Rule(VerificationError::NotFound));
            }
            Ok(latest(conn, account.0)?.map(Row::view).transpose()?)
        })
    }

    fn verification_queue(
        &self,
        status: Option<VerificationStatus>,
        limit: i64,
        cursor: Option<&str>,
    ) -> Result<VerificationPage, VerificationError> {
        let after = match cursor {
            None => None,
            Some(c) => Some(decode_cursor(c).ok_or_else(|| {
                VerificationError::InvalidParameters("cursor is not one this service gave out".into())
            })?),
        };
        let mut conn = self.conn()?;
        let mut q = business_verifications::table
            .select(Row::as_select())
            .order((business_verifications::created_at.asc(), business_verifications::id.asc()))
            .limit(limit + 1)
            .into_boxed();
        if let Some(s) = status {
            q = q.filter(business_verifications::status.eq(s.as_str()));
        }
        if let Some((created, id)) = after {
            q = q.filter(
                business_verifications::created_at
                    .gt(created)
                    .or(business_verifications::created_at.eq(created).and(business_verifications::id.gt(id))),
            );
        }
        let mut rows: Vec<Row> = q.load(&mut conn).map_err(crate::store_error)?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        Ok(VerificationPage {
            next_cursor: if more { rows.last().map(|r| encode_cursor(r.created_at, r.id)) } else { None },
            requests: rows.into_iter().map(Row::view).collect::<QueryResult<_>>().map_err(crate::store_error)?,
        })
    }

    fn decide_verification(
        &self,
        by: &Operator,
        request: Uuid,
        decision: &Decision,
        now: DateTime<Utc>,
    ) -> Result<VerificationView, VerificationError> {
        let mut conn = self.conn()?;
        self.write_tx(&mut conn, now, |conn, log| {
            let found: Option<Uuid> = business_verifications::table
                .find(request)
                .select(business_verifications::account_id)
                .first(conn)
                .optional()?;
            let account = found.ok_or(Fail::Rule(VerificationError::NotFound))?;
            let acct = lock_account(conn, log, AccountId(account))?
                .ok_or(Fail::Rule(VerificationError::NotFound))?
                .to_domain()?;
            // Read again under the account's lock: two operators deciding at once see each other.
            let row = business_verifications::table.find(request).select(Row::as_select()).first(conn)?;
            may_decide(row.status()?).map_err(conflict)?;
            let (status, reason, note, kind) = match decision {
                Decision::Approve { note } => {
                    (VerificationStatus::Approved, None, note.clone(), MailKind::VerificationApproved)
                }
                Decision::Reject { reason } => {
                    (VerificationStatus::Rejected, Some(reason.clone()), None, MailKind::VerificationRejected)
                }
            };
            diesel::update(business_verifications::table.find(request))
                .set((
                    business_verifications::status.eq(status.as_str()),
                    business_verifications::reason.eq(&reason),
                    business_verifications::note.eq(&note),
                    business_verifications::decided_by_id.eq(by.id.map(|i| i.0)),
                    business_verifications::decided_by.eq(Some(&by.name)),
                    business_verifications::decided_at.eq(Some(now)),
                ))
                .execute(conn)?;
            if status == VerificationStatus::Approved {
                // R13: Business checkout is allowed from now on.
                diesel::update(accounts::table.find(account))
                    .set(accounts::business_verified_at.eq(Some(now)))
                    .execute(conn)?;
            }
            record_action(
                conn,
                by,
                &format!("verification.{}", status.as_str()),
                Some(AccountId(account)),
                json!({"request": request, "reason": reason}),
                now,
            )?;
            let who = mails::Recipient { account: AccountId(account), email: &acct.email, name: &acct.name };
            let mail = mails::verification_decided(kind, who, request, &row.company_name, reason.as_deref());
            enqueue(conn, NewJob::Mail(&mail), now)?;
            let payload = credits_domain::notify::payloads::Payload::VerificationDecided {
                account_id: account,
                request_id: request,
                status: status.as_str(),
                reason: reason.clone(),
            };
            crate::events::emit(conn, account, &payload, now)?;
            let row = business_verifications::table.find(request).select(Row::as_select()).first(conn)?;
            Ok(row.view()?)
        })
    }
}
