//! A structure as the API receives it, parsed into something that can be stored.

use contracts::api::StructureRequest;
use contracts::email::is_email_address;
use contracts::events::{Address, Point, StructureContact};
use contracts::phone::PhoneNumber;
use contracts::validate::Errors;
use contracts::{Accessibility, FieldError, Language, Need, StructureMode};
use geo::Communes;

/// The most a structure may declare; far above any real *lieu*, low enough to catch typos.
pub const MAX_WEEKLY_CAPACITY: i64 = 10_000;

/// A structure ready to be stored (from `PUT` or from an import).
#[derive(Debug, Clone, PartialEq)]
pub struct StructureDraft {
    pub id: String,
    pub name: String,
    pub services: Vec<Need>,
    pub modes: Vec<StructureMode>,
    pub languages: Vec<Language>,
    pub other_languages: bool,
    pub accessibility: Vec<Accessibility>,
    pub address: Address,
    pub location: Point,
    pub territory: String,
    pub opening_hours: Option<String>,
    /// `None` keeps the stored value (or the default for a new structure).
    pub weekly_capacity: Option<u32>,
    pub accepting: Option<bool>,
    pub contact: StructureContact,
    pub source: Option<String>,
    pub fees: Vec<String>,
    pub labels: Vec<String>,
    pub pivot: Option<String>,
}

/// Structure ids come from source data (`mediation-numerique-…`), so they are strings;
/// they still have to be safe in a URL path and a log line.
pub fn valid_structure_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@'))
}

pub fn parse_structure(
    id: &str,
    req: &StructureRequest,
    communes: &Communes,
) -> Result<StructureDraft, Vec<FieldError>> {
    let mut e = Errors::new();
    if !valid_structure_id(id) {
        e.add("id", "use 1 to 200 letters, digits, '-', '_', '.', ':' or '@'");
    }
    let name = e.text("name", req.name.as_deref(), 300, true);
    let services: Vec<Need> = e.list("services", req.services.as_deref(), true);
    let mut modes: Vec<StructureMode> = e.list("modes", req.modes.as_deref(), false);
    if modes.is_empty() {
        modes.push(StructureMode::Individual);
    }
    let mut languages: Vec<Language> = e.list("languages", req.languages.as_deref(), false);
    if languages.is_empty() {
        languages.push(Language::french());
    }
    let accessibility: Vec<Accessibility> = e.list("accessibility", req.accessibility.as_deref(), false);

    let raw_address = req.address.clone().unwrap_or_default();
    let address = Address {
        street: e.text("address.street", raw_address.street.as_deref(), 300, false),
        postcode: e.text("address.postcode", raw_address.postcode.as_deref(), 10, false),
        commune: e.text("address.commune", raw_address.commune.as_deref(), 200, false),
        commune_code: e.text("address.commune_code", raw_address.commune_code.as_deref(), 10, false),
    };
    let commune = match (&address.commune_code, &address.postcode) {
        (None, None) => None,
        (code, postcode) => match communes.resolve(code.as_deref(), postcode.as_deref(), address.commune.as_deref()) {
            Ok(c) => Some(c),
            Err(err) => {
                let field = if code.is_some() { "address.commune_code" } else { "address.postcode" };
                e.add(field, err.to_string());
                None
            }
        },
    };
    let location = match req.location {
        Some(p) => match geo::LatLon::new(p.lat, p.lon) {
            Some(ll) => Some(Point { lat: ll.lat, lon: ll.lon }),
            None => {
                e.add("location", "latitude must be within [-90, 90] and longitude within [-180, 180]");
                None
            }
        },
        None => commune.map(|c| Point { lat: c.location.lat, lon: c.location.lon }),
    };
    if req.location.is_none() && commune.is_none() && address.commune_code.is_none() && address.postcode.is_none() {
        e.add("location", "is required unless address.commune_code or address.postcode identifies a commune");
    }
    if commune.is_none() && address.commune_code.is_none() && address.postcode.is_none() && req.location.is_some() {
        e.add("address.commune_code", "is required to place the structure in a territory (or give address.postcode)");
    }
    let opening_hours = e.text("opening_hours", req.opening_hours.as_deref(), 500, false);
    if let Some(hours) = &opening_hours
        && let Err(err) = contracts::opening_hours::OpeningHours::parse(hours)
    {
        e.add("opening_hours", format!("not a valid OpenStreetMap opening_hours value: {err}"));
    }
    let weekly_capacity = match req.weekly_capacity {
        Some(c) if !(0..=MAX_WEEKLY_CAPACITY).contains(&c) => {
            e.add("weekly_capacity", format!("must be between 0 and {MAX_WEEKLY_CAPACITY}"));
            None
        }
        Some(c) => u32::try_from(c).ok(),
        None => None,
    };
    let raw_contact = req.contact.clone().unwrap_or_default();
    let contact = StructureContact {
        // In E.164 when it is a valid number, as an import stores it; otherwise as given, so
        // a client can send back a short number (`3631`) that it read.
        phone: e
            .text("contact.phone", raw_contact.phone.as_deref(), 40, false)
            .map(|p| PhoneNumber::parse(&p).map_or(p, PhoneNumber::into_string)),
        email: e.text("contact.email", raw_contact.email.as_deref(), 254, false),
        website: e.text("contact.website", raw_contact.website.as_deref(), 500, false),
    };
    if contact.email.as_deref().is_some_and(|m| !is_email_address(m)) {
        e.add("contact.email", "is not an e-mail address");
    }
    // As an import stores a Mednum `pivot`: the text its source gives.
    let pivot = e.text("siret", req.siret.as_deref(), 40, false);
    let fees = short_texts(&mut e, "fees", req.fees.as_deref());
    let labels = short_texts(&mut e, "labels", req.labels.as_deref());
    let territory = commune.map(|c| c.departement.clone());
    e.finish(|| StructureDraft {
        id: id.to_string(),
        name: name.unwrap_or_default(),
        services,
        modes,
        languages,
        other_languages: req.other_languages.unwrap_or(false),
        accessibility,
        address,
        location: location.unwrap_or(Point { lat: 0.0, lon: 0.0 }),
        territory: territory.unwrap_or_default(),
        opening_hours,
        weekly_capacity,
        accepting: req.accepting,
        contact,
        source: Some("api".to_string()),
        fees,
        labels,
        pivot,
    })
}

