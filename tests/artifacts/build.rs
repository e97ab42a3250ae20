//! Builds the model templates and the test guests for wasm32-wasip2 and writes their paths
//! as constants, so `cargo test` needs no manual step.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    // Read when the script runs, not when it is compiled: cargo may reuse a build script
    // compiled in another checkout (a shared target directory), whose path `env!` would bake in.
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR is set"));
    let root = manifest_dir.join("../..");
    let root = root.canonicalize().expect("repository root exists");
    let mut components = Vec::new();
    for template in ["onnx-runner", "tabular-classifier", "image-classifier"] {
        components.extend(wisp_guest_build::build_guests(
            &root.join("templates").join(template).join("Cargo.toml"),
        ));
    }
    components.extend(wisp_guest_build::build_guests(
        &root.join("tests/guests/Cargo.toml"),
    ));
    wisp_guest_build::rerun_if_changed(&[
        &root.join("templates"),
        &root.join("tests/guests"),
        &root.join("guest-sdk"),
        &root.join("wit"),
    ]);

    let mut code = String::new();
    for (name, path) in &components {
        let constant = name.to_uppercase().replace('-', "_");
        writeln!(code, "/// The `{name}` component.").unwrap();
        writeln!(
            code,
            "pub const {constant}: &str = {:?};",
            path.display().to_string()
        )
        .unwrap();
    }
    writeln!(code, "/// Every component, by crate name.").unwrap();
    writeln!(code, "pub const ALL: &[(&str, &str)] = &[").unwrap();
    for (name, path) in &components {
        writeln!(code, "    ({name:?}, {:?}),", path.display().to_string()).unwrap();
    }
    writeln!(code, "];").unwrap();
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("components.rs");
    std::fs::write(out, code).unwrap();
}
