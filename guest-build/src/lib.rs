//! Builds guest components (model templates, test programs) for `wasm32-wasip2` from a
//! build script, so `cargo build` and `cargo test` need no manual step.
//!
//! Guests live in their own cargo workspaces; each is built by a nested `cargo build` into
//! one shared target directory beside the outer one, so a guest that two crates need (the
//! `onnx-runner` template, say) compiles once.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The target every guest is built for.
pub const GUEST_TARGET: &str = "wasm32-wasip2";

/// Variables the outer cargo sets for its own compilation that must not leak into the
/// nested guest build (they would apply host flags or wrappers to a wasm target).
const LEAKY_ENV: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_BUILD_TARGET",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_WRAPPER",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_PKG_NAME",
    "__CARGO_FIX_PLZ",
];

/// Builds every cdylib of the guest workspace at `manifest` in release mode and returns the
/// component of each, keyed by library target name (`onnx_runner` for `onnx-runner`).
///
/// Panics with the compiler's output on failure: this runs in build scripts, where a panic
/// is how an error is reported.
pub fn build_guests(manifest: &Path) -> BTreeMap<String, PathBuf> {
    ensure_target_installed();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = guest_target_dir();
    let mut command = Command::new(cargo);
    for var in LEAKY_ENV {
        command.env_remove(var);
    }
    command
        .arg("build")
        .arg("--release")
        .arg("--workspace")
        .arg("--target")
        .arg(GUEST_TARGET)
        .arg("--message-format=json-render-diagnostics")
        .arg("--manifest-path")
        .arg(manifest)
        .env("CARGO_TARGET_DIR", &target_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("failed to run cargo for {}: {e}", manifest.display()));
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut components = BTreeMap::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("cargo output is UTF-8");
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let is_cdylib = message["target"]["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib"));
        if !is_cdylib {
            continue;
        }
        let name = message["target"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let wasm = message["filenames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str())
            .find(|f| f.ends_with(".wasm"));
        if let Some(wasm) = wasm {
            components.insert(name, PathBuf::from(wasm));
        }
    }
    let status = child.wait().expect("cargo ran");
    assert!(
        status.success(),
        "building guest components in {} failed ({status}); is the {GUEST_TARGET} target installed? \
         rust-toolchain.toml asks rustup to install it",
        manifest.display()
    );
    components
}

/// Installs the guest target with rustup when the toolchain lacks it.
///
/// rustup installs the targets named in `rust-toolchain.toml` only when it installs the
/// toolchain itself; on a machine that already had the toolchain the target may be missing.
fn ensure_target_installed() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    let installed =
        sysroot.is_some_and(|root| root.join("lib/rustlib").join(GUEST_TARGET).is_dir());
    if installed {
        return;
    }
    let mut rustup = Command::new("rustup");
    rustup.args(["target", "add", GUEST_TARGET]);
    if let Ok(toolchain) = std::env::var("RUSTUP_TOOLCHAIN") {
        rustup.args(["--toolchain", &toolchain]);
    }
    let status = rustup.status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "the {GUEST_TARGET} target is missing and `rustup target add {GUEST_TARGET}` failed"
    );
}

/// Tells cargo to re-run the build script when anything a guest is built from changes.
pub fn rerun_if_changed(paths: &[&Path]) {
    for path in paths {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// `wasm-guests` beside the outer build's profile directories, found from `OUT_DIR`
/// (`<target>/[<triple>/]<profile>/build/<package>-<hash>/out`), so every crate of one
/// build shares the guests' compiled dependencies.
fn guest_target_dir() -> PathBuf {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("called from a build script"));
    out_dir
        .ancestors()
        .nth(4)
        .map(|dir| dir.join("wasm-guests"))
        .unwrap_or_else(|| out_dir.join("wasm-guests"))
}
