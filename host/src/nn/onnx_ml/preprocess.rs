//! The ai.onnx.ml transformers in front of a model (`Scaler`, `Binarizer`, `Imputer`,
//! `OneHotEncoder`, `LabelEncoder`, `CategoryMapper`, `FeatureVectorizer`,
//! `ArrayFeatureExtractor`) and `ZipMap` behind a classifier. The lookup tables
//! (`OneHotEncoder`, `LabelEncoder`, `CategoryMapper`) take string keys and values as well
//! as numeric ones: categorical columns come in as string tensors.

use super::kernel::{
    Kernel, Output, Shape, as_f32, expansion, floats, rows_and_columns, tensor_of,
};
use std::collections::HashMap;
use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

type Built = TractResult<(Box<dyn InferenceOp>, Vec<String>)>;

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

/// The keys of a lookup table (`LabelEncoder`, `CategoryMapper`, `OneHotEncoder`'s
/// categories), each to its position in the table's values.
#[derive(Debug)]
enum Keys {
    Ints(HashMap<i64, usize>),
    /// An f32's bits, `-0.0` as `0.0`: onnxruntime compares float keys as numbers.
    Floats(HashMap<u32, usize>),
    Strings(HashMap<String, usize>),
}

fn float_key(value: f32) -> u32 {
    (value + 0.0).to_bits()
}

fn positions<K: std::hash::Hash + Eq>(keys: impl IntoIterator<Item = K>) -> HashMap<K, usize> {
    keys.into_iter().enumerate().map(|(i, k)| (k, i)).collect()
}

/// A string list attribute, owned.
fn strings_attr(node: &NodeProto, name: &str) -> TractResult<Option<Vec<String>>> {
    Ok(node
        .get_attr_opt_tvec::<&str>(name)?
        .map(|strings| strings.iter().map(|&s| s.to_owned()).collect()))
}

impl Keys {
    /// The keys in whichever of the attributes `ints`, `floats` (when given) and `strings`
    /// the node has (exactly one), and how many.
    fn parse(
        node: &NodeProto,
        ints: &str,
        floats: Option<&str>,
        strings: &str,
    ) -> TractResult<(Self, usize)> {
        let float_keys = match floats {
            Some(name) => node.get_attr_opt_vec::<f32>(name)?,
            None => None,
        };
        Ok(
            match (
                node.get_attr_opt_vec::<i64>(ints)?,
                float_keys,
                strings_attr(node, strings)?,
            ) {
                (Some(keys), None, None) => {
                    (Self::Ints(positions(keys.iter().copied())), keys.len())
                }
                (None, Some(keys), None) => (
                    Self::Floats(positions(keys.iter().copied().map(float_key))),
                    keys.len(),
                ),
                (None, None, Some(keys)) => {
                    let count = keys.len();
                    (Self::Strings(positions(keys)), count)
                }
                _ => bail!(
                    "{}: needs exactly one of {ints}, {}{strings}",
                    node.op_type,
                    floats.map(|f| format!("{f}, ")).unwrap_or_default()
                ),
            },
        )
    }

    fn is_strings(&self) -> bool {
        matches!(self, Self::Strings(_))
    }

    /// Where each element of `input` is in the table (`None`: not a key).
    fn find(&self, op: &str, input: &TValue) -> TractResult<Vec<Option<usize>>> {
        let is_string = input.datum_type() == String::datum_type();
        ensure!(
            is_string == self.is_strings(),
            "{op}: {} keys for a {:?} input",
            if self.is_strings() {
                "string"
            } else {
                "numeric"
            },
            input.datum_type()
        );
        Ok(match self {
            Self::Strings(index) => input
                .try_as_plain_ram()?
                .as_slice::<String>()?
                .iter()
                .map(|key| index.get(key.as_str()).copied())
                .collect(),
            Self::Ints(index) => input
                .cast_to::<i64>()?
                .try_as_plain_ram()?
                .as_slice::<i64>()?
                .iter()
                .map(|key| index.get(key).copied())
                .collect(),
            Self::Floats(index) => {
                let input = floats(input)?;
                as_f32(&input)?
                    .iter()
                    .map(|&key| index.get(&float_key(key)).copied())
                    .collect()
            }
        })
    }
}

