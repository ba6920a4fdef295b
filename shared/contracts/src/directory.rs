//! The directory API's answers: organisations, structures and an import's report. The
//! directory serialises these types and the web app reads them back; the OpenAPI schemas
//! are derived from them, so each is what is on the wire.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::{AddressRequest, PointRequest, StructureContactRequest, StructureRequest};
use crate::events::Structure;
use crate::{Accessibility, Language, Need, OrganisationId, OrganisationKind, StructureId, StructureMode, Territory};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = Organisation)]
pub struct OrganisationView {
    pub id: OrganisationId,
    pub name: String,
    pub kind: OrganisationKind,
    pub territory: Territory,
    /// 14 digits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub siret: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OrganisationPage {
    pub items: Vec<OrganisationView>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = Address)]
pub struct AddressView {
    pub street: Option<String>,
    pub postcode: Option<String>,
    pub commune: Option<String>,
    pub commune_code: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = Point)]
pub struct PointView {
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = StructureContact)]
pub struct ContactView {
    pub phone: Option<String>,
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
}

/// A structure (a *lieu de médiation numérique*): the record a `PUT` takes, with its id,
/// territory, source and time of the last change.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = Structure)]
pub struct StructureView {
    pub id: StructureId,
    pub name: String,
    pub services: Vec<Need>,
    pub modes: Vec<StructureMode>,
    pub languages: Vec<Language>,
    /// *Langues étrangères (autres)*.
    pub other_languages: bool,
    pub accessibility: Vec<Accessibility>,
    pub address: AddressView,
    pub location: PointView,
    /// Its département, from the commune.
    pub territory: Territory,
    /// OpenStreetMap `opening_hours`; `null` when unknown.
    pub opening_hours: Option<String>,
    pub weekly_capacity: u32,
    pub accepting: bool,
    pub contact: ContactView,
    /// `api`, `mednum` or the source of an import.
    pub source: Option<String>,
    pub fees: Vec<String>,
    pub labels: Vec<String>,
    /// The structure's SIRET (Mednum `pivot`), when its source gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub siret: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl From<Structure> for StructureView {
    fn from(s: Structure) -> Self {
        Self {
            id: s.id,
            name: s.name,
            services: s.services,
            modes: s.modes,
            languages: s.languages,
            other_languages: s.other_languages,
            accessibility: s.accessibility,
            address: AddressView {
                street: s.address.street,
                postcode: s.address.postcode,
                commune: s.address.commune,
                commune_code: s.address.commune_code,
            },
            location: PointView { lat: s.location.lat, lon: s.location.lon },
            territory: s.territory,
            opening_hours: s.opening_hours,
            weekly_capacity: s.weekly_capacity,
            accepting: s.accepting,
            contact: ContactView { phone: s.contact.phone, email: s.contact.email, website: s.contact.website },
            source: s.source,
            fees: s.fees,
            labels: s.labels,
            siret: s.siret,
            updated_at: s.updated_at,
        }
    }
}

