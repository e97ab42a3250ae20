//! The serving pipeline: one inference call, whichever protocol carried it.
//!
//! Every protocol (wisp's predict, Open Inference Protocol V2, KServe V1) drives the same
//! steps in the same order, through a [`Codec`] that knows only its wire format:
//!
//! 1. [`Pipeline::admit`]: the key's and the organisation's rate limits, before a byte of
//!    the body is read; the plan read here is the one the whole call runs under.
//! 2. The organisation's concurrency slot ([`Pipeline::call`]), before any decoding.
//! 3. [`Codec::parse`]: the body's structure; it may name a version or alias.
//! 4. [`Pipeline::resolve`]: model, deployment, traffic split, shadow.
//! 5. [`Codec::inputs`]: tensors, checked against the resolved version's signature.
//! 6. [`Pipeline::invoke`]: the result cache, metering (quota, durable usage event), the
//!    runtime under the plan's limits, traffic statistics, the shadow copy.
//! 7. [`Codec::encode`].
//!
//! Batch rows and shadow copies enter at [`Pipeline::resolve`] and [`Pipeline::run`]: they
//! have no body to admit and no cache to consult. Nothing here knows HTTP: the edge turns
//! headers into [`CallOptions`] and errors into its wire format.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wisp_host::{NamedTensor, OnnxBackend, Prediction, UsageRecord};

use crate::Serving;
use crate::access::{OrgAccess, Principal};
use crate::admission::{Admission, Caller as RateCaller};
use crate::deployments::Status;
use crate::drift::DriftTap;
use crate::error::{Error, ErrorCode, Result};
use crate::fair_share::Slot;
use crate::inspect::ModelSignature;
use crate::lookups::Lookups;
use crate::metering::compute::compute_units;
use crate::metering::{CallSubject, Caller, Metering, Variant};
use crate::metrics::{Protocol, Queue, ServingMetrics, VersionSeries};
use crate::plans::Plan;
use crate::prediction_log::{self, PredictionLog};
use crate::registry::{Model, ModelVersion};
use crate::result_cache::{CacheKey, CacheStatus, ResultCache};
use crate::traffic::{self, Role, TrafficStats};

/// Bodies above this many bytes are decoded and encoded on the blocking pool.
const LARGE_BODY: usize = 64 << 10;

/// The services an inference call uses; cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    pub lookups: Arc<Lookups>,
    pub admission: Arc<Admission>,
    pub metering: Metering,
    pub result_cache: Arc<ResultCache>,
    pub traffic: Arc<TrafficStats>,
    pub serving: Serving,
    /// Prometheus metrics of every call.
    pub metrics: Arc<ServingMetrics>,
    /// What each call answered, per prediction id, for ground-truth feedback.
    pub predictions: PredictionLog,
    /// Sampled calls' tensors, handed to drift profiling off the request path.
    pub drift: DriftTap,
}

/// What a caller asks of a call besides its body (HTTP headers, at the edge).
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// Keeps the caller on one variant of a traffic split.
    pub route_key: Option<String>,
    /// Skip the result cache (`Cache-Control: no-cache`).
    pub no_cache: bool,
    /// The caller's segment attribute, kept with the prediction (`x-wisp-segment`).
    pub segment: Option<String>,
}

/// Which version of a model a call names; neither means the deployment decides.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    pub version: Option<i64>,
    pub alias: Option<String>,
}

/// One inference call, as its protocol's edge read it.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    pub access: &'a OrgAccess,
    /// The model's name.
    pub model: &'a str,
    /// The version the URL names, if the protocol puts it there.
    pub path: Selector,
    pub options: CallOptions,
}

/// A call that passed its rate limits, with the plan it runs under.
#[derive(Debug, Clone)]
pub struct Admitted {
    plan: Plan,
    /// When admission started: a call's latency counts from here.
    started: Instant,
}

/// The model and version that answered, for the encoder.
#[derive(Debug, Clone)]
pub struct Served {
    pub model: String,
    pub version: i64,
}

