//! Organisations whose social workers refer people.

use contracts::api::OrganisationRequest;
use contracts::validate::Errors;
use contracts::{FieldError, OrganisationKind, Territory};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganisationDraft {
    pub name: String,
    pub kind: OrganisationKind,
    pub territory: Territory,
    /// The organisation's SIRET, to match agents signing in with ProConnect.
    pub siret: Option<String>,
}

pub fn parse_organisation(req: &OrganisationRequest) -> Result<OrganisationDraft, Vec<FieldError>> {
    let mut e = Errors::new();
    let name = e.text("name", req.name.as_deref(), 300, true);
    let kind = e.one("kind", req.kind.as_deref(), Some(OrganisationKind::SocialService));
    let territory = match e.text("territory", req.territory.as_deref(), 3, true) {
        Some(t) if geo::communes().departement(&t).is_some() => t.parse::<Territory>().ok(),
        Some(t) => {
            e.add("territory", format!("unknown département code {t}"));
            None
        }
        None => None,
    };
    let siret = e.text("siret", req.siret.as_deref(), 20, false).map(|s| s.replace(" ", ""));
    if siret.as_deref().is_some_and(|s| s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit())) {
        e.add("siret", "a SIRET has 14 digits");
    }
    e.finish(|| ())?;
    match (name, territory) {
        (Some(name), Some(territory)) => {
            Ok(OrganisationDraft { name, kind: kind.unwrap_or(OrganisationKind::SocialService), territory, siret })
        }
        _ => Err(vec![FieldError::new("territory", "unknown département code")]),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_organisation_needs_a_name_and_a_real_territory() {
        let ok = OrganisationRequest {
            name: Some("CCAS".into()),
            kind: Some("social_service".into()),
            territory: Some("16".into()),
            siret: Some("261 600 118 00010".into()),
        };
        assert_eq!(parse_organisation(&ok).unwrap().territory, "16");
        let bad = OrganisationRequest {
            name: None,
            kind: Some("club".into()),
            territory: Some("00".into()),
            siret: Some("123".into()),
        };
        let fields: Vec<String> = parse_organisation(&bad).unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, vec!["name", "kind", "territory", "siret"]);
    }
}
