//! The appointment of an accepted referral, as the structure that follows the person
//! sets it, moves it, cancels it and says whether the person came: the block of
//! `/suivis/{id}` and of an accepted answer link's page (`partials/rendez_vous.html`),
//! its form read into the API's body, and how the person was told, in words.
//!
//! The date and time typed are Paris wall time; the API takes an instant with its offset,
//! so `10/12/2026 09:30` goes as `2026-12-10T09:30:00+01:00` and `10/07/2027 09:30` as
//! `+02:00`.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Europe::Paris;
use contracts::FieldError;
use contracts::referrals::{AppointmentBody, AppointmentView, NoticeView};
use contracts::{NoticeChannel, NoticeStatus};
use serde::Deserialize;

use crate::views::paris;

/// The lengths the form offers, in minutes, with their words.
pub const DURATIONS: [(u32, &str); 5] = [(30, "30 min"), (45, "45 min"), (60, "1 h"), (90, "1 h 30"), (120, "2 h")];
/// The length chosen when none is.
const DEFAULT_DURATION: u32 = 60;
/// The API's bound on the place's text.
const PLACE_MAX: usize = 200;

/// The fields' ids on the page, where their errors go.
pub const DATE: &str = "rdv-date";
pub const TIME: &str = "rdv-time";
pub const DURATION: &str = "rdv-duration";
pub const PLACE: &str = "rdv-place";

/// "Fixer le rendez-vous", as posted.
#[derive(Deserialize)]
pub struct AppointmentForm {
    date: Option<String>,
    time: Option<String>,
    duration: Option<String>,
    place: Option<String>,
}

/// The form's values as the page shows them (what was typed, or the appointment set),
/// and what is wrong beside each field.
#[derive(Debug, Clone, PartialEq)]
pub struct Typed {
    /// `2026-12-10`, as a date input takes it.
    pub date: String,
    /// `09:30`, as a time input takes it.
    pub time: String,
    pub duration: u32,
    pub place: String,
    /// (field, message), at most one per field.
    pub errors: Vec<(&'static str, String)>,
}

impl Default for Typed {
    fn default() -> Self {
        Typed {
            date: String::new(),
            time: String::new(),
            duration: DEFAULT_DURATION,
            place: String::new(),
            errors: Vec::new(),
        }
    }
}

impl Typed {
    fn filled<Z: TimeZone>(at: &DateTime<Z>, duration: u32, place: Option<&String>) -> Self {
        let local = at.with_timezone(&Paris);
        Typed {
            date: local.format("%Y-%m-%d").to_string(),
            time: local.format("%H:%M").to_string(),
            duration,
            place: place.cloned().unwrap_or_default(),
            errors: Vec::new(),
        }
    }

    /// The form filled with `a`, to move it.
    fn of(a: &AppointmentView) -> Self {
        Self::filled(&a.at, a.duration_minutes, a.place.as_ref())
    }

    /// The form as it was posted, from the body the API refused.
    pub fn of_body(b: &AppointmentBody) -> Self {
        Self::filled(&b.at, b.duration_minutes, b.place.as_ref())
    }

    fn refused(mut self, field: &'static str, message: &str) -> Self {
        if self.error(field).is_none() {
            self.errors.push((field, message.to_string()));
        }
        self
    }

    /// The API's 422, beside the fields it names.
    pub fn with_api_errors(self, errors: &[FieldError]) -> Self {
        let mut typed = self;
        for e in errors {
            typed = match e.field.as_str() {
                "at" => typed.refused(DATE, "Choisissez une date et une heure à venir."),
                "duration_minutes" => typed.refused(DURATION, "Choisissez une durée de la liste."),
                "place" => typed.refused(PLACE, "Indiquez un lieu de 200 caractères au plus, sans caractère spécial."),
                _ => typed,
            };
        }
        if typed.errors.is_empty() {
            // A refusal without a field this form has: said beside the date, never lost.
            typed = typed.refused(DATE, "Ce rendez-vous n'a pas pu être fixé. Vérifiez la date et l'heure.");
        }
        typed
    }

    pub fn error(&self, field: &str) -> Option<&str> {
        self.errors.iter().find(|(f, _)| *f == field).map(|(_, e)| e.as_str())
    }

