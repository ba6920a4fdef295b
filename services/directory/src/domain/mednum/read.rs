//! From bytes to raw records: text decoding, JSON or CSV, field names folded to one
//! spelling. Nothing here knows what the fields mean.

use serde_json::Value;

use super::FileError;

/// A field value as the file gives it.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::domain) enum RawValue {
    /// A string, or a number or boolean written as text.
    Text(String),
    /// A JSON array: values already split.
    List(Vec<String>),
}

/// One record: field names folded (`Code Postal` → `code_postal`), in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(in crate::domain) struct RawRecord {
    fields: Vec<(String, RawValue)>,
}

/// A record, or why the entry is not one (a JSON array element that is not an object).
pub(in crate::domain) type Entry = Result<RawRecord, String>;

impl RawValue {
    /// Control characters (a NUL, a spreadsheet's vertical tab) mean nothing in a
    /// directory, and PostgreSQL cannot store a NUL: they are dropped, as the API refuses them.
    fn without_control_characters(self) -> Self {
        let clean = |s: String| {
            if contracts::validate::has_control_characters(&s) {
                s.chars().filter(|c| !c.is_control() || matches!(c, '\n' | '\t' | '\r')).collect()
            } else {
                s
            }
        };
        match self {
            RawValue::Text(s) => RawValue::Text(clean(s)),
            RawValue::List(items) => RawValue::List(items.into_iter().map(clean).collect()),
        }
    }
}

impl RawRecord {
    fn push(&mut self, key: &str, value: RawValue) {
        let key = fold_key(key);
        if !key.is_empty() {
            self.fields.push((key, value.without_control_characters()));
        }
    }

    fn has(&self, key: &str) -> bool {
        self.fields.iter().any(|(k, _)| k == key)
    }

    /// The first non-blank value among these field names (in the order given).
    pub(in crate::domain) fn value(&self, keys: &[&str]) -> Option<(&str, &RawValue)> {
        keys.iter()
            .find_map(|key| self.fields.iter().find(|(k, v)| k == key && !is_blank(v)).map(|(k, v)| (k.as_str(), v)))
    }

    /// Every non-blank value among these field names, with the name it came under.
    pub(in crate::domain) fn values(&self, keys: &[&str]) -> Vec<(&str, &RawValue)> {
        keys.iter()
            .filter_map(|key| self.fields.iter().find(|(k, v)| k == key && !is_blank(v)))
            .map(|(k, v)| (k.as_str(), v))
            .collect()
    }

    /// A single-valued field: trimmed text, or the first item of a list.
    pub(in crate::domain) fn text(&self, keys: &[&str]) -> Option<String> {
        match self.value(keys)?.1 {
            RawValue::Text(s) => Some(s.trim().to_string()),
            RawValue::List(items) => items.iter().map(|s| s.trim()).find(|s| !s.is_empty()).map(str::to_string),
        }
    }

    /// Every field, name folded, in file order.
    pub(in crate::domain) fn fields(&self) -> impl Iterator<Item = (&str, &RawValue)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub(in crate::domain) fn is_empty(&self) -> bool {
        self.fields.iter().all(|(_, v)| is_blank(v))
    }
}

fn is_blank(v: &RawValue) -> bool {
    match v {
        RawValue::Text(s) => s.trim().is_empty(),
        RawValue::List(items) => items.iter().all(|s| s.trim().is_empty()),
    }
}

/// `Code Postal`, `CODE_POSTAL`, `code-postal` and `\u{feff}code_postal` are all `code_postal`.
pub(in crate::domain) fn fold_key(key: &str) -> String {
    geo::normalize_name(key).replace(' ', "_")
}

/// Decodes text: UTF-8 (with or without BOM), UTF-16 with BOM, else Windows-1252, which is
/// what spreadsheet exports in French use when they are not UTF-8.
pub(in crate::domain) fn decode(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return String::from_utf8_lossy(rest).into_owned();
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return utf16(rest, u16::from_le_bytes);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return utf16(rest, u16::from_be_bytes);
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes.iter().map(|&b| windows_1252(b)).collect(),
    }
}

fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> String {
    let units: Vec<u16> = bytes.chunks_exact(2).map(|c| unit([c[0], c[1]])).collect();
    String::from_utf16_lossy(&units)
}

fn windows_1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž', '\u{8f}', '\u{90}', '‘',
        '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}', 'ž', 'Ÿ',
    ];
    match b {
        0x80..=0x9F => HIGH[usize::from(b - 0x80)],
        _ => char::from(b),
    }
}

// -- JSON

/// Keys under which an object may hold the array of records, most likely first.
const ARRAY_KEYS: &[&str] = &["data", "lieux", "features", "records", "items", "results", "structures", "places"];

