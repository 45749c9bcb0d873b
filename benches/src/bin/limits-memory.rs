//! What the per-partner rate limiter holds in memory, counted by the global
//! allocator (live bytes, not resident pages, which an allocator keeps): before
//! any request, after one request of each of `--partners` distinct partners,
//! and after those partners went idle and the sweep ran. Prints one line,
//! `result <json>`, for `cargo xtask load --limits`.

use std::alloc::System;
use std::time::{Duration, Instant};

use cap::Cap;
use serde::Serialize;
use session_core::partner::{PartnerId, RateLimit};
use session_http::RateLimits;

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

#[derive(Debug, Serialize)]
struct Outcome {
    partners: usize,
    per_second: u32,
    burst: u32,
    live_bytes_before: usize,
    live_bytes_filled: usize,
    live_bytes_after_sweep: usize,
    tracked_filled: usize,
    tracked_after_sweep: usize,
    bytes_per_partner: f64,
    fill_ms: f64,
    sweep_ms: f64,
}

fn main() -> Result<(), String> {
    let mut partners = 100_000_usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--partners", Some(n)) => {
                partners = n.parse().map_err(|_| format!("--partners {n:?}"))?;
            }
            _ => return Err(format!("usage: limits-memory [--partners N], not {arg:?}")),
        }
    }
    // The server's default budget, which every partner without one of its own has.
    let limit = RateLimit::with_default_burst(100).map_err(str::to_owned)?;
    let limits = RateLimits::new(limit);
    let mut partner = session_core::example::partner("p000000")
        .build()
        .map_err(|e| e.to_string())?;
    let live_bytes_before = ALLOCATOR.allocated();

    // One request each. Every id is a fresh allocation that only the limiter
    // keeps (the partner's own is replaced by the next), as the partner
    // snapshot's would be once a partner is gone.
    let filling = Instant::now();
    for i in 0..partners {
        partner.id = PartnerId::parse(&format!("p{i:06}"))?;
        let admitted = limits.check(&partner).is_some_and(|v| v.admitted());
        if !admitted {
            return Err(format!("partner {i} was not admitted"));
        }
    }
    let fill_ms = filling.elapsed().as_secs_f64() * 1e3;
    partner.id = PartnerId::parse("p000000")?;
    let live_bytes_filled = ALLOCATOR.allocated();
    let tracked_filled = limits.tracked_partners();

    // One request of a 100/s budget refills in 10 ms: after a pause every
    // bucket is full, and the partners are idle.
    std::thread::sleep(Duration::from_millis(200));
    let sweeping = Instant::now();
    limits.sweep();
    let sweep_ms = sweeping.elapsed().as_secs_f64() * 1e3;
    let live_bytes_after_sweep = ALLOCATOR.allocated();
    let outcome = Outcome {
        partners,
        per_second: limit.per_second(),
        burst: limit.burst(),
        live_bytes_before,
        live_bytes_filled,
        live_bytes_after_sweep,
        tracked_filled,
        tracked_after_sweep: limits.tracked_partners(),
        bytes_per_partner: live_bytes_filled.saturating_sub(live_bytes_before) as f64
            / partners.max(1) as f64,
        fill_ms,
        sweep_ms,
    };
    let json = serde_json::to_string(&outcome).map_err(|e| e.to_string())?;
    println!("result {json}");
    Ok(())
}
