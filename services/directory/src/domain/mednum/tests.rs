#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::NaiveDate;
use proptest::prelude::*;

use super::*;

const CHARENTE: &[u8] = crate::SAMPLE_DIRECTORY;
const EXEMPLE_VALIDE: &[u8] = include_bytes!("fixtures/exemple-valide.csv");
const V0_SEMICOLONS: &[u8] = include_bytes!("fixtures/v0-semicolons.json");
const SEMICOLON_CSV: &[u8] = include_bytes!("fixtures/semicolon-no-coordinates.csv");
const MIXED: &[u8] = include_bytes!("fixtures/mixed.json");

fn parse(bytes: &[u8]) -> ParsedFile {
    let parsed = parse_file(bytes, detect_format(bytes), geo::communes()).unwrap();
    assert_eq!(parsed.received, parsed.records.len() + parsed.rejected.len());
    parsed
}

fn record<'a>(parsed: &'a ParsedFile, id: &str) -> &'a ImportedRecord {
    parsed.records.iter().find(|r| r.id == id).unwrap_or_else(|| panic!("{id} not imported: {:#?}", parsed.rejected))
}

fn rejection(parsed: &ParsedFile, index: usize) -> &Rejection {
    parsed.rejected.iter().find(|r| r.index == index).unwrap_or_else(|| panic!("record {index} not rejected"))
}

fn lang(code: &str) -> Language {
    code.parse().unwrap()
}

// -- The real Charente file

#[test]
fn the_charente_file_imports_at_least_183_of_its_188_records_with_services_mapped() {
    let parsed = parse(CHARENTE);
    assert_eq!(parsed.received, 188);
    assert!(parsed.records.len() >= 183, "{} imported; rejected: {:#?}", parsed.records.len(), parsed.rejected);
    assert!(parsed.records.iter().all(|r| !r.services.is_empty()));
    assert!(parsed.unmapped_values.get("services").is_none_or(BTreeMap::is_empty), "{:?}", parsed.unmapped_values);
    assert!(parsed.records.iter().all(|r| r.territory == "16"), "every place of the file is in Charente");
}

#[test]
fn the_charente_file_keeps_its_coordinates_hours_and_labels() {
    let parsed = parse(CHARENTE);
    assert_eq!(parsed.located_by_commune, 0);
    assert_eq!(parsed.records.iter().filter(|r| r.opening_hours.is_some()).count(), 72);
    assert!(parsed.warnings.iter().all(|w| w.field != "horaires"), "{:?}", parsed.warnings);
    let first = &parsed.records[0];
    assert_eq!(first.name, "Médiathèque chateaubernard");
    assert_eq!(first.services, vec![Need::MaitriseOutilsNumeriques, Need::ComprehensionMondeNumerique]);
    assert_eq!(first.modes, vec![StructureMode::Individual]);
    assert_eq!(first.location, Point { lat: 45.681367, lon: -0.331217 });
    assert_eq!(first.address.commune_code.as_deref(), Some("16089"));
    assert_eq!(first.fees, vec!["Gratuit"]);
    assert_eq!(first.labels, vec!["CNFS", "France Services"]);
    assert_eq!(first.pivot, None, "00000000000000 is no SIRET");
    assert_eq!(first.source.as_deref(), Some("conseiller-numerique"));
    assert_eq!(first.updated_on, NaiveDate::from_ymd_opt(2023, 2, 22));
    assert_eq!(first.languages, vec![Language::french()]);
    // The audiences of `publics_accueillis` are known, not unmapped.
    assert!(!parsed.unmapped_values.contains_key("publics_accueillis"), "{:?}", parsed.unmapped_values);
}

#[test]
fn the_charente_file_reports_places_listed_twice_under_different_ids() {
    let parsed = parse(CHARENTE);
    for d in &parsed.probable_duplicates {
        assert_ne!(d.id, d.duplicate_of_id);
        assert!(parsed.records.iter().any(|r| r.id == d.duplicate_of_id));
    }
    assert!(!parsed.probable_duplicates.is_empty());
}

// -- The standard's example

