//! Capacity is counted per ISO week, in French time (Europe/Paris): a week starts on
//! Monday at midnight in Paris, whatever the server's clock zone.

use chrono::{DateTime, Datelike, NaiveDateTime, Utc};
use chrono_tz::Europe::Paris;

/// An ISO week, written `2026-W48`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CapacityWeek {
    pub year: i32,
    pub week: u32,
}

impl CapacityWeek {
    pub fn of(at: DateTime<Utc>) -> Self {
        let iso = at.with_timezone(&Paris).iso_week();
        Self { year: iso.year(), week: iso.week() }
    }

    pub fn current() -> Self {
        Self::of(Utc::now())
    }

    /// The instant this week starts (Monday 00:00 in Paris), in UTC.
    pub fn start(&self) -> DateTime<Utc> {
        let monday = chrono::NaiveDate::from_isoywd_opt(self.year, self.week, chrono::Weekday::Mon)
            .unwrap_or_default()
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default();
        monday.and_local_timezone(Paris).earliest().map(|d| d.with_timezone(&Utc)).unwrap_or_else(|| monday.and_utc())
    }
}

impl std::fmt::Display for CapacityWeek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-W{:02}", self.year, self.week)
    }
}

/// Local time in Paris, for opening hours.
pub fn paris_local(at: DateTime<Utc>) -> NaiveDateTime {
    at.with_timezone(&Paris).naive_local()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_week_turns_at_midnight_in_paris_not_in_utc() {
        // Sunday 23:30 UTC in winter is already Monday 00:30 in Paris.
        assert_eq!(CapacityWeek::of(utc("2026-11-29T22:59:00Z")).to_string(), "2026-W48");
        assert_eq!(CapacityWeek::of(utc("2026-11-29T23:00:00Z")).to_string(), "2026-W49");
        assert_eq!(CapacityWeek::of(utc("2026-11-29T23:00:00Z")).start(), utc("2026-11-29T23:00:00Z"));
    }

    #[test]
    fn iso_years_differ_from_calendar_years_at_the_edges() {
        assert_eq!(CapacityWeek::of(utc("2027-01-01T12:00:00Z")).to_string(), "2026-W53");
    }
}
