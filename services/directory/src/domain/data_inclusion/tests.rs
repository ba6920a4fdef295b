#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

const STRUCTURES_JSON: &[u8] = include_bytes!("fixtures/structures.json");
const SERVICES_JSON: &[u8] = include_bytes!("fixtures/services.json");
const STRUCTURES_CSV: &[u8] = include_bytes!("fixtures/structures.csv");
const SERVICES_CSV: &[u8] = include_bytes!("fixtures/services.csv");

/// What the agent of the fixtures is called and how to reach them: none of it may be
/// imported.
const AGENT: &[&str] = &["Vérandier", "verandier", "98 76 54 32", "698765432"];

fn parse_pair(structures: &[u8], services: &[u8]) -> ParsedFile {
    let entries = read_files(structures, services).unwrap();
    let parsed = parse(entries, None, geo::communes());
    assert_eq!(parsed.received, 11);
    parsed
}

fn record<'a>(parsed: &'a ParsedFile, id: &str) -> &'a ImportedRecord {
    parsed.records.iter().find(|r| r.id == id).unwrap_or_else(|| panic!("{id} not imported: {:#?}", parsed.rejected))
}

fn check_fixture(parsed: &ParsedFile) {
    let ids: Vec<&str> = parsed.records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["di-dora--42", "di-dora--AidantsConnect:2024-47BXY", "di-dora--s4@service"]);

    let tournesol = record(parsed, "di-dora--42");
    assert_eq!(tournesol.name, "Centre social Le Tournesol");
    assert_eq!(tournesol.services, [Need::MaitriseOutilsNumeriques, Need::AcquisitionMaterielSolidaire]);
    assert_eq!(tournesol.modes, [StructureMode::Individual, StructureMode::Workshop, StructureMode::Remote]);
    assert_eq!(tournesol.fees, ["Gratuit", "Payant"]);
    assert_eq!(tournesol.opening_hours.as_deref(), Some("Mo-Fr 08:30-12:30; PH off"));
    assert_eq!(tournesol.contact.phone.as_deref(), Some("+33123456789"));
    assert_eq!(tournesol.contact.email.as_deref(), Some("exemple@inclusion.gouv.fr"));
    assert_eq!(tournesol.pivot.as_deref(), Some("13003013300016"));
    assert_eq!(tournesol.source.as_deref(), Some("data-inclusion/dora"));
    assert_eq!(tournesol.territory, "16");
    assert_eq!(tournesol.address.commune_code.as_deref(), Some("16206"));
    assert_eq!(tournesol.updated_on, chrono::NaiveDate::from_ymd_opt(2025, 2, 14));

    let aidants = record(parsed, "di-dora--AidantsConnect:2024-47BXY");
    assert_eq!(aidants.services, [Need::AccesInternetMateriel]);
    assert_eq!(aidants.modes, [StructureMode::Individual], "no modes_accueil: defaulted");
    assert_eq!(aidants.opening_hours, None, "invalid hours are kept out");
    assert!(parsed.warnings.iter().any(|w| w.id.as_deref() == Some(aidants.id.as_str())
        && w.field == "horaires_accueil"
        && w.message.contains("dropped")));

    let cognac = record(parsed, "di-dora--s4@service");
    assert_eq!(cognac.name, "Centre social Le Tournesol – Permanence numérique de Cognac");
    assert_eq!(cognac.services, [Need::AideDemarchesAdministratives]);
    assert_eq!(cognac.address.commune_code.as_deref(), Some("16102"));
    assert_eq!(cognac.address.street.as_deref(), Some("10 Rue du Minage"));
    assert_eq!(cognac.opening_hours.as_deref(), Some("We 14:00-17:00"));
    assert_eq!(cognac.contact.email.as_deref(), Some("exemple@inclusion.gouv.fr"), "the structure's contact");
    assert_eq!(cognac.contact.phone, None);
    assert_eq!(cognac.pivot, None);

    let rejected: Vec<(usize, String)> = parsed.rejected.iter().map(|r| (r.index, r.errors.join("; "))).collect();
    let expected = [
        (3, "structure: missing required field `nom`"),
        (9, "service: missing required field `description`"),
        (10, "service: `structure_id` 'dora--inconnue' (source 'dora') is not in the structures file"),
    ];
    assert_eq!(rejected, expected.map(|(i, e)| (i, e.to_string())));
    assert_eq!(parsed.skipped.get("services_not_digital"), Some(&1));
    assert_eq!(parsed.skipped.get("structures_without_digital_service"), Some(&1));
    assert_eq!(parsed.unmapped_values["thematiques"]["numerique--teleporter-ses-fichiers"], 1);
    assert_eq!(parsed.unmapped_values.len(), 1, "{:?}", parsed.unmapped_values);
    assert_eq!(parsed.eligibility_zones["di-dora--42"], ["16206"]);
    assert_eq!(parsed.eligibility_zones["di-dora--s4@service"], ["16", "200070514"]);
    assert_eq!(parsed.defaulted_modes, 1);
    assert_eq!(parsed.located_by_commune, 2);

    let stored = serde_json::to_string(&parsed.records).unwrap();
    for secret in AGENT {
        assert!(!stored.contains(secret), "{secret} in {stored}");
    }
}

