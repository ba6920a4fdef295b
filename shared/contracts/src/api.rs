//! HTTP request bodies as they travel on the wire: the services read them, the web app
//! sends them. Fields are loosely typed (strings, options) on purpose: each service
//! parses them into its domain types and reports every bad field at once, rather than
//! stopping at the first one serde meets. Unknown fields are rejected.
//!
//! Each type also describes itself in the OpenAPI document (`ToSchema`), with every rule
//! its parser enforces that a JSON Schema can state: lengths, ranges, vocabularies,
//! required fields. The `schema_with` helpers and [`cross_field_rules`] are how rules
//! that derive cannot spell get there; keep them next to the fields they describe.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::vocab::{
    Accessibility, ContactKind, ContactPreference, Language, Need, OrganisationKind, Outcome, ReferralMode,
    StructureMode, Urgency,
};

/// Texts and other strings as [`crate::validate::Errors`] reads them, as JSON Schemas.
pub mod schema {
    use utoipa::openapi::schema::{
        AnyOfBuilder, KnownFormat, Object, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type,
    };

    /// No control character but tab, line feed and carriage return (what
    /// [`crate::validate::Errors::text`] refuses).
    pub const NO_CONTROL: &str = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$";
    /// The same, with at least one character that is neither a control character nor
    /// white space: a text that is still there once trimmed.
    pub const NOT_BLANK: &str = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$";

    fn string(nullable: bool) -> ObjectBuilder {
        let ty = if nullable { SchemaType::from_iter([Type::String, Type::Null]) } else { Type::String.into() };
        ObjectBuilder::new().schema_type(ty)
    }

    /// A required text of at most `MAX` characters that is not blank.
    pub fn text<const MAX: usize>() -> Object {
        string(false).min_length(Some(1)).max_length(Some(MAX)).pattern(Some(NOT_BLANK)).build()
    }

    /// An optional text of at most `MAX` characters; blank or `null` is the same as absent.
    pub fn optional_text<const MAX: usize>() -> Object {
        string(true).max_length(Some(MAX)).pattern(Some(NO_CONTROL)).build()
    }

    /// No control character at all: what an id or a code may hold.
    pub const NO_CONTROL_AT_ALL: &str = r"^[^\u0000-\u001F\u007F-\u009F]*$";

    /// An optional structure id (empty is none): no control character, at most 200.
    pub fn optional_structure_id() -> Object {
        string(true).max_length(Some(200)).pattern(Some(NO_CONTROL_AT_ALL)).build()
    }

    /// A short text in a list (`fees`, `labels`): blank items are dropped.
    pub fn list_text<const MAX: usize>() -> Object {
        string(false).max_length(Some(MAX)).pattern(Some(NO_CONTROL)).build()
    }

    /// A reason a structure gives when it declines: every [`crate::DeclineReason`] but
    /// `structure_unreachable`, which only the notifications service records (when a
    /// place's address refuses mail), so a refusal form and the API refuse it.
    pub fn structure_decline_reason() -> Object {
        let reasons: Vec<crate::DeclineReason> = crate::DeclineReason::given_by_structures().collect();
        let labels: Vec<String> = reasons.iter().map(|r| format!("`{}`: {}", r.slug(), r.label_fr())).collect();
        string(false).enum_values(Some(reasons.iter().map(|r| r.slug()))).description(Some(labels.join("; "))).build()
    }

    /// A free-text query parameter.
    pub fn query_text() -> Object {
        string(false).pattern(Some(NO_CONTROL)).build()
    }

