//! Per-partner request budgets (SPEC.md §2 "Rate limits"): a GCRA per
//! partner, checked right after the partner gate on every partner API route,
//! and the `RateLimit-Policy`, `RateLimit` and `Retry-After` headers.
//!
//! Each distinct budget (rate and burst) has one keyed `governor` limiter,
//! whose state is one atomic word per partner in a sharded map: recording a
//! request takes the shard lock of that partner only, never a lock that every
//! request shares. The server default's limiter is a plain field; the others
//! sit in a map that requests read without a lock (`ArcSwap`) and that
//! changes only when a new budget first appears or an unused one goes. A
//! partner whose budget changes (an operator's edit, carried to every
//! instance by the partner snapshot reload) is counted by the new budget's
//! limiter from its next request on, starting with a full burst.
//!
//! Memory stays bounded by the partners active recently: [`RateLimits::sweep`]
//! (every [`SWEEP_INTERVAL`], on a task of its own) drops every partner whose
//! bucket has filled up again, which changes no decision: a missing entry and
//! a full bucket admit the same requests.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use session_core::partner::{Partner, PartnerId, RateLimit};

/// How often idle partners' entries are dropped.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

type Keyed =
    RateLimiter<PartnerId, DashMapStateStore<PartnerId>, DefaultClock, StateInformationMiddleware>;

/// One budget's limiter, with its policy header made once.
struct Budget {
    limiter: Keyed,
    /// `"default";q=<burst>;w=<seconds in which the burst refills>`.
    policy: HeaderValue,
}

impl Budget {
    /// `None` for an unlimited budget.
    fn new(limit: RateLimit) -> Option<Self> {
        let per_second = NonZeroU32::new(limit.per_second())?;
        let burst = NonZeroU32::new(limit.burst())?;
        let quota = Quota::per_second(per_second).allow_burst(burst);
        let window = limit.burst().div_ceil(limit.per_second());
        let policy = HeaderValue::from_str(&format!("\"default\";q={burst};w={window}")).ok()?;
        Some(Self {
            limiter: RateLimiter::dashmap_with_clock(quota, DefaultClock::default())
                .with_middleware::<StateInformationMiddleware>(),
            policy,
        })
    }

    fn check(&self, partner: &PartnerId) -> Verdict {
        match self.limiter.check_key(partner) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                Verdict {
                    admitted: true,
                    policy: self.policy.clone(),
                    remaining,
                    // With nothing left, the next request conforms within one
                    // emission interval (at most a second): 1 rounded up.
                    reset: u64::from(remaining == 0),
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                Verdict {
                    admitted: false,
                    policy: self.policy.clone(),
                    remaining: 0,
                    reset: whole_seconds(wait).max(1),
                }
            }
        }
    }

    fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// What the budget said about one request, and the headers that tell it.
#[derive(Debug, Clone)]
pub struct Verdict {
    admitted: bool,
    policy: HeaderValue,
    remaining: u32,
    /// Seconds until a request is admitted again (0: now).
    reset: u64,
}

impl Verdict {
    pub fn admitted(&self) -> bool {
        self.admitted
    }

    /// `RateLimit-Policy` and `RateLimit`; on a refusal `Retry-After` too.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        headers.insert(RATELIMIT_POLICY.clone(), self.policy.clone());
        let state = format!("\"default\";r={};t={}", self.remaining, self.reset);
        if let Ok(value) = HeaderValue::from_str(&state) {
            headers.insert(RATELIMIT.clone(), value);
        }
        if !self.admitted {
            headers.insert(RETRY_AFTER, HeaderValue::from(self.reset));
        }
    }
}

/// The request budgets of every partner on this instance.
pub struct RateLimits {
    /// The budget of partners without one of their own (`--default-rate-limit`).
    default_limit: RateLimit,
    /// Its limiter; `None` when the default is unlimited.
    default: Option<Budget>,
    /// The limiters of partners' own budgets, by budget.
    others: ArcSwap<HashMap<RateLimit, Arc<Budget>>>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("default_limit", &self.default_limit)
            .field("tracked_partners", &self.tracked_partners())
            .finish_non_exhaustive()
    }
}

impl RateLimits {
    /// `default_limit` applies to partners without a budget of their own;
    /// [`RateLimit::UNLIMITED`] leaves them unlimited.
    pub fn new(default_limit: RateLimit) -> Self {
        Self {
            default_limit,
            default: Budget::new(default_limit),
            others: ArcSwap::from_pointee(HashMap::new()),
        }
    }