    /// The errors in the order of the fields, for the summary above the form.
    pub fn summary(&self) -> Vec<(&'static str, &str)> {
        [DATE, TIME, DURATION, PLACE].into_iter().filter_map(|f| self.error(f).map(|e| (f, e))).collect()
    }
}

/// Paris wall time as an instant with its offset. A time the clocks skip (the spring
/// change) is none; one they pass twice (the autumn change) is the first.
pub fn paris_instant(date: NaiveDate, time: NaiveTime) -> Option<DateTime<FixedOffset>> {
    Paris.from_local_datetime(&date.and_time(time)).earliest().map(|t| t.fixed_offset())
}

impl AppointmentForm {
    /// The appointment as the API takes it, or the form back with what is wrong.
    pub fn request(self, now: DateTime<Utc>) -> Result<AppointmentBody, Typed> {
        let raw = |s: Option<String>| s.unwrap_or_default().trim().to_string();
        let (date, time, place) = (raw(self.date), raw(self.time), raw(self.place));
        let duration = self.duration.as_deref().and_then(|d| d.trim().parse::<u32>().ok());
        let mut typed = Typed { date, time, duration: duration.unwrap_or(DEFAULT_DURATION), place, errors: Vec::new() };
        let day = if typed.date.is_empty() {
            typed = typed.refused(DATE, "Indiquez la date du rendez-vous.");
            None
        } else {
            let day = NaiveDate::parse_from_str(&typed.date, "%Y-%m-%d").ok();
            if day.is_none() {
                typed = typed.refused(DATE, "Indiquez une date au format jj/mm/aaaa.");
            }
            day
        };
        let hour = if typed.time.is_empty() {
            typed = typed.refused(TIME, "Indiquez l'heure du rendez-vous.");
            None
        } else {
            let hour = NaiveTime::parse_from_str(&typed.time, "%H:%M")
                .or_else(|_| NaiveTime::parse_from_str(&typed.time, "%H:%M:%S"))
                .ok();
            if hour.is_none() {
                typed = typed.refused(TIME, "Indiquez une heure au format hh:mm, par exemple 09:30.");
            }
            hour
        };
        if !duration.is_some_and(|d| DURATIONS.iter().any(|(m, _)| *m == d)) {
            typed = typed.refused(DURATION, "Choisissez une durée de la liste.");
        }
        if typed.place.chars().count() > PLACE_MAX {
            typed = typed.refused(PLACE, "Indiquez un lieu de 200 caractères au plus.");
        }
        let at = match (day, hour) {
            (Some(day), Some(hour)) => match paris_instant(day, hour) {
                Some(at) if at.with_timezone(&Utc) > now => Some(at),
                Some(_) => {
                    typed = typed.refused(DATE, "Ce moment est passé : choisissez une date et une heure à venir.");
                    None
                }
                None => {
                    typed = typed.refused(
                        TIME,
                        "Cette heure n'existe pas ce jour-là (passage à l'heure d'été) : choisissez-en une autre.",
                    );
                    None
                }
            },
            _ => None,
        };
        match at {
            Some(at) if typed.errors.is_empty() => {
                Ok(AppointmentBody { at, duration_minutes: typed.duration, place: crate::form::text(&typed.place) })
            }
            _ => Err(typed),
        }
    }
}

/// "La personne est venue" or "… n'est pas venue", as posted.
#[derive(Deserialize)]
pub struct AttendanceForm {
    attended: Option<String>,
}

impl AttendanceForm {
    /// Whether the person came; none for anything but the two buttons' values.
    pub fn attended(&self) -> Option<bool> {
        match self.attended.as_deref() {
            Some("oui") => Some(true),
            Some("non") => Some(false),
            _ => None,
        }
    }
}

/// A length in words: `1 h`, `1 h 30`, `45 min`.
pub fn duration_words(minutes: u32) -> String {
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m:02}"),
    }
}

/// The day and time in words, in Paris: `mardi 10 décembre à 9 h 30`.
pub fn when_words(at: DateTime<Utc>) -> String {
    contracts::explain::date_time_fr(contracts::week::paris_local(at))
}

/// How one message reached the person, in the words of UI.md: "Prévenue par SMS",
/// "SMS non distribué", "À prévenir par le prescripteur"…
pub fn told_words(n: &NoticeView) -> String {
    match (n.channel, n.status) {
        (NoticeChannel::Referrer, _) => n.channel.label_fr().to_string(),
        (NoticeChannel::Sms, NoticeStatus::Failed) => "SMS non distribué".into(),
        (NoticeChannel::Email, NoticeStatus::Failed) => "E-mail non distribué".into(),
        (NoticeChannel::Sms, NoticeStatus::Queued) => "SMS en cours d'envoi".into(),
        (NoticeChannel::Email, NoticeStatus::Queued) => "E-mail en cours d'envoi".into(),
        (_, NoticeStatus::Sent | NoticeStatus::Delivered) => n.channel.label_fr().to_string(),
    }
}

