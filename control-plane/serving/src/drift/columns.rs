//! Tensors as feature columns: which named feature each element of a call's tensors is.
//!
//! The rule, the same for live calls and for a reference data set:
//!
//! - a tensor `[rows]` is one feature named after the tensor (`label`);
//! - a tensor `[rows, 1]` too (`outlook`, one column of a tabular model);
//! - a tensor `[rows, n]` is `n` features `<tensor>[i]` (`input[0]` … `input[3]`), unless the
//!   reference named its columns (a CSV header mapped in order): then those names;
//! - tensors of any other rank (images, sequences) are not profiled.
//!
//! String tensors are categorical features, every other type numeric.

use std::collections::BTreeMap;

use wisp_host::{NamedTensor, Tensor, TensorType};

/// The names given to the columns of 2-D tensors, by tensor name.
pub type ColumnNames = BTreeMap<String, Vec<String>>;

/// One feature's values, one per row.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Numeric(Vec<f64>),
    Text(Vec<String>),
}

impl Values {
    /// How many rows.
    pub fn len(&self) -> usize {
        match self {
            Self::Numeric(v) => v.len(),
            Self::Text(v) => v.len(),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first `rows` rows.
    pub fn truncate(&mut self, rows: usize) {
        match self {
            Self::Numeric(v) => v.truncate(rows),
            Self::Text(v) => v.truncate(rows),
        }
    }
}

/// A named feature and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub values: Values,
}

/// The name of column `index` of a tensor `tensor` with `width` columns (`None`: a tensor
/// of rank 1).
pub fn feature_name(
    tensor: &str,
    width: Option<usize>,
    index: usize,
    names: &ColumnNames,
) -> String {
    match width {
        None | Some(1) => tensor.to_owned(),
        Some(_) => names
            .get(tensor)
            .and_then(|n| n.get(index))
            .cloned()
            .unwrap_or_else(|| format!("{tensor}[{index}]")),
    }
}

/// The feature columns of `tensors` (see the module docs); other ranks are skipped.
pub fn columns(tensors: &[NamedTensor], names: &ColumnNames) -> Vec<Column> {
    let mut out = Vec::new();
    for named in tensors {
        let tensor = &named.tensor;
        let (rows, width) = match tensor.shape.as_slice() {
            [rows] => (*rows as usize, None),
            [rows, width] => (*rows as usize, Some(*width as usize)),
            _ => continue,
        };
        let Some(values) = decode(tensor) else {
            continue;
        };
        let stride = width.unwrap_or(1);
        if values.len() != rows * stride {
            continue;
        }
        for index in 0..stride {
            let name = feature_name(&named.name, width, index, names);
            let values = match &values {
                Values::Numeric(v) => {
                    Values::Numeric(v.iter().skip(index).step_by(stride).copied().collect())
                }
                Values::Text(v) => {
                    Values::Text(v.iter().skip(index).step_by(stride).cloned().collect())
                }
            };
            out.push(Column { name, values });
        }
    }
    out
}

/// Every element of a tensor, row-major, as a number or a string; `None` if the data does
/// not hold what its type says.
fn decode(tensor: &Tensor) -> Option<Values> {
    let data = &tensor.data;
    let numbers = |size: usize, read: fn(&[u8]) -> f64| -> Option<Values> {
        data.len()
            .is_multiple_of(size)
            .then(|| Values::Numeric(data.chunks_exact(size).map(read).collect()))
    };
    match tensor.ty {
        TensorType::F32 => numbers(4, |b| {
            f32::from_le_bytes(b.try_into().unwrap_or_default()) as f64
        }),
        TensorType::F64 => numbers(8, |b| f64::from_le_bytes(b.try_into().unwrap_or_default())),
        TensorType::I32 => numbers(4, |b| {
            i32::from_le_bytes(b.try_into().unwrap_or_default()) as f64
        }),
        TensorType::I64 => numbers(8, |b| {
            i64::from_le_bytes(b.try_into().unwrap_or_default()) as f64
        }),
        TensorType::U8 => numbers(1, |b| b[0] as f64),
        TensorType::String => {
            let mut strings = Vec::new();
            let mut rest = data.as_slice();
            while !rest.is_empty() {
                let (len, tail) = rest.split_at_checked(4)?;
                let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
                let (bytes, tail) = tail.split_at_checked(len)?;
                strings.push(String::from_utf8_lossy(bytes).into_owned());
                rest = tail;
            }
            Some(Values::Text(strings))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_tensor(name: &str, shape: &[u32], values: &[f32]) -> NamedTensor {
        NamedTensor {
            name: name.into(),
            tensor: Tensor {
                ty: TensorType::F32,
                shape: shape.to_vec(),
                data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            },
        }
    }

    #[test]
    fn a_matrix_is_one_feature_per_column_and_a_column_is_its_tensor() {
        let matrix = f32_tensor("input", &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let column = f32_tensor("age", &[2, 1], &[30.0, 40.0]);
        let image = f32_tensor("image", &[1, 1, 2], &[0.0, 1.0]);
        let mut strings = Vec::new();
        for s in ["sunny", "rain"] {
            strings.extend((s.len() as u32).to_le_bytes());
            strings.extend(s.as_bytes());
        }
        let text = NamedTensor {
            name: "outlook".into(),
            tensor: Tensor {
                ty: TensorType::String,
                shape: vec![2, 1],
                data: strings,
            },
        };
        let names = ColumnNames::from([("input".into(), vec!["a".into(), "b".into()])]);
        let got = columns(&[matrix, column, image, text], &names);
        let named: Vec<_> = got.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(named, ["a", "b", "input[2]", "age", "outlook"]);
        assert_eq!(got[1].values, Values::Numeric(vec![2.0, 5.0]));
        assert_eq!(
            got[4].values,
            Values::Text(vec!["sunny".into(), "rain".into()])
        );
    }
}
