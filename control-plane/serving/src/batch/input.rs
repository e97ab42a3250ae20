//! Reading a batch input file (NDJSON or CSV) into rows of named JSON inputs.
//!
//! A row becomes the same `{"input_name": value}` map a predict request carries, so it goes
//! through [`crate::tensors::parse_inputs`] like any other call:
//!
//! - **NDJSON**: each non-blank line is an object of named inputs. A value one dimension
//!   short of the signature's rank gets a batch dimension of 1 (`[5.1, 3.5, 1.4, 0.2]` for an
//!   input of shape `[-1, 4]`); otherwise it is taken as given (several samples in one row).
//! - **CSV** with a header line, plain comma-separated numbers (no quoting). Either the
//!   columns are the model's inputs by name (each a scalar, shaped `[1]`, `[1, 1]`… to the
//!   input's rank), or the model has a single 2-D input `[-1, n]` and the `n` columns are its
//!   features: one row is a tensor of shape `[1, n]`.
//!
//! Rows are numbered from 0 in file order, blank lines and the CSV header not counted. A row
//! that cannot be read is that row's error; only a file whose layout cannot fit the model
//! (a CSV header matching neither rule) is rejected as a whole.

use std::collections::BTreeMap;
use std::ops::Range;

use bytes::Bytes;
use serde_json::Value;

use super::Format;
use crate::inspect::ModelSignature;

/// Why a whole input file cannot be used with a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputFileError {
    #[error("the input is not UTF-8 text")]
    NotUtf8,
    #[error("the CSV input has no header line")]
    NoHeader,
    #[error("the CSV header does not fit the model: {0}")]
    Header(String),
}

/// How CSV columns become inputs.
#[derive(Debug, Clone, PartialEq)]
enum CsvLayout {
    /// Every column is a feature of the one 2-D input.
    Features { input: String, width: usize },
    /// Every column is an input, by name, with that input's rank.
    Columns(Vec<(String, usize)>),
}

/// An input file split into rows, checked against a model's signature.
#[derive(Debug, Clone)]
pub struct InputFile {
    text: Bytes,
    rows: Vec<Range<usize>>,
    layout: Option<CsvLayout>,
    /// Rank of each input the signature declares.
    ranks: BTreeMap<String, usize>,
}

impl InputFile {
    /// Splits `text` into rows and fits its layout to `signature`.
    pub fn parse(
        text: Bytes,
        format: Format,
        signature: &ModelSignature,
    ) -> Result<Self, InputFileError> {
        let utf8 = std::str::from_utf8(&text).map_err(|_| InputFileError::NotUtf8)?;
        let mut rows = lines(utf8);
        let ranks = signature
            .inputs
            .iter()
            .map(|spec| (spec.name.clone(), spec.shape.len()))
            .collect();
        let layout = match format {
            Format::Ndjson => None,
            Format::Csv => {
                if rows.is_empty() {
                    return Err(InputFileError::NoHeader);
                }
                let header = rows.remove(0);
                Some(csv_layout(&utf8[header], signature)?)
            }
        };
        Ok(Self {
            text,
            rows,
            layout,
            ranks,
        })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The named inputs of row `index`, or why the row cannot be read.
    ///
    /// # Panics
    /// If `index` is not below [`len`](Self::len).
    pub fn row(&self, index: usize) -> Result<BTreeMap<String, Value>, String> {
        // Checked UTF-8 in `parse`, and every range ends at a line boundary.
        let line = std::str::from_utf8(&self.text[self.rows[index].clone()])
            .map_err(|_| "not UTF-8".to_owned())?;
        match &self.layout {
            None => self.ndjson_row(line),
            Some(layout) => csv_row(line, layout),
        }
    }

    fn ndjson_row(&self, line: &str) -> Result<BTreeMap<String, Value>, String> {
        let object: BTreeMap<String, Value> = serde_json::from_str(line)
            .map_err(|e| format!("not a JSON object of named inputs: {e}"))?;
        Ok(object
            .into_iter()
            .map(|(name, value)| {
                let value = match self.ranks.get(&name) {
                    Some(&rank) if rank > 0 && depth(&value) + 1 == rank => {
                        Value::Array(vec![value])
                    }
                    _ => value,
                };
                (name, value)
            })
            .collect())
    }
}

/// Byte ranges of the non-blank lines, without their line endings.
fn lines(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let end = start + line.trim_end_matches(['\n', '\r']).len();
        if !text[start..end].trim().is_empty() {
            out.push(start..end);
        }
        start += line.len();
    }
    out
}

/// Nesting depth of arrays along the first elements (`5` → 0, `[[1, 2]]` → 2).
fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.first().map_or(0, depth),
        _ => 0,
    }
}

fn split_csv(line: &str) -> Vec<&str> {
    line.split(',').map(str::trim).collect()
}

fn csv_layout(header: &str, signature: &ModelSignature) -> Result<CsvLayout, InputFileError> {
    let names: Vec<String> = split_csv(header)
        .into_iter()
        .map(|name| name.trim_matches('"').to_owned())
        .collect();
    let by_name = signature.inputs.len() == names.len()
        && names
            .iter()
            .all(|name| signature.inputs.iter().any(|spec| &spec.name == name));
    if by_name {
        return Ok(CsvLayout::Columns(
            names
                .into_iter()
                .map(|name| {
                    let rank = signature
                        .inputs
                        .iter()
                        .find(|spec| spec.name == name)
                        .map_or(1, |spec| spec.shape.len());
                    (name, rank)
                })
                .collect(),
        ));
    }
    match signature.inputs.as_slice() {
        [single] if single.shape.len() == 2 => {
            let width = single.shape[1];
            if width >= 0 && usize::try_from(width).ok() != Some(names.len()) {
                return Err(InputFileError::Header(format!(
                    "input `{}` has {width} features, the header has {} columns",
                    single.name,
                    names.len()
                )));
            }
            Ok(CsvLayout::Features {
                input: single.name.clone(),
                width: names.len(),
            })
        }
        _ => {
            let expected: Vec<_> = signature.inputs.iter().map(|s| s.name.as_str()).collect();
            Err(InputFileError::Header(format!(
                "name the columns after the model's inputs {expected:?}, or use a model with a single 2-D input whose features are the columns"
            )))
        }
    }
}

