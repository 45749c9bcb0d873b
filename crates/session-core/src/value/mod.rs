//! Parsed domain values: each constructor checks one rule of SPEC.md §2, so a
//! value that exists is valid. Fields are private; getters borrow.

mod address;
mod amount;
mod client_ip;
mod code;
mod email;
mod ip_range;
mod origin;
mod redirect_url;
mod tx_type;
mod user_id;

pub use address::{Address, AddressRule};
pub use amount::{Amount, DEFAULT_DECIMALS};
pub use client_ip::ClientIp;
pub use code::{Among, Code};
pub use email::Email;
pub use ip_range::IpRange;
pub use origin::Origin;
pub use redirect_url::RedirectUrl;
pub use tx_type::TxType;
pub use user_id::PartnerUserId;

/// Why a value was refused; the caller adds the field name.
pub type Invalid = &'static str;
