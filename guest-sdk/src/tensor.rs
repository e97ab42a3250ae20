//! Typed access to tensor data.

use crate::{Error, Tensor, TensorType};

/// Element types a [`Tensor`] can hold.
pub trait Element: Copy + 'static {
    /// The tag of this element type.
    const TYPE: TensorType;
    /// Appends the little-endian bytes of `self` to `out`.
    fn write_le(self, out: &mut Vec<u8>);
    /// Reads one element from its little-endian bytes.
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
                <$t>::from_le_bytes(bytes.try_into().expect("chunks have the element size"))
            }
        }
    )*};
}
impl_element!(f32 => F32, f64 => F64, i32 => I32, i64 => I64, u8 => U8);

/// Size of one element of `ty` in bytes; for `string`, the least one takes (its 4-byte
/// length prefix).
pub fn size_of(ty: TensorType) -> usize {
    match ty {
        TensorType::F32 | TensorType::I32 | TensorType::String => 4,
        TensorType::F64 | TensorType::I64 => 8,
        TensorType::U8 => 1,
    }
}

impl Tensor {
    /// A tensor of `shape` holding `values` (row-major).
    ///
    /// ```
    /// let t = wisp_guest::Tensor::from_values(&[2], &[1.0f32, 2.0]);
    /// assert_eq!(t.to_vec::<f32>().unwrap(), vec![1.0, 2.0]);
    /// ```
    pub fn from_values<T: Element>(shape: &[u32], values: &[T]) -> Self {
        let mut data = Vec::with_capacity(values.len() * size_of(T::TYPE));
        for &value in values {
            value.write_le(&mut data);
        }
        Self {
            ty: T::TYPE,
            shape: shape.to_vec(),
            data,
        }
    }

    /// The elements as `T`; an `invalid-input` error if the tensor holds another type.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>, Error> {
        if self.ty != T::TYPE {
            return Err(Error::InvalidInput(format!(
                "expected a {:?} tensor, got {:?}",
                T::TYPE,
                self.ty
            )));
        }
        Ok(self
            .data
            .chunks_exact(size_of(T::TYPE))
            .map(T::read_le)
            .collect())
    }

    /// The elements of a string tensor; an `invalid-input` error for another type or data
    /// that is not length-prefixed UTF-8.
    pub fn to_strings(&self) -> Result<Vec<String>, Error> {
        if self.ty != TensorType::String {
            return Err(Error::InvalidInput(format!(
                "expected a String tensor, got {:?}",
                self.ty
            )));
        }
        let invalid = || Error::InvalidInput("malformed string tensor data".into());
        let mut data = self.data.as_slice();
        let mut strings = Vec::new();
        while let Some((prefix, rest)) = data.split_first_chunk::<4>() {
            let len = u32::from_le_bytes(*prefix) as usize;
            let bytes = rest.get(..len).ok_or_else(invalid)?;
            strings.push(String::from_utf8(bytes.to_vec()).map_err(|_| invalid())?);
            data = &rest[len..];
        }
        if data.is_empty() {
            Ok(strings)
        } else {
            Err(invalid())
        }
    }

    /// The elements converted to `f32`, whatever numeric type the tensor holds (none for
    /// strings).
    pub fn to_f32_lossy(&self) -> Vec<f32> {
        match self.ty {
            TensorType::F32 => self.to_vec::<f32>().unwrap_or_default(),
            TensorType::F64 => self
                .to_vec::<f64>()
                .unwrap_or_default()
                .into_iter()
                .map(|v| v as f32)
                .collect(),
            TensorType::I32 => self
                .to_vec::<i32>()
                .unwrap_or_default()
                .into_iter()
                .map(|v| v as f32)
                .collect(),
            TensorType::I64 => self
                .to_vec::<i64>()
                .unwrap_or_default()
                .into_iter()
                .map(|v| v as f32)
                .collect(),
            TensorType::U8 => self.data.iter().map(|&v| f32::from(v)).collect(),
            TensorType::String => Vec::new(),
        }
    }

    /// Number of elements.
    pub fn element_count(&self) -> usize {
        self.shape.iter().map(|&d| d as usize).product()
    }
}
