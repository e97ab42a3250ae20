//! The control plane's layering, checked from its sources (as rust-analyzer's tidy tests
//! check theirs): a module may use modules of its own layer and the layers below, never
//! one above; no two top-level modules import each other, directly or around a cycle; and
//! below the HTTP edge nothing names an HTTP type.
//!
//! The allowed directions are written once, in [`LAYERS`]. A new top-level module must be
//! placed in a layer before this test passes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, lowest first. Each may use itself and everything before it.
const LAYERS: &[(&str, &[&str])] = &[
    // Bytes at rest: the database and its migrations, the object store. A crate of its own
    // (`wisp-storage`), re-exported under these names, so the compiler holds this layer too.
    ("storage", &["db", "blob"]),
    // The one error, credentials and permissions, what an uploaded model looks like.
    ("core", &["error", "auth", "inspect"]),
    // The rows of each domain and the memoised reads of the hot ones.
    (
        "records",
        &[
            "orgs",
            "users",
            "keys",
            "sessions",
            "sign_ins",
            "invitations",
            "access",
            "registry",
            "deployments",
            "plans",
            "audit",
            "lookups",
        ],
    ),
    // Usage events, quotas, billing.
    ("metering", &["metering"]),
    // Domain operations: the only way the edges change the registry, audited.
    ("domain", &["domain"]),
    // The inference pipeline, its codecs and batch jobs.
    ("serving", &["serving", "batch"]),
    // MLflow's tracking and registry storage.
    ("mlflow", &["mlflow"]),
    // The HTTP edge and the `wisp serve` process around it.
    (
        "edge",
        &[
            "client_ip",
            "api",
            "config",
            "sandbox",
            "onnx_inspector",
            "serve",
            "cli",
        ],
    ),
    // The `wisp` CLI's client of a running server.
    ("client", &["client"]),
];

/// Crates whose types belong to the HTTP edge.
const HTTP_CRATES: &[&str] = &[
    "axum",
    "http",
    "http_body_util",
    "hyper",
    "tower",
    "tower_http",
];

/// The layer of the lowest module that may name an HTTP type.
const EDGE: &str = "edge";

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`None` for the crate roots).
fn top_module(file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src()).expect("under src");
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// The code of a file without comments and without its `#[cfg(test)]` modules (tests may
/// reach across layers to set things up).
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            let next = lines.peek().map(|l| l.trim_start()).unwrap_or_default();
            if next.starts_with("mod ") && next.ends_with('{') {
                // A test module runs to the end of the file by convention here; skip a
                // balanced block to be safe.
                let mut depth = 0i32;
                for line in lines.by_ref() {
                    depth += line.matches('{').count() as i32;
                    depth -= line.matches('}').count() as i32;
                    if depth <= 0 && line.contains('}') {
                        break;
                    }
                }
                continue;
            }
        }
        if trimmed.starts_with("//") {
            continue;
        }
        let line = match line.find(" //") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        };
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The top-level modules `code` names through `crate::`, including in `use crate::{…}`.
fn crate_references(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            // Top-level names of a `crate::{a, b::c, d::{e, f}}` group.
            let mut depth = 0;
            let mut start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        rest = &group[i..];
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && (c.is_alphanumeric() || c == '_') => {
                        let name: String = group[i..]
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        found.insert(name);
                        start = false;
                    }
                    _ => {}
                }
            }
            continue;
        }
        let name: String = after
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        found.insert(name);
        rest = after;
    }
    found
}

/// Whether `code` names a crate of [`HTTP_CRATES`] as a path.
fn http_references(code: &str) -> Vec<&'static str> {
    HTTP_CRATES
        .iter()
        .copied()
        .filter(|krate| {
            let path = format!("{krate}::");
            code.match_indices(&path).any(|(at, _)| {
                let before = code[..at].chars().next_back();
                !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
            })
        })
        .collect()
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

/// Every top-level module and the top-level modules it uses.
fn module_graph() -> (
    BTreeMap<String, BTreeSet<String>>,
    BTreeMap<String, Vec<String>>,
) {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut http: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in files {
        let Some(module) = top_module(&file) else {
            continue;
        };
        let text = fs::read_to_string(&file).expect("read");
        let code = code(&text);
        let uses = graph.entry(module.clone()).or_default();
        uses.extend(
            crate_references(&code)
                .into_iter()
                .filter(|used| *used != module),
        );
        for krate in http_references(&code) {
            let relative = file.strip_prefix(src()).unwrap().display().to_string();
            http.entry(module.clone())
                .or_default()
                .push(format!("{relative} names `{krate}`"));
        }
    }
    (graph, http)
}

#[test]
fn every_module_has_a_layer_and_uses_none_above_it() {
    let (graph, _) = module_graph();
    let mut problems = Vec::new();
    for (module, uses) in &graph {
        let Some(layer) = layer_of(module) else {
            problems.push(format!(
                "`{module}` is in no layer: add it to LAYERS in tests/layering.rs"
            ));
            continue;
        };
        for used in uses {
            match layer_of(used) {
                Some(other) if other > layer => problems.push(format!(
                    "`{module}` ({}) uses `{used}` ({}), a layer above it",
                    LAYERS[layer].0, LAYERS[other].0
                )),
                _ => {}
            }
        }
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

#[test]
fn no_top_level_modules_import_each_other_in_a_cycle() {
    let (graph, _) = module_graph();
    let mut cycles = BTreeSet::new();
    for start in graph.keys() {
        // Depth-first from `start`: a path that comes back to it is a cycle.
        let mut stack: Vec<Vec<&str>> = vec![vec![start.as_str()]];
        let mut seen = BTreeSet::new();
        while let Some(path) = stack.pop() {
            let last = *path.last().unwrap();
            for next in graph.get(last).into_iter().flatten() {
                if next == start {
                    let mut cycle: Vec<&str> = path.clone();
                    // One rotation per cycle: start at its smallest module.
                    let min = cycle.iter().enumerate().min_by_key(|(_, m)| **m).unwrap().0;
                    cycle.rotate_left(min);
                    cycles.insert(cycle.join(" -> "));
                } else if graph.contains_key(next.as_str()) && seen.insert(next.as_str()) {
                    let mut longer = path.clone();
                    longer.push(next.as_str());
                    stack.push(longer);
                }
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "import cycles between top-level modules:\n{}\n",
        cycles.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn below_the_edge_nothing_names_an_http_type() {
    let (_, http) = module_graph();
    let edge = LAYERS.iter().position(|(name, _)| *name == EDGE).unwrap();
    let problems: Vec<String> = http
        .into_iter()
        .filter(|(module, _)| layer_of(module).is_some_and(|layer| layer < edge))
        .flat_map(|(_, found)| found)
        .collect();
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

/// The checks themselves: a forbidden import is found, in both spellings.
#[test]
fn the_checks_see_what_they_must() {
    let code = code(
        "use crate::{db::Db, api::AppState};\n// use crate::cli;\nlet x = crate::serving::x();\n",
    );
    let found = crate_references(&code);
    assert_eq!(
        found,
        BTreeSet::from(["api".to_owned(), "db".to_owned(), "serving".to_owned()])
    );
    assert_eq!(
        http_references("use axum::Json; let h: http::HeaderMap;"),
        ["axum", "http"]
    );
    assert!(http_references("let x = my_axum::y; use tracing::http_like;").is_empty());
    assert!(layer_of("db") < layer_of("api"));
}