/// One protocol's wire format.
pub trait Codec: Clone + Send + Sync + 'static {
    /// The protocol, for metrics.
    const PROTOCOL: Protocol;

    /// The body, parsed but not yet checked against a model.
    type Request: Send + 'static;
    /// What the encoder needs from the request (an id, an output selection).
    type Carry: Send + 'static;
    type Response: Send + 'static;

    /// Parses the body's structure.
    fn parse(&self, body: Bytes) -> Result<Self::Request>;

    /// The version or alias the body names, if the protocol lets it name one.
    fn selector(&self, _request: &Self::Request) -> Selector {
        Selector::default()
    }

    /// The segment attribute the body names, if the protocol lets it name one.
    fn segment(&self, _request: &Self::Request) -> Result<Option<String>> {
        Ok(None)
    }

    /// The input tensors, checked against the signature of the version that runs.
    fn inputs(
        &self,
        request: Self::Request,
        signature: &ModelSignature,
    ) -> Result<(Vec<NamedTensor>, Self::Carry)>;

    /// The protocol's answer.
    fn encode(
        &self,
        served: Served,
        invoked: Invoked,
        carry: Self::Carry,
    ) -> Result<Self::Response>;
}

/// A deployed model version resolved for a call, with the plan it runs under.
#[derive(Debug, Clone)]
pub struct Target {
    pub org_id: String,
    pub model: Model,
    pub version: ModelVersion,
    pub plan: Plan,
    /// The deployment's result-cache TTL in seconds (0: no caching).
    pub cache_ttl_secs: u32,
    /// The shadow version this call is mirrored to, if any.
    pub shadow: Option<ModelVersion>,
    /// Which variant of the deployment serves the call: metering records it, and does not
    /// bill shadow calls.
    pub variant: Variant,
    /// The engine the deployment runs its graphs on (every variant and the shadow alike).
    pub backend: OnnxBackend,
}

impl Target {
    /// What metering records the call against.
    fn subject(&self) -> CallSubject<'_> {
        CallSubject {
            org_id: &self.org_id,
            model_id: &self.model.id,
            model_name: &self.model.name,
            version: self.version.version,
            variant: self.variant,
        }
    }
}

/// The outcome of [`Pipeline::invoke`]: outputs, what producing them cost (nothing on a
/// cache hit), and whether the cache answered.
#[derive(Debug, Clone)]
pub struct Invoked {
    pub outputs: Arc<Vec<NamedTensor>>,
    pub usage: UsageRecord,
    pub cache: CacheStatus,
}

impl Pipeline {
    /// Step 1: the caller's key and organisation rate limits. The edge reads the body only
    /// after this, so a caller over its rate cannot make the server buffer bodies.
    pub async fn admit(&self, access: &OrgAccess) -> Result<Admitted> {
        let started = Instant::now();
        let admitted: Result<Admitted> = async {
            let plan = self.lookups.plan(&access.org.id).await?;
            let caller = RateCaller {
                org_id: &access.org.id,
                key_id: access.principal.api_key_id(),
            };
            self.admission.check_rate(caller, &plan)?;
            Ok(Admitted { plan, started })
        }
        .await;
        if let Err(error) = &admitted {
            self.metrics
                .record_error(&access.org.slug, None, error.code());
        }
        admitted
    }

    /// Steps 2–7 for one admitted call, recorded in the metrics (and the request's span:
    /// `org`, `model`, `version`).
    pub async fn call<C: Codec>(
        &self,
        admitted: Admitted,
        call: Call<'_>,
        codec: C,
        body: Bytes,
    ) -> Result<(C::Response, CacheStatus)> {
        let started = admitted.started;
        let org = &call.access.org.slug;
        tracing::Span::current().record("org", org.as_str());
        let mut series = None;
        let result = self
            .call_steps(admitted, call, codec, body, &mut series)
            .await;
        if self.metrics.recording() {
            let series = series.unwrap_or_else(|| self.metrics.unresolved(org));
            series.record_call(C::PROTOCOL, result.is_ok(), started.elapsed());
        }
        if let Err(error) = &result {
            self.metrics
                .record_error(org, Some(C::PROTOCOL), error.code());
        }
        result
    }

