//! Alerting's background work in `wisp serve`: evaluating the rules every
//! `alerts.evaluation_interval`, and sending the queued webhook deliveries (signed, with
//! exponential backoff, at most `alerts.max_attempts` attempts) every
//! `alerts.delivery_interval`. The queue is in the database, so attempts survive a
//! restart; a delivery is claimed with a lease before it is sent.
//!
//! Tests drive both by hand ([`Alerts::evaluate_at`], [`Alerts::deliver_due`]) at times
//! of their choosing, with long intervals so that the loops stay out of the way.

pub mod sender;

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::db::{self, Db};
use crate::domain::alerts::MetricSources;
use crate::domain::alerts::evaluate::{self, Evaluated, EvaluationSettings};
use crate::domain::alerts::targets::TargetPolicy;
use crate::error::DomainResult;
use sender::Sender;
use wisp_core::alerts::deliveries::{self, Attempt, DeliveryStatus, Outgoing};
use wisp_core::alerts::webhooks;

/// `[alerts]` in the configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// How often every enabled rule is evaluated.
    #[serde(default = "default_evaluation_interval", with = "humantime_serde")]
    pub evaluation_interval: Duration,
    /// How often due webhook deliveries are sent.
    #[serde(default = "default_delivery_interval", with = "humantime_serde")]
    pub delivery_interval: Duration,
    /// Allow webhook URLs on loopback, private and link-local addresses.
    #[serde(default)]
    pub allow_private_targets: bool,
    /// Time allowed for one webhook request (connect, send, answer).
    #[serde(default = "default_delivery_timeout", with = "humantime_serde")]
    pub delivery_timeout: Duration,
    /// Attempts of a delivery before it is `failed`.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Wait before the first retry; each next one waits twice as long, at most an hour.
    #[serde(default = "default_retry_base", with = "humantime_serde")]
    pub retry_base: Duration,
    /// wisp's public base URL (e.g. `https://wisp.example.com`), for the link in
    /// notifications; without it the link is a path.
    #[serde(default)]
    pub public_url: Option<String>,
}

fn default_evaluation_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_delivery_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_delivery_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_attempts() -> u32 {
    8
}
fn default_retry_base() -> Duration {
    Duration::from_secs(30)
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            evaluation_interval: default_evaluation_interval(),
            delivery_interval: default_delivery_interval(),
            allow_private_targets: false,
            delivery_timeout: default_delivery_timeout(),
            max_attempts: default_max_attempts(),
            retry_base: default_retry_base(),
            public_url: None,
        }
    }
}

impl AlertsConfig {
    /// Checks the values, as `Config::validate` does for the rest.
    pub fn validate(&self) -> Result<(), String> {
        if self.evaluation_interval.is_zero() || self.delivery_interval.is_zero() {
            return Err(
                "alerts.evaluation_interval and alerts.delivery_interval must be positive".into(),
            );
        }
        if self.delivery_timeout.is_zero() || self.delivery_timeout > Duration::from_secs(60) {
            return Err("alerts.delivery_timeout must be between 1 ms and 60 s".into());
        }
        if !(1..=50).contains(&self.max_attempts) {
            return Err("alerts.max_attempts must be from 1 to 50".into());
        }
        if self.retry_base.is_zero() {
            return Err("alerts.retry_base must be positive".into());
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err("alerts.public_url must be an http(s) URL".into());
        }
        Ok(())
    }

    pub fn target_policy(&self) -> TargetPolicy {
        TargetPolicy {
            allow_private: self.allow_private_targets,
        }
    }
}

/// Most deliveries attempted per pass.
const DELIVERY_BATCH: u32 = 32;
/// Longest wait between two attempts.
const MAX_BACKOFF_SECS: i64 = 3_600;

