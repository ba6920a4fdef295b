//! Routing a referral: pick the best structure with capacity and reserve it, or put the
//! referral on the waitlist. Runs inside the caller's transaction, on a locked profile.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use contracts::Envelope;
use contracts::events::{MatchProposed, MatchWaitlisted};
use contracts::explain::Reason;
use contracts::week::{CapacityWeek, paris_local};
use contracts::{StructureId, WaitlistReason};
use sqlx::PgConnection;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::SCHEMA;
use crate::domain::engine::{self, Candidate, Demand, Excluded, Tried};
use crate::domain::index::Index;
use crate::store::{self, Profile, ProfileState, StructureChange};

/// The in-memory index of structures and the clock value it reflects.
pub struct Matcher {
    index: Mutex<(Arc<Index>, i64)>,
    pub max_attempts: u32,
    /// How recently a mediator must have signed in to answer for their structure
    /// (`AIGUILLAGE_MEDIATOR_ACTIVE_WITHIN`).
    pub active_within: std::time::Duration,
}

/// `AIGUILLAGE_MEDIATOR_ACTIVE_WITHIN`'s default, for a matcher built without a config.
const DEFAULT_ACTIVE_WITHIN: std::time::Duration = std::time::Duration::from_secs(90 * 86_400);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routed {
    Proposed(StructureId),
    Waitlisted(WaitlistReason),
}

/// What the candidates endpoint and the preview show.
#[derive(Debug)]
pub struct Assessment {
    pub candidates: Vec<Candidate>,
    pub excluded: Vec<Excluded>,
}

impl Matcher {
    pub fn new(max_attempts: u32) -> Self {
        Self { index: Mutex::new((Arc::new(Index::default()), 0)), max_attempts, active_within: DEFAULT_ACTIVE_WITHIN }
    }

    /// The matcher the configuration describes.
    pub fn from_config(config: &platform::Config) -> Self {
        Self::new(config.max_attempts).with_active_within(config.mediator_active_within)
    }

    pub fn with_active_within(mut self, active_within: std::time::Duration) -> Self {
        self.active_within = active_within;
        self
    }

    /// The index, brought up to date with every committed structure change. Never call
    /// this from a transaction that changed structures itself: its uncommitted rows would
    /// enter the shared index.
    pub async fn snapshot(&self, conn: &mut PgConnection) -> sqlx::Result<Arc<Index>> {
        let clock = store::clock(&mut *conn).await?;
        let mut guard = self.index.lock().await;
        if clock > guard.1 {
            let (changes, latest) = store::structure_changes(conn, guard.1).await?;
            let index = Arc::make_mut(&mut guard.0);
            for change in changes {
                match change {
                    StructureChange::Upsert(s) => index.upsert(*s),
                    StructureChange::Remove(id) => index.remove(id.as_str()),
                }
            }
            guard.1 = latest;
        }
        Ok(Arc::clone(&guard.0))
    }