    /// Counts one request of `partner` against its budget: `None` when the
    /// partner is unlimited (no headers then), else whether it is admitted.
    pub fn check(&self, partner: &Partner) -> Option<Verdict> {
        let limit = partner.rate_limit.unwrap_or(self.default_limit);
        if limit.is_unlimited() {
            return None;
        }
        if limit == self.default_limit {
            return self
                .default
                .as_ref()
                .map(|budget| budget.check(&partner.id));
        }
        if let Some(budget) = self.others.load().get(&limit) {
            return Some(budget.check(&partner.id));
        }
        self.budget_for(limit)
            .map(|budget| budget.check(&partner.id))
    }

    /// The limiter of `limit`, made on its first use.
    fn budget_for(&self, limit: RateLimit) -> Option<Arc<Budget>> {
        let fresh = Arc::new(Budget::new(limit)?);
        let mut chosen = Arc::clone(&fresh);
        self.others.rcu(|current| {
            if let Some(existing) = current.get(&limit) {
                chosen = Arc::clone(existing);
                return Arc::clone(current);
            }
            chosen = Arc::clone(&fresh);
            let mut next = HashMap::clone(current);
            next.insert(limit, Arc::clone(&fresh));
            Arc::new(next)
        });
        Some(chosen)
    }

    /// Drops the entries of partners whose bucket is full again (no request
    /// for as long as the burst takes to refill) and gives their memory back,
    /// then forgets the limiters of budgets that no partner uses any more.
    ///
    /// A request racing with the last step may be counted by a limiter that
    /// is being forgotten; its next request starts afresh. That costs at most
    /// the requests made in those few microseconds, for a budget that was
    /// otherwise idle.
    pub fn sweep(&self) {
        if let Some(budget) = &self.default {
            budget.sweep();
        }
        let others = self.others.load_full();
        let mut unused = Vec::new();
        for (limit, budget) in others.iter() {
            budget.sweep();
            if budget.limiter.is_empty() {
                unused.push(*limit);
            }
        }
        if unused.is_empty() {
            return;
        }
        self.others.rcu(|current| {
            let mut next = HashMap::clone(current);
            next.retain(|limit, budget| !unused.contains(limit) || !budget.limiter.is_empty());
            next
        });
    }

    /// How many partners have an entry now (for tests and measurements).
    pub fn tracked_partners(&self) -> usize {
        let default = self.default.as_ref().map_or(0, |b| b.limiter.len());
        let others: usize = self.others.load().values().map(|b| b.limiter.len()).sum();
        default + others
    }

    /// Sweeps every [`SWEEP_INTERVAL`] on a task of the current runtime, for
    /// as long as `limits` is alive elsewhere.
    pub(crate) fn sweep_in_background(limits: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime, no server: nothing fills the limiters either.
            return;
        };
        let limits: Weak<Self> = Arc::downgrade(limits);
        runtime.spawn(async move {
            let mut ticks = tokio::time::interval(SWEEP_INTERVAL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(limits) = limits.upgrade() else {
                    return;
                };
                limits.sweep();
            }
        });
    }
}

