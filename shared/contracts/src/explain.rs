//! Why a structure was chosen for a referral, as codes with their values: the API and
//! events carry them (`reasons`) beside the English sentences (`explanation`), and the
//! pages render them in French. A code never holds personal data.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::{Accessibility, Language, Need};

/// One reason a structure suits a referral.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Reason {
    /// In person, this far, within the referral's radius.
    Distance { km: f64, max_km: f64 },
    /// Remote support (the structure is this far).
    Remote { km: f64 },
    /// Offers every need.
    Covers { needs: Vec<Need> },
    /// Speaks these languages of the person's.
    Speaks { languages: Vec<Language> },
    /// Declares support for other foreign languages.
    OtherLanguages,
    /// Supports every accessibility need.
    Supports { accessibility: Vec<Accessibility> },
    /// Capacity used this week.
    Load { used: u32, capacity: u32 },
    /// The next opening after now, Europe/Paris local time (`2026-12-07T09:30`).
    NextOpening {
        #[serde(with = "local_minute")]
        #[schema(value_type = String, pattern = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$")]
        at: NaiveDateTime,
    },
    /// A coordinator chose it.
    ChosenByCoordinator { km: f64 },
    /// A coordinator chose it beyond its weekly capacity.
    CapacityOverridden,
}

/// A local time to the minute, with no offset: it is Europe/Paris wall-clock time.
mod local_minute {
    use chrono::NaiveDateTime;
    use serde::{Deserialize, Deserializer, Serializer};

    const FORMAT: &str = "%Y-%m-%dT%H:%M";

    pub fn serialize<S: Serializer>(at: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&at.format(FORMAT).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDateTime, D::Error> {
        let text = String::deserialize(d)?;
        NaiveDateTime::parse_from_str(&text, FORMAT).map_err(serde::de::Error::custom)
    }
}

fn km_1(km: f64) -> String {
    format!("{km:.1}")
}

fn km(km: f64) -> String {
    if (km - km.round()).abs() < 1e-9 { format!("{km:.0}") } else { format!("{km:.1}") }
}

/// French decimal comma.
fn km_fr(v: f64) -> String {
    km(v).replace('.', ",")
}

const DAYS_FR: [&str; 7] = ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"];
const MONTHS_FR: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];

/// `novembre 2024`: a month as people read it.
pub fn month_year_fr(date: impl chrono::Datelike) -> String {
    format!("{} {}", MONTHS_FR[date.month0() as usize], date.year())
}

/// `lundi 7 décembre à 9 h 30`, `mardi 1er juillet à 14 h`.
pub fn date_time_fr(at: NaiveDateTime) -> String {
    use chrono::{Datelike, Timelike};
    let day = DAYS_FR[at.weekday().num_days_from_monday() as usize];
    let month = MONTHS_FR[at.month0() as usize];
    let time =
        if at.minute() == 0 { format!("{} h", at.hour()) } else { format!("{} h {:02}", at.hour(), at.minute()) };
    let date = if at.day() == 1 { "1er".to_string() } else { at.day().to_string() };
    format!("{day} {date} {month} à {time}")
}

fn list_fr(items: Vec<&str>) -> String {
    match items.as_slice() {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} et {last}", init.join(", ")),
    }
}

impl Reason {
    /// The English sentence the API has always given (`explanation`).
    pub fn text_en(&self) -> String {
        match self {
            Reason::Distance { km: d, max_km } => format!("{} km away, within {} km", km_1(*d), km(*max_km)),
            Reason::Remote { km: d } => format!("remote support ({} km away)", km_1(*d)),
            Reason::Covers { needs } => {
                format!("covers {}", needs.iter().map(|n| n.slug()).collect::<Vec<_>>().join(", "))
            }
            Reason::Speaks { languages } => {
                format!("speaks {}", languages.iter().map(Language::as_str).collect::<Vec<_>>().join(", "))
            }
            Reason::OtherLanguages => "supports other languages".to_string(),
            Reason::Supports { accessibility } => {
                format!("supports {}", accessibility.iter().map(|a| a.slug()).collect::<Vec<_>>().join(", "))
            }
            Reason::Load { used, capacity } => format!("load this week: {used}/{capacity}"),
            Reason::NextOpening { at } => format!("next opening: {}", at.format("%a %d %b %H:%M")),
            Reason::ChosenByCoordinator { km: d } => format!("chosen by a coordinator ({} km away)", km_1(*d)),
            Reason::CapacityOverridden => "capacity overridden by the coordinator".to_string(),
        }
    }

