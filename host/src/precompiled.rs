//! The on-disk cache of precompiled components, so a restarted process deserializes
//! machine code instead of compiling it again.
//!
//! Each file is `MAGIC || sha256(payload) || payload`, named by the component's digest and a
//! hash of the engine's compatibility settings. A file that is truncated, corrupt or made by
//! another engine fails the checks, is deleted and rebuilt: it can cost time, never a crash.

use crate::artifacts::Digest;
use sha2::{Digest as _, Sha256};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

const MAGIC: &[u8; 8] = b"WISPCW01";
const HEADER_LEN: usize = MAGIC.len() + 32;

pub(crate) struct PrecompiledCache {
    dir: PathBuf,
    engine_tag: String,
}

impl PrecompiledCache {
    pub(crate) fn new(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self {
            dir: dir.to_owned(),
            engine_tag: format!("{:016x}", hasher.finish()),
        })
    }

    fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(format!("{digest}-{}.cwasm", self.engine_tag))
    }

    /// The verified component for `digest` if a good file exists; removes a bad one.
    pub(crate) fn load(&self, engine: &Engine, digest: &Digest) -> Option<Component> {
        let path = self.path(digest);
        let bytes = std::fs::read(&path).ok()?;
        match verified_payload(&bytes) {
            Some(payload) => {
                // SAFETY: the payload was written by `store` from `Component::serialize` of an
                // engine with the same compatibility hash (it is in the file name), and its
                // sha256 matches, so it is exactly what wasmtime produced.
                match unsafe { Component::deserialize(engine, payload) } {
                    Ok(component) => return Some(component),
                    Err(error) => {
                        tracing::warn!(%digest, %error, "precompiled component rejected; rebuilding")
                    }
                }
            }
            None => tracing::warn!(%digest, "precompiled component is corrupt; rebuilding"),
        }
        let _ = std::fs::remove_file(&path);
        None
    }

    /// Writes the serialized component atomically (temp file, fsync, rename).
    pub(crate) fn store(&self, digest: &Digest, component: &Component) -> anyhow::Result<()> {
        let payload = component
            .serialize()
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let path = self.path(digest);
        let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
        file.write_all(MAGIC)?;
        file.write_all(&Sha256::digest(&payload))?;
        file.write_all(&payload)?;
        file.as_file().sync_all()?;
        file.persist(&path)?;
        Ok(())
    }
}

fn verified_payload(bytes: &[u8]) -> Option<&[u8]> {
    if bytes.len() < HEADER_LEN || &bytes[..MAGIC.len()] != MAGIC {
        return None;
    }
    let (checksum, payload) = bytes[MAGIC.len()..].split_at(32);
    (Sha256::digest(payload).as_slice() == checksum).then_some(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_checks_reject_truncation_and_flips() {
        let payload = b"machine code".to_vec();
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(&Sha256::digest(&payload));
        file.extend_from_slice(&payload);
        assert_eq!(verified_payload(&file), Some(&payload[..]));
        assert_eq!(verified_payload(&file[..file.len() - 1]), None);
        let mut flipped = file.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(verified_payload(&flipped), None);
        assert_eq!(verified_payload(b"WISPCW01"), None);
    }
}
