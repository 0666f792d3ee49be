//! Group commit: a batch of run requests written in one transaction answers each request, and
//! leaves the ledger, exactly as writing the same requests one by one in arrival order would.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use credits_db::{PgStore, RunAnswer, RunJob, RunOp};
use credits_domain::idempotency::{IdempotencyKey, Replayable};
use credits_domain::ids::{AccountId, RunId};
use credits_domain::members::{MemberStore, NewMember};
use credits_domain::ports::{AccountStore, NewAccount};
use credits_domain::pricing::{Param, RunParams};
use credits_domain::runs::{Channel, RunRequest};
use credits_server::app::Services;
use credits_tests::{TestDb, test_settings};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use proptest::prelude::*;

/// A request as the property generates it: accounts and held runs by their index, keys by name.
#[derive(Debug, Clone)]
enum Op {
    /// `member`: one of account 2's members (capped, uncapped, removed): for another account's
    /// start, a member of another account.
    Start {
        account: usize,
        model: &'static str,
        images: i64,
        capture: bool,
        member: Option<usize>,
    },
    Complete {
        held: usize,
        images: Option<i64>,
    },
    Cancel {
        held: usize,
    },
}

fn op() -> impl Strategy<Value = (Op, Option<u8>)> {
    let op = prop_oneof![
        4 => (0..3usize, prop_oneof![6 => Just("flux-schnell"), 3 => Just("flux-pro"), 1 => Just("no-such-model")], 1..=8i64, any::<bool>(),
               prop::option::weighted(0.5, prop_oneof![3 => Just(0usize), 1 => Just(1usize), 1 => Just(2usize)]))
            .prop_map(|(account, model, images, capture, member)| Op::Start { account, model, images, capture, member }),
        2 => (0..2 * HELD, prop::option::of(1..=3i64)).prop_map(|(held, images)| Op::Complete { held, images }),
        1 => (0..2 * HELD).prop_map(|held| Op::Cancel { held }),
    ];
    (op, prop::option::weighted(0.5, 0..3u8))
}

const HELD: usize = 3;

/// One database with the same history: account 0 nearly drained (10 credits left); account 1 with
/// three held runs of 2 images and 8 runs in the last minute, both Free (trials, 10 runs a
/// minute); account 2 on a plan with neither (its starts in one batch are judged in memory and
/// written together), with three held runs and 30 credits free.
struct World {
    _db: TestDb,
    url: String,
    store: Arc<PgStore>,
    accounts: Vec<AccountId>,
    held: Vec<(AccountId, RunId)>,
    /// Account 2's members: capped at 30 credits a month, uncapped, removed.
    members: Vec<uuid::Uuid>,
}

fn start(account: AccountId, model: &str, images: i64, capture: bool, now: DateTime<Utc>) -> RunJob {
    RunJob {
        account,
        op: RunOp::Start {
            channel: Channel::Canvas,
            req: RunRequest {
                model: model.into(),
                malformed: None,
                params: RunParams { images: Param::Int(images), duration_seconds: Param::Absent },
                workflow_id: None,
                capture,
                member: None,
            },
        },
        now,
        idem: None,
    }
}

/// `job`, a start, for `member` (R25).
fn for_member(mut job: RunJob, member: Option<uuid::Uuid>) -> RunJob {
    if let RunOp::Start { req, .. } = &mut job.op {
        req.member = member;
    }
    job
}

fn fresh(answer: RunAnswer) -> credits_domain::views::RunView {
    match answer {
        Ok(Replayable::Fresh(view)) => view,
        other => panic!("setup run refused: {other:?}"),
    }
}

