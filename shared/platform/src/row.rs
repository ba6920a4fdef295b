//! Rows become typed values, or an error that names the table, the column and the row.
//! Never a default: a stored value that does not parse is corruption (a bad migration,
//! a hand edit, a bug in an older version), and guessing would hide it. An empty list
//! of needs, for instance, would "cover" every structure.
//!
//! The error travels as `sqlx::Error::Decode`, so store functions keep returning
//! `sqlx::Result`: a consumer dead-letters the message that met it (see `bus`), and an
//! HTTP handler answers a 500 with no detail while the log names the row.

use std::fmt::Display;
use std::str::FromStr;

use serde::de::DeserializeOwned;

/// A stored value that is not what its column promises.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt row in {table} (id {id}): column {column}: {problem}")]
pub struct RowError {
    pub table: &'static str,
    pub column: &'static str,
    pub id: String,
    /// What is wrong. It may quote the stored value, so it is only ever built for
    /// columns that hold codes and vocabularies, never personal data.
    pub problem: String,
}

impl From<RowError> for sqlx::Error {
    fn from(err: RowError) -> Self {
        sqlx::Error::Decode(Box::new(err))
    }
}

/// The row error inside a `sqlx::Error`, if that is what it carries.
pub fn row_error(err: &sqlx::Error) -> Option<&RowError> {
    match err {
        sqlx::Error::Decode(source) => source.downcast_ref::<RowError>(),
        _ => None,
    }
}

/// Whether a database error says the stored data cannot be read as its type: a
/// [`RowError`], or sqlx's own column decoding failure. Retrying cannot fix either.
pub fn is_corrupt(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. })
}

/// Reads the columns of one row of `table`, naming the row in every error.
pub struct Columns {
    table: &'static str,
    id: String,
}

impl Columns {
    pub fn of(table: &'static str, id: impl Display) -> Self {
        Self { table, id: id.to_string() }
    }

    pub fn error(&self, column: &'static str, problem: impl Display) -> RowError {
        RowError { table: self.table, column, id: self.id.clone(), problem: problem.to_string() }
    }

