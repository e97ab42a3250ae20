//! `TreeEnsembleClassifier` and `TreeEnsembleRegressor` (ai.onnx.ml 1 and 3): the trees are
//! flattened at load into one array of nodes (feature, threshold, children as indices) and
//! one array of leaf weights, so a call walks plain arrays. Aggregation (`SUM`, `AVERAGE`,
//! `MIN`, `MAX`), base values, the binary-classifier conventions and the post-transforms
//! follow onnxruntime, so labels agree exactly and scores within float tolerance.

use super::kernel::{
    ClassLabels, Kernel, Output, Shape, as_f32, expansion, floats, rows_and_columns, tensor_of,
};
use super::post_transform::{PostTransform, SecondClass, binary_scores};
use std::collections::HashMap;
use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
}

/// One node of the flattened forest. For a leaf, `next` is the range of its weights.
#[derive(Debug, Clone, Copy)]
struct Node {
    feature: u32,
    threshold: f32,
    /// Branches: (true child, false child). Leaves: (first weight, end of weights).
    next: (u32, u32),
    mode: Mode,
    missing_goes_true: bool,
}

#[derive(Debug, Clone, Copy)]
struct Weight {
    target: u32,
    value: f32,
}

#[derive(Debug)]
struct Forest {
    nodes: Vec<Node>,
    weights: Vec<Weight>,
    /// Index of each tree's root in `nodes`, in tree id order.
    roots: Vec<u32>,
    /// Features a row must have (the largest feature id read, plus one).
    features: usize,
}

