//! Where the runtime gets component and model bytes from: a content-addressed store the
//! embedder provides (the control plane's object store), named by sha256 digest.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::RwLock;

use sha2::{Digest as _, Sha256};

/// The lowercase hex sha256 of an artifact's bytes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(hex::encode(Sha256::digest(bytes)))
    }

    /// Parses a 64-character hex sha256.
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(text.to_ascii_lowercase()))
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", &self.0[..12.min(self.0.len())])
    }
}

/// A boxed future returned by [`ArtifactStore::fetch`].
pub type FetchFuture<'a> =
    Pin<Box<dyn Future<Output = anyhow::Result<Option<Vec<u8>>>> + Send + 'a>>;

/// A content-addressed source of artifact bytes.
pub trait ArtifactStore: Send + Sync + 'static {
    /// The bytes whose sha256 is `digest`, or `None` if the store has no such artifact.
    fn fetch(&self, digest: &Digest) -> FetchFuture<'_>;
}

/// An [`ArtifactStore`] in memory, for tests, benchmarks and embedders with fixed models.
#[derive(Default)]
pub struct InMemoryArtifacts {
    blobs: RwLock<HashMap<Digest, Vec<u8>>>,
}

impl InMemoryArtifacts {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `bytes` and returns their digest.
    pub fn put(&self, bytes: Vec<u8>) -> Digest {
        let digest = Digest::of(&bytes);
        self.blobs
            .write()
            .expect("lock is not poisoned")
            .insert(digest.clone(), bytes);
        digest
    }
}

impl ArtifactStore for InMemoryArtifacts {
    fn fetch(&self, digest: &Digest) -> FetchFuture<'_> {
        let bytes = self
            .blobs
            .read()
            .expect("lock is not poisoned")
            .get(digest)
            .cloned();
        Box::pin(async move { Ok(bytes) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_sha256_hex() {
        let d = Digest::of(b"abc");
        assert_eq!(
            d.as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Digest::parse(&d.as_str().to_uppercase()), Some(d));
        assert_eq!(Digest::parse("../etc/passwd"), None);
    }
}
