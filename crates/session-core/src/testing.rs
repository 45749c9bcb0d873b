//! Test doubles for the core's input ports, shared by every test, bench and
//! fuzz target of the workspace (feature `testing`; never in a release build
//! of the server).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

pub use crate::example::partner as example_partner;
use crate::init_token::{TokenKey, TokenKeys};
use crate::random::Random;
use crate::secret::Secret;
use crate::time::{Clock, Timestamp};

/// The instant tests start at: 2026-11-24T08:35:30Z.
pub const NOW_MICROS: i64 = 1_795_509_330_000_000;

/// A clock that stands still until a test moves it.
#[derive(Debug)]
pub struct FixedClock(AtomicI64);

impl FixedClock {
    /// Stopped at `micros` since the Unix epoch.
    pub fn at_micros(micros: i64) -> Self {
        Self(AtomicI64::new(micros))
    }

    /// Moves the clock forward (or back, with a negative count).
    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds * 1_000_000, Ordering::SeqCst);
    }
}

impl Default for FixedClock {
    /// Stopped at [`NOW_MICROS`].
    fn default() -> Self {
        Self::at_micros(NOW_MICROS)
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_micros(self.0.load(Ordering::SeqCst))
    }
}

/// Deterministic "randomness": a counter through a mixing step, so every draw
/// differs from the previous one and a failure found on one run reproduces on
/// the next. Sources started at different counters never overlap in practice.
#[derive(Debug, Default)]
pub struct CountingRandom(AtomicU64);

impl CountingRandom {
    pub fn starting_at(counter: u64) -> Self {
        Self(AtomicU64::new(counter))
    }
}

impl Random for CountingRandom {
    fn fill(&self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let n = self.0.fetch_add(1, Ordering::Relaxed);
            // splitmix64: distinct counters give distinct, well-spread words.
            let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// Init-token keys with one current key (`t1`) and no rotated-out ones.
pub fn token_keys() -> TokenKeys {
    let key = TokenKey::new("t1", &Secret::new("init-token-key-for-tests-0123456789"))
        .expect("a 37-byte key is long enough");
    TokenKeys::new(key, vec![])
}

/// A status change of a made-up `processing` transaction of partner `acme`,
/// for tests of what carries changes (feeds, outboxes) rather than of what
/// makes them.
pub fn status_changed() -> crate::session::StatusChanged {
    let code = |text| crate::value::Code::parse(text).expect("valid code");
    let at = Timestamp::from_unix_micros(NOW_MICROS);
    crate::session::StatusChanged {
        merchant_transaction_id: uuid::Uuid::new_v4(),
        partner_id: crate::partner::PartnerId::parse("acme").expect("valid id"),
        tx_type: crate::value::TxType::Buy,
        status: crate::status::TxStatus::Processing,
        currency: code("USDT"),
        network: code("TRC20"),
        crypto_amount: None,
        fiat_currency: code("EUR"),
        fiat_amount: Some("10.00".to_owned()),
        payment_method: Some("card".to_owned()),
        created_at: at,
        updated_at: at,
        occurred_at: at,
    }
}