/// The values of a lookup table and what a missing key gives.
#[derive(Debug)]
enum Values {
    Ints(Vec<i64>, i64),
    Floats(Vec<f32>, f32),
    Strings(Vec<String>, String),
}

impl Values {
    fn len(&self) -> usize {
        match self {
            Self::Ints(v, _) => v.len(),
            Self::Floats(v, _) => v.len(),
            Self::Strings(v, _) => v.len(),
        }
    }

    fn datum_type(&self) -> DatumType {
        match self {
            Self::Ints(..) => i64::datum_type(),
            Self::Floats(..) => f32::datum_type(),
            Self::Strings(..) => String::datum_type(),
        }
    }

    /// The tensor of `shape` with the value at each position, or the default.
    fn tensor(&self, shape: &[usize], found: &[Option<usize>]) -> TractResult<TValue> {
        fn pick<T: Datum + Clone>(values: &[T], default: &T, found: &[Option<usize>]) -> Vec<T> {
            found
                .iter()
                .map(|at| at.map_or(default, |i| &values[i]).clone())
                .collect()
        }
        match self {
            Self::Ints(values, default) => tensor_of(shape, pick(values, default, found)),
            Self::Floats(values, default) => tensor_of(shape, pick(values, default, found)),
            Self::Strings(values, default) => tensor_of(shape, pick(values, default, found)),
        }
    }
}

/// onnxruntime's (and the ONNX spec's) default for a missing string key.
const UNUSED: &str = "_Unused";

/// `OneHotEncoder` on int64 (`cats_int64s`, any numeric input cast to int64) or string
/// (`cats_strings`) categories: one more axis, one column per category.
#[derive(Debug)]
struct OneHotEncoder {
    categories: Keys,
    count: usize,
    /// An unknown category gives a row of zeros (`zeros = 1`) or an error.
    unknown_is_zeros: bool,
}

fn one_hot_encoder(_: &ParsingContext<'_>, node: &NodeProto) -> Built {
    let (categories, count) = Keys::parse(node, "cats_int64s", None, "cats_strings")?;
    let op = OneHotEncoder {
        categories,
        count,
        unknown_is_zeros: node.get_attr_opt::<i64>("zeros")?.unwrap_or(1) != 0,
    };
    Ok((expansion(op), vec![]))
}

impl Kernel for OneHotEncoder {
    fn name(&self) -> &'static str {
        "OneHotEncoder"
    }

    fn outputs(&self) -> TVec<Output> {
        tvec![Output::new(f32::datum_type(), Shape::Append(self.count))]
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let found = self.categories.find("OneHotEncoder", input)?;
        let k = self.count;
        let mut out = vec![0f32; found.len() * k];
        for (at, row) in found.iter().zip(out.chunks_exact_mut(k.max(1))) {
            match at {
                Some(at) => row[*at] = 1.0,
                None if self.unknown_is_zeros => {}
                None => bail!("OneHotEncoder: an unknown category, and `zeros` is 0"),
            }
        }
        let mut shape = input.shape().to_vec();
        shape.push(k);
        Ok(tvec![tensor_of(&shape, out)?])
    }
}

/// `LabelEncoder`: int64, float or string keys to int64, float or string values, the
/// `default_*` of the values' type for a missing key.
#[derive(Debug)]
struct LabelEncoder {
    keys: Keys,
    values: Values,
}

fn label_encoder(_: &ParsingContext<'_>, node: &NodeProto) -> Built {
    // opset 4's `keys_tensor` and `values_tensor` are not supported.
    let (keys, count) = Keys::parse(node, "keys_int64s", Some("keys_floats"), "keys_strings")?;
    let values = match (
        node.get_attr_opt_vec::<i64>("values_int64s")?,
        node.get_attr_opt_vec::<f32>("values_floats")?,
        strings_attr(node, "values_strings")?,
    ) {
        (Some(ints), None, None) => Values::Ints(
            ints,
            node.get_attr_opt::<i64>("default_int64")?.unwrap_or(-1),
        ),
        (None, Some(floats), None) => Values::Floats(
            floats,
            node.get_attr_opt::<f32>("default_float")?.unwrap_or(-0.0),
        ),
        (None, None, Some(strings)) => Values::Strings(
            strings,
            node.get_attr_opt::<&str>("default_string")?
                .unwrap_or(UNUSED)
                .to_owned(),
        ),
        _ => bail!(
            "LabelEncoder: needs exactly one of values_int64s, values_floats and values_strings (values_tensor is not supported)"
        ),
    };
    ensure!(
        count == values.len(),
        "LabelEncoder: {count} keys for {} values",
        values.len()
    );
    Ok((expansion(LabelEncoder { keys, values }), vec![]))
}

