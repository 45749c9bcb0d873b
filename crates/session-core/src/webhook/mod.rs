//! Outbound partner webhooks, the pure parts: Standard Webhooks signing
//! ([`signing`]) and when to try again ([`retry`]). Delivery itself (the
//! dispatcher and its HTTP client) lives in the `session-webhooks` crate.

pub mod retry;
pub mod signing;

pub use retry::{Attempt, NextStep, RetryPolicy};
pub use signing::{WebhookKey, WebhookKeys};
