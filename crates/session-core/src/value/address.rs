//! Destination wallet addresses, checked against the shape of their network.

use std::sync::Arc;

use super::{Code, Invalid};

/// A wallet address that looks right for its network.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
///
/// Shared (`Arc`): a resolved wallet address is the partner's own value.
pub struct Address(Arc<str>);

/// How strictly an address's characters are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressRule {
    /// The network's own shape; unknown networks allow `[A-Za-z0-9:._-]`.
    Network,
    /// Additionally only ASCII letters and digits: the `sha512-concat` signature
    /// concatenates fields without separators, so no field may contain characters
    /// that could shift a boundary between them.
    Alphanumeric,
}

const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const BECH32: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

impl Address {
    pub const MAX_LEN: usize = 128;

    pub fn parse(text: &str, network: &Code, rule: AddressRule) -> Result<Self, Invalid> {
        let shape_ok = match network_family(network.as_str()) {
            Family::Evm => {
                text.len() == 42
                    && text.starts_with("0x")
                    && text[2..].bytes().all(|b| b.is_ascii_hexdigit())
            }
            Family::Tron => text.len() == 34 && text.starts_with('T') && all_in(text, BASE58),
            Family::Bitcoin => {
                let legacy = (26..=35).contains(&text.len())
                    && (text.starts_with('1') || text.starts_with('3'))
                    && all_in(text, BASE58);
                let segwit = (14..=74).contains(&text.len())
                    && text.starts_with("bc1")
                    && all_in(&text[3..], BECH32);
                legacy || segwit
            }
            Family::Solana => (32..=44).contains(&text.len()) && all_in(text, BASE58),
            Family::Other => {
                (8..=Self::MAX_LEN).contains(&text.len())
                    && text
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b":._-".contains(&b))
            }
        };
        if !shape_ok {
            return Err("does not look like an address of this network");
        }
        if rule == AddressRule::Alphanumeric && !text.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err("may contain only letters and digits for this partner");
        }
        Ok(Self(text.into()))
    }

    /// Rehydrates an address this service validated when it stored it. Only the
    /// generic bounds are re-checked, so tightening a network's rule later does
    /// not make old sessions unreadable.
    pub fn from_stored(text: &str) -> Result<Self, Invalid> {
        let ok =
            (1..=Self::MAX_LEN).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(Self(text.into()))
        } else {
            Err("stored address is malformed")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

enum Family {
    Evm,
    Tron,
    Bitcoin,
    Solana,
    Other,
}

fn network_family(network: &str) -> Family {
    const EVM: &[&str] = &[
        "ERC20", "BEP20", "BSC", "ETH", "POLYGON", "MATIC", "ARBITRUM", "OPTIMISM", "BASE", "AVAXC",
    ];
    let upper = network.to_ascii_uppercase();
    match upper.as_str() {
        n if EVM.contains(&n) => Family::Evm,
        "TRC20" | "TRX" | "TRON" => Family::Tron,
        "BTC" | "BITCOIN" => Family::Bitcoin,
        "SOL" | "SOLANA" | "SPL" => Family::Solana,
        _ => Family::Other,
    }
}

fn all_in(text: &str, alphabet: &[u8]) -> bool {
    text.bytes().all(|b| alphabet.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(network: &str, text: &str, rule: AddressRule) -> bool {
        let network = Code::parse(network).expect("test network parses");
        Address::parse(text, &network, rule).is_ok()
    }

    #[test]
    fn each_family_accepts_its_own_shape_only() {
        let tron = "TXYZabcdefghijkmnopqrstuvwxyz12345";
        let evm = "0x52908400098527886E0F7030069857D2E4169EE7";
        let cases = [
            ("TRC20", tron, true),
            ("TRC20", evm, false),
            ("TRC20", "TXYZ0bcdefghijkmnopqrstuvwxyz12345", false), // '0' is not base58
            ("ERC20", evm, true),
            ("BEP20", evm, true),
            ("ERC20", tron, false),
            ("ERC20", "0x52908400098527886E0F7030069857D2E4169EEG", false),
            ("BTC", "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", true),
            ("BTC", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", true),
            ("BTC", "bc1QAR0SRRR7XFKVY5L643LYDNW9RE59GTZZWF5MDQ", false),
            ("SOL", "7EcDhSYGxXyscszYEp35KHN8vvw3svAuLKTzXwCFLtV", true),
            ("SOL", "0OIl", false),
            ("CUSTOM", "acct:12345678", true),
            ("CUSTOM", "short", false),
            ("CUSTOM", "has space here", false),
        ];
        for (network, text, ok) in cases {
            assert_eq!(
                check(network, text, AddressRule::Network),
                ok,
                "{network} {text}"
            );
        }
    }

    #[test]
    fn alphanumeric_rule_refuses_separators() {
        assert!(check("CUSTOM", "acct12345678", AddressRule::Alphanumeric));
        assert!(!check("CUSTOM", "acct:12345678", AddressRule::Alphanumeric));
        assert!(check(
            "ERC20",
            "0x52908400098527886E0F7030069857D2E4169EE7",
            AddressRule::Alphanumeric
        ));
    }
}
