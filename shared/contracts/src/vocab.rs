//! Closed vocabularies of the API and the events. Each value has an English slug (the API
//! identifier) and, where users see it, a French label.

use std::fmt;
use std::str::FromStr;

/// A value that is not part of a vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value `{value}`, expected one of: {expected}")]
pub struct UnknownValue {
    pub value: String,
    pub expected: String,
}

/// `Deserialize` through `FromStr`: a value is read from the wire by the same parser as
/// from a row or a form, and refused with its error.
macro_rules! deserialize_from_str {
    ($name:ty) => {
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use deserialize_from_str;

macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = ($slug:literal, $label:literal) ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $( $(#[$vmeta])* $variant ),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[ $( $name::$variant ),+ ];

            /// The API identifier.
            pub fn slug(self) -> &'static str {
                match self { $( $name::$variant => $slug ),+ }
            }

            /// What users read.
            pub fn label_fr(self) -> &'static str {
                match self { $( $name::$variant => $label ),+ }
            }

            pub fn expected() -> String {
                [$( $slug ),+].join(", ")
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $slug => Ok($name::$variant), )+
                    other => Err(UnknownValue { value: other.to_string(), expected: Self::expected() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.slug())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.slug())
            }
        }

        deserialize_from_str!($name);

        /// The OpenAPI schema: a string whose `enum` is this vocabulary's slugs, so the
        /// document cannot drift from the type.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                vocabulary_schema(&[$( ($slug, $label) ),+])
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }

        #[cfg(feature = "sqlx")]
        crate::sql::text_column!($name);
    };
}

/// A closed string vocabulary; the French labels are listed in the description.
fn vocabulary_schema(values: &[(&str, &str)]) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    let labels: Vec<String> = values.iter().map(|(slug, label)| format!("`{slug}`: {label}")).collect();
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(values.iter().map(|(slug, _)| *slug)))
        .description(Some(labels.join("; ")))
        .into()
}

vocabulary! {
    /// A person's need, and a structure's service: the 9 services of the Mednum standard v1.
    pub enum Need {
        AideDemarchesAdministratives = ("aide_demarches_administratives", "Aide aux démarches administratives"),
        MaitriseOutilsNumeriques = ("maitrise_outils_numeriques", "Maîtrise des outils numériques du quotidien"),
        InsertionProfessionnelle = ("insertion_professionnelle", "Insertion professionnelle via le numérique"),
        UtilisationSecurisee = ("utilisation_securisee", "Utilisation sécurisée du numérique"),
        ParentaliteEducation = ("parentalite_education", "Parentalité et éducation avec le numérique"),
        LoisirsCreations = ("loisirs_creations", "Loisirs et créations numériques"),
        ComprehensionMondeNumerique = ("comprehension_monde_numerique", "Compréhension du monde numérique"),
        AccesInternetMateriel = ("acces_internet_materiel", "Accès internet et matériel informatique"),
        AcquisitionMaterielSolidaire = ("acquisition_materiel_solidaire", "Acquisition de matériel informatique à prix solidaire"),
    }
}

vocabulary! {
    /// How a structure accompanies people (`modalites_accompagnement`).
    pub enum StructureMode {
        Individual = ("individual", "Accompagnement individuel"),
        Workshop = ("workshop", "Dans un atelier collectif"),
        Autonomous = ("autonomous", "En autonomie"),
        Remote = ("remote", "À distance"),
    }
}

vocabulary! {
    /// How the person can be helped.
    pub enum ReferralMode {
        InPerson = ("in_person", "En présentiel"),
        Remote = ("remote", "À distance"),
    }
}

vocabulary! {
    /// Specific support (`prise_en_charge_specifique`).
    pub enum Accessibility {
        Deaf = ("deaf", "Surdité"),
        Visual = ("visual", "Déficience visuelle"),
        Motor = ("motor", "Handicaps moteurs"),
        Mental = ("mental", "Handicaps mentaux"),
        Illiteracy = ("illiteracy", "Illettrisme"),
    }
}

vocabulary! {
    pub enum Urgency {
        Normal = ("normal", "Normale"),
        Urgent = ("urgent", "Urgente"),
    }
}

vocabulary! {
    pub enum ReferralStatus {
        Submitted = ("submitted", "Envoyée"),
        Offered = ("offered", "Proposée"),
        Waitlisted = ("waitlisted", "En liste d'attente"),
        Accepted = ("accepted", "Acceptée"),
        InProgress = ("in_progress", "En cours"),
        Closed = ("closed", "Clôturée"),
        Cancelled = ("cancelled", "Annulée"),
    }
}

impl ReferralStatus {
    /// Closed and cancelled referrals never change again.
    pub fn is_final(self) -> bool {
        matches!(self, ReferralStatus::Closed | ReferralStatus::Cancelled)
    }
}

