//! The SMS that tells the person of an appointment: plain French, one SMS.
//!
//! It says when (the day and time in words, Europe/Paris: "mardi 10 décembre à 9 h 30")
//! and where (the place's name, the room, the street, the commune) and gives the place's
//! phone ("05 45 00 00 00"). It is made from the appointment and the directory's record
//! only: nothing here takes the person's name, need or note, so no SMS can say them.
//!
//! ```text
//! (as sent: ê, ç and the like are already transliterated)
//! set        Bonjour, votre RDV aide numérique : mardi 10 décembre à 9 h 30, Médiathèque Alpha, Salle 2, 3 rue X, Angouleme. Tél 05 45 00 00 00
//! changed    Bonjour, votre RDV aide numérique change : mardi 10 décembre à 9 h 30, …
//! reminder   Bonjour, rappel de votre RDV aide numérique : mardi 10 décembre à 9 h 30, …
//! cancelled  Bonjour, votre RDV aide numérique du mardi 10 décembre à 9 h 30 est annulé. Médiathèque Alpha, Angouleme. Tél 05 45 00 00 00
//! ```
//!
//! The text is transliterated into GSM 03.38 ([`contracts::gsm`]: `août` → `aout`,
//! `Saint-Léger` stays, `Rue de l’Église` → `Rue de l'Église`) and must fit one SMS: 160
//! septets. While it does not, it is shortened by the first of these levels that makes it
//! fit, each adding a step to the ones before; every level starts again from the whole
//! fields and cuts only as far as needed, the name first, then the street, then the
//! commune:
//!
//! 1. the greeting goes ("Bonjour, votre RDV aide numérique :" → "RDV aide numérique",
//!    "Rappel : RDV aide numérique", "RDV aide numérique modifié :", "RDV aide numérique du
//!    … annulé.");
//! 2. street types are abbreviated: rue → r., avenue → av., boulevard → bd, place → pl.,
//!    allée → all., chemin → ch., route → rte, impasse → imp., square → sq., faubourg →
//!    fg, résidence → rés., lotissement → lot.;
//! 3. the place's name is cut, ending with "...", to no less than 30 septets;
//! 4. the room goes (so a name cut at 3 gets back what then fits);
//! 5. the street, then the commune, are cut to no less than 20 septets;
//! 6. the name is cut to no less than 12 septets;
//! 7. the street goes, then the commune;
//! 8. the name is cut as far as needed.
//!
//! The day, the time and the phone never go: with them alone the text is under 100
//! septets. A phone is a number the directory holds in E.164 (shown as it is dialled in
//! France), or a short number (`3631`); anything else in that field (a note) is left out.

use chrono::{DateTime, Utc};
use contracts::gsm::{self, SINGLE_SMS_SEPTETS};
use contracts::phone::PhoneNumber;

/// Why the person is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SmsKind {
    /// An appointment was set.
    Set,
    /// It moved (another time, room or length).
    Changed,
    Cancelled,
    /// Before it (`AIGUILLAGE_APPOINTMENT_REMINDER_BEFORE`).
    Reminder,
}

/// The place, as the directory has it.
#[derive(Debug, Clone, Copy, Default)]
pub struct SmsPlace<'a> {
    pub name: &'a str,
    pub street: Option<&'a str>,
    pub commune: Option<&'a str>,
    /// The directory's phone field: E.164 when it was a valid number.
    pub phone: Option<&'a str>,
}

/// The SMS for an appointment at `at` in `place`, in `room` (the appointment's optional
/// room or place, "Salle 2"): GSM 03.38 text of at most 160 septets.
pub fn appointment_sms(kind: SmsKind, at: DateTime<Utc>, place: &SmsPlace<'_>, room: Option<&str>) -> String {
    let (street, commune) = street_and_commune(place.street, place.commune);
    let full = Draft {
        kind,
        greeting: true,
        when: clean(&when_words(at)),
        name: clean(place.name),
        room: room.map(clean).unwrap_or_default(),
        street,
        commune,
        phone: place.phone.and_then(phone_words).unwrap_or_default(),
    };
    LEVELS.iter().find_map(|level| level.attempt(&full)).unwrap_or_else(|| {
        // Unreachable with a phone of at most 20 septets (see `phone_words`): the day,
        // the time and the phone alone are under 100. Still, never more than one SMS.
        let mut bare = Draft { phone: String::new(), ..full };
        bare.greeting = false;
        bare.name.clear();
        bare.room.clear();
        bare.street.clear();
        bare.commune.clear();
        bare.render()
    })
}