#[test]
fn the_json_pair_gives_a_place_per_structure_with_digital_services_and_per_service_elsewhere() {
    check_fixture(&parse_pair(STRUCTURES_JSON, SERVICES_JSON));
}

#[test]
fn the_csv_pair_reads_as_the_json_pair_in_either_order() {
    let json = parse_pair(STRUCTURES_JSON, SERVICES_JSON);
    let csv = parse_pair(SERVICES_CSV, STRUCTURES_CSV);
    check_fixture(&csv);
    assert_eq!(csv.records, json.records);
}

#[test]
fn the_http_form_is_one_object_holding_both_arrays() {
    let body = format!(
        r#"{{"structures": {}, "services": {}}}"#,
        std::str::from_utf8(STRUCTURES_JSON).unwrap(),
        std::str::from_utf8(SERVICES_JSON).unwrap()
    );
    let entries = read_pair(body.as_bytes()).unwrap();
    check_fixture(&parse(entries, None, geo::communes()));
    assert!(read_pair(b"[{\"id\": \"a\"}]").is_none());
    assert!(read_pair(b"{\"data\": []}").is_none());
}

#[test]
fn two_files_of_structures_are_not_a_pair() {
    assert!(matches!(read_files(STRUCTURES_JSON, STRUCTURES_JSON), Err(FileError::DataInclusion(_))));
}

#[test]
fn a_source_name_replaces_the_stored_source() {
    let entries = read_files(STRUCTURES_JSON, SERVICES_JSON).unwrap();
    let parsed = parse(entries, Some("national"), geo::communes());
    assert!(parsed.records.iter().all(|r| r.source.as_deref() == Some("national")));
}

#[test]
fn every_digital_theme_of_the_schema_maps_to_a_need() {
    // Current v1 themes, and the earlier ones still found in feeds.
    for (theme, need) in THEMES {
        assert!(is_digital_theme(theme));
        assert_eq!(theme_need(theme), Some(*need));
    }
    assert_eq!(theme_need("numerique--acceder-a-des-services-en-ligne"), Some(Need::AideDemarchesAdministratives));
    assert_eq!(theme_need("numerique--maitriser-les-fondamentaux-du-numerique"), Some(Need::MaitriseOutilsNumeriques));
    assert_eq!(theme_need("numerique"), None);
    assert!(is_digital_theme("numerique"));
    assert!(!is_digital_theme("famille--soutien-a-la-parentalite-et-a-leducation"));
    assert!(!is_digital_theme("numeriquement"));
}

