//! The on-disk cache of precompiled components, so a restarted process deserializes
//! machine code instead of compiling it again.
//!
//! Each file is `MAGIC || sha256(payload) || payload`, named by the component's digest and a
//! hash of the engine's compatibility settings. A file that is truncated, corrupt or made by
//! another engine fails the checks, is deleted and rebuilt: it can cost time, never a crash.
//!
//! The directory is bounded by bytes: an index of the files (built from the directory at
//! start, oldest modification first) orders them by last use, and storing a file past the
//! budget deletes the least recently used ones. A hit refreshes the file's modification
//! time, so the order survives a restart.

use crate::artifacts::Digest;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;
use wasmtime::Engine;
use wasmtime::component::Component;

const MAGIC: &[u8; 8] = b"WISPCW01";
const HEADER_LEN: usize = MAGIC.len() + 32;

pub(crate) struct PrecompiledCache {
    dir: PathBuf,
    engine_tag: String,
    budget_bytes: u64,
    index: Mutex<UseIndex>,
}

/// The cache's files by last use.
#[derive(Debug, Default)]
struct UseIndex {
    files: HashMap<PathBuf, CachedFile>,
    total_bytes: u64,
    /// Logical clock of uses: file times are too coarse to order quick successive uses.
    clock: u64,
}

#[derive(Debug, Clone, Copy)]
struct CachedFile {
    bytes: u64,
    last_use: u64,
}

impl UseIndex {
    fn touch(&mut self, path: &Path, bytes: u64) {
        self.clock += 1;
        let entry = CachedFile {
            bytes,
            last_use: self.clock,
        };
        if let Some(old) = self.files.insert(path.to_owned(), entry) {
            self.total_bytes -= old.bytes;
        }
        self.total_bytes += bytes;
    }

    fn forget(&mut self, path: &Path) {
        if let Some(old) = self.files.remove(path) {
            self.total_bytes -= old.bytes;
        }
    }

    /// Deletes least recently used files until the total fits `budget`; `keep` goes last.
    fn evict(&mut self, budget: u64, keep: Option<&Path>) {
        while self.total_bytes > budget {
            let victim = self
                .files
                .iter()
                .filter(|(path, _)| Some(path.as_path()) != keep)
                .min_by_key(|(_, file)| file.last_use)
                .map(|(path, _)| path.clone())
                .or_else(|| keep.map(Path::to_owned));
            let Some(victim) = victim else { return };
            if let Err(error) = std::fs::remove_file(&victim)
                && error.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %victim.display(), %error, "could not evict a precompiled component");
            }
            self.forget(&victim);
        }
    }
}

impl PrecompiledCache {
    pub(crate) fn new(dir: &Path, engine: &Engine, budget_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let mut existing = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let metadata = entry.metadata()?;
            // Files of other engines count too: nothing uses them, so they go first.
            if metadata.is_file() && path.extension().is_some_and(|e| e == "cwasm") {
                let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                existing.push((modified, path, metadata.len()));
            }
        }
        existing.sort();
        let mut index = UseIndex::default();
        for (_, path, bytes) in existing {
            index.touch(&path, bytes);
        }
        index.evict(budget_bytes, None);
        Ok(Self {
            dir: dir.to_owned(),
            engine_tag: format!("{:016x}", hasher.finish()),
            budget_bytes,
            index: Mutex::new(index),
        })
    }

    fn index(&self) -> std::sync::MutexGuard<'_, UseIndex> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(format!("{digest}-{}.cwasm", self.engine_tag))
    }

    /// The verified component for `digest` if a good file exists; removes a bad one.
    pub(crate) fn load(&self, engine: &Engine, digest: &Digest) -> Option<Component> {
        let path = self.path(digest);
        let mut file = std::fs::File::open(&path).ok()?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).ok()?;
        match verified_payload(&bytes) {
            Some(payload) => {
                // SAFETY: the payload was written by `store` from `Component::serialize` of an
                // engine with the same compatibility hash (it is in the file name), and its
                // sha256 matches, so it is exactly what wasmtime produced.
                match unsafe { Component::deserialize(engine, payload) } {
                    Ok(component) => {
                        // Best effort: the order of use across restarts.
                        let _ = file.set_modified(SystemTime::now());
                        self.index().touch(&path, bytes.len() as u64);
                        return Some(component);
                    }
                    Err(error) => {
                        tracing::warn!(%digest, %error, "precompiled component rejected; rebuilding")
                    }
                }
            }
            None => tracing::warn!(%digest, "precompiled component is corrupt; rebuilding"),
        }
        let _ = std::fs::remove_file(&path);
        self.index().forget(&path);
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
        let bytes = (HEADER_LEN + payload.len()) as u64;
        let mut index = self.index();
        index.touch(&path, bytes);
        index.evict(self.budget_bytes, Some(&path));
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

    #[test]
    fn the_directory_is_bounded_by_bytes_evicting_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let engine = crate::engine::build_compile_engine().unwrap();
        let component = Component::new(&engine, b"\0asm\x0d\0\x01\0").unwrap();
        let one = (HEADER_LEN + component.serialize().unwrap().len()) as u64;
        let cache = PrecompiledCache::new(dir.path(), &engine, one * 5 / 2).unwrap();
        let [a, b, c] = [b"a", b"b", b"c"].map(|d| Digest::of(d));
        cache.store(&a, &component).unwrap();
        cache.store(&b, &component).unwrap();
        assert!(cache.load(&engine, &a).is_some(), "a is used again");
        cache.store(&c, &component).unwrap();
        assert!(cache.path(&a).exists());
        assert!(!cache.path(&b).exists(), "b was the least recently used");
        assert!(cache.path(&c).exists());
        assert!(cache.load(&engine, &b).is_none());
        let files = std::fs::read_dir(dir.path()).unwrap().count() as u64;
        assert_eq!(files, 2);

        // A smaller budget at the next start trims the directory to it.
        drop(cache);
        let cache = PrecompiledCache::new(dir.path(), &engine, one).unwrap();
        let kept = [&a, &c].iter().filter(|d| cache.path(d).exists()).count();
        assert_eq!(kept, 1);
    }
}