    async fn call_steps<C: Codec>(
        &self,
        admitted: Admitted,
        call: Call<'_>,
        codec: C,
        body: Bytes,
        series: &mut Option<Arc<VersionSeries>>,
    ) -> Result<(C::Response, CacheStatus)> {
        let Admitted { plan, .. } = admitted;
        let Call {
            access,
            model: name,
            path,
            mut options,
        } = call;
        let org_id = &access.org.id;
        let waiting = Instant::now();
        let slot = self
            .admission
            .enter(org_id, &plan, plan.tenant_limits().deadline)
            .await?;
        self.metrics.record_wait(Queue::Org, waiting.elapsed());
        let large = is_large(body.len());
        let parser = codec.clone();
        let request = off_executor(large, move || parser.parse(body)).await?;
        if options.segment.is_none() {
            options.segment = codec.segment(&request)?;
        }
        check_segment(options.segment.as_deref())?;
        let named = codec.selector(&request);
        let selector = Selector {
            version: path.version.or(named.version),
            alias: path.alias.or(named.alias),
        };
        let target = self
            .resolve(org_id, name, &selector, options.route_key.as_deref(), plan)
            .await?;
        let span = tracing::Span::current();
        span.record("model", name);
        span.record("version", target.version.version);
        if self.metrics.recording() {
            *series = Some(self.metrics.version(
                &access.org.slug,
                &target.model.id,
                &target.model.name,
                target.version.version,
            ));
        }
        let signature = target.version.signature.clone();
        let decoder = codec.clone();
        let (inputs, carry) =
            off_executor(large, move || decoder.inputs(request, &signature)).await?;
        let invoked = self
            .invoke(&access.principal, &target, inputs, &options, slot)
            .await?;
        let cache = invoked.cache;
        let large = is_large(invoked.usage.output_bytes as usize);
        let served = Served {
            model: target.model.name,
            version: target.version.version,
        };
        let response = off_executor(large, move || codec.encode(served, invoked, carry)).await?;
        Ok((response, cache))
    }

    /// Step 4: which version of the deployed model `name` a call runs: the selector's
    /// version or alias if given; else the deployed version, or with a traffic split a
    /// variant picked by weight (always the same one for the same `route_key`), possibly
    /// mirrored to the shadow version.
    pub async fn resolve(
        &self,
        org_id: &str,
        name: &str,
        selector: &Selector,
        route_key: Option<&str>,
        plan: Plan,
    ) -> Result<Target> {
        let explicit = selector.version.is_some() || selector.alias.is_some();
        let lookups = &self.lookups;
        let model = find_model(lookups, org_id, name).await?;
        let deployment = lookups.deployment(&model.id).await?.ok_or_else(|| {
            Error::new(
                ErrorCode::NotDeployed,
                format!("model {name:?} is not deployed"),
            )
        })?;
        let mut variant = Variant::Primary;
        let version = match select(lookups, &model, selector).await? {
            Some(version) => version,
            None => {
                if deployment.status == Status::Failed {
                    let reason = deployment
                        .failure
                        .map(|f| format!("{}: {}", f.code, f.message))
                        .unwrap_or_default();
                    return Err(Error::new(
                        ErrorCode::DeploymentFailed,
                        format!(
                            "the deployment of version {} failed ({reason})",
                            deployment.version
                        ),
                    ));
                }
                let routed = match &deployment.traffic {
                    Some(split) => traffic::pick(split, route_key),
                    None => deployment.version,
                };
                if routed != deployment.version {
                    variant = Variant::Canary;
                }
                version_of(lookups, &model, routed).await?
            }
        };
        let shadow = match deployment.shadow {
            Some(shadow) if !explicit && traffic::mirrored(&shadow, route_key) => {
                Some(version_of(lookups, &model, shadow.version).await?)
            }
            _ => None,
        };
        Ok(Target {
            org_id: org_id.to_owned(),
            model,
            version,
            plan,
            cache_ttl_secs: deployment.cache_ttl_secs,
            shadow,
            variant,
            backend: deployment.backend.onnx(),
        })
    }

    /// [`Pipeline::resolve`] for work that was not admitted as a request (batch jobs, at
    /// each chunk): under the organisation's current plan, without a route key.
    pub async fn target(&self, org_id: &str, name: &str, selector: &Selector) -> Result<Target> {
        let plan = self.lookups.plan(org_id).await?;
        self.resolve(org_id, name, selector, None, plan).await
    }