vocabulary! {
    /// How an accepted referral ended (UI.md's words).
    pub enum Outcome {
        Completed = ("completed", "Accompagnement réalisé"),
        PartiallyCompleted = ("partially_completed", "Partiellement réalisé"),
        Unreachable = ("unreachable", "Personne injoignable"),
        NoShow = ("no_show", "Absent au rendez-vous"),
        DeclinedByPerson = ("declined_by_person", "Refus de la personne"),
        Redirected = ("redirected", "Réorientée"),
        Other = ("other", "Autre"),
    }
}

vocabulary! {
    /// Why a structure declines an offer (the refusal reasons of the French inclusion services,
    /// in UI.md's words).
    pub enum DeclineReason {
        NoCapacity = ("no_capacity", "Plus de place cette semaine"),
        OutOfScope = ("out_of_scope", "Hors de nos services"),
        OutOfArea = ("out_of_area", "Hors de notre zone"),
        Language = ("language", "Langue"),
        Accessibility = ("accessibility", "Accessibilité"),
        Duplicate = ("duplicate", "Doublon"),
        PersonUnreachable = ("person_unreachable", "Personne injoignable"),
        Other = ("other", "Autre"),
        /// Not a structure's choice: its public address refused the offer's e-mail for
        /// good (SMTP 5xx), so Aiguillage withdrew the offer at once.
        StructureUnreachable = ("structure_unreachable", "Lieu injoignable"),
    }
}

impl DeclineReason {
    /// The reasons a structure gives itself (what a refusal form offers).
    pub fn given_by_structures() -> impl Iterator<Item = DeclineReason> {
        DeclineReason::ALL.iter().copied().filter(|r| *r != DeclineReason::StructureUnreachable)
    }
}

vocabulary! {
    /// How a structure answered an offer: a mediator signed in with an account, or
    /// the link of the offer's e-mail, without one.
    pub enum AnsweredVia {
        Account = ("account", "Par un compte"),
        AnswerLink = ("answer_link", "Par le lien de l'e-mail"),
    }
}

vocabulary! {
    pub enum ContactKind {
        FirstContact = ("first_contact", "Premier contact"),
        Appointment = ("appointment", "Rendez-vous"),
    }
}

vocabulary! {
    pub enum ContactPreference {
        Phone = ("phone", "Téléphone"),
        Email = ("email", "Courriel"),
        ViaReferrer = ("via_referrer", "Par le travailleur social"),
    }
}

vocabulary! {
    /// Why a referral waits.
    pub enum WaitlistReason {
        NoCapacity = ("no_capacity", "Aucune place cette semaine"),
        NoStructureInRange = ("no_structure_in_range", "Aucun lieu adapté à proximité"),
        AttemptsExhausted = ("attempts_exhausted", "Nombre maximal de propositions atteint"),
    }
}

vocabulary! {
    pub enum Role {
        Admin = ("admin", "Administrateur"),
        Referrer = ("referrer", "Prescripteur"),
        Mediator = ("mediator", "Médiateur"),
        Coordinator = ("coordinator", "Coordinateur"),
        Dpo = ("dpo", "Délégué à la protection des données"),
    }
}

impl Role {
    /// The space a membership of this role opens, as the pages name it.
    pub fn space_fr(self) -> &'static str {
        match self {
            Role::Referrer => "Prescription",
            Role::Mediator => "Médiation",
            Role::Coordinator => "Coordination",
            Role::Admin => "Administration",
            Role::Dpo => "Protection des données",
        }
    }
}

vocabulary! {
    /// What an entry of the audit of access to personal data records: a read, a right
    /// exercised, a step of the referral's life, or the command line's work.
    pub enum AuditAction {
        Read = ("read", "Lecture des données de la personne"),
        Export = ("export", "Export de tout ce qui est détenu (RGPD, art. 15)"),
        Correct = ("correct", "Rectification (RGPD, art. 16)"),
        Erase = ("erase", "Effacement à la demande (RGPD, art. 17)"),
        Submit = ("submit", "Envoi de l'orientation"),
        Accept = ("accept", "Acceptation par le lieu"),
        Decline = ("decline", "Refus par le lieu"),
        Contact = ("contact", "Premier contact"),
        Close = ("close", "Clôture"),
        Cancel = ("cancel", "Annulation"),
        Reroute = ("reroute", "Réorientation"),
        /// An appointment set, moved or cancelled, or the person's attendance: the person
        /// is told on their own contact.
        Appointment = ("appointment", "Rendez-vous"),
        Purge = ("purge", "Purge (durée de conservation)"),
        KeysRotated = ("keys_rotated", "Rotation des clés de chiffrement"),
    }
}

