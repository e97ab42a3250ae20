//! The REST API: shared state, the router, and the extractors every handler uses.
//!
//! Each submodule owns one resource and exposes `routes() -> OpenApiRouter<AppState>`;
//! [`app`] merges them, adds the middleware (request ids, tracing) and serves the OpenAPI
//! document generated from the handlers' annotations. To add a resource (deployments,
//! predict…), write a module in the same shape and merge its routes in [`routes`].
//!
//! Besides wisp's own API under `/v1/orgs/{org}/…`, the standard inference protocols live
//! at their standard paths: Open Inference Protocol V2 under `/v2` ([`v2`]) and KServe V1
//! under `/v1/models` ([`kserve_v1`]); the MLflow REST API under `/api/2.0/mlflow` and its
//! artifact proxy under `/api/2.0/mlflow-artifacts` ([`mlflow`]).

mod alert_webhooks;
pub(crate) mod alerts;
pub(crate) mod analytics;
mod audit_log;
pub(crate) mod auth;
pub(crate) mod batch;
pub(crate) mod deployments;
mod docs;
pub(crate) mod download;
pub(crate) mod drift;
mod error_response;
pub mod extract;
pub(crate) mod feedback;
mod health;
mod idempotency;
pub(crate) mod invitations;
pub(crate) mod keys;
mod kserve_v1;
pub(crate) mod members;
mod metering_headers;
pub mod metrics;
mod mlflow;
pub(crate) mod models;
pub mod operator;
mod orgs;
mod platform;
pub(crate) mod predict;
mod request_meta;
pub use request_meta::Meta;
pub(crate) mod upload;
pub(crate) mod usage;
mod v2;

use std::sync::Arc;

use crate::serving::pipeline::Pipeline;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::extract::{FromRef, FromRequest};
use axum::http::HeaderName;
use axum::routing::get;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::auth::password::HashingPool;
use crate::auth::throttle::LoginThrottle;
use crate::batch::BatchJobs;
use crate::blob::{ObjectStore, Staging};
use crate::client_ip::ClientIpPolicy;
use crate::db::Db;
use crate::error::{ApiError, ErrorCode};
use crate::inspect::ModelInspector;
use crate::lookups::Lookups;
use crate::metering::Metering;
use crate::serving::Serving;
use crate::serving::admission::Admission;
use crate::serving::result_cache::ResultCache;
use crate::serving::traffic::TrafficStats;

pub use crate::auth::tokens::JwtKeys;
pub use extract::{Authorized, CredentialOrg, CurrentSession, CurrentUser};
pub use operator::PlatformOperator;
pub use orgs::validate_slug as validate_org_slug;

/// The header carrying the request id (set if absent, echoed in the response).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Tunables of the API that come from configuration.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Largest accepted model upload, in bytes.
    pub max_upload_bytes: u64,
    /// Lifetime of refresh tokens, in seconds.
    pub refresh_token_ttl_secs: i64,
    /// Lower-cased emails of the platform operators (`platform.operators`).
    pub platform_operators: Vec<String>,
    /// `Idempotency-Key` TTL and replay bound.
    pub idempotency: crate::metering::idempotency::IdempotencySettings,
    /// Largest JSON read on the streaming routes (upload metadata, batch job bodies).
    pub max_json_body_bytes: u64,
    /// Lifetime of invitation tokens, in seconds.
    pub invitation_ttl_secs: i64,
    /// Which peers may name the client's address (`server.trusted_proxies`).
    pub client_ip: Arc<ClientIpPolicy>,
    /// Log a line per request (`log.requests`).
    pub log_requests: bool,
    /// How long minute analytics are kept (`metering.analytics_minute_retention_days`).
    pub analytics_minute_retention: std::time::Duration,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            max_upload_bytes: 512 * 1024 * 1024,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            platform_operators: Vec::new(),
            idempotency: Default::default(),
            max_json_body_bytes: crate::config::default_max_json_body(),
            invitation_ttl_secs: 7 * 24 * 3600,
            client_ip: Arc::default(),
            log_requests: false,
            analytics_minute_retention: std::time::Duration::from_secs(14 * 24 * 3600),
        }
    }
}

