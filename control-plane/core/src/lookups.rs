//! The rows every request reads — its credential (API key, or user and session),
//! organisation, plan, model, deployment and version — memoised, so a warm inference call
//! does not touch the database.
//!
//! Each lookup is a [`Memo`] over the same query the rest of the code uses; any write in
//! this process makes them all stale (see [`crate::db`]), so they never answer with a row
//! this process has changed. Only rows that exist are memoised.
//!
//! Loads only read. The one write authentication makes, a key's `last_used_at`, is queued
//! in [`KeyUses`] and written in the background, and before anything reads the column.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::auth::Role;
use crate::db::{Db, DbError, Memo};
use crate::deployments::{self, Deployment};
use crate::keys::{self, KeyRow};
use crate::orgs::{self, Org};
use crate::plans::{self, Plan};
use crate::registry::{self, Model, ModelVersion};
use crate::sessions::{self, ActiveSession};
use crate::users::{self, User};

/// Rows of each kind memoised at most; beyond, the least used are dropped.
const CAPACITY: u64 = 10_000;

/// Memoised reads of the rows on the request path.
pub struct Lookups {
    db: Arc<Db>,
    key_uses: Arc<KeyUses>,
    keys: Memo<String, KeyRow>,
    orgs_by_slug: Memo<String, Org>,
    orgs_by_id: Memo<String, Org>,
    roles: Memo<(String, String), Role>,
    users: Memo<String, User>,
    sessions: Memo<String, ActiveSession>,
    plans: Memo<String, Plan>,
    models: Memo<(String, String), Model>,
    deployments: Memo<String, Deployment>,
    versions: Memo<(String, i64), ModelVersion>,
    aliases: Memo<(String, String), i64>,
}

impl Lookups {
    pub fn new(db: Arc<Db>) -> Self {
        Self {
            key_uses: Arc::new(KeyUses::new(Arc::clone(&db))),
            db,
            keys: Memo::new(CAPACITY),
            orgs_by_slug: Memo::new(CAPACITY),
            orgs_by_id: Memo::new(CAPACITY),
            roles: Memo::new(CAPACITY),
            users: Memo::new(CAPACITY),
            sessions: Memo::new(CAPACITY),
            plans: Memo::new(CAPACITY),
            models: Memo::new(CAPACITY),
            deployments: Memo::new(CAPACITY),
            versions: Memo::new(CAPACITY),
            aliases: Memo::new(CAPACITY),
        }
    }

    /// The unrevoked API key whose secret hashes to `key_hash` ([`keys::find_active`]).
    /// Its use at `now` is recorded whenever the row is read (at most every
    /// [`crate::db::MEMO_TTL`] while it is used).
    pub async fn api_key(&self, key_hash: &str, now: i64) -> Result<Option<KeyRow>, DbError> {
        let key_uses = Arc::clone(&self.key_uses);
        self.keys
            .get_or_load(&self.db, key_hash.to_owned(), move |conn, hash| {
                Box::pin(async move {
                    let key = keys::find_active(conn, hash).await?;
                    if let Some(key) = &key {
                        key_uses.record(&key.id, now);
                    }
                    Ok(key)
                })
            })
            .await
    }

    /// Writes the key uses not yet written: call before reading `last_used_at`.
    pub async fn flush_key_uses(&self) -> Result<(), DbError> {
        self.key_uses.flush().await
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

    /// The session an access token names, if it has not ended ([`sessions::find_active`]):
    /// memoised like the rest, so a logout or a password change is seen by the next request.
    pub async fn session(&self, id: &str) -> Result<Option<ActiveSession>, DbError> {
        self.sessions
            .get_or_load(&self.db, id.to_owned(), |conn, id| {
                Box::pin(sessions::find_active(conn, id))
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

/// Uses of API keys not yet written to `last_used_at`, keyed by key id.
struct KeyUses {
    db: Arc<Db>,
    pending: Mutex<HashMap<String, i64>>,
    /// Held while a batch is written, so a flush returns only once earlier uses are stored.
    writing: tokio::sync::Mutex<()>,
}

impl KeyUses {
    fn new(db: Arc<Db>) -> Self {
        Self {
            db,
            pending: Mutex::new(HashMap::new()),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// Queues a use; the first use queued starts a background write for the batch.
    fn record(self: &Arc<Self>, key_id: &str, now: i64) {
        let first = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let first = pending.is_empty();
            let at = pending.entry(key_id.to_owned()).or_insert(now);
            *at = (*at).max(now);
            first
        };
        if first {
            let uses = Arc::clone(self);
            // Off the executor: the write waits for the connection and a commit's `fsync`.
            tokio::spawn(crate::db::on_blocking_thread(async move {
                if let Err(error) = uses.flush().await {
                    tracing::warn!(%error, "failed to record API key uses");
                }
            }));
        }
    }

    async fn flush(&self) -> Result<(), DbError> {
        let _writing = self.writing.lock().await;
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if batch.is_empty() {
            return Ok(());
        }
        let conn = self.db.write_unmemoised().await;
        for (key_id, at) in &batch {
            keys::touch(&conn, key_id, *at).await?;
        }
        Ok(())
    }
}
