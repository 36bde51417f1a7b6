//! Shared set-up for the p4k8s criterion benchmarks (see `benches/`).
