//! A validated OpenStreetMap `opening_hours` value (the `horaires` field of the Mednum
//! standard), and when it next opens.
//!
//! Parsing and evaluation are the `opening-hours` crate's (the OSM grammar of
//! `opening-hours-syntax`, so every value that OSM tools accept is accepted here), with the
//! French public holidays of its embedded calendar: `PH off` closes 1 January, Easter
//! Monday, 1 and 8 May, Ascension, Whit Monday, 14 July, 15 August, 1 and 11 November and
//! 25 December. Regional days (26 December and Good Friday in Alsace-Moselle, the abolition
//! of slavery overseas) are not in that calendar, so they count as ordinary days. School
//! holidays (`SH`) have no calendar either: `SH off` closes nothing.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{LazyLock, Mutex};

use chrono::{Duration, NaiveDateTime};
use opening_hours::localization::Country;
use opening_hours::{Context, RuleKind};
use opening_hours_syntax::rules::time::Time;

/// How far [`OpeningHours::next_opening`] looks ahead.
pub const LOOK_AHEAD_DAYS: i64 = 14;

/// Longer values are refused: no real place needs them, and it bounds the parser's work.
const MAX_LEN: usize = 2_000;

/// The evaluation context every value shares: the French public holidays. Times are naive
/// Paris local time (see [`crate::week::paris_local`]), so no time zone is attached.
static FRANCE: LazyLock<Context> = LazyLock::new(|| Context::default().with_holidays(Country::FR.holidays()));

/// A valid OSM `opening_hours` value, kept as given (trimmed).
#[derive(Debug, Clone)]
pub struct OpeningHours {
    text: String,
    schedule: opening_hours::OpeningHours,
    /// Sun events (`sunrise`, `sunset`…) need the place's coordinates, which the value
    /// does not carry; the crate would assume 07:00 and 19:00 all year. Such a value has no
    /// next opening rather than an invented one.
    follows_the_sun: bool,
    /// The open interval found by the last evaluation, which answers the questions asked
    /// later within it or before it starts (see [`OpeningHours::next_opening`]).
    recent: Recent,
}

/// The last open interval found: asked at `asked`, open from `opens` to `closes`.
#[derive(Debug, Clone, Copy)]
struct Found {
    asked: NaiveDateTime,
    opens: NaiveDateTime,
    closes: NaiveDateTime,
}

/// A cache of one [`Found`], shared by the threads that read the same index. A clone
/// starts empty: it is an optimisation, never part of the value.
#[derive(Debug, Default)]
struct Recent(Mutex<Option<Found>>);

impl Clone for Recent {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl Recent {
    /// The next opening after `after`, if the last interval found decides it: nothing
    /// opened between the question it answered and its start, and it is open until
    /// `closes`.
    fn answer(&self, after: NaiveDateTime) -> Option<NaiveDateTime> {
        let found = (*self.0.lock().ok()?)?;
        (found.asked <= after && after < found.closes).then(|| after.max(found.opens))
    }

    fn keep(&self, found: Found) {
        if let Ok(mut recent) = self.0.lock() {
            *recent = Some(found);
        }
    }
}

impl PartialEq for OpeningHours {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for OpeningHours {}

/// As the value given: what a process that receives it parses again.
impl serde::Serialize for OpeningHours {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for OpeningHours {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl OpeningHours {
    /// Validates a value against the OSM grammar.
    pub fn parse(s: &str) -> Result<Self, String> {
        let text = s.trim();
        if text.is_empty() {
            return Err("empty opening hours".to_string());
        }
        if text.len() > MAX_LEN {
            return Err(format!("opening hours longer than {MAX_LEN} characters"));
        }
        // The grammar crate asserts its own invariants in debug builds; a value that trips
        // one is refused like any other invalid value rather than taking the caller down.
        let parsed = catch_unwind(|| text.parse::<opening_hours::OpeningHours>())
            .map_err(|_| "opening hours could not be read".to_string())?;
        let schedule = parsed.map_err(|e| describe_error(text, &e))?.with_context(FRANCE.clone());
        let follows_the_sun = schedule.get_expression().rules.iter().any(|rule| {
            rule.time_selector.spans.iter().any(|span| {
                matches!(span.range.start, Time::Variable(_)) || matches!(span.range.end, Time::Variable(_))
            })
        });
        Ok(Self { text: text.to_string(), schedule, follows_the_sun, recent: Recent::default() })
    }

