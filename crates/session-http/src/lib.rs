//! The HTTP adapter: a hyper 1.x service that turns requests into use-case
//! calls and domain answers into responses.
//!
//! It owns the wire format (JSON bodies in and out), the check order of
//! SPEC.md §1 (route, auth, gate, media type and size, then the use case),
//! request ids, CORS for the widget route, timeouts and graceful draining.
//! Every decision it makes is delegated to `session-core`; the one table from
//! domain errors to HTTP lives in `response::error`.

mod admin;
mod app;
mod body;
mod config;
mod cors;
mod json_out;
mod request_id;
mod response;
mod router;
mod server;
mod wire;

pub use admin::Admin;
pub use app::App;
pub use config::{HttpConfig, WidgetOrigins, defaults};
pub use server::{Handler, Lifecycle, ServeOptions, serve};