impl Forest {
    /// Reads `nodes_*` and `<leaf>_*` (`class` or `target`) attributes.
    fn parse(node: &NodeProto, leaf: &str, targets: usize) -> TractResult<Self> {
        let tree_ids: Vec<i64> = node.get_attr_vec("nodes_treeids")?;
        let node_ids: Vec<i64> = node.get_attr_vec("nodes_nodeids")?;
        let features: Vec<i64> = node.get_attr_vec("nodes_featureids")?;
        let modes: Vec<&str> = node.get_attr_vec("nodes_modes")?;
        let thresholds: Vec<f32> = node.get_attr_opt_vec("nodes_values")?.unwrap_or_default();
        let trues: Vec<i64> = node.get_attr_vec("nodes_truenodeids")?;
        let falses: Vec<i64> = node.get_attr_vec("nodes_falsenodeids")?;
        let missing: Vec<i64> = node
            .get_attr_opt_vec("nodes_missing_value_tracks_true")?
            .unwrap_or_default();
        let n = tree_ids.len();
        ensure!(n > 0, "{}: no nodes", node.op_type);
        for (name, len) in [
            ("nodes_nodeids", node_ids.len()),
            ("nodes_featureids", features.len()),
            ("nodes_modes", modes.len()),
            ("nodes_values", thresholds.len()),
            ("nodes_truenodeids", trues.len()),
            ("nodes_falsenodeids", falses.len()),
        ] {
            ensure!(
                len == n,
                "{}: {name} has {len} entries for {n} nodes",
                node.op_type
            );
        }
        ensure!(
            missing.is_empty() || missing.len() == n,
            "{}: nodes_missing_value_tracks_true has {} entries for {n} nodes",
            node.op_type,
            missing.len()
        );
        let index: HashMap<(i64, i64), u32> = tree_ids
            .iter()
            .zip(&node_ids)
            .enumerate()
            .map(|(i, (&t, &id))| ((t, id), i as u32))
            .collect();
        ensure!(
            index.len() == n,
            "{}: duplicate (tree, node) ids",
            node.op_type
        );
        let child = |tree: i64, id: i64| -> TractResult<u32> {
            index
                .get(&(tree, id))
                .copied()
                .ok_or_else(|| format_err!("{}: tree {tree} has no node {id}", node.op_type))
        };

        let leaf_trees: Vec<i64> = node.get_attr_vec(&format!("{leaf}_treeids"))?;
        let leaf_nodes: Vec<i64> = node.get_attr_vec(&format!("{leaf}_nodeids"))?;
        let leaf_targets: Vec<i64> = node.get_attr_vec(&format!("{leaf}_ids"))?;
        let leaf_values: Vec<f32> = node.get_attr_vec(&format!("{leaf}_weights"))?;
        let w = leaf_trees.len();
        ensure!(
            leaf_nodes.len() == w && leaf_targets.len() == w && leaf_values.len() == w,
            "{}: {leaf}_* attributes differ in length",
            node.op_type
        );
        // Weights grouped by node, in file order within a node.
        let mut per_node: Vec<Vec<Weight>> = vec![Vec::new(); n];
        for i in 0..w {
            let at = child(leaf_trees[i], leaf_nodes[i])? as usize;
            let target = leaf_targets[i];
            ensure!(
                (0..targets as i64).contains(&target),
                "{}: {leaf}_ids has {target}, out of 0..{targets}",
                node.op_type
            );
            per_node[at].push(Weight {
                target: target as u32,
                value: leaf_values[i],
            });
        }

        let mut nodes = Vec::with_capacity(n);
        let mut weights = Vec::with_capacity(w);
        let mut is_child = vec![false; n];
        for i in 0..n {
            let mode = match modes[i] {
                "BRANCH_LEQ" => Mode::Leq,
                "BRANCH_LT" => Mode::Lt,
                "BRANCH_GTE" => Mode::Gte,
                "BRANCH_GT" => Mode::Gt,
                "BRANCH_EQ" => Mode::Eq,
                "BRANCH_NEQ" => Mode::Neq,
                "LEAF" => Mode::Leaf,
                other => bail!("{}: unknown node mode {other}", node.op_type),
            };
            let next = if mode == Mode::Leaf {
                let start = weights.len() as u32;
                weights.extend_from_slice(&per_node[i]);
                (start, weights.len() as u32)
            } else {
                let (t, f) = (
                    child(tree_ids[i], trues[i])?,
                    child(tree_ids[i], falses[i])?,
                );
                is_child[t as usize] = true;
                is_child[f as usize] = true;
                (t, f)
            };
            ensure!(features[i] >= 0, "{}: negative feature id", node.op_type);
            nodes.push(Node {
                feature: features[i] as u32,
                threshold: thresholds[i],
                next,
                mode,
                missing_goes_true: missing.get(i).is_some_and(|&m| m != 0),
            });
        }
        // A tree's root is its node no other node points to; trees in id order.
        let mut roots: Vec<(i64, u32)> = (0..n)
            .filter(|&i| !is_child[i])
            .map(|i| (tree_ids[i], i as u32))
            .collect();
        roots.sort_by_key(|&(tree, _)| tree);
        roots.dedup_by_key(|&mut (tree, _)| tree);
        let features = nodes
            .iter()
            .filter(|n| n.mode != Mode::Leaf)
            .map(|n| n.feature as usize + 1)
            .max()
            .unwrap_or(0);
        let forest = Self {
            nodes,
            weights,
            roots: roots.into_iter().map(|(_, root)| root).collect(),
            features,
        };
        forest.check_acyclic(&node.op_type)?;
        Ok(forest)
    }

    /// A file could make a tree loop forever; refuse it at load rather than per call.
    fn check_acyclic(&self, op: &str) -> TractResult<()> {
        for &root in &self.roots {
            let mut stack = vec![(root, 0usize)];
            while let Some((at, depth)) = stack.pop() {
                ensure!(depth <= self.nodes.len(), "{op}: a tree has a cycle");
                let node = self.nodes[at as usize];
                if node.mode != Mode::Leaf {
                    stack.push((node.next.0, depth + 1));
                    stack.push((node.next.1, depth + 1));
                }
            }
        }
        Ok(())
    }

    /// The leaf `row` ends at in the tree rooted at `root`.
    #[inline]
    fn leaf(&self, root: u32, row: &[f32]) -> &[Weight] {
        let mut node = &self.nodes[root as usize];
        loop {
            let x = row[node.feature as usize];
            let t = node.threshold;
            let goes_true = match node.mode {
                Mode::Leq => x <= t,
                Mode::Lt => x < t,
                Mode::Gte => x >= t,
                Mode::Gt => x > t,
                Mode::Eq => x == t,
                Mode::Neq => x != t,
                Mode::Leaf => {
                    return &self.weights[node.next.0 as usize..node.next.1 as usize];
                }
            } || (node.missing_goes_true && x.is_nan());
            let next = if goes_true { node.next.0 } else { node.next.1 };
            node = &self.nodes[next as usize];
        }
    }