fn csv_number(column: &str, field: &str) -> Result<Value, String> {
    if let Ok(integer) = field.parse::<i64>() {
        return Ok(Value::from(integer));
    }
    field
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
        .ok_or_else(|| format!("column `{column}`: {field:?} is not a number"))
}

fn csv_row(line: &str, layout: &CsvLayout) -> Result<BTreeMap<String, Value>, String> {
    let fields = split_csv(line);
    match layout {
        CsvLayout::Features { input, width } => {
            if fields.len() != *width {
                return Err(format!("expected {width} columns, got {}", fields.len()));
            }
            let features = fields
                .iter()
                .enumerate()
                .map(|(i, field)| csv_number(&format!("#{}", i + 1), field))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(BTreeMap::from([(
                input.clone(),
                Value::Array(vec![Value::Array(features)]),
            )]))
        }
        CsvLayout::Columns(columns) => {
            if fields.len() != columns.len() {
                return Err(format!(
                    "expected {} columns, got {}",
                    columns.len(),
                    fields.len()
                ));
            }
            columns
                .iter()
                .zip(fields)
                .map(|((name, rank), field)| {
                    let mut value = csv_number(name, field)?;
                    for _ in 0..*rank {
                        value = Value::Array(vec![value]);
                    }
                    Ok((name.clone(), value))
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::inspect::{DType, TensorSpec};

    fn signature(inputs: &[(&str, &[i64])]) -> ModelSignature {
        ModelSignature {
            inputs: inputs
                .iter()
                .map(|(name, shape)| TensorSpec {
                    name: (*name).into(),
                    dtype: DType::F32,
                    shape: shape.to_vec(),
                    class_labels: None,
                })
                .collect(),
            outputs: vec![],
        }
    }

    fn iris() -> ModelSignature {
        signature(&[("input", &[-1, 4])])
    }

    fn parse(text: &str, format: Format, sig: &ModelSignature) -> InputFile {
        InputFile::parse(Bytes::from(text.to_owned()), format, sig).expect("parse")
    }

    #[test]
    fn ndjson_rows_skip_blank_lines_and_gain_a_batch_dimension() {
        let file = parse(
            "{\"input\": [1, 2, 3, 4]}\r\n\n{\"input\": [[1, 2, 3, 4], [5, 6, 7, 8]]}\nnope\n",
            Format::Ndjson,
            &iris(),
        );
        assert_eq!(file.len(), 3);
        assert_eq!(file.row(0).unwrap()["input"], json!([[1, 2, 3, 4]]));
        // Already batched: as given.
        assert_eq!(
            file.row(1).unwrap()["input"],
            json!([[1, 2, 3, 4], [5, 6, 7, 8]])
        );
        assert!(file.row(2).unwrap_err().contains("not a JSON object"));
    }

    #[test]
    fn ndjson_leaves_unknown_names_and_tensor_objects_alone() {
        let file = parse(
            "{\"other\": [1], \"input\": {\"shape\": [1, 4], \"data\": [1, 2, 3, 4]}}",
            Format::Ndjson,
            &iris(),
        );
        let row = file.row(0).unwrap();
        assert_eq!(row["other"], json!([1]));
        assert_eq!(row["input"]["shape"], json!([1, 4]));
    }

    #[test]
    fn csv_columns_are_the_features_of_a_single_2d_input() {
        let file = parse(
            "a,b,c,d\n5.1, 3.5, 1.4, 0.2\n1,2,3\n1,2,x,4\n",
            Format::Csv,
            &iris(),
        );
        assert_eq!(file.len(), 3);
        assert_eq!(file.row(0).unwrap()["input"], json!([[5.1, 3.5, 1.4, 0.2]]));
        assert_eq!(file.row(1).unwrap_err(), "expected 4 columns, got 3");
        assert!(file.row(2).unwrap_err().contains("\"x\" is not a number"));
    }

    #[test]
    fn csv_columns_named_after_inputs() {
        let sig = signature(&[("age", &[-1, 1]), ("income", &[-1])]);
        let file = parse("income,age\n100.5,42\n", Format::Csv, &sig);
        let row = file.row(0).unwrap();
        assert_eq!(row["age"], json!([[42]]));
        assert_eq!(row["income"], json!([100.5]));
    }

    #[test]
    fn csv_headers_that_fit_no_rule_are_rejected_whole() {
        let err =
            InputFile::parse(Bytes::from_static(b"a,b\n1,2\n"), Format::Csv, &iris()).unwrap_err();
        assert!(matches!(err, InputFileError::Header(m) if m.contains("4 features")));
        let two = signature(&[("x", &[-1, 2]), ("y", &[-1, 2])]);
        let err =
            InputFile::parse(Bytes::from_static(b"a,b\n1,2\n"), Format::Csv, &two).unwrap_err();
        assert!(matches!(err, InputFileError::Header(_)));
        let err = InputFile::parse(Bytes::from_static(b"\n"), Format::Csv, &iris()).unwrap_err();
        assert_eq!(err, InputFileError::NoHeader);
        let err =
            InputFile::parse(Bytes::from_static(b"\xff\n"), Format::Ndjson, &iris()).unwrap_err();
        assert_eq!(err, InputFileError::NotUtf8);
    }
}
