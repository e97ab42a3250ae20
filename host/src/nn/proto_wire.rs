//! A borrowing reader of the protobuf wire format: fields one at a time, nothing allocated.
//!
//! Just enough to walk an ONNX file before a real decoder (prost, inside tract) builds it in
//! memory; see `onnx_limits.rs`.

/// The payload of one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    /// A length-delimited field: a message, a string, bytes or a packed array.
    Bytes(&'a [u8]),
}

/// The file is not protobuf (an impossible tag or wire type, a length past the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed;

/// Fields of one message, in file order.
#[derive(Debug, Clone)]
pub(crate) struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    pub(crate) fn new(message: &'a [u8]) -> Self {
        Self { rest: message }
    }

    /// The next field number and payload; `None` at the end of the message.
    pub(crate) fn next_field(&mut self) -> Result<Option<(u32, Wire<'a>)>, Malformed> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let key = read_varint(&mut self.rest)?;
        let field = u32::try_from(key >> 3).map_err(|_| Malformed)?;
        if field == 0 {
            return Err(Malformed);
        }
        let wire = match key & 7 {
            0 => Wire::Varint(read_varint(&mut self.rest)?),
            1 => Wire::Fixed64(u64::from_le_bytes(
                take(&mut self.rest, 8)?.try_into().unwrap_or_default(),
            )),
            2 => {
                let len = usize::try_from(read_varint(&mut self.rest)?).map_err(|_| Malformed)?;
                Wire::Bytes(take(&mut self.rest, len)?)
            }
            5 => Wire::Fixed32(u32::from_le_bytes(
                take(&mut self.rest, 4)?.try_into().unwrap_or_default(),
            )),
            // Groups (3, 4) are deprecated and absent from ONNX; 6 and 7 do not exist.
            _ => return Err(Malformed),
        };
        Ok(Some((field, wire)))
    }
}

fn take<'a>(rest: &mut &'a [u8], len: usize) -> Result<&'a [u8], Malformed> {
    if rest.len() < len {
        return Err(Malformed);
    }
    let (head, tail) = rest.split_at(len);
    *rest = tail;
    Ok(head)
}

pub(crate) fn read_varint(rest: &mut &[u8]) -> Result<u64, Malformed> {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        let (&byte, tail) = rest.split_first().ok_or(Malformed)?;
        *rest = tail;
        if shift == 63 && byte > 1 {
            return Err(Malformed);
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(Malformed)
}

/// Elements of a packed array of varints: one per byte without the continuation bit.
pub(crate) fn packed_varints(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|b| *b & 0x80 == 0).count() as u64
}

/// The values of a repeated integer field, packed or not; fixed-width wire types are not
/// integers of such a field.
pub(crate) fn ints(wire: Wire<'_>, mut each: impl FnMut(i64)) -> Result<(), Malformed> {
    match wire {
        Wire::Varint(value) => each(value as i64),
        Wire::Bytes(mut packed) => {
            while !packed.is_empty() {
                each(read_varint(&mut packed)? as i64);
            }
        }
        Wire::Fixed32(_) | Wire::Fixed64(_) => return Err(Malformed),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_in_order() {
        // field 1 varint 150, field 2 bytes "hi", field 5 fixed32 1
        let bytes = [0x08, 0x96, 0x01, 0x12, 0x02, b'h', b'i', 0x2d, 1, 0, 0, 0];
        let mut fields = Fields::new(&bytes);
        assert_eq!(fields.next_field(), Ok(Some((1, Wire::Varint(150)))));
        assert_eq!(fields.next_field(), Ok(Some((2, Wire::Bytes(b"hi")))));
        assert_eq!(fields.next_field(), Ok(Some((5, Wire::Fixed32(1)))));
        assert_eq!(fields.next_field(), Ok(None));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for bytes in [
            &[0x12, 0x05, b'x'][..],
            &[0x0b],
            &[0x08],
            &[0x00, 0x00],
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
            ],
        ] {
            let mut fields = Fields::new(bytes);
            assert_eq!(fields.next_field(), Err(Malformed), "{bytes:?}");
        }
    }
}