    /// Routes a locked profile: proposes the best structure with capacity, else waitlists.
    pub async fn route(
        &self,
        conn: &mut PgConnection,
        p: &mut Profile,
        cause: Option<&Envelope>,
    ) -> sqlx::Result<Option<Routed>> {
        let Some(demand) = p.demand.clone() else { return Ok(None) };
        let started = Instant::now();
        let index = self.snapshot(&mut *conn).await?;
        let week = CapacityWeek::current().to_string();
        let now = Some(paris_local(Utc::now()));
        // Nearest first, reading the ledger only for what the search pulls, until the
        // best structure is settled; one that filled up meanwhile is skipped.
        let tried = p.tried.clone();
        let mut search = engine::Search::new(engine::feasible_nearest_first(&index, &demand, &tried));
        let mut usage: HashMap<String, u32> = HashMap::new();
        let mut batch = engine::SEARCH_BATCH;
        loop {
            let ids: Vec<String> = search.pull(batch).iter().map(|f| f.structure.id.to_string()).collect();
            if !ids.is_empty() {
                usage.extend(store::usage(&mut *conn, &ids, &week).await?);
            }
            batch = (batch * 2).min(1024);
            let settled = search.settled(|id| usage.get(id).copied().unwrap_or(0), now);
            for c in settled {
                if store::reserve(&mut *conn, &c.structure_id, &week, false).await? {
                    let reasons =
                        index.get(&c.structure_id).map(|s| engine::explain(&demand, &c, s)).unwrap_or_default();
                    platform::metrics::metrics().match_duration.observe(started.elapsed().as_secs_f64());
                    self.propose(conn, p, &c, reasons, &week, false, cause).await?;
                    return Ok(Some(Routed::Proposed(c.structure_id)));
                }
                // Another replica took its last place: full for this search.
                usage.insert(c.structure_id.to_string(), c.capacity);
            }
            if search.exhausted() {
                break;
            }
        }
        platform::metrics::metrics().match_duration.observe(started.elapsed().as_secs_f64());
        let reason = if search.found_any() { WaitlistReason::NoCapacity } else { WaitlistReason::NoStructureInRange };
        self.waitlist(conn, p, reason, false, cause).await?;
        Ok(Some(Routed::Waitlisted(reason)))
    }

    /// Offers the referral to a structure a coordinator chose. Without `force` the
    /// structure must have capacity left; with it, capacity is ignored.
    pub async fn route_to(
        &self,
        conn: &mut PgConnection,
        p: &mut Profile,
        structure_id: &StructureId,
        force: bool,
        cause: Option<&Envelope>,
    ) -> sqlx::Result<Routed> {
        let index = self.snapshot(&mut *conn).await?;
        let week = CapacityWeek::current().to_string();
        let Some(s) = index.get(structure_id) else {
            self.waitlist(conn, p, WaitlistReason::NoStructureInRange, true, cause).await?;
            return Ok(Routed::Waitlisted(WaitlistReason::NoStructureInRange));
        };
        if !store::reserve(&mut *conn, structure_id, &week, force).await? {
            self.waitlist(conn, p, WaitlistReason::NoCapacity, true, cause).await?;
            return Ok(Routed::Waitlisted(WaitlistReason::NoCapacity));
        }
        let used = store::usage(&mut *conn, &[structure_id.to_string()], &week).await?;
        let distance_km = p
            .demand
            .as_ref()
            .map(|d| {
                geo::distance_km(
                    geo::LatLon { lat: d.location.lat, lon: d.location.lon },
                    geo::LatLon { lat: s.location.lat, lon: s.location.lon },
                )
            })
            .unwrap_or(0.0);
        let c = Candidate {
            structure_id: s.id.clone(),
            name: s.name.clone(),
            distance_km,
            score: distance_km,
            used: used.get(structure_id.as_str()).copied().unwrap_or(0),
            capacity: s.weekly_capacity,
            next_opening: None,
            remote: false,
            reasons: Vec::new(),
        };
        let mut reasons = vec![Reason::ChosenByCoordinator { km: (distance_km * 10.0).round() / 10.0 }];
        if force {
            reasons.push(Reason::CapacityOverridden);
        }
        reasons.push(Reason::Load { used: c.used, capacity: c.capacity });
        self.propose(conn, p, &c, reasons, &week, force, cause).await?;
        Ok(Routed::Proposed(c.structure_id))
    }