    /// An optional text in a format. Like every optional text, an empty one is the same
    /// as none. Values whose validity depends on reference data (a commune that exists, a
    /// phone number, OpenStreetMap opening hours) have no `format` of their own: a custom
    /// one would tell clients nothing checkable, so the description says it.
    fn formatted(max: Option<usize>, format: Option<SchemaFormat>, description: &str) -> Schema {
        let limited = |mut b: ObjectBuilder| {
            if let Some(max) = max {
                b = b.max_length(Some(max)).pattern(Some(NO_CONTROL));
            }
            b
        };
        let Some(format) = format else {
            return limited(string(true)).description(Some(description)).build().into();
        };
        AnyOfBuilder::new()
            .item(limited(string(false).format(Some(format))))
            .item(string(false).max_length(Some(0)))
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .description(Some(description))
            .build()
            .into()
    }

    pub fn commune_code() -> Schema {
        with_examples(
            formatted(Some(10), None, "The INSEE code of a commune (`16015`, `2A004`); it must exist"),
            &["16015", "2A004"],
        )
    }

    /// A commune code read without a length check (the matching preview).
    pub fn preview_commune_code() -> Schema {
        with_examples(
            formatted(None, None, "The INSEE code of a commune (`16015`, `2A004`); it must exist"),
            &["16015", "2A004"],
        )
    }

    /// A postcode is read only when no commune code is given: its format is stated
    /// there (in [`super::cross_field_rules`]), not on the field.
    pub fn postcode() -> Object {
        string(true)
            .max_length(Some(10))
            .pattern(Some(NO_CONTROL))
            .description(Some("A French postcode; used when no commune code is given, it must then exist"))
            .build()
    }

    pub fn preview_postcode() -> Object {
        string(true)
            .description(Some("A French postcode; used when no commune code is given, it must then exist"))
            .build()
    }

    pub fn person_phone() -> Schema {
        let schema = formatted(
            Some(40),
            None,
            "A phone number: French in its usual spellings (`06 12 34 56 78`, `+33 6…`, `0033 6…`) or international \
             with `+`; stored in E.164",
        );
        with_examples(schema, &["06 12 34 56 78", "+33612345678"])
    }

    /// Shown as it is given, not checked.
    pub fn structure_phone() -> Object {
        string(true)
            .max_length(Some(40))
            .pattern(Some(NO_CONTROL))
            .description(Some("The structure's phone number, as it should be shown"))
            .build()
    }

    pub fn person_email() -> Schema {
        formatted(Some(254), Some(SchemaFormat::KnownFormat(KnownFormat::Email)), "An e-mail address")
    }

    pub fn structure_email() -> Schema {
        formatted(Some(254), Some(SchemaFormat::KnownFormat(KnownFormat::Email)), "An e-mail address")
    }

    pub fn opening_hours() -> Schema {
        let schema = formatted(
            Some(500),
            None,
            "An OpenStreetMap `opening_hours` value (`Mo-Fr 09:00-12:00,14:00-17:30`); it must parse",
        );
        with_examples(schema, &["Mo-Fr 10:00-12:00,14:00-17:30"])
    }

    fn with_examples(schema: Schema, examples: &[&str]) -> Schema {
        match schema {
            Schema::Object(mut o) => {
                o.examples = examples.iter().map(|e| serde_json::json!(e)).collect();
                Schema::Object(o)
            }
            other => other,
        }
    }

    /// A SIRET: 14 digits, spaces between them allowed (`261 600 118 00010`).
    pub fn siret() -> Schema {
        AnyOfBuilder::new()
            .item(string(false).max_length(Some(20)).pattern(Some("^[0-9]( ?[0-9]){13}$")))
            .item(string(false).max_length(Some(0)))
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .description(Some("The organisation's SIRET: 14 digits, spaces between them allowed"))
            .examples(["261 600 118 00010"])
            .build()
            .into()
    }

    pub fn date() -> Schema {
        formatted(None, Some(SchemaFormat::KnownFormat(KnownFormat::Date)), "A date (`2026-12-15`)")
    }

