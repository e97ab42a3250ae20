//! Host-side tensors and signatures: the values the runtime takes from and gives back to
//! its caller, independent of WIT bindings and of the inference backend.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Element type of a tensor. Data is little-endian and row-major.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TensorType {
    /// 32-bit IEEE float.
    F32,
    /// 64-bit IEEE float.
    F64,
    /// 32-bit signed integer.
    I32,
    /// 64-bit signed integer.
    I64,
    /// Unsigned byte.
    U8,
    /// UTF-8 string. The data holds each element in row-major order as its byte length
    /// (4 bytes, little-endian) followed by its bytes: the layout of Triton's `BYTES`.
    String,
}

impl TensorType {
    /// Size of one element in bytes; for `string`, the least one takes (its length prefix).
    pub fn size_of(self) -> usize {
        match self {
            Self::F32 | Self::I32 | Self::String => 4,
            Self::F64 | Self::I64 => 8,
            Self::U8 => 1,
        }
    }

    /// The lowercase name used in APIs and error messages (`f32`, `i64`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F64 => "f64",
            Self::I32 => "i32",
            Self::I64 => "i64",
            Self::U8 => "u8",
            Self::String => "string",
        }
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A dense tensor.
#[derive(Clone, PartialEq)]
pub struct Tensor {
    /// Element type.
    pub ty: TensorType,
    /// Size of each dimension.
    pub shape: Vec<u32>,
    /// `product(shape) * ty.size_of()` bytes, little-endian, row-major; for `string`, each
    /// element length-prefixed (see [`TensorType::String`]).
    pub data: Vec<u8>,
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tensor")
            .field("ty", &self.ty)
            .field("shape", &self.shape)
            .field("bytes", &self.data.len())
            .finish()
    }
}

/// Values that can be the elements of a [`Tensor`].
pub trait Element: Copy + 'static {
    /// The element type tag.
    const TYPE: TensorType;
    /// Appends the little-endian bytes of `self`.
    fn write_le(self, out: &mut Vec<u8>);
    /// Reads one element from exactly `size_of` little-endian bytes.
    fn read_le(bytes: &[u8]) -> Self;
}

macro_rules! impl_element {
    ($($t:ty => $tag:ident),*) => {$(
        impl Element for $t {
            const TYPE: TensorType = TensorType::$tag;
            fn write_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn read_le(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().expect("caller passes size_of bytes"))
            }
        }
    )*};
}
impl_element!(f32 => F32, f64 => F64, i32 => I32, i64 => I64, u8 => U8);

impl Tensor {
    /// Builds a tensor from typed values. Panics if `values` does not fill `shape`.
    pub fn from_values<T: Element>(shape: &[u32], values: &[T]) -> Self {
        // Checked: a product that wraps around could otherwise match `values`.
        let elements = Self::elements_of(shape);
        assert_eq!(
            elements,
            Some(values.len()),
            "values do not fill shape {shape:?}"
        );
        let mut data = Vec::with_capacity(values.len() * T::TYPE.size_of());
        for &value in values {
            value.write_le(&mut data);
        }
        Self {
            ty: T::TYPE,
            shape: shape.to_vec(),
            data,
        }
    }

    /// The elements as `T`, or `None` if the tensor holds another type.
    pub fn values<T: Element>(&self) -> Option<Vec<T>> {
        (self.ty == T::TYPE).then(|| {
            self.data
                .chunks_exact(T::TYPE.size_of())
                .map(T::read_le)
                .collect()
        })
    }

    /// Builds a string tensor. Panics if `values` does not fill `shape`.
    pub fn from_strings<S: AsRef<str>>(shape: &[u32], values: &[S]) -> Self {
        assert_eq!(
            Self::elements_of(shape),
            Some(values.len()),
            "values do not fill shape {shape:?}"
        );
        let mut data = Vec::new();
        for value in values {
            let bytes = value.as_ref().as_bytes();
            let len = u32::try_from(bytes.len()).expect("a string element is under 4 GiB");
            data.extend_from_slice(&len.to_le_bytes());
            data.extend_from_slice(bytes);
        }
        Self {
            ty: TensorType::String,
            shape: shape.to_vec(),
            data,
        }
    }

    /// The elements of a string tensor, or `None` if it holds another type or its data is
    /// not well formed (see [`Tensor::check_layout`]).
    pub fn strings(&self) -> Option<Vec<String>> {
        (self.ty == TensorType::String)
            .then(|| decode_strings(&self.data).ok())
            .flatten()
    }

    /// Number of elements the shape describes (1 for a scalar).
    pub fn element_count(&self) -> Option<usize> {
        Self::elements_of(&self.shape)
    }

    /// Number of elements `shape` describes, or `None` if the count overflows `usize`.
    pub fn elements_of(shape: &[u32]) -> Option<usize> {
        shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d as usize))
    }

    /// Checks that the data length matches the shape and type.
    pub fn check_layout(&self) -> Result<(), String> {
        if self.ty == TensorType::String {
            let expected = self
                .element_count()
                .ok_or_else(|| format!("shape {:?} is too large", self.shape))?;
            let found = decode_strings(&self.data)?.len();
            return if found == expected {
                Ok(())
            } else {
                Err(format!(
                    "shape {:?} of string needs {expected} elements, got {found}",
                    self.shape
                ))
            };
        }
        let expected = self
            .element_count()
            .and_then(|n| n.checked_mul(self.ty.size_of()))
            .ok_or_else(|| format!("shape {:?} is too large", self.shape))?;
        if expected == self.data.len() {
            Ok(())
        } else {
            Err(format!(
                "shape {:?} of {} needs {expected} bytes, got {}",
                self.shape,
                self.ty,
                self.data.len()
            ))
        }
    }
}

