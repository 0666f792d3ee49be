//! Identifiers: newtypes over UUIDs so an account id can never be passed where a run id belongs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new id; v7 UUIDs sort by creation time, which keeps index pages warm.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim()).map(Self)
            }
        }
    };
}

uuid_id!(
    /// A customer account.
    AccountId
);
uuid_id!(
    /// A grant of credits with its own remaining amount and expiry.
    BucketId
);
uuid_id!(
    /// One generation: held, captured or released.
    RunId
);
uuid_id!(
    /// An immutable ledger entry.
    EntryId
);
uuid_id!(
    /// An operator (sales, support, admin) of the service.
    OperatorId
);
