//! LayerNorm and RMSNorm, statistics accumulated in f64.

use super::for_rows;
use crate::error::Result;

pub fn layer_norm(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    cols: usize,
    eps: f32,
) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    let rows = x.len() / cols;
    let rstd: Vec<f32> = (0..rows)
        .map(|r| {
            let row = &x[r * cols..(r + 1) * cols];
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / cols as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / cols as f64;
            (1.0 / (var + eps as f64).sqrt()) as f32
        })
        .collect();
    let mut xhat = super::zeros(x.len(), "a norm")?;
    for_rows(&mut xhat, cols, |r, out| {
        let row = &x[r * cols..(r + 1) * cols];
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / cols as f64;
        for (o, &v) in out.iter_mut().zip(row) {
            *o = ((v as f64 - mean) * rstd[r] as f64) as f32;
        }
    });
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
    let rows = x.len() / cols;
    let rstd: Vec<f32> = (0..rows)
        .map(|r| {
            let row = &x[r * cols..(r + 1) * cols];
            let ms = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / cols as f64;
            (1.0 / (ms + eps as f64).sqrt()) as f32
        })
        .collect();
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
        let m: f64 = (0..cols)
            .map(|j| gr[j] as f64 * w[j] as f64 * xr[j] as f64)
            .sum::<f64>()
            / cols as f64;
        for j in 0..cols {
            o[j] = (s * (gr[j] as f64 * w[j] as f64 - xr[j] as f64 * s * s * m)) as f32;
        }
    });
    Ok(out)
}
