//! Client tokens as operators see them: their state at a given time, how many
//! a partner has in each state, and finding one by its id (a digest prefix).

use serde::Serialize;
use session_core::ports::ClientTokenRecord;
use session_core::time::Timestamp;

use super::args::TokenRef;

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

/// The one token of `tokens` whose digest starts with `wanted`.
pub fn resolve<'a>(
    tokens: &'a [ClientTokenRecord],
    partner: &str,
    wanted: &TokenRef,
) -> Result<&'a ClientTokenRecord, String> {
    let matches: Vec<&ClientTokenRecord> = tokens
        .iter()
        .filter(|t| t.digest.to_hex().starts_with(wanted.as_str()))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(format!(
            "partner {partner} has no token {wanted} (see `partners show {partner}`)"
        )),
        several => {
            let ids = display_ids(several);
            Err(format!(
                "token id {wanted} is ambiguous: partner {partner} has {} tokens starting with it ({}); give more hex digits",
                several.len(),
                ids.join(", ")
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
