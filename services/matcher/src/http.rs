//! HTTP: why a referral goes where it goes. `GET /api/v1/referrals/{id}/candidates` for
//! a submitted referral, and `POST /api/v1/match/preview` for a profile with no personal
//! data, before anything is submitted.

use std::collections::HashMap;

use axum::extract::State;
use axum::{Json as AxumJson, Router};
use contracts::api::PreviewRequest;
use contracts::events::Point;
use contracts::matching::{AssessmentView, CandidateView, ExcludedView, LoadView, ReasonView};
use contracts::simulation::{SaveScenario, SavedScenario, SimulationRequest, SimulationResponse};
use contracts::validate::Errors;
use contracts::{Accessibility, Language, Need, ReferralId, ReferralMode, Role, Urgency};
use platform::ApiError;
use platform::auth::Authorized;
use platform::auth::roles::{Coordinators, Previewers};
use platform::json::{Json, Query};
use platform::path::Path;
use platform::problem::responses::{Authenticated, Forbidden, InvalidQuery, JsonBody, NotFound};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::MatcherState;
use crate::domain::engine::{Candidate, Demand, Excluded};
use crate::routing::Assessment;
use crate::{simulation, store};

/// The routes with their OpenAPI operations: one list, so the document cannot describe a
/// route the router does not serve.
pub fn routes() -> OpenApiRouter<MatcherState> {
    OpenApiRouter::new()
        .routes(routes!(candidates))
        .routes(routes!(preview))
        .routes(routes!(simulate))
        .routes(routes!(save_scenario, scenarios))
}

pub fn router(state: MatcherState) -> Router {
    routes().split_for_parts().0.with_state(state)
}

fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn candidate_view(c: Candidate) -> CandidateView {
    CandidateView {
        structure_id: c.structure_id,
        name: c.name,
        distance_km: round(c.distance_km),
        score: round(c.score),
        load: LoadView { used: c.used, weekly_capacity: c.capacity },
        next_opening: c.next_opening.map(|t| t.format("%Y-%m-%dT%H:%M").to_string()),
        remote: c.remote,
        explanation: c.reasons.iter().map(contracts::explain::Reason::text_en).collect(),
        reasons: c.reasons,
    }
}

fn excluded_view(e: Excluded) -> ExcludedView {
    ExcludedView {
        structure_id: e.structure_id,
        name: e.name,
        distance_km: round(e.distance_km),
        reasons: e.reasons.iter().map(|r| ReasonView { code: r.code(), message: r.message() }).collect(),
        // Only for a structure excluded as unreachable (see `Excluded::phone`).
        phone: e.phone,
    }
}

fn view(referral_id: Option<ReferralId>, demand: &Demand, a: Assessment) -> AssessmentView {
    AssessmentView {
        referral_id,
        max_distance_km: demand.max_distance_km,
        candidates: a.candidates.into_iter().map(candidate_view).collect(),
        excluded: a.excluded.into_iter().map(excluded_view).collect(),
    }
}

/// `{id}`: a referral's id. Anything else answers 404.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct ReferralPath {
    id: Uuid,
}

/// Why: the best feasible structures with score and explanation, and the excluded nearby
/// ones with the constraint that excluded them (the referrer organisation; the
/// coordinator of the referral's territory, to reroute it; admin).
#[utoipa::path(
    get,
    path = "/api/v1/referrals/{id}/candidates",
    operation_id = "getCandidates",
    tag = "matching",
    params(ReferralPath),
    responses((status = 200, description = "The assessment", body = AssessmentView), Authenticated, Forbidden, NotFound)
)]
async fn candidates(
    State(state): State<MatcherState>,
    caller: Authorized<Previewers>,
    Path(id): Path<ReferralId>,
) -> Result<AxumJson<AssessmentView>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let profile = store::profile(&mut conn, id).await?.ok_or_else(ApiError::not_found)?;
    let allowed = match caller.role {
        Some(Role::Admin) => true,
        Some(Role::Referrer) => profile.organisation_id.is_some() && profile.organisation_id == caller.organisation(),
        Some(Role::Coordinator) => profile.territory.as_ref().is_some_and(|t| caller.covers_territory(t)),
        _ => false,
    };
    if !allowed {
        return Err(ApiError::not_found());
    }
    let demand = profile.demand.clone().ok_or_else(ApiError::not_found)?;
    // The structure holding the current offer is the chosen candidate, not an excluded one.
    let mut tried = profile.tried.clone();
    if let Some(current) = &profile.current_structure {
        tried.remove(current.as_str());
    }
    let assessment = state.matcher.assess(&mut conn, &demand, &tried, 10).await?;
    Ok(AxumJson(view(Some(id), &demand, assessment)))
}

