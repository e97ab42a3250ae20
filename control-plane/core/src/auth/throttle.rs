//! Login throttling: progressive delay per account and source address, and per address.
//!
//! Every attempt counts as a failure until it succeeds. Past a few free attempts, the next
//! one must wait an exponentially growing delay (1 s, 2 s, 4 s… up to 15 minutes) after the
//! previous one, or it is answered `rate_limited` with `Retry-After` before the password is
//! even hashed. Two counters apply:
//!
//! - per account *and* address: a stranger guessing someone's password slows only their
//!   own address down; the owner signing in from elsewhere is never locked out. A success
//!   resets it.
//! - per address, across accounts (with more free attempts): one address cannot sweep many
//!   accounts.
//!
//! There is deliberately no per-account counter across addresses: that would let anyone
//! lock any account out. Guessing from many addresses is bounded by the per-address delay
//! and the global cap on concurrent hashing ([`super::password::HashingPool`]). Addresses
//! behind a proxy are only the client's own when the proxy is trusted
//! ([`crate::audit::ClientIpPolicy`]).
//!
//! Keys are bounded: emails are validated (at most 254 bytes) before they get here, and
//! each map holds at most [`MAX_ENTRIES`]; idle entries are forgotten after an hour.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept per map at most.
pub const MAX_ENTRIES: usize = 100_000;

/// How attempts are slowed.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Attempts per account and address before delays start.
    pub free_per_account: u32,
    /// Attempts per address (all accounts) before delays start.
    pub free_per_ip: u32,
    /// The first delay; each further attempt doubles it.
    pub base_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
    /// An entry idle this long is forgotten.
    pub forget_after: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            free_per_account: 5,
            free_per_ip: 30,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            forget_after: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Attempts {
    count: u32,
    last: Instant,
}

/// The login counters.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    policy: Policy,
    per_account: Mutex<HashMap<(String, Option<IpAddr>), Attempts>>,
    per_ip: Mutex<HashMap<IpAddr, Attempts>>,
}

impl LoginThrottle {
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            ..Self::default()
        }
    }

    /// Takes one attempt for `email` from `ip`; `Err` holds how long to wait.
    pub fn attempt(&self, email: &str, ip: Option<IpAddr>) -> Result<(), Duration> {
        self.attempt_at(email, ip, Instant::now())
    }

    /// [`Self::attempt`] at a given instant (tests).
    pub fn attempt_at(
        &self,
        email: &str,
        ip: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), Duration> {
        let key = (normalize(email), ip);
        let policy = self.policy;
        let mut accounts = lock(&self.per_account);
        let mut ips = lock(&self.per_ip);
        let wait_account = wait(&policy, accounts.get(&key), policy.free_per_account, now);
        let wait_ip = ip
            .and_then(|ip| wait(&policy, ips.get(&ip), policy.free_per_ip, now))
            .unwrap_or_default();
        let longest = wait_account.unwrap_or_default().max(wait_ip);
        if !longest.is_zero() {
            return Err(longest);
        }
        count(&policy, &mut accounts, key, now);
        if let Some(ip) = ip {
            count(&policy, &mut ips, ip, now);
        }
        Ok(())
    }

    /// The attempt was right: the account's counter from this address starts again, and the
    /// address gets its attempt back.
    pub fn succeeded(&self, email: &str, ip: Option<IpAddr>) {
        lock(&self.per_account).remove(&(normalize(email), ip));
        if let Some(ip) = ip
            && let Some(entry) = lock(&self.per_ip).get_mut(&ip)
        {
            entry.count = entry.count.saturating_sub(1);
        }
    }
}

fn normalize(email: &str) -> String {
    email.trim().to_lowercase()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long the next attempt must still wait, if at all.
fn wait(policy: &Policy, entry: Option<&Attempts>, free: u32, now: Instant) -> Option<Duration> {
    let entry = entry?;
    if entry.count < free || now.duration_since(entry.last) >= policy.forget_after {
        return None;
    }
    let doublings = (entry.count - free).min(30);
    let delay = policy
        .base_delay
        .saturating_mul(1 << doublings)
        .min(policy.max_delay);
    delay
        .checked_sub(now.duration_since(entry.last))
        .filter(|left| !left.is_zero())
}

fn count<K: Hash + Eq>(policy: &Policy, map: &mut HashMap<K, Attempts>, key: K, now: Instant) {
    if let Some(entry) = map.get_mut(&key) {
        if now.duration_since(entry.last) >= policy.forget_after {
            entry.count = 0;
        }
        entry.count += 1;
        entry.last = now;
        return;
    }
    if map.len() >= MAX_ENTRIES {
        map.retain(|_, e| now.duration_since(e.last) < policy.forget_after);
    }
    if map.len() >= MAX_ENTRIES {
        // Still full of recent entries: forget those still within their free attempts (they
        // carry no delay); if even that frees nothing, the attempt goes uncounted rather
        // than refusing every new address.
        let free = policy.free_per_account.min(policy.free_per_ip);
        map.retain(|_, e| e.count >= free);
        if map.len() >= MAX_ENTRIES {
            return;
        }
    }
    map.insert(
        key,
        Attempts {
            count: 1,
            last: now,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            free_per_account: 3,
            free_per_ip: 100,
            ..Policy::default()
        }
    }

    const A: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)));
    const B: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)));

    #[test]
    fn delays_double_per_account_and_address_without_locking_out_others() {
        let throttle = LoginThrottle::new(policy());
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(throttle.attempt_at("a@example.com", A, t0).is_ok());
        }
        assert_eq!(
            throttle.attempt_at("A@example.com ", A, t0),
            Err(Duration::from_secs(1))
        );
        // The owner from another address, and another account from the same one, go on.
        assert!(throttle.attempt_at("a@example.com", B, t0).is_ok());
        assert!(throttle.attempt_at("b@example.com", A, t0).is_ok());
        // After the delay one more attempt, then twice the delay.
        let t1 = t0 + Duration::from_secs(1);
        assert!(throttle.attempt_at("a@example.com", A, t1).is_ok());
        assert_eq!(
            throttle.attempt_at("a@example.com", A, t1),
            Err(Duration::from_secs(2))
        );
        // A success starts the account over.
        throttle.succeeded("a@example.com", A);
        assert!(throttle.attempt_at("a@example.com", A, t1).is_ok());
    }

    #[test]
    fn an_address_is_slowed_across_accounts() {
        let throttle = LoginThrottle::new(Policy {
            free_per_account: 100,
            free_per_ip: 2,
            ..Policy::default()
        });
        let t0 = Instant::now();
        assert!(throttle.attempt_at("a@example.com", A, t0).is_ok());
        assert!(throttle.attempt_at("b@example.com", A, t0).is_ok());
        assert!(throttle.attempt_at("c@example.com", A, t0).is_err());
        assert!(throttle.attempt_at("c@example.com", B, t0).is_ok());
    }

    #[test]
    fn delays_are_capped_and_forgotten() {
        let throttle = LoginThrottle::new(policy());
        let mut now = Instant::now();
        for _ in 0..40 {
            match throttle.attempt_at("a@example.com", A, now) {
                Ok(()) => {}
                Err(wait) => {
                    assert!(wait <= policy().max_delay);
                    now += wait;
                }
            }
        }
        now += policy().forget_after;
        assert!(throttle.attempt_at("a@example.com", A, now).is_ok());
    }
}
