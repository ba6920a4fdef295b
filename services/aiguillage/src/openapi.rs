//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document, derived from the request and
//! response types and the handlers' `#[utoipa::path]` annotations of every service.
//!
//! Every process serves the whole API's document, whichever services it runs: clients see
//! one API behind one base URL, and the ingress sends this path to one service
//! (`deploy/k8s/ingress.yaml`), which must describe the others too.

use std::sync::LazyLock;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Aiguillage",
        version = "1",
        description = "Routes digital-mediation referrals from social services to the structure that can help, \
            and tracks them until closed. Errors are RFC 9457 `application/problem+json`; a validation failure \
            (422) names each bad field. A resource outside the caller's scope answers 404; a role that may never \
            call an operation, 403.",
        license(name = "AGPL-3.0-or-later", identifier = "AGPL-3.0-or-later"),
    ),
    servers((url = "/")),
    security(("bearer" = [])),
    components(schemas(platform::ApiError, contracts::FieldError)),
    modifiers(&Bearer),
    tags(
        (name = "referrals", description = "Submit, follow and act on referrals"),
        (name = "directory", description = "Organisations and structures"),
        (name = "matching", description = "Why a referral goes where it goes"),
        (name = "insights", description = "Coordinators' view of a territory"),
        (name = "open-data", description = "Open statistics of the reorientation flow, per département and month, with statistical secrecy (no sign-in)"),
        (name = "accounts", description = "Agents, their memberships, requests and invitations"),
        (name = "notifications", description = "Webhooks, refused e-mails and structures nobody can be told about"),
        (name = "privacy", description = "The person's rights (GDPR) and the audit of access to personal data"),
        (name = "operations", description = "Health, metrics and this document"),
    )
)]
struct Base;

/// Bearer tokens: `aiguillage token issue`.
struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.bearer_format = Some("JWT".to_string());
        http.description = Some("A JWT from `aiguillage token issue`, with a role and its scope".to_string());
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(http));
    }
}

/// The document, as utoipa builds it from the code.
pub fn generated() -> utoipa::openapi::OpenApi {
    let mut doc = Base::openapi();
    doc.merge(platform::health::openapi());
    doc.merge(routes().into_openapi());
    doc.merge(referrals::openapi());
    doc.merge(directory::openapi());
    doc.merge(matcher::openapi());
    doc.merge(insights::openapi());
    doc.merge(accounts::openapi());
    doc.merge(notify::openapi());
    doc
}

/// The document served: the generated one, with what a derive cannot say (rules across
/// fields, and the département codes of the communes table).
pub fn document() -> Value {
    let mut doc = serde_json::to_value(generated()).unwrap_or(Value::Null);
    let schemas = &mut doc["components"]["schemas"];
    for (name, rules) in contracts::api::cross_field_rules().into_iter().chain(contracts::accounts::cross_field_rules())
    {
        if let (Some(schema), Value::Object(rules)) = (schemas.get_mut(name).and_then(Value::as_object_mut), rules) {
            schema.extend(rules);
        }
    }
    let mut codes: Vec<&str> = geo::communes().departements().map(|d| d.code.as_str()).collect();
    codes.sort_unstable();
    schemas["Departement"]["enum"] = json!(codes);
    doc
}

static DOCUMENT: LazyLock<Vec<u8>> = LazyLock::new(|| serde_json::to_vec(&document()).unwrap_or_default());

fn routes() -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(openapi_json))
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "getOpenApi",
    tag = "operations",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object))
)]
async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT.as_slice())
}

