//! The final-pm daemon.
pub mod core;
