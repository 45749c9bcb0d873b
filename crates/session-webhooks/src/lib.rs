//! Outbound partner webhooks: the dispatcher that takes due deliveries from
//! the store's outbox and sends them, signed, to each partner's endpoint.
//!
//! The pure parts (Standard Webhooks signing, the retry policy) live in
//! `session_core::webhook`; this crate adds what needs a runtime and a
//! network: the wire body ([`payload`]), an HTTP client that refuses
//! non-public addresses at connect time ([`client`]), and the loop that
//! claims, sends and records ([`dispatcher`]).

pub mod client;
pub mod dispatcher;
pub mod metrics;
pub mod payload;

pub use client::{AddressPolicy, WebhookClient};
pub use dispatcher::{Dispatcher, DispatcherConfig};
pub use metrics::WebhookMetrics;
