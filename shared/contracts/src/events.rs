//! Events (v1). None of them carries personal data: ids, the commune, needs, languages,
//! accessibility needs, urgency and timestamps only.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::explain::Reason;
use crate::ids::*;
use crate::vocab::*;

/// The JSON body of every message. AMQP `message_id` = `id`, `type` = `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    pub version: u32,
    pub occurred_at: DateTime<Utc>,
    pub aggregate_id: String,
    pub sequence: i64,
    #[serde(default)]
    pub causation_id: Option<Uuid>,
    #[serde(default)]
    pub correlation_id: Option<Uuid>,
    pub data: serde_json::Value,
}

/// The payload of one event type.
pub trait EventData: Serialize + DeserializeOwned {
    const TYPE: &'static str;
    const VERSION: u32 = 1;
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("expected a {expected} event, got {actual}")]
    WrongType { expected: &'static str, actual: String },
    #[error("unsupported version {version} of {event_type}")]
    UnsupportedVersion { event_type: String, version: u32 },
    #[error("invalid {event_type} payload: {source}")]
    Payload { event_type: String, source: serde_json::Error },
    /// The queue is bound to the event's type, but the consumer does not know it: a
    /// producer is ahead of this consumer, or a binding is wider than its code.
    #[error("{event_type} is routed to this consumer, which does not know it (it handles: {known})")]
    Unknown { event_type: String, known: String },
}

/// The events one consumer is bound to, as one enum: decoding picks the variant from the
/// envelope's type, so a handler's `match` is exhaustive and an unknown type is an error
/// (dead-lettered with its reason) rather than a silent catch-all.
pub trait EventSet: Sized + Send {
    /// Every event type of the set.
    const TYPES: &'static [&'static str];

    fn decode(envelope: &Envelope) -> Result<Self, DecodeError>;
}

/// Declares an [`EventSet`]: `event_set! { pub enum Inbound { MatchProposed, MatchWaitlisted } }`
/// makes one variant per event payload type, named after it.
#[macro_export]
macro_rules! event_set {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $( $event:ident ),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        $vis enum $name { $( $event($event) ),+ }

        impl $crate::events::EventSet for $name {
            const TYPES: &'static [&'static str] = &[ $( <$event as $crate::events::EventData>::TYPE ),+ ];

            fn decode(envelope: &$crate::events::Envelope) -> Result<Self, $crate::events::DecodeError> {
                $(
                    if envelope.event_type == <$event as $crate::events::EventData>::TYPE {
                        return envelope.decode::<$event>().map($name::$event);
                    }
                )+
                Err($crate::events::DecodeError::Unknown {
                    event_type: envelope.event_type.clone(),
                    known: Self::TYPES.join(", "),
                })
            }
        }
    };
}

