//! The runtime's view of storage: model files from the object store by sha256, and the
//! components built into the binary.

use std::sync::Arc;

use wisp_host::{ArtifactStore, Digest, FetchFuture};

use crate::blob::ObjectStore;

/// Serves the built-in components from memory and everything else from the object store.
pub struct BlobArtifacts {
    blobs: Arc<dyn ObjectStore>,
    builtin: Vec<(Digest, &'static [u8])>,
}

impl BlobArtifacts {
    /// An artifact store over `blobs` that also knows `builtin` components.
    pub fn new(blobs: Arc<dyn ObjectStore>, builtin: &[&'static [u8]]) -> Self {
        Self {
            blobs,
            builtin: builtin
                .iter()
                .map(|bytes| (Digest::of(bytes), *bytes))
                .collect(),
        }
    }
}

impl ArtifactStore for BlobArtifacts {
    fn fetch(&self, digest: &Digest) -> FetchFuture<'_> {
        let builtin = self
            .builtin
            .iter()
            .find(|(d, _)| d == digest)
            .map(|(_, bytes)| bytes.to_vec());
        let digest = digest.clone();
        Box::pin(async move {
            if let Some(bytes) = builtin {
                return Ok(Some(bytes));
            }
            let bytes = self.blobs.get(digest.as_str()).await?;
            Ok(bytes.map(|b| b.to_vec()))
        })
    }
}
