//! The partner's own identifier for its end user.

use super::Invalid;

/// 1–128 characters (Unicode scalar values), none of them a control character.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartnerUserId(Box<str>);

impl PartnerUserId {
    pub const MAX_CHARS: usize = 128;

    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let chars = text.chars().count();
        if chars == 0 || chars > Self::MAX_CHARS {
            return Err("must be 1 to 128 characters");
        }
        if text.chars().any(char::is_control) {
            return Err("must not contain control characters");
        }
        Ok(Self(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_counts_characters_not_bytes() {
        assert!(PartnerUserId::parse(&"é".repeat(128)).is_ok());
        assert!(PartnerUserId::parse(&"é".repeat(129)).is_err());
        assert!(PartnerUserId::parse("").is_err());
    }

    #[test]
    fn refuses_control_characters() {
        for bad in ["a\nb", "a\u{0}", "tab\t", "del\u{7f}", "c1\u{85}"] {
            assert!(
                PartnerUserId::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
        assert!(PartnerUserId::parse("user-123 / ü").is_ok());
    }
}
