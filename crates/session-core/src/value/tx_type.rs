//! The direction of a transaction.

use super::Invalid;

/// `buy` (on-ramp: fiat to crypto) or `sell` (off-ramp: crypto to fiat).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxType {
    Buy,
    Sell,
}

impl TxType {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        match text {
            "buy" => Ok(Self::Buy),
            "sell" => Ok(Self::Sell),
            _ => Err("must be \"buy\" or \"sell\""),
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Buy => "buy",
            Self::Sell => "sell",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exactly_the_two_lower_case_words() {
        assert_eq!(TxType::parse("buy"), Ok(TxType::Buy));
        assert_eq!(TxType::parse("sell"), Ok(TxType::Sell));
        for bad in ["Buy", "SELL", "", " buy"] {
            assert!(TxType::parse(bad).is_err());
        }
        assert_eq!(TxType::parse(TxType::Sell.as_str()), Ok(TxType::Sell));
    }
}