#[test]
fn the_valid_example_csv_imports_its_one_record_with_every_field_mapped() {
    let parsed = parse(EXEMPLE_VALIDE);
    assert_eq!((parsed.received, parsed.records.len()), (1, 1), "{:?}", parsed.rejected);
    assert!(parsed.unmapped_values.is_empty(), "{:?}", parsed.unmapped_values);
    let r = &parsed.records[0];
    assert_eq!(r.id, "structure-1");
    assert_eq!(r.name, "Anonymal");
    assert_eq!(r.pivot.as_deref(), Some("43493312300029"));
    assert_eq!(
        r.services,
        vec![Need::MaitriseOutilsNumeriques, Need::InsertionProfessionnelle, Need::LoisirsCreations]
    );
    assert_eq!(
        r.modes,
        vec![StructureMode::Individual, StructureMode::Workshop, StructureMode::Autonomous, StructureMode::Remote]
    );
    assert_eq!(r.accessibility, vec![Accessibility::Deaf, Accessibility::Illiteracy]);
    assert_eq!(r.languages, vec![Language::french(), lang("en")]);
    assert!(!r.other_languages);
    assert_eq!(r.fees, vec!["Gratuit sous condition", "Payant"]);
    assert_eq!(
        r.labels,
        vec![
            "Aidants Connect",
            "Conseillers numériques",
            "La Croix Rouge",
            "Formé à « Mon Espace Santé »",
            "Arnia/MedNum BFC (Bourgogne-Franche-Comté)"
        ]
    );
    assert_eq!(r.opening_hours.as_deref(), Some("Mo-Fr 09:00-12:00,14:00-18:30; Sa 08:30-12:00"));
    assert_eq!(r.contact.phone.as_deref(), Some("+33180059880"));
    assert_eq!(r.contact.email.as_deref(), Some("contact@laquincaillerie.tl"));
    assert_eq!(r.contact.website.as_deref(), Some("https://www.laquincaillerie.tl/"));
    assert_eq!(r.address.street.as_deref(), Some("12 BIS RUE DE LECLERCQ, Le patio du bois de l'Aulne"));
    assert_eq!(r.address.postcode.as_deref(), Some("51100"));
    assert_eq!(r.address.commune.as_deref(), Some("Reims"));
    assert_eq!(r.address.commune_code.as_deref(), Some("51454"));
    assert_eq!(r.territory, "51");
    assert_eq!(r.location, Point { lat: 43.52609, lon: 5.41423 }, "coordinates in France are kept");
    assert_eq!(r.source.as_deref(), Some("Hubik"));
    assert_eq!(r.updated_on, NaiveDate::from_ymd_opt(2024, 4, 2));
    assert_eq!(parsed.defaulted_modes, 0);
    // The example's coordinates are in Provence, its commune in Champagne: said, not fatal.
    assert!(
        parsed.warnings.iter().any(|w| w.field == "latitude" && w.message.contains("Reims")),
        "{:?}",
        parsed.warnings
    );
}

// -- v0 vocabulary, `;` separators, `conditions_access`

#[test]
fn a_v0_file_with_semicolons_maps_its_labels_to_v1() {
    let parsed = parse(V0_SEMICOLONS);
    assert_eq!(parsed.records.len(), 3, "{:?}", parsed.rejected);
    let r = record(&parsed, "v0-1");
    assert_eq!(
        r.services,
        vec![Need::AideDemarchesAdministratives, Need::MaitriseOutilsNumeriques, Need::AcquisitionMaterielSolidaire]
    );
    assert_eq!(r.modes, vec![StructureMode::Workshop, StructureMode::Autonomous]);
    assert_eq!(
        r.fees,
        vec!["Gratuit", "Accepte le Pass numérique"],
        "conditions_access is read, long labels shortened"
    );
    assert_eq!(r.accessibility, vec![Accessibility::Deaf, Accessibility::Mental]);
    assert!(r.other_languages);
    assert_eq!(r.labels, vec!["APTIC", "Point numérique CAF"]);
    assert_eq!(r.location, Point { lat: 45.6958, lon: -0.3287 }, "decimal commas are read");
    assert_eq!(r.contact.phone.as_deref(), Some("+33545361950"));
    assert_eq!(r.contact.email.as_deref(), Some("mediatheque@ville-cognac.fr"));
    assert_eq!(r.contact.website.as_deref(), Some("https://www.ville-cognac.fr/"));
    assert_eq!(r.updated_on, NaiveDate::from_ymd_opt(2022, 3, 15));
    assert_eq!(r.territory, "16");
}

#[test]
fn v0_values_separated_by_comma_and_space_are_split_when_that_maps_them() {
    let parsed = parse(V0_SEMICOLONS);
    let r = record(&parsed, "v0-2");
    assert_eq!(
        r.services,
        vec![Need::AideDemarchesAdministratives, Need::MaitriseOutilsNumeriques, Need::ComprehensionMondeNumerique]
    );
    assert_eq!(r.fees, vec!["Payant", "Adhésion"]);
    assert_eq!(r.modes, vec![StructureMode::Individual]);
    assert_eq!(r.accessibility, vec![Accessibility::Mental, Accessibility::Illiteracy]);
    assert_eq!(parsed.unmapped_values["publics_accueillis"], BTreeMap::from([("Martiens".to_string(), 1)]));
    // No coordinates: placed at Ruffec's centroid.
    let ruffec = geo::communes().by_code("16292").unwrap();
    assert_eq!(r.address.commune_code.as_deref(), Some("16292"));
    assert_eq!(r.location, Point { lat: ruffec.location.lat, lon: ruffec.location.lon });
    assert_eq!(parsed.located_by_commune, 1);
}