/// The process's alerting: cheap to clone.
#[derive(Clone)]
pub struct Alerts {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<Db>,
    sources: MetricSources,
    settings: EvaluationSettings,
    sender: Sender,
    config: AlertsConfig,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Alerts {
    /// Alerting over `db` with every metric wisp measures: metering's and ground truth's
    /// (the domain's defaults) and drift's (the serving layer's).
    pub fn new(db: Arc<Db>, config: &AlertsConfig) -> anyhow::Result<Self> {
        let mut sources = MetricSources::default();
        crate::serving::drift::alerts::DriftMetrics::install(&mut sources);
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                sources,
                settings: EvaluationSettings {
                    public_url: config
                        .public_url
                        .as_ref()
                        .map(|u| u.trim_end_matches('/').to_owned()),
                },
                sender: Sender::new(config.target_policy(), config.delivery_timeout)?,
                config: config.clone(),
            }),
        })
    }

    /// Starts the evaluation and delivery loops (each waits one interval first).
    pub fn start(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(this.inner.config.evaluation_interval).await;
                if let Err(error) = this.evaluate_at(db::now()).await {
                    tracing::warn!(error = %error.message(), "alert evaluation failed");
                }
            }
        });
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(this.inner.config.delivery_interval).await;
                if let Err(error) = this.deliver_due(db::now()).await {
                    tracing::warn!(error = %error.message(), "webhook delivery pass failed");
                }
            }
        });
    }

    /// Which URLs webhooks may have.
    pub fn target_policy(&self) -> TargetPolicy {
        self.inner.sender.policy()
    }

    /// Evaluates every enabled rule at `at` (Unix seconds).
    pub async fn evaluate_at(&self, at: i64) -> DomainResult<Evaluated> {
        let inner = &self.inner;
        evaluate::evaluate_all(&inner.db, &inner.sources, &inner.settings, at).await
    }

    /// Sends every delivery due at `now` (Unix seconds); returns how many were attempted.
    pub async fn deliver_due(&self, now: i64) -> DomainResult<usize> {
        // One claim per attempt, so that each lease starts when its attempt does.
        let mut count = 0;
        while count < DELIVERY_BATCH as usize {
            let lease = db::now().max(now) + self.lease_secs();
            let claimed =
                deliveries::claim_due(&*self.inner.db.write_unmemoised().await, now, lease, 1)
                    .await?;
            let Some(outgoing) = claimed.into_iter().next() else {
                break;
            };
            self.attempt(outgoing, now).await?;
            count += 1;
        }
        Ok(count)
    }

    /// Sends one pending delivery now, due or not (a test message); `false` if it is not
    /// pending (or another sender holds it).
    pub async fn deliver_now(&self, id: &str) -> DomainResult<bool> {
        let now = db::now();
        let claimed = deliveries::claim(
            &*self.inner.db.write_unmemoised().await,
            id,
            None,
            now + self.lease_secs(),
        )
        .await?;
        match claimed {
            Some(outgoing) => {
                self.attempt(outgoing, now).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn lease_secs(&self) -> i64 {
        i64::try_from(self.inner.config.delivery_timeout.as_secs()).unwrap_or(60) * 2 + 1
    }

    /// One attempt of a claimed delivery, recorded.
    async fn attempt(&self, outgoing: Outgoing, now: i64) -> DomainResult<()> {
        let target = webhooks::target(
            &*self.inner.db.read().await,
            &outgoing.org_id,
            &outgoing.webhook_id,
        )
        .await?;
        let attempts = outgoing.attempts + 1;
        let answer = match target {
            Some((url, secret)) => {
                // The timestamp is the sending time: receivers check it against their clock.
                self.inner
                    .sender
                    .send(&url, &secret, &outgoing.id, db::now(), &outgoing.payload)
                    .await
            }
            None => sender::Answer {
                status: None,
                body_prefix: None,
                error: Some("the webhook was deleted".into()),
            },
        };
        let gone = target_missing(&answer);
        let (status, next) = if answer.delivered() {
            (DeliveryStatus::Delivered, None)
        } else if gone || attempts >= i64::from(self.inner.config.max_attempts) {
            (DeliveryStatus::Failed, None)
        } else {
            (
                DeliveryStatus::Pending,
                Some(now + self.backoff_secs(attempts)),
            )
        };
        tracing::info!(
            delivery.id = %outgoing.id,
            delivery.attempts = attempts,
            delivery.status = status.as_str(),
            http.status = answer.status,
            "webhook delivery attempted"
        );
        deliveries::record_attempt(
            &*self.inner.db.write_unmemoised().await,
            &outgoing.id,
            &Attempt {
                status,
                attempts,
                next_attempt_at: next,
                at: db::now(),
                response_code: answer.status.map(i64::from),
                response_prefix: answer.body_prefix.as_deref(),
                error: answer.error.as_deref(),
            },
        )
        .await?;
        Ok(())
    }

    /// The wait after `attempts` failed attempts: `retry_base · 2^(attempts-1)`, at most
    /// an hour.
    fn backoff_secs(&self, attempts: i64) -> i64 {
        let base = i64::try_from(self.inner.config.retry_base.as_secs())
            .unwrap_or(1)
            .max(1);
        let exponent = u32::try_from(attempts.saturating_sub(1))
            .unwrap_or(0)
            .min(20);
        base.saturating_mul(1 << exponent).min(MAX_BACKOFF_SECS)
    }
}

fn target_missing(answer: &sender::Answer) -> bool {
    answer.status.is_none()
        && answer
            .error
            .as_deref()
            .is_some_and(|e| e == "the webhook was deleted")
}