/// Whether an AMQP topic pattern (`*` one word, `#` zero or more) matches a routing key.
pub fn topic_matches(pattern: &str, key: &str) -> bool {
    fn matches(p: &[&str], k: &[&str]) -> bool {
        match (p.first(), k.first()) {
            (None, None) => true,
            (Some(&"#"), _) => matches(&p[1..], k) || (!k.is_empty() && matches(p, &k[1..])),
            (Some(&"*"), Some(_)) => matches(&p[1..], &k[1..]),
            (Some(a), Some(b)) if a == b => matches(&p[1..], &k[1..]),
            _ => false,
        }
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = key.split('.').collect();
    matches(&p, &k)
}

impl Envelope {
    /// A new event with a fresh UUIDv7 id.
    pub fn new<E: EventData>(aggregate_id: impl Into<String>, sequence: i64, data: &E) -> Self {
        Self {
            id: Uuid::now_v7(),
            event_type: E::TYPE.to_string(),
            version: E::VERSION,
            occurred_at: Utc::now(),
            aggregate_id: aggregate_id.into(),
            sequence,
            causation_id: None,
            correlation_id: None,
            // Serialising these plain structs cannot fail.
            data: serde_json::to_value(data).unwrap_or(serde_json::Value::Null),
        }
    }

    /// Marks this event as caused by `cause`, keeping the cause's correlation.
    pub fn caused_by(mut self, cause: &Envelope) -> Self {
        self.causation_id = Some(cause.id);
        self.correlation_id = Some(cause.correlation_id.unwrap_or(cause.id));
        self
    }

    pub fn correlated(mut self, correlation_id: Option<Uuid>) -> Self {
        self.correlation_id = correlation_id;
        self
    }

    pub fn is<E: EventData>(&self) -> bool {
        self.event_type == E::TYPE
    }

    pub fn decode<E: EventData>(&self) -> Result<E, DecodeError> {
        if self.event_type != E::TYPE {
            return Err(DecodeError::WrongType { expected: E::TYPE, actual: self.event_type.clone() });
        }
        if self.version != E::VERSION {
            return Err(DecodeError::UnsupportedVersion { event_type: self.event_type.clone(), version: self.version });
        }
        E::deserialize(&self.data)
            .map_err(|source| DecodeError::Payload { event_type: self.event_type.clone(), source })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub lat: f64,
    pub lon: f64,
}

/// What matching needs to know about a referral: no personal data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchingProfile {
    pub commune_code: CommuneCode,
    pub territory: Territory,
    pub location: Point,
    pub needs: Vec<Need>,
    pub modes: Vec<ReferralMode>,
    pub languages: Vec<Language>,
    pub accessibility: Vec<Accessibility>,
    pub urgency: Urgency,
    pub deadline: Option<NaiveDate>,
    pub max_distance_km: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferralSubmitted {
    pub referral_id: ReferralId,
    pub organisation_id: OrganisationId,
    /// The account of the agent who submitted it, when one did (through the web app):
    /// who is told what becomes of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_by: Option<Uuid>,
    pub submitted_at: DateTime<Utc>,
    #[serde(flatten)]
    pub profile: MatchingProfile,
}
impl EventData for ReferralSubmitted {
    const TYPE: &'static str = "referral.submitted";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferralOffered {
    pub referral_id: ReferralId,
    pub structure_id: StructureId,
    pub attempt: u32,
    pub offered_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub score: f64,
    pub distance_km: f64,
    pub explanation: Vec<String>,
    /// The same as `explanation`, as codes with their values (to render in French).
    #[serde(default)]
    pub reasons: Vec<Reason>,
    pub reservation_id: Uuid,
}
impl EventData for ReferralOffered {
    const TYPE: &'static str = "referral.offered";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferralAccepted {
    pub referral_id: ReferralId,
    pub structure_id: StructureId,
    pub reservation_id: Uuid,
    pub accepted_at: DateTime<Utc>,
    /// How the structure answered (absent from the events of earlier versions, and for
    /// an administrator's or a machine client's acceptance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<AnsweredVia>,
}
impl EventData for ReferralAccepted {
    const TYPE: &'static str = "referral.accepted";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferralDeclined {
    pub referral_id: ReferralId,
    pub structure_id: StructureId,
    pub reason: DeclineReason,
    pub attempt: u32,
    pub reservation_id: Uuid,
    pub declined_at: DateTime<Utc>,
    /// How the structure answered; absent when it did not (a withdrawal for
    /// `structure_unreachable`), and in the events of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<AnsweredVia>,
}
impl EventData for ReferralDeclined {
    const TYPE: &'static str = "referral.declined";
}

/// The accepting structure set the appointment (`rescheduled`: it moved it). The place's
/// free text stays in referrals; the referrer's e-mail and the slip say it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferralAppointmentSet {
    pub referral_id: ReferralId,
    pub structure_id: StructureId,
    /// Grows with each set, move and cancellation of the referral's appointment.
    pub version: u32,
    pub at: DateTime<Utc>,
    pub duration_minutes: u32,
    /// How the person is told.
    pub channel: NoticeChannel,
    pub rescheduled: bool,
    pub set_at: DateTime<Utc>,
}
impl EventData for ReferralAppointmentSet {
    const TYPE: &'static str = "referral.appointment_set";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferralAppointmentCancelled {
    pub referral_id: ReferralId,
    pub structure_id: StructureId,
    pub version: u32,
    pub channel: NoticeChannel,
    pub cancelled_at: DateTime<Utc>,
}
impl EventData for ReferralAppointmentCancelled {
    const TYPE: &'static str = "referral.appointment_cancelled";
}

/// Whether the person came, recorded once the appointment's time had passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferralAttendanceRecorded {
    pub referral_id: ReferralId,
    pub structure_id: StructureId,
    pub version: u32,
    /// The appointment's time.
    pub appointment_at: DateTime<Utc>,
    pub attended: bool,
    pub recorded_at: DateTime<Utc>,
}
impl EventData for ReferralAttendanceRecorded {
    const TYPE: &'static str = "referral.attendance_recorded";
}

