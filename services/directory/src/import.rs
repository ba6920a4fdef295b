//! Persists a parsed import (a Mednum file, or a data·inclusion pair of files): each
//! usable record is upserted (keyed on its `id`) and published; the report says what
//! happened to every record.

use platform::ApiError;
use sqlx::PgPool;

use crate::domain::data_inclusion;
use crate::domain::mednum::{self, FileError, Format, ImportedRecord, ParsedFile, Rejection};
use crate::domain::structure::StructureDraft;
use crate::store::{self, Upserted};

pub const MAX_IMPORT_BYTES: usize = 50 * 1024 * 1024;
const BATCH: usize = 500;

pub use contracts::directory::ImportReport;

fn draft(r: ImportedRecord, source: Option<&str>) -> StructureDraft {
    StructureDraft {
        id: r.id,
        name: r.name,
        services: r.services,
        modes: r.modes,
        languages: r.languages,
        other_languages: r.other_languages,
        accessibility: r.accessibility,
        address: r.address,
        location: r.location,
        territory: r.territory,
        opening_hours: r.opening_hours,
        weekly_capacity: None,
        accepting: None,
        contact: r.contact,
        source: Some(source.map(str::to_string).or(r.source).unwrap_or_else(|| "mednum".to_string())),
        fees: r.fees,
        labels: r.labels,
        pivot: r.pivot,
    }
}

/// Where an import's places come from, and what to call that source.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// Restricts a coordinator to their départements: other records are rejected.
    pub territories: Option<&'a [String]>,
    /// Stored as every imported place's `source` (`--source`); by default the record's
    /// own, else `mednum` or `data-inclusion/{source}`.
    pub source: Option<&'a str>,
}

/// Imports a file: a Mednum file (JSON or CSV), or a JSON object
/// `{"structures": [...], "services": [...]}` of data·inclusion. `territories` restricts
/// a coordinator to their départements: other records are rejected, not imported.
pub async fn import(
    pool: &PgPool,
    bytes: &[u8],
    format: Option<Format>,
    territories: Option<&[String]>,
    default_capacity: u32,
) -> Result<ImportReport, ApiError> {
    import_with(pool, bytes, format, Options { territories, source: None }, default_capacity).await
}

/// [`import`], with a source name.
pub async fn import_with(
    pool: &PgPool,
    bytes: &[u8],
    format: Option<Format>,
    options: Options<'_>,
    default_capacity: u32,
) -> Result<ImportReport, ApiError> {
    let bytes = bytes.to_vec();
    let source = options.source.map(str::to_string);
    let parsed = parse(move || {
        if format != Some(Format::Csv)
            && let Some(entries) = data_inclusion::read_pair(&bytes)
        {
            return Ok(data_inclusion::parse(entries, source.as_deref(), geo::communes()));
        }
        let format = format.unwrap_or_else(|| mednum::detect_format(&bytes));
        mednum::parse_file(&bytes, format, geo::communes())
    })
    .await?;
    persist(pool, parsed, options, default_capacity).await
}

/// Imports a data·inclusion structures file and services file (each JSON or CSV, in
/// either order).
pub async fn import_data_inclusion(
    pool: &PgPool,
    first: &[u8],
    second: &[u8],
    options: Options<'_>,
    default_capacity: u32,
) -> Result<ImportReport, ApiError> {
    let (first, second) = (first.to_vec(), second.to_vec());
    let source = options.source.map(str::to_string);
    let parsed = parse(move || {
        let entries = data_inclusion::read_files(&first, &second)?;
        Ok(data_inclusion::parse(entries, source.as_deref(), geo::communes()))
    })
    .await?;
    persist(pool, parsed, options, default_capacity).await
}

async fn parse(work: impl FnOnce() -> Result<ParsedFile, FileError> + Send + 'static) -> Result<ParsedFile, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::invalid_field("body", e.to_string()))
}

async fn persist(
    pool: &PgPool,
    parsed: ParsedFile,
    options: Options<'_>,
    default_capacity: u32,
) -> Result<ImportReport, ApiError> {
    let territories = options.territories;

    let mut report = ImportReport {
        received: parsed.received,
        created: 0,
        updated: 0,
        unchanged: 0,
        rejected: parsed.rejected,
        unmapped_values: parsed.unmapped_values,
        warnings: parsed.warnings,
        defaulted_modes: parsed.defaulted_modes,
        located_by_commune: parsed.located_by_commune,
        probable_duplicates: parsed.probable_duplicates,
        skipped: parsed.skipped,
        eligibility_zones: parsed.eligibility_zones,
    };
    let mut accepted = Vec::with_capacity(parsed.records.len());
    for record in parsed.records {
        match territories {
            Some(t) if !t.contains(&record.territory) => report.rejected.push(Rejection {
                index: record.index,
                id: Some(record.id.clone()),
                errors: vec![format!("outside your territories (this place is in {})", record.territory)],
            }),
            _ => accepted.push(record),
        }
    }
    report.rejected.sort_by_key(|r| r.index);

    let mut records = accepted.into_iter().peekable();
    while records.peek().is_some() {
        let mut tx = pool.begin().await?;
        for record in records.by_ref().take(BATCH) {
            let (outcome, changed) =
                store::upsert_structure(&mut tx, &draft(record, options.source), default_capacity).await?;
            match outcome {
                Upserted::Created => report.created += 1,
                Upserted::Updated => report.updated += 1,
                Upserted::Unchanged => report.unchanged += 1,
            }
            if let Some(s) = changed {
                let event = contracts::events::StructureUpserted { structure: s.clone() };
                let envelope = contracts::Envelope::new(s.id.clone(), s.updated_at.timestamp_micros(), &event);
                bus::enqueue(&mut tx, crate::SCHEMA, &envelope).await?;
            }
        }
        tx.commit().await?;
    }
    tracing::info!(
        received = report.received,
        created = report.created,
        updated = report.updated,
        unchanged = report.unchanged,
        rejected = report.rejected.len(),
        "directory import"
    );
    Ok(report)
}
