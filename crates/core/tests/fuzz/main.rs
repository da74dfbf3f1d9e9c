//! Fuzz targets that drive the core through its public API, one target per file.
//!
//! Every target is a proptest named `fuzz_<thing>` running `PROPTEST_CASES` cases (its own
//! small default otherwise), so `cargo nextest run --workspace fuzz_` runs them all and a
//! raised `PROPTEST_CASES` makes a long fuzzing run. See the README's "Fuzzing" section.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod batch_token;
mod pipeline;
mod snapshot;
mod support;
mod unseal;
