//! A validated OpenStreetMap `opening_hours` value (the `horaires` field of the Mednum
//! standard), and when it next opens.
//!
//! Validation uses the OSM grammar of the `opening-hours-syntax` crate, so every value that
//! OSM tools accept is accepted here. Evaluation covers the subset that digital-mediation
//! places use: weekday selectors (`Mo-Fr`, `Mo,We`, `Sa-Mo`), time spans
//! (`09:00-12:00,14:00-17:30`, `22:00-02:00`), several rules separated by `;` (a later rule
//! replaces the hours of the days it names) or `,` (it adds to them), `off`/`closed` (those
//! hours, or the whole day, are closed) and `24/7`. Public and school holidays (`PH off`)
//! are ignored. A value that uses anything else (months, dates, week numbers, sunrise,
//! `||` fallbacks, open ends…) is valid but its next opening is unknown.

use std::fmt;

use chrono::{Datelike, Duration, NaiveDateTime, Weekday};
use opening_hours_syntax::rules::day::WeekDayRange;
use opening_hours_syntax::rules::time::{Time, TimeSpan};
use opening_hours_syntax::rules::{OpeningHoursExpression, RuleKind, RuleOperator, RuleSequence};

/// How far [`OpeningHours::next_opening`] looks ahead.
pub const LOOK_AHEAD_DAYS: i64 = 14;

/// Longer values are refused: no real place needs them, and it bounds the parser's work.
const MAX_LEN: usize = 2_000;

const MINUTES_PER_DAY: u32 = 24 * 60;

/// A valid OSM `opening_hours` value, kept as given (trimmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpeningHours {
    text: String,
    /// The weekly schedule, when the value only uses what is evaluated here.
    week: Option<Week>,
}

