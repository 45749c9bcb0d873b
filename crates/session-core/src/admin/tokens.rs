//! Client tokens as operators see them: their state at a given time, how many
//! a partner has in each state, the id an operator types (a prefix of the
//! digest) and the grace period a rotation grants.

use std::fmt;

use serde::Serialize;

use crate::error::{ErrorKind, Rejection};
use crate::ports::ClientTokenRecord;
use crate::time::Timestamp;

/// Where a token stands at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    Active,
    /// Rotated: works until this time.
    Rotating(Timestamp),
    /// Rotated, and its grace period is over.
    Expired(Timestamp),
    Revoked(Timestamp),
}

impl TokenState {
    pub fn of(record: &ClientTokenRecord, now: Timestamp) -> Self {
        match (record.revoked_at, record.expires_at) {
            (Some(at), _) => Self::Revoked(at),
            (None, Some(end)) if now < end => Self::Rotating(end),
            (None, Some(end)) => Self::Expired(end),
            (None, None) => Self::Active,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Rotating(_) => "rotating",
            Self::Expired(_) => "expired",
            Self::Revoked(_) => "revoked",
        }
    }
}

/// A partner's tokens counted by state.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TokenCounts {
    pub active: usize,
    pub rotating: usize,
    pub expired: usize,
    pub revoked: usize,
}

impl TokenCounts {
    pub fn of(tokens: &[ClientTokenRecord], now: Timestamp) -> Self {
        let mut counts = Self::default();
        for token in tokens {
            *match TokenState::of(token, now) {
                TokenState::Active => &mut counts.active,
                TokenState::Rotating(_) => &mut counts.rotating,
                TokenState::Expired(_) => &mut counts.expired,
                TokenState::Revoked(_) => &mut counts.revoked,
            } += 1;
        }
        counts
    }
}

/// A token as operators name it: at least the 8 hex digits of its short id,
/// at most the 64 of its whole SHA-256, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRef(String);

impl TokenRef {
    pub const MIN_LEN: usize = 8;

    pub fn parse(text: &str) -> Result<Self, String> {
        let ok = (Self::MIN_LEN..=64).contains(&text.len())
            && text.bytes().all(|b| b.is_ascii_hexdigit());
        if ok {
            Ok(Self(text.to_ascii_lowercase()))
        } else {
            Err(format!(
                "{text:?} is not a token id: give the 8 hex digits shown by `partners show` (or more of the digest)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TokenRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How long a rotated-out token or key keeps working, in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GracePeriod {
    seconds: i64,
}

impl GracePeriod {
    /// A grace longer than a year defeats the point of rotating.
    pub const MAX_SECONDS: i64 = 365 * 86_400;

    /// What a rotation grants when nothing is said.
    pub const DEFAULT: Self = Self { seconds: 86_400 };

    /// `0`, or a whole number followed by `s`, `m`, `h` or `d`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "0" {
            return Ok(Self { seconds: 0 });
        }
        let unit = |suffix: char| -> Option<i64> {
            match suffix {
                's' => Some(1),
                'm' => Some(60),
                'h' => Some(3_600),
                'd' => Some(86_400),
                _ => None,
            }
        };
        let malformed = || format!("{text:?} is not a duration like 90s, 15m, 24h, 7d or 0");
        let suffix = text.chars().last().ok_or_else(malformed)?;
        let number = &text[..text.len() - suffix.len_utf8()];
        let scale = unit(suffix).ok_or_else(malformed)?;
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
        let seconds = number
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(scale))
            .filter(|s| *s <= Self::MAX_SECONDS)
            .ok_or_else(|| format!("{text:?} is longer than the 365 days a grace may last"))?;
        Ok(Self { seconds })
    }

    /// A grace of `seconds`, at most [`GracePeriod::MAX_SECONDS`].
    pub fn of_seconds(seconds: i64) -> Option<Self> {
        (0..=Self::MAX_SECONDS)
            .contains(&seconds)
            .then_some(Self { seconds })
    }

    pub const fn seconds(self) -> i64 {
        self.seconds
    }
}

/// The one token of `tokens` whose digest starts with `wanted`: `not_found`
/// when none does, `validation_error` when several do.
pub fn resolve<'a>(
    tokens: &'a [ClientTokenRecord],
    partner: &str,
    wanted: &TokenRef,
) -> Result<&'a ClientTokenRecord, Rejection> {
    let matches: Vec<&ClientTokenRecord> = tokens
        .iter()
        .filter(|t| t.digest.to_hex().starts_with(wanted.as_str()))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(Rejection::new(
            ErrorKind::NotFound,
            format!("partner {partner} has no token {wanted}"),
        )),
        several => {
            let ids = display_ids(several);
            Err(Rejection::new(
                ErrorKind::ValidationError,
                format!(
                    "token id {wanted} is ambiguous: partner {partner} has {} tokens starting with it ({}); give more hex digits",
                    several.len(),
                    ids.join(", ")
                ),
            ))
        }
    }
}

/// The id to show for each token: its 8-hex short id, lengthened where two
/// tokens of the list share it, so every id shown can be typed back.
pub fn display_ids(tokens: &[&ClientTokenRecord]) -> Vec<String> {
    let hexes: Vec<String> = tokens.iter().map(|t| t.digest.to_hex()).collect();
    hexes
        .iter()
        .enumerate()
        .map(|(i, hex)| {
            let shared = hexes
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, other)| common_prefix(hex, other))
                .max()
                .unwrap_or(0);
            let len = (shared + 1).clamp(TokenRef::MIN_LEN, hex.len());
            hex[..len].to_owned()
        })
        .collect()
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}
