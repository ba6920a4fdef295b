//! What the directory answers: organisations and structures as the API shows them. The
//! types are the published language's (`contracts::directory`); the conversions from
//! this service's rows are here.

pub use contracts::directory::{OrganisationPage, OrganisationView, StructurePage, StructureView};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::Organisation;

impl From<Organisation> for OrganisationView {
    fn from(o: Organisation) -> Self {
        Self { id: o.id, name: o.name, kind: o.kind, territory: o.territory, siret: o.siret, created_at: o.created_at }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::Utc;
    use contracts::{OrganisationId, OrganisationKind};

    use super::*;

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
