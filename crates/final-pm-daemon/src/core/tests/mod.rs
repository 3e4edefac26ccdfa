//! Tests of the core: scenario tests per transition-table row and rule
//! (`scenarios`), property tests (`props`), the purity guard (`purity`), and
//! the `Sim` harness they share.

mod props;
mod purity;
mod scenarios;
mod sim;