#[test]
fn field_names_are_matched_without_case_and_json_arrays_and_numbers_are_read() {
    let parsed = parse(V0_SEMICOLONS);
    let r = record(&parsed, "v0-3");
    assert_eq!(r.name, "Tiers-lieu de Barbezieux");
    assert_eq!(r.services, vec![Need::InsertionProfessionnelle, Need::AccesInternetMateriel]);
    assert_eq!(parsed.unmapped_values["services"], BTreeMap::from([("Cuisine du monde".to_string(), 1)]));
    assert_eq!(r.address.postcode.as_deref(), Some("16300"));
    assert_eq!(r.contact.phone.as_deref(), Some("+33545000000"));
    assert_eq!(r.fees, vec!["Gratuit sous condition"]);
    assert_eq!(r.labels, vec!["France Services", "Label maison"]);
    assert_eq!(parsed.defaulted_modes, 1, "v0-3 has no modes: individual by default");
    assert_eq!(r.modes, vec![StructureMode::Individual]);
}

// -- CSV with `;` and no coordinates

#[test]
fn a_semicolon_csv_without_coordinates_places_records_at_their_commune() {
    let parsed = parse(SEMICOLON_CSV);
    assert_eq!(parsed.received, 4, "the blank line is not a record");
    assert_eq!(parsed.records.len(), 3, "{:?}", parsed.rejected);
    let mansle = record(&parsed, "csv-1");
    assert_eq!(mansle.services, vec![Need::AideDemarchesAdministratives, Need::InsertionProfessionnelle]);
    assert_eq!(mansle.address.commune_code.as_deref(), Some("16206"));
    let centroid = geo::communes().by_code("16206").unwrap().location;
    assert_eq!(mansle.location, Point { lat: centroid.lat, lon: centroid.lon });
    assert_eq!(mansle.contact.phone.as_deref(), Some("+33545207208"));
    assert_eq!(mansle.opening_hours.as_deref(), Some("Mo-Fr 10:00-12:00,14:00-17:30"));
    assert_eq!(mansle.fees, vec!["Gratuit"]);

    let chasseneuil = record(&parsed, "csv-2");
    assert_eq!(chasseneuil.address.commune_code.as_deref(), Some("16085"));
    assert_eq!(chasseneuil.territory, "16");
    assert_eq!(chasseneuil.opening_hours, None);

    let confolens = record(&parsed, "csv-3");
    assert_eq!(confolens.location, Point { lat: 45.9964, lon: 0.6717 });
    assert_eq!(confolens.modes, vec![StructureMode::Autonomous, StructureMode::Remote]);

    assert_eq!(parsed.located_by_commune, 2);
    assert_eq!(parsed.defaulted_modes, 1);
}

#[test]
fn invalid_opening_hours_are_a_warning_not_a_rejection() {
    let parsed = parse(SEMICOLON_CSV);
    let warning = parsed.warnings.iter().find(|w| w.field == "horaires").unwrap();
    assert_eq!(warning.id.as_deref(), Some("csv-2"));
    assert_eq!(warning.index, 1);
    assert!(warning.message.contains("Lundi 9h-12h"), "{}", warning.message);
}

#[test]
fn opening_hours_with_harmless_slips_are_repaired_with_a_warning() {
    let mut warnings = Vec::new();
    assert_eq!(opening_hours("horaires", "Mo-Fr 09:00-12:00;", &mut warnings).as_deref(), Some("Mo-Fr 09:00-12:00"));
    assert_eq!(opening_hours("horaires", "Mo–Fr 9h30–12h00", &mut warnings).as_deref(), Some("Mo-Fr 9:30-12:00"));
    assert_eq!(opening_hours("horaires", "Mo-Fr: 09:00-12:00", &mut warnings).as_deref(), Some("Mo-Fr 09:00-12:00"));
    assert_eq!(warnings.len(), 3);
    assert_eq!(opening_hours("horaires", "Lundi 9h-12h", &mut warnings), None);
    assert_eq!(opening_hours("horaires", " Mo 09:00-12:00 ", &mut warnings).as_deref(), Some("Mo 09:00-12:00"));
    assert_eq!(warnings.len(), 4, "valid values are kept without a warning");
}

#[test]
fn a_record_whose_commune_does_not_resolve_and_has_no_coordinates_is_rejected_with_the_reason() {
    let parsed = parse(SEMICOLON_CSV);
    let r = rejection(&parsed, 3);
    assert_eq!(r.id.as_deref(), Some("csv-4"));
    assert_eq!(r.errors, vec!["no usable location: no coordinates and commune 'Nulle-Part' (99999) does not resolve"]);
}

