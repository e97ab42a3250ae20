//! Plans: what an organisation may use and what it pays. Each organisation is on one plan
//! (Free, Pro, Enterprise, seeded by migration), optionally with per-organisation overrides
//! of its quotas and per-call budget; its upload limit, per-call runtime limits, quotas and
//! prices come from there.

use std::time::Duration;

use crate::db::{Reader, Writer};
use libsql::params;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wisp_host::TenantLimits;

use crate::db::{self, DbError};

/// Fuel in one compute unit: a plan's per-call compute budget is given to Wasm as fuel
/// at this rate (metering counts units the same way).
pub const FUEL_PER_COMPUTE_UNIT: u64 = 1_000;

/// A plan's limits, quotas and prices, with the organisation's overrides applied.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Plan {
    pub id: String,
    pub name: String,
    /// Largest model upload, in bytes.
    pub max_upload_bytes: u64,
    /// Compute budget of one call, in compute units (see the metering docs): the Wasm code
    /// gets it as fuel, and the call fails with `fuel_exhausted` if Wasm and backend
    /// together used more.
    pub compute_units_per_call: u64,
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
    pub quotas: Quotas,
    pub prices: Prices,
}

/// Hard quotas; `None` is unlimited.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Quotas {
    /// Models the organisation may have.
    pub max_models: Option<u64>,
    /// Billed calls per calendar month (UTC).
    pub calls_per_month: Option<u64>,
    /// Bytes of model files in the object store.
    pub max_storage_bytes: Option<u64>,
    /// Percentage of a quota past which responses carry a warning.
    pub soft_limit_percent: u8,
}

/// Usage-based prices, in micro-dollars (1,000,000 = 1 USD).
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Prices {
    /// Fixed fee per billing period (calendar month).
    pub base_fee_micros: u64,
    pub per_1000_calls_micros: u64,
    pub per_million_compute_units_micros: u64,
    /// Per GB (10⁹ bytes) stored for a whole month.
    pub per_gb_month_micros: u64,
}

/// An organisation's overrides of its plan: `None` keeps the plan's value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    pub max_models: Option<u64>,
    pub calls_per_month: Option<u64>,
    pub max_storage_bytes: Option<u64>,
    pub compute_units_per_call: Option<u64>,
}

impl Plan {
    /// The runtime limits of one call under this plan. The whole compute budget may be
    /// spent in Wasm, so that is the fuel; the backend's share is checked after the call.
    pub fn tenant_limits(&self) -> TenantLimits {
        TenantLimits {
            fuel: self
                .compute_units_per_call
                .saturating_mul(FUEL_PER_COMPUTE_UNIT),
            max_memory_bytes: self.max_memory_bytes,
            deadline: Duration::from_millis(self.deadline_ms),
            max_output_bytes: self.max_output_bytes,
            ..TenantLimits::default()
        }
    }
}

