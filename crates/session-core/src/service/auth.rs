//! The partner gate: authenticating partner backends by their `client_token`
//! (401), then their origin and caller address (403).

use std::sync::Arc;

use super::{SessionService, store_rejection};
use crate::access::{self, GateHeaders, bearer_token};
use crate::client_token::{self, TokenDigest};
use crate::error::{ErrorKind, Rejection};
use crate::partner::Partner;

impl SessionService {
    /// The partner API's gate in the check order of SPEC.md §1: the token
    /// (401), then the `Origin` and the caller's address behind the trusted
    /// proxies (403).
    pub async fn admit_partner(
        &self,
        headers: &GateHeaders<'_>,
    ) -> Result<Arc<Partner>, Rejection> {
        let partner = self.authenticate(headers.authorization).await?;
        let caller = self
            .settings
            .trusted_proxies
            .caller(headers.peer, headers.forwarded_for);
        access::admit(&partner, headers.origin, caller)?;
        Ok(partner)
    }

    /// The partner whose active token is presented. A token of the wrong shape
    /// is refused without a store lookup.
    pub async fn authenticate(
        &self,
        authorization: Option<&[u8]>,
    ) -> Result<Arc<Partner>, Rejection> {
        let token = bearer_token(authorization)?;
        let invalid = || Rejection::of(ErrorKind::InvalidToken);
        if !client_token::is_well_formed(token) {
            return Err(invalid());
        }
        let grant = self
            .ports
            .partners
            .find_by_token(&TokenDigest::of(token))
            .await
            .map_err(store_rejection)?
            .ok_or_else(invalid)?;
        let now = self.ports.clock.now();
        if grant.expires_at.is_some_and(|end| now >= end) {
            return Err(invalid());
        }
        Ok(grant.partner)
    }
}

#[cfg(test)]
mod tests {
    use futures_executor::block_on;

    use super::*;
    use crate::ports::{StoreError, TokenGrant};
    use crate::service::fixtures::{Mocks, NOW_MICROS, partner};
    use crate::time::Timestamp;

    const TOKEN: &str = "ct_test_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    fn authenticate_with(
        grant: Result<Option<TokenGrant>, StoreError>,
        header: &str,
    ) -> Result<Arc<Partner>, ErrorKind> {
        let mut mocks = Mocks::new();
        mocks
            .partners
            .expect_find_by_token()
            .returning(move |digest| {
                assert_eq!(
                    *digest,
                    TokenDigest::of(TOKEN),
                    "looked up by the digest of the presented token"
                );
                grant.clone()
            });
        block_on(mocks.service().authenticate(Some(header.as_bytes()))).map_err(|r| r.kind())
    }

    #[test]
    fn grants_and_refusals() {
        let header = format!("Bearer {TOKEN}");
        let grant = |expires: Option<i64>| {
            Ok(Some(TokenGrant {
                partner: partner(),
                expires_at: expires.map(Timestamp::from_unix_micros),
            }))
        };
        assert!(authenticate_with(grant(None), &header).is_ok());
        assert!(
            authenticate_with(grant(Some(NOW_MICROS + 1)), &header).is_ok(),
            "inside the grace period"
        );
        assert_eq!(
            authenticate_with(grant(Some(NOW_MICROS)), &header).err(),
            Some(ErrorKind::InvalidToken)
        );
        assert_eq!(
            authenticate_with(Ok(None), &header).err(),
            Some(ErrorKind::InvalidToken)
        );
        assert_eq!(
            authenticate_with(Err(StoreError::Unavailable("down".into())), &header).err(),
            Some(ErrorKind::StoreUnavailable)
        );
    }

    #[test]
    fn malformed_tokens_never_reach_the_store() {
        let mut mocks = Mocks::new();
        mocks.partners.expect_find_by_token().never();
        let service = mocks.service();
        let refusal =
            block_on(service.authenticate(Some(b"Bearer ct_test_short"))).map_err(|r| r.kind());
        assert_eq!(refusal.err(), Some(ErrorKind::InvalidToken));
    }
}
