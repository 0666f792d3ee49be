//! Section 7: one account's burst never takes every database connection. Before a request that
//! locks its account's row takes a connection, it takes one of the account's few places on this
//! instance (`database.per_account_connections`); the others wait here, holding nothing, up to
//! `database.lock_timeout_ms`, and are then answered 429 ACCOUNT_BUSY. Requests of other accounts,
//! `/healthz` and `/readyz` find connections free whatever one account does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use credits_domain::ids::AccountId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

pub struct AccountGate {
    places: usize,
    wait: Duration,
    accounts: Mutex<HashMap<AccountId, Arc<Semaphore>>>,
}

/// A place held; given back when dropped (the account's entry goes once nobody holds or waits).
pub struct Entered {
    permit: Option<OwnedSemaphorePermit>,
    gate: Arc<AccountGate>,
    account: AccountId,
}

impl Drop for Entered {
    fn drop(&mut self) {
        drop(self.permit.take());
        self.gate.forget_if_idle(self.account);
    }
}

impl AccountGate {
    pub fn new(places: usize, wait: Duration) -> AccountGate {
        AccountGate { places: places.max(1), wait, accounts: Mutex::new(HashMap::new()) }
    }

    fn semaphore(&self, account: AccountId) -> Arc<Semaphore> {
        let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        accounts.entry(account).or_insert_with(|| Arc::new(Semaphore::new(self.places))).clone()
    }

    fn forget_if_idle(&self, account: AccountId) {
        let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        // Only the map holds it: nobody inside, nobody waiting.
        if accounts.get(&account).is_some_and(|s| Arc::strong_count(s) == 1) {
            accounts.remove(&account);
        }
    }

    /// Wait for one of the account's places, at most the lock timeout.
    pub async fn enter(self: &Arc<Self>, account: AccountId) -> Result<Entered, ApiError> {
        let semaphore = self.semaphore(account);
        let acquired = tokio::time::timeout(self.wait, semaphore.acquire_owned()).await;
        match acquired {
            Ok(Ok(permit)) => Ok(Entered { permit: Some(permit), gate: self.clone(), account }),
            _ => {
                self.forget_if_idle(account);
                Err(ApiError::account_busy())
            }
        }
    }

    /// How many accounts have requests inside or waiting (for tests and metrics).
    pub fn accounts_tracked(&self) -> usize {
        self.accounts.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_third_request_of_one_account_waits_and_is_busy_while_another_account_goes_in() {
        let gate = Arc::new(AccountGate::new(2, Duration::from_millis(50)));
        let (a, b) = (AccountId(uuid::Uuid::from_u128(1)), AccountId(uuid::Uuid::from_u128(2)));
        let first = gate.enter(a).await.unwrap();
        let _second = gate.enter(a).await.unwrap();
        assert_eq!(gate.enter(a).await.err().map(|e| e.code), Some("ACCOUNT_BUSY"));
        let other = gate.enter(b).await.unwrap();
        drop(first);
        let _third = gate.enter(a).await.unwrap();
        drop(other);
        assert_eq!(gate.accounts_tracked(), 1, "an account nobody is in is forgotten");
    }
}
