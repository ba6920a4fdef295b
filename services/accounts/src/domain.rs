//! What an agent may be given, and who may give it: no I/O.

use contracts::accounts::MembershipBody;
use contracts::validate::Errors;
use contracts::{FieldError, OrganisationId, Role, StructureId, Territory};
use platform::auth::Scope;

/// A role over a scope: what a membership, a request or an invitation names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    Admin,
    /// The data protection officer: the audit of access to personal data, nationally.
    Dpo,
    Referrer(OrganisationId),
    Mediator(StructureId),
    Coordinator(Vec<Territory>),
}

impl Grant {
    pub fn role(&self) -> Role {
        match self {
            Grant::Admin => Role::Admin,
            Grant::Dpo => Role::Dpo,
            Grant::Referrer(_) => Role::Referrer,
            Grant::Mediator(_) => Role::Mediator,
            Grant::Coordinator(_) => Role::Coordinator,
        }
    }

    /// The scope of the tokens the web app mints for this membership.
    pub fn scope(&self) -> Scope {
        match self {
            Grant::Admin => Scope::All,
            Grant::Dpo => Scope::Dpo,
            Grant::Referrer(o) => Scope::Organisation(*o),
            Grant::Mediator(s) => Scope::Structure(s.clone()),
            Grant::Coordinator(t) => Scope::Territories(t.clone()),
        }
    }

    pub fn from_parts(
        role: Role,
        organisation: Option<OrganisationId>,
        structure: Option<StructureId>,
        territories: Vec<Territory>,
    ) -> Result<Self, String> {
        Ok(match Scope::for_role(role, organisation, structure, territories)? {
            Scope::All => Grant::Admin,
            Scope::Organisation(o) => Grant::Referrer(o),
            Scope::Structure(s) => Grant::Mediator(s),
            Scope::Territories(t) => Grant::Coordinator(t),
            Scope::Dpo => Grant::Dpo,
            Scope::Pending | Scope::Service(_) | Scope::AnswerLink { .. } => return Err("not a membership".into()),
        })
    }

    /// The parts of a grant: role, organisation, structure, territories.
    pub fn parts(&self) -> (Role, Option<OrganisationId>, Option<StructureId>, Vec<Territory>) {
        match self {
            Grant::Admin => (Role::Admin, None, None, vec![]),
            Grant::Dpo => (Role::Dpo, None, None, vec![]),
            Grant::Referrer(o) => (Role::Referrer, Some(*o), None, vec![]),
            Grant::Mediator(s) => (Role::Mediator, None, Some(s.clone()), vec![]),
            Grant::Coordinator(t) => (Role::Coordinator, None, None, t.clone()),
        }
    }

    /// The columns a grant is stored in: role, organisation, structure, territories.
    pub fn columns(&self) -> (Role, Option<OrganisationId>, Option<&StructureId>, Vec<String>) {
        match self {
            Grant::Admin => (Role::Admin, None, None, vec![]),
            Grant::Dpo => (Role::Dpo, None, None, vec![]),
            Grant::Referrer(o) => (Role::Referrer, Some(*o), None, vec![]),
            Grant::Mediator(s) => (Role::Mediator, None, Some(s), vec![]),
            Grant::Coordinator(t) => (Role::Coordinator, None, None, t.iter().map(ToString::to_string).collect()),
        }
    }
}

/// Who is deciding on, inviting to or removing a membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manager {
    Admin,
    Coordinator(Vec<Territory>),
}

impl Manager {
    pub fn from_scope(scope: &Scope) -> Option<Self> {
        match scope {
            Scope::All => Some(Manager::Admin),
            Scope::Territories(t) => Some(Manager::Coordinator(t.clone())),
            _ => None,
        }
    }

    /// Whether this manager may give, or take away, a membership concerning these
    /// départements. Only admins manage admins (a membership concerning no département).
    pub fn may_manage(&self, scope_territories: &[Territory]) -> bool {
        match self {
            Manager::Admin => true,
            Manager::Coordinator(mine) => {
                !scope_territories.is_empty() && scope_territories.iter().all(|t| mine.contains(t))
            }
        }
    }

    /// The départements a coordinator covers, for filtering lists (`None`: all).
    pub fn territories(&self) -> Option<Vec<String>> {
        match self {
            Manager::Admin => None,
            Manager::Coordinator(t) => Some(t.iter().map(ToString::to_string).collect()),
        }
    }
}

