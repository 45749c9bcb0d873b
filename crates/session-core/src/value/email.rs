//! End-user email addresses.

use super::Invalid;

/// A syntactically valid email address of at most 254 characters.
///
/// The grammar is the one browsers apply to `<input type=email>` (a dot-atom
/// local part, a hostname domain), with RFC 5321's length limits, plus no
/// leading, trailing or doubled dots in the local part. Quoted local parts and
/// address literals are refused: no partner needs them and they complicate
/// every consumer downstream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(Box<str>);

impl Email {
    pub const MAX_LEN: usize = 254;

    pub fn parse(text: &str) -> Result<Self, Invalid> {
        const WHY: Invalid = "must be a valid email address";
        if text.len() > Self::MAX_LEN {
            return Err("must be at most 254 characters");
        }
        let (local, domain) = text.rsplit_once('@').ok_or(WHY)?;
        if !valid_local_part(local) || !valid_domain(domain) {
            return Err(WHY);
        }
        Ok(Self(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn valid_local_part(local: &str) -> bool {
    const SPECIALS: &[u8] = b"!#$%&'*+/=?^_`{|}~-";
    !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || SPECIALS.contains(&b))
}

fn valid_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses() {
        for ok in [
            "user@example.com",
            "a.b+tag@sub.example.co.uk",
            "x@localhost",
            "o'brien@ex-ample.org",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok:?} should parse");
        }
    }

    #[test]
    fn refuses_malformed_addresses() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let too_long = format!("a@{}.com", "b".repeat(250));
        for bad in [
            "",
            "user",
            "@example.com",
            "user@",
            "us er@example.com",
            ".user@example.com",
            "user.@example.com",
            "us..er@example.com",
            "user@-example.com",
            "user@example..com",
            "user@exa_mple.com",
            "user@example.com\n",
            "\"quoted\"@example.com",
            "üser@example.com",
            &long_local,
            &too_long,
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