    /// Step 6: the deployment's result cache (unless `options.no_cache`), then the call
    /// itself in the organisation's concurrency `slot`, around [`Pipeline::run`].
    pub async fn invoke(
        &self,
        caller: &Principal,
        target: &Target,
        inputs: Vec<NamedTensor>,
        options: &CallOptions,
        _slot: Slot,
    ) -> Result<Invoked> {
        let ttl = Duration::from_secs(u64::from(target.cache_ttl_secs));
        let key = (!options.no_cache && !ttl.is_zero()).then(|| {
            CacheKey::new(
                &target.org_id,
                &target.model.id,
                target.version.version,
                &inputs,
            )
        });
        if let Some(key) = &key
            && let Some(outputs) = self.result_cache.get(key).await
        {
            // A hit is a billed call that used no compute.
            let call = self
                .metering
                .admit(Caller::from(caller), target.subject(), &target.plan)
                .await?;
            let id = call.id().to_owned();
            call.finish(Ok(()), None, true).await?;
            self.metrics.record_cache(true);
            self.note_answer(target, &id, &outputs, options.segment.as_deref());
            if self.drift.sampled(&target.model.id) {
                let copy = (inputs.clone(), outputs.to_vec());
                self.drift
                    .observe(&target.org_id, &target.model.id, copy.0, copy.1);
            }
            let output_bytes = outputs.iter().map(|o| o.tensor.data.len() as u64).sum();
            let usage = UsageRecord {
                input_bytes: inputs.iter().map(|i| i.tensor.data.len() as u64).sum(),
                output_bytes,
                component_warm: true,
                graph_warm: true,
                ..UsageRecord::default()
            };
            return Ok(Invoked {
                outputs,
                usage,
                cache: CacheStatus::Hit,
            });
        }
        if let Some(shadow) = &target.shadow {
            self.mirror(caller, target, shadow, inputs.clone());
        }
        let started = Instant::now();
        let result = self
            .run_noted(caller, target, inputs, options.segment.as_deref())
            .await
            .map(|(prediction, _)| prediction);
        self.traffic.record(
            &target.model.id,
            target.version.version,
            Role::Live,
            result.is_ok(),
            started.elapsed(),
        );
        let prediction = result?;
        let cache = match key {
            Some(key) => {
                self.result_cache
                    .put(key, prediction.outputs.clone(), ttl)
                    .await;
                self.metrics.record_cache(false);
                CacheStatus::Miss
            }
            None => CacheStatus::Bypass,
        };
        Ok(Invoked {
            outputs: Arc::new(prediction.outputs),
            usage: prediction.usage,
            cache,
        })
    }