// -- A mixed file

#[test]
fn a_mixed_file_imports_the_valid_records_and_lists_the_others_by_index_with_every_reason() {
    let parsed = parse(MIXED);
    assert_eq!(parsed.received, 8);
    let imported: Vec<usize> = parsed.records.iter().map(|r| r.index).collect();
    assert_eq!(imported, vec![0, 6, 7]);
    let rejected: Vec<usize> = parsed.rejected.iter().map(|r| r.index).collect();
    assert_eq!(rejected, vec![1, 2, 3, 4, 5]);

    // Other records give ids: this one lacks it, it is not derived.
    assert_eq!(rejection(&parsed, 1).errors, vec!["missing id"]);
    assert_eq!(rejection(&parsed, 1).id, None);
    assert_eq!(
        rejection(&parsed, 2).errors,
        vec!["missing name (nom)", "no service could be mapped: 'Cuisine', 'Jardinage'"]
    );
    assert!(rejection(&parsed, 3).errors[0].starts_with("not a record"));
    assert_eq!(rejection(&parsed, 4).errors, vec!["duplicate id, superseded by record 6"]);
    assert_eq!(rejection(&parsed, 4).id.as_deref(), Some("dup"));
    assert!(rejection(&parsed, 5).errors[0].starts_with("no usable location: no valid coordinates"));
    assert_eq!(record(&parsed, "dup").name, "Nouvelle version");
    assert_eq!(
        parsed.unmapped_values["services"],
        BTreeMap::from([("Cuisine".to_string(), 1), ("Jardinage".to_string(), 1)])
    );
}

#[test]
fn the_same_place_under_two_ids_is_a_probable_duplicate_and_both_are_imported() {
    let parsed = parse(MIXED);
    assert_eq!(parsed.probable_duplicates.len(), 1, "{:?}", parsed.probable_duplicates);
    let d = &parsed.probable_duplicates[0];
    assert_eq!((d.index, d.id.as_str(), d.duplicate_of_id.as_str()), (7, "ok-7", "ok-0"));
    assert!(d.reason.contains("same name"), "{}", d.reason);
}

#[test]
fn the_report_serialises_with_the_api_field_names() {
    let parsed = parse(MIXED);
    let json = serde_json::to_value(&parsed).unwrap();
    assert_eq!(json["received"], 8);
    assert_eq!(json["rejected"][0]["index"], 1);
    assert!(json["rejected"][0]["id"].is_null());
    assert_eq!(json["rejected"][0]["errors"][0], "missing id");
    assert_eq!(json["unmapped_values"]["services"]["Cuisine"], 1);
    assert_eq!(json["records"][0]["services"][0], "aide_demarches_administratives");
}

// -- Files and formats

#[test]
fn the_format_is_sniffed_from_the_first_character() {
    assert_eq!(detect_format(b"  \n[{}]"), Format::Json);
    assert_eq!(detect_format(b"\xef\xbb\xbf{\"data\": []}"), Format::Json);
    assert_eq!(detect_format(b"id,nom\n"), Format::Csv);
    assert_eq!(detect_format(b""), Format::Csv);
    assert_eq!(detect_format(EXEMPLE_VALIDE), Format::Csv);
    assert_eq!(detect_format(CHARENTE), Format::Json);
}

#[test]
fn records_under_a_data_key_are_read() {
    let body = br#"{"data": [{"id": "a", "nom": "Lieu", "services": "aide_demarches_administratives", "code_insee": "16015"}]}"#;
    let parsed = parse(body);
    assert_eq!(parsed.records.len(), 1);
    assert_eq!(parsed.records[0].services, vec![Need::AideDemarchesAdministratives]);
}

#[test]
fn a_file_that_cannot_be_read_at_all_is_an_error() {
    let communes = geo::communes();
    assert_eq!(parse_file(b"", Format::Json, communes), Err(FileError::Empty));
    assert_eq!(parse_file(b" \n ", Format::Csv, communes), Err(FileError::Empty));
    assert!(matches!(parse_file(b"{\"id\": 1}", Format::Json, communes), Err(FileError::NotJsonArray(_))));
    assert!(matches!(parse_file(b"[{\"id\": 1}", Format::Json, communes), Err(FileError::NotJsonArray(_))));
    assert!(matches!(parse_file(b"\x00\x01\x02 binary", Format::Csv, communes), Err(FileError::Csv(_))));
    assert_eq!(parse_file(b"[]", Format::Json, communes).unwrap().received, 0);
}

