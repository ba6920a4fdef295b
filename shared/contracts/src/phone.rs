//! Phone numbers in E.164, read the way French numbers are written (`06 12 34 56 78`,
//! `06.12.34.56.78`, `+33 6…`, `0033 6…`, `+33 (0)6…`), overseas départements included.
//!
//! Parsing and validation are libphonenumber's (the `phonenumber` crate and its metadata).
//! One thing it cannot know from a national number alone: the overseas départements are
//! dialled inside the French plan (`0692 12 34 56` from Paris), but their E.164 numbers
//! have their own country codes (`+262 692 12 34 56`). Read under FR, such a number is
//! invalid, or worse valid as a metropolitan one (`+33 596…`). So a number whose national
//! digits start with an overseas prefix is read under the overseas regions instead.

use std::fmt;

use phonenumber::country::Id;
use phonenumber::{Mode, PhoneNumber as Parsed, Type};

/// Prefixes of the national significant number (after the `0`) that the French numbering
/// plan gives the overseas départements (ARCEP): Réunion `262`, `263`, `692`, `693`;
/// Mayotte `269`, `639`; Guadeloupe (with Saint-Martin and Saint-Barthélemy) `590`, `690`,
/// `691`; Guyane `594`, `694`; Martinique `596`, `696`, `697`. None is a metropolitan
/// number.
const OVERSEAS_PREFIXES: [&str; 14] =
    ["262", "263", "692", "693", "269", "639", "590", "690", "691", "594", "694", "596", "696", "697"];

/// The regions those numbers are tried in, in turn; libphonenumber decides which one fits.
const OVERSEAS_REGIONS: [Id; 5] = [Id::RE, Id::YT, Id::GP, Id::GF, Id::MQ];

const FRANCE: u16 = 33;
/// Mayotte's country code until 2007, which it shared with the Comoros: a number written
/// `+269 639…` is today's Mayotte number with the old code.
const MAYOTTE_BEFORE_2007: u16 = 269;

/// A valid phone number in E.164 (`+33612345678`). Personal data: `Debug` does not show it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("is not a phone number (use +33… or 0X XX XX XX XX)")]
    Invalid,
    #[error("has an extension; give a number that can be called directly")]
    Extension,
}

impl PhoneNumber {
    /// Reads a number written nationally (French by default) or internationally.
    pub fn parse(raw: &str) -> Result<Self, PhoneError> {
        let number = phonenumber::parse(Some(Id::FR), raw.trim()).map_err(|_| PhoneError::Invalid)?;
        if number.extension().is_some() {
            return Err(PhoneError::Extension);
        }
        let code = number.code().value();
        let valid = number.is_valid();
        let national = number.national().to_string();
        if code == FRANCE && OVERSEAS_PREFIXES.iter().any(|p| national.starts_with(p))
            || code == MAYOTTE_BEFORE_2007 && !valid
        {
            return overseas(&national).ok_or(PhoneError::Invalid);
        }
        if !valid {
            return Err(PhoneError::Invalid);
        }
        Ok(Self(e164(&number)))
    }

    /// `+33612345678`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// The overseas number with these national digits, if one region has it as a fixed or
/// mobile line.
fn overseas(national: &str) -> Option<PhoneNumber> {
    let written = format!("0{national}");
    OVERSEAS_REGIONS.iter().find_map(|region| {
        let number = phonenumber::parse(Some(*region), &written).ok()?;
        let line = matches!(
            number.number_type(&phonenumber::metadata::DATABASE),
            Type::FixedLine | Type::Mobile | Type::FixedLineOrMobile
        );
        (line && number.is_valid()).then(|| PhoneNumber(e164(&number)))
    })
}

fn e164(number: &Parsed) -> String {
    number.format().mode(Mode::E164).to_string()
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PhoneNumber(***)")
    }
}

impl std::str::FromStr for PhoneNumber {
    type Err = PhoneError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn e164(raw: &str) -> Result<String, PhoneError> {
        PhoneNumber::parse(raw).map(PhoneNumber::into_string)
    }

    #[test]
    fn french_spellings_of_one_mobile_number_are_the_same_number() {
        for raw in [
            "06 12 34 56 78",
            "06.12.34.56.78",
            "06-12-34-56-78",
            "0612345678",
            " 06 12 34 56 78 ",
            "+33 6 12 34 56 78",
            "+33612345678",
            "0033 6 12 34 56 78",
            "0033612345678",
            "+33 (0)6 12 34 56 78",
            "+33 06 12 34 56 78",
            "612345678",
        ] {
            assert_eq!(e164(raw).as_deref(), Ok("+33612345678"), "{raw}");
        }
    }

