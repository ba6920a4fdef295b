//! Who acted, as a referral's history and the audits record it: ids only, never a name.
//!
//! The recorded form is a string (`referrer:{organisation}:account:{id}`, `operator:cli`,
//! `matcher` …), the same in the database and in the API. [`Actor`] is built once from
//! the caller and read back with [`FromStr`], so no other code formats or splits it.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::ids::InvalidId;
use crate::{OrganisationId, StructureId, Territory};

/// Who is behind an action: the `principal` of an audit entry, and the last part of a
/// role's [`Actor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A signed-in agent (`account:{id}`).
    Account(Uuid),
    /// A bearer token for a machine client or the command line (`token:{id}`).
    Token(Uuid),
    /// One of Aiguillage's services (`service`).
    Service,
    /// The command line, run by an operator (`operator:cli`).
    Operator,
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Account(id) => write!(f, "account:{id}"),
            Principal::Token(id) => write!(f, "token:{id}"),
            Principal::Service => f.write_str("service"),
            Principal::Operator => f.write_str(OPERATOR),
        }
    }
}

const OPERATOR: &str = "operator:cli";

impl FromStr for Principal {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        let invalid =
            || InvalidId { value: s.to_string(), expected: "account:{id}, token:{id}, service or operator:cli" };
        match s.split_once(':') {
            None if s == "service" => Ok(Principal::Service),
            _ if s == OPERATOR => Ok(Principal::Operator),
            Some(("account", id)) => id.parse().map(Principal::Account).map_err(|_| invalid()),
            Some(("token", id)) => id.parse().map(Principal::Token).map_err(|_| invalid()),
            _ => Err(invalid()),
        }
    }
}

/// Who acted: a caller in a role over a scope, or one of the system's own actors.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Actor {
    /// `admin:{principal}`
    Admin(Principal),
    /// `referrer:{organisation}:{principal}`
    Referrer(OrganisationId, Principal),
    /// `mediator:{structure}:{principal}` (a structure id may hold `:`: the principal is
    /// read from the end).
    Mediator(StructureId, Principal),
    /// `coordinator:{territory},{territory}…:{principal}`
    Coordinator(Vec<Territory>, Principal),
    /// `dpo:{principal}`: the data protection officer.
    Dpo(Principal),
    /// `pending:{principal}`: a signed-in agent with no active membership.
    Pending(Principal),
    /// `service:{name}`: one of Aiguillage's services (the web app recording a sign-in).
    Service(String),
    /// `operator:cli`: the command line.
    Operator,
    /// `matcher`: an offer or a waitlisting the matcher decided.
    Matcher,
    /// `timer`: an offer that expired unanswered.
    Timer,
    /// `answer_link:{structure}`: a structure answering through the link of its e-mail,
    /// without an account.
    AnswerLink(StructureId),
}

impl Actor {
    /// Who is behind it, for a role's actor, the command line and a service.
    pub fn principal(&self) -> Option<Principal> {
        match self {
            Actor::Admin(p)
            | Actor::Referrer(_, p)
            | Actor::Mediator(_, p)
            | Actor::Coordinator(_, p)
            | Actor::Dpo(p)
            | Actor::Pending(p) => Some(*p),
            Actor::Service(_) => Some(Principal::Service),
            Actor::Operator => Some(Principal::Operator),
            Actor::Matcher | Actor::Timer | Actor::AnswerLink(_) => None,
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Admin(p) => write!(f, "admin:{p}"),
            Actor::Referrer(o, p) => write!(f, "referrer:{o}:{p}"),
            Actor::Mediator(s, p) => write!(f, "mediator:{s}:{p}"),
            Actor::Coordinator(t, p) => {
                let territories: Vec<&str> = t.iter().map(Territory::as_str).collect();
                write!(f, "coordinator:{}:{p}", territories.join(","))
            }
            Actor::Dpo(p) => write!(f, "dpo:{p}"),
            Actor::Pending(p) => write!(f, "pending:{p}"),
            Actor::Service(name) => write!(f, "service:{name}"),
            Actor::Operator => f.write_str(OPERATOR),
            Actor::Matcher => f.write_str("matcher"),
            Actor::Timer => f.write_str("timer"),
            Actor::AnswerLink(s) => write!(f, "answer_link:{s}"),
        }
    }
}