/// The day and time in words, in Paris: `mardi 10 décembre à 9 h 30`, `mardi 1er
/// juillet à 14 h`.
pub fn when_words(at: DateTime<Utc>) -> String {
    contracts::explain::date_time_fr(contracts::week::paris_local(at))
}

/// A phone as it is dialled in France: `05 45 00 00 00`, `06 92 12 34 56` (La Réunion);
/// another country's in E.164; a short number (`3631`) as written; `None` for anything
/// else (a note such as "voir site"). At most 20 characters.
pub fn phone_words(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if let Ok(number) = PhoneNumber::parse(raw) {
        let e164 = number.as_str();
        // France and its overseas départements: a 0 and nine digits, in pairs.
        for code in ["+33", "+262", "+590", "+594", "+596"] {
            if let Some(national) = e164.strip_prefix(code).filter(|n| n.len() == 9) {
                let digits: Vec<char> = format!("0{national}").chars().collect();
                return Some(digits.chunks(2).map(|p| p.iter().collect::<String>()).collect::<Vec<_>>().join(" "));
            }
        }
        return Some(e164.to_string());
    }
    let short = raw.len() <= 20
        && raw.chars().any(|c| c.is_ascii_digit())
        && raw.chars().all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '.' | '-'));
    short.then(|| raw.to_string())
}

/// The text being shortened: every field already GSM-7 and tidy.
struct Draft {
    kind: SmsKind,
    greeting: bool,
    when: String,
    name: String,
    room: String,
    street: String,
    commune: String,
    phone: String,
}

impl Draft {
    fn render(&self) -> String {
        let place: Vec<&str> = match self.kind {
            // A cancelled appointment needs no directions: which place, and its phone.
            SmsKind::Cancelled => vec![&self.name, &self.commune],
            _ => vec![&self.name, &self.room, &self.street, &self.commune],
        };
        let place = place.into_iter().filter(|p| !p.is_empty()).collect::<Vec<_>>().join(", ");
        let when = &self.when;
        let mut text = match (self.kind, self.greeting) {
            (SmsKind::Set, true) => format!("Bonjour, votre RDV aide numérique : {when}"),
            (SmsKind::Set, false) => format!("RDV aide numérique {when}"),
            (SmsKind::Changed, true) => format!("Bonjour, votre RDV aide numérique change : {when}"),
            (SmsKind::Changed, false) => format!("RDV aide numérique modifié : {when}"),
            (SmsKind::Reminder, true) => format!("Bonjour, rappel de votre RDV aide numérique : {when}"),
            (SmsKind::Reminder, false) => format!("Rappel : RDV aide numérique {when}"),
            (SmsKind::Cancelled, true) => format!("Bonjour, votre RDV aide numérique du {when} est annulé."),
            (SmsKind::Cancelled, false) => format!("RDV aide numérique du {when} annulé."),
        };
        match (self.kind, place.is_empty()) {
            (_, true) => {}
            (SmsKind::Cancelled, false) => text.push_str(&format!(" {place}")),
            (_, false) => text.push_str(&format!(", {place}")),
        }
        // A field cut last already ends with "...".
        if !text.ends_with('.') {
            text.push('.');
        }
        if !self.phone.is_empty() {
            text.push_str(" Tél ");
            text.push_str(&self.phone);
        }
        gsm::transliterate(&text)
    }
}

/// Septets over one SMS, or `None` when the text fits.
fn overflow(text: &str) -> Option<usize> {
    let n = gsm::septets(text).unwrap_or(usize::MAX);
    (n > SINGLE_SMS_SEPTETS).then(|| n - SINGLE_SMS_SEPTETS)
}

