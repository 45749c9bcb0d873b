//! Authenticating partner backends by their `client_token`.

use std::sync::Arc;

use super::{SessionService, store_rejection};
use crate::client_token::{self, TokenDigest};
use crate::error::{ErrorKind, Rejection};
use crate::partner::Partner;

/// The token of an `Authorization: Bearer <token>` header. The scheme is
/// case-insensitive (RFC 9110 §11.1); anything else is `missing_token`.
pub fn bearer_token(authorization: Option<&[u8]>) -> Result<&str, Rejection> {
    let missing = || Rejection::of(ErrorKind::MissingToken);
    let value = std::str::from_utf8(authorization.ok_or_else(missing)?).map_err(|_| missing())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(missing)?;
    let token = token.trim_matches(' ');
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(missing());
    }
    Ok(token)
}

impl SessionService {
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

    #[test]
    fn bearer_header_shapes() {
        assert_eq!(bearer_token(Some(b"Bearer abc")), Ok("abc"));
        assert_eq!(bearer_token(Some(b"bearer  abc")), Ok("abc"));
        for bad in [
            &b""[..],
            b"Bearer",
            b"Bearer ",
            b"Basic abc",
            b"Bearer a b",
            b"Bearerabc",
            b"Bearer \xff",
        ] {
            assert_eq!(
                bearer_token(Some(bad)).map_err(|r| r.kind()),
                Err(ErrorKind::MissingToken),
                "{bad:?}"
            );
        }
        assert_eq!(
            bearer_token(None).map_err(|r| r.kind()),
            Err(ErrorKind::MissingToken)
        );
    }

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