/// What [`Actor`]'s parser accepts, for its errors.
const ACTOR: &str =
    "an actor (role:scope:principal, service:{name}, operator:cli, matcher, timer or answer_link:{structure})";

/// Splits `{scope}:{principal}` where the scope may itself hold `:` (a structure id):
/// a principal is `service`, or two parts (`account:{id}`, `operator:cli` …), so it is
/// read from the end.
fn scope_and_principal(rest: &str) -> Option<(&str, Principal)> {
    if let Some(scope) = rest.strip_suffix(":service") {
        return Some((scope, Principal::Service));
    }
    let mut parts = rest.rsplitn(3, ':');
    let (id, kind, scope) = (parts.next()?, parts.next()?, parts.next()?);
    Some((scope, format!("{kind}:{id}").parse().ok()?))
}

impl FromStr for Actor {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        let invalid = || InvalidId { value: s.to_string(), expected: ACTOR };
        let (head, rest) = match s.split_once(':') {
            None => {
                return match s {
                    "matcher" => Ok(Actor::Matcher),
                    "timer" => Ok(Actor::Timer),
                    _ => Err(invalid()),
                };
            }
            Some(parts) => parts,
        };
        let principal = || rest.parse::<Principal>().map_err(|_| invalid());
        let scoped = || scope_and_principal(rest).ok_or_else(invalid);
        let actor = match head {
            "admin" => Actor::Admin(principal()?),
            "dpo" => Actor::Dpo(principal()?),
            "pending" => Actor::Pending(principal()?),
            "referrer" => {
                let (o, p) = scoped()?;
                Actor::Referrer(o.parse().map_err(|_| invalid())?, p)
            }
            "mediator" => {
                let (structure, p) = scoped()?;
                Actor::Mediator(structure.parse().map_err(|_| invalid())?, p)
            }
            "coordinator" => {
                let (t, p) = scoped()?;
                let territories = if t.is_empty() {
                    Vec::new()
                } else {
                    t.split(',').map(str::parse).collect::<Result<_, _>>().map_err(|_| invalid())?
                };
                Actor::Coordinator(territories, p)
            }
            "service" if !rest.is_empty() => Actor::Service(rest.to_string()),
            "operator" if rest == "cli" => Actor::Operator,
            "answer_link" => Actor::AnswerLink(rest.parse().map_err(|_| invalid())?),
            _ => return Err(invalid()),
        };
        Ok(actor)
    }
}

impl serde::Serialize for Actor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

crate::vocab::deserialize_from_str!(Actor);

impl utoipa::PartialSchema for Actor {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "Who acted, by ids: `{role}:{scope}:{principal}` (`referrer:{organisation}:account:{id}`, \
                 `coordinator:16,17:token:{id}`, `admin:token:{id}` …), `service:{name}`, `operator:cli`, \
                 `matcher`, `timer` or `answer_link:{structure}`",
            ))
            .examples(["operator:cli"])
            .into()
    }
}

impl utoipa::ToSchema for Actor {}

