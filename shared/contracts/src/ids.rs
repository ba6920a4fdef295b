//! Identifiers and codes that cross service boundaries. Each is parsed once, where it
//! enters (a request, an event, a row), so code inside a service never holds a string
//! that might not be one.
//!
//! On the wire they are plain strings or UUIDs (`serde(transparent)`), so the format of
//! the API and of events does not change.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A value that is not a well-formed identifier or code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not {expected}")]
pub struct InvalidId {
    pub value: String,
    pub expected: &'static str,
}

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new id (UUIDv7: time-ordered).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            pub const fn as_uuid(self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.trim().parse().map(Self).map_err(|_| InvalidId { value: s.to_string(), expected: $what })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
                    .description(Some($what))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }

        #[cfg(feature = "sqlx")]
        crate::sql::uuid_column!($name);
    };
}

uuid_id!(
    /// A referral (*orientation*).
    ReferralId,
    "a referral id (a UUID)"
);
uuid_id!(
    /// A referring organisation (a CCAS, a département's social service, a partner).
    OrganisationId,
    "an organisation id (a UUID)"
);

macro_rules! string_code {
    ($(#[$meta:meta])* $name:ident, $what:literal, $valid:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let valid: fn(&str) -> bool = $valid;
                if valid(s) { Ok(Self(s.to_string())) } else { Err(InvalidId { value: s.to_string(), expected: $what }) }
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                let valid: fn(&str) -> bool = $valid;
                if valid(&s) { Ok(Self(s)) } else { Err(InvalidId { value: s, expected: $what }) }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        /// A code reads as the string it is, wherever a `&str` is wanted.
        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for String {
            fn from(code: $name) -> String {
                code.0
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?.try_into().map_err(serde::de::Error::custom)
            }
        }

        #[cfg(feature = "sqlx")]
        crate::sql::text_column!($name);
    };
}

/// The longest structure id taken from source data, in characters as every text of the
/// API is counted (Mednum ids are UUIDs or short regional codes; this leaves room for any
/// of them).
pub const STRUCTURE_ID_MAX_LEN: usize = 200;

string_code!(
    /// A structure (*lieu de médiation numérique*), keyed by the id its source data gives
    /// (the Mednum `id`): not a UUID in general.
    StructureId,
    "a structure id (1 to 200 printable characters)",
    |s| !s.is_empty() && s.chars().count() <= STRUCTURE_ID_MAX_LEN && s.trim() == s && !s.chars().any(char::is_control)
);

string_code!(
    /// An INSEE commune code: five digits, or `2A`/`2B` and three digits in Corsica.
    CommuneCode,
    "an INSEE commune code (5 characters, such as 16015 or 2A004)",
    |s| {
        let b = s.as_bytes();
        b.len() == 5
            && ((b[..2].iter().all(u8::is_ascii_digit) && &b[..2] != b"00" && &b[..2] != b"20")
                || (b[0] == b'2' && matches!(b[1], b'A' | b'B')))
            && b[2..].iter().all(u8::is_ascii_digit)
    }
);

string_code!(
    /// A territory: a département code (`16`, `2A`, `971`), the unit coordinators cover.
    Territory,
    "a département code (such as 16, 2A or 971)",
    |s| {
        let b = s.as_bytes();
        match b.len() {
            2 => (b.iter().all(u8::is_ascii_digit) && s != "00" && s != "20") || s == "2A" || s == "2B",
            3 => b.iter().all(u8::is_ascii_digit) && (s.starts_with("97") || s.starts_with("98")),
            _ => false,
        }
    }
);

/// The OpenAPI schema of a code: a string, with what a JSON Schema can say of its rule.
macro_rules! code_schema {
    ($name:ident, $build:expr) => {
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let base =
                    utoipa::openapi::schema::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::String);
                let build: fn(utoipa::openapi::schema::ObjectBuilder) -> utoipa::openapi::schema::ObjectBuilder =
                    $build;
                build(base).into()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }
    };
}

code_schema!(StructureId, |b| b
    .min_length(Some(1))
    .max_length(Some(STRUCTURE_ID_MAX_LEN))
    // No control character anywhere, no white space at either end.
    .pattern(Some(concat!(
        r"^[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]",
        r"([^\u0000-\u001F\u007F-\u009F]*",
        r"[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])?$"
    )))
    .description(Some("A structure id, as its source data gives it")));
code_schema!(CommuneCode, |b| b
    .pattern(Some("^(0[1-9]|1[0-9]|2[1-9AB]|[3-9][0-9])[0-9]{3}$"))
    .description(Some("An INSEE commune code (`16015`, `2A004`)")));
