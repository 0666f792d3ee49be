//! Buckets, holds and the burn-down (R5, R6, R10, R16) as pure functions of the account's
//! buckets, its open holds and `now`.
//!
//! A bucket's `remaining` is the sum of its ledger entries (R15). A hold reserves credits in
//! buckets without writing to the ledger; a capture writes the debits, a release only drops the
//! reservation. A hold whose TTL has passed reserves nothing any more, even before the sweep
//! marks it released.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::credits::Credits;
use crate::ids::{BucketId, RunId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BucketKind {
    Lifetime,
    Allowance,
    Topup,
    Adjustment,
}

impl BucketKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BucketKind::Lifetime => "lifetime",
            BucketKind::Allowance => "allowance",
            BucketKind::Topup => "topup",
            BucketKind::Adjustment => "adjustment",
        }
    }

    pub fn parse(s: &str) -> Option<BucketKind> {
        [BucketKind::Lifetime, BucketKind::Allowance, BucketKind::Topup, BucketKind::Adjustment]
            .into_iter()
            .find(|k| k.as_str() == s)
    }

    /// R5's tie-break among buckets that expire at the same moment: allowance before top-up.
    /// Adjustments come after both, lifetime last (it never expires anyway).
    fn tie_rank(self) -> u8 {
        match self {
            BucketKind::Allowance => 0,
            BucketKind::Topup => 1,
            BucketKind::Adjustment => 2,
            BucketKind::Lifetime => 3,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub id: BucketId,
    pub kind: BucketKind,
    pub granted: Credits,
    pub remaining: Credits,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl Bucket {
    /// R16: a bucket stops counting at its `expires_at`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

/// R5's order: soonest expiry first; on a tie allowance before top-up; never-expiring last.
/// Creation time and id make the order total, so the same state always gives the same split.
pub fn burn_order(a: &Bucket, b: &Bucket) -> Ordering {
    let expiry = match (a.expires_at, b.expires_at) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    expiry.then(a.kind.tie_rank().cmp(&b.kind.tie_rank())).then(a.created_at.cmp(&b.created_at)).then(a.id.cmp(&b.id))
}

/// Credits an open hold reserves in one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub run_id: RunId,
    pub bucket_id: BucketId,
    pub credits: Credits,
    pub hold_expires_at: DateTime<Utc>,
}

impl Reservation {
    /// R10: a hold not finished within its TTL is released; from that moment it reserves nothing.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        now < self.hold_expires_at
    }
}

/// How many credits one bucket gives (or takes back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Portion {
    pub bucket_id: BucketId,
    pub credits: Credits,
}

/// The credit state of one account: its buckets with anything left, and its open holds.
#[derive(Debug, Clone, Default)]
pub struct Wallet {
    pub buckets: Vec<Bucket>,
    pub reservations: Vec<Reservation>,
}

/// R6's figures, and per bucket what open holds reserve in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    pub available: Credits,
    pub held: Credits,
    pub total: Credits,
}

/// A run or adjustment that asks for more than is available (R6: 402 with both figures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insufficient {
    pub required: Credits,
    pub available: Credits,
}

impl Wallet {
    pub fn new(mut buckets: Vec<Bucket>, reservations: Vec<Reservation>) -> Wallet {
        buckets.sort_by(burn_order);
        Wallet { buckets, reservations }
    }

    pub fn bucket(&self, id: BucketId) -> Option<&Bucket> {
        self.buckets.iter().find(|b| b.id == id)
    }

    /// What live holds reserve in one bucket.
    pub fn reserved_in(&self, bucket: BucketId, now: DateTime<Utc>) -> Credits {
        self.reservations.iter().filter(|r| r.bucket_id == bucket && r.is_live(now)).map(|r| r.credits).sum()
    }

    /// What a bucket can still give now: nothing once expired, else remaining less reservations.
    pub fn free_in(&self, bucket: &Bucket, now: DateTime<Utc>) -> Credits {
        if !bucket.is_live(now) {
            return Credits::ZERO;
        }
        let free = bucket.remaining.get() - self.reserved_in(bucket.id, now).get();
        Credits::new(free.max(0))
    }

    /// R6: available = what unexpired buckets hold less what live holds reserve in them;
    /// held = what live holds reserve (even in a bucket that expired meanwhile, R10).
    pub fn balance(&self, now: DateTime<Utc>) -> Balance {
        let available: Credits = self.buckets.iter().map(|b| self.free_in(b, now)).sum();
        let held: Credits = self.reservations.iter().filter(|r| r.is_live(now)).map(|r| r.credits).sum();
        Balance { available, held, total: Credits::new(available.get().saturating_add(held.get())) }
    }