/// How far a message is shortened: each level adds one step of the module's list to
/// the previous ones. A field is kept whole (`WHOLE`), cut to no less than a floor, or
/// left out (`None`).
struct Level {
    greeting: bool,
    abbreviate: bool,
    room: bool,
    name: Option<usize>,
    street: Option<usize>,
    commune: Option<usize>,
}

const WHOLE: Option<usize> = Some(usize::MAX);

/// One of the fields a level cuts.
type FieldOf = fn(&mut Draft) -> &mut String;

const LEVELS: [Level; 12] = [
    Level { greeting: true, abbreviate: false, room: true, name: WHOLE, street: WHOLE, commune: WHOLE },
    // 1. The greeting goes.
    Level { greeting: false, abbreviate: false, room: true, name: WHOLE, street: WHOLE, commune: WHOLE },
    // 2. Street types are abbreviated.
    Level { greeting: false, abbreviate: true, room: true, name: WHOLE, street: WHOLE, commune: WHOLE },
    // 3. The name is cut, to 30 septets at least.
    Level { greeting: false, abbreviate: true, room: true, name: Some(30), street: WHOLE, commune: WHOLE },
    // 4. The room goes (and the name is as long as then fits, 30 at least).
    Level { greeting: false, abbreviate: true, room: false, name: Some(30), street: WHOLE, commune: WHOLE },
    // 5. The street, then the commune, are cut to 20 at least.
    Level { greeting: false, abbreviate: true, room: false, name: Some(30), street: Some(20), commune: Some(20) },
    // 6. The name is cut to 12 at least.
    Level { greeting: false, abbreviate: true, room: false, name: Some(12), street: Some(20), commune: Some(20) },
    // 7. The street goes, then the commune.
    Level { greeting: false, abbreviate: true, room: false, name: Some(12), street: None, commune: Some(20) },
    Level { greeting: false, abbreviate: true, room: false, name: Some(12), street: None, commune: Some(12) },
    Level { greeting: false, abbreviate: true, room: false, name: Some(12), street: None, commune: None },
    // 8. The name is cut as far as needed.
    Level { greeting: false, abbreviate: true, room: false, name: Some(4), street: None, commune: None },
    Level { greeting: false, abbreviate: true, room: false, name: None, street: None, commune: None },
];

impl Level {
    /// The message at this level, from the whole fields: the name first, then the
    /// street, then the commune are cut only as far as needed, and never below their
    /// floors; `None` when it still does not fit.
    fn attempt(&self, full: &Draft) -> Option<String> {
        let keep = |text: &str, floor: Option<usize>| if floor.is_some() { text.to_string() } else { String::new() };
        let street = if self.abbreviate { abbreviate_street(&full.street) } else { full.street.clone() };
        let mut draft = Draft {
            kind: full.kind,
            greeting: self.greeting,
            when: full.when.clone(),
            name: keep(&full.name, self.name),
            room: if self.room { full.room.clone() } else { String::new() },
            street: keep(&street, self.street),
            commune: keep(&full.commune, self.commune),
            phone: full.phone.clone(),
        };
        let cuts: [(FieldOf, Option<usize>); 3] =
            [(|d| &mut d.name, self.name), (|d| &mut d.street, self.street), (|d| &mut d.commune, self.commune)];
        for (field, floor) in cuts {
            let text = draft.render();
            let Some(over) = overflow(&text) else { return Some(text) };
            if let Some(floor) = floor.filter(|f| *f != usize::MAX) {
                let cut_to = cut(field(&mut draft), over, floor);
                *field(&mut draft) = cut_to;
            }
        }
        let text = draft.render();
        overflow(&text).is_none().then_some(text)
    }
}

