//! The open statistics (no sign-in): the reorientation flow per département and month,
//! computed from the facts by the funnel's rules, with statistical secrecy
//! ([`crate::secrecy`]) applied, kept in `insights.open_data` and recomputed when older
//! than [`FRESH_FOR`]. The files and the public page read that table: a few thousand
//! rows at national size, whatever the number of referrals.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use contracts::Outcome;
use contracts::insights::OpenDataRow;
use sqlx::{PgConnection, PgPool};

use crate::secrecy::{self, COUNTS, Figures};

/// The published table is recomputed when older than this (and when the month changes,
/// so that the month that has just ended is no longer provisional).
pub const FRESH_FOR: chrono::Duration = chrono::Duration::minutes(10);

/// `departement` of the national rows.
pub const NATIONAL: &str = "France";

/// One refresher at a time (`pg_advisory_xact_lock`).
const REFRESH_LOCK: i64 = 0x6f70_656e_6461_7461; // "opendata"

/// The first instant of the Paris month of `day`.
pub fn paris_month_start(day: NaiveDate) -> DateTime<Utc> {
    use chrono::TimeZone;
    let first = NaiveDate::from_ymd_opt(day.year(), day.month(), 1).unwrap_or(day);
    let midnight = first.and_hms_opt(0, 0, 0).unwrap_or_default();
    chrono_tz::Europe::Paris
        .from_local_datetime(&midnight)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| midnight.and_utc())
}

/// The first day of the Paris month `at` is in.
pub fn paris_month(at: DateTime<Utc>) -> NaiveDate {
    let d = contracts::week::paris_local(at).date();
    NaiveDate::from_ymd_opt(d.year(), d.month(), 1).unwrap_or(d)
}

/// One group of the facts: a département's month, or the nation's (`territory` `None`).
#[derive(Debug, Clone)]
pub struct Group {
    pub territory: Option<String>,
    pub month: NaiveDate,
    pub figures: Figures,
}

/// Days, one decimal, from the median in seconds as the funnel rounds it (whole seconds).
pub fn days(seconds: Option<f64>) -> Option<f64> {
    seconds.map(|s| (s.round() / 8_640.0).round() / 10.0)
}

/// The figures of every département and month, and of the nation, straight from the
/// facts. A referral counts in the Paris month it was submitted in, with every milestone
/// it has reached since, as in the funnel of that month; `en_attente` is as at the
/// month's end (from the waitlist's history), or now for the current month.
pub async fn from_facts(conn: &mut PgConnection, now: DateTime<Utc>) -> sqlx::Result<Vec<Group>> {
    let current = paris_month_start(paris_month(now));
    let rows = sqlx::query!(
        r#"
        WITH cohort AS (
            SELECT r.territory,
                   date_trunc('month', r.submitted_at AT TIME ZONE 'Europe/Paris')::date AS mois,
                   r.first_offered_at, r.accepted_at, r.submitted_at, r.outcome,
                   CASE WHEN r.offers > 1 THEN
                       (SELECT count(DISTINCT e.structure_id) FROM insights.events e
                        WHERE e.referral_id = r.referral_id AND e.kind = 'offered') > 1
                   ELSE false END AS reoriented,
                   CASE WHEN r.submitted_at >= $1 THEN r.status = 'waitlisted'
                        WHEN r.waitlisted_at IS NULL THEN false
                        ELSE COALESCE((
                            SELECT e.kind = 'waitlisted' FROM insights.events e
                            WHERE e.referral_id = r.referral_id
                              AND e.at < (date_trunc('month', r.submitted_at AT TIME ZONE 'Europe/Paris')
                                          + interval '1 month') AT TIME ZONE 'Europe/Paris'
                            ORDER BY e.at DESC,
                                     CASE e.kind WHEN 'declined' THEN 0 WHEN 'expired' THEN 0
                                                 WHEN 'waitlisted' THEN 1 ELSE 2 END DESC
                            LIMIT 1), false)
                   END AS waiting
            FROM insights.referrals r
            WHERE r.submitted_at IS NOT NULL AND r.submitted_at < $3
        )
        SELECT GROUPING(territory) = 1 AS "national!", territory, mois AS "mois!",
               count(*) AS "orientations!",
               count(first_offered_at) AS "proposees!",
               count(accepted_at) AS "acceptees!",
               count(*) FILTER (WHERE reoriented) AS "reorientees!",
               count(*) FILTER (WHERE waiting) AS "en_attente!",
               count(*) FILTER (WHERE outcome = $2) AS "accompagnements!",
               percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM accepted_at - submitted_at)) AS accept_p50
        FROM cohort
        GROUP BY GROUPING SETS ((mois, territory), (mois))
        "#,
        current,
        Outcome::Completed.slug(),
        paris_month_start(paris_month(now).checked_add_months(Months::new(1)).unwrap_or(paris_month(now)))
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter(|r| r.national || r.territory.is_some())
        .map(|r| Group {
            territory: if r.national { None } else { r.territory },
            month: r.mois,
            figures: Figures {
                counts: [r.orientations, r.proposees, r.acceptees, r.reorientees, r.en_attente, r.accompagnements],
                median_days: days(r.accept_p50),
            },
        })
        .collect())
}