    fn check_row_width(&self, op: &str, columns: usize) -> TractResult<()> {
        ensure!(
            columns >= self.features,
            "{op}: rows have {columns} features, the trees read {}",
            self.features
        );
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

#[derive(Debug)]
struct TreeRegressor {
    forest: Forest,
    targets: usize,
    aggregate: Aggregate,
    base_values: Vec<f32>,
    transform: PostTransform,
}

fn tree_regressor(
    _: &ParsingContext<'_>,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let targets: i64 = node.get_attr_opt("n_targets")?.unwrap_or(1);
    ensure!(
        targets >= 1,
        "TreeEnsembleRegressor: n_targets must be at least 1"
    );
    let targets = targets as usize;
    let aggregate = match node
        .get_attr_opt::<&str>("aggregate_function")?
        .unwrap_or("SUM")
    {
        "SUM" => Aggregate::Sum,
        "AVERAGE" => Aggregate::Average,
        "MIN" => Aggregate::Min,
        "MAX" => Aggregate::Max,
        other => bail!("TreeEnsembleRegressor: unknown aggregate_function {other}"),
    };
    let op = TreeRegressor {
        forest: Forest::parse(node, "target", targets)?,
        targets,
        aggregate,
        base_values: node.get_attr_opt_vec("base_values")?.unwrap_or_default(),
        transform: PostTransform::of(node)?,
    };
    Ok((expansion(op), vec![]))
}

impl Kernel for TreeRegressor {
    fn name(&self) -> &'static str {
        "TreeEnsembleRegressor"
    }

    fn input_rank(&self) -> Option<usize> {
        Some(2)
    }

    fn outputs(&self) -> TVec<Output> {
        tvec![Output::new(f32::datum_type(), Shape::Rows(self.targets))]
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = floats(&inputs[0])?;
        let x = as_f32(&input)?;
        let (rows, columns) = rows_and_columns(&input);
        self.forest.check_row_width(self.name(), columns)?;
        let k = self.targets;
        let mut out = vec![0f32; rows * k];
        let mut has = vec![false; k];
        let trees = self.forest.roots.len() as f32;
        for (row, scores) in x.chunks_exact(columns).zip(out.chunks_exact_mut(k)) {
            has.iter_mut().for_each(|h| *h = false);
            for &root in &self.forest.roots {
                let leaf = self.forest.leaf(root, row);
                // One target: onnxruntime reads each leaf's first weight only.
                let leaf = if k == 1 {
                    &leaf[..leaf.len().min(1)]
                } else {
                    leaf
                };
                for w in leaf {
                    let (score, seen) =
                        (&mut scores[w.target as usize], &mut has[w.target as usize]);
                    *score = match self.aggregate {
                        Aggregate::Sum | Aggregate::Average => *score + w.value,
                        Aggregate::Min if *seen => score.min(w.value),
                        Aggregate::Max if *seen => score.max(w.value),
                        Aggregate::Min | Aggregate::Max => w.value,
                    };
                    *seen = true;
                }
            }
            if self.aggregate == Aggregate::Average {
                scores.iter_mut().for_each(|s| *s /= trees);
            }
            if k == 1 {
                let origin = if self.base_values.len() == 1 {
                    self.base_values[0]
                } else {
                    0.0
                };
                scores[0] += origin;
                if self.transform == PostTransform::Probit {
                    scores[0] = super::post_transform::probit(scores[0]);
                }
            } else {
                if self.base_values.len() == k {
                    scores
                        .iter_mut()
                        .zip(&self.base_values)
                        .for_each(|(s, b)| *s += b);
                }
                self.transform.apply(scores);
            }
        }
        Ok(tvec![tensor_of(&[rows, k], out)?])
    }
}

#[derive(Debug)]
struct TreeClassifier {
    forest: Forest,
    labels: ClassLabels,
    base_values: Vec<f32>,
    transform: PostTransform,
    /// Two classes, and every leaf weight is for the same one: one score per row.
    binary: bool,
    weights_all_positive: bool,
}

fn tree_classifier(
    _: &ParsingContext<'_>,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let labels = ClassLabels::parse(node, "classlabels_int64s")?;
    let forest = Forest::parse(node, "class", labels.ids.len())?;
    let classes_used: std::collections::HashSet<u32> =
        forest.weights.iter().map(|w| w.target).collect();
    let op = TreeClassifier {
        binary: labels.ids.len() == 2 && classes_used.len() == 1,
        weights_all_positive: forest.weights.iter().all(|w| w.value >= 0.0),
        forest,
        labels,
        base_values: node.get_attr_opt_vec("base_values")?.unwrap_or_default(),
        transform: PostTransform::of(node)?,
    };
    Ok((expansion(op), vec![]))
}

impl TreeClassifier {
    /// Label and scores of a row with more than two classes.
    fn multiclass(&self, scores: &mut [f32], has: &mut [bool]) -> i64 {
        for (k, &base) in self.base_values.iter().enumerate().take(scores.len()) {
            scores[k] += base;
            has[k] = true;
        }
        let mut best: Option<usize> = None;
        for k in 0..scores.len() {
            if has[k] && best.is_none_or(|b| scores[k] > scores[b]) {
                best = Some(k);
            }
        }
        self.transform.apply(scores);
        self.labels.ids[best.unwrap_or(0)]
    }