/// Everything a handler can reach: per-process state, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: Arc<Db>,
    /// The database rows every request reads, memoised.
    pub lookups: Arc<Lookups>,
    pub blobs: Arc<dyn ObjectStore>,
    pub staging: Staging,
    pub jwt: Arc<JwtKeys>,
    /// Validates uploads and extracts their signature (the runtime's backend in production).
    pub inspector: Arc<dyn ModelInspector>,
    /// The inference runtime.
    pub serving: Serving,
    /// Usage events, quotas and invoices.
    pub metering: Metering,
    /// Login attempts per account and per address.
    pub login_throttle: Arc<LoginThrottle>,
    /// The cap on concurrent argon2 work.
    pub password_hashing: Arc<HashingPool>,
    /// Inference rate limits and per-organisation concurrency, from each plan.
    pub admission: Arc<Admission>,
    /// Results of identical inference requests, per organisation and version.
    pub result_cache: Arc<ResultCache>,
    /// Per-variant calls, errors and latencies of every deployment.
    pub traffic: Arc<TrafficStats>,
    /// Batch jobs running in this process.
    pub batch: BatchJobs,
    /// What each call answered, per prediction id (ground-truth feedback).
    pub predictions: crate::serving::prediction_log::PredictionLog,
    /// Alert rule evaluation and webhook delivery.
    pub alerts: crate::alert_delivery::Alerts,
    pub settings: ApiSettings,
    /// The Prometheus registry and the serving metrics.
    pub telemetry: Arc<crate::telemetry::Telemetry>,
    /// Drift profiling of sampled calls (off unless `drift.enabled`).
    pub drift: crate::serving::drift::DriftTap,
}

impl FromRef<AppState> for Pipeline {
    fn from_ref(state: &AppState) -> Self {
        Pipeline {
            lookups: state.lookups.clone(),
            admission: state.admission.clone(),
            metering: state.metering.clone(),
            result_cache: state.result_cache.clone(),
            traffic: state.traffic.clone(),
            serving: state.serving.clone(),
            metrics: state.telemetry.serving().clone(),
            predictions: state.predictions.clone(),
            drift: state.drift.clone(),
        }
    }
}

impl FromRef<AppState> for crate::batch::runner::RunnerState {
    fn from_ref(state: &AppState) -> Self {
        Self {
            db: state.db.clone(),
            blobs: state.blobs.clone(),
            staging: state.staging.clone(),
            batch: state.batch.clone(),
            pipeline: Pipeline::from_ref(state),
        }
    }
}

/// Request bodies: like `axum::Json`, but rejections are [`ApiError`]s with stable codes.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// Path parameters with [`ApiError`] rejections.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// Query parameters with [`ApiError`] rejections.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// The OpenAPI document's fixed parts; paths and schemas come from the routes.
#[derive(OpenApi)]
#[openapi(
    info(title = "wisp", description = "Serverless scale-to-zero ML inference: organisations, auth, model registry, deployments, predictions, batch jobs, audit."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(crate::error::ErrorBody))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// All API routes with their OpenAPI descriptions.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(auth::routes())
        .merge(orgs::routes())
        .merge(members::routes())
        .merge(invitations::routes())
        .merge(keys::routes())
        .merge(models::routes())
        .merge(upload::routes())
        .merge(deployments::routes())
        .merge(predict::routes())
        .merge(batch::routes())
        .merge(audit_log::routes())
        .merge(usage::routes())
        .merge(v2::routes())
        .merge(kserve_v1::routes())
        .merge(platform::routes())
        .merge(analytics::routes())
        .merge(feedback::routes())
        .merge(drift::routes())
        .merge(alerts::routes())
        .merge(alert_webhooks::routes())
}

/// The complete HTTP application: the API and `pages` (the dashboard, which lives above
/// the API and is passed in so that the API does not depend on it; see [`crate::app`]).
pub fn app_with(state: AppState, pages: Router<AppState>) -> Router {
    let (router, openapi) = routes().split_for_parts();
    let request_id = HeaderName::from_static(REQUEST_ID_HEADER);
    let client_ip = Arc::clone(&state.settings.client_ip);
    let log_requests = state.settings.log_requests;
    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &axum::http::Request<axum::body::Body>| {
            let id = request
                .headers()
                .get(REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            // `org`, `model` and `version` are recorded by the serving pipeline.
            tracing::info_span!(
                "request",
                method = %request.method(),
                uri = %request.uri(),
                request_id = id,
                org = tracing::field::Empty,
                model = tracing::field::Empty,
                version = tracing::field::Empty,
            )
        })
        .on_response(DefaultOnResponse::new().level(if log_requests {
            tracing::Level::INFO
        } else {
            tracing::Level::DEBUG
        }));
    router
        .merge(docs::routes(openapi))
        .merge(mlflow::routes())
        .merge(pages)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::main_port))
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such endpoint") })
        .with_state(state)
        .layer(axum::Extension(client_ip))
        .layer(axum::middleware::from_fn(metering_headers::layer))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(trace)
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}