#[test]
fn modes_and_fees_map_from_the_schema_values() {
    assert_eq!(mode("a-distance", None), Some(StructureMode::Remote));
    assert_eq!(mode("en-presentiel", Some("atelier")), Some(StructureMode::Workshop));
    assert_eq!(mode("en-presentiel", Some("accompagnement")), Some(StructureMode::Individual));
    assert_eq!(mode("sur-la-lune", None), None);
    assert_eq!(fee("gratuit"), Some("Gratuit"));
    assert_eq!(fee("payant"), Some("Payant"));
    assert_eq!(fee("gratuit-sous-conditions"), Some("Gratuit sous condition"));
    assert_eq!(fee("sur-devis"), None);
}

#[test]
fn list_fields_are_read_as_json_postgres_or_separated_values() {
    let text = |s: &str| list(Some(&RawValue::Text(s.to_string())));
    assert_eq!(text(r#"["a", "b"]"#), ["a", "b"]);
    assert_eq!(text("{a,b}"), ["a", "b"]);
    assert_eq!(text("a, b|c;"), ["a", "b", "c"]);
    assert_eq!(text(""), Vec::<String>::new());
    assert_eq!(list(Some(&RawValue::List(vec!["a".into(), " ".into()]))), ["a"]);
}

#[test]
fn ids_are_namespaced_by_source_without_repeating_it() {
    assert_eq!(place_id("dora", "dora--42"), "di-dora--42");
    assert_eq!(place_id("dora", "42"), "di-dora--42");
    assert_eq!(place_id("cd35", "dora--42"), "di-cd35--dora--42");
    assert_eq!(place_id("dora", "Lieu n°1"), "di-dora--Lieu-n-1");
    assert!(crate::domain::structure::valid_structure_id(&service_place_id("dora", &"x".repeat(300))));
}

#[test]
fn a_repeated_structure_is_superseded_by_the_later_one() {
    let structures = br#"[
        {"source": "s", "id": "s--1", "nom": "Ancien nom", "date_maj": "2025-01-01", "code_insee": "16015"},
        {"source": "s", "id": "s--1", "nom": "Nouveau nom", "date_maj": "2025-02-01", "code_insee": "16015"}
    ]"#;
    let services = br#"[{"source": "s", "structure_id": "s--1", "id": "s--a", "nom": "Atelier",
        "description": "Un atelier", "date_maj": "2025-01-01", "thematiques": ["numerique--acquerir-un-equipement"]}]"#;
    let parsed = parse(read_files(structures, services).unwrap(), None, geo::communes());
    assert_eq!(parsed.records.len(), 1);
    assert_eq!(parsed.records[0].name, "Nouveau nom");
    assert_eq!(parsed.rejected.len(), 1);
    assert_eq!(parsed.rejected[0].index, 0);
}

#[test]
fn a_service_at_its_structures_address_is_not_a_place_of_its_own() {
    let structure = |extra: &str| {
        read::json_entries(&format!(r#"[{{"adresse": "21 Rue Martin", "code_insee": "16206"{extra}}}]"#))
            .unwrap()
            .remove(0)
            .unwrap()
    };
    let st = structure("");
    assert!(!has_own_address(&structure(""), &st));
    assert!(!has_own_address(&structure(r#", "code_postal": "16230""#), &st));
    let elsewhere =
        read::json_entries(r#"[{"adresse": "10 Rue du Minage", "code_insee": "16102"}]"#).unwrap().remove(0).unwrap();
    assert!(has_own_address(&elsewhere, &st));
    let same_street_other_commune =
        read::json_entries(r#"[{"adresse": "21 rue Martin", "code_insee": "16102"}]"#).unwrap().remove(0).unwrap();
    assert!(has_own_address(&same_street_other_commune, &st));
    let nothing = read::json_entries(r#"[{"nom": "x"}]"#).unwrap().remove(0).unwrap();
    assert!(!has_own_address(&nothing, &st));
}
