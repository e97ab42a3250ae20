//! Write wisp model components in safe Rust.
//!
//! A model component receives named input tensors, runs inference (usually on the graph
//! the host prepared for it, through wasi-nn) and returns named output tensors. With this
//! crate one is a few lines:
//!
//! ```no_run
//! use wisp_guest::{Error, Graph, Model, NamedTensor, Signature};
//!
//! struct PassThrough;
//!
//! impl Model for PassThrough {
//!     fn predict(inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, Error> {
//!         Graph::load_own()?.compute(inputs)
//!     }
//!
//!     fn signature() -> Signature {
//!         wisp_guest::model_info().graph_signature.unwrap_or_default()
//!     }
//! }
//!
//! wisp_guest::export_model!(PassThrough);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2`; the `.wasm` file is the
//! component to upload. The [`ops`] helpers (softmax, argmax, top-k, normalisation) work on
//! plain slices and run anywhere.

#![deny(missing_docs)]

mod graph;
mod host;
pub mod ops;
mod tensor;

#[doc(hidden)]
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "wisp:model/model",
        pub_export_macro: true,
        export_macro_name: "__export_model_world",
        default_bindings_module: "wisp_guest::bindings",
        generate_all,
    });
}

pub use bindings::wisp::model::host::{LogLevel, ServedModel};
pub use bindings::wisp::model::types::{
    Error, NamedTensor, Signature, Tensor, TensorSpec, TensorType,
};
pub use graph::Graph;
pub use host::{log, metadata, model_info};
pub use tensor::Element;

/// A model component: implement this and name the type in [`export_model!`].
pub trait Model {
    /// Runs one prediction on named inputs.
    fn predict(inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, Error>;

    /// The inputs `predict` accepts and the outputs it returns.
    fn signature() -> Signature;
}

/// Exports a [`Model`] implementation as the component's `wisp:model/predictor`.
#[macro_export]
macro_rules! export_model {
    ($model:ty) => {
        const _: () = {
            struct __WispPredictor;

            impl $crate::bindings::exports::wisp::model::predictor::Guest for __WispPredictor {
                fn predict(
                    inputs: ::std::vec::Vec<$crate::NamedTensor>,
                ) -> ::std::result::Result<::std::vec::Vec<$crate::NamedTensor>, $crate::Error>
                {
                    <$model as $crate::Model>::predict(inputs)
                }

                fn describe() -> $crate::Signature {
                    <$model as $crate::Model>::signature()
                }
            }

            $crate::bindings::__export_model_world!(__WispPredictor with_types_in $crate::bindings);
        };
    };
}

impl Default for Signature {
    fn default() -> Self {
        Self {
            inputs: Vec::new(),
            outputs: Vec::new(),
        }
    }
}

impl NamedTensor {
    /// Binds `tensor` to `name`.
    pub fn new(name: impl Into<String>, tensor: Tensor) -> Self {
        Self {
            name: name.into(),
            tensor,
        }
    }
}

/// Removes and returns the input called `name`, or an `invalid-input` error naming it.
pub fn take_input(inputs: &mut Vec<NamedTensor>, name: &str) -> Result<Tensor, Error> {
    let index = inputs
        .iter()
        .position(|input| input.name == name)
        .ok_or_else(|| Error::InvalidInput(format!("missing input `{name}`")))?;
    Ok(inputs.swap_remove(index).tensor)
}