/// One message to the person about the appointment, as a page lists it.
pub struct Told {
    /// "Rendez-vous fixé", "Rappel du rendez-vous"…
    pub what: &'static str,
    /// "Prévenue par SMS"…
    pub how: String,
    /// When it went, or is to go.
    pub at: String,
    /// The person may not know: someone must tell them.
    pub failed: bool,
    /// Waiting for its time (a reminder): it says nothing yet of how the person was told.
    pub upcoming: bool,
}

/// An appointment as pages say it.
pub struct AppointmentWords {
    /// `mardi 10 décembre à 9 h 30`.
    pub when: String,
    /// `1 h`.
    pub duration: String,
    pub place: Option<String>,
    /// Its time has come.
    pub past: bool,
    pub attended: Option<bool>,
    /// How the person was told: the latest message first.
    pub told: Vec<Told>,
    /// The latest message that went (or failed), not one waiting for its time.
    summary: Option<usize>,
}

impl AppointmentWords {
    pub fn new(a: &AppointmentView, now: DateTime<Utc>) -> Self {
        let mut notices: Vec<&NoticeView> = a.notice.iter().collect();
        notices.sort_by_key(|n| std::cmp::Reverse(n.at));
        let upcoming = |n: &NoticeView| n.status == NoticeStatus::Queued && n.at > now;
        AppointmentWords {
            summary: notices.iter().position(|n| !upcoming(n)),
            when: when_words(a.at),
            duration: duration_words(a.duration_minutes),
            place: a.place.clone(),
            past: a.at <= now,
            attended: a.attended,
            told: notices
                .into_iter()
                .map(|n| Told {
                    what: n.kind.label_fr(),
                    how: told_words(n),
                    at: paris(&n.at),
                    failed: n.status == NoticeStatus::Failed,
                    upcoming: upcoming(n),
                })
                .collect(),
        }
    }

    /// How the person was told, in a few words: the latest message's that went.
    pub fn told_summary(&self) -> Option<&str> {
        self.summary.map(|i| self.told[i].how.as_str())
    }

    /// That message did not reach the person: someone must tell them.
    pub fn told_failed(&self) -> bool {
        self.summary.is_some_and(|i| self.told[i].failed)
    }

    /// Several messages: worth listing them.
    pub fn told_several(&self) -> bool {
        self.told.len() > 1
    }
}

/// The detail of an appointment's step of the timeline (its `reason`): moved, or
/// whether the person came. None for a first appointment, a cancellation, or anything else.
pub fn step_words(reason: Option<&str>) -> Option<&'static str> {
    match reason? {
        "changed" => Some("déplacé"),
        "attended" => Some("la personne est venue"),
        "no_show" => Some("la personne n'est pas venue"),
        _ => None,
    }
}

/// The appointment block of the follow-up: the appointment set, if any, what can be done
/// with it, and the form that sets or moves it.
pub struct AppointmentBlock {
    pub set: Option<AppointmentWords>,
    /// Cancelling: an appointment still to come.
    pub cancellable: bool,
    /// "La personne est venue" / "… n'est pas venue": its time has come, not yet said.
    pub ask_attendance: bool,
    /// The person did not come: a new appointment, or closing with "Absent au rendez-vous".
    pub no_show: bool,
    pub form: Typed,
    /// Today in Paris, the date input's `min`.
    pub today: String,
}

impl AppointmentBlock {
    /// `appointment`: the API's (`None` when none is set).
    pub fn new(appointment: Option<&AppointmentView>, now: DateTime<Utc>) -> Self {
        let set = appointment.map(|a| AppointmentWords::new(a, now));
        let upcoming = set.as_ref().is_some_and(|s| !s.past && s.attended.is_none());
        AppointmentBlock {
            cancellable: upcoming,
            ask_attendance: set.as_ref().is_some_and(|s| s.past && s.attended.is_none()),
            no_show: set.as_ref().is_some_and(|s| s.attended == Some(false)),
            // The form moves the appointment still to come; after it, a new one starts blank.
            form: appointment.filter(|_| upcoming).map(Typed::of).unwrap_or_default(),
            set,
            today: contracts::week::paris_local(now).date().format("%Y-%m-%d").to_string(),
        }
    }