#[test]
fn a_windows_1252_csv_with_a_comma_header_is_read() {
    let body = b"id,nom,services,code_postal,commune\r\nw-1,Mairie d'Angoul\xeame,Aide aux d\xe9marches administratives,16000,Angoul\xeame\r\n";
    let parsed = parse(body);
    assert_eq!(parsed.records.len(), 1, "{:?}", parsed.rejected);
    assert_eq!(parsed.records[0].name, "Mairie d'Angoulême");
    assert_eq!(parsed.records[0].address.commune_code.as_deref(), Some("16015"));
}

#[test]
fn coordinates_given_in_one_field_are_read() {
    let body = r#"[{"id": "a", "nom": "Lieu", "services": "Aide aux démarches administratives", "code_postal": "16000", "geo_point_2d": "45,6512, 0,1551"},
                   {"id": "b", "nom": "Lieu", "services": "Aide aux démarches administratives", "code_postal": "16000", "coordonnees": [45.6512, 0.1551]}]"#;
    let parsed = parse(body.as_bytes());
    for r in &parsed.records {
        assert_eq!(r.location, Point { lat: 45.6512, lon: 0.1551 }, "{}", r.id);
    }
    assert_eq!(parsed.located_by_commune, 0);
}

#[test]
fn ids_with_characters_urls_cannot_carry_are_rewritten_with_a_warning() {
    let body = r#"[{"id": "lieu n°1", "nom": "Lieu", "services": "Aide aux démarches administratives", "code_insee": "16015"}]"#;
    let parsed = parse(body.as_bytes());
    assert_eq!(parsed.records[0].id, "lieu-n-1");
    assert!(parsed.warnings.iter().any(|w| w.field == "id"));
}

// -- No input makes it panic

const FIELD_NAMES: &[&str] = &[
    "id",
    "nom",
    "services",
    "latitude",
    "longitude",
    "code_postal",
    "code_insee",
    "commune",
    "adresse",
    "complement_adresse",
    "horaires",
    "telephone",
    "courriels",
    "site_web",
    "modalites_accompagnement",
    "prise_en_charge_specifique",
    "publics_accueillis",
    "frais_a_charge",
    "conditions_access",
    "labels_nationaux",
    "date_maj",
    "pivot",
    "source",
];

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![prop::sample::select(FIELD_NAMES).prop_map(str::to_string), "[A-Za-z_ é]{0,12}"]
}

fn field_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,40}",
        "[0-9 ,.|;:-]{0,16}",
        prop::sample::select(vec![
            "Aide aux démarches administratives",
            "Prendre en main un ordinateur, Cuisine",
            "45,65",
            "0.17",
            "16000",
            "16015",
            "2A004",
            "97110",
            "Angoulême",
            "Mo-Fr 09:00-12:00",
            "05 45 20 72 08",
            "En autonomie|À distance",
            "Gratuit : Je peux",
        ])
        .prop_map(str::to_string),
    ]
}

fn records() -> impl Strategy<Value = Vec<BTreeMap<String, String>>> {
    prop::collection::vec(prop::collection::btree_map(field_name(), field_value(), 0..10), 0..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        for format in [Format::Json, Format::Csv] {
            if let Ok(parsed) = parse_file(&bytes, format, geo::communes()) {
                prop_assert_eq!(parsed.received, parsed.records.len() + parsed.rejected.len());
            }
        }
    }

    #[test]
    fn arbitrary_json_records_never_panic_and_each_is_imported_or_rejected(records in records()) {
        let body = serde_json::to_vec(&records).unwrap();
        let parsed = parse_file(&body, Format::Json, geo::communes()).unwrap();
        prop_assert_eq!(parsed.received, records.len());
        prop_assert_eq!(parsed.received, parsed.records.len() + parsed.rejected.len());
        for r in &parsed.records {
            prop_assert!(!r.services.is_empty() && !r.modes.is_empty() && !r.territory.is_empty());
        }
    }

    #[test]
    fn arbitrary_csv_records_never_panic(records in records(), semicolon in any::<bool>()) {
        let delimiter = if semicolon { b';' } else { b',' };
        let mut writer = csv::WriterBuilder::new().delimiter(delimiter).from_writer(Vec::new());
        writer.write_record(FIELD_NAMES).unwrap();
        for r in &records {
            writer.write_record(FIELD_NAMES.iter().map(|f| r.get(*f).map(String::as_str).unwrap_or_default())).unwrap();
        }
        let body = writer.into_inner().unwrap();
        let parsed = parse_file(&body, Format::Csv, geo::communes()).unwrap();
        prop_assert_eq!(parsed.received, parsed.records.len() + parsed.rejected.len());
        prop_assert!(parsed.received <= records.len());
    }
}

// -- Real regional files (records modeled on them)

fn one(json: &str) -> ParsedFile {
    parse(json.as_bytes())
}

