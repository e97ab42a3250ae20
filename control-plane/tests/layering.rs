//! The control plane's layering, checked from its sources (as rust-analyzer's tidy tests
//! check theirs): a module may use modules of its own layer and the layers below, never
//! one above; no two top-level modules import each other, directly or around a cycle;
//! below the HTTP edge nothing names an HTTP type; and each crate depends only on the
//! crates of layers below it.
//!
//! The allowed directions are written once, in [`LAYERS`]; where each module's source
//! lives, in [`CRATES`]. A new module or crate must be placed before this test passes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, lowest first. Each may use itself and everything before it.
const LAYERS: &[(&str, &[&str])] = &[
    // Bytes at rest: the database and its migrations, the object store.
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
            "alerts",
            "dashboard_sessions",
            "onboarding",
            "fleet",
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
            "dashboard",
            "error_edge",
            "config",
            "sandbox",
            "onnx_inspector",
            "serve",
            "cli",
            "telemetry",
            "alert_delivery",
            "fleet_member",
        ],
    ),
    // The `wisp` CLI's client of a running server.
    ("client", &["client"]),
];

/// Where the modules live: a crate's directory under `control-plane/`, its name in paths,
/// and the module its root file belongs to. A crate whose root is one module (`Some`) holds
/// that module alone, except the top-level modules listed after it, which keep their own
/// names; a crate with no root module (`None`) holds one module per top-level file or
/// directory.
const CRATES: &[(&str, &str, Option<&str>, &[&str])] = &[
    ("storage", "wisp_storage", None, &[]),
    ("core", "wisp_core", None, &[]),
    ("metering", "wisp_metering", Some("metering"), &[]),
    ("domain", "wisp_domain", Some("domain"), &[]),
    ("serving", "wisp_serving", Some("serving"), &["batch"]),
    ("mlflow", "wisp_mlflow", Some("mlflow"), &[]),
    (".", "wisp", None, &[]),
];

/// The edge's own `error` module (the wrapper of the domain error) is not the domain's.
fn module_name(krate: &str, name: &str) -> String {
    if krate == "wisp" && name == "error" {
        "error_edge".to_owned()
    } else {
        name.to_owned()
    }
}

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

fn control_plane() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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

