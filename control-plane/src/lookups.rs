//! The rows every request reads — its credential, organisation, plan, model, deployment and
//! version — memoised, so a warm inference call does not touch the database.
//!
//! Each lookup is a [`Memo`] over the same query the rest of the code uses; any write in
//! this process makes them all stale (see [`crate::db`]), so they never answer with a row
//! this process has changed. Only rows that exist are memoised.

use std::sync::Arc;

use crate::auth::Role;
use crate::db::{Db, DbError, Memo};
use crate::deployments::{self, Deployment};
use crate::keys::{self, KeyRow};
use crate::orgs::{self, Org};
use crate::plans::{self, Plan};
use crate::registry::{self, Model, ModelVersion};
use crate::users::{self, User};

/// Rows of each kind memoised at most; beyond, the least used are dropped.
const CAPACITY: u64 = 10_000;

/// Memoised reads of the rows on the request path.
pub struct Lookups {
    db: Arc<Db>,
    keys: Memo<String, KeyRow>,
    orgs_by_slug: Memo<String, Org>,
    orgs_by_id: Memo<String, Org>,
    roles: Memo<(String, String), Role>,
    users: Memo<String, User>,
    plans: Memo<String, Plan>,
    models: Memo<(String, String), Model>,
    deployments: Memo<String, Deployment>,
    versions: Memo<(String, i64), ModelVersion>,
    aliases: Memo<(String, String), i64>,
}

impl Lookups {
    pub fn new(db: Arc<Db>) -> Self {
        Self {
            db,
            keys: Memo::new(CAPACITY),
            orgs_by_slug: Memo::new(CAPACITY),
            orgs_by_id: Memo::new(CAPACITY),
            roles: Memo::new(CAPACITY),
            users: Memo::new(CAPACITY),
            plans: Memo::new(CAPACITY),
            models: Memo::new(CAPACITY),
            deployments: Memo::new(CAPACITY),
            versions: Memo::new(CAPACITY),
            aliases: Memo::new(CAPACITY),
        }
    }

    /// The unrevoked API key whose secret hashes to `key_hash` ([`keys::find_active`]).
    pub async fn api_key(&self, key_hash: &str, now: i64) -> Result<Option<KeyRow>, DbError> {
        self.keys
            .get_or_load(&self.db, key_hash.to_owned(), move |conn, hash| {
                Box::pin(keys::find_active(conn, hash, now))
            })
            .await
    }

    pub async fn org_by_slug(&self, slug: &str) -> Result<Option<Org>, DbError> {
        self.orgs_by_slug
            .get_or_load(&self.db, slug.to_owned(), |conn, slug| {
                Box::pin(orgs::find_by_slug(conn, slug))
            })
            .await
    }

    pub async fn org_by_id(&self, id: &str) -> Result<Option<Org>, DbError> {
        self.orgs_by_id
            .get_or_load(&self.db, id.to_owned(), |conn, id| {
                Box::pin(orgs::find_by_id(conn, id))
            })
            .await
    }

    /// A user's role in an organisation, if a member.
    pub async fn role(&self, org_id: &str, user_id: &str) -> Result<Option<Role>, DbError> {
        self.roles
            .get_or_load(
                &self.db,
                (org_id.to_owned(), user_id.to_owned()),
                |conn, (org_id, user_id)| Box::pin(orgs::role_in(conn, org_id, user_id)),
            )
            .await
    }

    pub async fn user(&self, id: &str) -> Result<Option<User>, DbError> {
        self.users
            .get_or_load(&self.db, id.to_owned(), |conn, id| {
                Box::pin(users::find_by_id(conn, id))
            })
            .await
    }

    /// The organisation's plan with its overrides ([`plans::of_org`]).
    pub async fn plan(&self, org_id: &str) -> Result<Plan, DbError> {
        let plan = self
            .plans
            .get_or_load(&self.db, org_id.to_owned(), |conn, org_id| {
                Box::pin(async move { plans::of_org(conn, org_id).await.map(Some) })
            })
            .await?;
        Ok(plan.expect("of_org answers a plan or an error"))
    }

    /// A model of the organisation by name.
    pub async fn model(&self, org_id: &str, name: &str) -> Result<Option<Model>, DbError> {
        self.models
            .get_or_load(
                &self.db,
                (org_id.to_owned(), name.to_owned()),
                |conn, (org_id, name)| Box::pin(registry::get_model(conn, org_id, name)),
            )
            .await
    }

    pub async fn deployment(&self, model_id: &str) -> Result<Option<Deployment>, DbError> {
        self.deployments
            .get_or_load(&self.db, model_id.to_owned(), |conn, model_id| {
                Box::pin(deployments::get(conn, model_id))
            })
            .await
    }

    pub async fn version(
        &self,
        model_id: &str,
        version: i64,
    ) -> Result<Option<ModelVersion>, DbError> {
        self.versions
            .get_or_load(
                &self.db,
                (model_id.to_owned(), version),
                |conn, (model_id, version)| {
                    Box::pin(registry::get_version(conn, model_id, *version))
                },
            )
            .await
    }

    /// The version an alias of the model points at.
    pub async fn alias_target(&self, model_id: &str, alias: &str) -> Result<Option<i64>, DbError> {
        self.aliases
            .get_or_load(
                &self.db,
                (model_id.to_owned(), alias.to_owned()),
                |conn, (model_id, alias)| Box::pin(registry::alias_target(conn, model_id, alias)),
            )
            .await
    }
}
