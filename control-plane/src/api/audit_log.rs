//! Reading the audit log (organisation admins only).

use axum::Json;
use axum::extract::State;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiQuery, AppState};
use crate::api::Authorized;
use crate::audit::{self, AuditPage, AuditQuery};
use crate::auth::rbac::can;
use crate::error::ApiResult;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(read_audit_log))
}

/// The organisation's audit log, newest first, filtered and paged.
#[utoipa::path(get, path = "/v1/orgs/{org}/audit", tag = "audit",
    params(("org" = String, Path, description = "Organisation slug"), AuditQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = crate::error::ErrorBody)))]
async fn read_audit_log(
    State(state): State<AppState>,
    access: Authorized<can::ReadAudit>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let conn = state.db.read().await;
    Ok(Json(audit::query(&conn, &access.org.id, &query).await?))
}
