//! `/territoire`: the queues of the territory's places and its waitlist, the escalated
//! referrals first, page by page.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use contracts::Urgency;

use super::{duration_fr, encode};
use crate::error::PageError;
use crate::extract::{Agent, Coordinators, SignedIn};
use crate::views::{Chrome, commune_name, render};

pub struct QueueRow {
    pub id: String,
    pub name: String,
    pub pending: i64,
    pub oldest: String,
    pub week: String,
    pub in_progress: i64,
    pub accepting: bool,
}

pub struct WaitRow {
    pub id: String,
    pub commune: String,
    pub needs: String,
    pub why: String,
    pub waiting: String,
    pub escalated: bool,
    pub urgent: bool,
}

/// Rows per page of the territory's tables: a département has hundreds of places and,
/// on a bad week, hundreds of waiting referrals; a page stays small.
const PER_PAGE: usize = 50;

/// Links to the other pages of a table: (href, text).
pub struct Pager {
    pub caption: String,
    pub previous: Option<String>,
    pub next: Option<String>,
}

fn pager(total: usize, page: usize, param: &str, other: &str, what: &str) -> Pager {
    let pages = total.div_ceil(PER_PAGE).max(1);
    let link = |p: usize| format!("/territoire?{param}={p}{other}");
    Pager {
        caption: if pages > 1 {
            format!("{what}, page {} sur {pages} ({total} en tout)", page + 1)
        } else {
            format!("{what} ({total})")
        },
        previous: (page > 0).then(|| link(page - 1)),
        next: (page + 1 < pages).then(|| link(page + 1)),
    }
}

fn page_param(q: &HashMap<String, String>, name: &str) -> usize {
    q.get(name).and_then(|p| p.trim().parse::<usize>().ok()).unwrap_or(0).min(10_000)
}

#[derive(askama::Template)]
#[template(path = "territoire.html")]
struct QueuesView {
    chrome: Chrome,
    week: String,
    structures: Vec<QueueRow>,
    structures_pager: Pager,
    waiting: Vec<WaitRow>,
    waiting_pager: Pager,
    count: i64,
    escalated: i64,
    /// The structures no offer can reach (from notifications).
    unreached: Unreached,
}

/// A structure nobody can tell about an offer: no mediator who signs in, and no public
/// e-mail address that takes mail. A coordinator can call it, or add an address.
pub struct UnreachedRow {
    pub name: String,
    pub phone: Option<String>,
    pub why: String,
}

/// The structures without an active mediator: those no offer reaches, and how many
/// others answer through the links of the offers' e-mails.
#[derive(Default)]
pub struct Unreached {
    pub rows: Vec<UnreachedRow>,
    pub by_email: usize,
}

pub async fn show(
    coordinator: SignedIn<Coordinators>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let q = coordinator.api.queues().await?;
    let (lieux, attente) = (page_param(&params, "lieux"), page_param(&params, "attente"));
    let structures_pager = pager(q.structures.len(), lieux, "lieux", &format!("&attente={attente}"), "Files d'attente");
    let waiting_pager = pager(
        q.waitlist.items.len(),
        attente,
        "attente",
        &format!("&lieux={lieux}"),
        "Liste d'attente, les orientations signalées d'abord",
    );
    let structures = q
        .structures
        .into_iter()
        .skip(lieux * PER_PAGE)
        .take(PER_PAGE)
        .map(|s| QueueRow {
            name: s.name,
            pending: s.pending_offers,
            oldest: duration_fr(s.oldest_pending_offer_seconds),
            week: format!("{} / {}", s.accepted_this_week, s.weekly_capacity),
            in_progress: s.in_progress,
            accepting: s.accepting,
            id: encode(s.structure_id.as_str()),
        })
        .collect();
    // The waitlist's facts come from events: a referral whose submission insights has not
    // seen yet has no commune, needs or reason so far.
    let waiting = q
        .waitlist
        .items
        .into_iter()
        .skip(attente * PER_PAGE)
        .take(PER_PAGE)
        .map(|w| WaitRow {
            commune: w.commune_code.as_ref().map(|c| commune_name(c.as_str())).unwrap_or_default(),
            needs: w.needs.iter().flatten().map(|n| n.label_fr()).collect::<Vec<_>>().join(", "),
            why: format!(
                "{} ({} proposition{})",
                w.reason.map_or("en attente", |r| r.label_fr()),
                w.offers,
                if w.offers > 1 { "s" } else { "" }
            ),
            waiting: duration_fr(w.waiting_seconds),
            escalated: w.escalated,
            urgent: w.urgency == Some(Urgency::Urgent),
            id: w.referral_id.to_string(),
        })
        .collect();
    let view = QueuesView {
        chrome: coordinator.chrome("Territoire", "territoire"),
        week: q.week,
        structures,
        structures_pager,
        waiting,
        waiting_pager,
        count: q.waitlist.count,
        escalated: q.waitlist.escalated,
        unreached: unreached(&coordinator).await,
    };
    Ok(render(StatusCode::OK, &view, true))
}

/// The structures no offer reaches; none when the notifications service does not answer
/// (the rest of the page does not depend on it).
async fn unreached(agent: &Agent) -> Unreached {
    let list = match agent.api.unreached_structures().await {
        Ok(list) => list,
        Err(err) => {
            tracing::warn!(error = %err, "structures without mediators unavailable");
            return Unreached::default();
        }
    };
    let (by_email, rows): (Vec<_>, Vec<_>) = list.items.into_iter().partition(|s| s.reachable_by_email);
    Unreached {
        by_email: by_email.len(),
        rows: rows
            .into_iter()
            .map(|s| UnreachedRow {
                why: match s.bounced_at {
                    Some(at) => format!("Son adresse e-mail refuse les messages (depuis le {})", day(&at)),
                    None if !s.has_contact_email => "Aucune adresse e-mail publique".to_string(),
                    None => "Son adresse e-mail ne reçoit pas les propositions".to_string(),
                },
                phone: s.phone.filter(|p| !p.trim().is_empty()),
                name: s.name,
            })
            .collect(),
    }
}

/// A day as people read it in France.
fn day(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.with_timezone(&chrono_tz::Europe::Paris).format("%d/%m/%Y").to_string()
}
