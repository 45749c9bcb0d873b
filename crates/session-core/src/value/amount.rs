//! Crypto amounts as exact decimal strings.

use super::Invalid;

/// Fraction digits allowed for a currency with no configured precision.
pub const DEFAULT_DECIMALS: u8 = 8;

const MAX_INTEGER_DIGITS: usize = 18;

/// A positive decimal amount, `^[0-9]+(\.[0-9]+)?$`, kept exactly as sent.
///
/// The service never does arithmetic on amounts: it validates, stores, signs and
/// echoes the partner's string, so there is nothing to round.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Amount {
    text: Box<str>,
    fraction_digits: u8,
}

impl Amount {
    /// Parses `text`, allowing at most `max_decimals` fraction digits.
    pub fn parse(text: &str, max_decimals: u8) -> Result<Self, Invalid> {
        let (integer, fraction) = match text.split_once('.') {
            Some((integer, fraction)) => (integer, Some(fraction)),
            None => (text, None),
        };
        let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(integer) || fraction.is_some_and(|f| !all_digits(f)) {
            return Err("must be a decimal string such as \"100\" or \"99.50\"");
        }
        if integer.len() > MAX_INTEGER_DIGITS {
            return Err("must have at most 18 integer digits");
        }
        let fraction = fraction.unwrap_or("");
        if fraction.len() > usize::from(max_decimals) {
            return Err("has more decimal places than the currency allows");
        }
        let is_zero = integer.bytes().chain(fraction.bytes()).all(|b| b == b'0');
        if is_zero {
            return Err("must be greater than zero");
        }
        // The fraction length fits: it is at most `max_decimals`, a u8.
        let fraction_digits = u8::try_from(fraction.len()).unwrap_or(u8::MAX);
        Ok(Self {
            text: text.into(),
            fraction_digits,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn fraction_digits(&self) -> u8 {
        self.fraction_digits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_plain_decimals_and_echoes_them_unchanged() {
        for ok in [
            "100",
            "99.50",
            "0.00000001",
            "007",
            "1.0",
            "999999999999999999.12345678",
        ] {
            assert_eq!(
                Amount::parse(ok, 8).map(|a| a.as_str().to_owned()),
                Ok(ok.to_owned())
            );
        }
    }

    #[test]
    fn refuses_every_form_the_spec_lists() {
        let cases = [
            ("1e3", "exponent"),
            ("-1", "sign"),
            ("+1", "sign"),
            ("0", "zero"),
            ("0.000", "zero with decimals"),
            (".5", "no integer part"),
            ("5.", "no fraction digits"),
            (" 5", "leading space"),
            ("5 ", "trailing space"),
            ("", "empty"),
            ("1.2.3", "two points"),
            ("1,5", "comma"),
            ("١٢", "non-ASCII digits"),
            ("0.000000001", "nine decimals"),
            ("1000000000000000000", "nineteen integer digits"),
            ("0x10", "hex"),
        ];
        for (text, why) in cases {
            assert!(
                Amount::parse(text, 8).is_err(),
                "{text:?} ({why}) should be refused"
            );
        }
    }

    #[test]
    fn decimals_follow_the_currency() {
        assert!(Amount::parse("1.123456", 6).is_ok());
        assert!(Amount::parse("1.1234567", 6).is_err());
        assert!(Amount::parse("1", 0).is_ok());
        assert!(Amount::parse("1.0", 0).is_err());
    }

    proptest! {
        #[test]
        fn accepted_iff_matches_the_grammar(text in "[0-9.e+ -]{0,24}") {
            let grammar = {
                let mut parts = text.splitn(2, '.');
                let integer = parts.next().unwrap_or("");
                let fraction = parts.next();
                let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
                digits(integer)
                    && fraction.is_none_or(digits)
                    && integer.len() <= 18
                    && fraction.map_or(0, str::len) <= 8
                    && text.bytes().any(|b| (b'1'..=b'9').contains(&b))
            };
            prop_assert_eq!(Amount::parse(&text, 8).is_ok(), grammar);
        }

        #[test]
        fn any_accepted_amount_round_trips(integer in "[0-9]{1,18}", fraction in proptest::option::of("[0-9]{1,8}")) {
            let text = match &fraction { Some(f) => format!("{integer}.{f}"), None => integer.clone() };
            if let Ok(amount) = Amount::parse(&text, 8) {
                prop_assert_eq!(amount.as_str(), text.as_str());
            }
        }
    }
}
