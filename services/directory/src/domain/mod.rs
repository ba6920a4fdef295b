//! Directory rules, with no I/O.
pub mod mednum;
