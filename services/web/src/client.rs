//! The API as a page calls it: one method per endpoint, with the request and answer
//! types of `contracts` that the services themselves serialise. A page names what it
//! wants (`client.referral(id)`), never a path or a JSON field, and an answer that is not
//! the type it should be is an error ([`ApiFailure::Shape`]), never a guess.

use contracts::accounts::{
    InvitationBody, InvitationResult, InvitationView, MeView, MembershipRequestBody, Page, Places, PreferencesBody,
    RequestView, SignInFailure, SignInRequest, SignInResponse,
};
use contracts::answer_links::{LinkSession, LinkToken};
use contracts::api::{
    AcceptRequest, CancelRequest, CapacityRequest, CloseRequest, ContactRequest, DeclineRequest, OrganisationRequest,
    PreviewRequest, ReferralRequest, RerouteRequest, StructureRequest,
};
use contracts::directory::{ImportReport, OrganisationPage, OrganisationView, StructurePage, StructureView};
use contracts::insights::{FunnelView, OpenDataFile, Queues, StructureReport, SupplyDemand};
use contracts::matching::AssessmentView;
use contracts::notifications::UnreachedList;
use contracts::referrals::{AppointmentBody, AttendanceBody, AuditPage, ReferralPage, ReferralView};
use contracts::simulation::{SaveScenario, SavedScenario, SimulationRequest, SimulationResponse};
use contracts::{ReferralId, ReferralStatus, StructureId, Territory};
use http::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::api::{Api, ApiFailure};

/// One caller of the API: a page's agent, as their active membership, or the web
/// service itself.
#[derive(Clone)]
pub struct Client {
    api: Api,
    token: String,
}

type Answer<T> = Result<T, ApiFailure>;

/// A path segment: structure ids come from source data.
fn segment(id: &str) -> String {
    form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

/// `path?name=value&…`, leaving out the parameters without a value.
fn with_query(path: &str, params: &[(&str, Option<&str>)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    let query = query.finish();
    if query.is_empty() { path.to_string() } else { format!("{path}?{query}") }
}

/// What a link opens (`POST /api/v1/answer-links/exchange`).
pub enum LinkOpened {
    /// A valid link: a bearer token for its referral at its structure, and its forms' token.
    Open(LinkSession),
    /// No such link (404).
    Unknown,
    /// The link has ended or expired (410); `renewable`: a new one may be sent (the
    /// structure still follows the referral).
    Gone { renewable: bool },
}

/// A new link asked for (`POST /api/v1/answer-links/renewals`).
#[derive(Debug, PartialEq, Eq)]
pub enum Renewal {
    /// 202: a new link goes to the structure's public address.
    Sent,
    /// 429: one was sent less than an hour ago.
    TooSoon,
    /// 404: no such link.
    Unknown,
    /// 410: the referral is no longer the structure's to follow.
    Gone,
}

/// The `renewable` extension of the 410 problem of an ended link.
#[derive(serde::Deserialize)]
struct LinkGone {
    renewable: bool,
}

/// A link endpoint's answer as a `T`. Its error says where the answer is wrong, never
/// what it holds: serde's message may quote a value, and this answer holds a bearer token.
fn read_link<T: DeserializeOwned>(path: &str, bytes: &[u8]) -> Answer<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiFailure::Shape(format!("{path}: not the expected answer (line {}, column {})", e.line(), e.column()))
    })
}

/// A JSON body.
fn json<B: Serialize>(body: &B) -> Answer<(&'static str, Vec<u8>)> {
    Ok(("application/json", serde_json::to_vec(body).map_err(|e| ApiFailure::Shape(e.to_string()))?))
}

/// The referrals pages list at most this many: an organisation's or a structure's open
/// referrals fit in one page.
const LIST_LIMIT: &str = "200";

impl Client {
    pub fn new(api: Api, token: String) -> Self {
        Self { api, token }
    }

