//! The operator's `--bootstrap` TOML loader (`session-server`'s
//! `bootstrap::load`). The server crate is a binary, so its module is compiled
//! into this target by path; nothing in it is changed. Input is raw TOML text
//! (first byte even) or a structured file: partners drawn from small pools of
//! ids, tokens, origins, IPs and wallets so that cross-partner interactions
//! (a token declared twice, ids repeated) are likely.
//!
//! Beyond "no panic": a refused file writes nothing; an accepted file stores
//! only specs that build, every declared token (`client_tokens` and
//! `client_token_sha256`) authenticates as the partner that declared it, and
//! loading the same file again changes nothing (all unchanged, no token added).
#![no_main]
#![allow(dead_code)]

#[path = "../../crates/session-server/src/bootstrap.rs"]
mod bootstrap;

use arbitrary::{Arbitrary, Unstructured};
use futures_executor::block_on;
use libfuzzer_sys::fuzz_target;
use session_core::client_token::TokenDigest;
use session_core::partner::PartnerId;
use session_core::ports::{PartnerDirectory, PartnerRegistry};
use session_fuzz::{CountingRandom, FixedClock, NOW_MICROS};
use session_store_mem::MemStore;

const IDS: [&str; 4] = ["acme", "other", "Bad Id", "x"];
const TOKENS: [&str; 3] = [
    "ct_test_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "ct_live_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
    "ct_test_short",
];
const ORIGINS: [&str; 4] = [
    "https://app.acme.example",
    "http://localhost:3000",
    "https://a.example/path",
    "null",
];
const IPS: [&str; 4] = ["127.0.0.0/8", "::1/128", "10.0.0.1", "10.0.0.0/33"];
const WALLETS: [(&str, &str); 4] = [
    ("TRC20", "TXYZabcdefghijkmnopqrstuvwxyz12345"),
    ("ERC20", "0x52908400098527886E0F7030069857D2E4169EE7"),
    ("CUSTOM", "acct:12345678"),
    ("TRC20", "nope"),
];

#[derive(Arbitrary, Debug)]
struct Partner {
    id: u8,
    tokens: Vec<u8>,
    token_digests: Vec<u8>,
    origins: Vec<u8>,
    ips: Vec<u8>,
    flags: u8,
    signing_secret: Option<u8>,
    webhook: Option<Option<u8>>,
    currencies: Vec<u8>,
    decimals: Option<u8>,
    wallets: Vec<u8>,
    lang: Option<String>,
}

fn pick<'a>(pool: &[&'a str], i: u8) -> &'a str {
    pool[usize::from(i) % pool.len()]
}

fn list(pool: &[&str], picks: &[u8]) -> String {
    let items: Vec<String> = picks
        .iter()
        .take(3)
        .map(|i| format!("{:?}", pick(pool, *i)))
        .collect();
    format!("[{}]", items.join(", "))
}

