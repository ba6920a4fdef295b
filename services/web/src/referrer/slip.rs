//! `/orientations/{id}/fiche`: the slip the person takes with them, in plain French and
//! large type, on one A4 page or a phone's screen: where to go (the place's name,
//! address, opening hours in words, phone), when (the appointment, or that the place
//! will call), what to bring for their needs, and a short reference.
//!
//! It holds nothing else: no note, no comment, nothing of the person but what they need
//! (not their name, phone or e-mail: the slip may be left on a desk). It is the referrer
//! organisation's and the accepting structure's (its mediators, or its answer link at
//! `/reponse/{token}/fiche`): the API leaves the appointment out for any other caller,
//! and then the slip is not found.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use chrono::Utc;
use contracts::phone::PhoneNumber;
use contracts::referrals::ReferralView;
use contracts::{Need, ReferralId, ReferralStatus};

use super::referral::hours_fr;
use crate::client::Client;
use crate::error::PageError;
use crate::extract::{PathId, SignedIn, SlipHolders};
use crate::mediator::appointment::{duration_words, when_words};
use crate::views::{Chrome, render, short_reference};

/// Something to bring, in the words the person reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Bring {
    Identity,
    Phone,
    Logins,
    Letters,
    BankDetails,
    Resources,
    Cv,
    SchoolLogins,
    Files,
    Questions,
}

impl Bring {
    fn words(self) -> &'static str {
        match self {
            Bring::Identity => "Une pièce d'identité (carte d'identité, passeport ou titre de séjour).",
            Bring::Phone => {
                "Votre téléphone portable, chargé, et son code. Votre ordinateur ou votre tablette si vous en avez un."
            }
            Bring::Logins => {
                "Vos identifiants et mots de passe, si vous les avez : adresse e-mail, numéro de sécurité sociale (carte Vitale), numéro CAF, identifiant France Travail, numéro fiscal."
            }
            Bring::Letters => "Les courriers que vous avez reçus et que vous ne comprenez pas.",
            Bring::BankDetails => "Un relevé d'identité bancaire (RIB), si vous en avez un.",
            Bring::Resources => {
                "Un papier qui montre vos revenus : attestation CAF, avis d'impôt ou attestation France Travail."
            }
            Bring::Cv => "Votre CV, si vous en avez un, sur papier ou sur une clé USB.",
            Bring::SchoolLogins => "Les identifiants de l'espace numérique de l'école de vos enfants (ENT, Pronote).",
            Bring::Files => {
                "Les photos ou fichiers sur lesquels vous voulez travailler, sur votre téléphone ou une clé USB."
            }
            Bring::Questions => "Vos questions. Vous pouvez les écrire sur un papier avant de venir.",
        }
    }
}

/// What the person brings for their needs: each thing once, in one order.
fn to_bring(needs: &[Need]) -> Vec<&'static str> {
    use Bring::*;
    let mut things: Vec<Bring> = needs
        .iter()
        .flat_map(|n| -> &'static [Bring] {
            match n {
                Need::AideDemarchesAdministratives => &[Identity, Phone, Logins, Letters, BankDetails],
                Need::MaitriseOutilsNumeriques => &[Phone, Logins],
                Need::InsertionProfessionnelle => &[Identity, Phone, Logins, Cv],
                Need::UtilisationSecurisee => &[Phone, Logins, Letters],
                Need::ParentaliteEducation => &[Phone, SchoolLogins],
                Need::LoisirsCreations => &[Phone, Files],
                Need::ComprehensionMondeNumerique => &[Phone],
                Need::AccesInternetMateriel => &[Identity, Phone, Resources],
                Need::AcquisitionMaterielSolidaire => &[Identity, Resources],
            }
        })
        .copied()
        .chain([Questions])
        .collect();
    things.sort();
    things.dedup();
    things.into_iter().map(Bring::words).collect()
}

/// A phone as it is dialled in France (`05 45 00 00 00`), and its `tel:` link; another
/// country's in E.164; anything that is not a number, as written, without a link.
fn phone_words(raw: &str) -> (String, Option<String>) {
    match PhoneNumber::parse(raw.trim()) {
        Ok(number) => {
            let e164 = number.as_str().to_string();
            let national = ["+33", "+262", "+590", "+594", "+596"]
                .iter()
                .find_map(|code| e164.strip_prefix(code).filter(|n| n.len() == 9))
                .map(|n| {
                    let digits: Vec<char> = format!("0{n}").chars().collect();
                    digits.chunks(2).map(|p| p.iter().collect::<String>()).collect::<Vec<_>>().join(" ")
                });
            (national.unwrap_or_else(|| e164.clone()), Some(format!("tel:{e164}")))
        }
        Err(_) => (raw.trim().to_string(), None),
    }
}

