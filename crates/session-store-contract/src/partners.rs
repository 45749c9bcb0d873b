//! Contract cases for the partner directory and registry.

use session_core::client_token::TokenDigest;
use session_core::partner::{PartnerId, RateLimit};
use session_core::ports::ClientTokenRecord;

use crate::Store;
use crate::fixtures::{at, partner_spec, token};

fn id(text: &str) -> PartnerId {
    PartnerId::parse(text).unwrap_or_else(|why| panic!("{why}"))
}

/// A partner spec comes back exactly as written, lists in order; `partners`
/// lists every partner by id; a second `put` replaces the whole configuration.
pub async fn registry_round_trips_partner_specs(store: impl Store) {
    assert_eq!(store.partner(&id("acme")).await, Ok(None));
    let acme = partner_spec("acme");
    let mut zeta = partner_spec("zeta");
    zeta.webhook_url = None;
    zeta.webhook_secret = None;
    zeta.redirect_hosts.clear();
    zeta.allowed_ips.clear();
    zeta.widget.redirect_url = None;
    zeta.widget.decimals.clear();
    zeta.signature_scheme = "sha512-concat".into();
    zeta.rate_limit = None;
    store.put_partner(&zeta).await.expect("put zeta");
    store.put_partner(&acme).await.expect("put acme");
    assert_eq!(store.partner(&id("acme")).await, Ok(Some(acme.clone())));
    assert_eq!(store.partner(&id("zeta")).await, Ok(Some(zeta.clone())));
    assert_eq!(store.partners().await, Ok(vec![acme.clone(), zeta]));

    let mut changed = acme.clone();
    changed.allowed_origins = vec!["https://new.acme.example".into()];
    changed.wallets.truncate(1);
    changed.wallets[0].active = false;
    changed.widget.networks = vec!["ERC20".into()];
    changed.signing_keys.truncate(1);
    changed.rate_limit = Some(RateLimit::UNLIMITED);
    store.put_partner(&changed).await.expect("replace acme");
    assert_eq!(store.partner(&id("acme")).await, Ok(Some(changed.clone())));

    let mut largest = changed;
    largest.rate_limit = RateLimit::new(RateLimit::MAX_PER_SECOND, u32::MAX).ok();
    store.put_partner(&largest).await.expect("replace acme");
    assert_eq!(store.partner(&id("acme")).await, Ok(Some(largest)));
}

/// A configuration change is what the next authenticated request sees.
pub async fn configuration_changes_reach_the_directory(store: impl Store) {
    let mut spec = partner_spec("acme");
    store.put_partner(&spec).await.expect("put");
    let record = token("acme", 1);
    store.add_token(&record).await.expect("add token");
    let grant = store
        .find_by_token(&record.digest)
        .await
        .expect("lookup")
        .expect("granted");
    assert!(grant.partner.offramp_enabled);
    assert_eq!(grant.partner.rate_limit, spec.rate_limit);
    spec.offramp_enabled = false;
    spec.name = "Renamed".into();
    spec.rate_limit = RateLimit::new(1, 3).ok();
    store.put_partner(&spec).await.expect("update");
    let grant = store
        .find_by_token(&record.digest)
        .await
        .expect("lookup")
        .expect("granted");
    assert!(!grant.partner.offramp_enabled);
    assert_eq!(grant.partner.name, "Renamed");
    assert_eq!(
        grant.partner.rate_limit,
        RateLimit::new(1, 3).ok(),
        "a changed budget reaches the limiter with the partner"
    );
}

/// Tokens: add once, look up by digest, rotate into a grace period, revoke.
pub async fn token_lifecycle(store: impl Store) {
    store
        .put_partner(&partner_spec("acme"))
        .await
        .expect("put acme");
    store
        .put_partner(&partner_spec("other"))
        .await
        .expect("put other");
    let first = token("acme", 1);
    let second = token("acme", 2);
    let unknown = TokenDigest::of("ct_test_never_issued");

    assert_eq!(store.add_token(&first).await, Ok(true));
    assert_eq!(
        store.add_token(&first).await,
        Ok(false),
        "adding a known digest changes nothing"
    );
    assert_eq!(store.add_token(&second).await, Ok(true));
    assert!(
        store
            .find_by_token(&unknown)
            .await
            .expect("lookup")
            .is_none()
    );

    let grant = store
        .find_by_token(&first.digest)
        .await
        .expect("lookup")
        .expect("granted");
    assert_eq!(
        (grant.partner.id.as_str(), grant.expires_at),
        ("acme", None)
    );

    assert_eq!(
        store
            .expire_token(&first.partner_id, &first.digest, at(100))
            .await,
        Ok(true)
    );
    let grant = store
        .find_by_token(&first.digest)
        .await
        .expect("lookup")
        .expect("still granted in grace");
    assert_eq!(grant.expires_at, Some(at(100)));

    assert_eq!(
        store
            .revoke_token(&second.partner_id, &second.digest, at(50))
            .await,
        Ok(true)
    );
    assert!(
        store
            .find_by_token(&second.digest)
            .await
            .expect("lookup")
            .is_none(),
        "revoked tokens are not found"
    );

    assert_eq!(
        store.expire_token(&id("acme"), &unknown, at(1)).await,
        Ok(false)
    );
    assert_eq!(
        store.revoke_token(&id("other"), &first.digest, at(1)).await,
        Ok(false),
        "another partner's token"
    );
    assert!(
        store
            .find_by_token(&first.digest)
            .await
            .expect("lookup")
            .is_some()
    );

    let listed = store.tokens(&id("acme")).await.expect("list");
    let expected_first = ClientTokenRecord {
        expires_at: Some(at(100)),
        ..first
    };
    let expected_second = ClientTokenRecord {
        revoked_at: Some(at(50)),
        ..second
    };
    assert_eq!(listed, vec![expected_first, expected_second]);
    assert_eq!(store.tokens(&id("other")).await, Ok(vec![]));
}