fn imported(parsed: &ParsedFile) -> &ImportedRecord {
    assert_eq!(parsed.records.len(), 1, "rejected: {:?}", parsed.rejected);
    &parsed.records[0]
}

#[test]
fn services_joined_with_a_spaced_slash_are_each_mapped() {
    // Gironde 2021.
    let parsed = one(r#"[{"id": "g-1", "nom": "ADAV33", "code_postal": "33400", "commune": "Talence",
             "services": "Accès à Internet en autonomie / Etre accompagné dans ses démarches administratives / Etre initié aux outils numériques / Pratiquer des activités récréatives numériques"}]"#);
    assert_eq!(
        imported(&parsed).services,
        sorted(vec![
            Need::AideDemarchesAdministratives,
            Need::MaitriseOutilsNumeriques,
            Need::AccesInternetMateriel,
            Need::LoisirsCreations
        ])
    );
    assert!(parsed.unmapped_values.is_empty(), "{:?}", parsed.unmapped_values);
}

#[test]
fn parts_of_a_partly_mapped_value_that_map_nothing_are_reported() {
    // Région Sud 2022: the whole value maps loosely to internet access; `ateliers
    // numériques` maps nothing and must not vanish.
    let parsed = one(
        r#"[{"id": "rs-1", "nom": "Lumen", "code_postal": "04000", "commune": "Digne-les-Bains", "services": "Accès internet, ateliers numériques"},
            {"id": "rs-2", "nom": "Lumen 2", "code_postal": "04000", "commune": "Digne-les-Bains", "services": "Accès internet, ateliers numériques"}]"#,
    );
    assert_eq!(record(&parsed, "rs-1").services, vec![Need::AccesInternetMateriel]);
    assert_eq!(parsed.unmapped_values["services"], BTreeMap::from([("ateliers numériques".to_string(), 2)]));
}

#[test]
fn v0_labels_with_commas_or_slashes_are_not_split() {
    let parsed = one(
        r#"[{"id": "v0", "nom": "Lieu", "code_insee": "16015", "services": "Prendre en main un ordinateur",
             "conditions_acces": "Gratuit sous condition : selon critères (situation familiale, convention avec la CAF)|Payant : L'accès au lieu et/ou à ses services est payant",
             "publics_accueillis": "Familles/enfants;Adultes"}]"#,
    );
    let r = imported(&parsed);
    assert_eq!(r.fees, vec!["Gratuit sous condition", "Payant"]);
    assert!(parsed.unmapped_values.is_empty(), "{:?}", parsed.unmapped_values);
    // Commas inside parentheses never separate values.
    let parsed = one(
        r#"[{"id": "p", "nom": "Lieu", "code_insee": "16015", "services": "Accès internet (wifi, ordinateurs en libre service)"}]"#,
    );
    assert_eq!(imported(&parsed).services, vec![Need::AccesInternetMateriel]);
    assert!(parsed.unmapped_values.is_empty(), "{:?}", parsed.unmapped_values);
}

#[test]
fn recreational_and_entrepreneur_labels_map_to_their_services() {
    let service = |label: &str| vocab::service(label).map(|(need, _)| need);
    assert_eq!(service("Pratiquer des activités récréatives numériques"), Some(Need::LoisirsCreations));
    assert_eq!(service("Atelier récréatif"), Some(Need::LoisirsCreations));
    assert_eq!(service("Ateliers numériques à destination des entrepreneurs"), Some(Need::InsertionProfessionnelle));
}

/// Gironde 2021: no id, `Lieu`, `Adresse postale` holding the postcode, `Coord. X/Y`.
const GIRONDE: &str = r#"[
    {"Dernière MAJ": "26/11/2019", "Lieu": "Amicale Laïque La Glacière maison de quartier", "Commune": "Mérignac",
     "Adresse postale": "56, rue Armand Gayral - 33700 MERIGNAC", "Téléphone": "05 56 96 62 65",
     "services": "Etre initié aux outils numériques"},
    {"Dernière MAJ": "07/12/2021", "Lieu": "Abracodabra", "Commune": "Bordeaux", "Adresse postale": "8 rue de la Boétie - 33000 Bordeaux",
     "Coord. X": 44.839574881764, "Coord. Y": -0.58023800736287, "services": "Pratiquer des activités récréatives numériques"}
]"#;

