//! Operating the service: what the `partners` and `webhooks` CLI and the
//! admin API under `/admin/` share, so the two cannot drift. This module is
//! pure: the edits of a `PartnerSpec` ([`edit`]), client tokens as operators
//! name them ([`tokens`]), the JSON a partner is shown as ([`view`]), the
//! admin API's request bodies ([`decode`]) and its bearer token
//! ([`AdminToken`]). The operations that read and write the store are the use
//! cases of `crate::service::admin`.

pub mod decode;
pub mod edit;
pub mod tokens;
pub mod view;

use sha2::{Digest, Sha256};

pub use edit::{
    Change, Generated, KeyRotation, PartnerPatch, WalletSelector, WebhookSecretRotation,
    WidgetPatch,
};
pub use tokens::{GracePeriod, TokenCounts, TokenRef, TokenState};
pub use view::{DeliveryRow, PartnerView};

use crate::access::bearer_token;
use crate::error::{ErrorKind, Rejection};
use crate::secret::{Secret, constant_time_eq};

/// The admin API's credential (`SESSION_ADMIN_TOKEN`). Only its SHA-256 is
/// kept, and a presented token is compared by digest in constant time, so
/// neither its bytes nor its length leak through timing.
#[derive(Clone)]
pub struct AdminToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

impl AdminToken {
    /// `None` for an empty secret: an empty token would let anyone in.
    pub fn new(secret: &Secret) -> Option<Self> {
        let text = secret.expose();
        (!text.is_empty()).then(|| Self {
            digest: Sha256::digest(text.as_bytes()).into(),
        })
    }

    /// Admits a request whose `Authorization` header is `Bearer <the token>`:
    /// `401 missing_token` without a bearer token, `401 invalid_token` with
    /// another one.
    pub fn admit(&self, authorization: Option<&[u8]>) -> Result<(), Rejection> {
        let presented = bearer_token(authorization)?;
        let digest = Sha256::digest(presented.as_bytes());
        if constant_time_eq(&digest, &self.digest) {
            Ok(())
        } else {
            Err(Rejection::new(
                ErrorKind::InvalidToken,
                "admin token is not the one configured",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_configured_token_is_admitted() {
        assert!(AdminToken::new(&Secret::new("")).is_none());
        let token = AdminToken::new(&Secret::new("adm-secret")).expect("token");
        assert!(token.admit(Some(b"Bearer adm-secret")).is_ok());
        assert!(token.admit(Some(b"bearer adm-secret")).is_ok());
        let kind = |header: Option<&[u8]>| token.admit(header).map_err(|r| r.kind());
        assert_eq!(kind(None), Err(ErrorKind::MissingToken));
        assert_eq!(
            kind(Some(b"Basic adm-secret")),
            Err(ErrorKind::MissingToken)
        );
        assert_eq!(
            kind(Some(b"Bearer adm-secre")),
            Err(ErrorKind::InvalidToken)
        );
        assert_eq!(
            kind(Some(b"Bearer adm-secret2")),
            Err(ErrorKind::InvalidToken)
        );
        assert!(!format!("{token:?}").contains("adm-secret"));
    }
}
