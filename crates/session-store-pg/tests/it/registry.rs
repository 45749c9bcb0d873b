//! The partner registry beyond the contract: ordering independent of the
//! database's collation, and specs with unusual text round-trip exactly.

use session_core::partner::{PartnerId, SigningKeySpec};
use session_core::ports::PartnerRegistry;
use session_core::secret::Secret;
use session_store_contract::{at, partner_spec};

use crate::{connect, database};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partners_are_listed_in_byte_order_of_their_ids() {
    let Some(db) = database().await else { return };
    let store = connect(db.url()).await;
    // Under a linguistic collation "ab" sorts before "a-c" (punctuation is
    // ignored at first); the in-memory store sorts by bytes.
    let mut ids = vec!["ab", "a-c", "a_b", "a9", "b"];
    for id in &ids {
        store.put_partner(&partner_spec(id)).await.expect("put");
    }
    ids.sort_unstable();
    let listed: Vec<String> = store
        .partners()
        .await
        .expect("list")
        .into_iter()
        .map(|spec| spec.id)
        .collect();
    assert_eq!(listed, ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn specs_with_unusual_text_round_trip_exactly() {
    let Some(db) = database().await else { return };
    let store = connect(db.url()).await;
    let mut spec = partner_spec("odd");
    spec.name = "Ünïcode \"quoted\" {braces}, commas; 'single' \\ backslash NULL".into();
    spec.allowed_origins = vec![
        "https://b.example".into(),
        "https://a.example".into(),
        "https://b.example".into(),
    ];
    spec.allowed_ips.clear();
    spec.redirect_hosts = vec!["z.example".into(), "app.odd.example".into()];
    spec.widget.decimals = vec![("USDT".into(), 6), ("BTC".into(), 0), ("ETH".into(), 18)];
    spec.widget.lang = String::new();
    spec.signing_keys.push(SigningKeySpec {
        kid: "k0 \"old\"".into(),
        secret: Secret::new("s'e\"c{r}e,t"),
        not_after: Some(at(-5)),
    });
    store.put_partner(&spec).await.expect("put");
    let id = PartnerId::parse("odd").expect("id");
    assert_eq!(store.partner(&id).await, Ok(Some(spec)));
}