    /// Label and scores of a two-class row, with onnxruntime's conventions for one score.
    fn two_classes(&self, scores: &mut [f32], has: &mut [bool]) -> i64 {
        let mut second = None;
        let mut one_score = !has[1];
        match self.base_values.len() {
            2 if has[1] => {
                scores[1] = self.base_values[1] + scores[0];
                scores[0] = -scores[1];
                has[1] = true;
                one_score = false;
            }
            2 => {
                scores[1] += self.base_values[1];
                scores[0] += self.base_values[0];
                one_score = false;
            }
            1 => scores[0] += self.base_values[0],
            0 => second = Some(SecondClass::Opposite),
            _ => one_score = false,
        }
        let positive = if !one_score && has[1] {
            scores[1]
        } else if has[0] {
            scores[0]
        } else {
            0.0
        };
        let label = if self.binary {
            let (wins, how) = if self.weights_all_positive {
                (positive > 0.5, SecondClass::Complement)
            } else {
                (positive > 0.0, SecondClass::Opposite)
            };
            second = Some(how);
            self.labels.ids[usize::from(wins)]
        } else {
            i64::from(positive > 0.0)
        };
        if one_score {
            let [a, b] =
                binary_scores(scores[0], self.transform, second.unwrap_or(SecondClass::No));
            scores[0] = a;
            scores[1] = b;
        } else {
            self.transform.apply(scores);
        }
        label
    }
}

impl Kernel for TreeClassifier {
    fn name(&self) -> &'static str {
        "TreeEnsembleClassifier"
    }

    fn input_rank(&self) -> Option<usize> {
        Some(2)
    }

    fn outputs(&self) -> TVec<Output> {
        tvec![
            Output::new(self.labels.datum_type(), Shape::Labels),
            Output::new(f32::datum_type(), Shape::Rows(self.labels.ids.len())),
        ]
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = floats(&inputs[0])?;
        let x = as_f32(&input)?;
        let (rows, columns) = rows_and_columns(&input);
        self.forest.check_row_width(self.name(), columns)?;
        let k = self.labels.ids.len();
        let mut out = vec![0f32; rows * k];
        let mut labels = Vec::with_capacity(rows);
        let mut has = vec![false; k];
        for (row, scores) in x.chunks_exact(columns).zip(out.chunks_exact_mut(k)) {
            has.iter_mut().for_each(|h| *h = false);
            for &root in &self.forest.roots {
                for w in self.forest.leaf(root, row) {
                    scores[w.target as usize] += w.value;
                    has[w.target as usize] = true;
                }
            }
            labels.push(if k > 2 {
                self.multiclass(scores, &mut has)
            } else if k == 2 {
                self.two_classes(scores, &mut has)
            } else {
                self.labels.ids[0]
            });
        }
        Ok(tvec![
            self.labels.tensor(labels)?,
            tensor_of(&[rows, k], out)?
        ])
    }
}

pub(super) fn register(reg: &mut tract_onnx::model::OnnxOpRegister) {
    reg.insert("TreeEnsembleRegressor", tree_regressor);
    reg.insert("TreeEnsembleClassifier", tree_classifier);
}