/// `text` shortened by `over` septets, ending with "...", but to no less than `floor`
/// septets (a text already that short is left as it is).
fn cut(text: &str, over: usize, floor: usize) -> String {
    let len = gsm::septets(text).unwrap_or(0);
    if len <= floor {
        return text.to_string();
    }
    let target = len.saturating_sub(over).max(floor);
    if target >= len {
        return text.to_string();
    }
    let keep = target.saturating_sub(3);
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let n = gsm::char_septets(c).unwrap_or(1);
        if used + n > keep {
            break;
        }
        used += n;
        out.push(c);
    }
    let out =
        out.trim_end_matches(|c: char| c.is_whitespace() || matches!(c, ',' | '-' | '(' | '\'' | '.' | ';' | ':'));
    if out.is_empty() { String::new() } else { format!("{out}...") }
}

/// Street types and their abbreviations (La Poste's usage), compared without accents
/// or case.
const STREET_TYPES: [(&str, &str); 12] = [
    ("rue", "r."),
    ("avenue", "av."),
    ("boulevard", "bd"),
    ("place", "pl."),
    ("allee", "all."),
    ("chemin", "ch."),
    ("route", "rte"),
    ("impasse", "imp."),
    ("square", "sq."),
    ("faubourg", "fg"),
    ("residence", "rés."),
    ("lotissement", "lot."),
];

