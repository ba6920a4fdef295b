//! Referral rules, with no I/O.
pub mod lifecycle;
pub mod referral;
pub mod sms;
