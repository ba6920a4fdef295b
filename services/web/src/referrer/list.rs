//! `/orientations`: the organisation's referrals, what needs attention first, newest
//! first within it, each with its status in words.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use contracts::referrals::ReferralView;
use contracts::{ReferralStatus, Urgency};

use super::status_fr;
use crate::error::PageError;
use crate::extract::{Referrers, SignedIn};
use crate::views::{Chrome, commune_name, paris, render};

/// The status as a referrer reads it: where the referral is, and with whom.
fn status_words(r: &ReferralView) -> String {
    let place = |name: Option<&String>| name.cloned().unwrap_or_else(|| "un lieu".into());
    match r.status {
        ReferralStatus::Submitted => "Envoyée, en recherche d'un lieu".into(),
        ReferralStatus::Offered => format!("Proposée à {}", place(r.current_offer.as_ref().map(|o| &o.structure_name))),
        ReferralStatus::Waitlisted if r.escalated => "En attente d'une place (signalée à la coordination)".into(),
        ReferralStatus::Waitlisted => "En attente d'une place".into(),
        ReferralStatus::Accepted => format!("Acceptée par {}", place(r.structure.as_ref().map(|s| &s.name))),
        ReferralStatus::InProgress => {
            format!("Accompagnement en cours à {}", place(r.structure.as_ref().map(|s| &s.name)))
        }
        ReferralStatus::Closed => match r.outcome {
            Some(o) => format!("Clôturée : {}", o.label_fr().to_lowercase()),
            None => "Clôturée".into(),
        },
        ReferralStatus::Cancelled => "Annulée".into(),
    }
}

/// What needs the referrer's attention comes first: waiting, then offered, then the rest.
fn attention(s: ReferralStatus) -> u8 {
    match s {
        ReferralStatus::Waitlisted => 0,
        ReferralStatus::Submitted | ReferralStatus::Offered => 1,
        ReferralStatus::Accepted | ReferralStatus::InProgress => 2,
        ReferralStatus::Closed | ReferralStatus::Cancelled => 3,
    }
}

pub struct Row {
    pub id: String,
    pub created: String,
    pub commune: String,
    pub needs: String,
    pub status: String,
    pub urgent: bool,
}

#[derive(askama::Template)]
#[template(path = "orientations.html")]
struct ListView {
    chrome: Chrome,
    rows: Vec<Row>,
    statuses: Vec<(&'static str, &'static str)>,
    chosen: String,
}

pub async fn show(
    referrer: SignedIn<Referrers>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let chosen = q.get("statut").map(|s| s.trim().to_string()).unwrap_or_default();
    let status = ReferralStatus::ALL.iter().copied().find(|s| s.slug() == chosen);
    let mut items = referrer.api.referrals(status).await?.items;
    // Newest first, within what needs attention first.
    items.sort_by_key(|r| (attention(r.status), std::cmp::Reverse(r.created_at)));
    let rows = items
        .iter()
        .map(|r| Row {
            created: paris(&r.created_at),
            commune: commune_name(r.commune_code.as_str()),
            needs: r.needs.iter().map(|n| n.label_fr()).collect::<Vec<_>>().join(", "),
            status: status_words(r),
            urgent: r.urgency == Urgency::Urgent,
            id: r.id.to_string(),
        })
        .collect();
    let page = ListView {
        chrome: referrer.chrome("Orientations de mon organisation", "orientations"),
        rows,
        statuses: ReferralStatus::ALL.iter().map(|s| (s.slug(), status_fr(*s))).collect(),
        chosen: status.map(|s| s.slug().to_string()).unwrap_or_default(),
    };
    Ok(render(StatusCode::OK, &page, true))
}
