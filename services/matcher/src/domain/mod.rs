//! Matching rules, with no I/O.

pub mod engine;
pub mod index;
pub mod optimal;
pub mod reach;
pub mod simulate;
pub mod waitlist;
