//! Persists a parsed Mednum file: each usable record is upserted (keyed on its `id`) and
//! published; the report says what happened to every record.

use platform::ApiError;
use sqlx::PgPool;

use crate::domain::mednum::{self, Format, ImportedRecord, ParsedFile, Rejection};
use crate::domain::structure::StructureDraft;
use crate::store::{self, Upserted};

pub const MAX_IMPORT_BYTES: usize = 50 * 1024 * 1024;
const BATCH: usize = 500;

pub use contracts::directory::ImportReport;

fn draft(r: ImportedRecord) -> StructureDraft {
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
        source: Some(r.source.unwrap_or_else(|| "mednum".to_string())),
        fees: r.fees,
        labels: r.labels,
        pivot: r.pivot,
    }
}

/// Imports a file. `territories` restricts a coordinator to their départements: other
/// records are rejected, not imported.
pub async fn import(
    pool: &PgPool,
    bytes: &[u8],
    format: Option<Format>,
    territories: Option<&[String]>,
    default_capacity: u32,
) -> Result<ImportReport, ApiError> {
    let bytes = bytes.to_vec();
    let parsed: ParsedFile = tokio::task::spawn_blocking(move || {
        let format = format.unwrap_or_else(|| mednum::detect_format(&bytes));
        mednum::parse_file(&bytes, format, geo::communes())
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::invalid_field("body", e.to_string()))?;

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
            let (outcome, changed) = store::upsert_structure(&mut tx, &draft(record), default_capacity).await?;
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
