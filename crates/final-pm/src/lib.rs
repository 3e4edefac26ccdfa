//! The part of the `final-pm` CLI that is a library: the configuration
//! loader.
//!
//! The CLI (`src/main.rs`) is a binary and calls [`config::load`] through
//! this crate like any other user of it would. It is a library so that the
//! benchmark `bench_config` (in `examples/`) can time exactly the function
//! the CLI calls, in-process, without the rest of an invocation around it.
//! Nothing here is a stable API: it changes with the CLI.

pub mod config;