#[cfg(feature = "sqlx")]
crate::sql::text_column!(Actor);
#[cfg(feature = "sqlx")]
crate::sql::text_column!(Principal);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: &str = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

    #[test]
    fn actors_read_as_they_were_always_recorded() {
        let id: Uuid = ID.parse().unwrap();
        let org = OrganisationId::from_uuid(id);
        let cases = [
            (format!("referrer:{ID}:account:{ID}"), Actor::Referrer(org, Principal::Account(id))),
            (format!("admin:token:{ID}"), Actor::Admin(Principal::Token(id))),
            (
                format!("coordinator:16,2A:token:{ID}"),
                Actor::Coordinator(vec!["16".parse().unwrap(), "2A".parse().unwrap()], Principal::Token(id)),
            ),
            ("mediator:lieu:16:service".to_string(), Actor::Mediator("lieu:16".parse().unwrap(), Principal::Service)),
            (format!("dpo:account:{ID}"), Actor::Dpo(Principal::Account(id))),
            (format!("pending:account:{ID}"), Actor::Pending(Principal::Account(id))),
            ("service:web".to_string(), Actor::Service("web".into())),
            ("operator:cli".to_string(), Actor::Operator),
            ("matcher".to_string(), Actor::Matcher),
            ("timer".to_string(), Actor::Timer),
            ("answer_link:lieu-16".to_string(), Actor::AnswerLink("lieu-16".parse().unwrap())),
        ];
        for (recorded, actor) in cases {
            assert_eq!(recorded.parse::<Actor>().unwrap(), actor, "{recorded}");
            assert_eq!(actor.to_string(), recorded);
        }
    }

    #[test]
    fn what_no_actor_is_recorded_as_is_refused() {
        for bad in [
            "",
            "t",
            "admin",
            "admin:",
            "admin:account:nope",
            "referrer:nope:service",
            "referrer:service",
            "mediator::service",
            "coordinator:16,xx:service",
            "service:",
            "operator:gui",
            "answer_link:",
            "overlord:service",
            "Matcher",
        ] {
            assert!(bad.parse::<Actor>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_principal_is_who_stands_behind_the_actor() {
        let id = Uuid::now_v7();
        assert_eq!(Actor::Admin(Principal::Token(id)).principal(), Some(Principal::Token(id)));
        assert_eq!(Actor::Operator.principal().unwrap().to_string(), "operator:cli");
        assert_eq!(Actor::Service("web".into()).principal().unwrap().to_string(), "service");
        assert_eq!(Actor::Matcher.principal(), None);
    }

    fn principal() -> impl Strategy<Value = Principal> {
        prop_oneof![
            any::<u128>().prop_map(|n| Principal::Account(Uuid::from_u128(n))),
            any::<u128>().prop_map(|n| Principal::Token(Uuid::from_u128(n))),
            Just(Principal::Service),
            Just(Principal::Operator),
        ]
    }

    fn structure() -> impl Strategy<Value = StructureId> {
        // Any structure id the parser accepts, `:` and `,` included.
        "[^\\p{Cc}\\s][^\\p{Cc}]{0,30}[^\\p{Cc}\\s]|[^\\p{Cc}\\s]".prop_filter_map("a structure id", |s| s.parse().ok())
    }

    fn territory() -> impl Strategy<Value = Territory> {
        "(0[1-9]|[1-9][0-9]|2A|2B|97[1-6])".prop_filter_map("a territory", |s| s.parse().ok())
    }

    fn actor() -> impl Strategy<Value = Actor> {
        prop_oneof![
            principal().prop_map(Actor::Admin),
            (any::<u128>(), principal())
                .prop_map(|(o, p)| Actor::Referrer(OrganisationId::from_uuid(Uuid::from_u128(o)), p)),
            (structure(), principal()).prop_map(|(s, p)| Actor::Mediator(s, p)),
            (proptest::collection::vec(territory(), 0..4), principal()).prop_map(|(t, p)| Actor::Coordinator(t, p)),
            principal().prop_map(Actor::Dpo),
            principal().prop_map(Actor::Pending),
            "[a-z][a-z:_-]{0,12}".prop_map(Actor::Service),
            Just(Actor::Operator),
            Just(Actor::Matcher),
            Just(Actor::Timer),
            structure().prop_map(Actor::AnswerLink),
        ]
    }

    proptest! {
        #[test]
        fn an_actor_reads_back_as_it_was_recorded(a in actor()) {
            let recorded = a.to_string();
            prop_assert_eq!(recorded.parse::<Actor>(), Ok(a.clone()));
            let json = serde_json::to_string(&a).unwrap();
            prop_assert_eq!(json, serde_json::to_string(&recorded).unwrap());
        }

        #[test]
        fn any_text_parses_or_fails_cleanly(s in "\\PC{0,60}") {
            if let Ok(a) = s.parse::<Actor>() {
                // What parses names the same actor once recorded again.
                prop_assert_eq!(a.to_string().parse::<Actor>(), Ok(a));
            }
        }
    }
}
