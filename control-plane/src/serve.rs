//! `wisp serve`: open storage, create the first admin if needed, serve until a signal.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use serde_json::json;

use crate::api::{self, ApiSettings, AppState};
use crate::audit::RequestMeta;
use crate::auth::password;
use crate::auth::password::HashingPool;
use crate::auth::tokens::{self, JwtKeys};
use crate::batch::{self, BatchJobs};
use crate::blob::{LocalStore, ObjectStore, S3Store, Staging};
use crate::cli::Bootstrap;
use crate::client_ip::ClientIpPolicy;
use crate::config::{Config, ObjectStoreConfig};
use crate::db::Db;
use crate::inspect::ModelInspector;
use crate::lookups::Lookups;
use crate::metering::Metering;
use crate::serving::Serving;
use crate::serving::result_cache::ResultCache;
use crate::telemetry::Telemetry;
use crate::{orgs, plans, users};

/// Builds the application state from a validated configuration.
pub async fn state(
    config: &Config,
    bootstrap: &Bootstrap,
    inspector: Arc<dyn ModelInspector>,
) -> anyhow::Result<AppState> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("failed to create data dir {}", config.data_dir.display()))?;
    let db = Db::open(&config.db_location())
        .await
        .context("failed to open the database")?;
    let blobs: Arc<dyn ObjectStore> = match &config.object_store {
        ObjectStoreConfig::Local { path } => {
            let path = path
                .clone()
                .unwrap_or_else(|| config.data_dir.join("blobs"));
            Arc::new(LocalStore::new(&path).with_context(|| {
                format!("failed to create the blob directory {}", path.display())
            })?)
        }
        ObjectStoreConfig::S3(settings) => {
            Arc::new(S3Store::new(settings).context("failed to configure S3")?)
        }
    };
    let staging = Staging::new(config.data_dir.join("tmp"))
        .context("failed to prepare the upload staging directory")?;
    let secret = match &config.auth.jwt_secret {
        Some(secret) => secret.clone(),
        None => load_or_create_secret(&config.data_dir.join("jwt-secret"))?,
    };
    let jwt = JwtKeys::new(secret.as_bytes(), config.auth.access_token_ttl_secs);
    bootstrap_admin(&db, bootstrap, &config.data_dir).await?;
    let mut runtime = config.runtime.clone();
    if runtime.precompiled_dir.is_none() {
        runtime.precompiled_dir = Some(config.data_dir.join("precompiled"));
    }
    let serving =
        Serving::new(runtime, Arc::clone(&blobs)).context("failed to start the runtime")?;
    let db = Arc::new(db);
    let metering = Metering::start(
        &config.data_dir.join("usage-outbox"),
        config.metering.fsync,
        Arc::clone(&db),
    )
    .await
    .context("failed to start usage metering")?;
    tokio::spawn(crate::blob::intents::collect_hourly(
        Arc::clone(&db),
        Arc::clone(&blobs),
    ));
    tokio::spawn(crate::metering::idempotency::purge_hourly(
        Arc::clone(&db),
        config.metering.idempotency().ttl,
    ));
    crate::metering::analytics::retention::spawn_minute_pruning(
        Arc::downgrade(&db),
        config.metering.analytics_minute_retention(),
    );
    let predictions = crate::serving::prediction_log::PredictionLog::start(
        Arc::clone(&db),
        config.feedback.prediction_log(),
    );
    let drift = crate::serving::drift::DriftTap::start(Arc::clone(&db), &config.drift);
    let telemetry = Arc::new(Telemetry::new(
        &config.metrics,
        crate::telemetry::collectors::ServerCollector {
            serving: serving.clone(),
            db: Arc::clone(&db),
            metering: metering.clone(),
            predictions: predictions.clone(),
            drift: drift.clone(),
        },
    ));
    let alerts = crate::alert_delivery::Alerts::new(Arc::clone(&db), &config.alerts)
        .context("failed to start alerting")?;
    alerts.start();
    Ok(AppState {
        alerts,
        lookups: Arc::new(Lookups::new(Arc::clone(&db))),
        db,
        blobs,
        staging,
        jwt: Arc::new(jwt),
        inspector,
        serving,
        metering,
        login_throttle: Arc::default(),
        password_hashing: Arc::new(HashingPool::new(
            config.auth.max_concurrent_password_hashes,
            std::time::Duration::from_millis(config.auth.password_hash_wait_ms),
        )),
        admission: Arc::default(),
        result_cache: Arc::new(ResultCache::new(config.limits.result_cache_bytes)),
        traffic: Arc::default(),
        batch: BatchJobs::on_node(
            config.batch.clone(),
            &crate::fleet_member::node_id(&config.data_dir)?,
        ),
        telemetry,
        predictions,
        settings: ApiSettings {
            max_upload_bytes: config.limits.max_upload_bytes,
            refresh_token_ttl_secs: config.auth.refresh_token_ttl_secs,
            platform_operators: config
                .platform
                .operators
                .iter()
                .map(|email| email.trim().to_lowercase())
                .collect(),
            idempotency: config.metering.idempotency(),
            max_json_body_bytes: config.limits.max_json_body_bytes,
            analytics_minute_retention: config.metering.analytics_minute_retention(),
            invitation_ttl_secs: config.auth.invitation_ttl_secs,
            client_ip: Arc::new(ClientIpPolicy::new(
                config
                    .server
                    .trusted_proxy_ranges()
                    .map_err(|e| anyhow::anyhow!("server.trusted_proxies: {e}"))?,
            )),
            log_requests: config.log.log_requests(),
        },
        drift,
    })
}