fn render(partners: &[Partner]) -> String {
    let mut out = String::new();
    for p in partners.iter().take(3) {
        let id = pick(&IDS, p.id);
        out += "[[partner]]\n";
        out += &format!("id = {id:?}\nname = \"{id} wallet\"\n");
        out += &format!("client_tokens = {}\n", list(&TOKENS, &p.tokens));
        let digests: Vec<String> = p
            .token_digests
            .iter()
            .take(2)
            .map(|i| format!("{:?}", TokenDigest::of(pick(&TOKENS, *i)).to_hex()))
            .collect();
        out += &format!("client_token_sha256 = [{}]\n", digests.join(", "));
        out += &format!("allowed_origins = {}\n", list(&ORIGINS, &p.origins));
        out += &format!("allowed_ips = {}\n", list(&IPS, &p.ips));
        out += &format!("offramp_enabled = {}\n", p.flags & 1 != 0);
        out += &format!("accept_client_address = {}\n", p.flags & 2 != 0);
        if p.flags & 4 != 0 {
            out += "signature_scheme = \"sha512-concat\"\n";
        }
        if let Some(s) = p.signing_secret {
            out += &format!("signing_secret = \"secret-{}\"\n", s % 3);
        }
        if let Some(secret) = p.webhook {
            out += "webhook_url = \"https://hooks.example/x\"\n";
            if let Some(s) = secret {
                // `wh-0` or `wh-1`, base64 after the prefix as Standard Webhooks wants.
                out += &format!(
                    "webhook_secret = \"whsec_d2gtM{}==\"\n",
                    ["A", "Q"][usize::from(s % 2)]
                );
            }
        }
        out += "[partner.widget]\nwidget_id = \"fb359d09-fff6-4b1f-906c-b9062b135065\"\n";
        out += &format!(
            "currencies = {}\n",
            list(&["USDT", "BTC", "bad code"], &p.currencies)
        );
        out += "networks = [\"TRC20\", \"ERC20\", \"CUSTOM\"]\nfiat_currency = \"EUR\"\nfiat_currencies = [\"EUR\"]\n";
        if let Some(lang) = &p.lang {
            out += &format!("lang = {lang:?}\n");
        }
        if let Some(d) = p.decimals {
            out += &format!("[partner.widget.decimals]\nUSDT = {}\n", d % 20);
        }
        for w in p.wallets.iter().take(2) {
            let (network, address) = WALLETS[usize::from(*w) % WALLETS.len()];
            out += &format!(
                "[[partner.wallet]]\ncurrency = \"USDT\"\nnetwork = {network:?}\naddress = {address:?}\nactive = {}\n",
                w & 4 == 0
            );
        }
    }
    out
}

/// Each declared token digest with the partner id that declared it.
fn declared(text: &str) -> Vec<(String, TokenDigest)> {
    let Ok(value) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for partner in value
        .get("partner")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
    {
        let Some(id) = partner.get("id").and_then(|v| v.as_str()) else {
            continue;
        };
        let strings = |key: &str| -> Vec<String> {
            partner
                .get(key)
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        };
        for token in strings("client_tokens") {
            out.push((id.to_owned(), TokenDigest::of(&token)));
        }
        for hex in strings("client_token_sha256") {
            if let Some(digest) = TokenDigest::from_hex(&hex) {
                out.push((id.to_owned(), digest));
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = if selector & 1 == 0 {
        match std::str::from_utf8(rest) {
            Ok(text) => text.to_owned(),
            Err(_) => return,
        }
    } else {
        let Ok(partners) = Vec::<Partner>::arbitrary_take_rest(Unstructured::new(rest)) else {
            return;
        };
        render(&partners)
    };
    let store = MemStore::new();
    let clock = FixedClock::at_micros(NOW_MICROS);
    let random = CountingRandom::default();
    let first = block_on(bootstrap::load(&text, &store, &clock, &random));
    let partners = block_on(store.partners()).expect("partners");
    let report = match first {
        Err(_) => {
            assert!(partners.is_empty(), "a refused file wrote partners");
            return;
        }
        Ok(report) => report,
    };
    for spec in &partners {
        assert!(spec.build().is_ok(), "stored spec does not build");
    }
    assert_eq!(report.created.len(), partners.len());
    for (id, digest) in declared(&text) {
        let grant = block_on(store.find_by_token(&digest)).expect("lookup");
        let owner = grant.map(|g| g.partner.id.clone());
        assert_eq!(
            owner,
            PartnerId::parse(&id).ok(),
            "a token declared for {id:?} authenticates as {owner:?}\n{text}"
        );
    }
    let second = block_on(bootstrap::load(&text, &store, &clock, &random))
        .expect("the same file loads again");
    assert!(
        second.created.is_empty() && second.updated.is_empty(),
        "second load changed partners: {second:?}"
    );
    assert_eq!(second.tokens_added, 0);
    assert_eq!(block_on(store.partners()).expect("partners"), partners);
});
