//! LayerNorm and RMSNorm, statistics accumulated in f64.

use super::activation::{dispatch, widths};
use super::softmax::{dot_f64, LANES};
use super::{for_rows, PAR_MIN};
use crate::error::Result;
use rayon::prelude::*;

pub fn layer_norm(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    cols: usize,
    eps: f32,
) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    let rows = x.len().checked_div(cols).unwrap_or(0);
    // Each row's mean and variance in 32 independent f64 sums, rows in parallel (see
    // `rms_norm`).
    let stat = |r: usize| {
        let row = &x[r * cols..(r + 1) * cols];
        let mut sum = 0.0;
        dispatch!(sum_loop(row, &mut sum));
        let mean = sum / cols as f64;
        let mut var = 0.0;
        dispatch!(centred_squares_loop(row, mean, &mut var));
        (mean, (1.0 / (var / cols as f64 + eps as f64).sqrt()) as f32)
    };
    let stats = per_row(rows, x.len(), stat);
    let mut xhat = super::zeros(x.len(), "a norm")?;
    for_rows(&mut xhat, cols, |r, out| {
        let (mean, rstd) = stats[r];
        for (o, &v) in out.iter_mut().zip(&x[r * cols..(r + 1) * cols]) {
            *o = ((v as f64 - mean) * rstd as f64) as f32;
        }
    });
    let rstd = stats.iter().map(|s| s.1).collect();
    let mut y = super::zeros(x.len(), "a norm")?;
    for_rows(&mut y, cols, |r, out| {
        let xh = &xhat[r * cols..(r + 1) * cols];
        for (j, o) in out.iter_mut().enumerate() {
            *o = xh[j] * w[j] + b[j];
        }
    });
    Ok((y, xhat, rstd))
}

/// `∂x = (1/σ)(ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂))` with `ĝ = g ⊙ w`.
pub fn layer_norm_backward(
    g: &[f32],
    xhat: &[f32],
    rstd: &[f32],
    w: &[f32],
    cols: usize,
) -> Result<Vec<f32>> {
    let mut out = super::zeros(g.len(), "a norm")?;
    for_rows(&mut out, cols, |r, o| {
        let (gr, xr) = (
            &g[r * cols..(r + 1) * cols],
            &xhat[r * cols..(r + 1) * cols],
        );
        let (mut mg, mut mgx) = (0.0f64, 0.0f64);
        for j in 0..cols {
            let gh = gr[j] as f64 * w[j] as f64;
            mg += gh;
            mgx += gh * xr[j] as f64;
        }
        mg /= cols as f64;
        mgx /= cols as f64;
        let s = rstd[r] as f64;
        for j in 0..cols {
            let gh = gr[j] as f64 * w[j] as f64;
            o[j] = (s * (gh - mg - xr[j] as f64 * mgx)) as f32;
        }
    });
    Ok(out)
}

pub fn rms_norm(x: &[f32], w: &[f32], cols: usize, eps: f32) -> Result<(Vec<f32>, Vec<f32>)> {
    let rows = x.len().checked_div(cols).unwrap_or(0);
    // Each row's mean square in 32 independent f64 sums, rows in parallel: one f64 chain per
    // row, row after row, took 0.6 ms of a 512 × 576 norm (`gradlens bench --kernels norm`).
    let stat = |r: usize| {
        let row = &x[r * cols..(r + 1) * cols];
        let ms = dot_f64(row, row) / cols as f64;
        (1.0 / (ms + eps as f64).sqrt()) as f32
    };
    let rstd = per_row(rows, x.len(), stat);
    let mut y = super::zeros(x.len(), "a norm")?;
    for_rows(&mut y, cols, |r, out| {
        let row = &x[r * cols..(r + 1) * cols];
        for j in 0..cols {
            out[j] = w[j] * (row[j] * rstd[r]);
        }
    });
    Ok((y, rstd))
}

/// `∂x = r(ĝ − x r² mean(ĝ ⊙ x))` with `ĝ = g ⊙ w`, `r = 1/rms`.
pub fn rms_norm_backward(
    g: &[f32],
    x: &[f32],
    rstd: &[f32],
    w: &[f32],
    cols: usize,
) -> Result<Vec<f32>> {
    let mut out = super::zeros(g.len(), "a norm")?;
    for_rows(&mut out, cols, |r, o| {
        let (gr, xr) = (&g[r * cols..(r + 1) * cols], &x[r * cols..(r + 1) * cols]);
        let s = rstd[r] as f64;
        let mut m = 0.0;
        dispatch!(weighted_dot_loop(gr, w, xr, &mut m));
        m /= cols as f64;
        for j in 0..cols {
            o[j] = (s * (gr[j] as f64 * w[j] as f64 - xr[j] as f64 * s * s * m)) as f32;
        }
    });
    Ok(out)
}

/// `stat(r)` for each of `rows` rows, in parallel where the matrix (`len` values) is large.
fn per_row<T: Send>(rows: usize, len: usize, stat: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
    if len >= PAR_MIN {
        (0..rows).into_par_iter().map(stat).collect()
    } else {
        (0..rows).map(stat).collect()
    }
}

// `Σ a_i` in f64, in 32 independent partial sums.
widths!(sum_loop(a: &[f32], out: &mut f64) {
    let mut sums = [0f64; LANES];
    let mut chunks = a.chunks_exact(LANES);
    for x in &mut chunks {
        for (s, &p) in sums.iter_mut().zip(x) {
            *s += p as f64;
        }
    }
    let sum: f64 = chunks.remainder().iter().map(|&p| p as f64).sum();
    *out = sums.iter().fold(sum, |acc, &s| acc + s);
});

// `Σ (a_i − mean)²` in f64, in 32 independent partial sums.
widths!(centred_squares_loop(a: &[f32], mean: f64, out: &mut f64) {
    let mut sums = [0f64; LANES];
    let mut chunks = a.chunks_exact(LANES);
    for x in &mut chunks {
        for (s, &p) in sums.iter_mut().zip(x) {
            *s += (p as f64 - mean) * (p as f64 - mean);
        }
    }
    let sum: f64 = chunks.remainder().iter().map(|&p| (p as f64 - mean).powi(2)).sum();
    *out = sums.iter().fold(sum, |acc, &s| acc + s);
});

// `Σ a_i w_i b_i` in f64, in 32 independent partial sums (as `dot_f64`).
widths!(weighted_dot_loop(a: &[f32], w: &[f32], b: &[f32], out: &mut f64) {
    let n = a.len().min(w.len()).min(b.len());
    let (a, w, b) = (&a[..n], &w[..n], &b[..n]);
    let mut sums = [0f64; LANES];
    let chunks = a.chunks_exact(LANES).zip(w.chunks_exact(LANES)).zip(b.chunks_exact(LANES));
    for ((x, y), z) in chunks {
        for (((s, &p), &q), &r) in sums.iter_mut().zip(x).zip(y).zip(z) {
            *s += p as f64 * q as f64 * r as f64;
        }
    }
    let tail = n - n % LANES;
    let sum: f64 = (tail..n).map(|i| a[i] as f64 * w[i] as f64 * b[i] as f64).sum();
    *out = sums.iter().fold(sum, |acc, &s| acc + s);
});
