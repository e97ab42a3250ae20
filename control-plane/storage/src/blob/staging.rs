//! Streaming bytes into a temporary file while computing their sha256 and enforcing a limit.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;
use tokio::io::AsyncWriteExt;

/// Why staging failed.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("upload exceeds the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("reading the upload failed: {0}")]
    Body(String),
    #[error("staging I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// The directory where uploads are staged. Must be on the same filesystem as a
/// [`LocalStore`](super::LocalStore) so that committing is a rename.
#[derive(Debug, Clone)]
pub struct Staging {
    dir: PathBuf,
}

/// A fully written, fsynced temporary file with its digest. Dropping it deletes the file.
#[derive(Debug)]
pub struct StagedBlob {
    pub(crate) file: NamedTempFile,
    /// Lowercase hex sha256 of the contents.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

impl StagedBlob {
    /// Path of the staged file.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Reads the staged bytes (for inspection before commit).
    pub async fn read(&self) -> std::io::Result<Vec<u8>> {
        tokio::fs::read(self.path()).await
    }
}

impl Staging {
    /// Uses (and creates) `dir`, deleting uploads left behind by a crash.
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(Self { dir })
    }

    /// The staging directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Streams `body` into a new staged file. Stops reading, and deletes what was written,
    /// as soon as more than `limit` bytes have arrived.
    pub async fn write<S, E>(&self, body: S, limit: u64) -> Result<StagedBlob, StageError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let file = NamedTempFile::with_prefix_in(".upload-", &self.dir)?;
        let mut writer = tokio::fs::File::from_std(file.as_file().try_clone()?);
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| StageError::Body(e.to_string()))?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(StageError::TooLarge { limit });
            }
            hasher.update(&chunk);
            writer.write_all(&chunk).await?;
        }
        writer.flush().await?;
        writer.sync_all().await?;
        Ok(StagedBlob {
            file,
            sha256: hex::encode(hasher.finalize()),
            size,
        })
    }

    /// Stages bytes already in memory.
    pub async fn write_bytes(&self, bytes: Bytes) -> Result<StagedBlob, StageError> {
        let limit = bytes.len() as u64;
        let once =
            futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(bytes) });
        self.write(once, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
        futures_util::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn hashes_while_streaming() {
        let dir = tempfile::tempdir().expect("tempdir");
        let staging = Staging::new(dir.path()).expect("staging");
        let staged = staging
            .write(chunks(&[b"hello ", b"world"]), 100)
            .await
            .expect("write");
        assert_eq!(staged.size, 11);
        assert_eq!(
            staged.sha256,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert_eq!(staged.read().await.expect("read"), b"hello world");
    }

    #[tokio::test]
    async fn oversize_stops_and_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let staging = Staging::new(dir.path()).expect("staging");
        let err = staging
            .write(chunks(&[b"12345", b"67890", b"abc"]), 8)
            .await
            .expect_err("too large");
        assert!(matches!(err, StageError::TooLarge { limit: 8 }));
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
    }
}
