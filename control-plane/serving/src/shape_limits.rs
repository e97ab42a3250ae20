//! Caps on turning a shape into containers: a shape is a few numbers a caller, a model or
//! a guest chooses, and the nested JSON it describes can be far larger than the bytes that
//! came with it (a zero-volume `[4294967295, 0]` is 4 billion empty arrays). Every place
//! that nests JSON after a shape checks it here first, with overflow-checked arithmetic.

/// Deepest nesting written as JSON arrays. ONNX tensors rarely exceed rank 8; a deeper
/// shape would only recurse (and overflow the stack) in the encoder and in the client's
/// decoder (serde_json, for one, stops at 128 levels).
pub const MAX_NESTED_RANK: usize = 64;

/// Arrays a nested tensor may always take, whatever its element count: enough for any
/// real output with empty dimensions (a batch of zero detections), small enough to stay
/// a few tens of MB.
pub const MAX_EMPTY_ARRAYS: u64 = 1 << 20;

/// Elements of one input in a schema's example request: an example documents the form of
/// a request, and a larger one is left out (with a note).
pub const MAX_EXAMPLE_ELEMENTS: u64 = 1 << 16;

/// Elements a shape holds, or `None` if the count overflows.
pub fn element_count(shape: &[u32]) -> Option<u64> {
    shape
        .iter()
        .try_fold(1u64, |count, &dim| count.checked_mul(u64::from(dim)))
}

/// The arrays nesting `shape` creates (one per index of every dimension but the last,
/// plus the outermost), or `None` if the count overflows.
pub fn array_count(shape: &[u32]) -> Option<u64> {
    let mut arrays = 0u64;
    let mut level = 1u64;
    for &dim in shape {
        arrays = arrays.checked_add(level)?;
        level = level.checked_mul(u64::from(dim))?;
        if level == 0 {
            break;
        }
    }
    Some(arrays)
}

/// Checks that a tensor of `shape` may be written as nested JSON arrays: a bounded rank,
/// and no more arrays than one per element and dimension (or [`MAX_EMPTY_ARRAYS`], for
/// tensors with few or no elements). Returns why not.
pub fn check_nesting(shape: &[u32]) -> Result<(), String> {
    if shape.len() > MAX_NESTED_RANK {
        return Err(format!(
            "rank {} is more than the {MAX_NESTED_RANK} dimensions wisp nests as JSON",
            shape.len()
        ));
    }
    let too_large = || format!("shape {shape:?} is too large to write as nested JSON");
    let elements = element_count(shape).ok_or_else(too_large)?;
    let arrays = array_count(shape).ok_or_else(too_large)?;
    let allowed = elements
        .saturating_mul(shape.len() as u64)
        .max(MAX_EMPTY_ARRAYS);
    if arrays > allowed {
        return Err(format!(
            "shape {shape:?} would take {arrays} nested JSON arrays for {elements} elements (at most {allowed})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_checked() {
        assert_eq!(element_count(&[]), Some(1));
        assert_eq!(element_count(&[2, 3]), Some(6));
        assert_eq!(element_count(&[u32::MAX, u32::MAX, u32::MAX]), None);
        assert_eq!(array_count(&[]), Some(0));
        assert_eq!(array_count(&[3]), Some(1));
        assert_eq!(array_count(&[2, 3]), Some(3));
        assert_eq!(array_count(&[2, 0, 5]), Some(3));
        assert_eq!(array_count(&[u32::MAX, 0]), Some(1 + u64::from(u32::MAX)));
    }

    #[test]
    fn zero_volume_and_deep_shapes_are_refused_real_ones_pass() {
        let fine: [&[u32]; 6] = [&[1, 4], &[0, 3], &[8, 0], &[1, 0, 4], &[1000, 1, 1], &[]];
        for shape in fine {
            assert!(check_nesting(shape).is_ok(), "{shape:?}");
        }
        assert!(check_nesting(&[u32::MAX, 0]).is_err());
        assert!(check_nesting(&[65536, 65536, 0]).is_err());
        assert!(check_nesting(&[1; MAX_NESTED_RANK + 1]).is_err());
    }
}
