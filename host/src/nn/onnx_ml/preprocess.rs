//! The ai.onnx.ml transformers in front of a model (`Scaler`, `Binarizer`, `Imputer`,
//! `OneHotEncoder`, `LabelEncoder`, `FeatureVectorizer`) and `ZipMap` behind a classifier.
//! Numeric forms only: a string input or output needs string tensors, which wisp does
//! not serve yet, and is refused at load with that reason.

use super::kernel::{
    Kernel, Output, Shape, as_f32, expansion, floats, rows_and_columns, tensor_of,
};
use std::collections::HashMap;
use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

type Built = TractResult<(Box<dyn InferenceOp>, Vec<String>)>;

fn no_strings(node: &NodeProto, attrs: &[&str]) -> TractResult<()> {
    for attr in attrs {
        if node.get_attr_opt_tvec::<&str>(attr)?.is_some() {
            bail!(
                "{} with `{attr}` maps strings, which wisp does not serve as operator inputs yet (string class labels are served)",
                node.op_type
            );
        }
    }
    Ok(())
}

/// A per-column parameter: one value for every column, or one per column.
fn per_column(values: &[f32], column: usize) -> f32 {
    if values.len() == 1 {
        values[0]
    } else {
        values[column]
    }
}

fn check_columns(op: &str, attr: &str, values: &[f32], columns: usize) -> TractResult<()> {
    ensure!(
        values.len() == 1 || values.len() == columns,
        "{op}: {} values in `{attr}` for {columns} columns",
        values.len()
    );
    Ok(())
}

/// `Scaler`: `(x - offset) * scale`, per column; any numeric input, f32 output.
#[derive(Debug)]
struct Scaler {
    offset: Vec<f32>,
    scale: Vec<f32>,
}

fn scaler(_: &ParsingContext<'_>, node: &NodeProto) -> Built {
    let offset: Vec<f32> = node
        .get_attr_opt_vec("offset")?
        .unwrap_or_else(|| vec![0.0]);
    let scale: Vec<f32> = node.get_attr_opt_vec("scale")?.unwrap_or_else(|| vec![1.0]);
    ensure!(
        !offset.is_empty() && !scale.is_empty(),
        "Scaler: empty offset or scale"
    );
    Ok((expansion(Scaler { offset, scale }), vec![]))
}

impl Kernel for Scaler {
    fn name(&self) -> &'static str {
        "Scaler"
    }

    fn outputs(&self) -> TVec<Output> {
        tvec![Output::new(f32::datum_type(), Shape::Same)]
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = floats(&inputs[0])?;
        let (_, columns) = rows_and_columns(&input);
        check_columns("Scaler", "offset", &self.offset, columns)?;
        check_columns("Scaler", "scale", &self.scale, columns)?;
        let mut out = as_f32(&input)?.to_vec();
        for row in out.chunks_exact_mut(columns.max(1)) {
            for (c, v) in row.iter_mut().enumerate() {
                *v = (*v - per_column(&self.offset, c)) * per_column(&self.scale, c);
            }
        }
        Ok(tvec![tensor_of(input.shape(), out)?])
    }
}

/// `Binarizer`: 1 where `x > threshold`, else 0, in the input's (float) type.
#[derive(Debug)]
struct Binarizer {
    threshold: f32,
}

fn binarizer(_: &ParsingContext<'_>, node: &NodeProto) -> Built {
    let threshold = node.get_attr_opt::<f32>("threshold")?.unwrap_or(0.0);
    Ok((expansion(Binarizer { threshold }), vec![]))
}

impl Kernel for Binarizer {
    fn name(&self) -> &'static str {
        "Binarizer"
    }

    fn outputs(&self) -> TVec<Output> {
        tvec![Output::same_type(Shape::Same)]
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let dt = inputs[0].datum_type();
        let input = floats(&inputs[0])?;
        let out: Vec<f32> = as_f32(&input)?
            .iter()
            .map(|&v| if v > self.threshold { 1.0 } else { 0.0 })
            .collect();
        let out = tensor_of(input.shape(), out)?;
        Ok(tvec![out.cast_to_dt(dt)?.into_owned().into_tvalue()])
    }
}

/// `Imputer`: replaces `replaced_value_*` (NaN for floats when it is NaN) by a per-column
/// value, keeping the input's type.
#[derive(Debug)]
enum Imputer {
    Floats { replaced: f32, imputed: Vec<f32> },
    Ints { replaced: i64, imputed: Vec<i64> },
}