/// The same for a profile with no personal data, before submitting (referrer;
/// coordinator; admin).
#[utoipa::path(
    post,
    path = "/api/v1/match/preview",
    operation_id = "previewMatch",
    tag = "matching",
    request_body = PreviewRequest,
    responses((status = 200, description = "The assessment", body = AssessmentView), Authenticated, Forbidden, JsonBody)
)]
async fn preview(
    State(state): State<MatcherState>,
    _previewer: Authorized<Previewers>,
    Json(req): Json<PreviewRequest>,
) -> Result<AxumJson<AssessmentView>, ApiError> {
    let demand = parse_preview(&req, state.config.max_distance_km).map_err(ApiError::validation)?;
    let limit = match req.limit {
        Some(l) if !(0..=i64::from(u32::MAX)).contains(&l) => {
            return Err(ApiError::invalid_field("limit", "must be between 0 and 4294967295"));
        }
        l => l.unwrap_or(10).clamp(1, 50) as usize,
    };
    let mut conn = state.pool.acquire().await?;
    let assessment = state.matcher.assess(&mut conn, &demand, &HashMap::new(), limit).await?;
    Ok(AxumJson(view(None, &demand, assessment)))
}

/// What if: the territory's referrals of a past period replayed through the matching
/// engine, as things were and with the changes (coordinator of the territory; admin).
/// Nothing live is touched. See `crate::simulation`.
#[utoipa::path(
    post,
    path = "/api/v1/simulations",
    operation_id = "simulate",
    tag = "matching",
    request_body = SimulationRequest,
    responses((status = 200, description = "Baseline and scenario", body = SimulationResponse), Authenticated, Forbidden, JsonBody)
)]
async fn simulate(
    State(state): State<MatcherState>,
    caller: Authorized<Coordinators>,
    Json(req): Json<SimulationRequest>,
) -> Result<AxumJson<SimulationResponse>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let index = state.matcher.snapshot(&mut conn).await?;
    let structures: Vec<_> = index.iter().cloned().collect();
    let parsed = simulation::parse(&req, &structures)?;
    if caller.role != Some(Role::Admin) && !caller.covers_territory(parsed.territory.as_str()) {
        return Err(ApiError::forbidden());
    }
    drop(conn);
    // One simulation at a time, loading included; a period loaded a moment ago is reused.
    let _turn = simulation::turn().await?;
    let mut conn = state.pool.acquire().await?;
    let worker = state.simulation_worker.as_deref();
    let period = simulation::period(&state.periods, &mut conn, &parsed, worker.is_some()).await?;
    drop(conn);
    let answer = simulation::run(worker, parsed, structures, period, state.matcher.max_attempts).await?;
    Ok(AxumJson(answer))
}

/// `?territory=`: a département code the caller covers.
#[derive(Debug, serde::Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ScenariosQuery {
    #[param(value_type = contracts::api::Departement, required = true)]
    territory: Option<String>,
}

/// Keeps a scenario under a name for the territory's coordinators to run again; a name the
/// territory already has is replaced (coordinator of the territory; admin).
#[utoipa::path(
    post,
    path = "/api/v1/simulations/scenarios",
    operation_id = "saveScenario",
    tag = "matching",
    request_body = SaveScenario,
    responses((status = 200, description = "The scenario saved", body = SavedScenario), Authenticated, Forbidden, JsonBody)
)]
async fn save_scenario(
    State(state): State<MatcherState>,
    caller: Authorized<Coordinators>,
    Json(req): Json<SaveScenario>,
) -> Result<AxumJson<SavedScenario>, ApiError> {
    let name = req.name.as_deref().map(str::trim).unwrap_or_default().to_string();
    if name.is_empty() || name.chars().count() > 120 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid_field("name", "a name of 1 to 120 characters"));
    }
    let Some(request) = req.request else { return Err(ApiError::invalid_field("request", "required")) };
    let mut conn = state.pool.acquire().await?;
    let index = state.matcher.snapshot(&mut conn).await?;
    let structures: Vec<_> = index.iter().cloned().collect();
    // Checked as a simulation would be, so that a saved scenario always runs.
    let parsed = simulation::parse(&request, &structures).map_err(|mut e| {
        for f in &mut e.errors {
            f.field = format!("request.{}", f.field);
        }
        e
    })?;
    if caller.role != Some(Role::Admin) && !caller.covers_territory(parsed.territory.as_str()) {
        return Err(ApiError::forbidden());
    }
    Ok(AxumJson(simulation::save(&mut conn, parsed.territory.as_str(), &name, &request).await?))
}

