//! What the directory answers: organisations and structures as the API shows them. The
//! OpenAPI schemas are derived from these types, so each is what is serialised.

use chrono::{DateTime, Utc};
use contracts::events::Structure;
use contracts::{
    Accessibility, Language, Need, OrganisationId, OrganisationKind, StructureId, StructureMode, Territory,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::Organisation;

#[derive(Debug, Serialize, ToSchema)]
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

impl From<Organisation> for OrganisationView {
    fn from(o: Organisation) -> Self {
        Self { id: o.id, name: o.name, kind: o.kind, territory: o.territory, siret: o.siret, created_at: o.created_at }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrganisationPage {
    pub items: Vec<OrganisationView>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Address)]
pub struct AddressView {
    pub street: Option<String>,
    pub postcode: Option<String>,
    pub commune: Option<String>,
    pub commune_code: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Point)]
pub struct PointView {
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = StructureContact)]
pub struct ContactView {
    pub phone: Option<String>,
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
}

/// A structure (a *lieu de médiation numérique*): the record a `PUT` takes, with its id,
/// territory, source and time of the last change.
#[derive(Debug, Serialize, ToSchema)]
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

#[derive(Debug, Serialize, ToSchema)]
pub struct StructurePage {
    pub items: Vec<StructureView>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use contracts::events::{Address, Point, StructureContact};

    use super::*;

    fn structure(siret: Option<&str>, website: Option<&str>) -> Structure {
        Structure {
            id: "mansle".parse().unwrap(),
            name: "France services Mansle".into(),
            services: vec![Need::AideDemarchesAdministratives],
            modes: vec![StructureMode::Individual],
            languages: vec![Language::french()],
            other_languages: false,
            accessibility: vec![],
            address: Address { street: None, postcode: Some("16230".into()), commune: None, commune_code: None },
            location: Point { lat: 45.87, lon: 0.17 },
            territory: "16".parse().unwrap(),
            opening_hours: None,
            weekly_capacity: 5,
            accepting: true,
            contact: StructureContact { phone: None, email: None, website: website.map(Into::into) },
            source: Some("api".into()),
            fees: vec![],
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
    fn an_organisation_is_served_exactly_as_the_record_serialises() {
        for siret in [None, Some("26160011800010".to_string())] {
            let o = Organisation {
                id: OrganisationId::new(),
                name: "CCAS".into(),
                kind: OrganisationKind::SocialService,
                territory: "16".parse().unwrap(),
                siret,
                created_at: Utc::now(),
            };
            assert_eq!(
                serde_json::to_value(OrganisationView::from(o.clone())).unwrap(),
                serde_json::to_value(o).unwrap()
            );
        }
    }
}

/// A commune of the *Code officiel géographique*, as the commune search shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Commune)]
pub struct CommuneView {
    /// INSEE code (`16015`).
    pub code: String,
    pub name: String,
    /// Its postcodes, the commonest first.
    pub postcodes: Vec<String>,
    /// Département code (`16`, `2A`, `971`).
    pub departement: String,
}

impl From<&geo::Commune> for CommuneView {
    fn from(c: &geo::Commune) -> Self {
        Self {
            code: c.code.clone(),
            name: c.name.clone(),
            postcodes: c.postcodes.clone(),
            departement: c.departement.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CommuneList {
    /// Best match first.
    pub communes: Vec<CommuneView>,
}
