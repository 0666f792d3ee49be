//! What a run is judged on besides its account (R9's trial use, R12's window, R21's key spend,
//! R25's member and R26's member spend), read under the account's lock, the same for a start and
//! a quote.

use chrono::{DateTime, Duration, Utc};
use credits_domain::burn::Wallet;
use credits_domain::catalog::Catalog;
use credits_domain::credits::Credits;
use credits_domain::ids::AccountId;
use credits_domain::runs::{Channel, KeyRef, RATE_WINDOW_SECONDS, RunMember, RunRequest, RunState, month_start};
use diesel::prelude::*;
use uuid::Uuid;

use crate::accounts::trial_usage_of;
use crate::ledger::load_wallet;
use crate::schema::runs;

/// R12: when the `limit`-th newest run of the last minute started, if there were that many; read
/// from the index without loading the window's rows (a contract may allow a million a minute).
fn window_full_since(
    conn: &mut PgConnection,
    catalog: &Catalog,
    account: &credits_domain::account::Account,
    now: DateTime<Utc>,
) -> QueryResult<Option<DateTime<Utc>>> {
    let Some(limit) = account.runs_per_minute(catalog) else { return Ok(None) };
    runs::table
        .filter(runs::account_id.eq(account.id.0))
        .filter(runs::created_at.gt(now - Duration::seconds(RATE_WINDOW_SECONDS)))
        .order(runs::created_at.desc())
        .offset(i64::from(limit.max(1)) - 1)
        .limit(1)
        .select(runs::created_at)
        .first(conn)
        .optional()
}

/// R21: what a capped key's runs hold or captured since the month began (released runs count
/// nothing); read under the account's lock, so concurrent runs through the key never pass the cap.
fn key_used_this_month(conn: &mut PgConnection, channel: &Channel, now: DateTime<Utc>) -> QueryResult<Credits> {
    let Channel::Api { key: KeyRef { id, monthly_credit_limit: Some(_) }, .. } = channel else {
        return Ok(Credits::ZERO);
    };
    Ok(Credits::new(crate::apikeys::used_since(conn, &[*id], month_start(now))?.first().map_or(0, |(_, used)| *used)))
}

/// The account's use of the model's trial, read only when a trial decides the run (R9).
fn trial_usage(
    conn: &mut PgConnection,
    catalog: &Catalog,
    account: &credits_domain::account::Account,
    model: &str,
    now: DateTime<Utc>,
) -> QueryResult<credits_domain::trial::TrialUsage> {
    match catalog.model(model).and_then(|m| credits_domain::trial::applies(account.plan(catalog), m)) {
        Some(_) => trial_usage_of(conn, account.id, model, now),
        None => Ok(credits_domain::trial::TrialUsage::default()),
    }
}

/// What a run is judged on besides its account, read after the account (under its lock, for a
/// start), the same for a start and a quote.
pub(super) struct RunFacts {
    pub(super) wallet: Wallet,
    trial: credits_domain::trial::TrialUsage,
    window_full_since: Option<DateTime<Utc>>,
    key_used_this_month: Credits,
    pub(super) member: RunMember,
}

/// R25: the member a run names, as the account has them: a current member (with R26's use this
/// month when capped, read under the account's lock), or not one.
fn run_member(
    conn: &mut PgConnection,
    account: AccountId,
    named: Option<Uuid>,
    row: Option<&crate::members::MemberRow>,
    known: Option<Credits>,
    now: DateTime<Utc>,
) -> QueryResult<RunMember> {
    let Some(id) = named else { return Ok(RunMember::None) };
    let Some(row) = row else { return Ok(RunMember::NotCurrent { id }) };
    let limit = row.monthly_credit_limit.map(Credits::new);
    let used = match (limit, known) {
        (None, _) => 0,
        (Some(_), Some(known)) => known.get(),
        (Some(_), None) => {
            crate::members::used_since(conn, account, &[id], month_start(now))?.first().map_or(0, |(_, u)| *u)
        }
    };
    Ok(RunMember::Current { id, monthly_credit_limit: limit, used_this_month: Credits::new(used) })
}

impl RunFacts {
    /// `wallet`: the account's wallet when the caller knows it (a batch, after its earlier starts);
    /// `member`: the row of the member the request names, if it is a current one.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn read(
        conn: &mut PgConnection,
        catalog: &Catalog,
        account: &credits_domain::account::Account,
        channel: &Channel,
        req: &RunRequest,
        now: DateTime<Utc>,
        wallet: Option<Wallet>,
        (member, used): (Option<&crate::members::MemberRow>, Option<Credits>),
    ) -> QueryResult<RunFacts> {
        let model = req.model.as_str();
        Ok(RunFacts {
            wallet: match wallet {
                Some(known) => known,
                None => load_wallet(conn, account.id)?,
            },
            trial: trial_usage(conn, catalog, account, model, now)?,
            window_full_since: window_full_since(conn, catalog, account, now)?,
            key_used_this_month: key_used_this_month(conn, channel, now)?,
            member: run_member(conn, account.id, req.member, member, used, now)?,
        })
    }

    /// Whether judging a start reads more than the account's wallet: what its runs say (R9's
    /// trial use, R12's window, R21's key spend).
    pub(super) fn reads_runs(
        catalog: &Catalog,
        account: &credits_domain::account::Account,
        channel: &Channel,
        model: &str,
    ) -> bool {
        let trial =
            catalog.model(model).and_then(|m| credits_domain::trial::applies(account.plan(catalog), m)).is_some();
        let capped = matches!(channel, Channel::Api { key: KeyRef { monthly_credit_limit: Some(_), .. }, .. });
        trial || capped || account.runs_per_minute(catalog).is_some()
    }

    pub(super) fn state<'a>(
        &'a self,
        catalog: &'a Catalog,
        account: &'a credits_domain::account::Account,
        channel: &'a Channel,
        now: DateTime<Utc>,
    ) -> RunState<'a> {
        RunState {
            catalog,
            account,
            channel,
            wallet: &self.wallet,
            trial: self.trial,
            window_full_since: self.window_full_since,
            key_used_this_month: self.key_used_this_month,
            member: self.member,
            now,
        }
    }
}
