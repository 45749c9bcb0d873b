//! When a failed webhook delivery is tried again: capped exponential backoff
//! with ±20 % jitter, a `Retry-After` that may lengthen (never beyond the cap)
//! the wait, and abandonment once the next try would fall past the horizon.

use crate::random::Random;
use crate::time::Timestamp;

/// How failed deliveries are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first retry waits about this long; the n-th, base × 2ⁿ⁻¹.
    pub base_micros: i64,
    /// No wait is longer than this.
    pub cap_micros: i64,
    /// A delivery still failing this long after its event is abandoned.
    pub horizon_micros: i64,
}

/// One failed attempt, as far as scheduling cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// Attempts made so far, this one included (1 after the first).
    pub number: u32,
    /// `Retry-After` of a 429 or 503 answer, in seconds.
    pub retry_after_seconds: Option<u64>,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    RetryAt(Timestamp),
    /// The next try would fall past the horizon: mark the delivery failed.
    Abandon,
}

/// Jitter, in thousandths of the wait, either way.
const JITTER_PERMILLE: i64 = 200;

impl RetryPolicy {
    /// The next step after `attempt` failed at `now`, for an event committed
    /// at `event_at`. `jitter_permille` in -200..=200 spreads retries of many
    /// deliveries that failed together (see [`jitter_permille`]).
    pub fn after_failure(
        &self,
        attempt: Attempt,
        event_at: Timestamp,
        now: Timestamp,
        jitter_permille: i64,
    ) -> NextStep {
        let cap = self.cap_micros.max(0);
        let doublings = attempt.number.saturating_sub(1).min(62);
        let backoff = self
            .base_micros
            .max(0)
            .saturating_mul(1_i64 << doublings)
            .min(cap);
        let jitter = jitter_permille.clamp(-JITTER_PERMILLE, JITTER_PERMILLE);
        let jittered = backoff.saturating_add(backoff / 1_000 * jitter);
        let asked = attempt.retry_after_seconds.map_or(0, |seconds| {
            i64::try_from(seconds)
                .unwrap_or(i64::MAX)
                .saturating_mul(1_000_000)
        });
        let wait = jittered.max(asked).min(cap).max(0);
        let next = Timestamp::from_unix_micros(now.unix_micros().saturating_add(wait));
        let horizon = event_at.unix_micros().saturating_add(self.horizon_micros);
        if next.unix_micros() > horizon {
            NextStep::Abandon
        } else {
            NextStep::RetryAt(next)
        }
    }
}