    pub fn date_time() -> Schema {
        formatted(None, Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)), "An RFC 3339 time")
    }

    /// Consent: only `true` is accepted.
    pub fn consent_obtained() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::Boolean)
            .enum_values(Some([true]))
            .description(Some("Must be true: the person agreed to be referred"))
            .build()
    }

    /// The read-only fields of a `GET` response, accepted and ignored.
    pub fn ignored() -> Object {
        ObjectBuilder::new()
            .schema_type(SchemaType::AnyValue)
            .description(Some("Read-only: accepted and ignored, so a client can send back what it read"))
            .build()
    }
}

/// A département that exists. The document lists the codes: the assembly fills `enum`
/// from the communes table, which this crate does not hold.
pub struct Departement;

impl utoipa::PartialSchema for Departement {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("The code of a département (`16`, `2A`, `971`)"))
            .into()
    }
}

impl utoipa::ToSchema for Departement {}

/// An optional integer, as JSON Schema counts them: `5` and `5.0` alike.
pub(crate) fn integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else { return Ok(None) };
    let whole = n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64));
    whole.map(Some).ok_or_else(|| serde::de::Error::custom(format!("expected an integer, got {n}")))
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "name": "CCAS d'Angoulême", "kind": "social_service", "territory": "16" }))]
pub struct OrganisationRequest {
    #[schema(schema_with = schema::text::<300>, required = true)]
    pub name: Option<String>,
    /// Default: `social_service`.
    #[schema(value_type = Option<OrganisationKind>)]
    pub kind: Option<String>,
    #[schema(value_type = Departement, required = true)]
    pub territory: Option<String>,
    #[schema(schema_with = schema::siret)]
    pub siret: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressRequest {
    #[schema(schema_with = schema::optional_text::<300>)]
    pub street: Option<String>,
    #[schema(schema_with = schema::postcode)]
    pub postcode: Option<String>,
    /// Picks among the communes of a postcode.
    #[schema(schema_with = schema::optional_text::<200>)]
    pub commune: Option<String>,
    #[schema(schema_with = schema::commune_code)]
    pub commune_code: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PointRequest {
    #[schema(minimum = -90.0, maximum = 90.0)]
    pub lat: f64,
    #[schema(minimum = -180.0, maximum = 180.0)]
    pub lon: f64,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StructureContactRequest {
    #[schema(schema_with = schema::structure_phone)]
    pub phone: Option<String>,
    #[schema(schema_with = schema::structure_email)]
    pub email: Option<String>,
    #[schema(schema_with = schema::optional_text::<500>)]
    pub website: Option<String>,
}

/// `PUT /api/v1/structures/{id}`. The read-only fields of a `GET` response (`id`,
/// `territory`, `source`, `updated_at`) are accepted and ignored, so a client can send
/// back what it read (the SIRET included).
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "France services Mansle",
    "services": ["aide_demarches_administratives", "insertion_professionnelle"],
    "modes": ["individual"], "languages": ["fr"], "other_languages": false,
    "accessibility": ["motor"],
    "address": { "street": "21 Rue Martin", "postcode": "16230", "commune": "Mansle", "commune_code": "16206" },
    "location": { "lat": 45.8769, "lon": 0.17784 },
    "opening_hours": "Mo-Fr 10:00-12:00,14:00-17:30",
    "weekly_capacity": 5, "accepting": true,
    "contact": { "phone": "+33545207208", "email": "mansle@france-services.gouv.fr" }
}))]
pub struct StructureRequest {
    #[schema(schema_with = schema::text::<300>, required = true)]
    pub name: Option<String>,
    #[schema(value_type = Vec<Need>, required = true, min_items = 1, max_items = 50)]
    pub services: Option<Vec<String>>,
    /// Default (absent or empty): `individual`.
    #[schema(value_type = Option<Vec<StructureMode>>, max_items = 50)]
    pub modes: Option<Vec<String>>,
    /// Default (absent or empty): `fr`.
    #[schema(value_type = Option<Vec<Language>>, max_items = 50)]
    pub languages: Option<Vec<String>>,
    pub other_languages: Option<bool>,
    #[schema(value_type = Option<Vec<Accessibility>>, max_items = 50)]
    pub accessibility: Option<Vec<String>>,
    /// Places the structure in its territory: `commune_code` or `postcode` is required.
    #[schema(value_type = AddressRequest, required = true)]
    pub address: Option<AddressRequest>,
    /// Default: the commune's centroid.
    pub location: Option<PointRequest>,
    #[schema(schema_with = schema::opening_hours)]
    pub opening_hours: Option<String>,
    /// Default: the stored value, or `AIGUILLAGE_DEFAULT_WEEKLY_CAPACITY` for a new structure.
    #[serde(default, deserialize_with = "integer")]
    #[schema(minimum = 0, maximum = 10000)]
    pub weekly_capacity: Option<i64>,
    /// Default: the stored value, or true for a new structure.
    pub accepting: Option<bool>,
    pub contact: Option<StructureContactRequest>,
    #[schema(schema_with = fees_schema)]
    pub fees: Option<Vec<String>>,
    #[schema(schema_with = labels_schema)]
    pub labels: Option<Vec<String>>,
    /// The structure's SIRET (Mednum `pivot`), as its source gives it: how an agent
    /// signing in with ProConnect is matched to their workplace. A `PUT` without it
    /// removes it, as it does any other field.
    #[schema(schema_with = schema::optional_text::<40>)]
    pub siret: Option<String>,
    #[serde(rename = "id", skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = schema::ignored, read_only)]
    pub _id: Option<serde_json::Value>,
    #[serde(rename = "territory", skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = schema::ignored, read_only)]
    pub _territory: Option<serde_json::Value>,
    #[serde(rename = "source", skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = schema::ignored, read_only)]
    pub _source: Option<serde_json::Value>,
    #[serde(rename = "updated_at", skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = schema::ignored, read_only)]
    pub _updated_at: Option<serde_json::Value>,
}