vocabulary! {
    pub enum OrganisationKind {
        SocialService = ("social_service", "Service social"),
        Partner = ("partner", "Partenaire"),
    }
}

vocabulary! {
    /// One step of a referral's timeline (the API's `history[].status`).
    pub enum HistoryStep {
        Submitted = ("submitted", "Orientation envoyée"),
        Offered = ("offered", "Proposée à une structure"),
        Declined = ("declined", "Refusée par la structure"),
        OfferExpired = ("offer_expired", "Proposition expirée sans réponse"),
        OfferWithdrawn = ("offer_withdrawn", "Proposition retirée"),
        Waitlisted = ("waitlisted", "En attente d'une place"),
        Accepted = ("accepted", "Acceptée par la structure"),
        Contacted = ("contacted", "Contact avec la personne"),
        Closed = ("closed", "Clôturée"),
        Cancelled = ("cancelled", "Annulée"),
        Rerouted = ("rerouted", "Réorientée par la coordination"),
        AppointmentSet = ("appointment_set", "Rendez-vous fixé"),
        AppointmentCancelled = ("appointment_cancelled", "Rendez-vous annulé"),
        AttendanceRecorded = ("attendance_recorded", "Présence au rendez-vous notée"),
    }
}

/// An ISO 639-1 language code, lower case (`fr`, `ar`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Language(String);

impl Language {
    /// What [`FromStr`] accepts, as an ECMA-262 regular expression.
    pub const PATTERN: &'static str = "^[A-Za-z]{2}$";

