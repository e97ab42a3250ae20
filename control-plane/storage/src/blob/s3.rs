//! The S3 object store (AWS S3, Tigris, R2, MinIO and other S3-compatible services).

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use serde::Deserialize;

use futures_util::StreamExt;

use super::{BlobError, BlobStream, ObjectStore, StagedBlob, blob_key};

/// Where and how to reach the bucket.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    pub bucket: String,
    /// e.g. `us-east-1`; S3-compatible services usually accept `auto` or any value.
    #[serde(default = "default_region")]
    pub region: String,
    /// Custom endpoint (`https://fly.storage.tigris.dev`, `http://127.0.0.1:9000`); AWS if absent.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `https://endpoint/bucket/key` instead of `https://bucket.endpoint/key` (MinIO, most self-hosted).
    #[serde(default)]
    pub force_path_style: bool,
    /// Key prefix inside the bucket, e.g. `wisp/`.
    #[serde(default)]
    pub prefix: String,
    /// Static credentials; when absent, `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` are used.
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<String>,
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

/// Blobs in an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
}

fn s3_error(e: impl std::error::Error) -> BlobError {
    // The SDK's Display is terse ("service error"); the Debug chain names the cause.
    BlobError::S3(format!("{e:?}"))
}

impl S3Store {
    /// A client for the configured bucket. Fails if no credentials can be found.
    pub fn new(settings: &S3Settings) -> Result<Self, BlobError> {
        let env = |name: &str| std::env::var(name).ok();
        let access_key = settings
            .access_key_id
            .clone()
            .or_else(|| env("AWS_ACCESS_KEY_ID"))
            .ok_or_else(|| BlobError::S3("no S3 access key id configured".into()))?;
        let secret_key = settings
            .secret_access_key
            .clone()
            .or_else(|| env("AWS_SECRET_ACCESS_KEY"))
            .ok_or_else(|| BlobError::S3("no S3 secret access key configured".into()))?;
        let credentials = Credentials::new(
            access_key,
            secret_key,
            env("AWS_SESSION_TOKEN"),
            None,
            "wisp",
        );
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .credentials_provider(credentials)
            .force_path_style(settings.force_path_style)
            // Only send checksums when the operation requires them: several S3-compatible
            // services reject the SDK's default trailing CRC32 headers.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
        if let Some(endpoint) = &settings.endpoint {
            config = config.endpoint_url(endpoint);
        }
        Ok(Self {
            client: Client::from_conf(config.build()),
            bucket: settings.bucket.clone(),
            prefix: settings.prefix.clone(),
        })
    }

    fn key(&self, sha256: &str) -> Result<String, BlobError> {
        Ok(format!("{}{}", self.prefix, blob_key(sha256)?))
    }
}

#[async_trait::async_trait]
impl ObjectStore for S3Store {
    async fn commit(&self, staged: StagedBlob) -> Result<(), BlobError> {
        if self.exists(&staged.sha256).await? {
            return Ok(());
        }
        let body = ByteStream::from_path(staged.path())
            .await
            .map_err(s3_error)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(&staged.sha256)?)
            .content_length(staged.size as i64)
            .body(body)
            .send()
            .await
            .map_err(s3_error)?;
        Ok(())
    }

    async fn get(&self, sha256: &str) -> Result<Option<Bytes>, BlobError> {
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(sha256)?)
            .send()
            .await;
        match result {
            Ok(output) => {
                let bytes = output.body.collect().await.map_err(s3_error)?;
                Ok(Some(bytes.into_bytes()))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(s3_error(e)),
        }
    }

    async fn open(&self, sha256: &str) -> Result<Option<(u64, BlobStream)>, BlobError> {
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(sha256)?)
            .send()
            .await;
        match result {
            Ok(output) => {
                let size = output.content_length().unwrap_or(0).max(0) as u64;
                let chunks = futures_util::stream::try_unfold(output.body, |mut body| async move {
                    match body.try_next().await.map_err(s3_error)? {
                        Some(chunk) => Ok(Some((chunk, body))),
                        None => Ok(None),
                    }
                });
                Ok(Some((size, chunks.boxed())))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(s3_error(e)),
        }
    }

    async fn exists(&self, sha256: &str) -> Result<bool, BlobError> {
        let result = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.key(sha256)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => Err(s3_error(e)),
        }
    }

    async fn delete(&self, sha256: &str) -> Result<(), BlobError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.key(sha256)?)
            .send()
            .await
            .map_err(s3_error)?;
        Ok(())
    }
}