    /// R5: which buckets give how much of `cost`, in burn-down order; R6: never more than is
    /// available, never a bucket below zero. A zero cost takes nothing.
    pub fn split(&self, cost: Credits, now: DateTime<Utc>) -> Result<Vec<Portion>, Insufficient> {
        let mut left = cost.get().max(0);
        let mut portions = Vec::new();
        for bucket in &self.buckets {
            if left == 0 {
                break;
            }
            let free = self.free_in(bucket, now).get();
            let take = free.min(left);
            if take > 0 {
                portions.push(Portion { bucket_id: bucket.id, credits: Credits::new(take) });
                left -= take;
            }
        }
        if left > 0 {
            return Err(Insufficient { required: cost, available: self.balance(now).available });
        }
        Ok(portions)
    }

    /// R16: what each expired bucket still holds beyond live reservations, to be written off
    /// with an `expire` entry. Limited to `only` when given (the buckets a release just touched).
    pub fn expirations(&self, now: DateTime<Utc>, only: Option<&[BucketId]>) -> Vec<Portion> {
        self.buckets
            .iter()
            .filter(|b| !b.is_live(now))
            .filter(|b| only.is_none_or(|ids| ids.contains(&b.id)))
            .filter_map(|b| {
                let left = b.remaining.get() - self.reserved_in(b.id, now).get();
                (left > 0).then(|| Portion { bucket_id: b.id, credits: Credits::new(left) })
            })
            .collect()
    }

    /// Apply debits (positive portions taken out) to the in-memory state: used to compute what a
    /// transaction leaves behind before it writes it.
    pub fn take(&mut self, portions: &[Portion]) {
        for p in portions {
            if let Some(b) = self.buckets.iter_mut().find(|b| b.id == p.bucket_id) {
                b.remaining = Credits::new(b.remaining.get() - p.credits.get());
            }
        }
    }

    /// Drop every reservation of one run (it was captured or released).
    pub fn drop_run(&mut self, run: RunId) {
        self.reservations.retain(|r| r.run_id != run);
    }
}

