//! Benchmarks of the widget session service live in `benches/`.