/// Serves the API until SIGTERM or ctrl-c, then lets in-flight requests finish.
pub async fn run(
    config: Config,
    bootstrap: Bootstrap,
    inspector: Arc<dyn ModelInspector>,
) -> anyhow::Result<()> {
    let state = state(&config, &bootstrap, inspector).await?;
    // This node among the others on the database: heartbeats, invalidations.
    let fleet = crate::fleet_member::FleetMember {
        node_id: state.batch.node_id().to_owned(),
        db: Arc::clone(&state.db),
        admission: Arc::clone(&state.admission),
        metering: state.metering.clone(),
        result_cache: Arc::clone(&state.result_cache),
        config: config.fleet.clone(),
    };
    fleet
        .clone()
        .join()
        .await
        .context("failed to join the node registry")?;
    // Jobs interrupted by a stop or a crash continue from their last completed chunk.
    batch::runner::resume(&axum::extract::FromRef::from_ref(&state)).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("failed to listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, data_dir = %config.data_dir.display(), "wisp is listening");
    announce(&format!(
        "wisp listening on http://{address} (API docs: http://{address}/docs)"
    ));
    serve_metrics(&config, Arc::clone(&state.telemetry)).await?;
    let metering = state.metering.clone();
    let drift = state.drift.clone();
    let db = Arc::clone(&state.db);
    tokio::spawn(crate::db::watch_health(Arc::downgrade(&db)));
    let app = crate::app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let (stopping, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stopping.send(true);
    });
    let stopped = |mut stop: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stop.wait_for(|stopping| *stopping).await;
    };
    let serve_then_drain = async {
        axum::serve(listener, app)
            .with_graceful_shutdown(stopped(stop.clone()))
            .await
            .context("server failed")?;
        // The quota blocks and batch leases this node holds go back to the fleet.
        fleet.leave().await;
        // Not needed for correctness (the next start replays the outbox), but a clean stop
        // leaves the database complete for whoever reads it next.
        metering
            .flush()
            .await
            .context("failed to drain the usage outbox")?;
        // The windows still in memory; the next start goes on filling them.
        drift.flush().await;
        tracing::info!("drained in-flight requests; stopped");
        anyhow::Ok(())
    };
    // The stop is bounded: with the database down, the drain would wait for it forever.
    let bound = std::time::Duration::from_secs(config.server.shutdown_timeout_secs);
    let deadline = async {
        stopped(stop.clone()).await;
        tokio::time::sleep(bound).await;
    };
    tokio::select! {
        outcome = serve_then_drain => outcome,
        () = deadline => {
            tracing::warn!(
                shutdown_timeout_secs = bound.as_secs(),
                database_unavailable = db.health().is_unavailable(),
                "stopping before the drain finished: usage events not yet stored stay in the outbox for the next start"
            );
            Ok(())
        }
    }
}

/// The line `wisp serve` prints with the metrics listener's address.
pub const METRICS_ANNOUNCEMENT: &str = "wisp metrics on http://";

/// Starts the metrics listener (`metrics.listen`), which serves until the process ends.
/// The default address is given up with a warning when taken; one configured must bind.
async fn serve_metrics(config: &Config, telemetry: Arc<Telemetry>) -> anyhow::Result<()> {
    let Some(address) = config.metrics.listen_addr().map_err(anyhow::Error::msg)? else {
        return Ok(());
    };
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) if config.metrics.listen.is_none() => {
            tracing::warn!(%address, %error, "the default metrics address is taken: /metrics is not served (set metrics.listen)");
            return Ok(());
        }
        Err(error) => {
            return Err(error)
                .with_context(|| format!("failed to listen on {address} (metrics.listen)"));
        }
    };
    let address = listener.local_addr()?;
    announce(&format!("{METRICS_ANNOUNCEMENT}{address}/metrics"));
    let app = api::metrics::listener_app(telemetry);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the metrics listener failed");
        }
    });
    Ok(())
}