/// A message to the person about their appointment could not be delivered (a permanent
/// refusal, SMS off, or a day of failures): the referrer is told, to tell the person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferralPersonNoticeFailed {
    pub referral_id: ReferralId,
    pub channel: NoticeChannel,
    pub notice: AppointmentNotice,
    pub failed_at: DateTime<Utc>,
}
impl EventData for ReferralPersonNoticeFailed {
    const TYPE: &'static str = "referral.person_notice_failed";
}

/// A structure that accepted a referral asked for a fresh answer link (its last one
/// expired): notify sends one to its public address. No token travels here: the link
/// is made when the e-mail is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferralAnswerLinkRequested {
    pub referral_id: ReferralId,
    pub structure_id: StructureId,
    pub requested_at: DateTime<Utc>,
}
impl EventData for ReferralAnswerLinkRequested {
    const TYPE: &'static str = "referral.answer_link_requested";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferralOfferExpired {
    pub referral_id: ReferralId,
    pub structure_id: StructureId,
    pub attempt: u32,
    pub reservation_id: Uuid,
    pub expired_at: DateTime<Utc>,
}
impl EventData for ReferralOfferExpired {
    const TYPE: &'static str = "referral.offer_expired";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferralWaitlisted {
    pub referral_id: ReferralId,
    pub reason: WaitlistReason,
    pub escalated: bool,
    pub waitlisted_at: DateTime<Utc>,
}
impl EventData for ReferralWaitlisted {
    const TYPE: &'static str = "referral.waitlisted";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferralContacted {
    pub referral_id: ReferralId,
    pub structure_id: StructureId,
    pub kind: ContactKind,
    pub at: DateTime<Utc>,
}
impl EventData for ReferralContacted {
    const TYPE: &'static str = "referral.contacted";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferralClosed {
    pub referral_id: ReferralId,
    pub structure_id: StructureId,
    pub outcome: Outcome,
    pub closed_at: DateTime<Utc>,
}
impl EventData for ReferralClosed {
    const TYPE: &'static str = "referral.closed";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferralCancelled {
    pub referral_id: ReferralId,
    /// Always `cancelled_by_referrer`: the referrer's free-text reason stays in `referrals`.
    pub reason: String,
    pub previous_status: ReferralStatus,
    /// The structure whose pending offer the cancellation withdrew, if any.
    pub structure_id: Option<StructureId>,
    pub reservation_id: Option<Uuid>,
    pub cancelled_at: DateTime<Utc>,
}
impl EventData for ReferralCancelled {
    const TYPE: &'static str = "referral.cancelled";
}