fn short_texts(description: &str) -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            utoipa::openapi::schema::Type::Array,
            utoipa::openapi::schema::Type::Null,
        ]))
        .items(schema::list_text::<200>())
        .max_items(Some(50))
        .description(Some(description))
        .build()
}

fn fees_schema() -> utoipa::openapi::schema::Array {
    short_texts("Fees (`gratuit`, `payant` …), as the source gives them")
}

fn labels_schema() -> utoipa::openapi::schema::Array {
    short_texts("Labels (`France services` …), as the source gives them")
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "weekly_capacity": 8, "accepting": true }))]
pub struct CapacityRequest {
    #[serde(default, deserialize_with = "integer")]
    #[schema(minimum = 0, maximum = 10000)]
    pub weekly_capacity: Option<i64>,
    pub accepting: Option<bool>,
    /// OpenStreetMap `opening_hours` (a mediator keeps their place's hours); an empty
    /// string removes them.
    #[schema(schema_with = schema::opening_hours)]
    pub opening_hours: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonRequest {
    #[schema(schema_with = schema::text::<100>, required = true)]
    pub first_name: Option<String>,
    #[schema(schema_with = schema::text::<100>, required = true)]
    pub last_name: Option<String>,
    #[schema(schema_with = schema::person_phone)]
    pub phone: Option<String>,
    #[schema(schema_with = schema::person_email)]
    pub email: Option<String>,
    /// Default: `phone` when a phone number is given, else `email`.
    #[schema(value_type = Option<ContactPreference>)]
    pub contact_preference: Option<String>,
    #[schema(schema_with = schema::commune_code)]
    pub commune_code: Option<String>,
    #[schema(schema_with = schema::postcode)]
    pub postcode: Option<String>,
    /// Default (absent or empty): `fr`.
    #[schema(value_type = Option<Vec<Language>>, max_items = 50)]
    pub languages: Option<Vec<String>>,
    #[schema(value_type = Option<Vec<Accessibility>>, max_items = 50)]
    pub accessibility: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentRequest {
    #[schema(schema_with = schema::consent_obtained, required = true)]
    pub obtained: Option<bool>,
    /// How consent was obtained (`oral`, `written` …).
    #[schema(schema_with = schema::optional_text::<50>)]
    pub method: Option<String>,
    #[schema(schema_with = schema::date_time)]
    pub at: Option<String>,
}

/// `POST /api/v1/referrals`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "person": { "first_name": "Amina", "last_name": "B.", "phone": "+33612345678",
                "email": null, "contact_preference": "phone",
                "commune_code": "16015", "postcode": null,
                "languages": ["fr", "ar"], "accessibility": [] },
    "needs": ["aide_demarches_administratives"],
    "modes": ["in_person"], "max_distance_km": 20,
    "urgency": "normal", "deadline": "2026-12-15",
    "note": "Dossier CAF à déposer avant le 15.",
    "consent": { "obtained": true, "method": "oral", "at": "2026-11-28T09:55:00Z" }
}))]
pub struct ReferralRequest {
    #[schema(value_type = PersonRequest, required = true)]
    pub person: Option<PersonRequest>,
    #[schema(value_type = Vec<Need>, required = true, min_items = 1, max_items = 50)]
    pub needs: Option<Vec<String>>,
    /// Default: `["in_person"]`.
    #[schema(value_type = Option<Vec<ReferralMode>>, min_items = 1, max_items = 50)]
    pub modes: Option<Vec<String>>,
    /// Default: `AIGUILLAGE_MAX_DISTANCE_KM`.
    #[schema(exclusive_minimum = 0.0, maximum = 200.0)]
    pub max_distance_km: Option<f64>,
    /// Default: `normal`.
    #[schema(value_type = Option<Urgency>)]
    pub urgency: Option<String>,
    #[schema(schema_with = schema::date)]
    pub deadline: Option<String>,
    #[schema(schema_with = schema::optional_text::<1000>)]
    pub note: Option<String>,
    #[schema(value_type = ConsentRequest, required = true)]
    pub consent: Option<ConsentRequest>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    #[schema(schema_with = schema::optional_text::<200>)]
    pub mediator_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "reason": "no_capacity", "comment": "Plus de créneau avant janvier." }))]
