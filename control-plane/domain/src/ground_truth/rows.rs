//! The `predictions` table: the prediction log's inserts, pruning by age, the lookups
//! feedback joins against and the joined rows metrics read. Every query is scoped by
//! organisation (and model where a caller names one).

use libsql::params;

use super::{Answer, PredictionRecord};
use crate::db::{self, DbError, Reader, Writer};

/// Records per statement: 10 parameters each, far under SQLite's 32,766.
const RECORDS_PER_INSERT: usize = 256;

/// Inserts `records` (a record already stored, e.g. written twice, is left as it is), 256
/// to a statement: one round trip each on a remote database, not one per record.
pub async fn insert(tx: &Writer, records: &[PredictionRecord]) -> Result<u64, DbError> {
    const ROW: &str = "(?,?,?,?,?,?,?,?,?,?)";
    let mut inserted = 0;
    for chunk in records.chunks(RECORDS_PER_INSERT) {
        // Anonymous placeholders: sqld looks numbered ones up by name, in a list as long
        // as the statement's parameters (see the usage events' insert).
        let mut sql = String::from(
            "INSERT OR IGNORE INTO predictions
                 (id, org_id, model_id, version, at_ms, kind, label, value, score, segment)
             VALUES ",
        );
        let mut values = Vec::with_capacity(chunk.len() * 10);
        for (n, r) in chunk.iter().enumerate() {
            if n > 0 {
                sql.push(',');
            }
            sql.push_str(ROW);
            let (kind, label, value) = match &r.answer {
                Answer::Label(label) => ("label", Some(label.clone()), None),
                Answer::Value(value) => ("value", None, Some(*value)),
            };
            let row = params![
                r.id.as_str(),
                r.org_id.as_str(),
                r.model_id.as_str(),
                r.version,
                r.at_ms,
                kind,
                label,
                value,
                r.score,
                r.segment.clone()
            ];
            for value in row {
                values.push(value?);
            }
        }
        inserted += tx.execute(&sql, values).await?;
    }
    Ok(inserted)
}

/// Deletes predictions (with their feedback) made before `before_ms`; returns how many.
pub async fn prune(tx: &Writer, before_ms: i64) -> Result<u64, DbError> {
    Ok(tx
        .execute(
            "DELETE FROM predictions WHERE at_ms < ?1",
            params![before_ms],
        )
        .await?)
}

/// What feedback needs of a stored prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub kind: Kind,
}

/// Whether a prediction is a label or a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Label,
    Value,
}

/// The prediction `id` of model `model_id` in organisation `org_id`; `None` for an
/// unknown id, another model's or another organisation's.
pub async fn find(
    conn: &Reader,
    org_id: &str,
    model_id: &str,
    id: &str,
) -> Result<Option<Stored>, DbError> {
    let rows = conn
        .query(
            "SELECT kind FROM predictions WHERE id = ?1 AND org_id = ?2 AND model_id = ?3",
            params![id, org_id, model_id],
        )
        .await?;
    Ok(match db::first_row(rows).await? {
        Some(row) => Some(Stored {
            kind: if row.get::<String>(0)? == "value" {
                Kind::Value
            } else {
                Kind::Label
            },
        }),
        None => None,
    })
}

/// The actual outcome of a prediction.
#[derive(Debug, Clone, PartialEq)]
pub enum Actual {
    Label(String),
    Value(f64),
}

/// Sets the feedback of prediction `id` (replacing an earlier one); a `segment` given
/// with the feedback replaces the prediction's.
pub async fn set_feedback(
    tx: &Writer,
    org_id: &str,
    id: &str,
    actual: &Actual,
    segment: Option<&str>,
    at_ms: i64,
) -> Result<(), DbError> {
    let (label, value) = match actual {
        Actual::Label(label) => (Some(label.as_str()), None),
        Actual::Value(value) => (None, Some(*value)),
    };
    tx.execute(
        "UPDATE predictions SET actual_label = ?3, actual_value = ?4, feedback_at_ms = ?5,
                segment = COALESCE(?6, segment)
         WHERE id = ?1 AND org_id = ?2",
        params![id, org_id, label, value, at_ms, segment],
    )
    .await?;
    Ok(())
}

/// A prediction joined with its feedback.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub version: i64,
    pub at_ms: i64,
    pub predicted: Answer,
    pub actual: Actual,
    pub segment: Option<String>,
}

/// The predictions of model `model_id` made in `[from_ms, to_ms)` that have feedback
/// (of `version` only, if given), oldest first.
pub async fn outcomes(
    conn: &Reader,
    org_id: &str,
    model_id: &str,
    from_ms: i64,
    to_ms: i64,
    version: Option<i64>,
) -> Result<Vec<Outcome>, DbError> {
    let rows = conn
        .query(
            "SELECT version, at_ms, kind, label, value, actual_label, actual_value, segment
             FROM predictions
             WHERE org_id = ?1 AND model_id = ?2 AND feedback_at_ms IS NOT NULL
               AND at_ms >= ?3 AND at_ms < ?4 AND (?5 IS NULL OR version = ?5)
             ORDER BY at_ms",
            params![org_id, model_id, from_ms, to_ms, version],
        )
        .await?;
    db::collect(rows, |row| {
        let kind: String = row.get(2)?;
        let (predicted, actual) = if kind == "value" {
            (
                Answer::Value(row.get::<Option<f64>>(4)?.unwrap_or(f64::NAN)),
                Actual::Value(row.get::<Option<f64>>(6)?.unwrap_or(f64::NAN)),
            )
        } else {
            (
                Answer::Label(row.get::<Option<String>>(3)?.unwrap_or_default()),
                Actual::Label(row.get::<Option<String>>(5)?.unwrap_or_default()),
            )
        };
        Ok(Outcome {
            version: row.get(0)?,
            at_ms: row.get(1)?,
            predicted,
            actual,
            segment: row.get(7)?,
        })
    })
    .await
}
