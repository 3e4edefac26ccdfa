//! Daemon integration tests.