/// A coordinator asked for the referral to be routed again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferralRerouted {
    pub referral_id: ReferralId,
    /// Routing rounds start at 0 and grow with each reroute; match events of an older
    /// round are stale.
    pub round: u32,
    /// A chosen structure, or `None` to run matching again with the attempts reset.
    pub structure_id: Option<StructureId>,
    pub force: bool,
    /// The pending offer this reroute withdrew, if any.
    pub withdrawn_structure_id: Option<StructureId>,
    pub withdrawn_reservation_id: Option<Uuid>,
    pub rerouted_at: DateTime<Utc>,
}
impl EventData for ReferralRerouted {
    const TYPE: &'static str = "referral.rerouted";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchProposed {
    pub referral_id: ReferralId,
    pub round: u32,
    pub structure_id: StructureId,
    pub structure_name: String,
    pub attempt: u32,
    pub score: f64,
    pub distance_km: f64,
    pub explanation: Vec<String>,
    #[serde(default)]
    pub reasons: Vec<Reason>,
    pub reservation_id: Uuid,
    pub proposed_at: DateTime<Utc>,
}
impl EventData for MatchProposed {
    const TYPE: &'static str = "match.proposed";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchWaitlisted {
    pub referral_id: ReferralId,
    pub round: u32,
    pub reason: WaitlistReason,
    pub escalated: bool,
    pub attempt: u32,
    pub waitlisted_at: DateTime<Utc>,
}
impl EventData for MatchWaitlisted {
    const TYPE: &'static str = "match.waitlisted";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Address {
    #[serde(default)]
    pub street: Option<String>,
    #[serde(default)]
    pub postcode: Option<String>,
    #[serde(default)]
    pub commune: Option<String>,
    #[serde(default)]
    pub commune_code: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StructureContact {
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
}

/// The public record of a structure (a *lieu de médiation numérique*): institutional
/// data from the open directory, never about a person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Structure {
    pub id: StructureId,
    pub name: String,
    pub services: Vec<Need>,
    pub modes: Vec<StructureMode>,
    pub languages: Vec<Language>,
    pub other_languages: bool,
    pub accessibility: Vec<Accessibility>,
    pub address: Address,
    pub location: Point,
    pub territory: Territory,
    pub opening_hours: Option<String>,
    pub weekly_capacity: u32,
    pub accepting: bool,
    pub contact: StructureContact,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub fees: Vec<String>,
    #[serde(default)]
    pub labels: Vec<String>,
    /// The SIRET of the structure (Mednum `pivot`), when the source gives one: how an
    /// agent signing in with ProConnect is matched to their workplace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub siret: Option<String>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StructureUpserted {
    pub structure: Structure,
}
impl EventData for StructureUpserted {
    const TYPE: &'static str = "structure.upserted";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StructureRemoved {
    pub structure_id: StructureId,
}
impl EventData for StructureRemoved {
    const TYPE: &'static str = "structure.removed";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityChanged {
    pub structure_id: StructureId,
    pub weekly_capacity: u32,
    pub accepting: bool,
    pub changed_at: DateTime<Utc>,
}
impl EventData for CapacityChanged {
    const TYPE: &'static str = "capacity.changed";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrganisationUpserted {
    pub organisation_id: OrganisationId,
    pub name: String,
    pub kind: OrganisationKind,
    pub territory: Territory,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub siret: Option<String>,
}
impl EventData for OrganisationUpserted {
    const TYPE: &'static str = "organisation.upserted";
}

/// What the other services may know of an agent's account, as it is now (a snapshot:
/// the one with the highest sequence wins): the memberships in force, the choices made
/// for notifications, and when the agent last signed in. Never a name or an address:
/// those stay in `accounts`, which gives an address only at send time, through its API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountUpserted {
    pub account_id: Uuid,
    pub memberships: Vec<AccountMembership>,
    /// Only the kinds the agent chose; the others take [`MessageKind::default_mode`].
    pub preferences: std::collections::BTreeMap<MessageKind, DeliveryMode>,
    pub last_signed_in_at: Option<DateTime<Utc>>,
}
impl EventData for AccountUpserted {
    const TYPE: &'static str = "account.upserted";
}

/// One membership in force: a role over an organisation, a structure or départements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountMembership {
    pub membership_id: Uuid,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organisation_id: Option<OrganisationId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structure_id: Option<StructureId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub territories: Vec<Territory>,
}

