//! The directory: organisations, structures and their declared capacity.
pub mod domain;