    /// A call that must succeed, its answer read as a `T` (`()` for an empty one).
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        headers: &[(&str, &str)],
    ) -> Answer<T> {
        let (status, bytes) = self.api.exchange(method, path, &self.token, body, headers).await?;
        if !status.is_success() {
            return Err(ApiFailure::refused(status, &bytes));
        }
        let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(bytes).map_err(|e| ApiFailure::Shape(format!("{path}: {e}")))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Answer<T> {
        self.call(Method::GET, path, None, &[]).await
    }

    async fn send<B: Serialize, T: DeserializeOwned>(&self, method: Method, path: &str, body: &B) -> Answer<T> {
        self.call(method, path, Some(json(body)?), &[]).await
    }

    async fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Answer<T> {
        self.call(Method::POST, path, None, &[]).await
    }

    // ------------------------------------------------------------------ accounts

    /// Who is calling; `requests`: with their membership requests still waiting.
    pub async fn me(&self, requests: bool) -> Answer<MeView> {
        self.get(if requests { "/api/v1/me" } else { "/api/v1/me?requests=false" }).await
    }

    pub async fn sign_in(&self, body: &SignInRequest) -> Answer<SignInResponse> {
        self.send(Method::POST, "/api/v1/accounts/sign-ins", body).await
    }

    pub async fn sign_in_failure(&self, body: &SignInFailure) -> Answer<()> {
        self.send(Method::POST, "/api/v1/accounts/sign-in-failures", body).await
    }

    pub async fn sign_out(&self) -> Answer<()> {
        self.post_empty("/api/v1/accounts/sign-outs").await
    }

    /// The places of the agent's SIRET, or those matching `search`.
    pub async fn places(&self, search: Option<&str>) -> Answer<Places> {
        self.get(&with_query("/api/v1/accounts/places", &[("q", search), ("limit", search.map(|_| "50"))])).await
    }

    pub async fn request_membership(&self, body: &MembershipRequestBody) -> Answer<RequestView> {
        self.send(Method::POST, "/api/v1/accounts/requests", body).await
    }

    pub async fn membership_requests(&self) -> Answer<Page<RequestView>> {
        self.get("/api/v1/accounts/requests?limit=200").await
    }

    pub async fn approve_request(&self, id: Uuid) -> Answer<Option<RequestView>> {
        self.post_empty(&format!("/api/v1/accounts/requests/{id}/approve")).await
    }

    pub async fn refuse_request(&self, id: Uuid) -> Answer<Option<RequestView>> {
        self.post_empty(&format!("/api/v1/accounts/requests/{id}/refuse")).await
    }

    pub async fn invitations(&self) -> Answer<Page<InvitationView>> {
        self.get("/api/v1/accounts/invitations?limit=200").await
    }

    pub async fn invite(&self, body: &InvitationBody) -> Answer<InvitationResult> {
        self.send(Method::POST, "/api/v1/accounts/invitations", body).await
    }

    pub async fn preferences(&self) -> Answer<PreferencesBody> {
        self.get("/api/v1/me/preferences").await
    }

    pub async fn set_preferences(&self, body: &PreferencesBody) -> Answer<PreferencesBody> {
        self.send(Method::PUT, "/api/v1/me/preferences", body).await
    }

    // ------------------------------------------------------------------ directory

    /// A page of organisations, after `cursor`.
    pub async fn organisations(&self, cursor: Option<&str>) -> Answer<OrganisationPage> {
        self.get(&with_query("/api/v1/organisations", &[("limit", Some("100")), ("cursor", cursor)])).await
    }

    pub async fn create_organisation(&self, body: &OrganisationRequest) -> Answer<OrganisationView> {
        self.send(Method::POST, "/api/v1/organisations", body).await
    }

    /// A page of structures, of one territory or all the caller sees, after `cursor`.
    pub async fn structures(&self, territory: Option<&Territory>, cursor: Option<&str>) -> Answer<StructurePage> {
        let params = [("limit", Some("100")), ("territory", territory.map(Territory::as_str)), ("cursor", cursor)];
        self.get(&with_query("/api/v1/structures", &params)).await
    }

    pub async fn structure(&self, id: &StructureId) -> Answer<StructureView> {
        self.get(&format!("/api/v1/structures/{}", segment(id.as_str()))).await
    }

    pub async fn put_structure(&self, id: &StructureId, body: &StructureRequest) -> Answer<StructureView> {
        self.send(Method::PUT, &format!("/api/v1/structures/{}", segment(id.as_str())), body).await
    }

    pub async fn set_capacity(&self, id: &StructureId, body: &CapacityRequest) -> Answer<StructureView> {
        self.send(Method::PUT, &format!("/api/v1/structures/{}/capacity", segment(id.as_str())), body).await
    }

    /// Imports a Mednum file (`application/json` or `text/csv`).
    pub async fn import_structures(&self, content_type: &str, bytes: Vec<u8>) -> Answer<ImportReport> {
        self.call(Method::POST, "/api/v1/structures/import", Some((content_type, bytes)), &[]).await
    }

    // ------------------------------------------------------------------ referrals

    /// The referrals the caller sees, newest first, of one status or all.
    pub async fn referrals(&self, status: Option<ReferralStatus>) -> Answer<ReferralPage> {
        let params = [("limit", Some(LIST_LIMIT)), ("status", status.map(ReferralStatus::slug))];
        self.get(&with_query("/api/v1/referrals", &params)).await
    }

    pub async fn referral(&self, id: ReferralId) -> Answer<ReferralView> {
        self.get(&format!("/api/v1/referrals/{id}")).await
    }

    /// Submits a referral; the same `key` twice submits it once.
    pub async fn submit(&self, body: &ReferralRequest, key: Option<&str>) -> Answer<ReferralView> {
        let key: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
        self.call(Method::POST, "/api/v1/referrals", Some(json(body)?), &key).await
    }

    pub async fn accept(&self, id: ReferralId, body: &AcceptRequest) -> Answer<ReferralView> {
        self.send(Method::POST, &format!("/api/v1/referrals/{id}/accept"), body).await
    }

    pub async fn decline(&self, id: ReferralId, body: &DeclineRequest) -> Answer<ReferralView> {
        self.send(Method::POST, &format!("/api/v1/referrals/{id}/decline"), body).await
    }

    pub async fn contact(&self, id: ReferralId, body: &ContactRequest) -> Answer<ReferralView> {
        self.send(Method::POST, &format!("/api/v1/referrals/{id}/contact"), body).await
    }

    pub async fn close(&self, id: ReferralId, body: &CloseRequest) -> Answer<ReferralView> {
        self.send(Method::POST, &format!("/api/v1/referrals/{id}/close"), body).await
    }

    pub async fn cancel(&self, id: ReferralId, body: &CancelRequest) -> Answer<ReferralView> {
        self.send(Method::POST, &format!("/api/v1/referrals/{id}/cancel"), body).await
    }

    pub async fn reroute(&self, id: ReferralId, body: &RerouteRequest) -> Answer<ReferralView> {
        self.send(Method::POST, &format!("/api/v1/referrals/{id}/reroute"), body).await
    }

    /// Sets the appointment, or moves it (the accepting structure).
    pub async fn set_appointment(&self, id: ReferralId, body: &AppointmentBody) -> Answer<ReferralView> {
        self.send(Method::PUT, &format!("/api/v1/referrals/{id}/appointment"), body).await
    }

    pub async fn cancel_appointment(&self, id: ReferralId) -> Answer<ReferralView> {
        self.call(Method::DELETE, &format!("/api/v1/referrals/{id}/appointment"), None, &[]).await
    }

    /// Whether the person came, once the appointment's time has passed.
    pub async fn record_attendance(&self, id: ReferralId, body: &AttendanceBody) -> Answer<ReferralView> {
        self.send(Method::POST, &format!("/api/v1/referrals/{id}/appointment/attendance"), body).await
    }

    // ------------------------------------------------------------------ answer links

    /// Opens an answer link (the web service): the token goes in the body, never in a
    /// path the API could log.
    pub async fn open_link(&self, token: &LinkToken) -> Answer<LinkOpened> {
        const PATH: &str = "/api/v1/answer-links/exchange";
        let (status, bytes) = self.api.exchange(Method::POST, PATH, &self.token, Some(json(token)?), &[]).await?;
        match status {
            StatusCode::OK => read_link(PATH, &bytes).map(LinkOpened::Open),
            StatusCode::NOT_FOUND => Ok(LinkOpened::Unknown),
            StatusCode::GONE => {
                read_link::<LinkGone>(PATH, &bytes).map(|g| LinkOpened::Gone { renewable: g.renewable })
            }
            _ => Err(ApiFailure::refused(status, &bytes)),
        }
    }

    /// Asks for a new link to the structure's public address (the web service).
    pub async fn renew_link(&self, token: &LinkToken) -> Answer<Renewal> {
        const PATH: &str = "/api/v1/answer-links/renewals";
        let (status, bytes) = self.api.exchange(Method::POST, PATH, &self.token, Some(json(token)?), &[]).await?;
        match status {
            StatusCode::ACCEPTED => Ok(Renewal::Sent),
            StatusCode::TOO_MANY_REQUESTS => Ok(Renewal::TooSoon),
            StatusCode::NOT_FOUND => Ok(Renewal::Unknown),
            StatusCode::GONE => Ok(Renewal::Gone),
            _ => Err(ApiFailure::refused(status, &bytes)),
        }
    }

    // ------------------------------------------------------------------ matching

    pub async fn candidates(&self, id: ReferralId) -> Answer<AssessmentView> {
        self.get(&format!("/api/v1/referrals/{id}/candidates")).await
    }

    pub async fn preview(&self, body: &PreviewRequest) -> Answer<AssessmentView> {
        self.send(Method::POST, "/api/v1/match/preview", body).await
    }

    /// What if: the territory's past referrals replayed with the changes.
    pub async fn simulate(&self, body: &SimulationRequest) -> Answer<SimulationResponse> {
        self.send(Method::POST, "/api/v1/simulations", body).await
    }

    /// Keeps a scenario under a name for its territory; a name it already has is replaced.
    pub async fn save_scenario(&self, body: &SaveScenario) -> Answer<SavedScenario> {
        self.send(Method::POST, "/api/v1/simulations/scenarios", body).await
    }

    /// The territory's saved scenarios, newest first.
    pub async fn scenarios(&self, territory: &Territory) -> Answer<Vec<SavedScenario>> {
        self.get(&with_query("/api/v1/simulations/scenarios", &[("territory", Some(territory.as_str()))])).await
    }

    // ------------------------------------------------------------------ insights

    pub async fn queues(&self) -> Answer<Queues> {
        self.get("/api/v1/insights/queues").await
    }

    /// The funnel of the referrals submitted in `[from, to)`.
    pub async fn funnel(&self, from: chrono::NaiveDate, to: chrono::NaiveDate) -> Answer<FunnelView> {
        self.get(&format!("/api/v1/insights/funnel?from={from}&to={to}")).await
    }

    /// The open statistics, of one département (or `France`) or all.
    pub async fn open_data(&self, departement: Option<&str>) -> Answer<OpenDataFile> {
        self.get(&with_query("/api/v1/open-data/referrals.json", &[("departement", departement)])).await
    }

    pub async fn supply_demand(&self) -> Answer<SupplyDemand> {
        self.get("/api/v1/insights/supply-demand").await
    }

    /// A structure's month (`YYYY-MM`; this month without one).
    pub async fn structure_report(&self, id: &StructureId, month: Option<&str>) -> Answer<StructureReport> {
        let path = format!("/api/v1/insights/structures/{}/report", segment(id.as_str()));
        self.get(&with_query(&path, &[("month", month)])).await
    }

    /// The same, as the CSV file the API writes.
    pub async fn structure_report_csv(&self, id: &StructureId, month: Option<&str>) -> Answer<Vec<u8>> {
        let path = format!("/api/v1/insights/structures/{}/report", segment(id.as_str()));
        let path = with_query(&path, &[("format", Some("csv")), ("month", month)]);
        let (status, bytes) = self.api.exchange(Method::GET, &path, &self.token, None, &[]).await?;
        if !status.is_success() {
            return Err(ApiFailure::refused(status, &bytes));
        }
        Ok(bytes)
    }

    /// A page of the audit of access to personal data; `filter`: the API's query
    /// parameters (`referral_id`, `agent`, `from`, `to`, `cursor`, `limit`).
    pub async fn audit(&self, filter: &[(&str, Option<&str>)]) -> Answer<AuditPage> {
        self.get(&with_query("/api/v1/audit", filter)).await
    }

    // ------------------------------------------------------------------ notifications

    pub async fn unreached_structures(&self) -> Answer<UnreachedList> {
        self.get("/api/v1/notifications/unreached-structures").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_keeps_only_the_parameters_given_and_encodes_them() {
        assert_eq!(with_query("/p", &[("a", None)]), "/p");
        assert_eq!(
            with_query("/p", &[("q", Some("mjc mosaïque")), ("x", None), ("limit", Some("50"))]),
            "/p?q=mjc+mosa%C3%AFque&limit=50"
        );
    }
}
