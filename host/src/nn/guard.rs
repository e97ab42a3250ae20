//! The guard around every node of a graph run: the run stops between two nodes at the
//! call's deadline, and a node whose outputs would not fit in what is left of the call's
//! memory is refused before tract allocates them.
//!
//! Epochs cannot interrupt the backend, and tract runs a plan node by node; so the guard
//! looks at the clock before each node. Most nodes' output sizes are known when the graph
//! is loaded ([`NodeCost::Fixed`]); the others depend on the call's input shapes (a batch
//! dimension), answered by the symbols tract has resolved so far, or on input *values* (an
//! ONNX `Range`, `ConstantOfShape`, `Expand` or `Tile` fed by an input), answered by typing
//! the node on its concrete inputs. The guard keeps a running total of the bytes of values
//! still needed by a later node, freed after their last consumer ran, so a deep network of
//! small activations is not charged for every layer at once.

use std::time::{Duration, Instant};
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::plan::eval;

/// Inputs up to this many elements are handed to a value-dependent node's typing as
/// constants (shape vectors, scalars: what `Range` or `Expand` read); larger ones by shape.
const KONST_ELEMENTS: usize = 64;

/// What the guard knows of each node of a plan, computed once per graph.
#[derive(Debug, Default)]
pub(crate) struct GraphCosts {
    /// Indexed by node id.
    nodes: Vec<NodeCost>,
    /// For each node id, the nodes whose values are no longer needed once it ran.
    frees_after: Vec<Box<[usize]>>,
    /// The bytes of every value the run makes, all alive at once: when this fits in a
    /// call's budget, no node can overrun it and the run is not tracked node by node.
    total: TDim,
}

#[derive(Debug, Clone)]
enum NodeCost {
    /// Output bytes known from the model alone.
    Fixed(usize),
    /// Output bytes as an expression of symbols: the graph's (a batch dimension), resolved
    /// by tract early in the run, so one evaluation per call; or symbols standing for input
    /// values, which never resolve and send the guard to typing the node on its inputs.
    Symbolic(TDim),
}

impl NodeCost {
    fn of(node: &TypedNode) -> Self {
        let fixed: Option<usize> = node
            .outputs
            .iter()
            .map(|output| concrete_bytes(&output.fact))
            .sum();
        if let Some(bytes) = fixed {
            return Self::Fixed(bytes);
        }
        let bytes = node.outputs.iter().fold(TDim::Val(0), |total, output| {
            let fact = &output.fact;
            let size = TDim::from(fact.datum_type.size_of());
            total
                + fact
                    .shape
                    .iter()
                    .fold(size, |bytes, dim| bytes * dim.clone())
        });
        Self::Symbolic(bytes.simplify())
    }
}

impl GraphCosts {
    pub(crate) fn of(plan: &TypedSimplePlan) -> Self {
        let model = plan.model();
        let nodes: Vec<NodeCost> = model.nodes().iter().map(NodeCost::of).collect();
        // The last node (in plan order) that reads each value; graph outputs live to the end.
        let mut last_reader: Vec<Option<usize>> = vec![None; model.nodes().len()];
        for &id in plan.order_without_consts() {
            for input in &model.node(id).inputs {
                last_reader[input.node] = Some(id);
            }
        }
        for output in model.output_outlets().into_iter().flatten() {
            last_reader[output.node] = None;
        }
        let mut frees_after: Vec<Vec<usize>> = vec![Vec::new(); model.nodes().len()];
        for (value, reader) in last_reader.into_iter().enumerate() {
            if let Some(reader) = reader {
                frees_after[reader].push(value);
            }
        }
        let total = plan
            .order_without_consts()
            .iter()
            .fold(TDim::Val(0), |total, &id| match &nodes[id] {
                NodeCost::Fixed(bytes) => total + TDim::Val(*bytes as i64),
                NodeCost::Symbolic(bytes) => total + bytes.clone(),
            })
            .simplify();
        Self {
            nodes,
            frees_after: frees_after.into_iter().map(Vec::into_boxed_slice).collect(),
            total,
        }
    }
}

/// Where one run must stop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunBounds {
    /// No node starts at or after this instant.
    pub(crate) deadline: Instant,
    /// A call running in place on an executor thread gives the thread back at this instant
    /// (the runtime runs it again on the pool).
    pub(crate) yield_at: Option<Instant>,
    /// Bytes the run's values may hold at once.
    pub(crate) memory_bytes: usize,
}

/// Why the guard stopped a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The call's deadline passed.
    Deadline,
    /// The next node's outputs would not fit in the call's memory.
    Memory,
    /// The call ran in place longer than a call in place may.
    Yield,
}

impl RunBounds {
    /// No bound: for callers outside a request (benchmarks, inspection).
    pub(crate) fn none() -> Self {
        Self {
            deadline: Instant::now() + Duration::from_secs(365 * 24 * 3600),
            yield_at: None,
            memory_bytes: usize::MAX,
        }
    }
}

/// The state of the guard during one run.
pub(crate) struct Guard<'a> {
    costs: &'a GraphCosts,
    bounds: RunBounds,
    /// Whether this run's values are tracked node by node; decided at the first node,
    /// when tract has resolved the symbols the inputs give.
    tracking: Option<bool>,
    live: usize,
    /// Bytes of each node's current values, by node id (while tracking).
    held: Vec<usize>,
    /// Why the guard stopped the run, if it did.
    stopped: Option<Stop>,
}

