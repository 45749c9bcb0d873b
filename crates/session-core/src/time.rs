//! Time as an input: the `Clock` port and a `Timestamp` with exact RFC 3339 output.

use std::fmt;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An instant, in whole microseconds since the Unix epoch (UTC).
///
/// Microseconds are what PostgreSQL stores, so a timestamp survives a round trip
/// through either store unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const UNIX_EPOCH: Timestamp = Timestamp(0);

    pub const fn from_unix_micros(micros: i64) -> Self {
        Self(micros)
    }

    pub const fn from_unix_seconds(seconds: i64) -> Self {
        Self(seconds.saturating_mul(1_000_000))
    }

    pub const fn unix_micros(self) -> i64 {
        self.0
    }

    /// Whole seconds, rounded down (JWT `iat`/`exp` are seconds).
    pub const fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    pub const fn plus_seconds(self, seconds: i64) -> Self {
        Self(self.0.saturating_add(seconds.saturating_mul(1_000_000)))
    }

    /// Parses an RFC 3339 timestamp with any offset, keeping microsecond
    /// precision. Instants whose UTC year is outside 0000-9999 are refused:
    /// RFC 3339 cannot write them, so they could not be written back out.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let parsed = OffsetDateTime::parse(text, &Rfc3339).ok()?;
        let utc = parsed.checked_to_offset(time::UtcOffset::UTC)?;
        if !(0..=9999).contains(&utc.year()) {
            return None;
        }
        let micros = parsed.unix_timestamp_nanos().div_euclid(1_000);
        i64::try_from(micros).ok().map(Self)
    }

    /// RFC 3339 in UTC with a `Z` suffix and microsecond precision,
    /// e.g. `2026-11-24T10:15:30.123456Z`.
    pub fn to_rfc3339(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = i128::from(self.0) * 1_000;
        match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(at) => write!(
                f,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
                at.year(),
                u8::from(at.month()),
                at.day(),
                at.hour(),
                at.minute(),
                at.second(),
                at.microsecond()
            ),
            // Out of the calendar's range: only reachable with a corrupt clock.
            Err(_) => write!(f, "1970-01-01T00:00:00.000000Z"),
        }
    }
}

/// The source of "now". Production reads the system clock; tests move time by hand.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_z_and_microseconds() {
        let at = Timestamp::from_unix_micros(1_795_509_330_123_456);
        assert_eq!(at.to_rfc3339(), "2026-11-24T08:35:30.123456Z");
        assert_eq!(
            Timestamp::UNIX_EPOCH.to_rfc3339(),
            "1970-01-01T00:00:00.000000Z"
        );
    }

    #[test]
    fn parses_offsets_into_utc_and_round_trips() {
        let at = Timestamp::parse_rfc3339("2026-11-24T09:35:30.123456+01:00");
        assert_eq!(at, Some(Timestamp::from_unix_micros(1_795_509_330_123_456)));
        let back = Timestamp::parse_rfc3339(&Timestamp::from_unix_micros(42).to_rfc3339());
        assert_eq!(back, Some(Timestamp::from_unix_micros(42)));
        assert_eq!(Timestamp::parse_rfc3339("2026-11-24 09:35:30"), None);
        // Offsets that push the UTC instant out of 0000-9999 (found by fuzzing).
        assert_eq!(Timestamp::parse_rfc3339("0000-01-01T00:00:00+00:01"), None);
        assert_eq!(Timestamp::parse_rfc3339("9999-12-31T23:59:59-23:59"), None);
        let edge = Timestamp::parse_rfc3339("9999-12-31T23:59:59.999999Z").expect("last instant");
        assert_eq!(Timestamp::parse_rfc3339(&edge.to_rfc3339()), Some(edge));
        assert_eq!(Timestamp::parse_rfc3339(""), None);
    }

    #[test]
    fn seconds_round_down_before_the_epoch() {
        assert_eq!(Timestamp::from_unix_micros(-1).unix_seconds(), -1);
        assert_eq!(Timestamp::from_unix_micros(1_999_999).unix_seconds(), 1);
    }
}