    /// What people read on the pages.
    pub fn text_fr(&self) -> String {
        match self {
            Reason::Distance { km: d, max_km } => {
                format!("À {} km de la commune de la personne (distance maximale : {} km)", km_fr(*d), km_fr(*max_km))
            }
            Reason::Remote { km: d } => format!("Accompagnement à distance (lieu à {} km)", km_fr(*d)),
            Reason::Covers { needs } => {
                let labels: Vec<&str> = needs.iter().map(|n| n.label_fr()).collect();
                format!("Propose : {}", list_fr(labels))
            }
            Reason::Speaks { languages } => {
                let names: Vec<&str> = languages.iter().map(Language::name_fr).collect();
                format!("Parle {}", list_fr(names))
            }
            Reason::OtherLanguages => "Accueille dans d'autres langues étrangères".to_string(),
            Reason::Supports { accessibility } => {
                let labels: Vec<&str> = accessibility.iter().map(|a| a.label_fr()).collect();
                format!("Accompagne : {}", list_fr(labels).to_lowercase())
            }
            Reason::Load { used, capacity } => {
                let left = capacity.saturating_sub(*used);
                let places = if left == 1 { "place" } else { "places" };
                format!("{left} {places} libre(s) cette semaine sur {capacity}")
            }
            Reason::NextOpening { at } => format!("Prochaine ouverture : {}", date_time_fr(*at)),
            Reason::ChosenByCoordinator { km: d } => format!("Choisi par la coordination (lieu à {} km)", km_fr(*d)),
            Reason::CapacityOverridden => "Capacité de la semaine dépassée à la demande de la coordination".to_string(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reasons_travel_as_codes_and_read_in_french() {
        let r = Reason::Distance { km: 2.43, max_km: 30.0 };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"code": "distance", "km": 2.43, "max_km": 30.0})
        );
        assert_eq!(r.text_en(), "2.4 km away, within 30 km");
        assert_eq!(r.text_fr(), "À 2,4 km de la commune de la personne (distance maximale : 30 km)");
        let needs = Reason::Covers { needs: vec![Need::AideDemarchesAdministratives, Need::UtilisationSecurisee] };
        assert_eq!(
            needs.text_fr(),
            "Propose : Aide aux démarches administratives et Utilisation sécurisée du numérique"
        );
        let speaks = Reason::Speaks { languages: vec![Language::french(), "ar".parse().unwrap()] };
        assert_eq!(speaks.text_fr(), "Parle français et arabe");
        let at = chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap().and_hms_opt(9, 30, 0).unwrap();
        assert_eq!(Reason::NextOpening { at }.text_fr(), "Prochaine ouverture : lundi 7 décembre à 9 h 30");
        let first = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap().and_hms_opt(14, 0, 0).unwrap();
        assert_eq!(date_time_fr(first), "mardi 1er décembre à 14 h");
        assert_eq!(Reason::Load { used: 4, capacity: 5 }.text_fr(), "1 place libre(s) cette semaine sur 5");
        let opening = serde_json::to_value(Reason::NextOpening { at }).unwrap();
        assert_eq!(opening, serde_json::json!({"code": "next_opening", "at": "2026-12-07T09:30"}));
        assert_eq!(serde_json::from_value::<Reason>(opening).unwrap(), Reason::NextOpening { at });
        let back: Reason = serde_json::from_str(r#"{"code":"other_languages"}"#).unwrap();
        assert_eq!(back, Reason::OtherLanguages);
    }
}