/// `duration` in whole seconds, rounded up.
fn whole_seconds(duration: Duration) -> u64 {
    duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partner(id: &str, limit: Option<RateLimit>) -> Partner {
        let mut spec = session_core::example::partner(id);
        spec.rate_limit = limit;
        spec.build().expect("valid partner")
    }

    fn limit(per_second: u32, burst: u32) -> RateLimit {
        RateLimit::new(per_second, burst).expect("valid limit")
    }

    fn headers(verdict: &Verdict) -> Vec<(String, String)> {
        let mut map = HeaderMap::new();
        verdict.write_headers(&mut map);
        let mut list: Vec<(String, String)> = map
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    value.to_str().expect("ASCII").to_owned(),
                )
            })
            .collect();
        list.sort();
        list
    }

    /// A budget of one a second: the test's own pace refills nothing.
    #[test]
    fn a_burst_is_admitted_then_refused_with_the_headers() {
        let limits = RateLimits::new(RateLimit::UNLIMITED);
        let acme = partner("acme", Some(RateLimit::new(1, 3).expect("valid")));
        let mut remaining = Vec::new();
        for _ in 0..3 {
            let verdict = limits.check(&acme).expect("limited");
            assert!(verdict.admitted());
            remaining.push(verdict.remaining);
        }
        assert_eq!(remaining, [2, 1, 0]);
        let refused = limits.check(&acme).expect("limited");
        assert!(!refused.admitted());
        let headers = headers(&refused);
        let retry: u64 = headers
            .iter()
            .find(|(name, _)| name == "retry-after")
            .and_then(|(_, v)| v.parse().ok())
            .expect("Retry-After in whole seconds");
        assert_eq!(retry, 1, "one request refills in a second");
        assert!(headers.contains(&("ratelimit-policy".into(), "\"default\";q=3;w=3".into())));
        assert!(headers.contains(&("ratelimit".into(), "\"default\";r=0;t=1".into())));
    }

    #[test]
    fn admitted_answers_say_what_is_left() {
        let limits = RateLimits::new(limit(100, 200));
        let verdict = limits.check(&partner("acme", None)).expect("limited");
        assert_eq!(
            headers(&verdict),
            [
                ("ratelimit".into(), "\"default\";r=199;t=0".into()),
                ("ratelimit-policy".into(), "\"default\";q=200;w=2".into()),
            ]
        );
    }

    #[test]
    fn unlimited_partners_and_an_unlimited_default_are_not_counted() {
        let off = RateLimits::new(RateLimit::UNLIMITED);
        assert!(off.check(&partner("acme", None)).is_none());
        let on = RateLimits::new(limit(1, 1));
        let free = partner("free", Some(RateLimit::UNLIMITED));
        for _ in 0..10 {
            assert!(on.check(&free).is_none());
        }
        assert_eq!(on.tracked_partners(), 0);
    }

    #[test]
    fn partners_do_not_share_a_budget() {
        let limits = RateLimits::new(limit(1, 2));
        let (acme, other) = (partner("acme", None), partner("other", None));
        for _ in 0..2 {
            assert!(limits.check(&acme).is_some_and(|v| v.admitted()));
        }
        assert!(limits.check(&acme).is_some_and(|v| !v.admitted()));
        assert!(
            limits.check(&other).is_some_and(|v| v.admitted()),
            "acme's burst is its own"
        );
    }

    #[test]
    fn a_changed_budget_applies_from_the_next_request() {
        let limits = RateLimits::new(limit(1, 1));
        let before = partner("acme", None);
        assert!(limits.check(&before).is_some_and(|v| v.admitted()));
        assert!(limits.check(&before).is_some_and(|v| !v.admitted()));
        let after = partner("acme", Some(limit(1, 5)));
        let verdict = limits.check(&after).expect("limited");
        assert!(verdict.admitted());
        assert_eq!(verdict.remaining, 4);
        let unlimited = partner("acme", Some(RateLimit::UNLIMITED));
        assert!(limits.check(&unlimited).is_none());
    }

    #[test]
    fn sweeping_keeps_busy_partners_and_forgets_unused_budgets() {
        let limits = RateLimits::new(limit(1, 2));
        // Empty buckets (one a second) stay until they refill.
        let busy = partner("busy", Some(limit(1, 1)));
        let custom = partner("custom", Some(limit(1, 1)));
        assert!(limits.check(&busy).is_some_and(|v| v.admitted()));
        assert!(limits.check(&custom).is_some_and(|v| v.admitted()));
        assert!(limits.check(&partner("acme", None)).is_some());
        assert_eq!(limits.tracked_partners(), 3);
        limits.sweep();
        assert_eq!(limits.tracked_partners(), 3, "nothing has refilled yet");
        assert!(
            limits.check(&busy).is_some_and(|v| !v.admitted()),
            "a sweep forgets nothing that still counts"
        );
    }

    #[test]
    fn full_buckets_are_dropped_by_the_sweep() {
        let limits = RateLimits::new(limit(1_000_000, 1));
        let custom = limit(1_000_000, 2);
        for i in 0..100 {
            let id = format!("p{i}");
            assert!(limits.check(&partner(&id, None)).is_some());
            assert!(limits.check(&partner(&id, Some(custom))).is_some());
        }
        assert_eq!(limits.tracked_partners(), 200);
        // A microsecond refills either budget.
        std::thread::sleep(Duration::from_millis(5));
        limits.sweep();
        assert_eq!(limits.tracked_partners(), 0);
        assert!(
            limits.others.load().is_empty(),
            "the unused budget's limiter is gone"
        );
        assert!(
            limits
                .check(&partner("p0", Some(custom)))
                .is_some_and(|v| v.admitted()),
            "and made again on its next use"
        );
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(whole_seconds(Duration::ZERO), 0);
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(2)), 2);
        assert_eq!(whole_seconds(Duration::from_millis(2_001)), 3);
    }
}