/// What finishing a hold does to its reservations (R10): `debits` captured from the reserved
/// buckets in burn-down order, the rest released. `cost` must not exceed what was reserved.
pub fn capture_split(wallet: &Wallet, run: RunId, cost: Credits) -> Vec<Portion> {
    let mut reserved: Vec<&Reservation> = wallet.reservations.iter().filter(|r| r.run_id == run).collect();
    reserved.sort_by(|a, b| match (wallet.bucket(a.bucket_id), wallet.bucket(b.bucket_id)) {
        (Some(x), Some(y)) => burn_order(x, y),
        _ => a.bucket_id.cmp(&b.bucket_id),
    });
    let mut left = cost.get().max(0);
    let mut debits = Vec::new();
    for r in reserved {
        if left == 0 {
            break;
        }
        let take = r.credits.get().min(left);
        if take > 0 {
            debits.push(Portion { bucket_id: r.bucket_id, credits: Credits::new(take) });
            left -= take;
        }
    }
    debits
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;
    use uuid::Uuid;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    fn bucket(n: u128, kind: BucketKind, remaining: i64, expires_in_days: Option<i64>) -> Bucket {
        Bucket {
            id: BucketId(Uuid::from_u128(n)),
            kind,
            granted: Credits::new(remaining.max(1)),
            remaining: Credits::new(remaining),
            expires_at: expires_in_days.map(|d| t0() + Duration::days(d)),
            created_at: t0(),
        }
    }

    #[test]
    fn soonest_expiry_is_drawn_first_and_never_expiring_last() {
        let w = Wallet::new(
            vec![
                bucket(1, BucketKind::Lifetime, 250, None),
                bucket(2, BucketKind::Adjustment, 20, Some(2)),
                bucket(3, BucketKind::Adjustment, 20, Some(1)),
            ],
            vec![],
        );
        let split = w.split(Credits::new(30), t0()).unwrap();
        assert_eq!(
            split,
            vec![
                Portion { bucket_id: BucketId(Uuid::from_u128(3)), credits: Credits::new(20) },
                Portion { bucket_id: BucketId(Uuid::from_u128(2)), credits: Credits::new(10) },
            ]
        );
    }

    #[test]
    fn allowance_goes_before_topup_on_a_tie() {
        let w = Wallet::new(
            vec![bucket(1, BucketKind::Topup, 10, Some(5)), bucket(2, BucketKind::Allowance, 10, Some(5))],
            vec![],
        );
        let split = w.split(Credits::new(5), t0()).unwrap();
        assert_eq!(split[0].bucket_id, BucketId(Uuid::from_u128(2)));
    }

    #[test]
    fn an_expired_bucket_neither_counts_nor_gives() {
        let w = Wallet::new(
            vec![bucket(1, BucketKind::Adjustment, 100, Some(1)), bucket(2, BucketKind::Lifetime, 5, None)],
            vec![],
        );
        let later = t0() + Duration::days(1);
        assert_eq!(w.balance(later).available, Credits::new(5));
        assert_eq!(
            w.split(Credits::new(6), later),
            Err(Insufficient { required: Credits::new(6), available: Credits::new(5) })
        );
        assert_eq!(
            w.expirations(later, None),
            vec![Portion { bucket_id: BucketId(Uuid::from_u128(1)), credits: Credits::new(100) }]
        );
    }

    #[test]
    fn a_hold_keeps_its_credits_in_a_bucket_that_expired_and_the_rest_expires() {
        let b = bucket(1, BucketKind::Adjustment, 100, Some(1));
        let hold = Reservation {
            run_id: RunId(Uuid::from_u128(9)),
            bucket_id: b.id,
            credits: Credits::new(30),
            hold_expires_at: t0() + Duration::days(2),
        };
        let w = Wallet::new(vec![b], vec![hold]);
        let later = t0() + Duration::days(1);
        let bal = w.balance(later);
        assert_eq!((bal.available, bal.held, bal.total), (Credits::ZERO, Credits::new(30), Credits::new(30)));
        assert_eq!(w.expirations(later, None)[0].credits, Credits::new(70));
    }

    #[test]
    fn a_hold_past_its_ttl_reserves_nothing() {
        let b = bucket(1, BucketKind::Lifetime, 100, None);
        let hold = Reservation {
            run_id: RunId(Uuid::from_u128(9)),
            bucket_id: b.id,
            credits: Credits::new(30),
            hold_expires_at: t0() + Duration::minutes(15),
        };
        let w = Wallet::new(vec![b], vec![hold]);
        assert_eq!(w.balance(t0()).available, Credits::new(70));
        assert_eq!(w.balance(t0() + Duration::minutes(15)).available, Credits::new(100));
    }

    #[test]
    fn a_capture_takes_from_the_reserved_buckets_in_burn_down_order() {
        let soon = bucket(1, BucketKind::Adjustment, 10, Some(1));
        let never = bucket(2, BucketKind::Lifetime, 100, None);
        let run = RunId(Uuid::from_u128(9));
        let until = t0() + Duration::minutes(15);
        let w = Wallet::new(
            vec![never.clone(), soon.clone()],
            vec![
                Reservation { run_id: run, bucket_id: never.id, credits: Credits::new(6), hold_expires_at: until },
                Reservation { run_id: run, bucket_id: soon.id, credits: Credits::new(10), hold_expires_at: until },
            ],
        );
        let debits = capture_split(&w, run, Credits::new(12));
        assert_eq!(
            debits,
            vec![
                Portion { bucket_id: soon.id, credits: Credits::new(10) },
                Portion { bucket_id: never.id, credits: Credits::new(2) },
            ]
        );
    }

    fn kind_strategy() -> impl Strategy<Value = BucketKind> {
        prop_oneof![
            Just(BucketKind::Lifetime),
            Just(BucketKind::Allowance),
            Just(BucketKind::Topup),
            Just(BucketKind::Adjustment)
        ]
    }

    prop_compose! {
        fn wallet_strategy()(
            specs in prop::collection::vec((kind_strategy(), 0i64..500, prop::option::of(-3i64..30)), 0..8),
            holds in prop::collection::vec((0usize..8, 1i64..200, -5i64..30), 0..6),
        ) -> Wallet {
            let buckets: Vec<Bucket> = specs.iter().enumerate().map(|(i, (kind, remaining, exp))| {
                let mut b = bucket(i as u128 + 1, *kind, *remaining, *exp);
                b.granted = Credits::new(remaining + 50);
                b
            }).collect();
            // Reservations that fit: a hold reserves at most what its bucket has free.
            let mut w = Wallet::new(buckets, vec![]);
            for (n, (idx, credits, ttl_minutes)) in holds.into_iter().enumerate() {
                if w.buckets.is_empty() { break; }
                let b = w.buckets[idx % w.buckets.len()].clone();
                let free = b.remaining.get() - w.reservations.iter().filter(|r| r.bucket_id == b.id).map(|r| r.credits.get()).sum::<i64>();
                let credits = credits.min(free);
                if credits > 0 {
                    w.reservations.push(Reservation {
                        run_id: RunId(Uuid::from_u128(1000 + n as u128)),
                        bucket_id: b.id,
                        credits: Credits::new(credits),
                        hold_expires_at: t0() + Duration::minutes(ttl_minutes),
                    });
                }
            }
            w
        }
    }

    proptest! {
        #[test]
        fn a_split_sums_to_the_cost_and_keeps_every_bucket_at_or_above_zero(
            w in wallet_strategy(), cost in 0i64..3000, at in -2i64..40,
        ) {
            let now = t0() + Duration::days(at);
            let available = w.balance(now).available;
            match w.split(Credits::new(cost), now) {
                Ok(portions) => {
                    prop_assert!(cost <= available.get());
                    prop_assert_eq!(portions.iter().map(|p| p.credits.get()).sum::<i64>(), cost);
                    for p in &portions {
                        let b = w.bucket(p.bucket_id).unwrap();
                        prop_assert!(b.is_live(now), "never draws from an expired bucket");
                        prop_assert!(p.credits.is_positive());
                        prop_assert!(p.credits <= w.free_in(b, now), "never below zero, never into reserved credits");
                    }
                    let mut after = w.clone();
                    after.take(&portions);
                    prop_assert!(after.buckets.iter().all(|b| b.remaining.get() >= 0));
                    prop_assert_eq!(after.balance(now).available.get(), available.get() - cost);
                }
                Err(Insufficient { required, available: a }) => {
                    prop_assert_eq!(required.get(), cost);
                    prop_assert_eq!(a, available);
                    prop_assert!(cost > available.get());
                }
            }
        }

        #[test]
        fn a_split_follows_the_burn_down_order(w in wallet_strategy(), cost in 1i64..3000, at in -2i64..40) {
            let now = t0() + Duration::days(at);
            if let Ok(portions) = w.split(Credits::new(cost), now) {
                // Every bucket drawn from before the last one drawn from is emptied of its free credits,
                // and the buckets drawn from come in R5's order.
                for pair in portions.windows(2) {
                    let (a, b) = (w.bucket(pair[0].bucket_id).unwrap(), w.bucket(pair[1].bucket_id).unwrap());
                    prop_assert_eq!(burn_order(a, b), Ordering::Less);
                    prop_assert_eq!(pair[0].credits, w.free_in(a, now));
                }
                if let Some(last) = portions.last() {
                    let last_bucket = w.bucket(last.bucket_id).unwrap();
                    for b in &w.buckets {
                        if burn_order(b, last_bucket) == Ordering::Less {
                            let drawn = portions.iter().find(|p| p.bucket_id == b.id).map(|p| p.credits).unwrap_or_default();
                            prop_assert_eq!(drawn, w.free_in(b, now), "a sooner bucket is used up first");
                        }
                    }
                }
            }
        }

        #[test]
        fn holds_and_remaining_never_exceed_what_was_granted(w in wallet_strategy(), costs in prop::collection::vec(1i64..300, 0..10)) {
            let now = t0();
            let mut w = w;
            for (n, cost) in costs.into_iter().enumerate() {
                if let Ok(portions) = w.split(Credits::new(cost), now) {
                    for p in portions {
                        w.reservations.push(Reservation {
                            run_id: RunId(Uuid::from_u128(5000 + n as u128)),
                            bucket_id: p.bucket_id,
                            credits: p.credits,
                            hold_expires_at: now + Duration::minutes(15),
                        });
                    }
                }
            }
            for b in &w.buckets {
                prop_assert!(b.remaining <= b.granted);
                // Holds past their TTL reserve nothing (R10); the live ones fit in what is left.
                prop_assert!(w.reserved_in(b.id, now) <= b.remaining, "reservations fit in what is left");
            }
            let bal = w.balance(now);
            let granted: i64 = w.buckets.iter().map(|b| b.granted.get()).sum();
            prop_assert!(bal.total.get() <= granted);
            prop_assert!(bal.available.get() >= 0);
        }
    }
}