/// A month's figures: the national row (when there were referrals), and each département's.
type MonthFigures = (Option<Figures>, Vec<(String, Figures)>);

/// The published table: every month from the first referral's to the current one (a
/// national row each, zeros included), the départements with referrals that month, with
/// statistical secrecy applied month by month.
pub fn table(groups: Vec<Group>, now: DateTime<Utc>) -> Vec<OpenDataRow> {
    let current = paris_month(now);
    let mut months: BTreeMap<NaiveDate, MonthFigures> = BTreeMap::new();
    for g in groups {
        let month = months.entry(g.month).or_default();
        match g.territory {
            None => month.0 = Some(g.figures),
            Some(t) => month.1.push((t, g.figures)),
        }
    }
    let first = months.keys().next().copied().unwrap_or(current).min(current);
    let mut out = Vec::new();
    let mut month = first;
    while month <= current {
        let (national, mut departements) = months.remove(&month).unwrap_or_default();
        departements.sort_by(|a, b| a.0.cmp(&b.0));
        let national = national.unwrap_or(Figures { counts: [0; 6], median_days: None });
        let figures: Vec<Figures> = departements.iter().map(|(_, f)| f.clone()).collect();
        let (nat, rows) = secrecy::publish(secrecy::Month { national: &national, departements: &figures });
        let label = month.format("%Y-%m").to_string();
        let provisoire = month == current;
        out.push(published(NATIONAL.to_string(), &label, provisoire, nat));
        for ((code, _), p) in departements.into_iter().zip(rows) {
            out.push(published(code, &label, provisoire, p));
        }
        let Some(next) = month.checked_add_months(Months::new(1)) else { break };
        month = next;
    }
    out
}

fn published(departement: String, mois: &str, provisoire: bool, p: secrecy::Published) -> OpenDataRow {
    let [orientations, proposees, acceptees, reorientees, en_attente, accompagnements_realises] = p.counts;
    OpenDataRow {
        departement,
        mois: mois.to_string(),
        orientations,
        proposees,
        acceptees,
        reorientees,
        en_attente,
        accompagnements_realises,
        delai_acceptation_mediane_jours: p.median_days,
        taux_reorientation: p.rate,
        provisoire,
        secret: p.secret.into_iter().map(str::to_string).collect(),
    }
}

/// Whether a table computed at `generated` may still be served at `now`: younger than
/// [`FRESH_FOR`] and of the same Paris month (so that a month that has just ended is no
/// longer provisional).
fn is_fresh(generated: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now - generated < FRESH_FOR && paris_month(generated) == paris_month(now)
}

/// When the published table was computed. A request never pays for the computation
/// (seconds at national size) once a table exists: it is served as it is, and
/// [`refresh_periodically`] recomputes it beside the requests. Only the very first
/// request, before any table exists, computes it (one computation for all waiting).
pub async fn ensure_published(pool: &PgPool) -> sqlx::Result<DateTime<Utc>> {
    match generation(pool).await? {
        Some(g) => Ok(g),
        None => refresh(pool, Utc::now()).await,
    }
}