pub struct DeclineRequest {
    #[schema(schema_with = schema::structure_decline_reason, required = true)]
    pub reason: Option<String>,
    #[schema(schema_with = schema::optional_text::<1000>)]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactRequest {
    /// Default: `first_contact`.
    #[schema(value_type = Option<ContactKind>)]
    pub kind: Option<String>,
    /// Default: now. At most a year ahead.
    #[schema(schema_with = schema::date_time)]
    pub at: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "outcome": "completed" }))]
pub struct CloseRequest {
    #[schema(value_type = Outcome, required = true)]
    pub outcome: Option<String>,
    #[schema(schema_with = schema::optional_text::<1000>)]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    #[schema(schema_with = schema::optional_text::<1000>)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RerouteRequest {
    /// A structure to offer the referral to; without it, matching runs again with the
    /// attempts reset.
    #[schema(schema_with = schema::optional_structure_id)]
    pub structure_id: Option<String>,
    /// Offer to `structure_id` even without capacity.
    pub force: Option<bool>,
    #[schema(schema_with = schema::optional_text::<1000>)]
    pub reason: Option<String>,
}

/// `POST /api/v1/match/preview`: a profile with no personal data.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "commune_code": "16015", "needs": ["aide_demarches_administratives"], "modes": ["in_person"] }))]
pub struct PreviewRequest {
    #[schema(schema_with = schema::preview_commune_code)]
    pub commune_code: Option<String>,
    #[schema(schema_with = schema::preview_postcode)]
    pub postcode: Option<String>,
    #[schema(value_type = Vec<Need>, required = true, min_items = 1, max_items = 50)]
    pub needs: Option<Vec<String>>,
    /// Default (absent or empty): `["in_person"]`.
    #[schema(value_type = Option<Vec<ReferralMode>>, max_items = 50)]
    pub modes: Option<Vec<String>>,
    #[schema(value_type = Option<Vec<Language>>, max_items = 50)]
    pub languages: Option<Vec<String>>,
    #[schema(value_type = Option<Vec<Accessibility>>, max_items = 50)]
    pub accessibility: Option<Vec<String>>,
    /// Default: `AIGUILLAGE_MAX_DISTANCE_KM`.
    #[schema(exclusive_minimum = 0.0, maximum = 1000.0)]
    pub max_distance_km: Option<f64>,
    #[schema(value_type = Option<Urgency>)]
    pub urgency: Option<String>,
    /// How many candidates, 1 to 50 (larger and smaller values are brought into range).
    #[serde(default, deserialize_with = "integer")]
    #[schema(minimum = 0, maximum = 4294967295_i64)]
    pub limit: Option<i64>,
}

