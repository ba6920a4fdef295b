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

/// "16000", "16000 Angoulême", "Angoulême" or an INSEE code: the commune's code, or why
/// none is found. `empty` is what to say when nothing is typed: each form names whose
/// commune it asks for.
pub fn commune(raw: &str, empty: &str) -> Result<String, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(empty.to_string());
    }
    let communes = geo::communes();
    let digits: String = raw.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
    if digits.len() == 5 && digits.chars().all(|c| c.is_ascii_digit()) {
        let rest = raw[digits.len()..].trim();
        if let Ok(c) = communes.resolve(None, Some(&digits), Some(rest).filter(|r| !r.is_empty())) {
            return Ok(c.code.clone());
        }
        if let Some(c) = communes.by_code(&digits) {
            return Ok(c.code.clone());
        }
        return Err(format!("Aucune commune n'a le code postal {digits}."));
    }
    let wanted = geo::normalize_name(raw);
    let mut found: Vec<&geo::Commune> = communes.iter().filter(|c| geo::normalize_name(&c.name) == wanted).collect();
    found.sort_by_key(|c| std::cmp::Reverse(c.population));
    match found.as_slice() {
        [] => Err(format!("Aucune commune ne s'appelle « {raw} ». Essayez avec son code postal.")),
        [one] => Ok(one.code.clone()),
        several => Err(format!(
            "Plusieurs communes s'appellent « {raw} » ({}). Ajoutez le code postal, par exemple « {} {} ».",
            several.iter().take(4).map(|c| format!("{} ({})", c.name, c.departement)).collect::<Vec<_>>().join(", "),
            several[0].postcodes.first().cloned().unwrap_or_default(),
            several[0].name
        )),
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
