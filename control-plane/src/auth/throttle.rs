//! Login throttling: password guessing is slowed per account and per source address.
//!
//! Every login attempt takes a cell from two keyed GCRA buckets (governor): one per email
//! address (10 per minute, so one account cannot be brute-forced from many addresses) and
//! one per source IP (60 per minute, so one address cannot sweep many accounts). An empty
//! bucket answers `rate_limited` with `Retry-After` before the password is even hashed.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// The login buckets.
pub struct LoginThrottle {
    per_email: DefaultKeyedRateLimiter<String>,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginThrottle").finish_non_exhaustive()
    }
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new(10, 60)
    }
}

impl LoginThrottle {
    /// Buckets allowing `per_email` and `per_ip` attempts per minute (each also the burst).
    pub fn new(per_email: u32, per_ip: u32) -> Self {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n.max(1)).expect("at least one"));
        Self {
            per_email: DefaultKeyedRateLimiter::keyed(quota(per_email)),
            per_ip: DefaultKeyedRateLimiter::keyed(quota(per_ip)),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one attempt for `email` from `ip`; `Err` holds how long to wait.
    pub fn attempt(&self, email: &str, ip: Option<IpAddr>) -> Result<(), Duration> {
        let now = self.clock.now();
        if let Some(ip) = ip {
            self.per_ip
                .check_key(&ip)
                .map_err(|not_until| not_until.wait_time_from(now))?;
        }
        self.per_email
            .check_key(&email.trim().to_lowercase())
            .map_err(|not_until| not_until.wait_time_from(now))?;
        // Forget idle keys now and then so the maps stay small.
        if self.per_email.len() > 10_000 {
            self.per_email.retain_recent();
            self.per_ip.retain_recent();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_throttled_without_locking_out_others() {
        let throttle = LoginThrottle::new(3, 100);
        for _ in 0..3 {
            assert!(throttle.attempt("a@example.com", None).is_ok());
        }
        let wait = throttle.attempt("A@example.com ", None).unwrap_err();
        assert!(wait > Duration::ZERO);
        assert!(throttle.attempt("b@example.com", None).is_ok());
    }

    #[test]
    fn an_address_is_throttled_across_accounts() {
        let throttle = LoginThrottle::new(100, 2);
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        assert!(throttle.attempt("a@example.com", ip).is_ok());
        assert!(throttle.attempt("b@example.com", ip).is_ok());
        assert!(throttle.attempt("c@example.com", ip).is_err());
        assert!(
            throttle
                .attempt("c@example.com", Some(IpAddr::from([10, 0, 0, 2])))
                .is_ok()
        );
    }
}