impl Kernel for LabelEncoder {
    fn name(&self) -> &'static str {
        "LabelEncoder"
    }

    fn outputs(&self) -> TVec<Output> {
        tvec![Output::new(self.values.datum_type(), Shape::Same)]
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let found = self.keys.find("LabelEncoder", &inputs[0])?;
        Ok(tvec![self.values.tensor(inputs[0].shape(), &found)?])
    }
}

/// `CategoryMapper`: strings to int64 (`cats_strings[i]` to `cats_int64s[i]`) or int64 to
/// strings, by the input's type; `default_int64` or `default_string` for a missing one.
/// Replaces tract-onnx's, so both directions follow onnxruntime's defaults.
#[derive(Debug)]
struct CategoryMapper {
    from_strings: (Keys, Values),
    from_ints: (Keys, Values),
}

fn category_mapper(_: &ParsingContext<'_>, node: &NodeProto) -> Built {
    let strings = strings_attr(node, "cats_strings")?.unwrap_or_default();
    let ints: Vec<i64> = node.get_attr_opt_vec("cats_int64s")?.unwrap_or_default();
    ensure!(
        strings.len() == ints.len(),
        "CategoryMapper: {} cats_strings for {} cats_int64s",
        strings.len(),
        ints.len()
    );
    let default_int = node.get_attr_opt::<i64>("default_int64")?.unwrap_or(-1);
    let default_string = node
        .get_attr_opt::<&str>("default_string")?
        .unwrap_or(UNUSED)
        .to_owned();
    let op = CategoryMapper {
        from_strings: (
            Keys::Strings(positions(strings.iter().cloned())),
            Values::Ints(ints.clone(), default_int),
        ),
        from_ints: (
            Keys::Ints(positions(ints)),
            Values::Strings(strings, default_string),
        ),
    };
    Ok((expansion(op), vec![]))
}

/// The type `CategoryMapper` maps an input type to.
fn mapped_category_type(input: DatumType) -> DatumType {
    if input == String::datum_type() {
        i64::datum_type()
    } else {
        String::datum_type()
    }
}

impl Kernel for CategoryMapper {
    fn name(&self) -> &'static str {
        "CategoryMapper"
    }

    fn outputs(&self) -> TVec<Output> {
        tvec![Output::typed_by_input(mapped_category_type, Shape::Same)]
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let (keys, values) = if input.datum_type() == String::datum_type() {
            &self.from_strings
        } else {
            ensure!(
                input.datum_type() == i64::datum_type(),
                "CategoryMapper takes strings or int64, got {:?}",
                input.datum_type()
            );
            &self.from_ints
        };
        let found = keys.find("CategoryMapper", input)?;
        Ok(tvec![values.tensor(input.shape(), &found)?])
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

fn pick<T: Datum + Clone>(data: &Tensor, picked: &[usize]) -> TractResult<TValue> {
    let values = data.try_as_plain_ram()?.as_slice::<T>()?;
    let columns = data.shape().last().copied().unwrap_or(1).max(1);
    let mut out = Vec::with_capacity(values.len() / columns * picked.len());
    for row in values.chunks_exact(columns) {
        out.extend(picked.iter().map(|&i| row[i].clone()));
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
            DatumType::String => pick::<String>(data, &picked)?,
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
    reg.insert("CategoryMapper", category_mapper);
    reg.insert("FeatureVectorizer", feature_vectorizer);
    reg.insert("ZipMap", zip_map);
    reg.insert("ArrayFeatureExtractor", array_feature_extractor);
}
