//! The real Python clients (`tests/clients/requirements.txt`), installed into a venv by
//! `scripts/test-env.sh` (`make test-env`).

use std::path::PathBuf;

/// The venv's interpreter: `$WISP_CLIENTS_VENV/bin/python`, by default under
/// `~/.cache/wisp/clients-venv`, as in `scripts/test-env.sh`. Panics when it is missing:
/// a test that needs a real client must fail, not skip, without it.
pub fn python() -> PathBuf {
    let venv = match std::env::var_os("WISP_CLIENTS_VENV") {
        Some(venv) => PathBuf::from(venv),
        None => {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/wisp/clients-venv")
        }
    };
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make test-env` (scripts/test-env.sh) to install the Python clients",
        python.display()
    );
    python
}

/// A script of `tests/clients`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/clients")
        .join(name)
}
