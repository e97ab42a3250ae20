//! A reference data set (CSV or NDJSON) read against a model's signature into a
//! [`Profile`], with the features named as [`super::columns`] names a call's.
//!
//! **CSV**: a header line, then one row per line; fields may be quoted (`"a, b"`, `""` for
//! a quote). A column is named after a feature: an input of shape `[-1]` or `[-1, 1]`
//! (`outlook`), a column of a 2-D input (`input[2]`), or an output (`label`,
//! `probabilities[1]`) for the prediction's reference. If the model has one 2-D input
//! `[-1, n]` and the header's other columns are exactly `n` names that are not features,
//! they name that input's columns in order (`sepal_length,sepal_width,…`), in the
//! reference and in every live window after it.
//!
//! **NDJSON**: one object per line, keyed like a predict request's `inputs` (an input's
//! row: `{"input": [5.1, 3.5, 1.4, 0.2]}`, `{"outlook": "sunny"}` or `["sunny"]`), or by
//! feature or output name.
//!
//! Empty fields, `NA`, `nan` are missing values (not counted). Numbers for an `f32` input
//! are rounded to `f32`, as the model sees them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::columns::{Column, ColumnNames, Values, feature_name};
use super::profile::Profile;
use crate::error::{Error, Result};
use crate::inspect::{DType, ModelSignature, TensorSpec};

/// The format of an uploaded reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

impl Format {
    /// The format of an artifact, by its file name.
    pub fn of_path(path: &str) -> Option<Self> {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".csv") {
            Some(Self::Csv)
        } else if [".ndjson", ".jsonl", ".json"]
            .iter()
            .any(|e| lower.ends_with(e))
        {
            Some(Self::Ndjson)
        } else {
            None
        }
    }
}

/// A parsed reference.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub profile: Profile,
    /// The names a CSV header gave a 2-D input's columns.
    pub columns: ColumnNames,
}

/// One feature a reference can hold.
#[derive(Debug, Clone)]
struct Slot {
    name: String,
    tensor: String,
    output: bool,
    text: bool,
    f32: bool,
}

/// Bad input, with a stable `details.reason`.
fn bad(reason: &str, message: impl Into<String>) -> Error {
    Error::invalid(message).with_details(json!({ "reason": reason }))
}

/// The tensors that are profiled: rank 1, or rank 2 with a fixed width; `(spec, width)`.
fn profiled(specs: &[TensorSpec]) -> impl Iterator<Item = (&TensorSpec, Option<usize>)> {
    specs.iter().filter_map(|spec| match spec.shape.as_slice() {
        [_] => Some((spec, None)),
        [_, w] if *w > 0 => Some((spec, Some(*w as usize))),
        _ => None,
    })
}

fn slots(signature: &ModelSignature, names: &ColumnNames) -> Vec<Slot> {
    let mut out = Vec::new();
    for (specs, output) in [(&signature.inputs, false), (&signature.outputs, true)] {
        for (spec, width) in profiled(specs) {
            for i in 0..width.unwrap_or(1) {
                out.push(Slot {
                    name: feature_name(&spec.name, width, i, names),
                    tensor: spec.name.clone(),
                    output,
                    text: spec.dtype == DType::String,
                    f32: spec.dtype == DType::F32,
                });
            }
        }
    }
    out
}

/// Values per slot, one per row (missing numbers as NaN, missing strings left out).
struct Table {
    slots: Vec<Slot>,
    values: Vec<Values>,
    rows: u64,
}

impl Table {
    fn new(slots: Vec<Slot>) -> Self {
        let values = slots
            .iter()
            .map(|s| {
                if s.text {
                    Values::Text(Vec::new())
                } else {
                    Values::Numeric(Vec::new())
                }
            })
            .collect();
        Self {
            slots,
            values,
            rows: 0,
        }
    }

    fn push(&mut self, slot: usize, field: Option<&str>, row: u64) -> Result<()> {
        let field = field.map(str::trim).filter(|f| !is_missing(f));
        let spec = &self.slots[slot];
        match (&mut self.values[slot], field) {
            (Values::Text(v), Some(f)) => v.push(f.to_owned()),
            (Values::Text(_), None) => {}
            (Values::Numeric(v), None) => v.push(f64::NAN),
            (Values::Numeric(v), Some(f)) => {
                let x: f64 = f.parse().map_err(|_| {
                    bad(
                        "not_a_number",
                        format!("row {row}: {:?} is not a number ({})", f, spec.name),
                    )
                })?;
                v.push(if spec.f32 { x as f32 as f64 } else { x });
            }
        }
        Ok(())
    }

