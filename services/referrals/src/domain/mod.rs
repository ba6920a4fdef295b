//! Referral rules, with no I/O.
pub mod lifecycle;
pub mod person_mail;
pub mod referral;
pub mod sms;
