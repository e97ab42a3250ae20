//! The dashboard in a real headless Chromium against a real `wisp serve`: the browser
//! script `tests/browser/dashboard.mjs` (playwright-core driving the system's `chromium`,
//! axe-core) runs the first-run flow from the forced password change to the first
//! prediction, a viewer, CSRF refusals and another organisation, and checks every page for
//! console errors, CSP violations and serious accessibility violations, saving a
//! screenshot of each.
//!
//! Needs `chromium`, `node` and `tests/browser/node_modules` (`scripts/test-env.sh`
//! installs them): without them this test fails, it never skips.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::server::{self, free_port};

const ADMIN: &str = "first-admin@example.com";
const ORG: &str = "first-org";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "{} is missing: scripts/test-env.sh installs Debian's chromium",
        path.display()
    );
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_works_in_a_real_browser() {
    let browser_dir = repo().join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir()
            && browser_dir.join("node_modules/axe-core").is_dir(),
        "tests/browser/node_modules is missing: run scripts/test-env.sh (npm ci)"
    );
    let node_ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(node_ok, "node is missing: scripts/test-env.sh installs it");
    let chromium = chromium();

    // A first start without WISP_ADMIN_PASSWORD: the admin gets a one-time password.
    let data = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    // One batch job at a time, in small chunks: a job stays running (and the next queued)
    // long enough for the page's progress and cancel.
    let config = data.path().join("wisp.toml");
    std::fs::write(
        &config,
        "[batch]\nmax_running_jobs = 1\nchunk_rows = 4\nrow_concurrency = 1\n",
    )
    .expect("config");
    let mut command = server::wisp(data.path(), port);
    command
        .env("WISP_ADMIN_EMAIL", ADMIN)
        .env("WISP_ORG", ORG)
        .env("WISP_CONFIG", &config);
    let wisp = server::start(command, port).await;
    let one_time = std::fs::read_to_string(data.path().join("admin-password"))
        .expect("the one-time password file");

    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    let _ = std::fs::remove_dir_all(&artifacts);
    let model = repo().join("tests/fixtures/iris_logreg.onnx");
    let script = browser_dir.join("dashboard.mjs");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .current_dir(&browser_dir)
            .env("WISP_BASE", &wisp.base)
            .env("WISP_ADMIN_EMAIL", ADMIN)
            .env("WISP_ADMIN_PASSWORD", one_time.trim())
            .env("WISP_ORG", ORG)
            .env("WISP_MODEL_FILE", model)
            .env("WISP_ARTIFACTS", &artifacts)
            .env("CHROMIUM", chromium)
            .output()
            .map(|output| (output, wisp))
    })
    .await
    .expect("join")
    .expect("run node");
    let (output, _wisp) = output;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "the browser test failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    println!(
        "screenshots: {}",
        Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("dashboard-screenshots")
            .display()
    );
}