    /// Runs a copy of the call on the shadow version in the background; its outcome only
    /// counts in the shadow's statistics, never in the caller's response.
    fn mirror(
        &self,
        caller: &Principal,
        target: &Target,
        shadow: &ModelVersion,
        inputs: Vec<NamedTensor>,
    ) {
        let mut copy = target.clone();
        copy.version = shadow.clone();
        copy.shadow = None;
        copy.variant = Variant::Shadow;
        let (pipeline, caller) = (self.clone(), caller.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let result = pipeline.run(&caller, &copy, inputs).await;
            if let Err(error) = &result {
                tracing::debug!(model = %copy.model.name, version = copy.version.version, ?error, "shadow call failed");
            }
            pipeline.traffic.record(
                &copy.model.id,
                copy.version.version,
                Role::Shadow,
                result.is_ok(),
                started.elapsed(),
            );
        });
    }

    /// Runs one call of a resolved target for `caller`, metered: the plan's calls quota
    /// admits it (or it fails with `quota_exceeded`), and its usage event, success or
    /// failure, is durable before this returns. Every call, batch rows and shadow copies
    /// included, goes through here.
    pub async fn run(
        &self,
        caller: &Principal,
        target: &Target,
        inputs: Vec<NamedTensor>,
    ) -> Result<Prediction> {
        self.run_noted(caller, target, inputs, None)
            .await
            .map(|(prediction, _)| prediction)
    }

    /// [`Pipeline::run`], also returning the call's prediction id (its usage event id);
    /// what it answered goes to the prediction log with `segment` (not for shadow copies,
    /// whose ids nobody sees).
    pub async fn run_noted(
        &self,
        caller: &Principal,
        target: &Target,
        inputs: Vec<NamedTensor>,
        segment: Option<&str>,
    ) -> Result<(Prediction, String)> {
        let call = self
            .metering
            .admit(Caller::from(caller), target.subject(), &target.plan)
            .await?;
        // Shadow copies are not the model's traffic; a sampled call's tensors are copied
        // before they move into the runtime.
        let observed = (target.variant != Variant::Shadow && self.drift.sampled(&target.model.id))
            .then(|| inputs.clone());
        let result = self.execute(target, inputs).await;
        if let (Some(inputs), Ok(prediction)) = (observed, &result) {
            let outputs = prediction.outputs.clone();
            self.drift
                .observe(&target.org_id, &target.model.id, inputs, outputs);
        }
        let (outcome, usage) = match &result {
            Ok(prediction) => (Ok(()), Some(&prediction.usage)),
            Err((error, usage)) => (Err(error.code()), usage.as_ref()),
        };
        if let Some(usage) = usage {
            self.record_run(target, usage).await;
        }
        let id = call.id().to_owned();
        call.finish(outcome, usage, false).await?;
        let prediction = result.map_err(|(error, _)| error)?;
        self.note_answer(target, &id, &prediction.outputs, segment);
        Ok((prediction, id))
    }

    /// Hands what a call answered to the prediction log, if it is one row of a classifier
    /// or a regressor (cheap: the first elements of the outputs are read).
    fn note_answer(
        &self,
        target: &Target,
        id: &str,
        outputs: &[NamedTensor],
        segment: Option<&str>,
    ) {
        if target.variant == Variant::Shadow {
            return;
        }
        let Some((answer, score)) = crate::answers::answer_of(&target.version.signature, outputs)
        else {
            return;
        };
        self.predictions
            .record(crate::domain::ground_truth::PredictionRecord {
                id: id.to_owned(),
                org_id: target.org_id.clone(),
                model_id: target.model.id.clone(),
                version: target.version.version,
                at_ms: prediction_log::now_ms(),
                answer,
                score,
                segment: segment.map(str::to_owned),
            });
    }

    /// Records a model run in the metrics: its waits, cold load, time, fuel and compute.
    async fn record_run(&self, target: &Target, usage: &UsageRecord) {
        let metrics = &self.metrics;
        if !metrics.recording() {
            return;
        }
        let (model, version) = (&target.model, target.version.version);
        let series = match metrics.cached(&model.id, version) {
            Some(series) => series,
            // First seen outside a request (a batch row, a shadow copy): name its org.
            None => {
                let org = match self.lookups.org_by_id(&target.org_id).await {
                    Ok(Some(org)) => org.slug,
                    _ => target.org_id.clone(),
                };
                metrics.version(&org, &model.id, &model.name, version)
            }
        };
        metrics.record_wait(Queue::Runtime, usage.queue_time);
        if !(usage.component_warm && usage.graph_warm) {
            metrics.record_cold_load(usage.load_time);
        }
        let running = usage
            .wall_time
            .saturating_sub(usage.load_time)
            .saturating_sub(usage.queue_time);
        let inference_us = u64::try_from(usage.inference_time.as_micros()).unwrap_or(u64::MAX);
        series.record_run(
            running,
            usage.fuel_consumed,
            compute_units(usage.fuel_consumed, inference_us),
        );
    }

    /// Runs the model in the runtime under the plan's limits. The plan's compute budget
    /// covers the Wasm code (as fuel, stopped exactly) and the inference backend together
    /// (checked when the backend returns; the deadline bounds it). A failure keeps the
    /// usage when the model ran.
    async fn execute(
        &self,
        target: &Target,
        inputs: Vec<NamedTensor>,
    ) -> Result<Prediction, (Error, Option<UsageRecord>)> {
        let model_ref = self
            .serving
            .model_ref(&target.org_id, &target.model.name, &target.version);
        let prediction = self
            .serving
            .runtime()
            .predict_on(
                &model_ref,
                target.backend,
                &target.plan.tenant_limits(),
                inputs,
            )
            .await
            .map_err(|error| (Error::from(error), None))?;
        let usage = &prediction.usage;
        let inference_us = u64::try_from(usage.inference_time.as_micros()).unwrap_or(u64::MAX);
        let used = compute_units(usage.fuel_consumed, inference_us);
        let budget = target.plan.compute_units_per_call;
        if used > budget {
            let error = Error::new(
                ErrorCode::FuelExhausted,
                format!(
                    "compute budget exhausted: the call used {used} compute units, the plan allows {budget}"
                ),
            );
            return Err((error, Some(prediction.usage)));
        }
        Ok(prediction)
    }

    /// Whether the model `name` (at `version`, if given) serves calls now: its deployment
    /// is ready. `Err` if the model or version does not exist; `Ok(Err(why))` if it is not
    /// ready. Every protocol's readiness check goes through here.
    pub async fn readiness(
        &self,
        org_id: &str,
        name: &str,
        version: Option<i64>,
    ) -> Result<Result<(), String>> {
        let lookups = &self.lookups;
        let model = find_model(lookups, org_id, name).await?;
        if let Some(number) = version {
            version_of(lookups, &model, number).await?;
        }
        Ok(match lookups.deployment(&model.id).await? {
            None => Err(format!("model {name:?} is not deployed")),
            Some(deployment) => match deployment.status {
                Status::Ready => Ok(()),
                Status::Pending => Err(format!("model {name:?} is still being deployed")),
                Status::Failed => Err(format!("the deployment of model {name:?} failed")),
            },
        })
    }
}

