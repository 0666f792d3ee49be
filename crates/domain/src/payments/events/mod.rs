//! What each Stripe event means (SPEC section 5, R3, R4, R14, R17): one pure `decide_*` per event
//! kind, from the facts the store loaded under the account's lock to the effects it writes, all
//! in the event's one transaction. The store decides nothing; these decide everything.

mod applied;
mod charges;
mod effects;
mod facts;
mod model;
mod sessions;
mod subscriptions;

pub use applied::*;
pub use charges::*;
pub use effects::*;
pub use facts::*;
pub use model::*;
pub use sessions::*;
pub use subscriptions::*;
