//! `SessionService::create_session` end to end on the in-memory store: decode,
//! partner rules, wallet lookup, UUID and jti from a real CSPRNG, init token,
//! signature, insert.
//!
//! `mem_store/seed` keeps every session it creates, so the store grows during
//! the run (hundreds of thousands of sessions; map resizes land in some
//! samples). `mem_store/seed_store_reset_10k` starts a fresh store every 10,000
//! sessions, outside the timed section, to show the request's own cost.

use std::hint::black_box;
use std::time::{Duration, Instant};

use benches::{SEED_BODY, current_thread_runtime, mem_service, partner, quick_criterion};
use criterion::{Criterion, criterion_group, criterion_main};
use session_core::signing::SignatureScheme;

const RESET_EVERY: u64 = 10_000;

fn create_session(c: &mut Criterion) {
    let runtime = current_thread_runtime();
    let partner = partner(SignatureScheme::HmacSha512);
    let body = SEED_BODY.as_bytes();

    let mut group = c.benchmark_group("create_session");
    let service = mem_service();
    group.bench_function("mem_store/seed", |b| {
        b.iter(|| {
            runtime
                .block_on(service.create_session(&partner, black_box(body)))
                .expect("the seed body creates a session")
        })
    });
    group.bench_function("mem_store/seed_store_reset_10k", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let chunk = left.min(RESET_EVERY);
                let service = mem_service();
                let start = Instant::now();
                for _ in 0..chunk {
                    let created = runtime
                        .block_on(service.create_session(&partner, black_box(body)))
                        .expect("the seed body creates a session");
                    black_box(created);
                }
                elapsed += start.elapsed();
                left -= chunk;
            }
            elapsed
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = quick_criterion();
    targets = create_session
}
criterion_main!(benches);
