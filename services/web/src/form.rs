//! Reading what people type, as the pages' forms share it.

use std::collections::HashMap;

use chrono::NaiveDate;

/// A text as the API takes it: trimmed, and `None` when nothing is left.
pub fn text(raw: &str) -> Option<String> {
    Some(raw.trim().to_string()).filter(|s| !s.is_empty())
}

/// A date field (`2026-11-28`, as a date input sends it); empty is none, anything else
/// is an error beside `field`.
pub fn date(
    raw: Option<&String>,
    field: &'static str,
    errors: &mut HashMap<&'static str, String>,
) -> Option<NaiveDate> {
    let raw = raw.map(|s| s.trim()).filter(|s| !s.is_empty())?;
    match NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        Ok(d) => Some(d),
        Err(_) => {
            errors.insert(field, "Indiquez une date au format jj/mm/aaaa.".into());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blank_text_is_none_and_a_bad_date_is_an_error_beside_its_field() {
        assert_eq!(text("  "), None);
        assert_eq!(text(" Mansle "), Some("Mansle".into()));
        let mut errors = HashMap::new();
        assert_eq!(date(Some(&"2026-11-28".into()), "du", &mut errors), NaiveDate::from_ymd_opt(2026, 11, 28));
        assert_eq!(date(Some(&" ".into()), "du", &mut errors), None);
        assert!(errors.is_empty());
        assert_eq!(date(Some(&"28/11/2026".into()), "au", &mut errors), None);
        assert!(errors.contains_key("au"));
    }
}
