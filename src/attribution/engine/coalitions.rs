//! Coalitions of tokens, the inputs of the perturbation methods (Shapley sampling,
//! KernelSHAP, LIME): a coalition takes its tokens' rows from `x` and the rest from the
//! baseline, and `F` runs on all of them as batched forward passes. Also the small dense
//! solver their regressions need.

use super::{points, Prepared};
use crate::error::Result;

/// `F` at `count` coalitions; coalition `c` keeps token `t` from `x` where `present(c, t)`.
pub fn scores(
    p: &Prepared,
    baseline: &[f32],
    count: usize,
    present: impl Fn(usize, usize) -> bool + Sync,
) -> Result<Vec<f32>> {
    let d = p.model.hidden_size();
    let x = p.x.to_vec()?;
    let fill = |c: usize, out: &mut [f32]| {
        for t in 0..p.ids.len() {
            let src = if present(c, t) { &x } else { baseline };
            out[t * d..(t + 1) * d].copy_from_slice(&src[t * d..(t + 1) * d]);
        }
    };
    points::scores(p, count, fill, p.batch_size)
}

/// `k` distinct tokens of `n`, drawn uniformly (a partial Fisher–Yates shuffle), as a mask.
pub fn random_subset(rng: &mut super::random::Rng, n: usize, k: usize) -> Vec<bool> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in 0..k {
        let j = i + rng.index(n - i);
        order.swap(i, j);
    }
    let mut mask = vec![false; n];
    for &t in &order[..k] {
        mask[t] = true;
    }
    mask
}

/// Solves `A z = b` for a dense `n × n` row-major `A` (Gaussian elimination with partial
/// pivoting, in f64); `None` when `A` is singular to working precision.
pub fn solve(mut a: Vec<f64>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    let scale = a
        .iter()
        .fold(0f64, |m, v| m.max(v.abs()))
        .max(f64::MIN_POSITIVE);
    for col in 0..n {
        let pivot =
            (col..n).max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))?;
        if a[pivot * n + col].abs() <= 1e-12 * scale {
            return None;
        }
        if pivot != col {
            for k in 0..n {
                a.swap(col * n + k, pivot * n + k);
            }
            b.swap(col, pivot);
        }
        for row in col + 1..n {
            let f = a[row * n + col] / a[col * n + col];
            if f != 0.0 {
                for k in col..n {
                    a[row * n + k] -= f * a[col * n + k];
                }
                b[row] -= f * b[col];
            }
        }
    }
    let mut z = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row * n + k] * z[k]).sum();
        z[row] = (b[row] - s) / a[row * n + row];
    }
    Some(z)
}
