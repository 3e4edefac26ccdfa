//! End-to-end tests: they drive the real `final-pm` binary (and the daemon it
//! launches) exactly as a user does, each in its own temporary home.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod actions;
mod cluster;
mod daemon_life;
mod examples;
mod harness;
mod hostile;
mod logging;
