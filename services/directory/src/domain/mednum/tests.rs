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
    assert_eq!(opening_hours("Mo-Fr 09:00-12:00;", &mut warnings).as_deref(), Some("Mo-Fr 09:00-12:00"));
    assert_eq!(opening_hours("Mo–Fr 9h30–12h00", &mut warnings).as_deref(), Some("Mo-Fr 9:30-12:00"));
    assert_eq!(opening_hours("Mo-Fr: 09:00-12:00", &mut warnings).as_deref(), Some("Mo-Fr 09:00-12:00"));
    assert_eq!(warnings.len(), 3);
    assert_eq!(opening_hours("Lundi 9h-12h", &mut warnings), None);
    assert_eq!(opening_hours(" Mo 09:00-12:00 ", &mut warnings).as_deref(), Some("Mo 09:00-12:00"));
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
