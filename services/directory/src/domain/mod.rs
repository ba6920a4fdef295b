//! Directory rules, with no I/O.
pub mod mednum;
pub mod organisation;
pub mod structure;
