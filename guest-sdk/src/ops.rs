//! Numeric helpers for pre- and post-processing, on plain slices.

/// Softmax of `logits`, computed stably.
///
/// ```
/// let p = wisp_guest::ops::softmax(&[1.0, 1.0]);
/// assert_eq!(p, vec![0.5, 0.5]);
/// ```
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Index of the largest value (the first on ties); `None` for an empty slice.
///
/// ```
/// assert_eq!(wisp_guest::ops::argmax(&[0.1, 0.7, 0.2]), Some(1));
/// ```
pub fn argmax(values: &[f32]) -> Option<usize> {
    values
        .iter()
        .enumerate()
        .fold(None, |best: Option<(usize, f32)>, (i, &v)| match best {
            Some((_, b)) if b >= v => best,
            _ => Some((i, v)),
        })
        .map(|(i, _)| i)
}

/// The `k` largest values with their indices, largest first.
///
/// ```
/// assert_eq!(wisp_guest::ops::top_k(&[0.1, 0.7, 0.2], 2), vec![(1, 0.7), (2, 0.2)]);
/// ```
pub fn top_k(values: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut indexed: Vec<(usize, f32)> = values.iter().copied().enumerate().collect();
    indexed.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    indexed.truncate(k);
    indexed
}

/// `(x - mean) / std` for every value, in place.
///
/// ```
/// let mut v = [2.0, 4.0];
/// wisp_guest::ops::normalize(&mut v, 3.0, 2.0);
/// assert_eq!(v, [-0.5, 0.5]);
/// ```
pub fn normalize(values: &mut [f32], mean: f32, std: f32) {
    for v in values {
        *v = (*v - mean) / std;
    }
}

/// Applies [`softmax`] to each row of a row-major `[rows, columns]` matrix.
pub fn softmax_rows(matrix: &[f32], columns: usize) -> Vec<f32> {
    matrix.chunks(columns.max(1)).flat_map(softmax).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_is_stable_for_large_logits() {
        let p = softmax(&[1000.0, 1000.0, 0.0]);
        assert!((p[0] - 0.5).abs() < 1e-6 && p[2] < 1e-30);
    }

    #[test]
    fn argmax_takes_first_of_ties_and_handles_empty() {
        assert_eq!(argmax(&[3.0, 3.0]), Some(0));
        assert_eq!(argmax(&[]), None);
    }

    #[test]
    fn softmax_rows_normalises_each_row() {
        let p = softmax_rows(&[0.0, 0.0, 5.0, 5.0], 2);
        assert_eq!(p, vec![0.5, 0.5, 0.5, 0.5]);
    }
}