fn imputer(_: &ParsingContext<'_>, node: &NodeProto) -> Built {
    let op = match node.get_attr_opt_vec::<f32>("imputed_value_floats")? {
        Some(imputed) if !imputed.is_empty() => Imputer::Floats {
            replaced: node
                .get_attr_opt::<f32>("replaced_value_float")?
                .unwrap_or(0.0),
            imputed,
        },
        _ => {
            let imputed: Vec<i64> = node
                .get_attr_opt_vec("imputed_value_int64s")?
                .unwrap_or_default();
            ensure!(!imputed.is_empty(), "Imputer: no imputed values");
            Imputer::Ints {
                replaced: node
                    .get_attr_opt::<i64>("replaced_value_int64")?
                    .unwrap_or(0),
                imputed,
            }
        }
    };
    Ok((expansion(op), vec![]))
}

impl Kernel for Imputer {
    fn name(&self) -> &'static str {
        "Imputer"
    }

    fn outputs(&self) -> TVec<Output> {
        tvec![Output::same_type(Shape::Same)]
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let (_, columns) = rows_and_columns(input);
        let columns = columns.max(1);
        match self {
            Self::Floats { replaced, imputed } => {
                ensure!(
                    input.datum_type() == f32::datum_type(),
                    "Imputer: float values for a non-float input"
                );
                check_columns("Imputer", "imputed_value_floats", imputed, columns)?;
                let mut out = input.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
                for row in out.chunks_exact_mut(columns) {
                    for (c, v) in row.iter_mut().enumerate() {
                        let hit = if replaced.is_nan() {
                            v.is_nan()
                        } else {
                            *v == *replaced
                        };
                        if hit {
                            *v = per_column(imputed, c);
                        }
                    }
                }
                Ok(tvec![tensor_of(input.shape(), out)?])
            }
            Self::Ints { replaced, imputed } => {
                ensure!(
                    input.datum_type() == i64::datum_type(),
                    "Imputer: int64 values for a non-int64 input"
                );
                ensure!(
                    imputed.len() == 1 || imputed.len() == columns,
                    "Imputer: {} imputed values for {columns} columns",
                    imputed.len()
                );
                let mut out = input.try_as_plain_ram()?.as_slice::<i64>()?.to_vec();
                for row in out.chunks_exact_mut(columns) {
                    for (c, v) in row.iter_mut().enumerate() {
                        if *v == *replaced {
                            *v = if imputed.len() == 1 {
                                imputed[0]
                            } else {
                                imputed[c]
                            };
                        }
                    }
                }
                Ok(tvec![tensor_of(input.shape(), out)?])
            }
        }
    }
}

/// `OneHotEncoder` on integer categories: one more axis, one column per category.
#[derive(Debug)]
struct OneHotEncoder {
    index: HashMap<i64, usize>,
    categories: usize,
    /// An unknown category gives a row of zeros (`zeros = 1`) or an error.
    unknown_is_zeros: bool,
}

fn one_hot_encoder(_: &ParsingContext<'_>, node: &NodeProto) -> Built {
    no_strings(node, &["cats_strings"])?;
    let cats: Vec<i64> = node.get_attr_vec("cats_int64s")?;
    let index = cats.iter().enumerate().map(|(i, &c)| (c, i)).collect();
    let op = OneHotEncoder {
        index,
        categories: cats.len(),
        unknown_is_zeros: node.get_attr_opt::<i64>("zeros")?.unwrap_or(1) != 0,
    };
    Ok((expansion(op), vec![]))
}

impl Kernel for OneHotEncoder {
    fn name(&self) -> &'static str {
        "OneHotEncoder"
    }

    fn outputs(&self) -> TVec<Output> {
        tvec![Output::new(
            f32::datum_type(),
            Shape::Append(self.categories)
        )]
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = inputs[0].cast_to::<i64>()?;
        let values = input.try_as_plain_ram()?.as_slice::<i64>()?;
        let k = self.categories;
        let mut out = vec![0f32; values.len() * k];
        for (value, row) in values.iter().zip(out.chunks_exact_mut(k.max(1))) {
            match self.index.get(value) {
                Some(&at) => row[at] = 1.0,
                None if self.unknown_is_zeros => {}
                None => bail!("OneHotEncoder: unknown category {value}"),
            }
        }
        let mut shape = input.shape().to_vec();
        shape.push(k);
        Ok(tvec![tensor_of(&shape, out)?])
    }
}

/// `LabelEncoder` between int64 and float keys and values.
#[derive(Debug)]
enum Encoded {
    Ints(Vec<i64>, i64),
    Floats(Vec<f32>, f32),
}

#[derive(Debug)]
struct LabelEncoder {
    /// Key (an i64, or an f32's bits) to index in the values.
    keys: HashMap<i64, usize>,
    float_keys: bool,
    values: Encoded,
}