    pub fn french() -> Self {
        Self("fr".to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The language's name in French, for the languages people referred in France speak
    /// most; otherwise the code itself.
    pub fn name_fr(&self) -> &str {
        LANGUAGE_NAMES_FR.iter().find(|(code, _)| *code == self.0).map(|(_, name)| *name).unwrap_or(&self.0)
    }
}

/// ISO 639-1 codes and their French names.
pub const LANGUAGE_NAMES_FR: &[(&str, &str)] = &[
    ("fr", "français"),
    ("en", "anglais"),
    ("ar", "arabe"),
    ("es", "espagnol"),
    ("pt", "portugais"),
    ("it", "italien"),
    ("de", "allemand"),
    ("tr", "turc"),
    ("ru", "russe"),
    ("uk", "ukrainien"),
    ("ro", "roumain"),
    ("pl", "polonais"),
    ("zh", "chinois"),
    ("vi", "vietnamien"),
    ("fa", "persan"),
    ("ps", "pachto"),
    ("ku", "kurde"),
    ("hy", "arménien"),
    ("ka", "géorgien"),
    ("sq", "albanais"),
    ("sr", "serbe"),
    ("bn", "bengali"),
    ("ta", "tamoul"),
    ("ur", "ourdou"),
    ("hi", "hindi"),
    ("so", "somali"),
    ("ti", "tigrigna"),
    ("am", "amharique"),
    ("wo", "wolof"),
    ("bm", "bambara"),
    ("ff", "peul"),
    ("ln", "lingala"),
    ("sw", "swahili"),
    ("mg", "malgache"),
    ("ht", "créole haïtien"),
    ("nl", "néerlandais"),
    ("el", "grec"),
    ("he", "hébreu"),
    ("ja", "japonais"),
    ("ko", "coréen"),
    ("th", "thaï"),
    ("km", "khmer"),
    ("lo", "lao"),
    ("br", "breton"),
    ("oc", "occitan"),
    ("eu", "basque"),
    ("ca", "catalan"),
    ("co", "corse"),
];

impl FromStr for Language {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let code = s.trim().to_ascii_lowercase();
        if code.len() == 2 && code.bytes().all(|b| b.is_ascii_lowercase()) {
            Ok(Self(code))
        } else {
            Err(UnknownValue {
                value: s.to_string(),
                expected: "an ISO 639-1 code of two letters, such as fr, en or ar".to_string(),
            })
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

deserialize_from_str!(Language);

impl utoipa::PartialSchema for Language {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(Language::PATTERN))
            .description(Some("An ISO 639-1 code of two letters (`fr`, `en`, `ar` …), read case-insensitively"))
            .examples(["fr"])
            .into()
    }
}

impl utoipa::ToSchema for Language {}

#[cfg(feature = "sqlx")]
crate::sql::text_column!(Language);

/// Parses a list of slugs, sorting and de-duplicating it.
pub fn parse_set<T: FromStr<Err = UnknownValue> + Ord>(values: &[String]) -> Result<Vec<T>, UnknownValue> {
    let mut parsed = values.iter().map(|v| v.parse()).collect::<Result<Vec<T>, _>>()?;
    parsed.sort();
    parsed.dedup();
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_round_trip_through_serde() {
        for need in Need::ALL {
            let json = serde_json::to_string(need).unwrap();
            assert_eq!(json, format!("\"{}\"", need.slug()));
            assert_eq!(serde_json::from_str::<Need>(&json).unwrap(), *need);
        }
        assert_eq!(Need::ALL.len(), 9);
    }

    #[test]
    fn unknown_values_name_the_expected_ones() {
        let err = "cooking".parse::<Need>().unwrap_err();
        assert!(err.to_string().contains("aide_demarches_administratives"));
        assert!(serde_json::from_str::<Outcome>("\"great\"").is_err());
    }

    #[test]
    fn languages_are_two_letter_codes() {
        assert_eq!("FR".parse::<Language>().unwrap().as_str(), "fr");
        assert!("fra".parse::<Language>().is_err());
        assert!("f1".parse::<Language>().is_err());
        assert!("".parse::<Language>().is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_string_parses_or_fails_cleanly(s in ".*") {
            let _ = s.parse::<Need>();
            let _ = s.parse::<Language>();
        }
    }
}

vocabulary! {
    /// A kind of notification message, as agents set their preferences for it.
    pub enum MessageKind {
        OfferReceived = ("offer_received", "Nouvelle proposition d'orientation pour ma structure"),
        OfferReminder = ("offer_reminder", "Rappel : proposition toujours en attente"),
        ReferralUpdate = ("referral_update", "Suite donnée à mes orientations (acceptée, refusée, clôturée, en attente)"),
        ContactReminder = ("contact_reminder", "Rappel : orientation acceptée sans premier contact"),
        TerritoryWaitlist = ("territory_waitlist", "Orientations en attente ou escaladées sur mon territoire"),
        WeeklyDigest = ("weekly_digest", "Bilan hebdomadaire des orientations qui stagnent"),
    }
}

impl MessageKind {
    /// What an agent gets without having set a preference: the coordinators' waitlist
    /// comes in the daily digest, everything else at once.
    pub fn default_mode(self) -> DeliveryMode {
        match self {
            MessageKind::TerritoryWaitlist => DeliveryMode::Daily,
            _ => DeliveryMode::Immediate,
        }
    }
}

vocabulary! {
    /// When an agent gets a kind of message.
    pub enum DeliveryMode {
        Immediate = ("immediate", "Immédiatement"),
        Daily = ("daily", "Dans un récapitulatif quotidien"),
        Never = ("never", "Jamais"),
    }
}

vocabulary! {
    /// Why a nearby structure cannot take a referral (the matcher's assessment).
    pub enum ExclusionCode {
        NotAccepting = ("not_accepting", "N'accepte pas de nouvelles orientations"),
        MissingService = ("missing_service", "Ne propose pas ce service"),
        Mode = ("mode", "Ne propose pas la modalité demandée"),
        BeyondDistance = ("beyond_distance", "Au-delà de la distance maximale"),
        NoSharedLanguage = ("no_shared_language", "Aucune langue en commun"),
        Accessibility = ("accessibility", "Accessibilité"),
        AlreadyTried = ("already_tried", "Déjà sollicitée pour cette orientation"),
        NoCapacity = ("no_capacity", "Plus de place cette semaine"),
        /// No mediator who signs in, and no public e-mail address that takes mail:
        /// nobody could answer an offer (reachable by phone at most).
        Unreachable = ("unreachable", "Injoignable : ni compte actif, ni adresse e-mail"),
    }
}

vocabulary! {
    /// What an answer link opens now (`contracts::answer_links`).
    pub enum LinkStage {
        /// The offer, before the structure answers: accept or decline.
        Offer = ("offer", "Proposition"),
        /// The referral the structure accepted: contact, appointment, closing.
        FollowUp = ("follow_up", "Suivi"),
    }
}

vocabulary! {
    /// How the person is told of an appointment, from their contact preference.
    pub enum NoticeChannel {
        Sms = ("sms", "Prévenue par SMS"),
        Email = ("email", "Prévenue par e-mail"),
        /// The person chose to be told by the referrer: the referrer gets an e-mail, and
        /// the printable slip is the person's paper.
        Referrer = ("referrer", "À prévenir par le prescripteur"),
    }
}

vocabulary! {
    /// Where a message to the person stands.
    pub enum NoticeStatus {
        Queued = ("queued", "En cours d'envoi"),
        Sent = ("sent", "Envoyé"),
        Delivered = ("delivered", "Distribué"),
        Failed = ("failed", "Non distribué"),
    }
}

vocabulary! {
    /// Why the person is told something about their appointment.
    pub enum AppointmentNotice {
        Set = ("set", "Rendez-vous fixé"),
        Changed = ("changed", "Rendez-vous déplacé"),
        Cancelled = ("cancelled", "Rendez-vous annulé"),
        Reminder = ("reminder", "Rappel du rendez-vous"),
    }
}
