//! `network` and `currency` codes.

use std::fmt;
use std::sync::Arc;

use super::Invalid;

/// A currency or network code: 1–32 chars of `[A-Za-z0-9_-]`, case-sensitive.
///
/// Shared (`Arc`): a session takes its codes from the partner's configuration,
/// so storing one costs a reference count, not an allocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code(Arc<str>);

impl Code {
    pub const MAX_LEN: usize = 32;

    pub fn parse(text: &str) -> Result<Self, Invalid> {
        if text.is_empty() || text.len() > Self::MAX_LEN {
            return Err("must be 1 to 32 characters");
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err("may contain only letters, digits, '_' and '-'");
        }
        Ok(Self(text.into()))
    }

    /// [`Code::parse`] against a partner's configured codes (valid by
    /// construction): one look-up tells whether the code is among them, and a
    /// known code is shared instead of allocated again.
    pub fn parse_among(text: &str, known: &[Code]) -> Result<Among, Invalid> {
        match known.iter().find(|code| **code == *text) {
            Some(code) => Ok(Among::Known(code.clone())),
            None => Self::parse(text).map(Among::Unknown),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A valid code, and whether it is one of the codes it was looked up among.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Among {
    Known(Code),
    Unknown(Code),
}

impl Among {
    pub fn code(&self) -> &Code {
        match self {
            Self::Known(code) | Self::Unknown(code) => code,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Code {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_codes_and_refuses_others() {
        for ok in ["USDT", "TRC20", "usdt", "BEP-20", "a_b", &"X".repeat(32)] {
            assert!(Code::parse(ok).is_ok(), "{ok:?} should parse");
        }
        for bad in ["", "US DT", "USDT\n", "ÜSDT", "a.b", &"X".repeat(33)] {
            assert!(Code::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
