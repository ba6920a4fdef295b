//! Directory rules, with no I/O.
pub mod data_inclusion;
pub mod mednum;
pub mod organisation;
pub mod structure;