/// The elements of length-prefixed string data: each a 4-byte little-endian byte length,
/// then that many bytes of UTF-8.
pub fn decode_strings(mut data: &[u8]) -> Result<Vec<String>, String> {
    let mut strings = Vec::new();
    while !data.is_empty() {
        let index = strings.len();
        let (prefix, rest) = data
            .split_first_chunk::<4>()
            .ok_or_else(|| format!("string element {index}: truncated length prefix"))?;
        let len = u32::from_le_bytes(*prefix) as usize;
        if rest.len() < len {
            return Err(format!(
                "string element {index}: length {len} runs past the data ({} bytes left)",
                rest.len()
            ));
        }
        let (bytes, rest) = rest.split_at(len);
        let text = std::str::from_utf8(bytes)
            .map_err(|e| format!("string element {index} is not UTF-8: {e}"))?;
        strings.push(text.to_owned());
        data = rest;
    }
    Ok(strings)
}

/// A tensor bound to the name of a model input or output.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Input or output name.
    pub name: String,
    /// The value.
    pub tensor: Tensor,
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

/// The declared type of one input or output; `-1` marks a dimension known only at call time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    /// Input or output name.
    pub name: String,
    /// Element type.
    #[serde(rename = "dtype")]
    pub ty: TensorType,
    /// Dimensions, `-1` where variable.
    pub shape: Vec<i64>,
}

impl TensorSpec {
    /// Whether `shape` fits this spec (same rank, equal fixed dimensions).
    pub fn accepts_shape(&self, shape: &[u32]) -> bool {
        self.shape.len() == shape.len()
            && self
                .shape
                .iter()
                .zip(shape)
                .all(|(&want, &got)| want < 0 || want == i64::from(got))
    }
}

/// The inputs a model accepts and the outputs it produces.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// Inputs, in the model's order.
    pub inputs: Vec<TensorSpec>,
    /// Outputs, in the model's order.
    pub outputs: Vec<TensorSpec>,
}

/// Renders a shape for error messages, `-1` as `?`.
pub(crate) fn shape_display(shape: &[i64]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|&d| if d < 0 { "?".into() } else { d.to_string() })
        .collect();
    format!("[{}]", dims.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_bytes() {
        let t = Tensor::from_values(&[2, 2], &[1.5f32, -2.0, 3.25, 0.0]);
        assert_eq!(t.data.len(), 16);
        assert_eq!(t.values::<f32>().unwrap(), vec![1.5, -2.0, 3.25, 0.0]);
        assert!(t.values::<i32>().is_none());
        t.check_layout().unwrap();
    }

    #[test]
    fn strings_round_trip_through_length_prefixed_bytes() {
        let t = Tensor::from_strings(&[2, 1], &["setosa", "\u{e9}t\u{e9}"]);
        assert_eq!(&t.data[..4], &6u32.to_le_bytes());
        assert_eq!(t.strings().unwrap(), vec!["setosa", "\u{e9}t\u{e9}"]);
        t.check_layout().unwrap();
        let short = Tensor {
            shape: vec![3, 1],
            ..t.clone()
        };
        assert!(
            short
                .check_layout()
                .unwrap_err()
                .contains("needs 3 elements, got 2")
        );
        // 10 bytes for "setosa", then 4 + 5 for "été": cut inside its bytes, then inside
        // its length prefix.
        let mut cut = t.clone();
        cut.data.truncate(16);
        assert!(
            cut.check_layout()
                .unwrap_err()
                .contains("runs past the data")
        );
        cut.data.truncate(12);
        assert!(
            cut.check_layout()
                .unwrap_err()
                .contains("truncated length prefix")
        );
    }

    #[test]
    fn layout_mismatch_is_reported() {
        let t = Tensor {
            ty: TensorType::I64,
            shape: vec![3],
            data: vec![0; 16],
        };
        assert_eq!(
            t.check_layout().unwrap_err(),
            "shape [3] of i64 needs 24 bytes, got 16"
        );
    }

    #[test]
    fn overflowing_shapes_are_caught_not_wrapped() {
        // 65536^4 is 2^64: it wraps to 0 in release builds, which would match no values.
        let shape = [65536, 65536, 65536, 65536];
        assert_eq!(Tensor::elements_of(&shape), None);
        let t = Tensor {
            ty: TensorType::U8,
            shape: shape.to_vec(),
            data: Vec::new(),
        };
        assert!(t.check_layout().unwrap_err().contains("too large"));
        let wrapped = std::panic::catch_unwind(|| Tensor::from_values::<u8>(&shape, &[]));
        assert!(wrapped.is_err(), "an overflowing shape is not an empty one");
    }

    #[test]
    fn spec_accepts_variable_dimensions() {
        let spec = TensorSpec {
            name: "x".into(),
            ty: TensorType::F32,
            shape: vec![-1, 4],
        };
        assert!(spec.accepts_shape(&[7, 4]));
        assert!(!spec.accepts_shape(&[7, 3]));
        assert!(!spec.accepts_shape(&[4]));
        assert_eq!(shape_display(&spec.shape), "[?, 4]");
    }
}