    fn profile(self, columns: ColumnNames) -> Result<Parsed> {
        if self.rows == 0 {
            return Err(bad("empty_reference", "the reference has no rows"));
        }
        let (mut inputs, mut outputs) = (Vec::new(), Vec::new());
        for (slot, values) in self.slots.into_iter().zip(self.values) {
            let column = Column {
                name: slot.name,
                values,
            };
            if slot.output {
                outputs.push(column);
            } else {
                inputs.push(column);
            }
        }
        let mut profile = Profile::default();
        profile.add(self.rows, &inputs, &outputs, &mut rand::thread_rng());
        Ok(Parsed {
            profile: profile.into_reference(),
            columns,
        })
    }
}

fn is_missing(field: &str) -> bool {
    field.is_empty() || matches!(field, "NA" | "NaN" | "nan" | "null")
}

/// Reads a reference data set against `signature`, leaving out the columns (CSV) or keys
/// (NDJSON) named in `ignored` (a training set's label column, an id).
pub fn parse(
    bytes: &[u8],
    format: Format,
    signature: &ModelSignature,
    ignored: &BTreeSet<String>,
) -> Result<Parsed> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| bad("not_utf8", "the reference is not UTF-8"))?;
    match format {
        Format::Csv => parse_csv(text, signature, ignored),
        Format::Ndjson => parse_ndjson(text, signature, ignored),
    }
}

fn parse_csv(text: &str, signature: &ModelSignature, ignored: &BTreeSet<String>) -> Result<Parsed> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = split_csv(
        lines
            .next()
            .ok_or_else(|| bad("empty_reference", "the reference is empty"))?,
    )?;
    let header: Vec<String> = header.iter().map(|h| h.trim().to_owned()).collect();
    let kept: Vec<bool> = header.iter().map(|h| !ignored.contains(h)).collect();
    let width = header.len();
    let header: Vec<String> = header
        .into_iter()
        .zip(&kept)
        .filter_map(|(h, keep)| keep.then_some(h))
        .collect();
    let (slots, columns) = header_slots(&header, signature)?;
    let mut table = Table::new(slots.iter().flatten().cloned().collect());
    // position in the header → index in the table
    let mut index = Vec::new();
    let mut next = 0;
    for slot in &slots {
        index.push(slot.as_ref().map(|_| {
            next += 1;
            next - 1
        }));
    }
    for line in lines {
        let row = table.rows;
        let fields = split_csv(line)?;
        if fields.len() != width {
            return Err(bad(
                "wrong_field_count",
                format!("row {row} has {} fields, the header {width}", fields.len()),
            ));
        }
        let fields = fields.iter().zip(&kept).filter(|(_, keep)| **keep);
        for ((field, _), slot) in fields.zip(&index) {
            if let Some(slot) = slot {
                table.push(*slot, Some(field), row)?;
            }
        }
        table.rows += 1;
    }
    table.profile(columns)
}

/// Which slot each header column is (`None`: a column named like nothing, refused unless
/// the header names a single 2-D input's columns).
fn header_slots(
    header: &[String],
    signature: &ModelSignature,
) -> Result<(Vec<Option<Slot>>, ColumnNames)> {
    let plain = slots(signature, &ColumnNames::new());
    let find = |slots: &[Slot], name: &str| slots.iter().find(|s| s.name == name).cloned();
    let direct: Vec<Option<Slot>> = header.iter().map(|h| find(&plain, h)).collect();
    if direct.iter().all(Option::is_some) {
        return check_inputs(direct, ColumnNames::new());
    }
    // The unknown names may name the columns of the one 2-D input.
    let matrices: Vec<_> = profiled(&signature.inputs)
        .filter(|(_, w)| w.is_some_and(|w| w > 1))
        .collect();
    let unknown: Vec<&String> = header
        .iter()
        .zip(&direct)
        .filter(|(_, s)| s.as_ref().is_none_or(|s| !s.output))
        .map(|(h, _)| h)
        .collect();
    if let ([(input, Some(width))], true) = (matrices.as_slice(), signature.inputs.len() == 1)
        && unknown.len() == *width
    {
        let columns = ColumnNames::from([(
            input.name.clone(),
            unknown.iter().map(|n| (*n).clone()).collect(),
        )]);
        let named = slots(signature, &columns);
        let mapped = header.iter().map(|h| find(&named, h)).collect();
        return check_inputs(mapped, columns);
    }
    let first = header
        .iter()
        .zip(&direct)
        .find(|(_, s)| s.is_none())
        .map(|(h, _)| h.as_str())
        .unwrap_or_default();
    Err(bad(
        "unknown_column",
        format!(
            "column {first:?} is not a feature of the model (features: {}); leave it out with `ignore_columns`",
            plain
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ))
}

fn check_inputs(
    slots: Vec<Option<Slot>>,
    columns: ColumnNames,
) -> Result<(Vec<Option<Slot>>, ColumnNames)> {
    let mut seen = std::collections::BTreeSet::new();
    for slot in slots.iter().flatten() {
        if !seen.insert(slot.name.clone()) {
            return Err(bad(
                "duplicate_column",
                format!("column {:?} appears twice", slot.name),
            ));
        }
    }
    if !slots.iter().flatten().any(|s| !s.output) {
        return Err(bad(
            "no_input_columns",
            "the reference has no column of the model's inputs",
        ));
    }
    Ok((slots, columns))
}

/// Fields of one CSV line; quoted fields may hold commas and doubled quotes.
fn split_csv(line: &str) -> Result<Vec<String>> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.trim().is_empty() => {
                field.clear();
                quoted = true;
            }
            (false, ',') => fields.push(std::mem::take(&mut field)),
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err(bad("unterminated_quote", "a quoted field is not closed"));
    }
    fields.push(field);
    Ok(fields)
}