/// The territory's saved scenarios, newest first (coordinator of the territory; admin).
#[utoipa::path(
    get,
    path = "/api/v1/simulations/scenarios",
    operation_id = "listScenarios",
    tag = "matching",
    params(ScenariosQuery),
    responses((status = 200, description = "The scenarios", body = [SavedScenario]), Authenticated, Forbidden, InvalidQuery)
)]
async fn scenarios(
    State(state): State<MatcherState>,
    caller: Authorized<Coordinators>,
    Query(q): Query<ScenariosQuery>,
) -> Result<AxumJson<Vec<SavedScenario>>, ApiError> {
    let Some(territory) = q.territory.filter(|t| geo::is_departement_code(t)) else {
        return Err(ApiError::invalid_field("territory", "a département code"));
    };
    if caller.role != Some(Role::Admin) && !caller.covers_territory(&territory) {
        return Err(ApiError::forbidden());
    }
    let mut conn = state.pool.acquire().await?;
    Ok(AxumJson(simulation::saved(&mut conn, &territory).await?))
}

fn parse_preview(req: &PreviewRequest, default_distance: f64) -> Result<Demand, Vec<contracts::FieldError>> {
    let mut e = Errors::new();
    let commune = match geo::communes().resolve(req.commune_code.as_deref(), req.postcode.as_deref(), None) {
        Ok(c) => Some(c),
        Err(err) => {
            let field = match err {
                geo::ResolveError::UnknownPostcode(_) => "postcode",
                _ => "commune_code",
            };
            e.add(field, err.to_string());
            None
        }
    };
    let needs: Vec<Need> = e.list("needs", req.needs.as_deref(), true);
    let mut modes: Vec<ReferralMode> = e.list("modes", req.modes.as_deref(), false);
    if modes.is_empty() {
        modes.push(ReferralMode::InPerson);
    }
    let mut languages: Vec<Language> = e.list("languages", req.languages.as_deref(), false);
    if languages.is_empty() {
        languages.push(Language::french());
    }
    let accessibility: Vec<Accessibility> = e.list("accessibility", req.accessibility.as_deref(), false);
    let max_distance_km = req.max_distance_km.unwrap_or(default_distance);
    if !(max_distance_km.is_finite() && max_distance_km > 0.0 && max_distance_km <= 1000.0) {
        e.add("max_distance_km", "must be between 0 and 1000");
    }
    let urgency = e.one("urgency", req.urgency.as_deref(), Some(Urgency::Normal));
    e.finish(|| Demand {
        location: commune
            .map(|c| Point { lat: c.location.lat, lon: c.location.lon })
            .unwrap_or(Point { lat: 0.0, lon: 0.0 }),
        needs,
        modes,
        languages,
        accessibility,
        max_distance_km,
        urgency: urgency.unwrap_or(Urgency::Normal),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::engine::Exclusion;

    #[test]
    fn an_unknown_postcode_is_reported_on_the_postcode() {
        let req = PreviewRequest {
            commune_code: Some(String::new()),
            postcode: Some("00000".into()),
            needs: Some(vec!["loisirs_creations".into()]),
            ..PreviewRequest::default()
        };
        let errors = parse_preview(&req, 30.0).err().unwrap_or_default();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["postcode"]);
    }

    #[test]
    fn the_document_lists_every_exclusion_code() {
        let every = [
            Exclusion::NotAccepting,
            Exclusion::MissingServices(vec![]),
            Exclusion::NoFittingMode,
            Exclusion::BeyondDistance { max_km: 1.0 },
            Exclusion::NoSharedLanguage,
            Exclusion::MissingAccessibility(vec![]),
            Exclusion::AlreadyTried { outcome: crate::domain::engine::Tried::Declined },
            Exclusion::NoCapacity { used: 0, capacity: 0 },
            Exclusion::Unreachable,
        ];
        // A new variant breaks this match, and so the test, until it is listed above.
        for e in &every {
            match e {
                Exclusion::NotAccepting
                | Exclusion::MissingServices(_)
                | Exclusion::NoFittingMode
                | Exclusion::BeyondDistance { .. }
                | Exclusion::NoSharedLanguage
                | Exclusion::MissingAccessibility(_)
                | Exclusion::AlreadyTried { .. }
                | Exclusion::NoCapacity { .. }
                | Exclusion::Unreachable => {}
            }
        }
        let codes: Vec<contracts::ExclusionCode> = every.iter().map(Exclusion::code).collect();
        assert_eq!(codes, contracts::ExclusionCode::ALL, "one code each, the vocabulary's");
    }
}
