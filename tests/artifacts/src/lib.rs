//! Paths of the guest components (templates and test guests, built by `build.rs`) and of
//! the committed fixtures, for tests and benchmarks.

use std::path::PathBuf;

pub mod bombs;

/// Compiled guest components, one constant per crate (`ONNX_RUNNER`, `SPIN_LOOP`, …).
pub mod components {
    include!(concat!(env!("OUT_DIR"), "/components.rs"));
}

/// The `tests/fixtures` directory: ONNX models, references and images.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// Reads a fixture file, panicking with its path if it is missing.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()))
}

/// Reads a compiled component by its path constant.
pub fn component(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read component {path}: {e}"))
}
