//! Init tokens (mint on session creation, verify on redemption) and the
//! client-token digest every partner request is authenticated by.

use std::hint::black_box;

use benches::{WIDGET_ID, quick_criterion, token_keys};
use criterion::{Criterion, criterion_group, criterion_main};
use session_core::client_token::{self, TokenDigest, TokenEnv};
use session_core::time::Timestamp;

const SUB: &str = "550e8400-e29b-41d4-a716-446655440000";

fn tokens(c: &mut Criterion) {
    let keys = token_keys();
    let now = Timestamp::from_unix_seconds(1_795_509_330);
    let minted = keys.mint(SUB, WIDGET_ID, now, 3_600, [7; 16]);
    let client_token = client_token::generate(TokenEnv::Live, &benches::OsRandom);

    let mut group = c.benchmark_group("tokens");
    group.bench_function("init_token/mint", |b| {
        b.iter(|| keys.mint(black_box(SUB), black_box(WIDGET_ID), now, 3_600, [7; 16]))
    });
    group.bench_function("init_token/verify", |b| {
        b.iter(|| {
            keys.verify(black_box(&minted.token), SUB, WIDGET_ID, now)
                .expect("the token was just minted")
        })
    });
    group.bench_function("client_token/digest", |b| {
        b.iter(|| TokenDigest::of(black_box(&client_token)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = quick_criterion();
    targets = tokens
}
criterion_main!(benches);