/// Rules across the fields of one body, as JSON Schema fragments merged into the named
/// schema: a derive states each field on its own, not "this one or that one".
pub fn cross_field_rules() -> Vec<(&'static str, serde_json::Value)> {
    let present = |field: &str| serde_json::json!({ "required": [field], "properties": { field: { "type": "string", "pattern": schema::NOT_BLANK } } });
    // A commune code when one is given (it must exist), else a postcode (which must).
    let place = || {
        let mut by_postcode = present("postcode");
        by_postcode["properties"]["commune_code"] =
            serde_json::json!({ "anyOf": [{ "type": "null" }, { "type": "string", "maxLength": 0 }] });
        serde_json::json!({ "anyOf": [present("commune_code"), by_postcode] })
    };
    let not_preferring = |field: &str, preference: &str| {
        let mut p = present(field);
        p["properties"]["contact_preference"] = serde_json::json!({ "not": { "const": preference } });
        p
    };
    vec![
        (
            "PersonRequest",
            serde_json::json!({
                "description": "A phone number or an e-mail address is required, and the one named by \
                    `contact_preference`; a commune code or a postcode is required.",
                "allOf": [
                    place(),
                    { "anyOf": [
                        not_preferring("phone", "email"),
                        not_preferring("email", "phone"),
                        { "allOf": [present("phone"), present("email")] },
                    ] },
                ],
            }),
        ),
        ("AddressRequest", place()),
        ("PreviewRequest", place()),
        (
            "CapacityRequest",
            serde_json::json!({
                "description": "Give weekly_capacity, accepting, or both.",
                "anyOf": [
                    { "required": ["weekly_capacity"], "properties": { "weekly_capacity": { "type": "integer" } } },
                    { "required": ["accepting"], "properties": { "accepting": { "type": "boolean" } } },
                ],
            }),
        ),
        (
            "RerouteRequest",
            serde_json::json!({
                "description": "`force` needs a `structure_id`.",
                "anyOf": [
                    { "properties": { "force": { "enum": [false, null] } } },
                    present("structure_id"),
                ],
            }),
        ),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_integer_is_what_json_schema_calls_one() {
        // JSON Schema counts 8.0 as an integer, and the document says `integer`.
        let read = |json: &str| serde_json::from_str::<CapacityRequest>(json).map(|c| c.weekly_capacity);
        assert_eq!(read(r#"{"weekly_capacity": 8}"#).unwrap(), Some(8));
        assert_eq!(read(r#"{"weekly_capacity": 8.0}"#).unwrap(), Some(8));
        assert_eq!(read(r#"{"weekly_capacity": null}"#).unwrap(), None);
        assert_eq!(read(r#"{"accepting": true}"#).unwrap(), None);
        assert!(read(r#"{"weekly_capacity": 8.5}"#).is_err());
        assert!(read(r#"{"weekly_capacity": 1e300}"#).is_err());
        assert!(read(r#"{"weekly_capacity": "8"}"#).is_err());
    }
}