fn label_encoder(_: &ParsingContext<'_>, node: &NodeProto) -> Built {
    no_strings(node, &["keys_strings", "values_strings"])?;
    ensure!(
        node.get_attr_opt::<&str>("default_string")?.is_none()
            || node.get_attr_opt_vec::<i64>("values_int64s")?.is_some()
            || node.get_attr_opt_vec::<f32>("values_floats")?.is_some(),
        "LabelEncoder to strings is not served yet (string class labels of classifiers are)"
    );
    let (keys, float_keys) = match (
        node.get_attr_opt_vec::<i64>("keys_int64s")?,
        node.get_attr_opt_vec::<f32>("keys_floats")?,
    ) {
        (Some(ints), None) => (ints, false),
        (None, Some(floats)) => (
            floats.iter().map(|f| i64::from(f.to_bits())).collect(),
            true,
        ),
        _ => bail!(
            "LabelEncoder: needs exactly one of keys_int64s and keys_floats (keys_tensor is not supported)"
        ),
    };
    let values = match (
        node.get_attr_opt_vec::<i64>("values_int64s")?,
        node.get_attr_opt_vec::<f32>("values_floats")?,
    ) {
        (Some(ints), None) => Encoded::Ints(
            ints,
            node.get_attr_opt::<i64>("default_int64")?.unwrap_or(-1),
        ),
        (None, Some(floats)) => Encoded::Floats(
            floats,
            node.get_attr_opt::<f32>("default_float")?.unwrap_or(-0.0),
        ),
        _ => bail!(
            "LabelEncoder: needs exactly one of values_int64s and values_floats (values_tensor is not supported)"
        ),
    };
    let count = match &values {
        Encoded::Ints(v, _) => v.len(),
        Encoded::Floats(v, _) => v.len(),
    };
    ensure!(
        count == keys.len(),
        "LabelEncoder: {} keys for {count} values",
        keys.len()
    );
    let keys = keys.into_iter().enumerate().map(|(i, k)| (k, i)).collect();
    Ok((
        expansion(LabelEncoder {
            keys,
            float_keys,
            values,
        }),
        vec![],
    ))
}

impl LabelEncoder {
    fn lookup<T: Copy>(&self, keys: impl Iterator<Item = i64>, values: &[T], default: T) -> Vec<T> {
        keys.map(|k| self.keys.get(&k).map_or(default, |&i| values[i]))
            .collect()
    }
}

impl Kernel for LabelEncoder {
    fn name(&self) -> &'static str {
        "LabelEncoder"
    }

    fn outputs(&self) -> TVec<Output> {
        let dt = match self.values {
            Encoded::Ints(..) => i64::datum_type(),
            Encoded::Floats(..) => f32::datum_type(),
        };
        tvec![Output::new(dt, Shape::Same)]
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let shape = input.shape().to_vec();
        let keys: Vec<i64> = if self.float_keys {
            let input = floats(input)?;
            as_f32(&input)?
                .iter()
                .map(|f| i64::from(f.to_bits()))
                .collect()
        } else {
            input
                .cast_to::<i64>()?
                .try_as_plain_ram()?
                .as_slice::<i64>()?
                .to_vec()
        };
        Ok(tvec![match &self.values {
            Encoded::Ints(values, default) => {
                tensor_of(&shape, self.lookup(keys.into_iter(), values, *default))?
            }
            Encoded::Floats(values, default) => {
                tensor_of(&shape, self.lookup(keys.into_iter(), values, *default))?
            }
        }])
    }
}

/// `FeatureVectorizer`: the first `inputdimensions[i]` columns of each input, side by
/// side (zeros where an input is narrower), as f32.
#[derive(Debug)]
struct FeatureVectorizer {
    widths: Vec<usize>,
}

fn feature_vectorizer(_: &ParsingContext<'_>, node: &NodeProto) -> Built {
    let widths: Vec<i64> = node.get_attr_vec("inputdimensions")?;
    ensure!(
        widths.len() == node.input.len() && widths.iter().all(|&w| w >= 0),
        "FeatureVectorizer: inputdimensions must give one width per input"
    );
    let widths = widths.into_iter().map(|w| w as usize).collect();
    Ok((expansion(FeatureVectorizer { widths }), vec![]))
}

