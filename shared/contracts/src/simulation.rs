//! What if (`POST /api/v1/simulations`): a past period of a territory's referrals
//! replayed against changed capacities. The matcher serialises the answer and the web
//! app reads it back.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The period, the seed of the acceptance draws, and the changes to try.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct SimulationRequest {
    /// Département code.
    #[schema(value_type = crate::api::Departement, required = true)]
    pub territory: Option<String>,
    /// First day, included (Europe/Paris), `2026-09-01`.
    #[schema(value_type = String, format = Date, required = true)]
    pub from: Option<String>,
    /// Last day, included; at most 366 days after `from`.
    #[schema(value_type = String, format = Date, required = true)]
    pub to: Option<String>,
    /// Seeds the draws of acceptance; the same request gives the same answer.
    #[serde(default, deserialize_with = "crate::api::integer")]
    #[schema(minimum = 0, maximum = 2147483647)]
    pub seed: Option<i64>,
    /// At most 50.
    #[serde(default)]
    #[schema(max_items = 50)]
    pub changes: Vec<SimulationChange>,
}

/// One change: a structure's weekly capacity, a structure closed, or a new structure.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct SimulationChange {
    pub structure_id: Option<String>,
    #[serde(default, deserialize_with = "crate::api::integer")]
    #[schema(minimum = 0, maximum = 10000)]
    pub weekly_capacity: Option<i64>,
    pub closed: Option<bool>,
    pub new_structure: Option<NewStructure>,
}

/// A structure that does not exist yet, at a commune's centre.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct NewStructure {
    pub name: Option<String>,
    pub commune_code: Option<String>,
    pub services: Option<Vec<String>>,
    pub modes: Option<Vec<String>>,
    pub languages: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::api::integer")]
    #[schema(minimum = 0, maximum = 10000)]
    pub weekly_capacity: Option<i64>,
}

/// The figures of one replay.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = SimulationMetrics)]
pub struct Metrics {
    pub referrals: usize,
    pub placed: usize,
    pub placed_share: f64,
    /// Of the referrals placed.
    pub within_30_km_share: f64,
    pub distance_km_p50: Option<f64>,
    /// From submission to the offer accepted, in days.
    pub wait_days_p50: Option<f64>,
    pub wait_days_p90: Option<f64>,
    pub waitlist_peak: usize,
    /// Still waiting at the end of the period, or escalated after the last refusal.
    pub unplaced: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CommuneComparison {
    pub commune_code: String,
    pub commune_name: Option<String>,
    pub baseline: Metrics,
    pub scenario: Metrics,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StructureLoad {
    /// `null` for a new structure of the scenario.
    pub structure_id: Option<String>,
    pub name: String,
    pub baseline_placed: usize,
    pub scenario_placed: usize,
    /// Referrals placed over the places of the period (weekly capacity × weeks).
    pub baseline_load: f64,
    pub scenario_load: f64,
}

/// How close the baseline came to what happened.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Fidelity {
    /// Referrals whose first offer was accepted in reality.
    pub compared: usize,
    /// Of those, the ones the baseline first offered to the same structure.
    pub same_first_offer: usize,
    pub share: Option<f64>,
}

/// The best any placement could have done with the same capacity (a min-cost flow over the
/// whole period).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OptimumView {
    pub placed: usize,
    pub placed_share: f64,
    pub distance_km_mean: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SimulationResponse {
    pub territory: String,
    pub from: String,
    pub to: String,
    pub seed: u64,
    pub baseline: Metrics,
    pub scenario: Metrics,
    pub communes: Vec<CommuneComparison>,
    pub structures: Vec<StructureLoad>,
    pub fidelity: Fidelity,
    /// `null` above 2,000 referrals (the flow's cost grows faster than the replay's).
    pub optimum_baseline: Option<OptimumView>,
    pub optimum_scenario: Option<OptimumView>,
    /// How long the replays took, in milliseconds.
    pub elapsed_ms: u64,
    /// What the replay simplifies.
    pub assumptions: Vec<String>,
}

/// A scenario to keep under a name, for the territory's coordinators to run again.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct SaveScenario {
    /// At most 120 characters; saving under a name the territory already has replaces it.
    #[schema(schema_with = crate::api::schema::text::<120>, required = true)]
    pub name: Option<String>,
    #[schema(value_type = SimulationRequest, required = true)]
    pub request: Option<SimulationRequest>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SavedScenario {
    pub id: uuid::Uuid,
    pub territory: String,
    pub name: String,
    pub request: SimulationRequest,
    pub saved_at: chrono::DateTime<chrono::Utc>,
}