/// The opening hours, one line per rule, each starting with a capital: the common rules
/// in plain words ("Du lundi au vendredi : de 9 h à 12 h et de 14 h à 17 h 30"), any
/// other as [`hours_fr`] reads it.
fn hours_lines(osm: &str) -> Vec<String> {
    osm.split(';')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|rule| plain_rule(rule).unwrap_or_else(|| hours_fr(rule)))
        .map(|l| capitalised(&l))
        .collect()
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

const DAYS: [(&str, &str); 7] = [
    ("Mo", "lundi"),
    ("Tu", "mardi"),
    ("We", "mercredi"),
    ("Th", "jeudi"),
    ("Fr", "vendredi"),
    ("Sa", "samedi"),
    ("Su", "dimanche"),
];

/// `Mo-Fr 09:00-12:00,14:00-17:30`, `Sa,Su off`, `PH off`, `24/7` in plain words; none
/// for any other rule.
fn plain_rule(rule: &str) -> Option<String> {
    if rule == "24/7" {
        return Some("tous les jours, 24 h sur 24".into());
    }
    let (days, times) = rule.split_once(' ')?;
    let days = if days == "PH" { "les jours fériés".to_string() } else { days_words(days)? };
    let times = times.trim();
    if matches!(times, "off" | "closed") {
        return Some(format!("fermé {days}"));
    }
    let spans = times.split(',').map(span_words).collect::<Option<Vec<_>>>()?;
    Some(format!("{} : {}", capitalised(&days), list_words(&spans)))
}

/// `Mo-Fr` → "du lundi au vendredi"; `Mo,We` → "le lundi et le mercredi".
fn days_words(days: &str) -> Option<String> {
    let day = |d: &str| DAYS.iter().find(|(en, _)| *en == d).map(|(_, fr)| *fr);
    let parts = days
        .split(',')
        .map(|part| match part.split_once('-') {
            Some((from, to)) => Some(format!("du {} au {}", day(from)?, day(to)?)),
            None => Some(format!("le {}", day(part)?)),
        })
        .collect::<Option<Vec<_>>>()?;
    Some(list_words(&parts))
}

/// `09:00-12:30` → "de 9 h à 12 h 30".
fn span_words(span: &str) -> Option<String> {
    let time = |t: &str| -> Option<String> {
        let (h, m) = t.split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h <= 24 && m < 60).then(|| if m == 0 { format!("{h} h") } else { format!("{h} h {m:02}") })
    };
    let (from, to) = span.split_once('-')?;
    Some(format!("de {} à {}", time(from)?, time(to)?))
}

/// "a", "a et b", "a, b et c".
fn list_words(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} et {last}", init.join(", ")),
    }
}

/// When to go, in words.
pub struct When {
    /// `Jeudi 10 décembre à 9 h 30`.
    pub day: String,
    pub duration: String,
    /// A room, or another place than the address.
    pub place: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "fiche.html")]
struct SlipView {
    chrome: Chrome,
    print_js: String,
    name: String,
    address: Option<String>,
    hours: Vec<String>,
    /// (as written, `tel:` link)
    phone: Option<(String, Option<String>)>,
    when: Option<When>,
    bring: Vec<&'static str>,
    reference: String,
    /// Where the agent came from.
    back: String,
}

/// No slip yet, or no longer: no place follows the referral.
fn no_place() -> PageError {
    PageError {
        status: StatusCode::CONFLICT,
        heading: "Pas de fiche pour cette orientation",
        message: "La fiche existe une fois qu'un lieu a accepté l'orientation, jusqu'à la fin de l'accompagnement."
            .into(),
        reference: None,
        back_to_sign_in: false,
    }
}

fn slip_view(r: &ReferralView, place: Option<contracts::directory::StructureView>, back: String) -> SlipView {
    let structure = r.structure.as_ref();
    let now = Utc::now();
    let appointment = r.appointment.as_ref().and_then(Option::as_ref);
    let when = appointment.filter(|a| a.at > now && a.attended.is_none()).map(|a| {
        let day = when_words(a.at);
        let mut c = day.chars();
        When {
            day: c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default(),
            duration: duration_words(a.duration_minutes),
            place: a.place.clone(),
        }
    });
    let address = place.as_ref().map(|p| {
        let a = &p.address;
        let town = [a.postcode.clone(), a.commune.clone()].into_iter().flatten().collect::<Vec<_>>().join(" ");
        [a.street.clone(), Some(town)].into_iter().flatten().filter(|l| !l.trim().is_empty()).collect::<Vec<_>>()
    });
    let phone = structure
        .and_then(|s| s.contact.as_ref())
        .and_then(|c| c.phone.clone())
        .or_else(|| place.as_ref().and_then(|p| p.contact.phone.clone()))
        .filter(|p| !p.trim().is_empty());
    SlipView {
        chrome: Chrome::public("", ""),
        print_js: crate::assets::print_js_href(),
        name: structure.map(|s| s.name.clone()).unwrap_or_default(),
        address: address.filter(|a| !a.is_empty()).map(|a| a.join(", ")),
        hours: place.as_ref().and_then(|p| p.opening_hours.as_deref()).map(hours_lines).unwrap_or_default(),
        phone: phone.as_deref().map(phone_words),
        when,
        bring: to_bring(&r.needs),
        reference: short_reference(r.id),
        back,
    }
}