code_schema!(Territory, |b| b
    .pattern(Some("^(0[1-9]|1[0-9]|2[1-9AB]|[3-9][0-9]|9[78][0-9])$"))
    .description(Some("A département code (`16`, `2A`, `971`)")));

impl CommuneCode {
    /// The département the code belongs to: `2A004` → `2A`, `97105` → `971`, `16015` → `16`.
    pub fn territory(&self) -> Territory {
        let n = if self.0.starts_with("97") || self.0.starts_with("98") { 3 } else { 2 };
        Territory(self.0[..n].to_string())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn codes_accept_what_france_uses() {
        for ok in ["16015", "2A004", "2B033", "97105", "98818", "75056"] {
            assert!(ok.parse::<CommuneCode>().is_ok(), "{ok}");
        }
        for bad in ["", "1601", "160150", "2C004", "20004", "00001", "16 15", "abcde", " 16015"] {
            assert!(bad.parse::<CommuneCode>().is_err(), "{bad}");
        }
        for ok in ["16", "2A", "2B", "971", "976", "988", "01", "95"] {
            assert!(ok.parse::<Territory>().is_ok(), "{ok}");
        }
        for bad in ["", "0", "00", "20", "2C", "960", "1600", "a1", " 16"] {
            assert!(bad.parse::<Territory>().is_err(), "{bad}");
        }
    }

    /// Whether a value matches the pattern the OpenAPI document gives for `T`.
    fn matches_schema<T: utoipa::PartialSchema>(value: &str) -> bool {
        let schema = serde_json::to_value(T::schema()).unwrap();
        regex::Regex::new(schema["pattern"].as_str().unwrap()).unwrap().is_match(value)
    }

    #[test]
    fn the_documented_patterns_are_the_parsers() {
        let mut candidates: Vec<String> = Vec::new();
        for a in ('0'..='9').chain(['A', 'B', 'C']) {
            for b in ('0'..='9').chain(['A', 'B']) {
                candidates.push(format!("{a}{b}"));
                for c in '0'..='9' {
                    candidates.push(format!("{a}{b}{c}"));
                    candidates.push(format!("{a}{b}{c}15"));
                }
            }
        }
        for v in &candidates {
            assert_eq!(v.parse::<Territory>().is_ok(), matches_schema::<Territory>(v), "territory {v}");
            assert_eq!(v.parse::<CommuneCode>().is_ok(), matches_schema::<CommuneCode>(v), "commune {v}");
        }
        for v in
            ["a", "lieu-16", "a b", " a", "a ", "a\tb", "\u{a0}a", "a\u{3000}", "é", "\u{85}", "a\u{7f}b", "\u{feff}x"]
        {
            assert_eq!(v.parse::<StructureId>().is_ok(), matches_schema::<StructureId>(v), "structure {v:?}");
        }
    }

    #[test]
    fn a_commune_code_knows_its_departement() {
        let t = |c: &str| c.parse::<CommuneCode>().unwrap().territory().into_string();
        assert_eq!(t("16015"), "16");
        assert_eq!(t("2A004"), "2A");
        assert_eq!(t("97105"), "971");
        assert_eq!(t("98818"), "988");
    }

    #[test]
    fn ids_are_plain_values_on_the_wire() {
        let id = ReferralId::new();
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{id}\""));
        let s: StructureId = serde_json::from_str("\"lieu-16-42\"").unwrap();
        assert!("é".repeat(STRUCTURE_ID_MAX_LEN).parse::<StructureId>().is_ok());
        assert!("é".repeat(STRUCTURE_ID_MAX_LEN + 1).parse::<StructureId>().is_err());
        assert_eq!(s.as_str(), "lieu-16-42");
        assert!(serde_json::from_str::<StructureId>("\"\"").is_err());
        assert!(serde_json::from_str::<Territory>("\"1\"").is_err());
        assert!(serde_json::from_str::<ReferralId>("\"nope\"").is_err());
    }

    proptest! {
        #[test]
        fn a_parsed_code_prints_as_it_was_read(s in "\\PC{0,8}") {
            if let Ok(c) = s.parse::<CommuneCode>() { prop_assert_eq!(c.to_string(), s.clone()); }
            if let Ok(t) = s.parse::<Territory>() { prop_assert_eq!(t.to_string(), s.clone()); }
            if let Ok(id) = s.parse::<StructureId>() { prop_assert_eq!(id.to_string(), s); }
        }

        #[test]
        fn a_valid_commune_code_has_a_valid_territory(d in 1u32..=95, rest in 0u32..1000) {
            prop_assume!(d != 20);
            let code: CommuneCode = format!("{d:02}{rest:03}").parse().unwrap();
            prop_assert!(code.territory().as_str().parse::<Territory>().is_ok());
        }
    }
}