    /// The value as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The start of the next open interval at or after `after` (local time, Europe/Paris),
    /// looking ahead [`LOOK_AHEAD_DAYS`] days: `after` itself when the place is open then.
    /// `None` when the place does not open in that window, or when its hours follow the
    /// sun. Hours marked `unknown` are not openings.
    ///
    /// Evaluating the rules takes microseconds, and the matcher asks for the same places
    /// again and again, at times that mostly move forward (a replay asks a million times).
    /// The interval found last answers any later question up to its end.
    pub fn next_opening(&self, after: NaiveDateTime) -> Option<NaiveDateTime> {
        if self.follows_the_sun {
            return None;
        }
        if let Some(known) = self.recent.answer(after) {
            return Some(known);
        }
        let found = self.evaluate(after)?;
        self.recent.keep(found);
        Some(found.opens)
    }

    /// The next open interval, by the rules themselves.
    fn evaluate(&self, after: NaiveDateTime) -> Option<Found> {
        let horizon = after.checked_add_signed(Duration::days(LOOK_AHEAD_DAYS))?;
        // As in `parse`: a bug in the evaluator costs this value its next opening, not the
        // matcher its consumer.
        catch_unwind(AssertUnwindSafe(|| {
            self.schedule.iter_range(after, horizon).find(|range| range.kind == RuleKind::Open).map(|r| Found {
                asked: after,
                opens: r.range.start,
                closes: r.range.end,
            })
        }))
        .ok()
        .flatten()
    }
}

impl fmt::Display for OpeningHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for OpeningHours {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The grammar's message in plain words: where the value stops being OSM syntax.
fn describe_error(text: &str, error: &opening_hours_syntax::Error) -> String {
    let opening_hours_syntax::Error::Syntax(_) = error else {
        return format!("invalid opening hours: {error}");
    };
    // Pest reports the position as ` --> line:column` (column in characters, from 1).
    let message = error.to_string();
    let column = message
        .lines()
        .find_map(|l| l.trim().strip_prefix("-->"))
        .and_then(|pos| pos.trim().rsplit(':').next())
        .and_then(|c| c.parse::<usize>().ok())
        .filter(|c| *c >= 1 && text.lines().count() <= 1);
    match column {
        Some(column) => {
            let rest: String = text.chars().skip(column - 1).take(30).collect();
            if rest.is_empty() {
                "invalid opening hours: the value ends too early".to_string()
            } else {
                format!("invalid opening hours: not OSM opening_hours syntax from character {column} ('{rest}')")
            }
        }
        None => "invalid opening hours: not OSM opening_hours syntax".to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use chrono::NaiveDate;
    use proptest::prelude::*;

    use super::*;

    /// The 72 `horaires` of the ANCT Charente file (July 2023).
    const CHARENTE: &[&str] = &[
        "Mo-Th 09:00-12:00,14:00-18:00; Fr 09:00-12:00,14:00-17:00",
        "Mo-Fr 10:00-12:00,14:00-17:30",
        "We 09:00-12:00",
        "Mo 13:30-17:30;Tu 08:30-12:15,13:30-17:30;We 08:30-12:15,13:30-17:30;Th 08:30-12:15,13:30-17:30;Fr 08:30-12:15,13:30-16:15",
        "Mo-Th 09:00-12:00,14:00-18:00; Tu 14:00-18:00; Fr 09:00-12:00,14:00-17:30",
        "Tu 09:00-12:00",
        "Mo-Fr 09:00-12:00",
        "Mo-Th 09:30-12:30,13:00-17:00; Fr 09:30-12:30,13:30-17:00",
        "Mo-We 09:00-12:00,13:00-17:00; Th,Fr 13:00-17:00",
        "Mo-Fr 08:45-12:00,13:30-16:15; Tu 09:00-16:15,13:30-16:15",
        "Mo 09:00-12:30,14:00-16:30;Tu 09:00-12:30,14:00-16:30;We 09:00-12:30,14:00-16:30;Th 09:00-12:30,14:00-16:30;Fr 09:00-12:30,14:00-16:00",
        "Mo 09:00-12:30,14:00-16:30;Tu 09:00-12:30,14:00-16:30;We 09:00-12:30,14:00-16:30;Th 09:00-12:30,14:00-16:30;Fr 09:00-12:30,14:00-16:00",
        "Mo-Fr 09:00-12:30,14:00-17:30",
        "Mo-Fr 08:30-12:30; We 08:30-12:30,13:30-17:00",
        "Mo-Fr 08:45-12:30,13:15-17:15",
        "Mo 09:00-12:00,14:00-18:00;Tu 09:00-12:00,09:00-18:00;We 09:00-12:00,14:00-18:00;Th 09:00-12:00,14:00-18:00;Fr 09:00-12:00,14:00-18:00",
        "Mo-Fr 09:00-12:00,14:00-18:00",
        "Tu 09:00-12:00",
        "Mo-Fr 09:00-12:00,14:00-17:00",
        "Mo-Fr 09:00-12:30,13:30-17:00",
        "Mo 14:00-17:00",
        "Mo-Fr 09:00-12:00,13:00-17:00",
        "Mo-Fr 09:00-12:00,14:00-16:15; Th 09:00-12:00,14:00-18:00",
        "Mo-Th 08:00-12:00,14:00-17:00; Fr 08:00-12:00,14:00-16:30",
        "We 09:00-12:00",
        "Mo,Fr 09:00-12:00; Tu 13:00-17:00",
        "Tu,Th 09:00-12:30,13:30-17:30",
        "Mo 09:00-12:30,13:30-17:30; We 13:30-18:00",
        "Mo-Fr 09:00-12:30,13:15-17:00",
        "Mo-Th 08:00-12:00,14:00-17:00; Fr 08:00-12:00,14:00-16:30",
        "Th 09:00-12:00",
        "Mo-Th 09:00-12:00,13:30-16:00; Fr 09:00-12:00",
        "Mo,We 09:00-16:30,13:30-16:30; Tu 09:00-16:30,13:30-18:30; Th 09:00-16:30,13:30-17:00; Fr 09:00-16:30",
        "Tu 09:00-12:00",
        "Mo,Tu 08:30-12:00,14:00-17:30; We,Th 08:30-12:00,13:30-17:30; Fr 08:30-12:00,14:00-16:30",
        "Mo,Fr 09:00-12:00,14:00-18:00; Tu,Th 14:00-18:00; We 09:00-12:30,14:00-18:00",
        "Mo-Fr 08:30-12:30,13:30-17:30",
        "Mo 09:00-13:00,14:00-17:00;Tu 09:00-13:00,14:00-17:00;We 09:00-13:00,09:00-13:00;Th 09:00-13:00,14:00-17:00;Fr 09:00-13:00,14:00-17:00",
        "Mo-Fr 08:30-12:30,13:30-17:30",
        "Mo-Fr 09:00-12:15,14:00-16:00; Th 09:00-12:00",
        "Fr 14:00-17:00",
        "Mo-Th 09:00-12:30,14:00-18:00; Tu,Fr 14:00-18:00",
        "Mo-Fr 14:00-19:00",
        "Tu-Fr 09:00-12:00,13:30-16:00; We 10:00-12:00,13:30-16:00; Sa 09:00-12:00",
        "Mo-Th 09:00-12:00,14:00-18:00; Tu 14:00-18:00; Fr 09:00-12:00,14:00-17:30",
        "Mo-Fr 09:00-12:00,13:00-17:00",
        "Mo-Th 09:00-12:30,13:30-16:30; Tu 09:00-12:30,13:30-18:30; Fr 09:00-16:30",
        "Mo-Fr 09:00-12:30,13:30-17:00",
        "Fr 09:00-12:00",
        "Fr 09:00-12:00",
        "Mo-Th 08:00-12:00,14:00-17:00; Fr 08:00-12:00,14:00-16:30",
        "Mo-Fr 09:00-12:30,14:00-17:00; Tu,Th 09:00-12:30",
        "Tu-Fr 09:00-12:00,13:30-16:30; Sa 09:00-12:00",
        "Mo-Fr 09:00-12:00,14:00-18:00",
        "Mo 14:00-17:00",
        "Mo-Th 08:00-12:00,14:00-17:00; Fr 08:00-12:00,14:00-16:30",
        "Mo-Fr 09:00-12:30,13:30-17:00; We 09:00-12:30,13:00-17:00",
        "Tu-Fr 10:00-12:30,15:00-18:00; Sa 10:00-12:30; Th off",
        "We 09:00-12:00",
        "We 14:00-17:00",
        "Mo 09:30-12:30",
        "Fr 09:00-12:00",
        "Fr 14:00-17:00",
        "Mo 14:00-17:00",
        "Mo 09:00-12:30,14:00-17:00;Tu 09:00-12:30,14:00-17:00;We 09:00-12:30,14:00-17:00;Th 09:00-12:30,14:00-17:00;Fr 09:00-12:30,14:00-17:00",
        "Mo-Fr 09:00-12:00,13:30-16:00; Tu 09:00-12:00",
        "Mo-Fr 09:00-12:00,13:30-16:00; Sa 09:00-12:00",
        "Mo 13:00-17:30; Tu 08:30-12:30; We 08:30-12:30,13:30-17:30; Th 08:30-12:30,14:00-18:30; Fr 10:00-12:30,13:30-17:00",
        "We 14:00-17:00",
        "Th 09:00-12:00",
        "Mo 09:00-12:00",
        "Tu-Fr 09:00-12:00,14:00-17:00; Mo 09:00-12:00,14:00-16:00",
    ];

    /// Monday 3 June 2024.
    fn at(day: u32, h: u32, m: u32) -> NaiveDateTime {
        on(2024, 6, day, h, m)
    }

    fn on(year: i32, month: u32, day: u32, h: u32, m: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(year, month, day).unwrap().and_hms_opt(h, m, 0).unwrap()
    }

    fn next(hours: &str, after: NaiveDateTime) -> Option<NaiveDateTime> {
        OpeningHours::parse(hours).unwrap().next_opening(after)
    }

    #[test]
    fn every_opening_hours_value_of_the_charente_file_parses_and_opens() {
        assert_eq!(CHARENTE.len(), 72);
        for value in CHARENTE {
            let hours = OpeningHours::parse(value).unwrap_or_else(|e| panic!("{value}: {e}"));
            assert_eq!(hours.as_str(), *value);
            assert!(hours.next_opening(at(3, 8, 0)).is_some(), "{value}");
        }
    }

    #[test]
    fn a_value_sent_to_another_process_comes_back_the_same_and_an_invalid_one_is_refused() {
        for text in CHARENTE {
            let hours = OpeningHours::parse(text).unwrap();
            let json = serde_json::to_string(&hours).unwrap();
            let back: OpeningHours = serde_json::from_str(&json).unwrap();
            assert_eq!(back, hours);
            let at = NaiveDate::from_ymd_opt(2026, 12, 7).unwrap().and_hms_opt(8, 0, 0).unwrap();
            assert_eq!(back.next_opening(at), hours.next_opening(at), "{text}");
        }
        let refused = serde_json::from_str::<OpeningHours>("\"Mo-Fr 25:00-26:00 nonsense\"");
        assert!(refused.is_err());
    }

    #[test]
    fn the_charente_file_s_unusual_spellings_mean_what_they_say() {
        // Rules run together without a space after `;`.
        let packed = "Mo 13:30-17:30;Tu 08:30-12:15,13:30-17:30;We 08:30-12:15,13:30-17:30;Th 08:30-12:15,13:30-17:30;Fr 08:30-12:15,13:30-16:15";
        assert_eq!(next(packed, at(3, 9, 0)), Some(at(3, 13, 30)));
        assert_eq!(next(packed, at(7, 16, 30)), Some(at(10, 13, 30)));
        // Overlapping spans on one day: open from 09:00 to 18:00 without a break.
        let overlapping = "Mo 09:00-12:00,14:00-18:00;Tu 09:00-12:00,09:00-18:00;We 09:00-12:00,14:00-18:00;Th 09:00-12:00,14:00-18:00;Fr 09:00-12:00,14:00-18:00";
        assert_eq!(next(overlapping, at(4, 12, 30)), Some(at(4, 12, 30)));
        assert_eq!(next(overlapping, at(3, 12, 30)), Some(at(3, 14, 0)));
        // The second span lies inside the first.
        assert_eq!(next("Mo,We 09:00-16:30,13:30-16:30; Tu 09:00-16:30", at(3, 12, 30)), Some(at(3, 12, 30)));
    }

    #[test]
    fn comments_do_not_change_the_hours() {
        let hours = r#"Mo-Fr 09:00-12:00 "sur rendez-vous"; Sa 10:00-12:00 "permanence""#;
        assert_eq!(next(hours, at(3, 8, 0)), Some(at(3, 9, 0)));
        assert_eq!(next(hours, at(7, 13, 0)), Some(at(8, 10, 0)));
    }

    #[test]
    fn next_opening_is_the_next_interval_start_on_a_later_day() {
        // Monday 18:00 after closing: Tuesday 09:00.
        assert_eq!(next("Mo-Fr 09:00-12:00,14:00-17:30", at(3, 18, 0)), Some(at(4, 9, 0)));
        // Friday evening: next Monday.
        assert_eq!(next("Mo-Fr 09:00-12:00,14:00-17:30", at(7, 18, 0)), Some(at(10, 9, 0)));
        // A place open on Wednesday mornings only, asked on a Thursday: next Wednesday.
        assert_eq!(next("We 09:00-12:00", at(6, 10, 0)), Some(at(12, 9, 0)));
    }

    #[test]
    fn next_opening_is_the_afternoon_span_during_the_lunch_break() {
        assert_eq!(next("Mo-Fr 10:00-12:00,14:00-17:30", at(3, 12, 30)), Some(at(3, 14, 0)));
    }

    #[test]
    fn next_opening_is_now_when_the_place_is_open() {
        assert_eq!(next("Mo-Fr 10:00-12:00,14:00-17:30", at(3, 11, 15)), Some(at(3, 11, 15)));
        assert_eq!(next("24/7", at(5, 3, 0)), Some(at(5, 3, 0)));
    }

    #[test]
    fn a_later_rule_replaces_the_hours_of_the_days_it_names() {
        // Tuesday only opens in the afternoon.
        let hours = "Mo-Th 09:00-12:00,14:00-18:00; Tu 14:00-18:00; Fr 09:00-12:00,14:00-17:30";
        assert_eq!(next(hours, at(4, 8, 0)), Some(at(4, 14, 0)));
        assert_eq!(next(hours, at(3, 8, 0)), Some(at(3, 9, 0)));
    }

    #[test]
    fn days_marked_off_are_closed() {
        // Thursday is off: Thursday 08:00 waits for Friday 10:00.
        let hours = "Tu-Fr 10:00-12:30,15:00-18:00; Sa 10:00-12:30; Th off";
        assert_eq!(next(hours, at(6, 8, 0)), Some(at(7, 10, 0)));
        // Only the given hours are closed when `off` has hours.
        let lunch = "Mo-Fr 08:00-18:00; We 12:00-14:00 off";
        assert_eq!(next(lunch, at(5, 12, 30)), Some(at(5, 14, 0)));
    }

    #[test]
    fn additional_rules_add_hours() {
        let hours = "Mo 09:00-12:00, We 14:00-16:00";
        assert_eq!(next(hours, at(3, 13, 0)), Some(at(5, 14, 0)));
    }

    #[test]
    fn weekday_ranges_may_wrap_around_the_week() {
        assert_eq!(next("Sa-Mo 10:00-11:00", at(4, 12, 0)), Some(at(8, 10, 0)));
        assert_eq!(next("Sa-Mo 10:00-11:00", at(9, 10, 30)), Some(at(9, 10, 30)));
    }

    #[test]
    fn spans_past_midnight_stay_open_into_the_next_day() {
        assert_eq!(next("Fr 22:00-02:00", at(8, 1, 0)), Some(at(8, 1, 0)));
        assert_eq!(next("Fr 22:00-02:00", at(8, 3, 0)), Some(at(14, 22, 0)));
    }

    const WEEKDAYS_NOT_HOLIDAYS: &str = "Mo-Fr 09:00-17:00; PH off";

    #[test]
    fn christmas_is_closed_when_public_holidays_are_off() {
        // Thursday 24 December 2026, after closing: Friday 25 is Christmas, then the weekend.
        assert_eq!(next(WEEKDAYS_NOT_HOLIDAYS, on(2026, 12, 24, 18, 0)), Some(on(2026, 12, 28, 9, 0)));
        assert_eq!(next(WEEKDAYS_NOT_HOLIDAYS, on(2026, 12, 25, 8, 0)), Some(on(2026, 12, 28, 9, 0)));
        // Without `PH off`, Christmas is an ordinary Friday.
        assert_eq!(next("Mo-Fr 09:00-17:00", on(2026, 12, 24, 18, 0)), Some(on(2026, 12, 25, 9, 0)));
    }

    #[test]
    fn may_day_and_bastille_day_are_closed_when_public_holidays_are_off() {
        // Friday 1 May 2026: next Monday.
        assert_eq!(next(WEEKDAYS_NOT_HOLIDAYS, on(2026, 4, 30, 18, 0)), Some(on(2026, 5, 4, 9, 0)));
        // Tuesday 14 July 2026: Wednesday.
        assert_eq!(next(WEEKDAYS_NOT_HOLIDAYS, on(2026, 7, 13, 18, 0)), Some(on(2026, 7, 15, 9, 0)));
        assert_eq!(next(WEEKDAYS_NOT_HOLIDAYS, on(2026, 7, 14, 10, 0)), Some(on(2026, 7, 15, 9, 0)));
    }

    #[test]
    fn holidays_that_move_with_easter_are_closed_too() {
        // Easter Monday 6 April 2026, Ascension Thursday 14 May 2026.
        assert_eq!(next(WEEKDAYS_NOT_HOLIDAYS, on(2026, 4, 6, 8, 0)), Some(on(2026, 4, 7, 9, 0)));
        assert_eq!(next(WEEKDAYS_NOT_HOLIDAYS, on(2026, 5, 13, 18, 0)), Some(on(2026, 5, 15, 9, 0)));
    }

    #[test]
    fn the_26th_of_december_is_an_ordinary_day_in_the_national_calendar() {
        // Saturday 26 December 2026 (a holiday in Alsace-Moselle only).
        assert_eq!(next("Mo-Sa 09:00-12:00; PH off", on(2026, 12, 25, 8, 0)), Some(on(2026, 12, 26, 9, 0)));
    }

    #[test]
    fn a_place_may_open_special_hours_on_public_holidays() {
        assert_eq!(next("Mo-Fr 09:00-17:00; PH 10:00-12:00", on(2026, 12, 25, 8, 0)), Some(on(2026, 12, 25, 10, 0)));
    }

    #[test]
    fn an_ordinary_week_has_no_holiday() {
        // 1 to 5 June 2026, Monday to Friday.
        for day in 1..=5 {
            assert_eq!(next(WEEKDAYS_NOT_HOLIDAYS, on(2026, 6, day, 8, 0)), Some(on(2026, 6, day, 9, 0)));
        }
        assert_eq!(next(WEEKDAYS_NOT_HOLIDAYS, on(2026, 6, 5, 17, 0)), Some(on(2026, 6, 8, 9, 0)));
    }

    #[test]
    fn a_place_that_is_always_closed_never_opens() {
        assert_eq!(next("off", at(3, 9, 0)), None);
        assert_eq!(next("closed", at(3, 9, 0)), None);
    }

    #[test]
    fn months_weeks_and_nth_weekdays_are_evaluated() {
        assert_eq!(next("Jan-Jun Mo-Fr 09:00-12:00", at(3, 8, 0)), Some(at(3, 9, 0)));
        assert_eq!(next("Jul-Dec Mo-Fr 09:00-12:00", at(3, 8, 0)), None, "opens after the look-ahead");
        // 3 June 2024 is in ISO week 23.
        assert_eq!(next("week 24 Mo 09:00-12:00", at(3, 8, 0)), Some(at(10, 9, 0)));
        // The first Monday of June 2024 is the 3rd; the second, the 10th.
        assert_eq!(next("Mo[2] 09:00-12:00", at(3, 8, 0)), Some(at(10, 9, 0)));
    }

    #[test]
    fn hours_that_are_unknown_or_follow_the_sun_are_not_openings() {
        assert_eq!(next("Mo sunrise-sunset", at(3, 8, 0)), None);
        assert_eq!(next("Mo-Fr 09:00-12:00 unknown", at(3, 8, 0)), None);
        assert_eq!(next("Mo-Fr 09:00-12:00 unknown; We 14:00-16:00", at(3, 8, 0)), Some(at(5, 14, 0)));
    }

    #[test]
    fn free_text_and_empty_values_are_invalid() {
        for value in ["", "   ", "Lundi 9h-12h", "sur rendez-vous", "Mo-Fr 25:00-26:00", "Mo-Fr 09:00-"] {
            let err = OpeningHours::parse(value).unwrap_err();
            assert!(!err.is_empty());
        }
    }

    #[test]
    fn errors_say_where_the_value_stops_being_osm_syntax() {
        let err = OpeningHours::parse("Mo-Fr 09h00-12h00").unwrap_err();
        assert_eq!(err, "invalid opening hours: not OSM opening_hours syntax from character 7 ('09h00-12h00')");
        let err = OpeningHours::parse("Mo-Fr 09:00-12:00;").unwrap_err();
        assert_eq!(err, "invalid opening hours: the value ends too early");
    }

    #[test]
    fn values_are_kept_trimmed() {
        let hours = OpeningHours::parse("  Mo 09:00-12:00 \n").unwrap();
        assert_eq!(hours.to_string(), "Mo 09:00-12:00");
    }

    /// The French national public holidays, computed here independently of the crate's
    /// calendar: eight fixed dates and three that follow Easter.
    fn is_french_public_holiday(date: NaiveDate) -> bool {
        use chrono::Datelike;
        let fixed = [(1, 1), (5, 1), (5, 8), (7, 14), (8, 15), (11, 1), (11, 11), (12, 25)];
        if fixed.contains(&(date.month(), date.day())) {
            return true;
        }
        // Anonymous Gregorian algorithm (Meeus/Jones/Butcher).
        let y = date.year();
        let (a, b, c) = (y % 19, y / 100, y % 100);
        let (d, e) = (b / 4, b % 4);
        let g = (8 * b + 13) / 25;
        let h = (19 * a + b - d - g + 15) % 30;
        let (i, k) = (c / 4, c % 4);
        let l = (32 + 2 * e + 2 * i - h - k) % 7;
        let m = (a + 11 * h + 19 * l) / 433;
        let month = (h + l - 7 * m + 90) / 25;
        let day = (h + l - 7 * m + 33 * month + 19) % 32;
        let easter = NaiveDate::from_ymd_opt(y, month as u32, day as u32).unwrap();
        [1, 39, 50].iter().any(|offset| easter + Duration::days(*offset) == date)
    }

    #[test]
    fn the_test_calendar_knows_the_2026_holidays() {
        let holidays: Vec<NaiveDate> = (0..365)
            .map(|d| NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + Duration::days(d))
            .filter(|d| is_french_public_holiday(*d))
            .collect();
        let expected =
            ["01-01", "04-06", "05-01", "05-08", "05-14", "05-25", "07-14", "08-15", "11-01", "11-11", "12-25"];
        assert_eq!(holidays.iter().map(|d| d.format("%m-%d").to_string()).collect::<Vec<_>>(), expected);
    }

    const DAY_SELECTORS: [&str; 6] = ["Mo-Fr", "Mo-Su", "Tu-Sa", "We", "Mo,Th", "Sa-Mo"];

    proptest::proptest! {
        #[test]
        fn any_string_parses_or_fails_cleanly(s in "\\PC{0,60}") {
            if let Ok(hours) = OpeningHours::parse(&s) {
                // The evaluator itself, without the guard of `next_opening`.
                let _ = hours.schedule.iter_range(at(3, 8, 0), at(17, 8, 0)).find(|r| r.kind == RuleKind::Open);
            }
        }

        #[test]
        fn opening_hour_like_strings_never_panic(s in "[MTWFSuoehra ,;:\\-0-9PHof/+]{0,40}") {
            if let Ok(hours) = OpeningHours::parse(&s) {
                let _ = hours.schedule.iter_range(at(3, 8, 0), at(17, 8, 0)).find(|r| r.kind == RuleKind::Open);
            }
        }

        /// `PH off` only ever removes holidays: the next opening is never on one, and on
        /// any other day it is the opening the same hours have without `PH off`.
        #[test]
        fn with_public_holidays_off_the_next_opening_is_never_on_a_holiday(
            days in proptest::sample::select(DAY_SELECTORS.as_slice()),
            (open, close) in (0u32..23 * 4).prop_flat_map(|o| (Just(o), o + 1..=23 * 4 + 3)),
            day in 0i64..(366 * 10),
            minute in 0i64..(24 * 60),
        ) {
            let time = |quarter: u32| format!("{:02}:{:02}", quarter / 4, quarter % 4 * 15);
            let hours = format!("{days} {}-{}", time(open), time(close));
            let after = on(2024, 1, 1, 0, 0) + Duration::days(day) + Duration::minutes(minute);
            let plain = next(&hours, after);
            let closed_on_holidays = next(&format!("{hours}; PH off"), after);
            if let Some(t) = closed_on_holidays {
                prop_assert!(!is_french_public_holiday(t.date()), "{hours}; PH off opens on {t}");
                prop_assert!(plain.is_some_and(|p| p <= t), "{hours}: {plain:?} after {t}");
            }
            if let Some(p) = plain.filter(|p| !is_french_public_holiday(p.date())) {
                prop_assert_eq!(closed_on_holidays, Some(p));
            }
        }

        /// The remembered interval never changes an answer: one value asked at times that
        /// mostly move forward (as a replay asks), sometimes back, answers as the rules do.
        #[test]
        fn the_remembered_interval_answers_as_the_rules_do(
            hours in proptest::sample::select(CHARENTE),
            steps in proptest::collection::vec((-600i64..3_000, proptest::bool::weighted(0.1)), 1..60),
            start in 0i64..(366 * 2),
        ) {
            let cached = OpeningHours::parse(hours).unwrap();
            let mut after = on(2025, 1, 1, 0, 0) + Duration::days(start);
            for (minutes, back) in steps {
                after += Duration::minutes(if back { -minutes.abs() * 10 } else { minutes.abs() });
                let fresh = OpeningHours::parse(hours).unwrap();
                prop_assert_eq!(cached.next_opening(after), fresh.next_opening(after), "{} at {}", hours, after);
            }
        }
    }
}