/// The version a description of the model is about: the one the selector names, else
/// the deployed one, else the latest.
pub async fn described_version(
    lookups: &Lookups,
    model: &Model,
    selector: &Selector,
) -> Result<ModelVersion> {
    if let Some(version) = select(lookups, model, selector).await? {
        return Ok(version);
    }
    let number = match lookups.deployment(&model.id).await? {
        Some(deployment) => deployment.version,
        None => model
            .latest_version
            .ok_or_else(|| Error::not_found("version"))?,
    };
    version_of(lookups, model, number).await
}

/// The version a request names explicitly, if it names one.
async fn select(
    lookups: &Lookups,
    model: &Model,
    selector: &Selector,
) -> Result<Option<ModelVersion>> {
    let number = match (selector.version, selector.alias.as_deref()) {
        (None, None) => return Ok(None),
        (Some(version), None) => version,
        (None, Some(alias)) => lookups
            .alias_target(&model.id, alias)
            .await?
            .ok_or_else(|| Error::not_found("alias"))?,
        (Some(_), Some(_)) => {
            return Err(Error::invalid("give `version` or `alias`, not both"));
        }
    };
    version_of(lookups, model, number).await.map(Some)
}

async fn version_of(lookups: &Lookups, model: &Model, number: i64) -> Result<ModelVersion> {
    lookups
        .version(&model.id, number)
        .await?
        .ok_or_else(|| Error::not_found("version"))
}

/// A model of the organisation by name, from the memoised rows.
pub async fn find_model(lookups: &Lookups, org_id: &str, name: &str) -> Result<Model> {
    lookups
        .model(org_id, name)
        .await?
        .ok_or_else(|| Error::not_found("model"))
}

/// A segment attribute is 1 to [`MAX_SEGMENT_BYTES`] bytes.
///
/// [`MAX_SEGMENT_BYTES`]: crate::domain::ground_truth::MAX_SEGMENT_BYTES
pub fn check_segment(segment: Option<&str>) -> Result<()> {
    use crate::domain::ground_truth::MAX_SEGMENT_BYTES;
    match segment {
        Some(s) if s.is_empty() || s.len() > MAX_SEGMENT_BYTES => Err(Error::invalid(format!(
            "a segment is 1 to {MAX_SEGMENT_BYTES} bytes"
        ))),
        _ => Ok(()),
    }
}

/// Whether decoding or encoding a body of `bytes` belongs on the blocking pool.
pub fn is_large(bytes: usize) -> bool {
    bytes > LARGE_BODY
}

/// Runs CPU-heavy request work (decoding and encoding `large` tensors) on the blocking
/// pool, so it never stalls the executor threads every other request needs; small work
/// runs in place, where the hop would cost more than it saves.
pub async fn off_executor<T, E>(
    large: bool,
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: From<Error> + Send + 'static,
{
    if !large {
        return work();
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| E::from(Error::internal(e)))?
}
