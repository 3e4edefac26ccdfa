//! The final-pm daemon.
pub mod core;
pub mod paths;