#[test]
fn a_record_without_an_id_gets_one_derived_from_its_name_and_address() {
    let parsed = one(GIRONDE);
    assert_eq!(parsed.records.len(), 2, "{:?}", parsed.rejected);
    let id = &parsed.records[0].id;
    assert!(id.starts_with("sans-id-") && id.len() == "sans-id-".len() + 16, "{id}");
    assert!(crate::domain::structure::valid_structure_id(id));
    assert_ne!(parsed.records[0].id, parsed.records[1].id);
    assert!(
        parsed.warnings.iter().any(|w| w.field == "id" && w.id.as_ref() == Some(id) && w.message.contains("derived"))
    );
    // The same file read again gives the same ids: re-importing it updates, not duplicates.
    let again = one(GIRONDE);
    assert_eq!(
        again.records.iter().map(|r| &r.id).collect::<Vec<_>>(),
        parsed.records.iter().map(|r| &r.id).collect::<Vec<_>>()
    );
    // Another address is another place; white space and case do not matter.
    let moved = one(&GIRONDE.replace("56, rue Armand Gayral", "58, rue Armand Gayral"));
    assert_ne!(moved.records[0].id, parsed.records[0].id);
    let recased = one(&GIRONDE.replace("Amicale Laïque La Glacière", "AMICALE  LAÏQUE LA GLACIÈRE"));
    assert_eq!(recased.records[0].id, parsed.records[0].id);
}

#[test]
fn a_record_with_neither_id_nor_name_is_still_rejected() {
    let parsed = one(r#"[{"services": "Aide aux démarches administratives", "code_insee": "16015"}]"#);
    assert_eq!(parsed.rejected[0].errors, vec!["missing id", "missing name (nom)"]);
}

#[test]
fn common_spellings_of_the_id_field_are_read() {
    for field in ["ID", "gid", "identifiant", "Identifiant"] {
        let parsed = one(&format!(
            r#"[{{"{field}": "LMN266", "nom": "Lieu", "services": "Aide aux démarches administratives", "code_insee": "16015"}}]"#
        ));
        assert_eq!(imported(&parsed).id, "LMN266", "{field}");
    }
}

#[test]
fn regional_field_names_are_read_and_the_postcode_is_found_in_the_address() {
    let parsed = one(GIRONDE);
    let merignac = &parsed.records[0];
    assert_eq!(merignac.name, "Amicale Laïque La Glacière maison de quartier");
    assert_eq!(merignac.address.street.as_deref(), Some("56, rue Armand Gayral - 33700 MERIGNAC"));
    assert_eq!(merignac.address.postcode.as_deref(), Some("33700"));
    assert_eq!(merignac.address.commune_code.as_deref(), Some("33281"), "not Mérignac (16) nor (17)");
    assert_eq!(merignac.updated_on, NaiveDate::from_ymd_opt(2019, 11, 26));
    let bordeaux = &parsed.records[1];
    assert_eq!(bordeaux.location, Point { lat: 44.839574881764, lon: -0.58023800736287 }, "Coord. X is the latitude");
    assert_eq!(parsed.located_by_commune, 1);

    let parsed =
        one(r#"[{"id": "rs", "nom": "France Services", "contact_telephone": "04 92 83 77 19", "adresse_numero": "12",
             "adresse_rue": "avenue demontzey", "adresse_code_postal": "4000", "adresse_commune": "DIGNE-LES-BAINS",
             "services": "Aide aux démarches administratives"}]"#);
    let r = imported(&parsed);
    assert_eq!(r.contact.phone.as_deref(), Some("+33492837719"));
    assert_eq!(r.address.street.as_deref(), Some("12 avenue demontzey"));
    assert_eq!(r.address.commune_code.as_deref(), Some("04070"));
}

#[test]
fn a_postcode_in_an_address_is_not_a_post_office_box() {
    assert_eq!(postcode_in("56, rue Armand Gayral - 33700 MERIGNAC").as_deref(), Some("33700"));
    assert_eq!(postcode_in("9 Avenue du Général de Gaulle 33500 Libourne").as_deref(), Some("33500"));
    assert_eq!(postcode_in("1 rue X, BP 32615"), None);
    assert_eq!(postcode_in("Rue Robert Schuman"), None);
    assert_eq!(postcode_in("123456 route"), None);
}

#[test]
fn four_digit_postcodes_and_insee_codes_get_their_leading_zero_back() {
    // Région Sud 2022 (CSV): `4120` is Castellane's 04120; `1001` an INSEE code of the Ain.
    let body = "nom;adresse_code_postal;adresse_code_insee;adresse_commune;services;id\n\
                France Services de Castellane;4120;;CASTELLANE;Aide aux démarches administratives;rs-1\n\
                Mairie;;1001;;Aide aux démarches administratives;rs-2\n";
    let parsed = parse(body.as_bytes());
    assert_eq!(record(&parsed, "rs-1").address.commune_code.as_deref(), Some("04039"));
    assert_eq!(record(&parsed, "rs-1").address.postcode.as_deref(), Some("04120"));
    assert_eq!(record(&parsed, "rs-1").territory, "04");
    assert_eq!(record(&parsed, "rs-2").address.commune_code.as_deref(), Some("01001"));
    let parsed = one(
        r#"[{"ID": "m", "Nom": "Lieu", "CP": 4120, "Commune": "Castellane", "services": "Aide aux démarches administratives"}]"#,
    );
    assert_eq!(imported(&parsed).address.commune_code.as_deref(), Some("04039"));
}

