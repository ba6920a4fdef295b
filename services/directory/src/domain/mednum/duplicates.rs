//! The same place under two ids: same name a few metres apart, or same address.

use std::collections::HashMap;

use geo::LatLon;

use super::vocab::fold;
use super::{ImportedRecord, ProbableDuplicate};

/// Two records of the same name closer than this are the same place.
const SAME_PLACE_KM: f64 = 0.05;
/// Records are bucketed by name and cells of this many degrees (over 50 m on a side in
/// France), so that only neighbouring cells are compared.
const CELL_DEGREES: f64 = 0.001;

fn cell(p: LatLon) -> (i64, i64) {
    ((p.lat / CELL_DEGREES).floor() as i64, (p.lon / CELL_DEGREES).floor() as i64)
}

/// Each record that looks like an earlier one, with the earlier one's id (one entry a record).
pub(in crate::domain) fn probable_duplicates(records: &[ImportedRecord]) -> Vec<ProbableDuplicate> {
    let mut by_name: HashMap<(String, i64, i64), Vec<usize>> = HashMap::new();
    let mut by_address: HashMap<String, usize> = HashMap::new();
    let mut found = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let here = LatLon { lat: record.location.lat, lon: record.location.lon };
        let name = fold(&record.name);
        let address = address_key(record);

        let (row, col) = cell(here);
        let neighbours = (-1..=1).flat_map(|dr| (-1..=1).map(move |dc| (row + dr, col + dc)));
        let same_name = neighbours
            .filter_map(|(r, c)| by_name.get(&(name.clone(), r, c)))
            .flatten()
            .filter_map(|&j| {
                let other = &records[j];
                let d = geo::distance_km(here, LatLon { lat: other.location.lat, lon: other.location.lon });
                (d <= SAME_PLACE_KM).then_some((j, d))
            })
            .min_by_key(|(j, _)| *j)
            .map(|(j, d)| (j, format!("same name, {:.0} m apart", d * 1000.0)));
        let duplicate = same_name.or_else(|| {
            address.as_ref().and_then(|a| by_address.get(a)).map(|&j| (j, "same address and postcode".to_string()))
        });
        if let Some((j, reason)) = duplicate {
            found.push(ProbableDuplicate {
                index: record.index,
                id: record.id.clone(),
                duplicate_of_id: records[j].id.clone(),
                reason,
            });
        }

        if !name.is_empty() {
            by_name.entry((name, row, col)).or_default().push(i);
        }
        if let Some(a) = address {
            by_address.entry(a).or_insert(i);
        }
    }
    found
}

/// Folded street and postcode, when the street has a number or a name worth comparing.
fn address_key(record: &ImportedRecord) -> Option<String> {
    let street = fold(record.address.street.as_deref()?);
    let postcode = record.address.postcode.as_deref()?.trim();
    (street.len() >= 5 && !postcode.is_empty()).then(|| format!("{street}|{postcode}"))
}
