//! The local-filesystem object store (the zero-configuration default).
//!
//! A commit renames the fsynced staged file into `root/sha256/ab/<digest>` and fsyncs the
//! directory, so after a crash a blob is either entirely there or not there at all.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use futures_util::StreamExt;
use tokio::io::AsyncReadExt;

use super::{BlobError, BlobStream, ObjectStore, STREAM_CHUNK, StagedBlob, blob_key};

/// Blobs under a directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// A store rooted at `root` (created if missing).
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    fn path_of(&self, sha256: &str) -> Result<PathBuf, BlobError> {
        Ok(self.root.join(blob_key(sha256)?))
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[async_trait::async_trait]
impl ObjectStore for LocalStore {
    async fn commit(&self, staged: StagedBlob) -> Result<(), BlobError> {
        let target = self.path_of(&staged.sha256)?;
        tokio::task::spawn_blocking(move || -> Result<(), BlobError> {
            if target.exists() {
                return Ok(()); // Same digest, same bytes: dropping `staged` deletes the copy.
            }
            let parent = target
                .parent()
                .ok_or_else(|| BlobError::InvalidDigest(staged.sha256.clone()))?;
            std::fs::create_dir_all(parent)?;
            staged
                .file
                .persist(&target)
                .map_err(|e| BlobError::Io(e.error))?;
            sync_dir(parent)?;
            Ok(())
        })
        .await
        .map_err(|e| BlobError::Io(std::io::Error::other(e)))?
    }

    async fn get(&self, sha256: &str) -> Result<Option<Bytes>, BlobError> {
        match tokio::fs::read(self.path_of(sha256)?).await {
            Ok(bytes) => Ok(Some(Bytes::from(bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn open(&self, sha256: &str) -> Result<Option<(u64, BlobStream)>, BlobError> {
        let file = match tokio::fs::File::open(self.path_of(sha256)?).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let size = file.metadata().await?.len();
        let chunks = futures_util::stream::try_unfold(file, |mut file| async move {
            let mut buffer = vec![0; STREAM_CHUNK];
            let read = file.read(&mut buffer).await?;
            if read == 0 {
                return Ok(None);
            }
            buffer.truncate(read);
            Ok(Some((Bytes::from(buffer), file)))
        });
        Ok(Some((size, chunks.boxed())))
    }

    async fn exists(&self, sha256: &str) -> Result<bool, BlobError> {
        Ok(tokio::fs::try_exists(self.path_of(sha256)?).await?)
    }

    async fn delete(&self, sha256: &str) -> Result<(), BlobError> {
        match tokio::fs::remove_file(self.path_of(sha256)?).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::Staging;

    #[tokio::test]
    async fn commit_get_delete() {
        let dir = tempfile::tempdir().expect("tempdir");
        let staging = Staging::new(dir.path().join("tmp")).expect("staging");
        let store = LocalStore::new(dir.path().join("blobs")).expect("store");
        let staged = staging
            .write_bytes(Bytes::from_static(b"model"))
            .await
            .expect("stage");
        let digest = staged.sha256.clone();
        store.commit(staged).await.expect("commit");
        assert!(store.exists(&digest).await.expect("exists"));
        assert_eq!(
            store.get(&digest).await.expect("get").as_deref(),
            Some(&b"model"[..])
        );
        // Committing the same bytes again is a no-op and leaves no staged file behind.
        let again = staging
            .write_bytes(Bytes::from_static(b"model"))
            .await
            .expect("stage");
        store.commit(again).await.expect("commit again");
        assert_eq!(std::fs::read_dir(staging.dir()).expect("ls").count(), 0);
        let (size, chunks) = store.open(&digest).await.expect("open").expect("present");
        assert_eq!(size, 5);
        let streamed: Vec<Bytes> = chunks.map(|c| c.expect("chunk")).collect().await;
        assert_eq!(streamed.concat(), b"model");
        store.delete(&digest).await.expect("delete");
        assert!(store.get(&digest).await.expect("get").is_none());
        assert!(store.open(&digest).await.expect("open").is_none());
        store.delete(&digest).await.expect("delete twice");
    }

    #[tokio::test]
    async fn rejects_keys_that_are_not_digests() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::new(dir.path()).expect("store");
        assert!(matches!(
            store.get("../../etc/passwd").await,
            Err(BlobError::InvalidDigest(_))
        ));
    }
}
