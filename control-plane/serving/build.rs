//! Builds the `onnx-runner` template for wasm32-wasip2 and embeds it in this crate (and so in the `wisp` binary):
//! it is the component every plain ONNX upload runs in.

use std::path::PathBuf;

fn main() {
    // Read when the script runs, not when it is compiled: cargo may reuse a build script
    // compiled in another checkout (a shared target directory), whose path `env!` would bake in.
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR is set"));
    let root = manifest_dir.join("../..");
    let root = root.canonicalize().expect("repository root exists");
    let built = wisp_guest_build::build_guests(&root.join("templates/onnx-runner/Cargo.toml"));
    let runner = built
        .values()
        .next()
        .expect("the onnx-runner template builds a component");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR is set"));
    std::fs::copy(runner, out.join("onnx-runner.wasm")).expect("copy the onnx-runner component");
    wisp_guest_build::rerun_if_changed(&[
        &root.join("templates/onnx-runner"),
        &root.join("guest-sdk"),
        &root.join("wit"),
    ]);
}