/// Tells the operator something on stdout. A closed stdout is not a reason to stop serving.
fn announce(message: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{message}").and_then(|()| stdout.flush());
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: draining in-flight requests");
}

/// Reads the JWT secret from `path`, creating it (mode 0600) on first start.
fn load_or_create_secret(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(secret) if secret.trim().len() >= 32 => return Ok(secret.trim().to_owned()),
        Ok(_) => anyhow::bail!("{} is shorter than 32 bytes", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("failed to read {}", path.display())),
    }
    let secret = tokens::random_hex_32();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    file.write_all(secret.as_bytes())?;
    file.sync_all()?;
    Ok(secret)
}

/// The file, in the data directory, holding the first admin's generated password.
pub const ADMIN_PASSWORD_FILE: &str = "admin-password";

/// The line `wisp serve` prints on first start, followed by the password file's path.
pub const ADMIN_PASSWORD_ANNOUNCEMENT: &str = "One-time admin password written to: ";

/// On first start (no users at all), creates the admin user and the first organisation.
///
/// A password given by the operator (`WISP_ADMIN_PASSWORD`) is theirs to keep. A generated
/// one is never printed, so it cannot linger in logs: it is written to
/// `<data_dir>/admin-password` (mode 0600) and that path is printed; and it must be changed
/// before the account can do anything else (`must_change_password`), so the file is
/// useless once it has been used.
async fn bootstrap_admin(db: &Db, bootstrap: &Bootstrap, data_dir: &Path) -> anyhow::Result<()> {
    {
        let conn = db.read().await;
        if users::any_exist(&conn).await? {
            return Ok(());
        }
    }
    crate::api::validate_org_slug(&bootstrap.org_slug)
        .map_err(|e| anyhow::anyhow!("WISP_ORG: {e:?}"))?;
    let (password, generated) = match &bootstrap.admin_password {
        Some(password) => (password.clone(), false),
        None => (tokens::random_hex_32()[..24].to_owned(), true),
    };
    let to_hash = password.clone();
    let hash = tokio::task::spawn_blocking(move || password::hash(&to_hash))
        .await?
        .map_err(|e| anyhow::anyhow!("failed to hash the admin password: {e}"))?;
    let password_file = data_dir.join(ADMIN_PASSWORD_FILE);
    let created = db
        .transaction(async |tx| -> anyhow::Result<Option<orgs::Org>> {
            if users::any_exist(tx).await? {
                return Ok(None); // Another machine sharing the database got there first.
            }
            let user_id = users::insert(tx, &bootstrap.admin_email, &hash).await?;
            if generated {
                users::require_password_change(tx, &user_id).await?;
            }
            let details = json!({ "owner": bootstrap.admin_email, "first_start": true });
            let slug = &bootstrap.org_slug;
            let meta = RequestMeta::default();
            let org =
                crate::domain::orgs::create(tx, "system", &meta, slug, slug, &user_id, details)
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!("creating organisation {slug:?}: {}", e.message())
                    })?;
            // The operator's own organisation is not held to the Free plan.
            plans::assign(tx, &org.id, "enterprise").await?;
            // Written before the commit: if it fails, no admin exists whose password nobody has.
            let password_file = data_dir.join(ADMIN_PASSWORD_FILE);
            if generated {
                write_secret_file(&password_file, &password)?;
            }
            Ok(Some(org))
        })
        .await?;
    let Some(org) = created else {
        return Ok(());
    };
    tracing::info!(email = %bootstrap.admin_email, org = %org.slug, "created the first admin and organisation");
    if generated {
        announce(&format!(
            "First start: created admin {} in organisation {:?}.\n{ADMIN_PASSWORD_ANNOUNCEMENT}{}\n\
             Sign in with it (the dashboard at `/`, or `wisp login --email {}`); you will have to choose a new password \
             (`wisp password change`) before doing anything else.",
            bootstrap.admin_email,
            org.slug,
            password_file.display(),
            bootstrap.admin_email,
        ));
    }
    Ok(())
}

/// Writes `secret` to a new file readable by its owner only, replacing a stale one.
fn write_secret_file(path: &Path, secret: &str) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("failed to replace {}", path.display())),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    file.write_all(format!("{secret}\n").as_bytes())?;
    file.sync_all()?;
    Ok(())
}