/// An account purged after its retention period: nobody is to be told anything any more.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountRemoved {
    pub account_id: Uuid,
    pub removed_at: DateTime<Utc>,
}
impl EventData for AccountRemoved {
    const TYPE: &'static str = "account.removed";
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn submitted() -> ReferralSubmitted {
        ReferralSubmitted {
            referral_id: ReferralId::new(),
            organisation_id: OrganisationId::new(),
            submitted_by: None,
            submitted_at: Utc::now(),
            profile: MatchingProfile {
                commune_code: "16015".parse().unwrap(),
                territory: "16".parse().unwrap(),
                location: Point { lat: 45.6, lon: 0.15 },
                needs: vec![Need::AideDemarchesAdministratives],
                modes: vec![ReferralMode::InPerson],
                languages: vec![Language::french()],
                accessibility: vec![],
                urgency: Urgency::Normal,
                deadline: None,
                max_distance_km: 30.0,
            },
        }
    }

    #[test]
    fn an_envelope_round_trips_its_payload() {
        let data = submitted();
        let env = Envelope::new(data.referral_id.to_string(), 1, &data);
        let json = serde_json::to_string(&env).unwrap();
        assert!(json.contains("\"type\":\"referral.submitted\""));
        let back: Envelope = serde_json::from_str(&json).unwrap();
        assert_eq!(back.decode::<ReferralSubmitted>().unwrap(), data);
    }

    #[test]
    fn decoding_checks_type_and_version() {
        let data = submitted();
        let mut env = Envelope::new("x", 1, &data);
        assert!(matches!(env.decode::<ReferralAccepted>(), Err(DecodeError::WrongType { .. })));
        env.version = 2;
        assert!(matches!(env.decode::<ReferralSubmitted>(), Err(DecodeError::UnsupportedVersion { .. })));
    }

    event_set! {
        enum Sample { ReferralSubmitted, ReferralAccepted }
    }

    #[test]
    fn an_event_set_decodes_its_members_and_names_the_others() {
        let data = submitted();
        let env = Envelope::new("x", 1, &data);
        assert_eq!(Sample::decode(&env).unwrap(), Sample::ReferralSubmitted(data.clone()));
        let closed = ReferralClosed {
            referral_id: data.referral_id,
            structure_id: "s".parse().unwrap(),
            outcome: Outcome::Completed,
            closed_at: Utc::now(),
        };
        let err = Sample::decode(&Envelope::new("x", 2, &closed)).unwrap_err();
        assert!(matches!(err, DecodeError::Unknown { ref event_type, .. } if event_type == "referral.closed"));
        assert!(err.to_string().contains("referral.submitted, referral.accepted"), "{err}");
        let mut bad = Envelope::new("x", 1, &data);
        bad.data["needs"] = serde_json::json!(["not_a_need"]);
        assert!(matches!(Sample::decode(&bad), Err(DecodeError::Payload { .. })));
    }

    #[test]
    fn topic_patterns_match_as_rabbitmq_does() {
        assert!(topic_matches("referral.*", "referral.submitted"));
        assert!(!topic_matches("referral.*", "referral.a.b"));
        assert!(topic_matches("#", "referral.a.b"));
        assert!(topic_matches("referral.#", "referral"));
        assert!(topic_matches("capacity.changed", "capacity.changed"));
        assert!(!topic_matches("match.*", "referral.submitted"));
    }

    #[test]
    fn causation_keeps_the_correlation_of_the_first_event() {
        let first = Envelope::new("a", 1, &submitted());
        let second = Envelope::new("a", 2, &submitted()).caused_by(&first);
        let third = Envelope::new("a", 3, &submitted()).caused_by(&second);
        assert_eq!(second.correlation_id, Some(first.id));
        assert_eq!(third.correlation_id, Some(first.id));
        assert_eq!(third.causation_id, Some(second.id));
    }
}