    pub fn durations(&self) -> &'static [(u32, &'static str)] {
        &DURATIONS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::AppointmentNotice;

    fn form(date: &str, time: &str, duration: &str, place: &str) -> AppointmentForm {
        AppointmentForm {
            date: Some(date.into()),
            time: Some(time.into()),
            duration: Some(duration.into()),
            place: Some(place.into()),
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-12-07T14:00:00Z".parse().unwrap()
    }

    #[test]
    fn paris_wall_time_goes_with_its_winter_or_summer_offset() {
        let body = form("2026-12-10", "09:30", "60", " Salle 2 ").request(now()).unwrap();
        assert_eq!(body.at.to_rfc3339(), "2026-12-10T09:30:00+01:00");
        assert_eq!((body.duration_minutes, body.place.as_deref()), (60, Some("Salle 2")));
        let body = form("2027-07-06", "14:00", "90", "").request(now()).unwrap();
        assert_eq!(body.at.to_rfc3339(), "2027-07-06T14:00:00+02:00");
        assert_eq!((body.duration_minutes, body.place), (90, None));
    }

    #[test]
    fn the_clock_changes_skip_an_hour_in_spring_and_pass_one_twice_in_autumn() {
        let typed = form("2027-03-28", "02:30", "60", "").request(now()).unwrap_err();
        assert!(typed.error(TIME).unwrap().contains("heure d'été"), "{typed:?}");
        let body = form("2027-10-31", "02:30", "60", "").request(now()).unwrap();
        assert_eq!(body.at.to_rfc3339(), "2027-10-31T02:30:00+02:00", "the first of the two");
    }

    #[test]
    fn each_wrong_field_is_said_beside_it_and_what_was_typed_is_kept() {
        let typed = form("2026-12-07", "14:30", "60", "Salle 2").request(now()).unwrap_err();
        assert_eq!(typed.error(DATE), Some("Ce moment est passé : choisissez une date et une heure à venir."));
        assert_eq!(
            (typed.date.as_str(), typed.time.as_str(), typed.place.as_str()),
            ("2026-12-07", "14:30", "Salle 2")
        );
        assert!(form("2026-12-07", "15:30", "60", "").request(now()).is_ok(), "later today in Paris");

        let typed = form("", "9h", "61", &"x".repeat(201)).request(now()).unwrap_err();
        assert_eq!(typed.error(DATE), Some("Indiquez la date du rendez-vous."));
        assert_eq!(typed.error(TIME), Some("Indiquez une heure au format hh:mm, par exemple 09:30."));
        assert_eq!(typed.error(DURATION), Some("Choisissez une durée de la liste."));
        assert_eq!(typed.error(PLACE), Some("Indiquez un lieu de 200 caractères au plus."));
        assert_eq!(typed.summary().iter().map(|e| e.0).collect::<Vec<_>>(), [DATE, TIME, DURATION, PLACE]);

        let typed = form("10/12/2026", "", "60", "").request(now()).unwrap_err();
        assert_eq!(typed.error(DATE), Some("Indiquez une date au format jj/mm/aaaa."));
        assert_eq!(typed.error(TIME), Some("Indiquez l'heure du rendez-vous."));
    }

    #[test]
    fn the_api_s_refusals_go_beside_the_fields_they_name() {
        let errors = |fields: &[&str]| -> Vec<FieldError> {
            fields.iter().map(|f| FieldError { field: (*f).into(), message: "no".into() }).collect()
        };
        let typed = Typed::default().with_api_errors(&errors(&["at", "place"]));
        assert_eq!(typed.error(DATE), Some("Choisissez une date et une heure à venir."));
        assert!(typed.error(PLACE).is_some());
        let typed = Typed::default().with_api_errors(&errors(&["something_else"]));
        assert!(typed.error(DATE).is_some(), "never a refusal with nothing said");
    }

    #[test]
    fn lengths_and_days_are_in_words() {
        let words: Vec<String> = DURATIONS.iter().map(|(m, _)| duration_words(*m)).collect();
        assert_eq!(words, DURATIONS.iter().map(|(_, w)| w.to_string()).collect::<Vec<_>>());
        assert_eq!(when_words("2026-12-10T08:30:00Z".parse().unwrap()), "jeudi 10 décembre à 9 h 30");
        assert_eq!(when_words("2027-07-01T12:00:00Z".parse().unwrap()), "jeudi 1er juillet à 14 h");
    }

    fn notice(channel: NoticeChannel, status: NoticeStatus, at: &str) -> NoticeView {
        NoticeView { channel, kind: AppointmentNotice::Set, status, at: at.parse().unwrap() }
    }

    #[test]
    fn how_the_person_was_told_is_said_as_ui_md_words_it() {
        use NoticeChannel::*;
        use NoticeStatus::*;
        for (channel, status, words) in [
            (Sms, Sent, "Prévenue par SMS"),
            (Sms, Delivered, "Prévenue par SMS"),
            (Sms, Failed, "SMS non distribué"),
            (Sms, Queued, "SMS en cours d'envoi"),
            (Email, Sent, "Prévenue par e-mail"),
            (Email, Failed, "E-mail non distribué"),
            (Referrer, Queued, "À prévenir par le prescripteur"),
            (Referrer, Sent, "À prévenir par le prescripteur"),
        ] {
            assert_eq!(told_words(&notice(channel, status, "2026-12-07T10:00:00Z")), words);
        }
    }

    fn appointment(at: &str, attended: Option<bool>) -> AppointmentView {
        AppointmentView {
            at: at.parse().unwrap(),
            duration_minutes: 45,
            place: Some("Salle 2".into()),
            attended,
            notice: vec![
                notice(NoticeChannel::Sms, NoticeStatus::Sent, "2026-12-07T10:00:00Z"),
                notice(NoticeChannel::Sms, NoticeStatus::Failed, "2026-12-07T11:00:00Z"),
            ],
        }
    }

    #[test]
    fn the_block_moves_a_coming_appointment_asks_after_a_past_one_and_offers_a_new_one_after_a_no_show() {
        let none = AppointmentBlock::new(None, now());
        assert!(none.set.is_none() && !none.cancellable && !none.ask_attendance);
        assert_eq!((none.form.duration, none.today.as_str()), (60, "2026-12-07"));

        let coming = AppointmentBlock::new(Some(&appointment("2026-12-10T08:30:00Z", None)), now());
        assert!(coming.cancellable && !coming.ask_attendance && !coming.no_show);
        assert_eq!((coming.form.date.as_str(), coming.form.time.as_str()), ("2026-12-10", "09:30"));
        assert_eq!((coming.form.duration, coming.form.place.as_str()), (45, "Salle 2"));
        let set = coming.set.unwrap();
        assert_eq!(set.told_summary(), Some("SMS non distribué"), "the latest message");
        assert!(set.told_failed() && set.told_several());

        let past = AppointmentBlock::new(Some(&appointment("2026-12-07T08:30:00Z", None)), now());
        assert!(!past.cancellable && past.ask_attendance && !past.no_show);
        assert_eq!(past.form, Typed::default(), "a new appointment starts blank");

        let missed = AppointmentBlock::new(Some(&appointment("2026-12-07T08:30:00Z", Some(false))), now());
        assert!(!missed.ask_attendance && missed.no_show && !missed.cancellable);
    }

    #[test]
    fn a_reminder_waiting_for_its_time_says_nothing_yet_of_how_the_person_was_told() {
        let mut a = appointment("2026-12-10T08:30:00Z", None);
        a.notice = vec![
            notice(NoticeChannel::Sms, NoticeStatus::Failed, "2026-12-07T10:00:00Z"),
            NoticeView {
                kind: AppointmentNotice::Reminder,
                ..notice(NoticeChannel::Sms, NoticeStatus::Queued, "2026-12-08T08:30:00Z")
            },
        ];
        let words = AppointmentWords::new(&a, now());
        assert!(words.told[0].upcoming && !words.told[1].upcoming, "the reminder, latest, is to come");
        assert_eq!(words.told_summary(), Some("SMS non distribué"));
        assert!(words.told_failed());
        a.notice.truncate(0);
        let none = AppointmentWords::new(&a, now());
        assert_eq!((none.told_summary(), none.told_failed(), none.told_several()), (None, false, false));
    }

    #[test]
    fn the_steps_of_an_appointment_say_what_happened() {
        assert_eq!(step_words(Some("changed")), Some("déplacé"));
        assert_eq!(step_words(Some("no_show")), Some("la personne n'est pas venue"));
        assert_eq!((step_words(Some("set")), step_words(None)), (None, None));
    }

    #[test]
    fn attendance_is_one_of_the_two_buttons() {
        let said = |v: &str| AttendanceForm { attended: Some(v.into()) }.attended();
        assert_eq!((said("oui"), said("non"), said("peut-être")), (Some(true), Some(false), None));
    }
}