    #[allow(clippy::too_many_arguments)]
    async fn propose(
        &self,
        conn: &mut PgConnection,
        p: &mut Profile,
        c: &Candidate,
        reasons: Vec<Reason>,
        week: &str,
        forced: bool,
        cause: Option<&Envelope>,
    ) -> sqlx::Result<()> {
        let reservation_id = Uuid::now_v7();
        store::insert_reservation(&mut *conn, reservation_id, p.referral_id, &c.structure_id, week, forced).await?;
        p.attempts += 1;
        p.tried.insert(c.structure_id.to_string(), Tried::Offered);
        p.state = ProfileState::Proposed;
        p.current_structure = Some(c.structure_id.clone());
        p.current_reservation = Some(reservation_id);
        p.waitlist_reason = None;
        p.escalated = false;
        p.sequence += 1;
        store::save_profile(&mut *conn, p).await?;
        let event = MatchProposed {
            referral_id: p.referral_id,
            round: p.round,
            structure_id: c.structure_id.clone(),
            structure_name: c.name.clone(),
            attempt: p.attempts,
            score: round3(c.score),
            distance_km: round3(c.distance_km),
            explanation: reasons.iter().map(Reason::text_en).collect(),
            reasons,
            reservation_id,
            proposed_at: Utc::now(),
        };
        tracing::info!(referral_id = %p.referral_id, structure_id = %c.structure_id, attempt = p.attempts, "proposed");
        let mut envelope = Envelope::new(p.referral_id.to_string(), p.sequence, &event);
        if let Some(cause) = cause {
            envelope = envelope.caused_by(cause);
        }
        bus::enqueue(conn, SCHEMA, &envelope).await
    }

    /// Puts the referral on the waitlist. A referral already waiting for the same reason
    /// is left as it is, without a new event.
    pub async fn waitlist(
        &self,
        conn: &mut PgConnection,
        p: &mut Profile,
        reason: WaitlistReason,
        escalated: bool,
        cause: Option<&Envelope>,
    ) -> sqlx::Result<()> {
        let unchanged =
            p.state == ProfileState::Waitlisted && p.waitlist_reason == Some(reason) && p.escalated == escalated;
        p.state = ProfileState::Waitlisted;
        p.current_structure = None;
        p.current_reservation = None;
        p.waitlist_reason = Some(reason);
        p.escalated = escalated;
        if unchanged {
            return store::save_profile(conn, p).await;
        }
        p.sequence += 1;
        store::save_profile(&mut *conn, p).await?;
        let event = MatchWaitlisted {
            referral_id: p.referral_id,
            round: p.round,
            reason,
            escalated,
            attempt: p.attempts,
            waitlisted_at: Utc::now(),
        };
        tracing::info!(referral_id = %p.referral_id, reason = %reason, escalated, "waitlisted");
        let mut envelope = Envelope::new(p.referral_id.to_string(), p.sequence, &event);
        if let Some(cause) = cause {
            envelope = envelope.caused_by(cause);
        }
        bus::enqueue(conn, SCHEMA, &envelope).await
    }

    /// The candidates and the excluded structures nearby, for people to see why.
    pub async fn assess(
        &self,
        conn: &mut PgConnection,
        demand: &Demand,
        tried: &std::collections::HashMap<String, Tried>,
        limit: usize,
    ) -> sqlx::Result<Assessment> {
        let index = self.snapshot(&mut *conn).await?;
        let week = CapacityWeek::current().to_string();
        let radius = (demand.max_distance_km * 1.5).max(demand.max_distance_km + 15.0);
        let feasible = engine::feasible(&index, demand, tried);
        let nearby: Vec<String> = index.within(demand.location, radius).map(|s| s.id.to_string()).collect();
        let mut ids: Vec<String> = feasible.iter().map(|f| f.structure.id.to_string()).collect();
        ids.extend(nearby);
        ids.sort();
        ids.dedup();
        let usage = store::usage(conn, &ids, &week).await?;
        let used = |id: &str| usage.get(id).copied().unwrap_or(0);
        let (mut candidates, _) = engine::rank(&feasible, used, Some(paris_local(Utc::now())));
        candidates.truncate(limit);
        for c in &mut candidates {
            if let Some(s) = index.get(&c.structure_id) {
                c.reasons = engine::explain(demand, c, s);
            }
        }
        let excluded = engine::excluded_nearby(&index, demand, tried, used, radius, 50);
        Ok(Assessment { candidates, excluded })
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