/// The first path component of a file under `src` (`None` for the crate roots).
fn top_level(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).expect("under src");
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// The module a file of a crate belongs to (`None`: a root of a crate without one).
fn module_of(krate: &str, root: Option<&str>, own: &[&str], top: Option<String>) -> Option<String> {
    match (root, top) {
        (_, Some(top)) if own.contains(&top.as_str()) => Some(top),
        (Some(root), _) => Some(root.to_owned()),
        (None, top) => top.map(|top| module_name(krate, &top)),
    }
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

/// The names `code` uses after `prefix` (`crate::` or `wisp_x::`), including in
/// `use prefix{a, b::c}` groups.
fn path_heads(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().next_back();
        let after = &rest[at + prefix.len()..];
        rest = after;
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = after.strip_prefix('{') {
            // Top-level names of a `prefix{a, b::c, d::{e, f}}` group.
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
    }
    found
}

/// The modules a file of `krate` uses: through `crate::` (its own crate's top-level names,
/// or the lower modules its root imports under their names) and through other crates'
/// names (`wisp_core::orgs`, `use wisp_metering as metering`).
fn module_references(
    code: &str,
    krate: &str,
    own_root: Option<&str>,
    own_dir: &Path,
) -> BTreeSet<String> {
    let own_submodules: BTreeSet<String> = fs::read_dir(own_dir.join("src"))
        .expect("read src")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .map(|n| n.trim_end_matches(".rs").to_owned())
        })
        .collect();
    let own_modules: &[&str] = CRATES.iter().find(|c| c.1 == krate).map_or(&[], |c| c.3);
    let mut found = BTreeSet::new();
    for name in path_heads(code, "crate::") {
        let module = match own_root {
            _ if own_modules.contains(&name.as_str()) => name,
            // A file of this crate's one module.
            Some(root) if own_submodules.contains(&name) => root.to_owned(),
            // A top-level module, or a lower one the crate root imports under its name.
            _ => module_name(krate, &name),
        };
        found.insert(module);
    }
    for (_, other, root, _) in CRATES {
        if *other == krate {
            continue;
        }
        let prefix = format!("{other}::");
        match root {
            Some(root) if code.contains(&prefix) || code.contains(&format!("{other} as")) => {
                let heads = path_heads(code, &prefix);
                let own: &[&str] = CRATES.iter().find(|c| c.1 == *other).unwrap().3;
                if heads.iter().any(|h| !own.contains(&h.as_str())) || heads.is_empty() {
                    found.insert((*root).to_owned());
                }
                found.extend(heads.into_iter().filter(|h| own.contains(&h.as_str())));
            }
            Some(_) => {}
            None => found.extend(path_heads(code, &prefix)),
        }
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

/// Every module and the modules it uses; and where a module names an HTTP crate.
fn module_graph() -> (
    BTreeMap<String, BTreeSet<String>>,
    BTreeMap<String, Vec<String>>,
) {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut http: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (dir, krate, root, own) in CRATES {
        let crate_dir = control_plane().join(dir);
        let src = crate_dir.join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for file in files {
            let Some(module) = module_of(krate, *root, own, top_level(&src, &file)) else {
                continue;
            };
            let text = fs::read_to_string(&file).expect("read");
            let code = code(&text);
            let uses = graph.entry(module.clone()).or_default();
            uses.extend(
                module_references(&code, krate, *root, &crate_dir)
                    .into_iter()
                    .filter(|used| *used != module),
            );
            for krate in http_references(&code) {
                let relative = file
                    .strip_prefix(control_plane())
                    .unwrap()
                    .display()
                    .to_string();
                http.entry(module.clone())
                    .or_default()
                    .push(format!("{relative} names `{krate}`"));
            }
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

/// The modules of each crate.
fn crate_modules() -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut modules = BTreeMap::new();
    for (dir, krate, root, own) in CRATES {
        let src = control_plane().join(dir).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let found: &mut BTreeSet<String> = modules.entry(*krate).or_default();
        found.extend(
            files
                .iter()
                .filter_map(|file| module_of(krate, *root, own, top_level(&src, file))),
        );
    }
    modules
}

/// The compiler holds the crate graph acyclic; this holds it to [`LAYERS`]' direction.
#[test]
fn each_crate_depends_only_on_crates_of_the_layers_below() {
    let modules = crate_modules();
    let layers = |krate: &str| -> Vec<usize> {
        modules[krate]
            .iter()
            .map(|m| layer_of(m).unwrap_or_else(|| panic!("`{m}` is in no layer")))
            .collect()
    };
    let mut problems = Vec::new();
    for (dir, krate, _, _) in CRATES {
        let manifest = fs::read_to_string(control_plane().join(dir).join("Cargo.toml"))
            .expect("read Cargo.toml");
        let dependencies = manifest
            .split("\n[")
            .find(|section| section.starts_with("dependencies]"))
            .unwrap_or_default();
        let lowest = *layers(krate).iter().min().expect("a crate has modules");
        for line in dependencies.lines().skip(1) {
            let name = line
                .split(['.', ' ', '='])
                .next()
                .unwrap_or_default()
                .replace('-', "_");
            if name == *krate || !CRATES.iter().any(|c| c.1 == name) {
                continue;
            }
            let highest = *layers(&name).iter().max().expect("a crate has modules");
            if highest >= lowest && name != *krate {
                problems.push(format!(
                    "`{krate}` depends on `{name}`, whose modules reach layer `{}` (not below `{}`)",
                    LAYERS[highest].0, LAYERS[lowest].0
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

/// The checks themselves: a forbidden import is found, in every spelling.
#[test]
fn the_checks_see_what_they_must() {
    let dir = |d: &str| control_plane().join(d);
    let set = |names: &[&str]| {
        names
            .iter()
            .map(|n| (*n).to_owned())
            .collect::<BTreeSet<_>>()
    };
    let edge = code(
        "use crate::{db::Db, api::AppState};\n// use crate::cli;\nlet x = crate::serving::x();\n",
    );
    assert_eq!(
        module_references(&edge, "wisp", None, &dir(".")),
        set(&["api", "db", "serving"])
    );
    // A crate of one module: its own files are that module, the lower modules its root
    // imports keep their names, other crates count by name.
    let metering = code(
        "use crate::store::Store;\nuse crate::orgs::Org;\nuse wisp_core::deployments;\n\
         use wisp_domain as domain;\nlet j = wisp_serving::batch::Job::new();\n",
    );
    let found = module_references(
        &metering,
        "wisp_metering",
        Some("metering"),
        &dir("metering"),
    );
    assert_eq!(
        found,
        set(&["batch", "deployments", "domain", "metering", "orgs"])
    );
    assert!(
        layer_of("domain") > layer_of("metering"),
        "an upward import is seen as one"
    );
    // The domain crate's own `deployments` is not the records' one.
    let domain = code("use crate::deployments::deploy;\nuse wisp_core::deployments::get;\n");
    assert_eq!(
        module_references(&domain, "wisp_domain", Some("domain"), &dir("domain")),
        set(&["deployments", "domain"])
    );
    assert_eq!(
        http_references("use axum::Json; let h: http::HeaderMap;"),
        ["axum", "http"]
    );
    assert!(http_references("let x = my_axum::y; use tracing::http_like;").is_empty());
    assert!(layer_of("db") < layer_of("api"));
}