fn parse_ndjson(
    text: &str,
    signature: &ModelSignature,
    ignored: &BTreeSet<String>,
) -> Result<Parsed> {
    let slots = slots(signature, &ColumnNames::new());
    let by_name: BTreeMap<&str, usize> = slots
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let by_tensor: BTreeMap<&str, Vec<usize>> =
        slots
            .iter()
            .enumerate()
            .fold(BTreeMap::new(), |mut m, (i, s)| {
                m.entry(s.tensor.as_str()).or_insert_with(Vec::new).push(i);
                m
            });
    let mut table = Table::new(slots.clone());
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let row = table.rows;
        let object: serde_json::Map<String, Value> = serde_json::from_str(line).map_err(|e| {
            bad(
                "invalid_row",
                format!("row {row} is not a JSON object: {e}"),
            )
        })?;
        let mut fields: Vec<Option<String>> = vec![None; slots.len()];
        for (key, value) in object.iter().filter(|(key, _)| !ignored.contains(*key)) {
            let targets: Vec<usize> = match (by_tensor.get(key.as_str()), by_name.get(key.as_str()))
            {
                (Some(targets), _) => targets.clone(),
                (None, Some(i)) => vec![*i],
                (None, None) => {
                    return Err(bad(
                        "unknown_column",
                        format!(
                            "row {row}: {key:?} is not an input, output or feature of the model; leave it out with `ignore_columns`"
                        ),
                    ));
                }
            };
            let scalars = flatten(value);
            if scalars.len() != targets.len() {
                return Err(bad(
                    "wrong_field_count",
                    format!(
                        "row {row}: {key:?} has {} values, expected {}",
                        scalars.len(),
                        targets.len()
                    ),
                ));
            }
            for (slot, scalar) in targets.into_iter().zip(scalars) {
                fields[slot] = scalar;
            }
        }
        if !fields
            .iter()
            .zip(&slots)
            .any(|(f, s)| f.is_some() && !s.output)
        {
            return Err(bad(
                "no_input_columns",
                format!("row {row} has no value of the model's inputs"),
            ));
        }
        for (slot, field) in fields.iter().enumerate() {
            table.push(slot, field.as_deref(), row)?;
        }
        table.rows += 1;
    }
    table.profile(ColumnNames::new())
}

