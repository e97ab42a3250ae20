//! A real libSQL server (`sqld` 0.24.33) on a free loopback port, for the tests of the
//! remote database mode and of several nodes on one database.
//!
//! The binary is `$WISP_SQLD`, else `sqld` on `PATH`, else `~/.cache/wisp/bin/sqld` where
//! `scripts/test-env.sh` keeps the copy it found. Missing, the test panics: a test that
//! needs the server fails, it does not skip.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::server::free_port;

/// The `sqld` binary the tests run.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("WISP_SQLD") {
        return PathBuf::from(path);
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("sqld");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    let home = std::env::var_os("HOME").expect("HOME is set");
    let cached = PathBuf::from(home).join(".cache/wisp/bin/sqld");
    assert!(
        cached.is_file(),
        "sqld is missing: run `make test-env` (scripts/test-env.sh) or set WISP_SQLD"
    );
    cached
}

/// A running `sqld` with its own data directory; killed when dropped. It can be stopped
/// and started again on the same port and data, as a database restart.
pub struct Sqld {
    child: Option<Child>,
    data: TempDir,
    port: u16,
}

impl Sqld {
    /// Starts a fresh server and waits until `/health` answers.
    pub async fn start() -> Self {
        let data = tempfile::tempdir().expect("sqld data dir");
        let port = free_port();
        let mut sqld = Self {
            child: None,
            data,
            port,
        };
        sqld.resume().await;
        sqld
    }

    /// `http://127.0.0.1:<port>`: what `database.url` names.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// Kills the server (SIGKILL: an outage, not a clean stop). Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data, and waits until it answers.
    pub async fn resume(&mut self) {
        assert!(self.child.is_none(), "sqld is already running");
        let mut child = Command::new(binary())
            .arg("--http-listen-addr")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--no-welcome")
            .arg("-d")
            .arg(self.data.path().join("db"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sqld");
        let health = format!("{}/health", self.url());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("sqld exited early with {status}");
            }
            if let Ok(response) = reqwest::get(&health).await
                && response.status().is_success()
            {
                break;
            }
            assert!(Instant::now() < deadline, "sqld did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.child = Some(child);
    }
}

impl Drop for Sqld {
    fn drop(&mut self) {
        self.stop();
    }
}
