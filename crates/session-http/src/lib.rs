//! The HTTP adapter: a hyper 1.x service that turns requests into use-case
//! calls and domain answers into responses.
//!
//! It owns the response wire format (`wire.rs`: domain values to JSON), the
//! check order of SPEC.md §1 (route, gate, rate limit, media type and size,
//! then the use case), request ids, CORS for the widget route, per-partner
//! rate limits (`limits.rs`), body limits, timeouts, graceful draining, and
//! the live status WebSocket (`live.rs`), and in sandbox mode the stand-in
//! widget and payment simulator (`sandbox/`). Request bodies and the gate's
//! headers are handed to `session-core` as bytes: what they mean, and the
//! error matrix itself (`ErrorKind::triple`), are decided there;
//! `response::error` only renders a rejection as the envelope.

mod admin;
mod admin_api;
mod app;
mod body;
mod config;
mod cors;
mod json_out;
mod limits;
mod live;
mod metrics;
mod request_id;
mod response;
mod router;
mod sandbox;
mod server;
mod wire;

pub use admin::Admin;
pub use admin_api::{AdminApi, AdminPorts};
pub use app::App;
pub use config::{HttpConfig, WidgetOrigins, defaults};
pub use limits::{RateLimits, SWEEP_INTERVAL, Verdict};
pub use live::{LiveConfig, LiveSockets, MAX_CLIENT_FRAME};
pub use metrics::{HttpCollector, HttpMetrics};
pub use server::{Handler, Lifecycle, ServeOptions, serve};