/// The scalars of a JSON value, nested arrays flattened; `null` is missing.
fn flatten(value: &Value) -> Vec<Option<String>> {
    match value {
        Value::Array(items) => items.iter().flat_map(flatten).collect(),
        Value::Null => vec![None],
        Value::String(s) => vec![Some(s.clone())],
        other => vec![Some(other.to_string())],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::profile::FeatureProfile;

    fn spec(name: &str, dtype: DType, shape: &[i64]) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            dtype,
            shape: shape.to_vec(),
            class_labels: None,
        }
    }

    fn none() -> BTreeSet<String> {
        BTreeSet::new()
    }

    fn iris() -> ModelSignature {
        ModelSignature {
            inputs: vec![spec("input", DType::F32, &[-1, 4])],
            outputs: vec![
                spec("label", DType::I64, &[-1]),
                spec("probabilities", DType::F32, &[-1, 3]),
            ],
        }
    }

    #[test]
    fn a_header_names_the_columns_of_the_one_matrix_in_order() {
        let csv = "sepal_length,sepal_width,petal_length,petal_width,label\n5.1,3.5,1.4,0.2,0\n\n6.2,2.9,4.3,1.3,1\n";
        let parsed = parse(csv.as_bytes(), Format::Csv, &iris(), &none()).unwrap();
        assert_eq!(parsed.profile.rows, 2);
        assert_eq!(parsed.columns["input"][1], "sepal_width");
        let names: Vec<_> = parsed.profile.features.keys().cloned().collect();
        assert_eq!(
            names,
            ["petal_length", "petal_width", "sepal_length", "sepal_width"]
        );
        assert!(parsed.profile.outputs.contains_key("label"));
        let FeatureProfile::Numeric { sample, .. } = &parsed.profile.features["sepal_length"]
        else {
            panic!("numeric");
        };
        assert_eq!(
            sample.as_ref().unwrap().values,
            [5.1f32 as f64, 6.2f32 as f64]
        );
        let direct = "input[0],input[1],input[2],input[3]\n1,2,3,4\n";
        let parsed = parse(direct.as_bytes(), Format::Csv, &iris(), &none()).unwrap();
        assert!(parsed.columns.is_empty());
        assert!(parsed.profile.features.contains_key("input[3]"));
    }

    #[test]
    fn ignored_columns_are_left_out() {
        let ignored = BTreeSet::from(["species".to_owned(), "id".to_owned()]);
        let csv = "id,sepal_length,sepal_width,petal_length,petal_width,species\n1,5.1,3.5,1.4,0.2,setosa\n2,6.2,2.9,4.3,1.3,versicolor\n";
        let parsed = parse(csv.as_bytes(), Format::Csv, &iris(), &ignored).unwrap();
        assert_eq!(parsed.profile.rows, 2);
        assert_eq!(parsed.columns["input"][3], "petal_width");
        assert_eq!(parsed.profile.features.len(), 4);
        let error = parse(csv.as_bytes(), Format::Csv, &iris(), &none()).unwrap_err();
        assert!(format!("{error:?}").contains("ignore_columns"), "{error:?}");
        let ndjson = "{\"input\": [5.1, 3.5, 1.4, 0.2], \"species\": \"setosa\"}\n";
        let parsed = parse(ndjson.as_bytes(), Format::Ndjson, &iris(), &ignored).unwrap();
        assert_eq!(parsed.profile.features["input[0]"].count(), 1);
    }

    #[test]
    fn bad_references_say_why() {
        let reason = |body: &str, format| {
            let error = parse(body.as_bytes(), format, &iris(), &none()).unwrap_err();
            let body = crate::error::ErrorBody::from(error);
            body.details.unwrap()["reason"].as_str().unwrap().to_owned()
        };
        assert_eq!(reason("a,b\n1,2\n", Format::Csv), "unknown_column");
        assert_eq!(reason("input[0]\nx\n", Format::Csv), "not_a_number");
        assert_eq!(
            reason("input[0],input[1]\n1\n", Format::Csv),
            "wrong_field_count"
        );
        assert_eq!(reason("input[0]\n", Format::Csv), "empty_reference");
        assert_eq!(reason("label\n1\n", Format::Csv), "no_input_columns");
        assert_eq!(
            reason("{\"input\": [1, 2]}\n", Format::Ndjson),
            "wrong_field_count"
        );
        assert_eq!(reason("[1]\n", Format::Ndjson), "invalid_row");
    }

    #[test]
    fn ndjson_rows_are_keyed_like_a_predict_request() {
        let weather = ModelSignature {
            inputs: vec![
                spec("outlook", DType::String, &[-1, 1]),
                spec("temperature", DType::F32, &[-1, 1]),
            ],
            outputs: vec![spec("label", DType::String, &[-1])],
        };
        let body = "{\"outlook\": [\"sunny\"], \"temperature\": [21.5], \"label\": \"play\"}\n{\"outlook\": \"rain, \\\"heavy\\\"\", \"temperature\": null}\n";
        let parsed = parse(body.as_bytes(), Format::Ndjson, &weather, &none()).unwrap();
        assert_eq!(parsed.profile.rows, 2);
        assert_eq!(parsed.profile.features["outlook"].count(), 2);
        assert_eq!(parsed.profile.features["temperature"].count(), 1);
        let csv = "outlook,temperature\n\"rain, \"\"heavy\"\"\",3\n";
        let parsed = parse(csv.as_bytes(), Format::Csv, &weather, &none()).unwrap();
        let FeatureProfile::Categorical { categories } = &parsed.profile.features["outlook"] else {
            panic!("categorical");
        };
        assert_eq!(categories.count("rain, \"heavy\""), 1);
    }
}
