//! Weir's integration tests, as one test binary (like wasmtime's
//! `tests/all`): the host and its dependencies link once for the whole
//! suite. Each module covers one area; run one with
//! `cargo test --release -p weir-tests --test all MODULE::`.

mod change_feed;
mod cli;
mod crash_safety;
mod docs_keys;
mod equivalence;
mod failure_policy;
mod golden;
mod hot_swap;
mod kafka_source;
mod landing;
mod landing_parquet;
mod loading;
mod lookups;
mod orders_pipeline;
mod pipeline_validation;
mod profiles;
mod run_modes;
mod sandbox;
