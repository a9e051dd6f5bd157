//! Abuse limits on what anyone can call without a credential: GCRA rate limiters (`governor`)
//! per client address and, where a request names an account, per account. A refused request
//! gets 429 with `Retry-After`.
//!
//! | limit | key | default |
//! | --- | --- | --- |
//! | every public operation (no credential: login, portal sign-up, forgot, reset, public leads, provider webhooks, ...) | client address | `LUMIRE_RATE_PUBLIC_PER_MINUTE` 600, bursts of a sixth of it |
//! | `POST /v1/auth/register` | client address | `LUMIRE_RATE_REGISTER_PER_HOUR` 20 |
//! | `POST /v1/auth/password/forgot` | client address, and tenant + e-mail | `LUMIRE_RATE_FORGOT_PER_HOUR` 30 per address, 5 per account |
//! | failed partner HTTP Basic authentications | client address | `LUMIRE_RATE_PARTNER_FAILURES_PER_MINUTE` 10; past it every partner request from that address waits |
//!
//! The counters live in each engine process (several processes behind a balancer multiply the
//! allowance by their number); the login back-off, which guards passwords, is kept in the
//! database and shared (see `identity::login::check_rate_limit`). A limit of 0 turns it off.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::error::ApiError;
use crate::config::Settings;

/// Which limit a request is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Public,
    Register,
    ForgotAddress,
    ForgotAccount,
}

pub struct Limits {
    public: Option<DefaultKeyedRateLimiter<String>>,
    register: Option<DefaultKeyedRateLimiter<String>>,
    forgot_address: Option<DefaultKeyedRateLimiter<String>>,
    forgot_account: Option<DefaultKeyedRateLimiter<String>>,
    partner_failures: Option<DefaultKeyedRateLimiter<String>>,
    /// Addresses whose partner authentications failed past the limit, until when.
    partner_blocked: Mutex<std::collections::HashMap<String, Instant>>,
}

fn keyed(per: u32, period: Duration, burst: u32) -> Option<DefaultKeyedRateLimiter<String>> {
    let per = NonZeroU32::new(per)?;
    let interval = period / per.get();
    let quota = Quota::with_period(interval)?
        .allow_burst(NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN));
    Some(RateLimiter::keyed(quota))
}

fn refused(at: governor::NotUntil<governor::clock::QuantaInstant>) -> ApiError {
    let wait = at.wait_time_from(DefaultClock::default().now());
    ApiError::RateLimited {
        retry_after: wait.as_secs().max(1),
    }
}

impl Limits {
    pub fn new(s: &Settings) -> Limits {
        let hour = Duration::from_secs(3600);
        let minute = Duration::from_secs(60);
        Limits {
            public: keyed(
                s.rate_public_per_minute,
                minute,
                (s.rate_public_per_minute / 6).max(10),
            ),
            register: keyed(
                s.rate_register_per_hour,
                hour,
                (s.rate_register_per_hour / 4).max(1),
            ),
            forgot_address: keyed(
                s.rate_forgot_per_hour,
                hour,
                (s.rate_forgot_per_hour / 6).max(1),
            ),
            forgot_account: keyed(
                s.rate_forgot_per_hour.min(5),
                hour,
                s.rate_forgot_per_hour.min(3),
            ),
            partner_failures: keyed(
                s.rate_partner_failures_per_minute,
                minute,
                s.rate_partner_failures_per_minute,
            ),
            partner_blocked: Mutex::new(Default::default()),
        }
    }

    /// Counts one request against `limit` for `key`; 429 when the key is over it.
    pub fn check(&self, limit: Limit, key: &str) -> Result<(), ApiError> {
        let limiter = match limit {
            Limit::Public => &self.public,
            Limit::Register => &self.register,
            Limit::ForgotAddress => &self.forgot_address,
            Limit::ForgotAccount => &self.forgot_account,
        };
        match limiter {
            Some(l) => l.check_key(&key.to_string()).map_err(refused),
            None => Ok(()),
        }
    }

    /// 429 while the address is held back for failed partner authentications.
    pub fn partner_allowed(&self, address: &str) -> Result<(), ApiError> {
        let blocked = self
            .partner_blocked
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match blocked.get(address) {
            Some(until) if *until > Instant::now() => Err(ApiError::RateLimited {
                retry_after: until
                    .saturating_duration_since(Instant::now())
                    .as_secs()
                    .max(1),
            }),
            _ => Ok(()),
        }
    }

    /// Records a failed partner authentication from `address`.
    pub fn partner_failed(&self, address: &str) {
        let Some(l) = &self.partner_failures else {
            return;
        };
        if let Err(at) = l.check_key(&address.to_string()) {
            let wait = at.wait_time_from(DefaultClock::default().now());
            let mut blocked = self
                .partner_blocked
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            blocked.retain(|_, until| *until > now);
            blocked.insert(address.to_string(), now + wait.max(Duration::from_secs(1)));
        }
    }

    /// Forgets keys that are back to a full allowance (call now and then: the keyed stores
    /// grow with the number of distinct addresses seen).
    pub fn forget_idle(&self) {
        for l in [
            &self.public,
            &self.register,
            &self.forgot_address,
            &self.forgot_account,
            &self.partner_failures,
        ]
        .into_iter()
        .flatten()
        {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_refuse_past_the_burst_and_zero_turns_off() {
        let s = Settings {
            rate_register_per_hour: 4,
            rate_public_per_minute: 0,
            rate_partner_failures_per_minute: 2,
            ..Settings::default()
        };
        let l = Limits::new(&s);
        assert!(l.check(Limit::Register, "1.2.3.4").is_ok());
        assert!(matches!(
            l.check(Limit::Register, "1.2.3.4"),
            Err(ApiError::RateLimited { .. })
        ));
        assert!(l.check(Limit::Register, "5.6.7.8").is_ok(), "per address");
        for _ in 0..1000 {
            assert!(l.check(Limit::Public, "1.2.3.4").is_ok());
        }
        assert!(l.partner_allowed("9.9.9.9").is_ok());
        for _ in 0..3 {
            l.partner_failed("9.9.9.9");
        }
        assert!(l.partner_allowed("9.9.9.9").is_err());
        assert!(l.partner_allowed("9.9.9.8").is_ok());
        l.forget_idle();
    }
}
