//! The plumbing every ai.onnx.ml operator here shares: a [`Kernel`] computes one node in
//! plain Rust from attributes parsed once at load; [`expansion`] turns it into what tract's
//! ONNX registry builds (inference rules from the kernel's declared outputs), and the typed
//! op it wires evaluates the kernel per call. One op per ONNX node, no tract sub-graph: the
//! hot path is one pass over the input with no intermediate tensors.

use std::fmt::Debug;
use std::sync::Arc;
use tract_onnx::tract_hir::internal::*;

/// The shape of an output, in terms of input 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// The shape of input 0.
    Same,
    /// `[N, k]`, `N` the first dimension of input 0.
    Rows(usize),
    /// `[N]`, one label per row of input 0.
    Labels,
    /// The shape of input 0 with one more axis of `k` at the end.
    Append(usize),
    /// The shape of input 0 (as `[1, n]` if it is a vector) with its last axis as long as
    /// input 1 has elements: `ArrayFeatureExtractor`.
    PickLast,
}

/// The element type of an output.
#[derive(Debug, Clone, Copy)]
pub(super) enum OutputType {
    Fixed(DatumType),
    /// That of input 0.
    Input,
    /// A function of input 0's (`CategoryMapper`: strings to int64 and back).
    Of(fn(DatumType) -> DatumType),
}

impl OutputType {
    fn of(self, input: DatumType) -> DatumType {
        match self {
            Self::Fixed(dt) => dt,
            Self::Input => input,
            Self::Of(map) => map(input),
        }
    }
}

/// What a kernel declares of one output: its element type and its shape.
#[derive(Debug, Clone, Copy)]
pub(super) struct Output {
    pub dt: OutputType,
    pub shape: Shape,
}

impl Output {
    pub fn new(dt: DatumType, shape: Shape) -> Self {
        Self {
            dt: OutputType::Fixed(dt),
            shape,
        }
    }

    pub fn same_type(shape: Shape) -> Self {
        Self {
            dt: OutputType::Input,
            shape,
        }
    }

    pub fn typed_by_input(map: fn(DatumType) -> DatumType, shape: Shape) -> Self {
        Self {
            dt: OutputType::Of(map),
            shape,
        }
    }
}

/// One ai.onnx.ml node, computed in plain Rust.
pub(super) trait Kernel: Debug + Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// How many inputs the node takes.
    fn inputs(&self) -> usize {
        1
    }

    /// Input 0's rank, when the kernel needs one (classifiers and regressors read rows).
    fn input_rank(&self) -> Option<usize> {
        None
    }

    fn outputs(&self) -> TVec<Output>;

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>>;
}

/// The inference op tract's registry holds for a node computed by `kernel`.
pub(super) fn expansion(kernel: impl Kernel) -> Box<dyn InferenceOp> {
    expand(MlExpansion(Arc::new(kernel)))
}

#[derive(Debug, Clone)]
struct MlExpansion(Arc<dyn Kernel>);

impl Expansion for MlExpansion {
    fn name(&self) -> StaticName {
        self.0.name().into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(self.0.outputs().len())
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, self.0.inputs())?;
        let declared = self.0.outputs();
        check_output_arity(outputs, declared.len())?;
        if let Some(rank) = self.0.input_rank() {
            s.equals(&inputs[0].rank, rank as i64)?;
        }
        for (output, declared) in outputs.iter().zip(declared) {
            match declared.dt {
                OutputType::Fixed(dt) => s.equals(&output.datum_type, dt)?,
                OutputType::Input => s.equals(&output.datum_type, &inputs[0].datum_type)?,
                OutputType::Of(map) => {
                    s.given(&inputs[0].datum_type, move |s, dt| {
                        s.equals(&output.datum_type, map(dt))
                    })?;
                }
            }
            match declared.shape {
                Shape::Same => s.equals(&output.shape, &inputs[0].shape)?,
                Shape::Rows(k) => {
                    s.equals(&output.rank, 2)?;
                    s.equals(&output.shape[0], &inputs[0].shape[0])?;
                    s.equals(&output.shape[1], k.to_dim())?;
                }
                Shape::Labels => {
                    s.equals(&output.rank, 1)?;
                    s.equals(&output.shape[0], &inputs[0].shape[0])?;
                }
                Shape::PickLast => {
                    s.given_2(
                        &inputs[0].shape,
                        &inputs[1].shape,
                        move |s, data, picked| {
                            let shape = pick_last(&data, &picked);
                            s.equals(&output.shape, ShapeFactoid::from(shape.to_vec()))
                        },
                    )?;
                }
                Shape::Append(k) => {
                    s.equals(&output.rank, inputs[0].rank.bex() + 1)?;
                    s.given(&inputs[0].shape, move |s, shape| {
                        let mut shape = shape.to_vec();
                        shape.push(k.to_dim());
                        s.equals(&output.shape, ShapeFactoid::from(shape))
                    })?;
                }
            }
        }
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, MlOp(self.0.clone()), inputs)
    }
}

/// The typed op: evaluates the kernel.
#[derive(Debug, Clone)]
struct MlOp(Arc<dyn Kernel>);

