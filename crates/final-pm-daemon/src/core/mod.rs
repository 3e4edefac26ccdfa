//! The sans-IO lifecycle core (being written).
