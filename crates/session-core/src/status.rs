//! The transaction status state machine and the KYC status of end users.
//!
//! ```text
//!             ┌──────────────► completed
//!             │                    ▲
//!   pending ──┼──► processing ─────┤
//!             │                    ▼
//!             ├──────────────►  failed
//!             └──────────────► cancelled
//! ```
//!
//! Statuses only move forward. Terminal states (`completed`, `failed`,
//! `cancelled`) are never left. A repeated status, a step backwards
//! (`processing` → `pending`) and `processing` → `cancelled` are ignored.
//!
//! `pending` → `completed` is applied: providers deliver events at least once and
//! in any order, so a `completed` may arrive before (or instead of) its
//! `processing`. Refusing it would strand a paid transaction in `processing`
//! forever, since the provider receives a 200 and never resends.

use crate::error::Rejection;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxStatus {
    Pending,
    Processing,
    Completed,
    Failed,
    Cancelled,
}

impl TxStatus {
    pub const ALL: [TxStatus; 5] = [
        Self::Pending,
        Self::Processing,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
    ];

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Processing => "processing",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

/// What a reported status does to a transaction in status `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Apply,
    Ignore(IgnoredBecause),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoredBecause {
    /// The transaction already has this status.
    Unchanged,
    /// The transaction is terminal.
    Terminal,
    /// The reported status is behind the current one.
    Backward,
    /// A move the machine does not have (`processing` → `cancelled`).
    NotAllowed,
}

impl IgnoredBecause {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unchanged => "unchanged",
            Self::Terminal => "terminal",
            Self::Backward => "backward",
            Self::NotAllowed => "not_allowed",
        }
    }
}

/// The one function that decides every status change.
pub const fn transition(from: TxStatus, to: TxStatus) -> Transition {
    use IgnoredBecause::*;
    use TxStatus::*;
    match (from, to) {
        (Completed | Failed | Cancelled, _) => Transition::Ignore(Terminal),
        (Pending, Pending) | (Processing, Processing) => Transition::Ignore(Unchanged),
        (Pending, Processing | Completed | Failed | Cancelled) => Transition::Apply,
        (Processing, Completed | Failed) => Transition::Apply,
        (Processing, Pending) => Transition::Ignore(Backward),
        (Processing, Cancelled) => Transition::Ignore(NotAllowed),
    }
}

/// An end user's identity verification status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KycStatus {
    NotStarted,
    Pending,
    Verified,
    Failed,
}

impl KycStatus {
    pub const ALL: [KycStatus; 4] = [
        Self::NotStarted,
        Self::Pending,
        Self::Verified,
        Self::Failed,
    ];

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NotStarted => "not_started",
            Self::Pending => "pending",
            Self::Verified => "verified",
            Self::Failed => "failed",
        }
    }
}

/// Parses a status field of a request body.
pub fn parse_status(field: &str, text: &str) -> Result<TxStatus, Rejection> {
    TxStatus::parse(text).ok_or_else(|| {
        Rejection::invalid(
            field,
            "must be one of pending, processing, completed, failed, cancelled",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use IgnoredBecause::*;
    use TxStatus::*;

    /// The whole machine, written out pair by pair: 25 rows.
    #[test]
    fn every_pair_of_states() {
        let table = [
            (Pending, Pending, Transition::Ignore(Unchanged)),
            (Pending, Processing, Transition::Apply),
            (Pending, Completed, Transition::Apply),
            (Pending, Failed, Transition::Apply),
            (Pending, Cancelled, Transition::Apply),
            (Processing, Pending, Transition::Ignore(Backward)),
            (Processing, Processing, Transition::Ignore(Unchanged)),
            (Processing, Completed, Transition::Apply),
            (Processing, Failed, Transition::Apply),
            (Processing, Cancelled, Transition::Ignore(NotAllowed)),
            (Completed, Pending, Transition::Ignore(Terminal)),
            (Completed, Processing, Transition::Ignore(Terminal)),
            (Completed, Completed, Transition::Ignore(Terminal)),
            (Completed, Failed, Transition::Ignore(Terminal)),
            (Completed, Cancelled, Transition::Ignore(Terminal)),
            (Failed, Pending, Transition::Ignore(Terminal)),
            (Failed, Processing, Transition::Ignore(Terminal)),
            (Failed, Completed, Transition::Ignore(Terminal)),
            (Failed, Failed, Transition::Ignore(Terminal)),
            (Failed, Cancelled, Transition::Ignore(Terminal)),
            (Cancelled, Pending, Transition::Ignore(Terminal)),
            (Cancelled, Processing, Transition::Ignore(Terminal)),
            (Cancelled, Completed, Transition::Ignore(Terminal)),
            (Cancelled, Failed, Transition::Ignore(Terminal)),
            (Cancelled, Cancelled, Transition::Ignore(Terminal)),
        ];
        assert_eq!(table.len(), TxStatus::ALL.len() * TxStatus::ALL.len());
        for (from, to, expected) in table {
            assert_eq!(
                transition(from, to),
                expected,
                "{} -> {}",
                from.as_str(),
                to.as_str()
            );
        }
    }

    #[test]
    fn applied_moves_never_leave_a_terminal_state_nor_go_back() {
        let rank = |s: TxStatus| match s {
            Pending => 0,
            Processing => 1,
            _ => 2,
        };
        for from in TxStatus::ALL {
            for to in TxStatus::ALL {
                if transition(from, to) == Transition::Apply {
                    assert!(!from.is_terminal());
                    assert!(rank(to) > rank(from), "{from:?} -> {to:?}");
                }
            }
        }
    }

    #[test]
    fn any_order_of_delivery_reaches_the_same_terminal_state() {
        // A provider that reports processing then completed, delivered in every order
        // with a duplicate, always ends completed.
        let events = [Processing, Completed, Processing];
        let orders = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        for order in orders {
            let end = order
                .iter()
                .fold(Pending, |state, &i| match transition(state, events[i]) {
                    Transition::Apply => events[i],
                    Transition::Ignore(_) => state,
                });
            assert_eq!(end, Completed, "order {order:?}");
        }
    }

    #[test]
    fn names_round_trip() {
        for status in TxStatus::ALL {
            assert_eq!(TxStatus::parse(status.as_str()), Some(status));
        }
        for status in KycStatus::ALL {
            assert_eq!(KycStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(TxStatus::parse("Completed"), None);
        assert_eq!(KycStatus::parse("approved"), None);
    }
}
