//! The object store for model files and artifacts, content-addressed by sha256.
//!
//! Writing is two steps. [`Staging::write`] streams bytes into a temporary file in a local
//! staging directory, hashing and counting as it goes and stopping at the size limit. The
//! caller can then inspect the staged file and either drop it (nothing is stored) or
//! [`ObjectStore::commit`] it, which makes it durable under its digest. Because the key is
//! the digest, a commit is idempotent and concurrent uploads of the same bytes are harmless.

pub mod intents;
mod local;
pub mod references;
mod s3;
mod staging;

pub use local::LocalStore;
pub use s3::{S3Settings, S3Store};
pub use staging::{StageError, StagedBlob, Staging};

use bytes::Bytes;
use futures_util::stream::BoxStream;

/// A blob's bytes as they are read, in chunks, without holding the whole of it.
pub type BlobStream = BoxStream<'static, Result<Bytes, BlobError>>;

/// Bytes per chunk when a blob is streamed from the local filesystem.
const STREAM_CHUNK: usize = 256 * 1024;

/// Errors of an object store.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("invalid blob digest {0:?}")]
    InvalidDigest(String),
    #[error("object store I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("S3: {0}")]
    S3(String),
}

/// A content-addressed blob store.
#[async_trait::async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Stores a staged blob under its sha256, durably, once. Idempotent.
    async fn commit(&self, staged: StagedBlob) -> Result<(), BlobError>;
    /// Reads a whole blob; `None` if absent.
    async fn get(&self, sha256: &str) -> Result<Option<Bytes>, BlobError>;
    /// Streams a blob with its size; `None` if absent. For files too large to hold in
    /// memory (MLflow artifacts are proxied through this).
    async fn open(&self, sha256: &str) -> Result<Option<(u64, BlobStream)>, BlobError>;
    /// Whether a blob is present.
    async fn exists(&self, sha256: &str) -> Result<bool, BlobError>;
    /// Deletes a blob; deleting an absent blob is not an error.
    async fn delete(&self, sha256: &str) -> Result<(), BlobError>;
}

/// The relative key of a blob: `sha256/ab/abcdef…`. Rejects anything that is not a
/// lowercase hex sha256, so a key can never name a path outside the store.
pub fn blob_key(sha256: &str) -> Result<String, BlobError> {
    let valid = sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !valid {
        return Err(BlobError::InvalidDigest(sha256.to_owned()));
    }
    Ok(format!("sha256/{}/{sha256}", &sha256[..2]))
}
