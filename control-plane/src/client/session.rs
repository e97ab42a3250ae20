//! The CLI's stored session: server, tokens and default organisation, in
//! `$WISP_CONFIG_DIR/session.json` (default `~/.config/wisp/`), readable by its owner only.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// What `wisp login` remembers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Session {
    pub server: String,
    pub access_token: String,
    pub refresh_token: String,
    /// The organisation commands use unless `--org` says otherwise.
    pub org: Option<String>,
}

/// Where the session file lives.
pub fn path() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("WISP_CONFIG_DIR") {
        return Ok(PathBuf::from(dir).join("session.json"));
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(
            std::env::var_os("HOME").context("neither WISP_CONFIG_DIR nor HOME is set")?,
        )
        .join(".config"),
    };
    Ok(base.join("wisp").join("session.json"))
}

/// The stored session, if someone logged in.
pub fn load() -> anyhow::Result<Option<Session>> {
    let path = path()?;
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{} is not a wisp session; run `wisp login`", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("failed to read {}", path.display())),
    }
}

/// Stores the session atomically (temp file + rename), mode 0600.
pub fn save(session: &Session) -> anyhow::Result<()> {
    let path = path()?;
    let dir = path.parent().context("session path has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let tmp = path.with_extension("json.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("failed to write {}", tmp.display()))?;
    file.write_all(&serde_json::to_vec_pretty(session)?)?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("failed to write {}", path.display()))?;
    Ok(())
}

/// Forgets the session.
pub fn remove() -> anyhow::Result<bool> {
    match std::fs::remove_file(path()?) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}
