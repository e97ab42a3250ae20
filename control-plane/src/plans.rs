//! Plans: what an organisation may use. Each organisation is on one plan (Free, Pro,
//! Enterprise, seeded by migration); its upload limit and per-call runtime limits come
//! from there.

use std::time::Duration;

use libsql::{Connection, params};
use serde::Serialize;
use utoipa::ToSchema;
use wisp_host::TenantLimits;

use crate::db::{self, DbError};

/// A plan's limits.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Plan {
    pub id: String,
    pub name: String,
    /// Largest model upload, in bytes.
    pub max_upload_bytes: u64,
    /// Fuel for the Wasm code of one call.
    pub fuel_per_call: u64,
    /// Linear memory of one instance, in bytes.
    pub max_memory_bytes: u64,
    /// Wall-clock deadline of one call, in milliseconds.
    pub deadline_ms: u64,
    /// Total output bytes of one call.
    pub max_output_bytes: u64,
    /// Inference requests per second one API key may make (also its burst).
    pub key_requests_per_second: u32,
    /// Inference requests per second the whole organisation may make (also its burst).
    pub org_requests_per_second: u32,
    /// Inference calls of the organisation running at once; more wait their turn.
    pub max_concurrent_calls: u32,
}

impl Plan {
    /// The runtime limits of one call under this plan.
    pub fn tenant_limits(&self) -> TenantLimits {
        TenantLimits {
            fuel: self.fuel_per_call,
            max_memory_bytes: self.max_memory_bytes,
            deadline: Duration::from_millis(self.deadline_ms),
            max_output_bytes: self.max_output_bytes,
            ..TenantLimits::default()
        }
    }
}

/// The plan of an organisation.
pub async fn of_org(conn: &Connection, org_id: &str) -> Result<Plan, DbError> {
    let rows = conn
        .query(
            "SELECT p.id, p.name, p.max_upload_bytes, p.fuel_per_call, p.max_memory_bytes,
                    p.deadline_ms, p.max_output_bytes, p.key_requests_per_second,
                    p.org_requests_per_second, p.max_concurrent_calls
             FROM orgs o JOIN plans p ON p.id = o.plan_id WHERE o.id = ?1",
            params![org_id],
        )
        .await?;
    let row = db::first_row(rows)
        .await?
        .ok_or_else(|| DbError::Corrupt(format!("organisation {org_id} has no plan")))?;
    let unsigned = |i| -> Result<u64, DbError> {
        let value: i64 = row.get(i)?;
        u64::try_from(value).map_err(|_| DbError::Corrupt(format!("negative plan limit {value}")))
    };
    let small = |i| -> Result<u32, DbError> {
        u32::try_from(unsigned(i)?).map_err(|_| DbError::Corrupt("plan limit out of range".into()))
    };
    Ok(Plan {
        id: row.get(0)?,
        name: row.get(1)?,
        max_upload_bytes: unsigned(2)?,
        fuel_per_call: unsigned(3)?,
        max_memory_bytes: unsigned(4)?,
        deadline_ms: unsigned(5)?,
        max_output_bytes: unsigned(6)?,
        key_requests_per_second: small(7)?,
        org_requests_per_second: small(8)?,
        max_concurrent_calls: small(9)?,
    })
}

/// Moves an organisation to another plan. Returns whether the plan exists.
pub async fn assign(conn: &Connection, org_id: &str, plan_id: &str) -> Result<bool, DbError> {
    let rows = conn
        .query("SELECT 1 FROM plans WHERE id = ?1", params![plan_id])
        .await?;
    if db::first_row(rows).await?.is_none() {
        return Ok(false);
    }
    conn.execute(
        "UPDATE orgs SET plan_id = ?2 WHERE id = ?1",
        params![org_id, plan_id],
    )
    .await?;
    Ok(true)
}
