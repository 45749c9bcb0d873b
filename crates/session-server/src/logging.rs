//! Structured logs on standard error: JSON when not on a terminal, text on one.
//! `RUST_LOG` filters (default `info`), under a cap no `RUST_LOG` can lift.

use std::io::IsTerminal;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::cli::LogFormat;

/// Dependencies whose lines below `info` can carry values: the PostgreSQL
/// driver logs statement parameters at debug (signing secrets, the init-token
/// key, end users' emails), the HTTP and TLS stacks log bytes and headers at
/// trace. A second filter, applied after `RUST_LOG`, keeps them at `info` or
/// above however `RUST_LOG` is written (span-scoped directives included).
const CAPPED: [&str; 12] = [
    "tokio_postgres",
    "postgres_protocol",
    "postgres_types",
    "deadpool",
    "deadpool_postgres",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "tokio_rustls",
    "tokio_postgres_rustls",
    "want",
];

/// The cap on dependencies' log levels; everything else passes to `RUST_LOG`.
pub fn dependency_cap() -> Targets {
    CAPPED.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |targets, target| targets.with_target(*target, LevelFilter::INFO),
    )
}

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests) is harmless; ignore it.
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .finish()
            .with(dependency_cap())
            .try_init()
    } else {
        builder.finish().with(dependency_cap()).try_init()
    };
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::*;

    #[test]
    fn dependencies_are_capped_at_info_and_the_service_is_not() {
        let cap = dependency_cap();
        for target in [
            "tokio_postgres::query",
            "tokio_postgres",
            "hyper::proto::h1",
        ] {
            assert!(!cap.would_enable(target, &Level::DEBUG), "{target}");
            assert!(cap.would_enable(target, &Level::INFO), "{target}");
        }
        assert!(cap.would_enable("session_http::app", &Level::TRACE));
    }
}