#[test]
fn coordinates_far_from_their_commune_are_kept_with_a_warning() {
    // Martinique 2023: Sainte-Marie (97230) with coordinates in Savoie. Which is wrong
    // cannot be told (the standard's own example has a Reims address and coordinates in
    // Provence): the coordinates stay, the commune gives the territory, the report says so.
    let parsed =
        one(r#"[{"id": "mq", "nom": "commune de SAINTE MARIE", "code_postal": "97230", "commune": "SAINTE-MARIE",
             "latitude": 45.927153, "longitude": 5.961982, "services": "Aide aux démarches administratives"}]"#);
    let r = imported(&parsed);
    assert_eq!(r.location, Point { lat: 45.927153, lon: 5.961982 });
    assert_eq!((r.territory.as_str(), r.address.commune_code.as_deref()), ("972", Some("97228")));
    assert_eq!(parsed.located_by_commune, 0);
    let warning = parsed.warnings.iter().find(|w| w.field == "latitude").unwrap();
    assert!(warning.message.contains("kept as given"), "{}", warning.message);
}

#[test]
fn coordinates_far_from_a_doubtful_commune_are_kept() {
    // INSEE code of Angoulême, postcode of Cognac, coordinates in Marseille: no telling.
    let parsed = one(r#"[{"id": "x", "nom": "Lieu", "code_insee": "16015", "code_postal": "16100",
             "latitude": 43.2965, "longitude": 5.3698, "services": "Aide aux démarches administratives"}]"#);
    let r = imported(&parsed);
    assert_eq!(r.location, Point { lat: 43.2965, lon: 5.3698 });
    assert_eq!(parsed.located_by_commune, 0);
    assert!(parsed.warnings.iter().any(|w| w.field == "latitude" && w.message.contains("kept as given")));
}

#[test]
fn an_insee_code_that_disagrees_with_the_postcode_and_the_coordinates_gives_way() {
    // Coordinates in Cognac, its postcode, and the INSEE code of a commune 500 km away.
    let parsed =
        one(r#"[{"id": "x", "nom": "Lieu", "code_insee": "51454", "code_postal": "16100", "commune": "Cognac",
             "latitude": 45.6958, "longitude": -0.3287, "services": "Aide aux démarches administratives"}]"#);
    let r = imported(&parsed);
    assert_eq!(r.address.commune_code.as_deref(), Some("16102"));
    assert_eq!(r.location, Point { lat: 45.6958, lon: -0.3287 });
    assert_eq!(r.territory, "16");
    assert!(parsed.warnings.iter().any(|w| w.field == "code_insee" && w.message.contains("Cognac")));

    // Nouvelle-Calédonie 2024: Mont-Dore (988) given the INSEE code of Mont-Dore (63).
    let parsed = one(
        r#"[{"id": "4", "nom": "Espace connecté de Boulari", "code_postal": "98800", "code_insee": "63236", "commune": "Mont-Dore",
             "latitude": -22.23039, "longitude": 166.52465, "services": "Aide aux démarches administratives"}]"#,
    );
    let r = imported(&parsed);
    assert_eq!((r.territory.as_str(), r.address.commune_code.as_deref()), ("988", None));
    assert_eq!(r.location, Point { lat: -22.23039, lon: 166.52465 });
    assert!(parsed.warnings.iter().any(|w| w.field == "code_insee" && w.message.contains("ignored")));
}

#[test]
fn services_given_as_one_yes_no_column_each_are_read() {
    // Maine-et-Loire 2021 (OpenDataSoft).
    let parsed = one(
        r#"[{"Geo Point": "47.4450004143266,-0.5638437461930164", "ID": "LMN051", "Nom": "Centre Jean Vilar", "CP": 49000,
             "Commune": "Angers", "JT_Accueil": "oui", "Accès internet": "Oui", "Démarches générales": "Oui",
             "Initiation aux outils numériques": "Oui", "Parentalité": "Non"}]"#,
    );
    let r = imported(&parsed);
    assert_eq!(
        r.services,
        sorted(vec![Need::AideDemarchesAdministratives, Need::MaitriseOutilsNumeriques, Need::AccesInternetMateriel])
    );
    assert!(parsed.warnings.iter().any(|w| w.field == "services"));
    // A services field, when there is one, is what counts.
    let parsed =
        one(r#"[{"ID": "a", "Nom": "Lieu", "code_insee": "49007", "services": "Cuisine", "Accès internet": "Oui"}]"#);
    assert_eq!(parsed.rejected.len(), 1);
}
