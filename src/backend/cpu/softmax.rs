//! Row softmax (with causal and sliding-window masks) and the softmax-pick used by probability
//! targets.

use super::for_rows;
use crate::backend::{PickKind, SoftmaxMask};
use crate::error::Result;

/// Softmax of the visible entries `row` in place, summed in f64. The exponentials are the
/// vectorised `exp` of the activations (attention's rows made libm's scalar `exp` a third of
/// a long prompt's time).
pub fn normalize_in_place(row: &mut [f32]) {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    super::activation::exp_shifted_in_place(row, max);
    let sum: f64 = row.iter().map(|&e| e as f64).sum();
    let inv = (1.0 / sum) as f32;
    row.iter_mut().for_each(|o| *o *= inv);
}

pub fn forward(x: &[f32], cols: usize, mask: SoftmaxMask) -> Result<Vec<f32>> {
    let mut out = super::zeros(x.len(), "a softmax")?;
    for_rows(&mut out, cols, |r, row| {
        let vis = mask.visible(r, cols);
        row[vis.clone()].copy_from_slice(&x[r * cols + vis.start..r * cols + vis.end]);
        normalize_in_place(&mut row[vis]);
    });
    Ok(out)
}

pub fn backward(y: &[f32], g: &[f32], cols: usize, factor: f32) -> Result<Vec<f32>> {
    let mut out = vec![0.0f32; y.len()];
    for_rows(&mut out, cols, |r, row| {
        let (ys, gs) = (&y[r * cols..(r + 1) * cols], &g[r * cols..(r + 1) * cols]);
        let dot: f64 = ys.iter().zip(gs).map(|(&a, &b)| a as f64 * b as f64).sum();
        for ((o, &yv), &gv) in row.iter_mut().zip(ys).zip(gs) {
            *o = factor * yv * (gv - dot as f32);
        }
    });
    Ok(out)
}

/// `(log Σ exp, max)` of a row, in f64.
fn log_sum_exp(row: &[f32]) -> f64 {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    max + row
        .iter()
        .map(|&v| (v as f64 - max).exp())
        .sum::<f64>()
        .ln()
}

pub fn pick(x: &[f32], cols: usize, col: usize, kind: PickKind) -> Result<Vec<f32>> {
    Ok(x.chunks(cols)
        .map(|row| {
            let lp = row[col] as f64 - log_sum_exp(row);
            (match kind {
                PickKind::LogProb => lp,
                PickKind::Prob => lp.exp(),
            }) as f32
        })
        .collect())
}

pub fn pick_backward(
    x: &[f32],
    g: &[f32],
    cols: usize,
    col: usize,
    kind: PickKind,
) -> Result<Vec<f32>> {
    let mut out = vec![0.0f32; x.len()];
    for_rows(&mut out, cols, |r, row| {
        let src = &x[r * cols..(r + 1) * cols];
        let lse = log_sum_exp(src);
        // d log p_t / d x_j = 1[j = t] − p_j; d p_t = p_t · d log p_t.
        let scale = match kind {
            PickKind::LogProb => g[r] as f64,
            PickKind::Prob => g[r] as f64 * (src[col] as f64 - lse).exp(),
        };
        for (j, (o, &v)) in row.iter_mut().zip(src).enumerate() {
            let p = (v as f64 - lse).exp();
            let onehot = if j == col { 1.0 } else { 0.0 };
            *o = (scale * (onehot - p)) as f32;
        }
    });
    Ok(out)
}