pub(in crate::domain) fn json_entries(text: &str) -> Result<Vec<Entry>, FileError> {
    let root = match serde_json::from_str::<Value>(text) {
        Ok(v) => v,
        Err(err) => json_lines(text).ok_or_else(|| FileError::NotJsonArray(err.to_string()))?,
    };
    let items = match root {
        Value::Array(items) => items,
        Value::Object(mut map) => {
            let key = ARRAY_KEYS
                .iter()
                .find_map(|k| map.keys().find(|m| fold_key(m) == *k && map[*m].is_array()).cloned())
                .or_else(|| {
                    map.iter()
                        .find(|(_, v)| v.as_array().is_some_and(|a| a.iter().any(Value::is_object)))
                        .map(|(k, _)| k.clone())
                });
            match key.and_then(|k| map.remove(&k)) {
                Some(Value::Array(items)) => items,
                _ => {
                    return Err(FileError::NotJsonArray(
                        "a JSON object with no array of records (expected an array, or an object with one under \"data\" or \"lieux\")".into(),
                    ));
                }
            }
        }
        other => return Err(FileError::NotJsonArray(format!("the file holds a single JSON {}", kind(&other)))),
    };
    Ok(items.into_iter().map(json_entry).collect())
}

/// Newline-delimited JSON objects (one record a line).
fn json_lines(text: &str) -> Option<Value> {
    let values: Vec<Value> =
        serde_json::Deserializer::from_str(text).into_iter::<Value>().collect::<Result<_, _>>().ok()?;
    (values.len() > 1 && values.iter().all(Value::is_object)).then_some(Value::Array(values))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

pub(in crate::domain) fn json_entry(item: Value) -> Entry {
    let Value::Object(map) = item else {
        return Err(format!("not a record: a JSON {} where an object was expected", kind(&item)));
    };
    let mut record = RawRecord::default();
    let mut nested = Vec::new();
    let mut point = None;
    for (key, value) in map {
        match value {
            Value::Object(inner) => nested.push((key, inner)),
            other => {
                if let Some(v) = json_value(other) {
                    record.push(&key, v);
                }
            }
        }
    }
    // One level of nesting is flattened without overriding top-level fields: a GeoJSON
    // feature's `properties`, an `adresse` object…; a GeoJSON point gives the coordinates.
    for (key, inner) in nested {
        if fold_key(&key) == "geometry" {
            point = geojson_point(&inner);
            continue;
        }
        for (k, v) in inner {
            if record.has(&fold_key(&k)) {
                continue;
            }
            if let Some(v) = json_value(v) {
                record.push(&k, v);
            }
        }
    }
    if let Some((lon, lat)) = point
        && !record.has("latitude")
        && !record.has("longitude")
    {
        record.push("latitude", RawValue::Text(lat));
        record.push("longitude", RawValue::Text(lon));
    }
    Ok(record)
}

fn geojson_point(geometry: &serde_json::Map<String, Value>) -> Option<(String, String)> {
    let coordinates = geometry.get("coordinates")?.as_array()?;
    match coordinates.as_slice() {
        [Value::Number(lon), Value::Number(lat), ..] => Some((lon.to_string(), lat.to_string())),
        _ => None,
    }
}

fn json_value(v: Value) -> Option<RawValue> {
    match v {
        Value::Null | Value::Object(_) => None,
        Value::Array(items) => {
            let items: Vec<String> = items.into_iter().filter_map(scalar).collect();
            Some(RawValue::List(items))
        }
        other => scalar(other).map(RawValue::Text),
    }
}

fn scalar(v: Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

// -- CSV

/// Field names that identify a Mednum header.
const KNOWN_COLUMNS: &[&str] = &[
    "id",
    "nom",
    "services",
    "adresse",
    "commune",
    "code_postal",
    "code_insee",
    "latitude",
    "longitude",
    "pivot",
    "horaires",
    "date_maj",
];

pub(in crate::domain) fn csv_entries(text: &str) -> Result<Vec<Entry>, FileError> {
    let mut text = text.trim_start_matches(['\u{feff}', '\r', '\n']);
    let mut delimiter = None;
    // Spreadsheets may write a `sep=;` line before the header.
    if let Some(rest) = text.strip_prefix("sep=").or_else(|| text.strip_prefix("SEP=")) {
        let mut chars = rest.chars();
        delimiter = chars.next().filter(char::is_ascii).map(|c| c as u8);
        text = rest.split_once('\n').map_or("", |(_, after)| after);
    }
    if text.trim().is_empty() {
        return Err(FileError::Empty);
    }
    let header_line = text.lines().next().unwrap_or_default();
    let delimiter = delimiter.unwrap_or_else(|| sniff_delimiter(header_line));
    let mut reader =
        csv::ReaderBuilder::new().delimiter(delimiter).has_headers(false).flexible(true).from_reader(text.as_bytes());
    let mut rows = reader.records();
    let header = match rows.next() {
        Some(Ok(h)) => h.iter().map(fold_key).collect::<Vec<_>>(),
        Some(Err(err)) => return Err(FileError::Csv(err.to_string())),
        None => return Err(FileError::Empty),
    };
    if !header.iter().any(|h| KNOWN_COLUMNS.contains(&h.as_str())) {
        let shown: String = header_line.chars().take(120).collect();
        return Err(FileError::Csv(format!(
            "the first line is not a header of Mednum fields (id, nom, services, adresse…): {shown:?}"
        )));
    }
    let mut entries = Vec::new();
    let mut errors = 0;
    for row in rows {
        match row {
            Ok(row) => {
                let mut record = RawRecord::default();
                for (key, cell) in header.iter().zip(row.iter()) {
                    if !key.is_empty() {
                        record.fields.push((key.clone(), RawValue::Text(cell.to_string())));
                    }
                }
                // Blank lines (`;;;;`) are not records.
                if !record.is_empty() {
                    entries.push(Ok(record));
                }
            }
            Err(err) => {
                errors += 1;
                entries.push(Err(format!("unreadable CSV row: {err}")));
                if errors > 1_000 {
                    break;
                }
            }
        }
    }
    Ok(entries)
}

/// The delimiter used most on the header line, outside quotes: `,`, `;`, tab or `|`.
fn sniff_delimiter(header: &str) -> u8 {
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0), (b'|', 0)];
    let mut quoted = false;
    for b in header.bytes() {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted && let Some(c) = counts.iter_mut().find(|(d, _)| *d == b) {
            c.1 += 1;
        }
    }
    counts.iter().fold((b',', 0), |best, &(d, n)| if n > best.1 { (d, n) } else { best }).0
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn field_names_are_folded_to_one_spelling() {
        for key in ["Code Postal", "CODE_POSTAL", "code-postal", "\u{feff}code_postal", " code_postal "] {
            assert_eq!(fold_key(key), "code_postal", "{key:?}");
        }
        assert_eq!(fold_key("Téléphone"), "telephone");
    }

    #[test]
    fn windows_1252_text_is_decoded() {
        assert_eq!(decode(b"Aide aux d\xe9marches \x80 \x92"), "Aide aux démarches € ’");
        assert_eq!(decode("\u{feff}é".as_bytes()), "é");
        assert_eq!(decode(&[0xFF, 0xFE, b'a', 0, 0xE9, 0]), "aé");
    }

    #[test]
    fn the_csv_delimiter_is_sniffed_from_the_header_line() {
        assert_eq!(sniff_delimiter("id;nom;services"), b';');
        assert_eq!(sniff_delimiter("\"id\",\"nom\",\"a;b\""), b',');
        assert_eq!(sniff_delimiter("id\tnom\tservices"), b'\t');
    }

    #[test]
    fn an_object_holding_the_records_under_data_is_read() {
        let entries = json_entries(r#"{"meta": {"n": 1}, "data": [{"id": "a"}, 3]}"#).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].as_ref().unwrap().text(&["id"]).as_deref(), Some("a"));
        assert!(entries[1].is_err());
    }

    #[test]
    fn geojson_features_are_flattened_with_their_point() {
        let entries = json_entries(
            r#"{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Point","coordinates":[0.15,45.6]},"properties":{"id":"x","nom":"Lieu"}}]}"#,
        )
        .unwrap();
        let record = entries[0].as_ref().unwrap();
        assert_eq!(record.text(&["nom"]).as_deref(), Some("Lieu"));
        assert_eq!(record.text(&["latitude"]).as_deref(), Some("45.6"));
        assert_eq!(record.text(&["longitude"]).as_deref(), Some("0.15"));
    }

    #[test]
    fn control_characters_are_dropped_from_values() {
        let entries = json_entries(r#"[{"nom": "Lieu\u0000 A", "services": ["a\u000b", "b"]}]"#).unwrap();
        let record = entries[0].as_ref().unwrap();
        assert_eq!(record.text(&["nom"]).as_deref(), Some("Lieu A"));
        assert_eq!(record.value(&["services"]).unwrap().1, &RawValue::List(vec!["a".into(), "b".into()]));
    }

    #[test]
    fn newline_delimited_json_is_read() {
        let entries = json_entries("{\"id\":\"a\"}\n{\"id\":\"b\"}\n").unwrap();
        assert_eq!(entries.len(), 2);
    }

    #[test]
    fn a_single_value_is_not_a_file_of_records() {
        assert!(matches!(json_entries("\"hello\""), Err(FileError::NotJsonArray(_))));
        assert!(matches!(json_entries("{\"id\": \"a\"}"), Err(FileError::NotJsonArray(_))));
        assert!(matches!(json_entries("[1, 2"), Err(FileError::NotJsonArray(_))));
    }

    #[test]
    fn a_sep_line_sets_the_delimiter_and_blank_rows_are_skipped() {
        let entries = csv_entries("sep=;\nid;nom\na;Lieu A\n;\n\nb;Lieu B\n").unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].as_ref().unwrap().text(&["nom"]).as_deref(), Some("Lieu B"));
    }

    #[test]
    fn text_that_has_no_mednum_header_is_not_csv() {
        assert!(matches!(csv_entries("hello world\nfoo"), Err(FileError::Csv(_))));
        assert!(matches!(csv_entries("   \n"), Err(FileError::Empty)));
    }
}