impl World {
    fn new(base: DateTime<Utc>) -> World {
        let db = TestDb::new();
        let store = Services::build(&test_settings(&db.url, &[])).unwrap().store;
        let accounts: Vec<AccountId> = (0..3)
            .map(|i| {
                let new = NewAccount::new(&format!("batch-{i}@example.test"), &format!("Batch {i}")).unwrap();
                match store.create_account(&new, base - Duration::hours(1), None).unwrap() {
                    Replayable::Fresh(view) => view.id,
                    Replayable::Replay(_) => unreachable!("no key"),
                }
            })
            .collect();
        let mut conn = PgConnection::establish(&db.url).unwrap();
        diesel::sql_query("UPDATE accounts SET plan_id = 'enterprise' WHERE id = $1")
            .bind::<diesel::sql_types::Uuid, _>(accounts[2].0)
            .execute(&mut conn)
            .unwrap();
        for i in 0..15 {
            let at = base - Duration::seconds(600 - i * 20);
            fresh(store.write_run_alone(start(accounts[0], "flux-schnell", 8, true, at)));
        }
        // Account 2's team (R24): a member capped at 30 credits a month (R26), one uncapped, one
        // removed.
        let members: Vec<uuid::Uuid> = [("capped", Some(30)), ("uncapped", None), ("removed", None)]
            .into_iter()
            .map(|(name, cap)| {
                let new = NewMember::new(&format!("{name}@example.test"), name, "member", cap).unwrap();
                store.add_member(accounts[2], &new, base - Duration::hours(1)).unwrap().id
            })
            .collect();
        store.remove_member(accounts[2], members[2], base - Duration::minutes(30)).unwrap();
        // Three holds of 2 images on account 1, and on account 2 for its capped member (12 of
        // their 30 credits: what the batch's completions and cancellations free decides whether
        // the member's next start fits).
        let mut held: Vec<(AccountId, RunId)> = Vec::new();
        for (a, member) in [(accounts[1], None), (accounts[2], Some(members[0]))] {
            for _ in 0..HELD {
                let run = for_member(start(a, "flux-schnell", 2, false, base - Duration::seconds(100)), member);
                held.push((a, fresh(store.write_run_alone(run)).id));
            }
        }
        // R12: account 1 started 8 of its 10 runs a minute just now, so its third start of the
        // batch is refused, by the batch as by one-by-one.
        for i in 0..8 {
            let at = base - Duration::seconds(38 - i * 2);
            fresh(store.write_run_alone(start(accounts[1], "flux-schnell", 8, true, at)));
        }
        // Account 2 has 30 credits free beside its holds: what the batch's completions,
        // cancellations and starts leave decides whether its next start is refused.
        for i in 0..13 {
            let at = base - Duration::seconds(300 - i * 10);
            fresh(store.write_run_alone(start(accounts[2], "flux-schnell", 8, true, at)));
        }
        World { url: db.url.clone(), _db: db, store, accounts, held, members }
    }

    fn job(&self, op: &Op, key: Option<u8>, now: DateTime<Utc>) -> RunJob {
        let (account, op_) = match *op {
            Op::Start { account, model, images, capture, member } => {
                let job = start(self.accounts[account], model, images, capture, now);
                return RunJob {
                    idem: self.key(self.accounts[account], op, key),
                    ..for_member(job, member.map(|m| self.members[m]))
                };
            }
            Op::Complete { held, images } => (
                self.held[held].0,
                RunOp::Complete {
                    channel: Channel::Canvas,
                    run: self.held[held].1,
                    actual: RunParams {
                        images: images.map_or(Param::Absent, Param::Int),
                        duration_seconds: Param::Absent,
                    },
                },
            ),
            Op::Cancel { held } => {
                (self.held[held].0, RunOp::Cancel { channel: Channel::Canvas, run: self.held[held].1 })
            }
        };
        RunJob { account, op: op_, now, idem: self.key(account, op, key) }
    }

    /// The same key with the same request is its replay; with another request, a reuse.
    fn key(&self, account: AccountId, op: &Op, key: Option<u8>) -> Option<IdempotencyKey> {
        key.map(|k| IdempotencyKey::new(account.0.to_string(), &format!("k{k}"), format!("{op:?}"), 201).unwrap())
    }

