//! A new referral, parsed from the request. Personal data sits in [`Personal`], whose
//! `Debug` prints `***`, so no log line can leak it by accident.

use chrono::{DateTime, NaiveDate, Utc};
use contracts::api::ReferralRequest;
use contracts::email::is_email_address;
use contracts::events::{MatchingProfile, Point};
use contracts::phone::PhoneNumber;
use contracts::validate::Errors;
use contracts::{
    Accessibility, CommuneCode, ContactPreference, FieldError, Language, Need, ReferralMode, Territory, Urgency,
};
use geo::Communes;

pub use contracts::Personal;

pub const MAX_NOTE_CHARS: usize = 1000;
pub const MAX_DISTANCE_KM: f64 = 200.0;

#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub first_name: Personal<String>,
    pub last_name: Personal<String>,
    pub phone: Personal<Option<String>>,
    pub email: Personal<Option<String>>,
    pub contact_preference: ContactPreference,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Consent {
    pub method: Option<String>,
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewReferral {
    pub person: Person,
    pub commune_code: CommuneCode,
    pub commune_name: String,
    pub territory: Territory,
    pub location: Point,
    pub languages: Vec<Language>,
    pub accessibility: Vec<Accessibility>,
    pub needs: Vec<Need>,
    pub modes: Vec<ReferralMode>,
    pub max_distance_km: f64,
    pub urgency: Urgency,
    pub deadline: Option<NaiveDate>,
    pub note: Personal<Option<String>>,
    pub consent: Consent,
}

impl NewReferral {
    /// What matching may know: no name, phone, e-mail or note.
    pub fn matching_profile(&self) -> MatchingProfile {
        MatchingProfile {
            commune_code: self.commune_code.clone(),
            territory: self.territory.clone(),
            location: self.location,
            needs: self.needs.clone(),
            modes: self.modes.clone(),
            languages: self.languages.clone(),
            accessibility: self.accessibility.clone(),
            urgency: self.urgency,
            deadline: self.deadline,
            max_distance_km: self.max_distance_km,
        }
    }
}

pub fn parse_referral(
    req: &ReferralRequest,
    communes: &Communes,
    default_distance_km: f64,
) -> Result<NewReferral, Vec<FieldError>> {
    let mut e = Errors::new();
    let person = req.person.clone().unwrap_or_default();
    if req.person.is_none() {
        e.add("person", "is required");
    }
    let first_name = e.text("person.first_name", person.first_name.as_deref(), 100, req.person.is_some());
    let last_name = e.text("person.last_name", person.last_name.as_deref(), 100, req.person.is_some());
    let phone = match e.text("person.phone", person.phone.as_deref(), 40, false) {
        Some(p) => match PhoneNumber::parse(&p) {
            Ok(n) => Some(n.into_string()),
            Err(err) => {
                e.add("person.phone", err.to_string());
                None
            }
        },
        None => None,
    };
    let email = match e.text("person.email", person.email.as_deref(), 254, false) {
        Some(m) if is_email_address(&m) => Some(m),
        Some(_) => {
            e.add("person.email", "is not an e-mail address");
            None
        }
        None => None,
    };
    if req.person.is_some()
        && person.phone.as_deref().is_none_or(|p| p.trim().is_empty())
        && person.email.as_deref().is_none_or(|m| m.trim().is_empty())
    {
        e.add("person.phone", "give a phone number or an e-mail address");
        e.add("person.email", "give a phone number or an e-mail address");
    }
    let default_preference = if phone.is_some() { ContactPreference::Phone } else { ContactPreference::Email };
    let contact_preference =
        e.one("person.contact_preference", person.contact_preference.as_deref(), Some(default_preference));
    match contact_preference {
        Some(ContactPreference::Phone) if phone.is_none() && person.phone.is_none() => {
            e.add("person.contact_preference", "is phone, but no phone number was given")
        }
        Some(ContactPreference::Email) if email.is_none() && person.email.is_none() => {
            e.add("person.contact_preference", "is email, but no e-mail address was given")
        }
        _ => {}
    }
    let commune = if req.person.is_some() {
        let code = e.text("person.commune_code", person.commune_code.as_deref(), 10, false);
        let postcode = e.text("person.postcode", person.postcode.as_deref(), 10, false);
        match communes.resolve(code.as_deref(), postcode.as_deref(), None) {
            Ok(c) => match (c.code.parse::<CommuneCode>(), c.departement.parse::<Territory>()) {
                (Ok(code), Ok(territory)) => {
                    Some((code, c.name.clone(), territory, Point { lat: c.location.lat, lon: c.location.lon }))
                }
                _ => {
                    e.add("person.commune_code", "this commune has no code Aiguillage can route with");
                    None
                }
            },
            Err(geo::ResolveError::Missing) => {
                e.add("person.commune_code", "give person.commune_code or person.postcode");
                None
            }
            Err(err @ geo::ResolveError::UnknownPostcode(_)) => {
                e.add("person.postcode", err.to_string());
                None
            }
            Err(err) => {
                e.add("person.commune_code", err.to_string());
                None
            }
        }
    } else {
        None
    };
    let mut languages: Vec<Language> = e.list("person.languages", person.languages.as_deref(), false);
    if languages.is_empty() {
        languages.push(Language::french());
    }
    let accessibility: Vec<Accessibility> = e.list("person.accessibility", person.accessibility.as_deref(), false);
    let needs: Vec<Need> = e.list("needs", req.needs.as_deref(), true);
    let mut modes: Vec<ReferralMode> = e.list("modes", req.modes.as_deref(), false);
    if req.modes.as_ref().is_some_and(Vec::is_empty) {
        e.add("modes", "must not be empty (omit it for in_person)");
    }
    if modes.is_empty() {
        modes.push(ReferralMode::InPerson);
    }
    let max_distance_km = req.max_distance_km.unwrap_or(default_distance_km);
    if !(max_distance_km.is_finite() && max_distance_km > 0.0 && max_distance_km <= MAX_DISTANCE_KM) {
        e.add("max_distance_km", format!("must be more than 0 and at most {MAX_DISTANCE_KM} km"));
    }
    let urgency = e.one("urgency", req.urgency.as_deref(), Some(Urgency::Normal));
    let deadline = match req.deadline.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
        None => None,
        Some(d) => match NaiveDate::parse_from_str(d, "%Y-%m-%d") {
            Ok(date) => Some(date),
            Err(_) => {
                e.add("deadline", "expected a date as YYYY-MM-DD");
                None
            }
        },
    };
    let note = e.text("note", req.note.as_deref(), MAX_NOTE_CHARS, false);
    let consent = match &req.consent {
        None => {
            e.add("consent", "is required: the person must agree to be referred");
            None
        }
        Some(c) => {
            if c.obtained != Some(true) {
                e.add("consent.obtained", "must be true: the person must agree to be referred");
            }
            let method = e.text("consent.method", c.method.as_deref(), 50, false);
            let at = match c.at.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
                None => None,
                Some(a) => match DateTime::parse_from_rfc3339(a) {
                    Ok(t) => Some(t.with_timezone(&Utc)),
                    Err(_) => {
                        e.add("consent.at", "expected an RFC 3339 timestamp");
                        None
                    }
                },
            };
            Some(Consent { method, at })
        }
    };
    e.finish(|| ())?;
    let Some((commune_code, commune_name, territory, location)) = commune else {
        return Err(vec![FieldError::new("person.commune_code", "give person.commune_code or person.postcode")]);
    };
    Ok({
        NewReferral {
            person: Person {
                first_name: Personal::new(first_name.unwrap_or_default()),
                last_name: Personal::new(last_name.unwrap_or_default()),
                phone: Personal::new(phone),
                email: Personal::new(email),
                contact_preference: contact_preference.unwrap_or(ContactPreference::Phone),
            },
            commune_code,
            commune_name,
            territory,
            location,
            languages,
            accessibility,
            needs,
            modes,
            max_distance_km,
            urgency: urgency.unwrap_or(Urgency::Normal),
            deadline,
            note: Personal::new(note),
            consent: consent.unwrap_or(Consent { method: None, at: None }),
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn request(patch: serde_json::Value) -> ReferralRequest {
        let mut base = serde_json::json!({
            "person": { "first_name": "Amina", "last_name": "B.", "phone": "+33612345678", "email": null,
                        "contact_preference": "phone", "commune_code": "16015", "postcode": null,
                        "languages": ["fr", "ar"], "accessibility": [] },
            "needs": ["aide_demarches_administratives"],
            "modes": ["in_person"], "max_distance_km": 20,
            "urgency": "normal", "deadline": "2026-12-15",
            "note": "Dossier CAF à déposer avant le 15.",
            "consent": { "obtained": true, "method": "oral", "at": "2026-11-28T09:55:00Z" }
        });
        merge(&mut base, patch);
        serde_json::from_value(base).unwrap()
    }

    fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    fn fields(r: Result<NewReferral, Vec<FieldError>>) -> Vec<String> {
        r.unwrap_err().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn the_documented_example_parses() {
        let r = parse_referral(&request(serde_json::json!({})), geo::communes(), 30.0).unwrap();
        assert_eq!(r.territory, "16");
        assert_eq!(r.commune_code, "16015");
        assert_eq!(r.max_distance_km, 20.0);
        assert_eq!(r.languages.len(), 2);
        assert_eq!(format!("{:?}", r.person.first_name), "***");
        assert!(!format!("{r:?}").contains("Amina"));
    }

    #[test]
    fn missing_consent_is_named() {
        assert_eq!(
            fields(parse_referral(
                &request(serde_json::json!({"consent": {"obtained": false}})),
                geo::communes(),
                30.0
            )),
            vec!["consent.obtained"]
        );
        assert_eq!(
            fields(parse_referral(&request(serde_json::json!({"consent": null})), geo::communes(), 30.0)),
            vec!["consent"]
        );
    }

    #[test]
    fn an_unknown_commune_or_need_is_named() {
        assert_eq!(
            fields(parse_referral(
                &request(serde_json::json!({"person": {"commune_code": "99999"}})),
                geo::communes(),
                30.0
            )),
            vec!["person.commune_code"]
        );
        assert_eq!(
            fields(parse_referral(&request(serde_json::json!({"needs": ["cooking"]})), geo::communes(), 30.0)),
            vec!["needs[0]"]
        );
        assert_eq!(
            fields(parse_referral(&request(serde_json::json!({"needs": []})), geo::communes(), 30.0)),
            vec!["needs"]
        );
    }

    #[test]
    fn a_person_needs_a_way_to_be_contacted() {
        let f = fields(parse_referral(
            &request(serde_json::json!({"person": {"phone": null, "email": null}})),
            geo::communes(),
            30.0,
        ));
        assert!(f.contains(&"person.phone".to_string()) && f.contains(&"person.email".to_string()), "{f:?}");
    }

    #[test]
    fn an_over_long_note_is_refused() {
        let long = "x".repeat(1001);
        assert_eq!(
            fields(parse_referral(&request(serde_json::json!({"note": long})), geo::communes(), 30.0)),
            vec!["note"]
        );
    }

    #[test]
    fn a_postcode_alone_places_the_person() {
        let r = parse_referral(
            &request(serde_json::json!({"person": {"commune_code": null, "postcode": "16100"}})),
            geo::communes(),
            30.0,
        )
        .unwrap();
        assert_eq!(r.commune_code, "16102");
    }

    #[test]
    fn defaults_follow_the_contract() {
        let r = parse_referral(
            &request(serde_json::json!({"modes": null, "max_distance_km": null, "urgency": null})),
            geo::communes(),
            30.0,
        )
        .unwrap();
        assert_eq!(r.modes, vec![ReferralMode::InPerson]);
        assert_eq!(r.max_distance_km, 30.0);
        assert_eq!(r.urgency, Urgency::Normal);
    }

    #[test]
    fn phone_numbers_are_stored_in_e164() {
        // The spellings themselves are tested with `contracts::phone`.
        for (given, stored) in [
            ("06 12 34 56 78", "+33612345678"),
            ("0033 6 12 34 56 78", "+33612345678"),
            ("0692 12 34 56", "+262692123456"),
        ] {
            let r = parse_referral(&request(serde_json::json!({"person": {"phone": given}})), geo::communes(), 30.0)
                .unwrap();
            assert_eq!(r.person.phone.expose().as_deref(), Some(stored), "{given}");
        }
    }

    #[test]
    fn a_phone_number_that_cannot_be_called_is_refused_by_field() {
        for given in ["12", "call me", "06 12 34 56 7"] {
            let r = parse_referral(&request(serde_json::json!({"person": {"phone": given}})), geo::communes(), 30.0);
            let errors = r.unwrap_err();
            assert_eq!(errors[0].field, "person.phone", "{given}");
            assert_eq!(errors[0].message, "is not a phone number (use +33… or 0X XX XX XX XX)");
        }
    }

    #[test]
    fn an_email_address_must_be_one_address_at_a_real_domain() {
        let with_email = |email: &str| request(serde_json::json!({"person": {"email": email}}));
        let r = parse_referral(&with_email("amina.b@example.fr"), geo::communes(), 30.0).unwrap();
        assert_eq!(r.person.email.expose().as_deref(), Some("amina.b@example.fr"));
        for bad in ["amina", "amina@localhost", "Amina <amina.b@example.fr>", "amina b@example.fr"] {
            let errors = parse_referral(&with_email(bad), geo::communes(), 30.0).unwrap_err();
            assert_eq!(
                (errors[0].field.as_str(), errors[0].message.as_str()),
                ("person.email", "is not an e-mail address")
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn no_input_panics(first in ".{0,20}", phone in ".{0,20}", code in ".{0,8}", note in ".{0,50}") {
            let req = request(serde_json::json!({"person": {"first_name": first, "phone": phone, "commune_code": code}, "note": note}));
            let _ = parse_referral(&req, geo::communes(), 30.0);
        }
    }
}
