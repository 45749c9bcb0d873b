//! Request validation: the seed body decoded for a built partner, and the
//! strict JSON reader alone (the part of decoding that is not field rules).

use std::hint::black_box;

use benches::{SEED_BODY, partner, quick_criterion};
use criterion::{Criterion, criterion_group, criterion_main};
use session_core::json::Object;
use session_core::request::SessionRequest;
use session_core::signing::SignatureScheme;

fn validation(c: &mut Criterion) {
    let partner = partner(SignatureScheme::HmacSha512);
    let body = SEED_BODY.as_bytes();

    let mut group = c.benchmark_group("validation");
    group.bench_function("session_request/decode", |b| {
        b.iter(|| {
            SessionRequest::decode(black_box(body), &partner).expect("the seed body is valid")
        })
    });
    group.bench_function("json_object/parse", |b| {
        b.iter(|| Object::parse(black_box(body)).expect("the seed body is an object"))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = quick_criterion();
    targets = validation
}
criterion_main!(benches);
