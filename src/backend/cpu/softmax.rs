//! Row softmax (with causal and sliding-window masks) and the softmax-pick used by probability
//! targets.

use super::activation::{dispatch, exp, widths};
use super::for_rows;
use crate::backend::{PickKind, SoftmaxMask};
use crate::error::Result;

/// `row ← softmax(scale · row)`, the exponentials summed in f64: one function for the
/// softmax op and both attention paths, so that fused and materialised probabilities are the
/// same bits. Each pass keeps 32 independent maxima or sums, which vectorise (a single
/// running maximum or f64 sum is a chain of dependent scalar operations, and took a tenth of
/// a long prompt's time), with the vectorised `exp` of the activations.
pub fn scaled_softmax_in_place(row: &mut [f32], scale: f32) {
    if !row.is_empty() {
        dispatch!(scaled_softmax_loop(row, scale))
    }
}

/// `Σ a_i b_i` in f64, in 32 independent partial sums (see `scaled_softmax_in_place`).
pub fn dot_f64(a: &[f32], b: &[f32]) -> f64 {
    let mut out = 0.0;
    dispatch!(dot_f64_loop(a, b, &mut out));
    out
}

/// Independent partial maxima or sums per loop (here and in `norm`).
pub(super) const LANES: usize = 32;

widths!(scaled_softmax_loop(row: &mut [f32], scale: f32) {
    let mut maxima = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    // A select `v > m ? v : m` rather than `f32::max`: the same maximum, NaN ignored alike,
    // but one instruction (`vmaxps`) where `max`'s NaN handling took three. Not a conditional
    // store (`if v > m { m = v }`): that kept the maxima in memory, behind masked stores the
    // next iteration's loads waited on (a third of the pass's samples).
    for chunk in &mut chunks {
        for (m, v) in maxima.iter_mut().zip(chunk.iter_mut()) {
            *v *= scale;
            *m = if *v > *m { *v } else { *m };
        }
    }
    let mut max = f32::NEG_INFINITY;
    for v in chunks.into_remainder() {
        *v *= scale;
        max = max.max(*v);
    }
    let max = maxima.iter().fold(max, |a, &b| a.max(b));
    let mut sums = [0f64; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        // Two loops, not one: together, the f64 sums set the vector width (8 lanes) for
        // `exp` too; apart, `exp` runs 16 f32 lanes wide. The same values, summed alike.
        for v in chunk.iter_mut() {
            *v = exp(*v - max);
        }
        for (s, v) in sums.iter_mut().zip(chunk.iter()) {
            *s += *v as f64;
        }
    }
    let mut sum = 0f64;
    for v in chunks.into_remainder() {
        *v = exp(*v - max);
        sum += *v as f64;
    }
    let inv = (1.0 / sums.iter().fold(sum, |a, &b| a + b)) as f32;
    row.iter_mut().for_each(|v| *v *= inv);
});

widths!(dot_f64_loop(a: &[f32], b: &[f32], out: &mut f64) {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut sums = [0f64; LANES];
    for (x, y) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        for ((s, &p), &q) in sums.iter_mut().zip(x).zip(y) {
            *s += p as f64 * q as f64;
        }
    }
    let tail = n - n % LANES;
    let sum: f64 = a[tail..].iter().zip(&b[tail..]).map(|(&p, &q)| p as f64 * q as f64).sum();
    *out = sums.iter().fold(sum, |acc, &s| acc + s);
});

pub fn forward(x: &[f32], cols: usize, mask: SoftmaxMask) -> Result<Vec<f32>> {
    let mut out = super::zeros(x.len(), "a softmax")?;
    for_rows(&mut out, cols, |r, row| {
        let vis = mask.visible(r, cols);
        row[vis.clone()].copy_from_slice(&x[r * cols + vis.start..r * cols + vis.end]);
        scaled_softmax_in_place(&mut row[vis], 1.0);
    });
    Ok(out)
}

pub fn backward(y: &[f32], g: &[f32], cols: usize, factor: f32) -> Result<Vec<f32>> {
    let mut out = super::zeros(y.len(), "a softmax")?;
    for_rows(&mut out, cols, |r, row| {
        let (ys, gs) = (&y[r * cols..(r + 1) * cols], &g[r * cols..(r + 1) * cols]);
        let dot = dot_f64(ys, gs);
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
    let mut out = super::zeros(x.len(), "a softmax")?;
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