fn abbreviate_street(street: &str) -> String {
    street
        .split(' ')
        .map(|word| {
            let bare = word.trim_end_matches([',', ';', ':']);
            let folded: String = bare.chars().map(fold_char).collect();
            match STREET_TYPES.iter().find(|(long, _)| *long == folded) {
                Some((_, short)) => format!("{short}{}", &word[bare.len()..]),
                None => word.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The street without a trailing "postcode commune" (or "- commune") that repeats the
/// commune, and the commune in capitals and small letters when it was all capitals.
fn street_and_commune(street: Option<&str>, commune: Option<&str>) -> (String, String) {
    let mut street = street.map(clean).unwrap_or_default();
    let commune = commune.map(clean).unwrap_or_default();
    if !commune.is_empty() {
        let s: Vec<char> = street.chars().map(fold_char).collect();
        let c: Vec<char> = commune.chars().map(fold_char).collect();
        if s.len() > c.len() && s.ends_with(&c) {
            let rest: String = street.chars().take(s.len() - c.len()).collect();
            let rest = rest.trim_end();
            let before_postcode = rest.trim_end_matches(|ch: char| ch.is_ascii_digit());
            let postcode = rest.len() - before_postcode.len() == 5;
            let separator = rest.ends_with([',', '-']);
            if postcode || separator {
                let rest = if postcode { before_postcode } else { rest };
                street = rest.trim_end_matches(|ch: char| ch.is_whitespace() || matches!(ch, ',' | '-')).to_string();
            }
        }
    }
    (street, title_case(&commune))
}

/// `LA ROCHEFOUCAULD-EN-ANGOUMOIS` → `La Rochefoucauld-en-Angoumois`; a name with small
/// letters is left as written.
fn title_case(name: &str) -> String {
    if name.chars().any(char::is_lowercase) || !name.chars().any(char::is_alphabetic) {
        return name.to_string();
    }
    const SMALL: [&str; 14] = ["le", "la", "les", "l", "de", "du", "des", "d", "en", "sur", "sous", "et", "lès", "aux"];
    let lower = name.to_lowercase();
    let mut out = String::with_capacity(lower.len());
    let mut word = String::new();
    let mut first = true;
    let flush = |word: &mut String, out: &mut String, first: &mut bool| {
        if !word.is_empty() {
            if *first || !SMALL.contains(&word.as_str()) {
                let mut chars = word.chars();
                if let Some(c) = chars.next() {
                    out.extend(c.to_uppercase());
                    out.push_str(chars.as_str());
                }
            } else {
                out.push_str(word);
            }
            *first = false;
            word.clear();
        }
    };
    for c in lower.chars() {
        if c.is_alphabetic() {
            word.push(c);
        } else {
            flush(&mut word, &mut out, &mut first);
            out.push(c);
        }
    }
    flush(&mut word, &mut out, &mut first);
    gsm::transliterate(&out)
}

/// GSM-7, one space between words, no separator left at either end.
fn clean(text: &str) -> String {
    let text = gsm::transliterate(text);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    text.trim_matches(|c: char| c.is_whitespace() || matches!(c, ',' | ';')).to_string()
}

/// A character without accent or case, one for one, to compare names.
fn fold_char(c: char) -> char {
    let c = c.to_lowercase().next().unwrap_or(c);
    match c {
        'é' | 'è' | 'ê' | 'ë' => 'e',
        'à' | 'â' | 'ä' | 'å' => 'a',
        'ù' | 'û' | 'ü' => 'u',
        'ì' | 'î' | 'ï' => 'i',
        'ò' | 'ô' | 'ö' | 'ø' => 'o',
        'ç' => 'c',
        'ñ' => 'n',
        '-' | '\'' => ' ',
        c => c,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use contracts::gsm::{fits_one_sms, is_gsm7, septets};
    use proptest::prelude::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// Tuesday 10 December 2030, 9:30 in Paris (UTC+1).
    fn tuesday() -> DateTime<Utc> {
        utc("2030-12-10T08:30:00Z")
    }

    const ALPHA: SmsPlace<'static> = SmsPlace {
        name: "Médiathèque Alpha",
        street: Some("3 rue X"),
        commune: Some("Angoulême"),
        phone: Some("+33545000000"),
    };

    #[test]
    fn the_four_messages_in_full() {
        let at = tuesday();
        assert_eq!(
            appointment_sms(SmsKind::Set, at, &ALPHA, Some("Salle 2")),
            "Bonjour, votre RDV aide numérique : mardi 10 décembre à 9 h 30, Médiathèque Alpha, Salle 2, 3 rue X, \
             Angouleme. Tél 05 45 00 00 00"
        );
        assert_eq!(
            appointment_sms(SmsKind::Changed, at, &ALPHA, None),
            "Bonjour, votre RDV aide numérique change : mardi 10 décembre à 9 h 30, Médiathèque Alpha, 3 rue X, \
             Angouleme. Tél 05 45 00 00 00"
        );
        assert_eq!(
            appointment_sms(SmsKind::Reminder, at, &ALPHA, None),
            "Bonjour, rappel de votre RDV aide numérique : mardi 10 décembre à 9 h 30, Médiathèque Alpha, 3 rue X, \
             Angouleme. Tél 05 45 00 00 00"
        );
        assert_eq!(
            appointment_sms(SmsKind::Cancelled, at, &ALPHA, Some("Salle 2")),
            "Bonjour, votre RDV aide numérique du mardi 10 décembre à 9 h 30 est annulé. Médiathèque Alpha, \
             Angouleme. Tél 05 45 00 00 00"
        );
    }

    #[test]
    fn the_day_and_time_are_in_words_in_paris_time() {
        assert_eq!(when_words(tuesday()), "mardi 10 décembre à 9 h 30");
        // Summer time: UTC+2; the first of the month.
        assert_eq!(when_words(utc("2031-07-01T12:00:00Z")), "mardi 1er juillet à 14 h");
        assert_eq!(when_words(utc("2031-08-04T07:05:00Z")), "lundi 4 août à 9 h 05");
        // 23:30 UTC on Saturday is Sunday in Paris.
        assert_eq!(when_words(utc("2031-03-01T23:30:00Z")), "dimanche 2 mars à 0 h 30");
        let sms = appointment_sms(SmsKind::Set, utc("2031-08-04T07:05:00Z"), &ALPHA, None);
        assert!(sms.contains("lundi 4 aout à 9 h 05"), "{sms}");
    }

    #[test]
    fn phones_as_they_are_dialled() {
        assert_eq!(phone_words("+33545000000").as_deref(), Some("05 45 00 00 00"));
        assert_eq!(phone_words("05 45 00 00 00").as_deref(), Some("05 45 00 00 00"));
        assert_eq!(phone_words("+262692123456").as_deref(), Some("06 92 12 34 56"));
        assert_eq!(phone_words("+590590201234").as_deref(), Some("05 90 20 12 34"));
        assert_eq!(phone_words("+442079460958").as_deref(), Some("+442079460958"));
        assert_eq!(phone_words("3631").as_deref(), Some("3631"));
        assert_eq!(phone_words("voir site"), None);
        assert_eq!(phone_words("appeler la mairie au standard puis taper 2"), None);
        let none = SmsPlace { phone: Some("voir site"), ..ALPHA };
        let sms = appointment_sms(SmsKind::Set, tuesday(), &none, None);
        assert!(sms.ends_with("Angouleme."), "{sms}");
        assert!(!sms.contains("Tél"));
    }

    #[test]
    fn a_commune_the_street_repeats_is_said_once_and_capitals_are_tidied() {
        for (street, commune, expected) in [
            (
                "17 Rue du Petit Mairat 16320 Villebois-Lavalette",
                "Villebois-Lavalette",
                "17 Rue du Petit Mairat, Villebois-Lavalette",
            ),
            ("3 Avenue Henri Dunant 16190 Montmoreau", "Montmoreau", "3 Avenue Henri Dunant, Montmoreau"),
            (
                "Pôle Multiservices 4B - 6 Route de Montmoreau - Blanzac Porcheresse",
                "BLANZAC PORCHERESSE",
                "Pole Multiservices 4B - 6 Route de Montmoreau, Blanzac Porcheresse",
            ),
            // The street named after its own town keeps its name.
            ("12 avenue de Cognac", "Cognac", "12 avenue de Cognac, Cognac"),
            (
                "1 Avenue de la Gare",
                "LA ROCHEFOUCAULD-EN-ANGOUMOIS",
                "1 Avenue de la Gare, La Rochefoucauld-en-Angoumois",
            ),
            ("allée des justes de France", "CHÂTEAUBERNARD", "allée des justes de France, Chateaubernard"),
            ("Le Bourg", "SAINT-LÉGER-SUR-CHARENTE", "Le Bourg, Saint-Léger-sur-Charente"),
        ] {
            let place = SmsPlace { name: "Lieu", street: Some(street), commune: Some(commune), phone: None };
            let sms = appointment_sms(SmsKind::Set, tuesday(), &place, None);
            assert!(sms.ends_with(&format!("Lieu, {expected}.")), "{sms}");
        }
    }

    #[test]
    fn street_types_are_abbreviated_as_whole_words() {
        assert_eq!(abbreviate_street("12 RUE de la Place, Résidence Les Pins"), "12 r. de la pl., rés. Les Pins");
        assert_eq!(abbreviate_street("4 Allée des Freniers"), "4 all. des Freniers");
        assert_eq!(abbreviate_street("5 boulevard Méaudre d'Assit"), "5 bd Méaudre d'Assit");
        assert_eq!(abbreviate_street("Rueil Avenues"), "Rueil Avenues");
    }

    #[test]
    fn cutting_ends_with_dots_and_respects_the_floor() {
        assert_eq!(cut("Médiathèque municipale", 5, 12), "Médiathèque mu...");
        assert_eq!(cut("Médiathèque municipale", 50, 12), "Médiathèq...");
        assert_eq!(cut("Mairie", 50, 12), "Mairie");
        // An escape and its character are never split: the cut stops short of a euro.
        assert_eq!(cut("[{}] €€€€ abc", 4, 4), "[{}] €€...");
        assert_eq!(cut("a[{}] €€€€ abc", 20, 4), "a...");
        assert_eq!(cut("[{}] €€€€ abc", 20, 4), "", "nothing but dots is nothing");
        assert_eq!(cut("abc", 10, 0), "");
    }

    /// The steps in order: each long field shows which ones ran.
    #[test]
    fn shortening_follows_the_documented_order() {
        let long = |name: &'static str, street: &'static str| SmsPlace {
            name,
            street: Some(street),
            commune: Some("La Rochefoucauld-en-Angoumois"),
            phone: Some("+33545631210"),
        };
        // Just over: only the greeting goes.
        let place = long("Espace France Services", "1 Avenue de la Gare");
        let sms = appointment_sms(SmsKind::Set, tuesday(), &place, Some("Salle 2"));
        assert!(sms.starts_with("RDV aide numérique mardi"), "{sms}");
        assert!(sms.contains("1 Avenue de la Gare"), "{sms}");
        assert!(fits_one_sms(&sms));
        // Longer: the street type is abbreviated, the name cut, the room kept.
        let place = long(
            "Antenne Communauté de Communes La Rochefoucauld Porte du Périgord à l'Espace France Services",
            "1 Avenue de la Gare",
        );
        let sms = appointment_sms(SmsKind::Set, tuesday(), &place, Some("Salle 2"));
        assert!(sms.contains("1 av. de la Gare"), "{sms}");
        assert!(sms.contains("..., Salle 2, "), "{sms}");
        assert!(fits_one_sms(&sms), "{sms}");
        // With a long room too: cutting the name to 30 septets is not enough, so the room
        // goes, and the name gets back what then fits.
        let sms = appointment_sms(SmsKind::Reminder, tuesday(), &place, Some(&"Salle polyvalente ".repeat(10)));
        assert!(
            sms.starts_with(
                "Rappel : RDV aide numérique mardi 10 décembre à 9 h 30, Antenne Communauté de Communes L..., 1 av."
            ),
            "{sms}"
        );
        assert!(!sms.contains("Salle"), "{sms}");
        assert!(sms.ends_with("Tél 05 45 63 12 10"), "{sms}");
        assert!(fits_one_sms(&sms), "{sms}");
    }

    #[test]
    fn nothing_but_the_day_time_and_phone_survives_absurd_input() {
        let huge = "W".repeat(5000);
        let place = SmsPlace { name: &huge, street: Some(&huge), commune: Some(&huge), phone: Some("+33545000000") };
        for kind in [SmsKind::Set, SmsKind::Changed, SmsKind::Cancelled, SmsKind::Reminder] {
            let sms = appointment_sms(kind, tuesday(), &place, Some(&huge));
            assert!(fits_one_sms(&sms), "{sms}");
            assert!(sms.contains("mardi 10 décembre à 9 h 30"), "{sms}");
            assert!(sms.ends_with("Tél 05 45 00 00 00"), "{sms}");
            assert!(sms.contains("WWW..."), "a bit of the name stays: {sms}");
        }
        let empty = SmsPlace::default();
        assert_eq!(
            appointment_sms(SmsKind::Set, tuesday(), &empty, None),
            "Bonjour, votre RDV aide numérique : mardi 10 décembre à 9 h 30."
        );
        assert_eq!(
            appointment_sms(SmsKind::Cancelled, tuesday(), &empty, Some("  ")),
            "Bonjour, votre RDV aide numérique du mardi 10 décembre à 9 h 30 est annulé."
        );
    }

    // The real directory of the demo: its longest names and addresses.
    #[derive(serde::Deserialize)]
    struct Lieu {
        nom: String,
        adresse: Option<String>,
        commune: Option<String>,
        telephone: Option<String>,
    }

    fn directory() -> Vec<Lieu> {
        serde_json::from_str(include_str!("../../../directory/data/charente-16.json")).unwrap()
    }

    /// Every kind, on a Wednesday in September (the longest day and month names) at
    /// 12:30, with a room, for the 20 longest names and the 20 longest addresses: one
    /// SMS each, naming the day, the time and the phone. A place without a phone gets a
    /// stand-in one of the same length, so that every case carries one.
    #[test]
    fn the_longest_real_places_fit_one_sms() {
        let mut lieux = directory();
        let mut cases: Vec<usize> = Vec::new();
        let mut by_name: Vec<usize> = (0..lieux.len()).collect();
        by_name.sort_by_key(|i| std::cmp::Reverse(lieux[*i].nom.chars().count()));
        let mut by_address: Vec<usize> = (0..lieux.len()).collect();
        by_address.sort_by_key(|i| std::cmp::Reverse(lieux[*i].adresse.as_deref().unwrap_or("").chars().count()));
        cases.extend(&by_name[..20]);
        cases.extend(&by_address[..20]);
        // And the worst of both in one record.
        lieux.push(Lieu {
            nom: lieux[by_name[0]].nom.clone(),
            adresse: lieux[by_address[0]].adresse.clone(),
            commune: Some("SAINT-YRIEIX-SUR-CHARENTE".into()),
            telephone: None,
        });
        cases.push(lieux.len() - 1);
        assert!(lieux[by_name[0]].nom.chars().count() >= 90, "the directory still has its longest names");

        let at = utc("2031-09-24T10:30:00Z"); // mercredi 24 septembre à 12 h 30
        let when = "mercredi 24 septembre à 12 h 30";
        for i in cases {
            let lieu = &lieux[i];
            let phone = lieu.telephone.clone().unwrap_or_else(|| "+33545000000".into());
            let place = SmsPlace {
                name: &lieu.nom,
                street: lieu.adresse.as_deref(),
                commune: lieu.commune.as_deref(),
                phone: Some(&phone),
            };
            let dialled = phone_words(&phone).unwrap();
            for kind in [SmsKind::Set, SmsKind::Changed, SmsKind::Cancelled, SmsKind::Reminder] {
                let sms = appointment_sms(kind, at, &place, Some("Salle du conseil, 1er étage"));
                assert!(fits_one_sms(&sms), "{} septets: {sms}", septets(&sms).unwrap_or(0));
                assert!(sms.contains(when), "{sms}");
                assert!(sms.ends_with(&format!("Tél {dialled}")), "{sms}");
                assert!(!sms.contains("...."), "{sms}");
                // Something of the place's name is always there.
                let start: String = gsm::transliterate(&lieu.nom).chars().take(8).collect();
                assert!(sms.contains(start.trim_end()), "{sms}");
            }
        }
    }

    proptest! {
        #[test]
        fn any_place_gives_one_sms_with_the_day_the_time_and_the_phone(
            name in "\\PC{0,300}",
            street in proptest::option::of("\\PC{0,300}"),
            commune in proptest::option::of("\\PC{0,120}"),
            room in proptest::option::of("\\PC{0,200}"),
            phone in proptest::option::of(prop_oneof![
                Just("+33545000000".to_string()),
                Just("+262692123456".to_string()),
                Just("+442079460958".to_string()),
                Just("3631".to_string()),
                "\\PC{0,40}",
            ]),
            kind in prop_oneof![Just(SmsKind::Set), Just(SmsKind::Changed), Just(SmsKind::Cancelled), Just(SmsKind::Reminder)],
            minutes in 0i64..(20 * 365 * 24 * 60),
        ) {
            let at = utc("2026-01-01T00:00:00Z") + chrono::Duration::minutes(minutes);
            let place = SmsPlace { name: &name, street: street.as_deref(), commune: commune.as_deref(), phone: phone.as_deref() };
            let sms = appointment_sms(kind, at, &place, room.as_deref());
            prop_assert!(is_gsm7(&sms));
            prop_assert!(fits_one_sms(&sms), "{} septets: {}", septets(&sms).unwrap_or(0), sms);
            prop_assert!(sms.contains(&gsm::transliterate(&when_words(at))), "{}", sms);
            if let Some(dialled) = phone.as_deref().and_then(phone_words) {
                prop_assert!(sms.ends_with(&format!("Tél {dialled}")), "{}", sms);
            } else {
                prop_assert!(!sms.contains("Tél"), "{}", sms);
            }
        }

        #[test]
        fn french_like_places_give_one_sms(
            name in "[A-Za-zéèêàâîôûçœ' -]{1,120}",
            street in "[0-9]{1,3} (rue|avenue|boulevard|place|allée|chemin) [A-Za-zéèêàç' -]{1,80}",
            commune in "[A-ZÉÈ -]{1,45}",
        ) {
            let place = SmsPlace { name: &name, street: Some(&street), commune: Some(&commune), phone: Some("+33545000000") };
            for kind in [SmsKind::Set, SmsKind::Changed, SmsKind::Cancelled, SmsKind::Reminder] {
                let sms = appointment_sms(kind, tuesday(), &place, Some("Salle 2"));
                prop_assert!(fits_one_sms(&sms), "{}", sms);
                prop_assert!(sms.contains("mardi 10 décembre à 9 h 30"), "{}", sms);
                prop_assert!(sms.ends_with("Tél 05 45 00 00 00"), "{}", sms);
            }
        }
    }
}
