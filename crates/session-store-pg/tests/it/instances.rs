//! Two instances on one database: tokens, revocations and configuration
//! changes made through one are seen by the other, and they share secrets.

use std::time::Duration;

use session_core::ports::{PartnerDirectory, PartnerRegistry};
use session_core::secret::Secret;
use session_store_contract::{at, partner, partner_spec, token};

use crate::{connect, database, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_added_on_one_instance_works_on_another_at_once() {
    let Some(db) = database().await else { return };
    let a = connect(db.url()).await;
    let b = connect(db.url()).await;
    for n in 0..5 {
        // A partner and its token, both new to B: no waiting for notifications.
        let id = format!("p{n}");
        partner(&a, &id).await;
        let record = token(&id, n);
        assert_eq!(a.add_token(&record).await, Ok(true));
        let grant = b
            .find_by_token(&record.digest)
            .await
            .expect("lookup on B")
            .expect("B accepts a token A just added");
        assert_eq!(grant.partner.id.as_str(), id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_and_rotations_reach_other_instances_promptly() {
    let Some(db) = database().await else { return };
    let a = connect(db.url()).await;
    let b = connect(db.url()).await;
    partner(&a, "acme").await;
    let revoked = token("acme", 1);
    let rotated = token("acme", 2);
    a.add_token(&revoked).await.expect("add");
    a.add_token(&rotated).await.expect("add");
    for record in [&revoked, &rotated] {
        assert!(
            b.find_by_token(&record.digest)
                .await
                .expect("lookup")
                .is_some()
        );
    }

    assert_eq!(
        a.revoke_token(&revoked.partner_id, &revoked.digest, at(10))
            .await,
        Ok(true)
    );
    let took = eventually(Duration::from_secs(2), || async {
        matches!(b.find_by_token(&revoked.digest).await, Ok(None))
    })
    .await
    .expect("B refuses the revoked token within 2 s");
    println!("revocation reached B in {took:?}");

    a.expire_token(&rotated.partner_id, &rotated.digest, at(100))
        .await
        .expect("rotate");
    eventually(Duration::from_secs(2), || async {
        matches!(
            b.find_by_token(&rotated.digest).await,
            Ok(Some(grant)) if grant.expires_at == Some(at(100))
        )
    })
    .await
    .expect("B sees the grace period within 2 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_changes_reach_other_instances() {
    let Some(db) = database().await else { return };
    let a = connect(db.url()).await;
    let b = connect(db.url()).await;
    let mut spec = partner_spec("acme");
    a.put_partner(&spec).await.expect("put");
    let record = token("acme", 1);
    a.add_token(&record).await.expect("add");
    assert!(
        b.find_by_token(&record.digest)
            .await
            .expect("lookup")
            .is_some()
    );

    spec.name = "Renamed on A".into();
    spec.offramp_enabled = false;
    a.put_partner(&spec).await.expect("update");
    eventually(Duration::from_secs(2), || async {
        matches!(
            b.find_by_token(&record.digest).await,
            Ok(Some(grant)) if grant.partner.name == "Renamed on A" && !grant.partner.offramp_enabled
        )
    })
    .await
    .expect("B serves the new configuration within 2 s");
    assert_eq!(b.partners().await, Ok(vec![spec]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_share_service_secrets() {
    let Some(db) = database().await else { return };
    let a = connect(db.url()).await;
    let b = connect(db.url()).await;
    let first = Secret::new("candidate-of-a");
    let second = Secret::new("candidate-of-b");
    let (from_a, from_b) = tokio::join!(
        a.service_secret("init_token_key", &first),
        b.service_secret("init_token_key", &second)
    );
    let from_a = from_a.expect("secret on A");
    assert_eq!(
        from_a,
        from_b.expect("secret on B"),
        "one value for everyone"
    );
    assert!(from_a == first || from_a == second);
    assert_eq!(
        b.service_secret("init_token_key", &Secret::new("late"))
            .await,
        Ok(from_a),
        "a later candidate changes nothing"
    );
}
