//! The ai.onnx.ml operators scikit-learn and onnxmltools exports use, for the tract
//! backend: registered in tract-onnx's operator registry next to its own, replacing those
//! tract runs differently from onnxruntime (`LinearClassifier`, `TreeEnsembleClassifier`,
//! `ArrayFeatureExtractor`, `CategoryMapper`).
//!
//! Every operator is one node computed in plain Rust from attributes parsed once at load
//! (`kernel.rs`), so a call is a pass over its input: trees are flattened into arrays,
//! support vectors and weights are contiguous. Semantics follow onnxruntime, the reference
//! the coverage suite (`host/tests/onnx_ml.rs`) compares with.
//!
//! tract-onnx's own `LinearRegressor` and `Normalizer` are kept: they agree with
//! onnxruntime on the fixtures. Its `CategoryMapper` is replaced, to share the lookup
//! tables of `LabelEncoder`.

mod kernel;
mod linear;
mod post_transform;
mod preprocess;
mod svm;
mod trees;

/// tract's ONNX loader with the ai.onnx.ml operators of this module.
pub(crate) fn onnx() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx();
    let reg = &mut onnx.op_register;
    preprocess::register(reg);
    linear::register(reg);
    svm::register(reg);
    trees::register(reg);
    onnx
}