/// The plan of an organisation, with its overrides applied.
pub async fn of_org(conn: &Reader, org_id: &str) -> Result<Plan, DbError> {
    let rows = conn
        .query(
            "SELECT p.id, p.name, p.max_upload_bytes,
                    COALESCE(x.compute_units_per_call, p.compute_units_per_call),
                    p.max_memory_bytes, p.deadline_ms, p.max_output_bytes,
                    COALESCE(x.max_models, p.max_models),
                    COALESCE(x.calls_per_month, p.calls_per_month),
                    COALESCE(x.max_storage_bytes, p.max_storage_bytes),
                    p.soft_limit_percent, p.base_fee_micros, p.price_per_1000_calls_micros,
                    p.price_per_million_compute_units_micros, p.price_per_gb_month_micros,
                    p.key_requests_per_second, p.org_requests_per_second,
                    p.max_concurrent_calls
             FROM orgs o JOIN plans p ON p.id = o.plan_id
             LEFT JOIN org_plan_overrides x ON x.org_id = o.id
             WHERE o.id = ?1",
            params![org_id],
        )
        .await?;
    let row = db::first_row(rows)
        .await?
        .ok_or_else(|| DbError::Corrupt(format!("organisation {org_id} has no plan")))?;
    let unsigned = |i| -> Result<u64, DbError> {
        let value: i64 = row.get(i)?;
        u64::try_from(value).map_err(|_| DbError::Corrupt(format!("negative plan value {value}")))
    };
    let optional = |i| -> Result<Option<u64>, DbError> {
        let value: Option<i64> = row.get(i)?;
        value
            .map(|v| u64::try_from(v).map_err(|_| DbError::Corrupt(format!("negative quota {v}"))))
            .transpose()
    };
    let small = |i| -> Result<u32, DbError> {
        u32::try_from(unsigned(i)?).map_err(|_| DbError::Corrupt("plan limit out of range".into()))
    };
    Ok(Plan {
        id: row.get(0)?,
        name: row.get(1)?,
        max_upload_bytes: unsigned(2)?,
        compute_units_per_call: unsigned(3)?,
        max_memory_bytes: unsigned(4)?,
        deadline_ms: unsigned(5)?,
        max_output_bytes: unsigned(6)?,
        quotas: Quotas {
            max_models: optional(7)?,
            calls_per_month: optional(8)?,
            max_storage_bytes: optional(9)?,
            soft_limit_percent: u8::try_from(unsigned(10)?.min(100)).unwrap_or(100),
        },
        prices: Prices {
            base_fee_micros: unsigned(11)?,
            per_1000_calls_micros: unsigned(12)?,
            per_million_compute_units_micros: unsigned(13)?,
            per_gb_month_micros: unsigned(14)?,
        },
        key_requests_per_second: small(15)?,
        org_requests_per_second: small(16)?,
        max_concurrent_calls: small(17)?,
    })
}

/// Moves an organisation to another plan. Returns whether the plan exists.
pub async fn assign(conn: &Writer, org_id: &str, plan_id: &str) -> Result<bool, DbError> {
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

/// Replaces an organisation's overrides (all `None` removes them). Takes effect on the
/// next call.
pub async fn set_overrides(
    conn: &Writer,
    org_id: &str,
    overrides: &Overrides,
) -> Result<(), DbError> {
    let signed = |v: Option<u64>| v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
    if *overrides == Overrides::default() {
        conn.execute(
            "DELETE FROM org_plan_overrides WHERE org_id = ?1",
            params![org_id],
        )
        .await?;
        return Ok(());
    }
    conn.execute(
        "INSERT INTO org_plan_overrides
            (org_id, max_models, calls_per_month, max_storage_bytes, compute_units_per_call, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (org_id) DO UPDATE SET max_models = excluded.max_models,
            calls_per_month = excluded.calls_per_month,
            max_storage_bytes = excluded.max_storage_bytes,
            compute_units_per_call = excluded.compute_units_per_call,
            updated_at = excluded.updated_at",
        params![
            org_id,
            signed(overrides.max_models),
            signed(overrides.calls_per_month),
            signed(overrides.max_storage_bytes),
            signed(overrides.compute_units_per_call),
            db::now()
        ],
    )
    .await?;
    Ok(())
}

/// An organisation's overrides (all `None` when it has none).
pub async fn overrides_of(conn: &Reader, org_id: &str) -> Result<Overrides, DbError> {
    let rows = conn
        .query(
            "SELECT max_models, calls_per_month, max_storage_bytes, compute_units_per_call
             FROM org_plan_overrides WHERE org_id = ?1",
            params![org_id],
        )
        .await?;
    let Some(row) = db::first_row(rows).await? else {
        return Ok(Overrides::default());
    };
    let get = |i| -> Result<Option<u64>, DbError> {
        Ok(row
            .get::<Option<i64>>(i)?
            .map(|v| u64::try_from(v).unwrap_or(0)))
    };
    Ok(Overrides {
        max_models: get(0)?,
        calls_per_month: get(1)?,
        max_storage_bytes: get(2)?,
        compute_units_per_call: get(3)?,
    })
}
