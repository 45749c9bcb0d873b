//! The real clock and the real random source: the only places the process
//! reads the time or the operating system's entropy.

use session_core::random::Random;
use session_core::time::{Clock, Timestamp};

#[derive(Debug, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[expect(
        clippy::disallowed_methods,
        reason = "this adapter is the Clock port's production implementation"
    )]
    fn now(&self) -> Timestamp {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp::from_unix_micros(i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX))
    }
}

/// A thread-local ChaCha generator seeded from the operating system (`rand`'s
/// default CSPRNG): cryptographically secure, without a system call per draw.
#[derive(Debug, Clone, Copy)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, dest: &mut [u8]) {
        rand::fill(dest);
    }
}