fn short_texts(e: &mut Errors, field: &str, values: Option<&[String]>) -> Vec<String> {
    let values = values.unwrap_or_default();
    if values.len() > 50 {
        e.add(field, "has too many values");
        return Vec::new();
    }
    values.iter().enumerate().filter_map(|(i, v)| e.text(&format!("{field}[{i}]"), Some(v), 200, false)).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn request() -> StructureRequest {
        serde_json::from_value(serde_json::json!({
            "name": "France services Mansle",
            "services": ["aide_demarches_administratives", "insertion_professionnelle"],
            "modes": ["individual"], "languages": ["fr"], "other_languages": false,
            "accessibility": ["motor"],
            "address": { "street": "21 Rue Martin", "postcode": "16230", "commune": "Mansle", "commune_code": "16206" },
            "location": { "lat": 45.8769, "lon": 0.17784 },
            "opening_hours": "Mo-Fr 10:00-12:00,14:00-17:30",
            "weekly_capacity": 5, "accepting": true,
            "contact": { "phone": "+33545207208", "email": "mansle@france-services.gouv.fr" }
        }))
        .unwrap()
    }

    #[test]
    fn the_documented_example_parses_and_gets_its_territory() {
        let s = parse_structure("mansle", &request(), geo::communes()).unwrap();
        assert_eq!(s.territory, "16");
        assert_eq!(s.services, vec![Need::AideDemarchesAdministratives, Need::InsertionProfessionnelle]);
        assert_eq!(s.weekly_capacity, Some(5));
        assert_eq!(s.location, Point { lat: 45.8769, lon: 0.17784 });
    }

    #[test]
    fn without_location_the_commune_centroid_is_used() {
        let mut r = request();
        r.location = None;
        let s = parse_structure("mansle", &r, geo::communes()).unwrap();
        let mansle = geo::communes().by_code("16206").unwrap();
        assert_eq!(s.location.lat, mansle.location.lat);
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut r = request();
        r.services = Some(vec!["cooking".into()]);
        r.weekly_capacity = Some(-1);
        r.address.as_mut().unwrap().commune_code = Some("99999".into());
        r.name = Some(" ".into());
        let errors = parse_structure("bad id!", &r, geo::communes()).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        for f in ["id", "name", "services[0]", "weekly_capacity", "address.commune_code"] {
            assert!(fields.contains(&f), "{f} missing in {fields:?}");
        }
    }

    #[test]
    fn missing_modes_and_languages_default_to_individual_and_french() {
        let mut r = request();
        r.modes = None;
        r.languages = None;
        let s = parse_structure("x", &r, geo::communes()).unwrap();
        assert_eq!(s.modes, vec![StructureMode::Individual]);
        assert_eq!(s.languages, vec![Language::french()]);
    }

    #[test]
    fn invalid_opening_hours_are_refused() {
        let mut r = request();
        r.opening_hours = Some("whenever we feel like it".into());
        let errors = parse_structure("x", &r, geo::communes()).unwrap_err();
        assert_eq!(errors[0].field, "opening_hours");
        assert!(
            errors[0].message.starts_with("not a valid OpenStreetMap opening_hours value"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn a_contact_phone_is_stored_in_e164_when_it_is_a_valid_number() {
        for (given, stored) in
            [("05 45 20 72 08", "+33545207208"), ("0596 30 12 34", "+596596301234"), ("3631", "3631")]
        {
            let mut r = request();
            r.contact.as_mut().unwrap().phone = Some(given.into());
            let s = parse_structure("x", &r, geo::communes()).unwrap();
            assert_eq!(s.contact.phone.as_deref(), Some(stored), "{given}");
        }
    }

    #[test]
    fn a_contact_email_must_be_one_address() {
        for bad in ["mansle", "mansle@france-services", "Mansle <mansle@france-services.gouv.fr>", "a@b.fr, c@d.fr"] {
            let mut r = request();
            r.contact.as_mut().unwrap().email = Some(bad.into());
            let errors = parse_structure("x", &r, geo::communes()).unwrap_err();
            assert_eq!(
                (errors[0].field.as_str(), errors[0].message.as_str()),
                ("contact.email", "is not an e-mail address")
            );
        }
    }
}