pub async fn show(holder: SignedIn<SlipHolders>, PathId(id): PathId<ReferralId>) -> Result<Response, PageError> {
    let r = holder.api.referral(id).await?;
    let back = if holder.active.as_ref().is_some_and(|m| m.role == contracts::Role::Mediator) {
        format!("/suivis/{id}")
    } else {
        format!("/orientations/{id}")
    };
    let chrome = holder.chrome(TITLE, "orientations");
    slip_page(&holder.api, &r, back, chrome, true).await
}

const TITLE: &str = "Fiche à remettre à la personne";

/// The slip of `r` as `api` sees it; `back`: the page it came from.
pub async fn slip_page(
    api: &Client,
    r: &ReferralView,
    back: String,
    chrome: Chrome,
    signed_in: bool,
) -> Result<Response, PageError> {
    // The API shows the appointment (set or not) only to those who follow the referral.
    if r.appointment.is_none() {
        return Err(PageError::not_found());
    }
    let followed = matches!(r.status, ReferralStatus::Accepted | ReferralStatus::InProgress);
    let Some(structure) = r.structure.as_ref().filter(|_| followed) else { return Err(no_place()) };
    let place = match api.structure(&structure.id).await {
        Ok(p) => Some(p),
        Err(err) => {
            if err.status() != Some(StatusCode::NOT_FOUND) {
                tracing::warn!(error = %err, "the place of a slip is unavailable");
            }
            None
        }
    };
    let mut view = slip_view(r, place, back);
    view.chrome = chrome;
    let mut response = render(StatusCode::OK, &view, signed_in);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_to_bring_is_said_once_whatever_the_needs() {
        let one = to_bring(&[Need::AideDemarchesAdministratives]);
        assert!(one[0].starts_with("Une pièce d'identité"), "{one:?}");
        assert!(one.iter().any(|t| t.contains("courriers")), "{one:?}");
        let many = to_bring(&[
            Need::AideDemarchesAdministratives,
            Need::InsertionProfessionnelle,
            Need::AccesInternetMateriel,
        ]);
        let mut unique = many.clone();
        unique.dedup();
        assert_eq!(many, unique);
        assert_eq!(many.iter().filter(|t| t.contains("pièce d'identité")).count(), 1);
        assert!(many.iter().any(|t| t.contains("CV")) && many.iter().any(|t| t.contains("revenus")));
        for need in Need::ALL {
            assert!(to_bring(&[*need]).len() >= 2, "{need:?}: something, and the questions");
        }
    }

    #[test]
    fn a_phone_is_written_as_dialled_with_its_link() {
        assert_eq!(phone_words("+33545000000"), ("05 45 00 00 00".into(), Some("tel:+33545000000".into())));
        assert_eq!(phone_words("05.45.00.00.00"), ("05 45 00 00 00".into(), Some("tel:+33545000000".into())));
        assert_eq!(phone_words("voir le site"), ("voir le site".into(), None));
    }

    #[test]
    fn opening_hours_go_one_rule_a_line() {
        assert_eq!(
            hours_lines("Mo-Fr 09:00-12:00,14:00-17:30; Sa 09:00-12:00; PH off"),
            [
                "Du lundi au vendredi : de 9 h à 12 h et de 14 h à 17 h 30",
                "Le samedi : de 9 h à 12 h",
                "Fermé les jours fériés"
            ]
        );
        assert_eq!(
            hours_lines("Mo,We,Fr-Sa 14:00-18:00; Su off; 24/7"),
            [
                "Le lundi, le mercredi et du vendredi au samedi : de 14 h à 18 h",
                "Fermé le dimanche",
                "Tous les jours, 24 h sur 24"
            ]
        );
        // Anything else, as the OSM rule reads word for word.
        assert_eq!(hours_lines("Dec 25 off"), ["Dec : 25 : fermé"]);
        assert_eq!(hours_lines("Mo[1] 10:00-12:00"), ["Mo[1] : 10 h 00 – 12 h 00"]);
        assert!(hours_lines("").is_empty());
    }
}