/// Recomputes the published table when it is stale at `now`, and returns when the table
/// in place was computed. One refresher at a time across replicas: another one busy with
/// it leaves the table as it is; with no table yet, it waits for the first one.
pub async fn refresh(pool: &PgPool, now: DateTime<Utc>) -> sqlx::Result<DateTime<Utc>> {
    let generated = generation(pool).await?;
    if let Some(g) = generated
        && is_fresh(g, now)
    {
        return Ok(g);
    }
    let mut tx = pool.begin().await?;
    match generated {
        Some(g) => {
            let locked = sqlx::query_scalar!(r#"SELECT pg_try_advisory_xact_lock($1) AS "l!""#, REFRESH_LOCK)
                .fetch_one(&mut *tx)
                .await?;
            if !locked {
                return Ok(g);
            }
        }
        None => {
            sqlx::query!("SELECT pg_advisory_xact_lock($1)", REFRESH_LOCK).execute(&mut *tx).await?;
            let again = sqlx::query_scalar!("SELECT generated_at FROM insights.open_data_generation")
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(g) = again {
                return Ok(g);
            }
        }
    }
    let rows = table(from_facts(&mut tx, now).await?, now);
    store(&mut tx, &rows, now).await?;
    tx.commit().await?;
    Ok(now)
}

/// Keeps the published table fresh: looks every minute, recomputes when stale (the
/// computation reads every fact, so it runs here rather than in a request).
pub async fn refresh_periodically(pool: PgPool, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tick.tick() => {}
        }
        // Only once a table exists: the first one is computed by the first reader.
        match generation(&pool).await {
            Ok(Some(_)) => {
                let started = std::time::Instant::now();
                match refresh(&pool, Utc::now()).await {
                    Ok(_) => tracing::debug!(ms = started.elapsed().as_millis() as u64, "open statistics checked"),
                    Err(err) => tracing::warn!(error = %err, "open statistics not refreshed"),
                }
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "open statistics not refreshed"),
        }
    }
}

async fn generation(pool: &PgPool) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!("SELECT generated_at FROM insights.open_data_generation").fetch_optional(pool).await
}

/// Replaces the published table.
async fn store(tx: &mut PgConnection, rows: &[OpenDataRow], at: DateTime<Utc>) -> sqlx::Result<()> {
    let col = |f: fn(&OpenDataRow) -> Option<i64>| rows.iter().map(f).collect::<Vec<_>>();
    let months: Vec<NaiveDate> = rows
        .iter()
        .map(|r| NaiveDate::parse_from_str(&format!("{}-01", r.mois), "%Y-%m-%d").unwrap_or_default())
        .collect();
    sqlx::query!("DELETE FROM insights.open_data").execute(&mut *tx).await?;
    sqlx::query!(
        r#"INSERT INTO insights.open_data (mois, departement, orientations, proposees, acceptees, reorientees, en_attente,
               accompagnements_realises, delai_acceptation_mediane_jours, taux_reorientation, provisoire, secret)
           SELECT * FROM UNNEST($1::date[], $2::text[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::int8[],
                                $8::int8[], $9::float8[], $10::float8[], $11::bool[], $12::text[])"#,
        &months,
        &rows.iter().map(|r| r.departement.clone()).collect::<Vec<_>>(),
        &col(|r| r.orientations) as &[Option<i64>],
        &col(|r| r.proposees) as &[Option<i64>],
        &col(|r| r.acceptees) as &[Option<i64>],
        &col(|r| r.reorientees) as &[Option<i64>],
        &col(|r| r.en_attente) as &[Option<i64>],
        &col(|r| r.accompagnements_realises) as &[Option<i64>],
        &rows.iter().map(|r| r.delai_acceptation_mediane_jours).collect::<Vec<_>>() as &[Option<f64>],
        &rows.iter().map(|r| r.taux_reorientation).collect::<Vec<_>>() as &[Option<f64>],
        &rows.iter().map(|r| r.provisoire).collect::<Vec<_>>(),
        &rows.iter().map(|r| r.secret.join("|")).collect::<Vec<_>>(),
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO insights.open_data_generation (singleton, generated_at) VALUES (true, $1)
         ON CONFLICT (singleton) DO UPDATE SET generated_at = EXCLUDED.generated_at",
        at
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The published rows, of one département (or `France`) or all, oldest month first and
/// the national row first in each month.
pub async fn rows(pool: &PgPool, departement: Option<&str>) -> sqlx::Result<Vec<OpenDataRow>> {
    let rows = sqlx::query!(
        r#"SELECT mois, departement, orientations, proposees, acceptees, reorientees, en_attente,
                  accompagnements_realises, delai_acceptation_mediane_jours, taux_reorientation, provisoire, secret
           FROM insights.open_data WHERE $1::text IS NULL OR departement = $1
           ORDER BY mois, departement <> 'France', departement"#,
        departement
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| OpenDataRow {
            departement: r.departement,
            mois: r.mois.format("%Y-%m").to_string(),
            orientations: r.orientations,
            proposees: r.proposees,
            acceptees: r.acceptees,
            reorientees: r.reorientees,
            en_attente: r.en_attente,
            accompagnements_realises: r.accompagnements_realises,
            delai_acceptation_mediane_jours: r.delai_acceptation_mediane_jours,
            taux_reorientation: r.taux_reorientation,
            provisoire: r.provisoire,
            secret: r.secret.split('|').filter(|s| !s.is_empty()).map(str::to_string).collect(),
        })
        .collect())
}

/// The CSV header: the contract's columns, then `secret`.
pub const HEADER: [&str; 12] = [
    "departement",
    "mois",
    COUNTS[0],
    COUNTS[1],
    COUNTS[2],
    COUNTS[3],
    COUNTS[4],
    COUNTS[5],
    secrecy::MEDIAN,
    secrecy::RATE,
    "provisoire",
    "secret",
];

/// The CSV file: comma-separated, UTF-8, a header line; a hidden cell is empty, and
/// `secret` lists the hidden columns separated by `|`.
pub fn csv(rows: &[OpenDataRow]) -> Result<Vec<u8>, csv::Error> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(HEADER)?;
    let n = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    for r in rows {
        out.write_record([
            r.departement.clone(),
            r.mois.clone(),
            n(r.orientations),
            n(r.proposees),
            n(r.acceptees),
            n(r.reorientees),
            n(r.en_attente),
            n(r.accompagnements_realises),
            r.delai_acceptation_mediane_jours.map(|d| format!("{d:.1}")).unwrap_or_default(),
            r.taux_reorientation.map(|t| format!("{t:.2}")).unwrap_or_default(),
            r.provisoire.to_string(),
            r.secret.join("|"),
        ])?;
    }
    out.into_inner().map_err(|e| e.into_error().into())
}