    /// What a user can see of the accounts: per account, its buckets' remaining credits, its open
    /// holds, its runs by status, its ledger by entry type; and the keys recorded.
    fn state(&self) -> Vec<String> {
        #[derive(QueryableByName)]
        struct Line {
            #[diesel(sql_type = Text)]
            line: String,
        }
        let mut conn = PgConnection::establish(&self.url).unwrap();
        let mut out = Vec::new();
        for (i, a) in self.accounts.iter().enumerate() {
            let lines: Vec<Line> = diesel::sql_query(
                "SELECT 'remaining ' || coalesce(sum(remaining), 0) AS line FROM buckets WHERE account_id = $1 \
                 UNION ALL SELECT 'held ' || coalesce(sum(r.credits), 0) FROM run_reservations r \
                   JOIN runs ON runs.id = r.run_id WHERE runs.account_id = $1 AND r.open \
                 UNION ALL (SELECT 'runs ' || status || ' ' || count(*) || ' ' || coalesce(sum(captured_credits), 0) \
                   FROM runs WHERE account_id = $1 GROUP BY status ORDER BY status) \
                 UNION ALL (SELECT 'entries ' || entry_type || ' ' || count(*) || ' ' || sum(credits) \
                   FROM ledger_entries WHERE account_id = $1 GROUP BY entry_type ORDER BY entry_type) \
                 UNION ALL SELECT 'trials ' || coalesce(sum(used), 0) FROM trial_usage WHERE account_id = $1",
            )
            .bind::<diesel::sql_types::Uuid, _>(a.0)
            .load(&mut conn)
            .unwrap();
            out.extend(lines.into_iter().map(|l| format!("account {i}: {}", l.line)));
        }
        for (i, m) in self.members.iter().enumerate() {
            let lines: Vec<Line> = diesel::sql_query(
                "SELECT 'runs ' || status || ' ' || count(*) || ' ' || sum(cost) || ' ' || coalesce(sum(captured_credits), 0) \
                   AS line FROM runs WHERE member_id = $1 GROUP BY status ORDER BY status",
            )
            .bind::<diesel::sql_types::Uuid, _>(*m)
            .load(&mut conn)
            .unwrap();
            out.extend(lines.into_iter().map(|l| format!("member {i}: {}", l.line)));
        }
        let keys: i64 = diesel::select(diesel::dsl::sql::<BigInt>("count(*) FROM idempotency_records"))
            .get_result(&mut conn)
            .unwrap();
        out.push(format!("keys {keys}"));
        credits_tests::assert_ledger_consistent(&mut conn);
        out
    }
}

/// An answer as its caller sees it, without the ids and times that differ between two databases.
fn seen(answer: &RunAnswer) -> String {
    match answer {
        Ok(Replayable::Fresh(v)) => format!(
            "fresh {} cost {} images {:?} charged {:?} reserved {:?} captured {:?}",
            v.status.as_str(),
            v.cost.get(),
            v.images,
            v.charged.iter().map(|c| (c.kind, c.credits.get())).collect::<Vec<_>>(),
            v.reserved.iter().map(|c| (c.kind, c.credits.get())).collect::<Vec<_>>(),
            v.captured_credits.map(|c| c.get()),
        ),
        Ok(Replayable::Replay(r)) => {
            let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            format!(
                "replay {} {} cost {} captured {}",
                r.status, body["status"], body["cost"], body["captured_credits"]
            )
        }
        // Member ids differ between the two databases.
        Err(credits_domain::error::RunError::Denied(credits_domain::runs::Denial::NotAMember { .. })) => {
            "refused NotAMember".to_string()
        }
        Err(e) => format!("refused {e:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// For random interleavings of starts, completes and cancels, with repeated idempotency keys,
    /// over a drained account and one with holds: the batch's answers and final state are those
    /// of the same requests written one by one in arrival order.
    #[test]
    fn a_batch_answers_and_writes_as_the_same_requests_one_by_one(
        mut ops in prop::collection::vec(op(), 1..14),
        repeats in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..4),
    ) {
        // A request sent again (a client's retry): with its key, the first answer's replay.
        for (from, to) in repeats {
            let again = ops[from.index(ops.len())].clone();
            ops.insert(to.index(ops.len() + 1), again);
        }
        let base = credits_db::truncate_to_micros(Utc::now());
        let (together, one_by_one) = (World::new(base), World::new(base));
        let at = |i: usize| base + Duration::milliseconds(i as i64 * 250);
        let jobs = |w: &World| ops.iter().enumerate().map(|(i, (op, key))| w.job(op, *key, at(i))).collect::<Vec<_>>();
        let batched: Vec<String> = together.store.write_runs_together(jobs(&together)).iter().map(seen).collect();
        let alone: Vec<String> =
            jobs(&one_by_one).into_iter().map(|job| seen(&one_by_one.store.write_run_alone(job))).collect();
        prop_assert_eq!(batched, alone);
        prop_assert_eq!(together.state(), one_by_one.state());
    }
}
