//! `X-Request-Id`: echo a well-formed client id, otherwise mint one.

use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderValue;

/// Mints ids as a per-process random prefix plus a counter: unique across
/// instances with overwhelming probability, and far cheaper than a UUID per
/// request.
#[derive(Debug)]
pub struct RequestIds {
    prefix: u64,
    counter: AtomicU64,
}

impl RequestIds {
    pub fn new(prefix: u64) -> Self {
        Self {
            prefix,
            counter: AtomicU64::new(0),
        }
    }

    /// The client's id when it is 1–128 chars of `[A-Za-z0-9._-]`, else a new one.
    pub fn for_request(&self, presented: Option<&HeaderValue>) -> HeaderValue {
        if let Some(value) = presented.filter(|v| is_valid(v.as_bytes())) {
            return value.clone();
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut text = [0u8; 32];
        write_hex(self.prefix, &mut text[..16]);
        write_hex(n, &mut text[16..]);
        // Hex digits are always a valid header value.
        HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static("0"))
    }
}

fn is_valid(id: &[u8]) -> bool {
    (1..=128).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn write_hex(value: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, slot) in out.iter_mut().enumerate() {
        let shift = 60 - 4 * i;
        *slot = DIGITS[((value >> shift) & 0xf) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_valid_ids_only() {
        let ids = RequestIds::new(0xabc);
        let echo = |v: &str| ids.for_request(Some(&HeaderValue::from_str(v).expect("header")));
        assert_eq!(echo("req-1.a_B"), "req-1.a_B");
        assert_eq!(echo(&"a".repeat(128)), "a".repeat(128).as_str());
        for bad in [
            "",
            "has space",
            "semi;colon",
            &"a".repeat(129),
            "ümlaut".trim(),
        ] {
            if let Ok(value) = HeaderValue::from_str(bad) {
                assert_ne!(
                    ids.for_request(Some(&value)),
                    value,
                    "{bad:?} must be replaced"
                );
            }
        }
    }

    #[test]
    fn minted_ids_are_distinct_and_well_formed() {
        let ids = RequestIds::new(0x0123_4567_89ab_cdef);
        let first = ids.for_request(None);
        let second = ids.for_request(None);
        assert_ne!(first, second);
        assert_eq!(first, "0123456789abcdef0000000000000000");
        assert!(is_valid(second.as_bytes()));
    }
}