/// `GET /api/v1/openapi.json`. The document is built on the first request and kept.
pub fn router() -> Router {
    routes().split_for_parts().0
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::BTreeSet;

    use contracts::*;

    use super::*;

    fn slugs<T: std::fmt::Display>(all: &[T]) -> Vec<Value> {
        all.iter().map(|v| json!(v.to_string())).collect()
    }

    /// Every vocabulary of `contracts::vocab`, by the name of its schema.
    fn vocabularies() -> Vec<(&'static str, Vec<Value>)> {
        vec![
            ("Need", slugs(Need::ALL)),
            ("StructureMode", slugs(StructureMode::ALL)),
            ("ReferralMode", slugs(ReferralMode::ALL)),
            ("Accessibility", slugs(Accessibility::ALL)),
            ("Urgency", slugs(Urgency::ALL)),
            ("ReferralStatus", slugs(ReferralStatus::ALL)),
            ("Outcome", slugs(Outcome::ALL)),
            ("DeclineReason", slugs(DeclineReason::ALL)),
            ("ContactKind", slugs(ContactKind::ALL)),
            ("ContactPreference", slugs(ContactPreference::ALL)),
            ("WaitlistReason", slugs(WaitlistReason::ALL)),
            ("OrganisationKind", slugs(OrganisationKind::ALL)),
            ("HistoryStep", slugs(HistoryStep::ALL)),
            ("Role", slugs(Role::ALL)),
            ("DeliveryMode", slugs(DeliveryMode::ALL)),
            ("MessageKind", slugs(MessageKind::ALL)),
            ("ExclusionCode", slugs(ExclusionCode::ALL)),
            ("AuditAction", slugs(AuditAction::ALL)),
            ("AnsweredVia", slugs(AnsweredVia::ALL)),
            ("LinkStage", slugs(LinkStage::ALL)),
            ("NoticeChannel", slugs(NoticeChannel::ALL)),
            ("NoticeStatus", slugs(NoticeStatus::ALL)),
            ("AppointmentNotice", slugs(AppointmentNotice::ALL)),
        ]
    }

    /// Vocabularies no operation takes or returns.
    /// (Preferences name each kind as a field of their body; issue 23's answer links and
    /// funnel take AnsweredVia and LinkStage on the wire once their endpoints exist.)
    const NOT_ON_THE_WIRE: [&str; 3] = ["MessageKind", "AnsweredVia", "LinkStage"];

    #[test]
    fn the_test_knows_every_vocabulary_of_contracts() {
        // A vocabulary added to vocab.rs must be added above, or this test fails.
        let source = include_str!("../../../shared/contracts/src/vocab.rs");
        let declared: BTreeSet<&str> = source
            .split("vocabulary! {")
            .skip(1)
            .filter_map(|rest| rest.split("pub enum ").nth(1)?.split_whitespace().next())
            .collect();
        let listed: BTreeSet<&str> = vocabularies().iter().map(|(n, _)| *n).collect();
        assert_eq!(declared, listed);
    }

    #[test]
    fn every_vocabulary_in_the_document_is_the_rust_vocabulary() {
        let doc = document();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for (name, values) in vocabularies() {
            match schemas.get(name) {
                Some(schema) => {
                    assert_eq!(schema["type"], "string", "{name}");
                    assert_eq!(schema["enum"].as_array().unwrap(), &values, "{name}");
                }
                None => assert!(NOT_ON_THE_WIRE.contains(&name), "{name} is missing from the document"),
            }
        }
        // And the other way: a named enum is a vocabulary, a Rust enum whose schema is
        // derived from it, or data (the départements of the communes table).
        let known: BTreeSet<&str> = vocabularies().iter().map(|(n, _)| *n).collect();
        let derived =
            ["FlowNodeKind", "CallerKind", "RequestStatus", "PlaceKind", "WebhookEventType", "InvitationStatus"];
        for (name, schema) in schemas {
            if schema.get("enum").is_some() {
                assert!(
                    known.contains(name.as_str()) || derived.contains(&name.as_str()) || name == "Departement",
                    "{name} lists values that no Rust type checks"
                );
            }
        }
        let mut departements: Vec<&str> = geo::communes().departements().map(|d| d.code.as_str()).collect();
        departements.sort_unstable();
        assert_eq!(schemas["Departement"]["enum"], json!(departements));
    }

    #[test]
    fn a_language_schema_states_what_parses() {
        let doc = document();
        let pattern = doc["components"]["schemas"]["Language"]["pattern"].as_str().unwrap();
        assert_eq!(pattern, Language::PATTERN);
        for ok in ["fr", "AR"] {
            assert!(ok.parse::<Language>().is_ok());
        }
    }

    /// Resolves a local JSON pointer (`#/components/schemas/Need`).
    fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
        doc.pointer(reference.strip_prefix('#')?)
    }

    fn each_ref<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(r)) = o.get("$ref") {
                    out.push(r);
                }
                o.values().for_each(|v| each_ref(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| each_ref(v, out)),
            _ => {}
        }
    }

    fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
        let mut ops = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                ops.push((method.to_uppercase(), path.clone(), op));
            }
        }
        ops
    }

    #[test]
    fn the_document_is_structurally_valid_openapi_3_1() {
        let doc = document();
        let text = serde_json::to_string(&doc).unwrap();
        // An independent reader of OpenAPI 3.1 accepts it.
        let spec = oas3::from_json(&text).expect("oas3 reads the document");
        spec.validate_version().expect("an OpenAPI 3.1 version");
        assert_eq!(doc["openapi"], "3.1.0");

        let mut refs = Vec::new();
        each_ref(&doc, &mut refs);
        assert!(refs.len() > 100);
        for r in refs {
            assert!(resolve(&doc, r).is_some(), "{r} does not resolve");
        }

        let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
        assert_eq!(schemes["bearer"]["scheme"], "bearer");
        let tags: BTreeSet<&str> =
            doc["tags"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        let mut ids = BTreeSet::new();
        let ops = operations(&doc);
        for (method, path, op) in &ops {
            let label = format!("{method} {path}");
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{label}: no operationId"));
            assert!(ids.insert(id.to_string()), "{label}: operationId {id} is not unique");
            for tag in op["tags"].as_array().unwrap() {
                assert!(tags.contains(tag.as_str().unwrap()), "{label}: undeclared tag {tag}");
            }
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.keys().any(|c| c.starts_with('2')), "{label}: no success response");
            for (code, r) in responses {
                assert!(r["description"].is_string(), "{label} {code}: no description");
                let problem = &r["content"]["application/problem+json"]["schema"]["$ref"];
                if code.starts_with('4') || (code.starts_with('5') && path != "/readyz") {
                    assert_eq!(problem, "#/components/schemas/Problem", "{label} {code}: not a problem+json");
                }
            }
            let public = op["security"] == json!([{}]);
            if !public {
                for code in ["401", "503"] {
                    assert!(responses.contains_key(code), "{label}: no {code}");
                }
            }
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            for segment in path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')) {
                assert!(
                    params.iter().any(|p| p["in"] == "path" && p["name"] == segment && p["required"] == true),
                    "{label}: path parameter {segment} undeclared"
                );
            }
            if let Some(content) = op["requestBody"]["content"].as_object()
                && content.contains_key("application/json")
                && path != "/api/v1/structures/import"
            {
                for code in ["400", "413", "415", "422"] {
                    assert!(responses.contains_key(code), "{label}: a JSON body but no {code}");
                }
            }
            if !params.iter().all(|p| p["in"] == "path") {
                assert!(responses.contains_key("422"), "{label}: parameters but no 422");
            }
        }
        // Links lead to operations that exist, with parameters they take.
        for (method, path, op) in &ops {
            for (code, r) in op["responses"].as_object().unwrap() {
                for (name, link) in r["links"].as_object().into_iter().flatten() {
                    let target = link["operationId"].as_str().unwrap();
                    let (_, _, target_op) = ops
                        .iter()
                        .find(|(_, _, o)| o["operationId"] == target)
                        .unwrap_or_else(|| panic!("{method} {path} {code}: link {name} to unknown {target}"));
                    for parameter in link["parameters"].as_object().unwrap().keys() {
                        assert!(
                            target_op["parameters"].as_array().unwrap().iter().any(|p| p["name"] == *parameter),
                            "link {name}: {target} has no parameter {parameter}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_service_names_its_schemas_apart() {
        // `OpenApi::merge` keeps the first of two schemas with one name: two services
        // must never both define one differently.
        let parts = [
            ::referrals::openapi(),
            ::directory::openapi(),
            matcher::openapi(),
            ::insights::openapi(),
            ::accounts::openapi(),
            notify::openapi(),
        ];
        let mut seen: std::collections::BTreeMap<String, Value> = Default::default();
        for part in parts {
            for (name, schema) in part.components.map(|c| c.schemas).unwrap_or_default() {
                let schema = serde_json::to_value(schema).unwrap();
                if let Some(earlier) = seen.insert(name.clone(), schema.clone()) {
                    assert_eq!(earlier, schema, "two schemas named {name}");
                }
            }
        }
    }

    #[test]
    fn the_problem_schema_is_what_an_error_serialises_to() {
        let doc = document();
        let problem = &doc["components"]["schemas"]["Problem"];
        let body =
            serde_json::to_value(platform::ApiError::validation(vec![FieldError::new("needs", "empty")])).unwrap();
        for key in body.as_object().unwrap().keys() {
            assert!(problem["properties"].get(key).is_some(), "{key} is undocumented");
        }
        for key in problem["required"].as_array().unwrap() {
            assert!(body.get(key.as_str().unwrap()).is_some(), "{key} is required but absent");
        }
    }
}
