//! Operating the service: what the `partners` and `webhooks` CLI and the
//! admin API under `/admin/` share, so the two cannot drift. This module is
//! pure: the edits of a `PartnerSpec` ([`edit`]), client tokens as operators
//! name them ([`tokens`]) and the JSON a partner is shown as ([`view`]). The operations that read and
//! write the store are the use cases of `crate::service::admin`.

pub mod edit;
pub mod tokens;
pub mod view;

pub use edit::{
    Change, Generated, KeyRotation, PartnerPatch, WalletSelector, WebhookSecretRotation,
    WidgetPatch,
};
pub use tokens::{GracePeriod, TokenCounts, TokenRef, TokenState};
pub use view::{DeliveryRow, PartnerView};
