//! Password hashing with argon2id (the crate's defaults: m=19 MiB, t=2, p=1, v=0x13).
//!
//! Hashing is deliberately slow (and takes 19 MiB): run it through [`HashingPool`], which
//! bounds how many run at once across the process, never while holding the database lock.

use std::sync::Arc;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Every argon2 slot stayed busy for the pool's whole queue wait.
#[derive(Debug, thiserror::Error)]
#[error("every password hashing slot is busy")]
pub struct Busy;

/// A cap on concurrent argon2 work (hashes and verifications), shared by every request, so
/// that a flood of logins costs bounded CPU and memory. A request waits briefly for a slot,
/// then gives up with [`Busy`] (answered `overloaded` with `Retry-After`).
#[derive(Debug)]
pub struct HashingPool {
    slots: Arc<Semaphore>,
    queue_wait: Duration,
}

impl HashingPool {
    /// A pool of `max_concurrent` slots (at least one) where callers wait up to
    /// `queue_wait`.
    pub fn new(max_concurrent: usize, queue_wait: Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_concurrent.max(1))),
            queue_wait,
        }
    }

    /// Runs `work` on a blocking thread once a slot is free. The slot is held until `work`
    /// returns, even if the caller has gone away meanwhile.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let slot = tokio::time::timeout(self.queue_wait, Arc::clone(&self.slots).acquire_owned())
            .await
            .map_err(|_| Busy)?
            .map_err(|_| Busy)?;
        tokio::task::spawn_blocking(move || {
            let result = work();
            drop(slot);
            result
        })
        .await
        .map_err(|_| Busy)
    }

    /// Takes one slot until the permit is dropped (for tests that saturate the pool).
    pub async fn occupy(&self) -> OwnedSemaphorePermit {
        Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .expect("the pool's semaphore is never closed")
    }
}

impl Default for HashingPool {
    fn default() -> Self {
        Self::new(4, Duration::from_secs(2))
    }
}

/// Hashes a password into a PHC string (`$argon2id$v=19$…`).
pub fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Checks a password against a stored PHC string. A malformed hash never verifies.
pub fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Spends the same time as a real verification, so that a login for an unknown email
/// cannot be told apart from a wrong password by timing.
pub fn verify_dummy(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let stored = DUMMY.get_or_init(|| hash("not a real password").unwrap_or_default());
    let _ = verify(password, stored);
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_full_pool_answers_busy_after_its_wait() {
        let pool = super::HashingPool::new(1, std::time::Duration::ZERO);
        let held = pool.occupy().await;
        assert!(pool.run(|| 1).await.is_err());
        drop(held);
        assert_eq!(pool.run(|| 1).await.expect("a free slot"), 1);
    }

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let stored = super::hash("correct horse").expect("hash");
        assert!(stored.starts_with("$argon2id$"));
        assert!(super::verify("correct horse", &stored));
        assert!(!super::verify("wrong", &stored));
        assert!(!super::verify("correct horse", "garbage"));
    }
}