/// Open intervals per weekday (Monday first), in minutes from that day's midnight. An end
/// past 1440 runs into the next day.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Week([Vec<(u32, u32)>; 7]);

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
        let parsed = std::panic::catch_unwind(|| opening_hours_syntax::parse(text))
            .map_err(|_| "opening hours could not be read".to_string())?;
        let expression = parsed.map_err(|e| describe_error(text, &e))?;
        Ok(Self { text: text.to_string(), week: Week::from_expression(&expression) })
    }

    /// The value as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether [`next_opening`](Self::next_opening) can be computed for this value.
    pub fn is_evaluable(&self) -> bool {
        self.week.is_some()
    }

    /// The start of the next open interval at or after `after` (local time, Europe/Paris),
    /// looking ahead [`LOOK_AHEAD_DAYS`] days: `after` itself when the place is open then.
    /// `None` when the place does not open in that window, or when the value uses a
    /// feature that is not evaluated.
    pub fn next_opening(&self, after: NaiveDateTime) -> Option<NaiveDateTime> {
        let week = self.week.as_ref()?;
        let horizon = after + Duration::days(LOOK_AHEAD_DAYS);
        let first_day = after.date().pred_opt()?;
        let mut best: Option<NaiveDateTime> = None;
        // The day before is included for intervals that run past midnight.
        for offset in 0..=(LOOK_AHEAD_DAYS + 1) {
            let Some(day) = first_day.checked_add_signed(Duration::days(offset)) else { break };
            let midnight = day.and_hms_opt(0, 0, 0)?;
            let weekday = day.weekday().num_days_from_monday() as usize;
            for &(start, end) in &week.0[weekday] {
                let start = midnight + Duration::minutes(i64::from(start));
                let end = midnight + Duration::minutes(i64::from(end));
                if end <= after {
                    continue;
                }
                let candidate = start.max(after);
                if candidate <= horizon && best.is_none_or(|b| candidate < b) {
                    best = Some(candidate);
                }
            }
        }
        best
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

impl Week {
    fn from_expression(expression: &OpeningHoursExpression) -> Option<Self> {
        let mut days: [Vec<(u32, u32)>; 7] = Default::default();
        for rule in &expression.rules {
            let Some(selected) = selected_weekdays(rule)? else {
                // Only holidays are named: ignored.
                continue;
            };
            let spans = rule.time_selector.spans.iter().map(minutes).collect::<Option<Vec<_>>>()?;
            for (weekday, day) in days.iter_mut().enumerate() {
                if !selected[weekday] {
                    continue;
                }
                match (rule.operator, rule.kind) {
                    (RuleOperator::Normal, RuleKind::Open) => *day = normalise(spans.clone()),
                    (RuleOperator::Additional, RuleKind::Open) => {
                        day.extend(spans.iter().copied());
                        *day = normalise(std::mem::take(day));
                    }
                    (RuleOperator::Normal | RuleOperator::Additional, RuleKind::Closed) => {
                        *day = subtract(day, &spans);
                    }
                    (RuleOperator::Fallback, _) | (_, RuleKind::Unknown) => return None,
                }
            }
        }
        Some(Self(days))
    }
}

/// The weekdays a rule applies to: `Some(None)` when it names holidays only (ignored),
/// `None` when it uses a selector that is not evaluated.
fn selected_weekdays(rule: &RuleSequence) -> Option<Option<[bool; 7]>> {
    let selector = &rule.day_selector;
    if !selector.year.is_empty() || !selector.monthday.is_empty() || !selector.week.is_empty() {
        return None;
    }
    if selector.weekday.is_empty() {
        return Some(Some([true; 7]));
    }
    let mut selected = [false; 7];
    let mut any_weekday = false;
    for range in &selector.weekday {
        match range {
            WeekDayRange::Holiday { .. } => {}
            WeekDayRange::Fixed { range, offset, nth_from_start, nth_from_end } => {
                if *offset != 0 || nth_from_start.contains(&false) || nth_from_end.contains(&false) {
                    return None;
                }
                any_weekday = true;
                let mut day: Weekday = *range.start();
                for _ in 0..7 {
                    selected[day.num_days_from_monday() as usize] = true;
                    if day == *range.end() {
                        break;
                    }
                    day = day.succ();
                }
            }
        }
    }
    Some(any_weekday.then_some(selected))
}

/// A fixed time span in minutes; an end before its start runs past midnight.
fn minutes(span: &TimeSpan) -> Option<(u32, u32)> {
    if span.open_end || span.repeats.is_some() {
        return None;
    }
    let (Time::Fixed(start), Time::Fixed(end)) = (span.range.start, span.range.end) else {
        return None;
    };
    let start = u32::from(start.hour()) * 60 + u32::from(start.minute());
    let mut end = u32::from(end.hour()) * 60 + u32::from(end.minute());
    if end <= start {
        end += MINUTES_PER_DAY;
    }
    Some((start, end))
}

/// Sorted, non-empty, non-overlapping intervals.
fn normalise(mut spans: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    spans.retain(|(s, e)| s < e);
    spans.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

fn subtract(open: &[(u32, u32)], closed: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let mut result = open.to_vec();
    for &(cs, ce) in closed {
        result = result
            .into_iter()
            .flat_map(|(s, e)| {
                let mut parts = Vec::with_capacity(2);
                if s < cs.min(e) {
                    parts.push((s, cs.min(e)));
                }
                if ce.max(s) < e {
                    parts.push((ce.max(s), e));
                }
                parts
            })
            .collect();
    }
    normalise(result)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use chrono::NaiveDate;

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
        NaiveDate::from_ymd_opt(2024, 6, day).unwrap().and_hms_opt(h, m, 0).unwrap()
    }

    fn next(hours: &str, after: NaiveDateTime) -> Option<NaiveDateTime> {
        OpeningHours::parse(hours).unwrap().next_opening(after)
    }

    #[test]
    fn every_opening_hours_value_of_the_charente_file_parses_and_is_evaluable() {
        assert_eq!(CHARENTE.len(), 72);
        for value in CHARENTE {
            let hours = OpeningHours::parse(value).unwrap_or_else(|e| panic!("{value}: {e}"));
            assert!(hours.is_evaluable(), "{value}");
            assert_eq!(hours.as_str(), *value);
            assert!(hours.next_opening(at(3, 8, 0)).is_some(), "{value}");
        }
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

    #[test]
    fn public_holidays_are_ignored() {
        assert_eq!(next("Mo-Fr 09:00-12:00; PH off", at(3, 13, 0)), Some(at(4, 9, 0)));
    }

    #[test]
    fn a_place_that_is_always_closed_never_opens() {
        assert_eq!(next("off", at(3, 9, 0)), None);
        assert_eq!(next("closed", at(3, 9, 0)), None);
    }

    #[test]
    fn features_that_are_not_evaluated_parse_but_give_no_next_opening() {
        for value in ["Jan-Jun Mo-Fr 09:00-12:00", "week 1-10 Mo 09:00-12:00", "Mo sunrise-sunset", "Mo[1] 09:00-12:00"]
        {
            let hours = OpeningHours::parse(value).unwrap_or_else(|e| panic!("{value}: {e}"));
            assert!(!hours.is_evaluable(), "{value}");
            assert_eq!(hours.next_opening(at(3, 8, 0)), None, "{value}");
        }
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

    proptest::proptest! {
        #[test]
        fn any_string_parses_or_fails_cleanly(s in "\\PC{0,60}") {
            if let Ok(hours) = OpeningHours::parse(&s) {
                let _ = hours.next_opening(at(3, 8, 0));
            }
        }

        #[test]
        fn opening_hour_like_strings_never_panic(s in "[MTWFSuoehra ,;:\\-0-9PHof/+]{0,40}") {
            if let Ok(hours) = OpeningHours::parse(&s) {
                let _ = hours.next_opening(at(3, 8, 0));
            }
        }
    }
}
