//! Importer for the national Mednum format (placeholder API while it is being written).
use std::collections::BTreeMap;

use contracts::events::{Address, Point, StructureContact};
use contracts::{Accessibility, Language, Need, StructureMode};

#[derive(Debug, Clone, Copy)]
pub enum Format {
    Json,
    Csv,
}

pub fn detect_format(bytes: &[u8]) -> Format {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') | Some(b'{') => Format::Json,
        _ => Format::Csv,
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Rejection {
    pub index: usize,
    pub id: Option<String>,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Warning {
    pub index: usize,
    pub id: Option<String>,
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ProbableDuplicate {
    pub index: usize,
    pub id: String,
    pub duplicate_of_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportedRecord {
    pub index: usize,
    pub id: String,
    pub name: String,
    pub services: Vec<Need>,
    pub modes: Vec<StructureMode>,
    pub languages: Vec<Language>,
    pub other_languages: bool,
    pub accessibility: Vec<Accessibility>,
    pub address: Address,
    pub location: Point,
    pub territory: String,
    pub opening_hours: Option<String>,
    pub contact: StructureContact,
    pub fees: Vec<String>,
    pub labels: Vec<String>,
    pub source: Option<String>,
    pub pivot: Option<String>,
    pub updated_on: Option<chrono::NaiveDate>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ParsedFile {
    pub received: usize,
    pub records: Vec<ImportedRecord>,
    pub rejected: Vec<Rejection>,
    pub unmapped_values: BTreeMap<String, BTreeMap<String, usize>>,
    pub warnings: Vec<Warning>,
    pub defaulted_modes: usize,
    pub located_by_commune: usize,
    pub probable_duplicates: Vec<ProbableDuplicate>,
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("not a JSON array: {0}")]
    NotJsonArray(String),
}

pub fn parse_file(bytes: &[u8], _format: Format, _communes: &geo::Communes) -> Result<ParsedFile, FileError> {
    let records: Vec<serde_json::Value> =
        serde_json::from_slice(bytes).map_err(|e| FileError::NotJsonArray(e.to_string()))?;
    Ok(ParsedFile {
        received: records.len(),
        records: Vec::new(),
        rejected: Vec::new(),
        unmapped_values: BTreeMap::new(),
        warnings: Vec::new(),
        defaulted_modes: 0,
        located_by_commune: 0,
        probable_duplicates: Vec::new(),
    })
}