/// Two nodes are the same op when they share one kernel (kernels are built once per node).
impl PartialEq for MlOp {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for MlOp {}

impl Op for MlOp {
    fn name(&self) -> StaticName {
        self.0.name().into()
    }

    op_as_typed_op!();
}

impl EvalOp for MlOp {
    op_out_of_plan!();

    fn eval(&self, _: &EvalContext<'_>, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        self.0.eval(inputs)
    }
}

impl TypedOp for MlOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let input = inputs[0];
        if let Some(rank) = self.0.input_rank() {
            ensure!(
                input.rank() == rank,
                "{} takes a rank {rank} input, got {:?}",
                self.0.name(),
                input.shape
            );
        }
        Ok(self
            .0
            .outputs()
            .into_iter()
            .map(|declared| {
                let dt = declared.dt.of(input.datum_type);
                let dims: TVec<TDim> = match declared.shape {
                    Shape::Same => input.shape.iter().cloned().collect(),
                    Shape::Rows(k) => tvec![input.shape[0].clone(), k.to_dim()],
                    Shape::Labels => tvec![input.shape[0].clone()],
                    Shape::Append(k) => {
                        let mut dims: TVec<TDim> = input.shape.iter().cloned().collect();
                        dims.push(k.to_dim());
                        dims
                    }
                    Shape::PickLast => {
                        let data: TVec<TDim> = input.shape.iter().cloned().collect();
                        let picked: TVec<TDim> = inputs[1].shape.iter().cloned().collect();
                        pick_last(&data, &picked)
                    }
                };
                dt.fact(dims)
            })
            .collect())
    }

    as_op!();
}

/// `ArrayFeatureExtractor`'s output shape for `data` and `picked` (indices) shapes.
fn pick_last(data: &[TDim], picked: &[TDim]) -> TVec<TDim> {
    let count = picked.iter().cloned().product::<TDim>();
    let mut shape: TVec<TDim> = if data.len() < 2 {
        tvec![1.to_dim()]
    } else {
        data[..data.len() - 1].iter().cloned().collect()
    };
    shape.push(count);
    shape
}

/// Input `value` as f32 values (a copy only when it is of another type), with its shape.
pub(super) fn floats(value: &TValue) -> TractResult<std::borrow::Cow<'_, Tensor>> {
    value.cast_to::<f32>()
}

/// The f32 elements of a tensor already cast with [`floats`].
pub(super) fn as_f32(tensor: &Tensor) -> TractResult<&[f32]> {
    tensor.try_as_plain_ram()?.as_slice::<f32>()
}

/// `[rows, columns]` of a rank 2 input (or a rank 1 input as one row).
pub(super) fn rows_and_columns(tensor: &Tensor) -> (usize, usize) {
    match tensor.shape() {
        [] => (1, 1),
        [columns] => (1, *columns),
        shape => (shape[0], shape[1..].iter().product()),
    }
}

/// A tensor of `shape` owning `values`, without copying them.
pub(super) fn tensor_of<T: Datum>(shape: &[usize], values: Vec<T>) -> TractResult<TValue> {
    Ok(tract_ndarray::ArrayD::from_shape_vec(shape, values)?
        .into_tensor()
        .into_tvalue())
}

/// The class labels of a classifier. Kernels compute with `ids` (the labels themselves, or
/// for string labels their indices) and write the label output through [`Self::tensor`].
#[derive(Debug)]
pub(super) struct ClassLabels {
    pub ids: Vec<i64>,
    /// `classlabels_strings`, if the classes are strings.
    names: Option<Vec<String>>,
}

impl ClassLabels {
    /// Reads `ints_attr` (`classlabels_ints` or `classlabels_int64s`) or
    /// `classlabels_strings`.
    pub fn parse(node: &tract_onnx::pb::NodeProto, ints_attr: &str) -> TractResult<Self> {
        if let Some(ids) = node.get_attr_opt_vec::<i64>(ints_attr)? {
            return Ok(Self { ids, names: None });
        }
        if let Some(names) = node.get_attr_opt_tvec::<&str>("classlabels_strings")? {
            return Ok(Self {
                ids: (0..names.len() as i64).collect(),
                names: Some(names.iter().map(|&name| name.to_owned()).collect()),
            });
        }
        bail!(
            "{} has no class labels ({ints_attr} or classlabels_strings)",
            node.op_type
        )
    }

    /// The element type of the label output.
    pub fn datum_type(&self) -> DatumType {
        match self.names {
            Some(_) => String::datum_type(),
            None => i64::datum_type(),
        }
    }

    /// The label output of `rows` picked ids.
    pub fn tensor(&self, picked: Vec<i64>) -> TractResult<TValue> {
        let rows = picked.len();
        match &self.names {
            None => tensor_of(&[rows], picked),
            Some(names) => {
                let strings = picked
                    .iter()
                    .map(|&id| {
                        usize::try_from(id)
                            .ok()
                            .and_then(|id| names.get(id))
                            .cloned()
                            .unwrap_or_default()
                    })
                    .collect();
                tensor_of(&[rows], strings)
            }
        }
    }
}