/// What a client sends back to keep a structure as it read it: every field a `PUT`
/// takes (the read-only ones are left out).
impl From<StructureView> for StructureRequest {
    fn from(s: StructureView) -> Self {
        let slugs = |v: Vec<String>| Some(v);
        StructureRequest {
            name: Some(s.name),
            services: slugs(s.services.iter().map(|n| n.slug().to_string()).collect()),
            modes: slugs(s.modes.iter().map(|m| m.slug().to_string()).collect()),
            languages: slugs(s.languages.iter().map(|l| l.as_str().to_string()).collect()),
            other_languages: Some(s.other_languages),
            accessibility: slugs(s.accessibility.iter().map(|a| a.slug().to_string()).collect()),
            address: Some(AddressRequest {
                street: s.address.street,
                postcode: s.address.postcode,
                commune: s.address.commune,
                commune_code: s.address.commune_code,
            }),
            location: Some(PointRequest { lat: s.location.lat, lon: s.location.lon }),
            opening_hours: s.opening_hours,
            weekly_capacity: Some(i64::from(s.weekly_capacity)),
            accepting: Some(s.accepting),
            contact: Some(StructureContactRequest {
                phone: s.contact.phone,
                email: s.contact.email,
                website: s.contact.website,
            }),
            fees: Some(s.fees),
            labels: Some(s.labels),
            siret: s.siret,
            ..StructureRequest::default()
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StructurePage {
    pub items: Vec<StructureView>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// A record that is not imported, and every reason why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = ImportRejection)]
pub struct Rejection {
    /// 0-based position of the record in the file.
    pub index: usize,
    pub id: Option<String>,
    pub errors: Vec<String>,
}

/// Something dropped or corrected in a record that is still imported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = ImportWarning)]
pub struct Warning {
    pub index: usize,
    pub id: Option<String>,
    pub field: String,
    pub message: String,
}

/// A record that looks like the same place as an earlier record under another id. Both
/// are imported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = ImportProbableDuplicate)]
pub struct ProbableDuplicate {
    pub index: usize,
    pub id: String,
    pub duplicate_of_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImportReport {
    pub received: usize,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub rejected: Vec<Rejection>,
    /// Per field (`services` …), the source values that map to nothing, with their count.
    pub unmapped_values: BTreeMap<String, BTreeMap<String, usize>>,
    pub warnings: Vec<Warning>,
    pub defaulted_modes: usize,
    pub located_by_commune: usize,
    pub probable_duplicates: Vec<ProbableDuplicate>,
    /// data·inclusion: entries read and deliberately not imported, by reason
    /// (`services_not_digital`, `structures_without_digital_service`), with their count.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub skipped: BTreeMap<String, usize>,
    /// data·inclusion: each imported place's `zone_eligibilite` codes (communes,
    /// départements, EPCI, `france`), which the directory does not store.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub eligibility_zones: BTreeMap<String, Vec<String>>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::events::{Address, Point, StructureContact};

    fn structure(siret: Option<&str>, website: Option<&str>) -> Structure {
        Structure {
            id: "mansle".parse().unwrap(),
            name: "France services Mansle".into(),
            services: vec![Need::AideDemarchesAdministratives],
            modes: vec![StructureMode::Individual],
            languages: vec![Language::french()],
            other_languages: false,
            accessibility: vec![Accessibility::Motor],
            address: Address { street: None, postcode: Some("16230".into()), commune: None, commune_code: None },
            location: Point { lat: 45.87, lon: 0.17 },
            territory: "16".parse().unwrap(),
            opening_hours: None,
            weekly_capacity: 5,
            accepting: false,
            contact: StructureContact { phone: None, email: None, website: website.map(Into::into) },
            source: Some("api".into()),
            fees: vec!["gratuit".into()],
            labels: vec![],
            siret: siret.map(Into::into),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn a_structure_is_served_exactly_as_the_record_serialises() {
        // The view exists for its schema: it must not change a byte of the wire.
        for (siret, website) in [(None, None), (Some("26160011800010"), Some("https://example.org"))] {
            let s = structure(siret, website);
            assert_eq!(serde_json::to_value(StructureView::from(s.clone())).unwrap(), serde_json::to_value(s).unwrap());
        }
    }

    #[test]
    fn a_structure_read_back_keeps_what_it_had_and_a_closed_place_stays_closed() {
        let view = StructureView::from(structure(Some("26160011800010"), Some("https://example.org")));
        let wire = serde_json::to_value(&view).unwrap();
        let read: StructureView = serde_json::from_value(wire).unwrap();
        let request = StructureRequest::from(read);
        assert_eq!(request.accepting, Some(false));
        assert_eq!(request.weekly_capacity, Some(5));
        assert_eq!(request.accessibility, Some(vec!["motor".to_string()]));
        assert_eq!(request.fees, Some(vec!["gratuit".to_string()]));
        assert_eq!(request.contact.unwrap().website.as_deref(), Some("https://example.org"));
        assert_eq!(request.siret.as_deref(), Some("26160011800010"), "sent back, the SIRET is kept");
    }

    #[test]
    fn a_structure_without_its_accepting_state_is_refused_not_reopened() {
        let mut wire = serde_json::to_value(StructureView::from(structure(None, None))).unwrap();
        wire.as_object_mut().unwrap().remove("accepting");
        let err = serde_json::from_value::<StructureView>(wire).unwrap_err();
        assert!(err.to_string().contains("accepting"), "{err}");
    }
}