/// The file's Frictionless Table Schema, in French, as schema.data.gouv.fr publishes them.
pub fn schema(path: &str) -> serde_json::Value {
    use serde_json::json;
    let count = |name: &str, title: &str, description: &str, example: u32| {
        json!({"name": name, "title": title, "description": format!("{description} Vide si le secret statistique s'applique (voir `secret`)."),
               "type": "integer", "example": example.to_string(), "constraints": {"required": false, "minimum": 0}})
    };
    json!({
        "$schema": "https://frictionlessdata.io/schemas/table-schema.json",
        "name": "aiguillage-orientations",
        "title": "Orientations vers la médiation numérique, par département et par mois",
        "description": "Le flux des orientations d'Aiguillage : les personnes orientées par un travailleur social vers un lieu de médiation numérique, par département et par mois (heure de Paris), avec une ligne nationale (`France`) par mois. Une orientation compte dans le mois où elle a été envoyée, avec toutes les étapes qu'elle a franchies depuis. Le mois en cours est provisoire. Secret statistique : aucun effectif de 1 à 4 n'est publié, ni une case qui permettrait de le retrouver par différence (avec la ligne nationale du mois) ; un taux ou une médiane calculés sur moins de 5 orientations ne sont pas publiés.",
        "countryCode": "FR",
        "path": path,
        "version": "1.0.0",
        "created": "2027-01-01",
        "lastModified": "2027-01-01",
        "homepage": "https://github.com/aiguillage",
        "licenses": [{"name": "etalab-2.0", "title": "Licence Ouverte / Open Licence version 2.0",
                      "path": "https://www.etalab.gouv.fr/licence-ouverte-open-licence/"}],
        "missingValues": [""],
        "primaryKey": ["departement", "mois"],
        "fields": [
            {"name": "departement", "title": "Département", "description": "Code officiel géographique du département (`16`, `2A`, `971`), ou `France` pour la ligne nationale du mois.",
             "type": "string", "example": "16", "constraints": {"required": true, "pattern": "^([0-9]{2}|2[AB]|97[0-9]|France)$"}},
            {"name": "mois", "title": "Mois", "description": "Mois d'envoi des orientations, heure de Paris (AAAA-MM).",
             "type": "yearmonth", "example": "2026-11", "constraints": {"required": true}},
            count("orientations", "Orientations", "Orientations envoyées dans le mois.", 120),
            count("proposees", "Proposées", "Orientations du mois proposées à au moins un lieu.", 110),
            count("acceptees", "Acceptées", "Orientations du mois acceptées par un lieu.", 90),
            count("reorientees", "Réorientées", "Orientations du mois proposées à plus d'un lieu (refus, délai dépassé ou réorientation par la coordination).", 25),
            count("en_attente", "En attente", "Orientations du mois en liste d'attente à la fin du mois (aujourd'hui pour le mois en cours).", 6),
            count("accompagnements_realises", "Accompagnements réalisés", "Orientations du mois clôturées avec un accompagnement réalisé.", 60),
            {"name": secrecy::MEDIAN, "title": "Délai médian d'acceptation (jours)", "description": "Médiane du délai entre l'envoi et l'acceptation, en jours avec une décimale, sur les orientations acceptées du mois. Vide si aucune n'est acceptée ou si le secret statistique s'applique (moins de 5 acceptées).",
             "type": "number", "example": "1.5", "constraints": {"required": false, "minimum": 0}},
            {"name": secrecy::RATE, "title": "Taux de réorientation", "description": "Réorientées ÷ proposées, entre 0 et 1, deux décimales. Vide si aucune n'est proposée ou si le secret statistique s'applique (moins de 5 proposées, ou l'un des deux effectifs caché).",
             "type": "number", "example": "0.23", "constraints": {"required": false, "minimum": 0, "maximum": 1}},
            {"name": "provisoire", "title": "Provisoire", "description": "`true` pour le mois en cours, dont les chiffres changent encore ; `false` pour un mois terminé.",
             "type": "boolean", "example": "false", "trueValues": ["true"], "falseValues": ["false"], "constraints": {"required": true}},
            {"name": "secret", "title": "Secret statistique", "description": "Les colonnes de la ligne cachées par le secret statistique, séparées par `|` ; vide si rien n'est caché.",
             "type": "string", "example": "orientations|proposees|taux_reorientation", "constraints": {"required": false}},
        ],
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn group(territory: Option<&str>, month: &str, counts: [i64; 6]) -> Group {
        Group {
            territory: territory.map(str::to_string),
            month: NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").unwrap(),
            figures: Figures { counts, median_days: Some(1.0) },
        }
    }

    #[test]
    fn every_month_to_the_current_one_has_a_national_row_and_only_the_current_one_is_provisional() {
        let now: DateTime<Utc> = "2026-12-10T12:00:00Z".parse().unwrap();
        let groups = vec![
            group(None, "2026-10", [200, 180, 150, 40, 12, 90]),
            group(Some("16"), "2026-10", [200, 180, 150, 40, 12, 90]),
        ];
        let rows = table(groups, now);
        let keys: Vec<_> = rows.iter().map(|r| (r.departement.as_str(), r.mois.as_str(), r.provisoire)).collect();
        assert_eq!(
            keys,
            vec![
                ("France", "2026-10", false),
                ("16", "2026-10", false),
                ("France", "2026-11", false),
                ("France", "2026-12", true)
            ]
        );
        assert_eq!(rows[2].orientations, Some(0), "a month without referrals is zeros, not missing");
    }

    #[test]
    fn the_paris_month_starts_at_paris_midnight() {
        let start = paris_month_start(NaiveDate::from_ymd_opt(2026, 11, 17).unwrap());
        assert_eq!(start.to_rfc3339(), "2026-10-31T23:00:00+00:00");
        assert_eq!(paris_month("2026-10-31T23:30:00Z".parse().unwrap()), NaiveDate::from_ymd_opt(2026, 11, 1).unwrap());
        assert_eq!(days(Some(129_600.4)), Some(1.5));
    }

    #[test]
    fn the_csv_has_the_contract_s_columns_and_empty_hidden_cells() {
        let now: DateTime<Utc> = "2026-10-10T12:00:00Z".parse().unwrap();
        let rows = table(
            vec![
                group(None, "2026-10", [203, 183, 152, 41, 12, 90]),
                group(Some("16"), "2026-10", [3, 3, 2, 1, 0, 0]),
                group(Some("17"), "2026-10", [200, 180, 150, 40, 12, 90]),
            ],
            now,
        );
        let text = String::from_utf8(csv(&rows).unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "departement,mois,orientations,proposees,acceptees,reorientees,en_attente,accompagnements_realises,delai_acceptation_mediane_jours,taux_reorientation,provisoire,secret"
        );
        assert_eq!(
            lines[2],
            "16,2026-10,,,,,0,0,,,true,orientations|proposees|acceptees|reorientees|delai_acceptation_mediane_jours|taux_reorientation"
        );
        let schema = schema("x");
        let fields: Vec<&str> =
            schema.get("fields").unwrap().as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
        assert_eq!(fields, HEADER);
    }
}
