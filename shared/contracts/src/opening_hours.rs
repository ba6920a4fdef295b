//! TEMPORARY placeholder while the OSM opening_hours module is being written: accepts
//! everything non-empty and knows no next opening.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpeningHours(String);

impl OpeningHours {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() || s.split_whitespace().count() > 4 && !s.contains(':') {
            return Err("empty".into());
        }
        Ok(Self(s.trim().to_string()))
    }

    pub fn next_opening(&self, _after: chrono::NaiveDateTime) -> Option<chrono::NaiveDateTime> {
        None
    }
}
