//! The drift rows: a model's reference and settings (written by `wisp_domain::drift`),
//! and the live windows, merged in place when flushed again.

use libsql::params;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::columns::ColumnNames;
use super::profile::Profile;
use super::settings::DriftSettings;
use crate::db::{self, DbError, Reader, Writer};
use crate::error::Result;

/// A model's reference profile as stored.
#[derive(Debug, Clone)]
pub struct Reference {
    pub source: Value,
    /// `collecting` (from the first calls) or `ready`.
    pub status: String,
    pub target_rows: Option<i64>,
    pub rows: i64,
    pub columns: ColumnNames,
    pub profile: Profile,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One stored window.
#[derive(Debug, Clone)]
pub struct Window {
    pub start: i64,
    pub secs: i64,
    pub profile: Profile,
}

/// What the collector needs of a watched model.
#[derive(Debug, Clone)]
pub struct Watch {
    pub model_id: String,
    pub org_id: String,
    pub settings: DriftSettings,
    pub columns: ColumnNames,
    /// Rows still to collect into a `from_calls` reference.
    pub collecting: Option<u64>,
}

fn json<T: DeserializeOwned>(text: &str) -> Result<T, DbError> {
    serde_json::from_str(text).map_err(|e| DbError::Corrupt(format!("drift row: {e}")))
}

/// The model's reference, if it has one.
pub async fn reference(conn: &Reader, org_id: &str, model_id: &str) -> Result<Option<Reference>> {
    let rows = conn
        .query(
            "SELECT source, status, target_rows, rows, columns, profile, created_by, created_at, updated_at
             FROM drift_references WHERE org_id = ?1 AND model_id = ?2",
            params![org_id, model_id],
        )
        .await
        .map_err(DbError::from)?;
    let Some(row) = db::first_row(rows).await? else {
        return Ok(None);
    };
    Ok(Some(Reference {
        source: json(&row.get::<String>(0).map_err(DbError::from)?)?,
        status: row.get(1).map_err(DbError::from)?,
        target_rows: row.get(2).map_err(DbError::from)?,
        rows: row.get(3).map_err(DbError::from)?,
        columns: json(&row.get::<String>(4).map_err(DbError::from)?)?,
        profile: json(&row.get::<String>(5).map_err(DbError::from)?)?,
        created_by: row.get(6).map_err(DbError::from)?,
        created_at: row.get(7).map_err(DbError::from)?,
        updated_at: row.get(8).map_err(DbError::from)?,
    }))
}

/// The model's settings (the defaults if none were set).
pub async fn settings(conn: &Reader, org_id: &str, model_id: &str) -> Result<DriftSettings> {
    let rows = conn
        .query(
            "SELECT settings FROM drift_settings WHERE org_id = ?1 AND model_id = ?2",
            params![org_id, model_id],
        )
        .await
        .map_err(DbError::from)?;
    match db::first_row(rows).await? {
        Some(row) => Ok(json(&row.get::<String>(0).map_err(DbError::from)?)?),
        None => Ok(DriftSettings::default()),
    }
}

/// The model's windows starting in `[from, to)`, oldest first.
pub async fn windows(
    conn: &Reader,
    org_id: &str,
    model_id: &str,
    from: i64,
    to: i64,
) -> Result<Vec<Window>> {
    let rows = conn
        .query(
            "SELECT window_start, window_secs, profile FROM drift_windows
             WHERE org_id = ?1 AND model_id = ?2 AND window_start >= ?3 AND window_start < ?4
             ORDER BY window_start",
            params![org_id, model_id, from, to],
        )
        .await
        .map_err(DbError::from)?;
    Ok(db::collect(rows, |row| {
        Ok(Window {
            start: row.get(0)?,
            secs: row.get(1)?,
            profile: json(&row.get::<String>(2)?)?,
        })
    })
    .await?)
}

/// Every model with drift settings or a reference: the models whose calls are profiled.
pub async fn watched(conn: &Reader) -> Result<Vec<Watch>> {
    let rows = conn
        .query(
            "SELECT m.model_id, m.org_id, s.settings, r.columns, r.status, r.target_rows, r.rows
             FROM (SELECT model_id, org_id FROM drift_settings
                   UNION SELECT model_id, org_id FROM drift_references) m
             LEFT JOIN drift_settings s ON s.model_id = m.model_id
             LEFT JOIN drift_references r ON r.model_id = m.model_id",
            (),
        )
        .await
        .map_err(DbError::from)?;
    Ok(db::collect(rows, |row| {
        let settings = match row.get::<Option<String>>(2)? {
            Some(text) => json(&text)?,
            None => DriftSettings::default(),
        };
        let columns = match row.get::<Option<String>>(3)? {
            Some(text) => json(&text)?,
            None => ColumnNames::new(),
        };
        let collecting = match row.get::<Option<String>>(4)?.as_deref() {
            Some("collecting") => {
                let target = row.get::<Option<i64>>(5)?.unwrap_or(0);
                let rows = row.get::<Option<i64>>(6)?.unwrap_or(0);
                Some(target.saturating_sub(rows).max(0) as u64)
            }
            _ => None,
        };
        Ok(Watch {
            model_id: row.get(0)?,
            org_id: row.get(1)?,
            settings,
            columns,
            collecting,
        })
    })
    .await?)
}

/// Adds `profile` to the window `(model_id, start)`, creating it if needed.
pub async fn merge_window(
    tx: &Writer,
    org_id: &str,
    model_id: &str,
    start: i64,
    secs: i64,
    profile: &Profile,
) -> Result<()> {
    let rows = tx
        .query(
            "SELECT profile FROM drift_windows WHERE model_id = ?1 AND window_start = ?2",
            params![model_id, start],
        )
        .await
        .map_err(DbError::from)?;
    let mut merged = match db::first_row(rows).await? {
        Some(row) => json::<Profile>(&row.get::<String>(0).map_err(DbError::from)?)?,
        None => Profile::default(),
    };
    merged.merge(profile, &mut rand::thread_rng());
    let text = serde_json::to_string(&merged).map_err(crate::error::Error::internal)?;
    tx.execute(
        "INSERT INTO drift_windows (model_id, org_id, window_start, window_secs, rows, profile, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (model_id, window_start) DO UPDATE SET
            rows = excluded.rows, profile = excluded.profile, updated_at = excluded.updated_at",
        params![model_id, org_id, start, secs, merged.rows as i64, text, db::now()],
    )
    .await
    .map_err(DbError::from)?;
    Ok(())
}

/// Adds rows collected from calls to a `from_calls` reference still collecting; it is
/// `ready` once it has its target rows.
pub async fn merge_collected(tx: &Writer, model_id: &str, profile: &Profile) -> Result<()> {
    let rows = tx
        .query(
            "SELECT profile, target_rows FROM drift_references
             WHERE model_id = ?1 AND status = 'collecting'",
            params![model_id],
        )
        .await
        .map_err(DbError::from)?;
    let Some(row) = db::first_row(rows).await? else {
        return Ok(()); // replaced or finished meanwhile
    };
    let mut merged = json::<Profile>(&row.get::<String>(0).map_err(DbError::from)?)?;
    let target = row
        .get::<Option<i64>>(1)
        .map_err(DbError::from)?
        .unwrap_or(0);
    merged.merge(profile, &mut rand::thread_rng());
    let ready = merged.rows as i64 >= target;
    if ready {
        merged = merged.into_reference();
    }
    let text = serde_json::to_string(&merged).map_err(crate::error::Error::internal)?;
    tx.execute(
        "UPDATE drift_references SET profile = ?2, rows = ?3, status = ?4, updated_at = ?5
         WHERE model_id = ?1",
        params![
            model_id,
            text,
            merged.rows as i64,
            if ready { "ready" } else { "collecting" },
            db::now()
        ],
    )
    .await
    .map_err(DbError::from)?;
    Ok(())
}