/// Parses a membership as a request body names it. An agent may ask to be a referrer of
/// an organisation, a mediator of a structure or a coordinator of départements; only an
/// admin can make an admin (`allow_admin`).
pub fn parse_grant(body: &MembershipBody, prefix: &str, allow_admin: bool) -> Result<Grant, Vec<FieldError>> {
    let mut e = Errors::new();
    let field = |name: &str| if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") };
    let role: Option<Role> = e.one(&field("role"), body.role.as_deref(), None);
    if role == Some(Role::Admin) && !allow_admin {
        e.add(field("role"), "an administrator is appointed by another administrator, not requested");
    }
    if role == Some(Role::Dpo) && !allow_admin {
        e.add(field("role"), "the data protection officer is appointed by an administrator, not requested");
    }
    let organisation: Option<OrganisationId> = e.parsed(&field("organisation_id"), body.organisation_id.as_deref());
    let structure: Option<StructureId> = e.parsed(&field("structure_id"), body.structure_id.as_deref());
    let mut territories = Vec::new();
    for t in body.territories.iter().flatten() {
        match t.parse::<Territory>() {
            Ok(t) if !territories.contains(&t) => territories.push(t),
            Ok(_) => {}
            Err(err) => e.add(field("territories"), err.to_string()),
        }
    }
    territories.sort();
    e.finish(|| ())?;
    let Some(role) = role else { return Err(vec![FieldError::new(field("role"), "is required")]) };
    Grant::from_parts(role, organisation, structure, territories).map_err(|message| {
        let which = match role {
            Role::Referrer => "organisation_id",
            Role::Mediator => "structure_id",
            Role::Coordinator => "territories",
            Role::Admin | Role::Dpo => "role",
        };
        vec![FieldError::new(field(which), message)]
    })
}

/// The e-mail address as invitations are matched on it, if it is one.
pub fn email_key(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    contracts::email::is_email_address(trimmed).then(|| trimmed.to_lowercase())
}

/// A SIRET as ProConnect or a directory gives it: 14 digits, spaces removed.
pub fn siret(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    (digits.len() == 14 && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn body(role: &str) -> MembershipBody {
        MembershipBody { role: Some(role.into()), ..MembershipBody::default() }
    }

    #[test]
    fn a_grant_needs_exactly_the_scope_of_its_role() {
        let org = OrganisationId::new();
        let ok = MembershipBody { organisation_id: Some(org.to_string()), ..body("referrer") };
        assert_eq!(parse_grant(&ok, "", false).unwrap(), Grant::Referrer(org));
        let both = MembershipBody { structure_id: Some("s".into()), ..ok.clone() };
        assert!(parse_grant(&both, "", false).is_err());
        let fields = |b: &MembershipBody| -> Vec<String> {
            parse_grant(b, "membership", false).unwrap_err().into_iter().map(|e| e.field).collect()
        };
        assert_eq!(fields(&body("mediator")), vec!["membership.structure_id"]);
        assert_eq!(fields(&body("coordinator")), vec!["membership.territories"]);
        assert_eq!(fields(&body("chef")), vec!["membership.role"]);
        assert_eq!(fields(&MembershipBody::default()), vec!["membership.role"]);
        let bad = MembershipBody { territories: Some(vec!["1".into()]), ..body("coordinator") };
        assert_eq!(fields(&bad), vec!["membership.territories"]);
    }

    #[test]
    fn nobody_requests_to_be_an_admin_or_the_data_protection_officer() {
        assert!(parse_grant(&body("admin"), "", false).is_err());
        assert_eq!(parse_grant(&body("admin"), "", true).unwrap(), Grant::Admin);
        assert_eq!(parse_grant(&body("dpo"), "", true).unwrap(), Grant::Dpo);
        assert_eq!(parse_grant(&body("dpo"), "", false).unwrap_err()[0].field, "role");
        assert_eq!(Grant::Dpo.scope(), Scope::Dpo);
        assert!(!Manager::Coordinator(vec!["16".parse().unwrap()]).may_manage(&[]), "only admins appoint one");
    }

    #[test]
    fn a_coordinator_manages_only_within_their_departements_and_never_admins() {
        let t = |s: &str| s.parse::<Territory>().unwrap();
        let c = Manager::Coordinator(vec![t("16"), t("17")]);
        assert!(c.may_manage(&[t("16")]));
        assert!(c.may_manage(&[t("16"), t("17")]));
        assert!(!c.may_manage(&[t("16"), t("86")]));
        assert!(!c.may_manage(&[]));
        assert!(Manager::Admin.may_manage(&[]));
    }

    #[test]
    fn emails_and_sirets_are_normalised() {
        assert_eq!(email_key(" Claire.Dubois@CCAS.example "), Some("claire.dubois@ccas.example".into()));
        assert_eq!(email_key("pas une adresse"), None);
        assert_eq!(siret("261 600 118 00010"), Some("26160011800010".into()));
        assert_eq!(siret("123"), None);
    }
}
