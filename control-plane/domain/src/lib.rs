//! Domain operations: the only way any edge (the REST API, the MLflow API, batch jobs, the
//! CLI through them, the dashboard) changes the registry's state.
//!
//! Each operation takes the [`Writer`](crate::db::Writer) of the transaction it runs in and
//! the [`Acting`] party, checks the rules that hold whatever the edge (plan quotas, unique
//! names), makes the change, and writes its own audit entry in that same transaction: the
//! log and the data cannot disagree, and no edge can forget either.

// The layers below, under the names the modules use (`crate::orgs`, `crate::db`, …).
use wisp_core::alerts as alerts_rows;
use wisp_core::{access, audit, auth, error, invitations, plans, registry, users};
use wisp_metering as metering;
use wisp_storage::db;

pub mod alerts;
pub mod deployments;
pub mod drift;
pub mod ground_truth;
pub mod keys;
pub mod members;
pub mod models;
pub mod orgs;
pub mod platform;

use serde_json::Value;

use crate::access::OrgAccess;
use crate::audit::{AuditEvent, RequestMeta};
use crate::db::{DbError, Writer};

/// Who is changing what, in which organisation, from where.
#[derive(Debug, Clone)]
pub struct Acting<'a> {
    pub org_id: &'a str,
    /// `user:<id>`, `key:<id>` or `system`.
    pub actor: String,
    pub meta: &'a RequestMeta,
}

impl<'a> Acting<'a> {
    /// The caller of an organisation-scoped request.
    pub fn new(access: &'a OrgAccess, meta: &'a RequestMeta) -> Self {
        Self {
            org_id: &access.org.id,
            actor: access.actor(),
            meta,
        }
    }
}

impl Acting<'_> {
    /// Records `action` on `target` in the organisation's audit log.
    pub async fn audit(
        &self,
        tx: &Writer,
        action: &str,
        target: &str,
        details: Value,
    ) -> Result<(), DbError> {
        audit::record(
            tx,
            self.meta,
            AuditEvent {
                org_id: Some(self.org_id),
                actor: &self.actor,
                action,
                target: Some(target),
                details,
            },
        )
        .await
    }
}