    /// One value of a vocabulary, an id or a code.
    pub fn parse<T>(&self, column: &'static str, value: &str) -> Result<T, RowError>
    where
        T: FromStr,
        T::Err: Display,
    {
        value.parse().map_err(|e| self.error(column, e))
    }

    /// A nullable value: `None` stays `None`, anything else must parse.
    pub fn parse_opt<T>(&self, column: &'static str, value: Option<&str>) -> Result<Option<T>, RowError>
    where
        T: FromStr,
        T::Err: Display,
    {
        value.map(|v| self.parse(column, v)).transpose()
    }

    /// A list of values, sorted and de-duplicated.
    pub fn set<T>(&self, column: &'static str, values: &[String]) -> Result<Vec<T>, RowError>
    where
        T: FromStr + Ord,
        T::Err: Display,
    {
        let mut parsed = values.iter().map(|v| self.parse(column, v)).collect::<Result<Vec<T>, _>>()?;
        parsed.sort();
        parsed.dedup();
        Ok(parsed)
    }

    /// A list that the domain requires to hold at least one value.
    pub fn non_empty_set<T>(&self, column: &'static str, values: &[String]) -> Result<Vec<T>, RowError>
    where
        T: FromStr + Ord,
        T::Err: Display,
    {
        let set = self.set(column, values)?;
        if set.is_empty() {
            return Err(self.error(column, "is empty, but must hold at least one value"));
        }
        Ok(set)
    }

    /// A `json`/`jsonb` column holding `T`.
    pub fn json<T: DeserializeOwned>(&self, column: &'static str, value: serde_json::Value) -> Result<T, RowError> {
        serde_json::from_value(value).map_err(|e| self.error(column, e))
    }

    /// A column that must not be null in this state of the row.
    pub fn required<T>(&self, column: &'static str, value: Option<T>) -> Result<T, RowError> {
        value.ok_or_else(|| self.error(column, "is null"))
    }

    /// An integer column that must fit a narrower type (a capacity, an attempt count).
    pub fn int<T, S>(&self, column: &'static str, value: S) -> Result<T, RowError>
    where
        T: TryFrom<S>,
        S: Display + Copy,
    {
        T::try_from(value).map_err(|_| self.error(column, format!("{value} is out of range")))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_error_names_table_column_and_row() {
        let c = Columns::of("matcher.profiles", "0193-abc");
        let err = c.parse::<u8>("urgency", "urgentissime").unwrap_err();
        assert_eq!(err.table, "matcher.profiles");
        assert_eq!(err.column, "urgency");
        assert_eq!(err.id, "0193-abc");
        let sqlx_err: sqlx::Error = err.clone().into();
        assert!(is_corrupt(&sqlx_err));
        assert_eq!(row_error(&sqlx_err), Some(&err));
        assert!(sqlx_err.to_string().contains("matcher.profiles"), "{sqlx_err}");
    }

    #[test]
    fn sets_parse_every_value_or_fail() {
        let c = Columns::of("t", 1);
        let v: Vec<u8> = c.set("n", &["3".into(), "1".into(), "3".into()]).unwrap();
        assert_eq!(v, vec![1, 3]);
        assert!(c.set::<u8>("n", &["3".into(), "x".into()]).is_err());
        assert!(c.non_empty_set::<u8>("n", &[]).is_err());
        assert!(c.json::<Vec<u8>>("j", serde_json::json!({"a": 1})).is_err());
        assert!(c.required::<u8>("r", None).is_err());
        assert!(c.int::<u32, i32>("i", -1).is_err());
    }

    /// The published language's ids, codes and vocabularies as PostgreSQL columns
    /// (contracts' `sqlx` feature, which platform enables): each is written as it is on
    /// the wire and read back through its own parser, so a stored value that is not one
    /// fails the read, naming what was expected, and never becomes a default.
    #[allow(clippy::expect_used)]
    mod columns {
        use contracts::audit::Principal;
        use contracts::{Actor, AuditAction, Need, ReferralId, ReferralStatus, StructureId, Territory};
        use sqlx::PgPool;

        /// The error of reading `sql` (one text or text[] value) as `T`.
        async fn decode_error<T>(pool: &PgPool, sql: &'static str) -> String
        where
            T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin + std::fmt::Debug,
        {
            let err = sqlx::query_scalar::<_, T>(sql).fetch_one(pool).await.expect_err(sql);
            assert!(crate::row::is_corrupt(&err), "{sql}: {err:?} should read as corruption");
            err.to_string()
        }

        #[sqlx::test(migrations = false)]
        async fn values_read_back_as_they_were_written(pool: PgPool) {
            let id = ReferralId::new();
            let structure: StructureId = "lieu:16 é".parse().unwrap();
            let needs = vec![Need::AideDemarchesAdministratives, Need::AccesInternetMateriel];
            let actor = Actor::Mediator(structure.clone(), Principal::Account(uuid::Uuid::now_v7()));
            let row: (ReferralId, StructureId, Vec<Need>, ReferralStatus, Actor, AuditAction, String) =
                sqlx::query_as("SELECT $1, $2, $3, $4, $5, $6, $5::text")
                    .bind(id)
                    .bind(&structure)
                    .bind(&needs)
                    .bind(ReferralStatus::InProgress)
                    .bind(&actor)
                    .bind(AuditAction::KeysRotated)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            assert_eq!(row.0, id);
            assert_eq!(row.1, structure);
            assert_eq!(row.2, needs);
            assert_eq!(row.3, ReferralStatus::InProgress);
            assert_eq!(row.4, actor);
            assert_eq!(row.5, AuditAction::KeysRotated);
            // Stored as the string of the wire, nothing else.
            assert_eq!(row.6, actor.to_string());
            let status: String =
                sqlx::query_scalar("SELECT $1::text").bind(ReferralStatus::InProgress).fetch_one(&pool).await.unwrap();
            assert_eq!(status, "in_progress");
        }

        #[sqlx::test(migrations = false)]
        async fn a_stored_value_that_is_not_one_fails_the_read_naming_what_was_expected(pool: PgPool) {
            let err = decode_error::<Territory>(&pool, "SELECT '1600'::text").await;
            assert!(err.contains("`1600` is not a département code"), "{err}");
            let err = decode_error::<StructureId>(&pool, "SELECT ' lieu'::text").await;
            assert!(err.contains("is not a structure id"), "{err}");
            let err = decode_error::<ReferralStatus>(&pool, "SELECT 'lost'::text").await;
            assert!(err.contains("unknown value `lost`"), "{err}");
            // One bad element fails the whole list: an empty or shorter list of needs would
            // match other structures.
            let err =
                decode_error::<Vec<Need>>(&pool, "SELECT ARRAY['aide_demarches_administratives', 'teleportation']")
                    .await;
            assert!(err.contains("unknown value `teleportation`"), "{err}");
            let err = decode_error::<Actor>(&pool, "SELECT 't'::text").await;
            assert!(err.contains("`t` is not an actor"), "{err}");
            let err = decode_error::<AuditAction>(&pool, "SELECT 'x'::text").await;
            assert!(err.contains("unknown value `x`"), "{err}");
        }

        #[sqlx::test(migrations = false)]
        async fn an_id_is_a_uuid_column_and_nothing_else(pool: PgPool) {
            // A uuid column read as a code, or a text column as an id, is refused by type.
            let err =
                sqlx::query_scalar::<_, ReferralId>("SELECT 'not-a-uuid'::text").fetch_one(&pool).await.unwrap_err();
            assert!(matches!(err, sqlx::Error::ColumnDecode { .. }), "{err:?}");
            let err =
                sqlx::query_scalar::<_, Territory>("SELECT gen_random_uuid()").fetch_one(&pool).await.unwrap_err();
            assert!(matches!(err, sqlx::Error::ColumnDecode { .. }), "{err:?}");
            let ids: Vec<ReferralId> = sqlx::query_scalar("SELECT unnest($1::uuid[])")
                .bind(vec![ReferralId::new(), ReferralId::new()])
                .fetch_all(&pool)
                .await
                .unwrap();
            assert_eq!(ids.len(), 2);
        }
    }
}