/// A jitter draw for [`RetryPolicy::after_failure`]: uniform in -200..=200.
pub fn jitter_permille(random: &dyn Random) -> i64 {
    let mut bytes = [0u8; 4];
    random.fill(&mut bytes);
    let span = u32::try_from(2 * JITTER_PERMILLE + 1).unwrap_or(1);
    i64::from(u32::from_le_bytes(bytes) % span) - JITTER_PERMILLE
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testing::CountingRandom;

    const SECOND: i64 = 1_000_000;

    /// The defaults of SPEC.md: base 5 s, cap 6 h, horizon 72 h.
    fn policy() -> RetryPolicy {
        RetryPolicy {
            base_micros: 5 * SECOND,
            cap_micros: 6 * 3_600 * SECOND,
            horizon_micros: 72 * 3_600 * SECOND,
        }
    }

    fn wait(step: NextStep, now: Timestamp) -> i64 {
        match step {
            NextStep::RetryAt(at) => at.unix_micros() - now.unix_micros(),
            NextStep::Abandon => panic!("abandoned"),
        }
    }

    #[test]
    fn waits_double_from_the_base_up_to_the_cap() {
        let now = Timestamp::from_unix_seconds(1_000);
        let step = |number| {
            let attempt = Attempt {
                number,
                retry_after_seconds: None,
            };
            wait(policy().after_failure(attempt, now, now, 0), now)
        };
        assert_eq!(
            [step(1), step(2), step(3), step(4)],
            [5 * SECOND, 10 * SECOND, 20 * SECOND, 40 * SECOND]
        );
        assert_eq!(step(20), 6 * 3_600 * SECOND, "capped");
        assert_eq!(step(u32::MAX), 6 * 3_600 * SECOND, "no overflow");
    }

    #[test]
    fn retry_after_lengthens_but_never_past_the_cap() {
        let now = Timestamp::from_unix_seconds(1_000);
        let with = |seconds| Attempt {
            number: 1,
            retry_after_seconds: Some(seconds),
        };
        assert_eq!(
            wait(policy().after_failure(with(60), now, now, 0), now),
            60 * SECOND
        );
        assert_eq!(
            wait(policy().after_failure(with(1), now, now, 0), now),
            5 * SECOND,
            "never shortens"
        );
        assert_eq!(
            wait(policy().after_failure(with(u64::MAX), now, now, 0), now),
            6 * 3_600 * SECOND
        );
    }

    #[test]
    fn a_try_past_the_horizon_abandons() {
        let event_at = Timestamp::from_unix_seconds(0);
        let late = Timestamp::from_unix_seconds(72 * 3_600 - 4);
        let attempt = Attempt {
            number: 1,
            retry_after_seconds: None,
        };
        assert_eq!(
            policy().after_failure(attempt, event_at, late, 0),
            NextStep::Abandon
        );
    }

    #[test]
    fn jitter_draws_stay_in_bounds_and_vary() {
        let random = CountingRandom::default();
        let draws: Vec<i64> = (0..1_000).map(|_| jitter_permille(&random)).collect();
        assert!(draws.iter().all(|j| (-200..=200).contains(j)));
        assert!(draws.iter().any(|j| *j < -100) && draws.iter().any(|j| *j > 100));
    }

    proptest! {
        #[test]
        fn waits_stay_within_jitter_of_the_backoff_and_under_the_cap(
            base in 1..3_600 * SECOND,
            cap_factor in 1..10_000_i64,
            number in 1..100_u32,
            jitter in -200..=200_i64,
            retry_after in proptest::option::of(0..1_000_000_u64),
        ) {
            let policy = RetryPolicy {
                base_micros: base,
                cap_micros: base.saturating_mul(cap_factor),
                horizon_micros: i64::MAX / 4,
            };
            let now = Timestamp::from_unix_seconds(1_000);
            let attempt = Attempt { number, retry_after_seconds: retry_after };
            let waited = wait(policy.after_failure(attempt, now, now, jitter), now);
            prop_assert!(waited <= policy.cap_micros, "never beyond the cap");
            let backoff = base
                .saturating_mul(1_i64 << (number - 1).min(62))
                .min(policy.cap_micros);
            let asked = retry_after.map_or(0, |s| i64::try_from(s).unwrap_or(i64::MAX).saturating_mul(SECOND));
            let low = (backoff - backoff / 5).max(asked.min(policy.cap_micros)) - 1_000;
            let high = (backoff + backoff / 5).max(asked).min(policy.cap_micros);
            prop_assert!(waited >= low && waited <= high, "{waited} not in {low}..={high}");
        }

        #[test]
        fn the_schedule_ends_within_the_horizon(
            base in SECOND..60 * SECOND,
            horizon_hours in 1..200_i64,
            jitters in proptest::collection::vec(-200..=200_i64, 200),
        ) {
            let policy = RetryPolicy {
                base_micros: base,
                cap_micros: 6 * 3_600 * SECOND,
                horizon_micros: horizon_hours * 3_600 * SECOND,
            };
            let event_at = Timestamp::from_unix_seconds(0);
            let mut now = event_at;
            let mut abandoned = false;
            for (i, jitter) in jitters.iter().enumerate() {
                let attempt = Attempt { number: u32::try_from(i + 1).unwrap_or(u32::MAX), retry_after_seconds: None };
                match policy.after_failure(attempt, event_at, now, *jitter) {
                    NextStep::RetryAt(at) => {
                        prop_assert!(at > now, "time moves on");
                        prop_assert!(at.unix_micros() <= policy.horizon_micros, "within the horizon");
                        now = at;
                    }
                    NextStep::Abandon => {
                        abandoned = true;
                        break;
                    }
                }
            }
            prop_assert!(abandoned, "a delivery that keeps failing is abandoned");
        }
    }
}