impl Kernel for FeatureVectorizer {
    fn name(&self) -> &'static str {
        "FeatureVectorizer"
    }

    fn inputs(&self) -> usize {
        self.widths.len()
    }

    fn outputs(&self) -> TVec<Output> {
        tvec![Output::new(
            f32::datum_type(),
            Shape::Rows(self.widths.iter().sum())
        )]
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (rows, _) = rows_and_columns(&inputs[0]);
        let total: usize = self.widths.iter().sum();
        let mut out = vec![0f32; rows * total];
        let mut offset = 0;
        for (input, &width) in inputs.iter().zip(&self.widths) {
            let input = floats(input)?;
            let (n, columns) = rows_and_columns(&input);
            ensure!(
                n == rows,
                "FeatureVectorizer: inputs differ in rows ({n} and {rows})"
            );
            let values = as_f32(&input)?;
            let copied = width.min(columns);
            for r in 0..rows {
                out[r * total + offset..][..copied]
                    .copy_from_slice(&values[r * columns..][..copied]);
            }
            offset += width;
        }
        Ok(tvec![tensor_of(&[rows, total], out)?])
    }
}

/// `ArrayFeatureExtractor`: columns of the last axis picked by index, replacing
/// tract-onnx's, which drops the axis when one column is picked (onnxruntime keeps it, and
/// skl2onnx's binary classifiers pick one column).
#[derive(Debug)]
struct ArrayFeatureExtractor;

fn array_feature_extractor(_: &ParsingContext<'_>, _: &NodeProto) -> Built {
    Ok((expansion(ArrayFeatureExtractor), vec![]))
}

fn pick<T: Datum + Copy>(data: &Tensor, picked: &[usize]) -> TractResult<TValue> {
    let values = data.try_as_plain_ram()?.as_slice::<T>()?;
    let columns = data.shape().last().copied().unwrap_or(1).max(1);
    let mut out = Vec::with_capacity(values.len() / columns * picked.len());
    for row in values.chunks_exact(columns) {
        out.extend(picked.iter().map(|&i| row[i]));
    }
    let mut shape: Vec<usize> = match data.shape() {
        [] | [_] => vec![1],
        shape => shape[..shape.len() - 1].to_vec(),
    };
    shape.push(picked.len());
    tensor_of(&shape, out)
}

impl Kernel for ArrayFeatureExtractor {
    fn name(&self) -> &'static str {
        "ArrayFeatureExtractor"
    }

    fn inputs(&self) -> usize {
        2
    }

    fn outputs(&self) -> TVec<Output> {
        tvec![Output::same_type(Shape::PickLast)]
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let data = &inputs[0];
        let columns = data.shape().last().copied().unwrap_or(1) as i64;
        let picked = inputs[1].cast_to::<i64>()?;
        let picked = picked
            .try_as_plain_ram()?
            .as_slice::<i64>()?
            .iter()
            .map(|&i| {
                ensure!(
                    (0..columns).contains(&i),
                    "ArrayFeatureExtractor: index {i} out of 0..{columns}"
                );
                Ok(i as usize)
            })
            .collect::<TractResult<Vec<_>>>()?;
        let out = match data.datum_type() {
            DatumType::F32 => pick::<f32>(data, &picked)?,
            DatumType::F64 => pick::<f64>(data, &picked)?,
            DatumType::I64 => pick::<i64>(data, &picked)?,
            DatumType::I32 => pick::<i32>(data, &picked)?,
            other => bail!("ArrayFeatureExtractor on {other:?} is not supported"),
        };
        Ok(tvec![out])
    }
}

/// `ZipMap` served as the probability tensor it wraps: the class labels (its
/// `classlabels_*` attribute) name the columns, in order.
#[derive(Debug)]
struct ZipMap;

fn zip_map(_: &ParsingContext<'_>, node: &NodeProto) -> Built {
    ensure!(
        node.get_attr_opt_vec::<i64>("classlabels_int64s")?
            .is_some()
            || node
                .get_attr_opt_tvec::<&str>("classlabels_strings")?
                .is_some(),
        "ZipMap: no class labels"
    );
    Ok((expansion(ZipMap), vec![]))
}

impl Kernel for ZipMap {
    fn name(&self) -> &'static str {
        "ZipMap"
    }

    fn input_rank(&self) -> Option<usize> {
        Some(2)
    }

    fn outputs(&self) -> TVec<Output> {
        tvec![Output::new(f32::datum_type(), Shape::Same)]
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        Ok(inputs)
    }
}

pub(super) fn register(reg: &mut tract_onnx::model::OnnxOpRegister) {
    reg.insert("Scaler", scaler);
    reg.insert("Binarizer", binarizer);
    reg.insert("Imputer", imputer);
    reg.insert("OneHotEncoder", one_hot_encoder);
    reg.insert("LabelEncoder", label_encoder);
    reg.insert("FeatureVectorizer", feature_vectorizer);
    reg.insert("ZipMap", zip_map);
    reg.insert("ArrayFeatureExtractor", array_feature_extractor);
}
