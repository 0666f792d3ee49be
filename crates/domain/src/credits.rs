//! Credits: whole, signed numbers of credits with checked arithmetic.

use std::fmt;
use std::iter::Sum;

use serde::{Deserialize, Serialize};

/// A whole number of credits. Signed, because ledger entries are; every arithmetic operation on
/// it is checked, so an overflow is a refusal and never a wrap-around.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct Credits(i64);

impl Credits {
    pub const ZERO: Credits = Credits(0);

    pub const fn new(value: i64) -> Self {
        Credits(value)
    }

    pub const fn get(self) -> i64 {
        self.0
    }

    pub fn is_positive(self) -> bool {
        self.0 > 0
    }

    pub fn checked_add(self, other: Credits) -> Option<Credits> {
        self.0.checked_add(other.0).map(Credits)
    }

    pub fn checked_sub(self, other: Credits) -> Option<Credits> {
        self.0.checked_sub(other.0).map(Credits)
    }

    pub fn checked_mul(self, factor: i64) -> Option<Credits> {
        self.0.checked_mul(factor).map(Credits)
    }

    /// The credits with the sign turned round (a grant of 5 becomes a debit of -5).
    pub fn negated(self) -> Credits {
        Credits(-self.0)
    }

    pub fn min(self, other: Credits) -> Credits {
        Credits(self.0.min(other.0))
    }
}

impl fmt::Display for Credits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Sum for Credits {
    /// Sums of an account's credits stay far below i64::MAX (every grant is bounded at the edge);
    /// saturating keeps a corrupted row from turning into a panic.
    fn sum<I: Iterator<Item = Credits>>(iter: I) -> Credits {
        Credits(iter.fold(0i64, |acc, c| acc.saturating_add(c.0)))
    }
}
