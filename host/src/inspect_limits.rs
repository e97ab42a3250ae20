//! Bounds on what an upload may ask of the host before it is accepted: the refusal type
//! every pre-check answers with, and the checks on WebAssembly components (size, counts,
//! function sizes) made by a streaming `wasmparser` walk before Cranelift sees the bytes.
//!
//! What a pre-check cannot see (the real cost of compiling or optimising) is bounded by the
//! control plane running the compile or the ONNX load in a child process under a memory and
//! time budget; see `docs/ARCHITECTURE.md`.

use serde::{Deserialize, Serialize};
use wasmparser::{Imports, Parser, Payload};

/// Why an upload was refused by a bound, with the bound. `reason` is a stable,
/// machine-readable word (`too_many_nodes`, `function_too_large`, …) that the API returns as
/// `details.reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (limit {limit}, {reason})")]
pub struct LimitExceeded {
    /// Stable name of the bound.
    pub reason: &'static str,
    /// The configured bound.
    pub limit: u64,
    /// What the file has or asks for, in words.
    pub message: String,
}

impl LimitExceeded {
    pub(crate) fn new(reason: &'static str, limit: u64, message: impl Into<String>) -> Self {
        Self {
            reason,
            limit,
            message: message.into(),
        }
    }

    /// Fails with `reason` when `got` is over `limit`.
    pub(crate) fn check(
        reason: &'static str,
        got: u64,
        limit: u64,
        what: &str,
    ) -> Result<(), Self> {
        if got > limit {
            return Err(Self::new(
                reason,
                limit,
                format!("{what}: {got}, at most {limit} allowed"),
            ));
        }
        Ok(())
    }
}

/// Bounds on an uploaded WebAssembly component, checked before it is compiled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComponentLimits {
    /// Largest component file, in bytes.
    pub max_bytes: u64,
    /// Core functions (defined and imported) over all modules of the component.
    pub max_functions: u64,
    /// Imports over the component and its modules.
    pub max_imports: u64,
    /// Largest body of one function, in bytes: Cranelift's cost grows faster than
    /// linearly with the size of one function, far less with their number.
    pub max_function_bytes: u64,
    /// Core modules and nested components.
    pub max_modules: u64,
}

impl Default for ComponentLimits {
    fn default() -> Self {
        Self {
            max_bytes: 64 << 20,
            max_functions: 100_000,
            max_imports: 10_000,
            max_function_bytes: 1 << 20,
            max_modules: 100,
        }
    }
}

/// Checks the component's size and counts with a streaming parse: no allocation that grows
/// with what the file declares, nothing compiled. Malformed files pass here; the compiler's
/// validation refuses them with its own message.
pub fn check_component(bytes: &[u8], limits: &ComponentLimits) -> Result<(), LimitExceeded> {
    LimitExceeded::check(
        "component_too_large",
        bytes.len() as u64,
        limits.max_bytes,
        "component bytes",
    )?;
    let (mut functions, mut imports, mut modules) = (0u64, 0u64, 0u64);
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else {
            return Ok(());
        };
        match payload {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => {
                modules += 1;
                LimitExceeded::check(
                    "too_many_modules",
                    modules,
                    limits.max_modules,
                    "core modules and nested components",
                )?;
            }
            Payload::FunctionSection(section) => {
                functions += u64::from(section.count());
            }
            Payload::ImportSection(section) => {
                for group in section {
                    let Ok(group) = group else {
                        return Ok(());
                    };
                    let count = match group {
                        Imports::Single(..) => 1,
                        Imports::Compact1 { items, .. } => items.count(),
                        Imports::Compact2 { names, .. } => names.count(),
                    };
                    // Each import may be a function: counted as both, which only makes
                    // the function bound stricter by the number of imports.
                    imports += u64::from(count);
                    functions += u64::from(count);
                }
            }
            Payload::ComponentImportSection(section) => {
                imports += u64::from(section.count());
            }
            Payload::CodeSectionEntry(body) => {
                let size = body.range().len() as u64;
                LimitExceeded::check(
                    "function_too_large",
                    size,
                    limits.max_function_bytes,
                    "bytes of one function body",
                )?;
            }
            _ => {}
        }
        LimitExceeded::check(
            "too_many_functions",
            functions,
            limits.max_functions,
            "core functions",
        )?;
        LimitExceeded::check("too_many_imports", imports, limits.max_imports, "imports")?;
    }
    Ok(())
}

/// Compiles `bytes` with the code generator settings of the runtime's engine, without its
/// instance pool (which reserves address space a budgeted process does not have), and drops
/// the result: what the control plane's sandboxed child runs to prove that a component
/// compiles within the budget before the runtime compiles it.
pub fn compile_component(bytes: &[u8]) -> Result<(), crate::RuntimeError> {
    let engine = crate::engine::build_compile_engine()
        .map_err(|e| crate::RuntimeError::internal("building the compile engine failed", e))?;
    wasmtime::component::Component::new(&engine, bytes)
        .map(drop)
        .map_err(|e| crate::RuntimeError::InvalidComponent(format!("{e:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wisp_test_artifacts::bombs;

    #[test]
    fn real_components_pass() {
        let component =
            wisp_test_artifacts::component(wisp_test_artifacts::components::ONNX_RUNNER);
        check_component(&component, &ComponentLimits::default()).unwrap();
    }

    #[test]
    fn counts_and_sizes_are_bounded() {
        let limits = ComponentLimits::default();
        let many = bombs::component_with_functions(200_000, 4);
        assert_eq!(
            check_component(&many, &limits).unwrap_err().reason,
            "too_many_functions"
        );
        let big = bombs::component_with_functions(1, 2 << 20);
        assert_eq!(
            check_component(&big, &limits).unwrap_err().reason,
            "function_too_large"
        );
        let small = ComponentLimits {
            max_bytes: 10,
            ..limits
        };
        assert_eq!(
            check_component(&many, &small).unwrap_err().reason,
            "component_too_large"
        );
    }

    #[test]
    fn generated_components_compile_when_small() {
        compile_component(&bombs::component_with_functions(3, 16)).unwrap();
    }
}
