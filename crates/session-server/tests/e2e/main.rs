//! End-to-end tests of the `session-server` binary.

mod dev;
mod postgres;
mod support;
mod webhooks;
