//! Collects every problem of a request body instead of stopping at the first one, so a
//! client learns about all its bad fields in one `422`.

use std::str::FromStr;

use crate::FieldError;
use crate::vocab::UnknownValue;

/// Whether a text holds a control character other than tab, line feed and carriage
/// return: what no text of the API may (PostgreSQL cannot even store a NUL).
pub fn has_control_characters(text: &str) -> bool {
    text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
}

#[derive(Debug, Default)]
pub struct Errors(Vec<FieldError>);

impl Errors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A trimmed text of at most `max` characters; `None` (and an error if `required`)
    /// when absent or blank.
    pub fn text(&mut self, field: &str, value: Option<&str>, max: usize, required: bool) -> Option<String> {
        // Length and characters are those of what was sent, as the OpenAPI document's
        // `maxLength` and `pattern` count them; only then is it trimmed.
        match value {
            Some(v) if v.chars().count() > max => {
                self.add(field, format!("is longer than {max} characters"));
                return None;
            }
            Some(v) if has_control_characters(v) => {
                self.add(field, "contains control characters");
                return None;
            }
            _ => {}
        }
        match value.map(str::trim).filter(|v| !v.is_empty()) {
            None => {
                if required {
                    self.add(field, "is required");
                }
                None
            }
            Some(v) => Some(v.to_string()),
        }
    }

    /// A list of vocabulary values, sorted and de-duplicated. Each unknown value is
    /// reported at its index (`needs[1]`).
    pub fn list<T: FromStr<Err = UnknownValue> + Ord>(
        &mut self,
        field: &str,
        values: Option<&[String]>,
        required: bool,
    ) -> Vec<T> {
        let Some(values) = values else {
            if required {
                self.add(field, "is required");
            }
            return Vec::new();
        };
        if values.is_empty() && required {
            self.add(field, "must not be empty");
        }
        if values.len() > 50 {
            self.add(field, "has too many values");
            return Vec::new();
        }
        let mut parsed = Vec::with_capacity(values.len());
        for (i, v) in values.iter().enumerate() {
            match v.trim().parse::<T>() {
                Ok(p) => parsed.push(p),
                Err(e) => self.add(format!("{field}[{i}]"), e.to_string()),
            }
        }
        parsed.sort();
        parsed.dedup();
        parsed
    }

    /// One vocabulary value, or `default` when absent.
    pub fn one<T: FromStr<Err = UnknownValue>>(
        &mut self,
        field: &str,
        value: Option<&str>,
        default: Option<T>,
    ) -> Option<T> {
        match value.map(str::trim) {
            None | Some("") => {
                if default.is_none() {
                    self.add(field, "is required");
                }
                default
            }
            Some(v) => match v.parse::<T>() {
                Ok(p) => Some(p),
                Err(e) => {
                    self.add(field, e.to_string());
                    None
                }
            },
        }
    }

    /// An optional id or code (`StructureId`, `Territory` …): `None` when absent, an
    /// error naming the field when it does not parse.
    pub fn parsed<T>(&mut self, field: &str, value: Option<&str>) -> Option<T>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match value.map(str::parse::<T>) {
            None => None,
            Some(Ok(v)) => Some(v),
            Some(Err(err)) => {
                self.add(field, err.to_string());
                None
            }
        }
    }

    pub fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, Vec<FieldError>> {
        if self.0.is_empty() { Ok(value()) } else { Err(self.0) }
    }

    pub fn into_inner(self) -> Vec<FieldError> {
        self.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::Need;

    #[test]
    fn every_bad_value_is_reported_at_its_index() {
        let mut e = Errors::new();
        let needs: Vec<Need> = e.list("needs", Some(&["cooking".into(), "loisirs_creations".into(), "x".into()]), true);
        assert_eq!(needs, vec![Need::LoisirsCreations]);
        let fields: Vec<String> = e.into_inner().into_iter().map(|f| f.field).collect();
        assert_eq!(fields, vec!["needs[0]", "needs[2]"]);
    }

    #[test]
    fn required_and_empty_lists_are_errors() {
        let mut e = Errors::new();
        let _: Vec<Need> = e.list("needs", None, true);
        let _: Vec<Need> = e.list("other", Some(&[]), true);
        assert_eq!(e.into_inner().len(), 2);
    }

    #[test]
    fn control_characters_but_tab_and_line_breaks_are_refused() {
        assert!(has_control_characters("16\u{0}"));
        assert!(has_control_characters("a\u{1a}b"));
        assert!(has_control_characters("\u{85}"));
        assert!(!has_control_characters("ligne\n\tsuite\r"));
        assert!(!has_control_characters("Angoulême"));
    }

    #[test]
    fn texts_are_trimmed_and_bounded() {
        let mut e = Errors::new();
        assert_eq!(e.text("a", Some("  x "), 5, true), Some("x".into()));
        assert_eq!(e.text("b", Some("   "), 5, true), None);
        assert_eq!(e.text("c", Some("abcdef"), 5, true), None);
        assert_eq!(e.text("d", None, 5, false), None);
        // Counted as sent: spaces count, and a control character is refused even at an end.
        assert_eq!(e.text("e", Some(&" ".repeat(6)), 5, false), None);
        assert_eq!(e.text("f", Some("x\u{b}"), 5, false), None);
        let fields: Vec<String> = e.into_inner().into_iter().map(|f| f.field).collect();
        assert_eq!(fields, vec!["b", "c", "e", "f"]);
    }
}
