//! The audit of access to personal data, as the data protection officer and admins read
//! it (`/journal`): who read, exported, corrected, erased or changed which referral's
//! personal data, and when, filtered by referral, agent and period, oldest first, page by
//! page. It shows ids, never a person's values (the audit holds none). Other memberships
//! get 404, as the API answers them 403.

use std::collections::HashMap;

use axum::Router;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use chrono::{NaiveDate, SecondsFormat, TimeZone};
use contracts::audit::Principal;
use contracts::{Actor, Role};
use uuid::Uuid;

use crate::WebState;
use crate::error::PageError;
use crate::extract::{Auditors, SignedIn};
use crate::form;
use crate::views::{Chrome, paris, render};

const PAGE: usize = 50;

pub fn routes() -> Router<WebState> {
    Router::new().route("/journal", get(journal))
}

/// One line of the table.
struct Line {
    at: String,
    role: &'static str,
    /// The account or token, when the actor is one.
    who: Option<(&'static str, String)>,
    membership: Option<String>,
    action: String,
    referral: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "journal.html")]
struct JournalView {
    chrome: Chrome,
    referral: String,
    agent: String,
    from: String,
    to: String,
    errors: HashMap<&'static str, String>,
    lines: Vec<Line>,
    /// The next page's query string, when there is one.
    next: Option<String>,
    filtered: bool,
}

impl JournalView {
    fn error(&self, field: &str) -> Option<&String> {
        self.errors.get(field)
    }
}

fn uuid_field(raw: Option<&String>, field: &'static str, errors: &mut HashMap<&'static str, String>) -> Option<Uuid> {
    let raw = raw.map(|s| s.trim()).filter(|s| !s.is_empty())?;
    match raw.parse::<Uuid>() {
        Ok(id) => Some(id),
        Err(_) => {
            let what = if field == "orientation" { "d'une orientation" } else { "d'un compte ou d'un jeton" };
            errors.insert(
                field,
                format!("Indiquez l'identifiant {what}, par exemple 0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b."),
            );
            None
        }
    }
}

/// Midnight in Paris on `day`, as the API takes a bound.
fn paris_midnight(day: NaiveDate) -> String {
    let local = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    let at = chrono_tz::Europe::Paris.from_local_datetime(&local).earliest().map(|t| t.to_utc());
    at.unwrap_or_else(|| local.and_utc()).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Who acted: the role as people name it, and the account or token behind it.
fn actor_parts(actor: &Actor) -> (&'static str, Option<(&'static str, String)>) {
    let role = match actor {
        Actor::Admin(_) => Role::Admin.space_fr(),
        Actor::Referrer(..) => Role::Referrer.space_fr(),
        Actor::Mediator(..) => Role::Mediator.space_fr(),
        Actor::Coordinator(..) => Role::Coordinator.space_fr(),
        Actor::Dpo(_) => Role::Dpo.space_fr(),
        Actor::Pending(_) => "Sans accès",
        Actor::Operator => "Exploitation (ligne de commande)",
        Actor::Service(_) => "Service d'Aiguillage",
        Actor::Matcher | Actor::Timer | Actor::AnswerLink(_) => "Autre",
    };
    let who = match actor.principal() {
        Some(Principal::Account(id)) => Some(("compte", id.to_string())),
        Some(Principal::Token(id)) => Some(("jeton", id.to_string())),
        _ => None,
    };
    (role, who)
}

fn query_string(pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        q.append_pair(k, v);
    }
    q.finish()
}

async fn journal(auditor: SignedIn<Auditors>, Query(q): Query<HashMap<String, String>>) -> Result<Response, PageError> {
    let mut errors = HashMap::new();
    let referral = uuid_field(q.get("orientation"), "orientation", &mut errors);
    let who = uuid_field(q.get("agent"), "agent", &mut errors);
    let from = form::date(q.get("du"), "du", &mut errors);
    let to = form::date(q.get("au"), "au", &mut errors);
    if let (Some(from), Some(to)) = (from, to)
        && to < from
    {
        errors.insert("au", "La date de fin doit être après la date de début.".into());
    }
    let cursor = q.get("apres").map(|c| c.trim()).filter(|c| !c.is_empty());
    if cursor.is_some_and(|c| c.parse::<u64>().is_err()) {
        errors.insert("apres", "Cette page du journal n'existe pas : revenez à la première.".into());
    }
    let (mut lines, mut next) = (Vec::new(), None);
    if errors.is_empty() {
        let (referral_q, agent_q) = (referral.map(|r| r.to_string()), who.map(|a| a.to_string()));
        let (from_q, to_q) = (from.map(paris_midnight), to.map(|d| paris_midnight(d + chrono::Days::new(1))));
        let limit = PAGE.to_string();
        let page = auditor
            .api
            .audit(&[
                ("referral_id", referral_q.as_deref()),
                ("agent", agent_q.as_deref()),
                ("from", from_q.as_deref()),
                ("to", to_q.as_deref()),
                ("cursor", cursor),
                ("limit", Some(&limit)),
            ])
            .await?;
        lines = page
            .items
            .into_iter()
            .map(|i| {
                let (role, who) = actor_parts(&i.actor);
                Line {
                    at: paris(&i.at),
                    role,
                    who,
                    membership: i.membership.map(|m| m.to_string()),
                    action: i.action.label_fr().to_string(),
                    referral: i.referral_id.map(|r| r.to_string()),
                }
            })
            .collect();
        next = page.next_cursor.map(|c| {
            let keep = |k: &str| q.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
            let (o, a, d, u) = (keep("orientation"), keep("agent"), keep("du"), keep("au"));
            query_string(&[("orientation", &o), ("agent", &a), ("du", &d), ("au", &u), ("apres", &c)])
        });
    }
    let invalid = !errors.is_empty();
    let field = |k: &str| q.get(k).cloned().unwrap_or_default();
    let view = JournalView {
        chrome: auditor.chrome(if invalid { "Erreur : journal des accès" } else { "Journal des accès" }, "journal"),
        referral: field("orientation"),
        agent: field("agent"),
        from: field("du"),
        to: field("au"),
        filtered: ["orientation", "agent", "du", "au"].iter().any(|k| q.get(*k).is_some_and(|v| !v.trim().is_empty())),
        errors,
        lines,
        next,
    };
    Ok(render(if invalid { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK }, &view, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_read_as_a_role_and_an_account_or_a_token() {
        let account = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
        let parts = |actor: &str| actor_parts(&actor.parse().unwrap());
        assert_eq!(
            parts(&format!("referrer:0193a1b2-0000-7000-8000-000000000001:account:{account}")),
            ("Prescription", Some(("compte", account.to_string())))
        );
        assert_eq!(
            parts(&format!("coordinator:16,17:token:{account}")),
            ("Coordination", Some(("jeton", account.to_string())))
        );
        assert_eq!(parts(&format!("dpo:token:{account}")), ("Protection des données", Some(("jeton", account.into()))));
        assert_eq!(parts("operator:cli"), ("Exploitation (ligne de commande)", None));
        assert_eq!(parts("service:web"), ("Service d'Aiguillage", None));
        assert_eq!(parts("matcher"), ("Autre", None));
    }

    #[test]
    fn a_day_starts_at_midnight_in_paris() {
        let winter = NaiveDate::from_ymd_opt(2026, 1, 15).unwrap();
        assert_eq!(paris_midnight(winter), "2026-01-14T23:00:00Z");
        let summer = NaiveDate::from_ymd_opt(2026, 7, 15).unwrap();
        assert_eq!(paris_midnight(summer), "2026-07-14T22:00:00Z");
    }
}