    #[test]
    fn metropolitan_numbers_of_every_zone_stay_french() {
        for (raw, expected) in [
            ("01 23 45 67 89", "+33123456789"),
            ("02 40 12 34 56", "+33240123456"),
            ("03 88 12 34 56", "+33388123456"),
            ("04 91 12 34 56", "+33491123456"),
            ("05 45 20 72 08", "+33545207208"),
            ("07 81 23 45 67", "+33781234567"),
            ("09 75 99 23 57", "+33975992357"),
            ("0800 123 456", "+33800123456"),
        ] {
            assert_eq!(e164(raw).as_deref(), Ok(expected), "{raw}");
        }
    }

    #[test]
    fn overseas_numbers_get_their_own_country_codes() {
        for (raw, expected) in [
            // La Réunion, fixed and mobile.
            ("0262 16 12 34", "+262262161234"),
            ("0692 12 34 56", "+262692123456"),
            ("0693 12 34 56", "+262693123456"),
            ("+262 692 12 34 56", "+262692123456"),
            // Mayotte: +262 today, +269 until 2007.
            ("0269 60 12 34", "+262269601234"),
            ("0639 01 23 45", "+262639012345"),
            ("+262 639 01 23 45", "+262639012345"),
            ("+269 639 01 23 45", "+262639012345"),
            ("+269 269 60 12 34", "+262269601234"),
            // Guadeloupe.
            ("0590 20 12 34", "+590590201234"),
            ("0690 00 12 34", "+590690001234"),
            ("+590 690 00 12 34", "+590690001234"),
            // Guyane.
            ("0594 10 12 34", "+594594101234"),
            ("0694 20 12 34", "+594694201234"),
            ("+594 694 20 12 34", "+594694201234"),
            // Martinique.
            ("0596 30 12 34", "+596596301234"),
            ("0696 20 12 34", "+596696201234"),
            ("+596 696 20 12 34", "+596696201234"),
            // Written with the metropolitan code by mistake.
            ("+33 6 92 12 34 56", "+262692123456"),
            ("0033 596 30 12 34", "+596596301234"),
        ] {
            assert_eq!(e164(raw).as_deref(), Ok(expected), "{raw}");
        }
    }

    #[test]
    fn an_overseas_prefix_never_becomes_a_metropolitan_number() {
        // libphonenumber reads `05 96…` as a metropolitan fixed line; Martinique has no such
        // number, so it is refused rather than sent to a line that does not exist.
        assert_eq!(e164("0596 12 34 56"), Err(PhoneError::Invalid));
    }

    #[test]
    fn numbers_of_other_countries_are_kept_in_e164() {
        assert_eq!(e164("+44 20 7946 0958").as_deref(), Ok("+442079460958"));
        assert_eq!(e164("+32 2 555 12 12").as_deref(), Ok("+3225551212"));
        // A Comoros number keeps +269.
        assert_eq!(e164("+269 321 23 45").as_deref(), Ok("+2693212345"));
    }

    #[test]
    fn what_is_not_a_callable_number_is_refused() {
        for raw in
            ["", "  ", "12", "call me", "3631", "06 12 34 56 7", "06 12 34 56 78 90", "+33 6 12", "+999 123 456 789"]
        {
            assert_eq!(e164(raw), Err(PhoneError::Invalid), "{raw}");
        }
        assert_eq!(e164("+33 1 23 45 67 89 ext. 12"), Err(PhoneError::Extension));
    }

    #[test]
    fn debug_does_not_print_the_number() {
        assert_eq!(format!("{:?}", PhoneNumber::parse("0612345678").unwrap()), "PhoneNumber(***)");
    }

    proptest::proptest! {
        #[test]
        fn any_input_is_a_valid_number_or_refused(s in "\\PC{0,40}") {
            if let Ok(number) = PhoneNumber::parse(&s) {
                proptest::prop_assert!(number.as_str().starts_with('+'));
                proptest::prop_assert_eq!(PhoneNumber::parse(number.as_str()), Ok(number.clone()));
            }
        }

        #[test]
        fn phone_like_input_is_a_valid_number_or_refused(s in "[0-9+ .()\\-]{0,25}") {
            if let Ok(number) = PhoneNumber::parse(&s) {
                proptest::prop_assert_eq!(PhoneNumber::parse(number.as_str()), Ok(number.clone()));
            }
        }
    }
}