impl<'a> Guard<'a> {
    pub(crate) fn new(costs: &'a GraphCosts, bounds: RunBounds) -> Self {
        Self {
            costs,
            bounds,
            tracking: None,
            live: 0,
            held: Vec::new(),
            stopped: None,
        }
    }

    /// Why the run was stopped by the guard, if it was.
    pub(crate) fn take_stop(&mut self) -> Option<Stop> {
        self.stopped.take()
    }

    /// Evaluates one node, if the clock and the memory budget allow it.
    pub(crate) fn eval(
        &mut self,
        context: &EvalContext<'_>,
        state: Option<&mut (dyn OpState + 'static)>,
        node: &TypedNode,
        inputs: TVec<TValue>,
    ) -> TractResult<TVec<TValue>> {
        let now = Instant::now();
        if now >= self.bounds.deadline {
            return self.stop(Stop::Deadline);
        }
        if self.bounds.yield_at.is_some_and(|at| now >= at) {
            return self.stop(Stop::Yield);
        }
        if !*self.tracking.get_or_insert_with(|| {
            let fits = self
                .costs
                .total
                .eval_to_i64(context.symbols)
                .ok()
                .and_then(|total| usize::try_from(total).ok())
                .is_some_and(|total| total <= self.bounds.memory_bytes);
            !fits
        }) {
            return eval(context, state, node, inputs);
        }
        if self.held.is_empty() {
            self.held = vec![0; self.costs.nodes.len()];
        }
        let predicted = match self.costs.nodes.get(node.id) {
            Some(NodeCost::Fixed(bytes)) => Some(*bytes),
            Some(NodeCost::Symbolic(bytes)) => bytes
                .eval_to_i64(context.symbols)
                .ok()
                .and_then(|bytes| usize::try_from(bytes).ok()),
            None => None,
        };
        let predicted = predicted
            .or_else(|| predicted_bytes(context, node, &inputs))
            .unwrap_or(0);
        if self.live.saturating_add(predicted) > self.bounds.memory_bytes {
            return self.stop(Stop::Memory);
        }
        let outputs = eval(context, state, node, inputs)?;
        let produced: usize = outputs.iter().map(|value| tensor_bytes(value)).sum();
        self.live += produced;
        if let Some(held) = self.held.get_mut(node.id) {
            *held = produced;
        }
        // A node whose size could not be predicted is charged once it exists.
        if self.live > self.bounds.memory_bytes {
            return self.stop(Stop::Memory);
        }
        let costs = self.costs;
        if let Some(freed) = costs.frees_after.get(node.id) {
            for &value in freed.iter() {
                self.live -= std::mem::take(&mut self.held[value]);
            }
        }
        Ok(outputs)
    }

    fn stop(&mut self, reason: Stop) -> TractResult<TVec<TValue>> {
        self.stopped = Some(reason);
        bail!("stopped by the run's guard: {reason:?}")
    }
}

/// Output bytes of a node whose shapes depend on the call: its declared shapes under the
/// symbols resolved so far, or else the node typed on its concrete inputs. `None` when
/// neither gives concrete shapes (an op whose output size depends on every input value,
/// like `NonZero`: charged once computed).
fn predicted_bytes(
    context: &EvalContext<'_>,
    node: &TypedNode,
    inputs: &[TValue],
) -> Option<usize> {
    let declared: Option<usize> = node
        .outputs
        .iter()
        .map(|output| resolved_bytes(&output.fact, context.symbols))
        .sum();
    if declared.is_some() {
        return declared;
    }
    let facts: TVec<TypedFact> = inputs
        .iter()
        .map(|value| {
            if value.len() <= KONST_ELEMENTS {
                TypedFact::try_from(value.clone().into_arc_tensor())
                    .unwrap_or_else(|_| TypedFact::shape_and_dt_of(value))
            } else {
                TypedFact::shape_and_dt_of(value)
            }
        })
        .collect();
    let refs: TVec<&TypedFact> = facts.iter().collect();
    let outputs = node.op.output_facts(&refs).ok()?;
    outputs
        .iter()
        .map(|fact| resolved_bytes(fact, context.symbols))
        .sum()
}

fn concrete_bytes(fact: &TypedFact) -> Option<usize> {
    let elements = fact
        .shape
        .as_concrete()?
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))?;
    Some(elements.saturating_mul(fact.datum_type.size_of()))
}

/// Bytes of a fact's shape under `symbols`; saturates rather than overflows, so an absurd
/// shape is simply too large.
fn resolved_bytes(fact: &TypedFact, symbols: &SymbolValues) -> Option<usize> {
    let mut elements = 1usize;
    for dim in fact.shape.iter() {
        // Not `to_i64`: its error for a symbolic dimension formats the symbol, and this
        // runs before every node of every call.
        let dim = match dim {
            TDim::Val(value) => *value,
            symbolic => symbolic.eval_to_i64(symbols).ok()?,
        };
        elements = elements.saturating_mul(usize::try_from(dim).ok()?);
    }
    Some(elements.saturating_mul(fact.datum_type.size_of()))
}

fn tensor_bytes(value: &Tensor) -> usize {
    value.len().saturating_mul(value.datum_type().size_of())
}
