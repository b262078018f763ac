//! Local rules of the LRP, guided-backprop and DeepLIFT rule sets.

use super::{activation, for_rows};
use crate::backend::{Activation, SoftmaxMask};
use crate::error::Result;

/// `x + ε·sign(x)`, with sign 0 counted as +, so the result is never 0 for ε > 0.
fn stabilize(x: f32, eps: f32) -> f32 {
    if x >= 0.0 {
        x + eps
    } else {
        x - eps
    }
}

pub fn stabilized_ratio(num: &[f32], den: &[f32], g: &[f32], eps: f32) -> Result<Vec<f32>> {
    Ok(num
        .iter()
        .zip(den)
        .zip(g)
        .map(|((&n, &d), &g)| g * n / stabilize(d, eps))
        .collect())
}

pub fn layer_norm_const_backward(
    g: &[f32],
    rstd: &[f32],
    w: &[f32],
    cols: usize,
) -> Result<Vec<f32>> {
    let mut out = super::zeros(g.len(), "a backward rule")?;
    for_rows(&mut out, cols, |r, o| {
        let gr = &g[r * cols..(r + 1) * cols];
        let mean = gr
            .iter()
            .zip(w)
            .map(|(&g, &w)| g as f64 * w as f64)
            .sum::<f64>()
            / cols as f64;
        for j in 0..cols {
            o[j] = (rstd[r] as f64 * (gr[j] as f64 * w[j] as f64 - mean)) as f32;
        }
    });
    Ok(out)
}

pub fn rms_norm_const_backward(
    g: &[f32],
    rstd: &[f32],
    w: &[f32],
    cols: usize,
) -> Result<Vec<f32>> {
    let mut out = super::zeros(g.len(), "a backward rule")?;
    for_rows(&mut out, cols, |r, o| {
        for j in 0..cols {
            o[j] = rstd[r] * w[j] * g[r * cols + j];
        }
    });
    Ok(out)
}

pub fn cosine_const_norm_backward(x: &[f32], c: &[f32], g: &[f32], d: usize) -> Result<Vec<f32>> {
    let nc = c
        .iter()
        .map(|&v| v as f64 * v as f64)
        .sum::<f64>()
        .sqrt()
        .max(1e-12);
    let mut out = super::zeros(x.len(), "a backward rule")?;
    for_rows(&mut out, d, |r, o| {
        let nx = x[r * d..(r + 1) * d]
            .iter()
            .map(|&v| v as f64 * v as f64)
            .sum::<f64>()
            .sqrt()
            .max(1e-12);
        for j in 0..d {
            o[j] = (g[r] as f64 * c[j] as f64 / (nc * nx)) as f32;
        }
    });
    Ok(out)
}

pub fn rescale_halves(x: &[f32], y: &[f32], g: &[f32], f: Activation) -> Result<Vec<f32>> {
    let mut out = super::zeros(x.len(), "a backward rule")?;
    // The second half (the reference's) stays zero.
    activation::rescale_halves_slice(f, x, y, g, &mut out[..x.len() / 2]);
    Ok(out)
}

pub fn rank1_rescale_halves(
    x: &[f32],
    y: &[f32],
    g: &[f32],
    exact: &[f32],
    x_cols: usize,
    y_cols: usize,
    mask: SoftmaxMask,
) -> Result<Vec<f32>> {
    let (hx, hy) = (x.len() / 2, y.len() / 2);
    let rows = hx / x_cols;
    let mut out = super::zeros(x.len(), "a backward rule")?;
    for r in 0..rows {
        // Masked (invisible) entries do not influence y, so they take no part in Δx.
        let vis = mask.visible(r, x_cols);
        let (xr, xq) = (
            &x[r * x_cols + vis.start..r * x_cols + vis.end],
            &x[hx + r * x_cols + vis.start..hx + r * x_cols + vis.end],
        );
        let (yr, yq) = (
            &y[r * y_cols..(r + 1) * y_cols],
            &y[hy + r * y_cols..hy + (r + 1) * y_cols],
        );
        let gr = &g[r * y_cols..(r + 1) * y_cols];
        let n2: f64 = xr
            .iter()
            .zip(xq)
            .map(|(&a, &b)| ((a - b) as f64).powi(2))
            .sum();
        let o = &mut out[r * x_cols..(r + 1) * x_cols];
        if n2 < 1e-12 {
            o.copy_from_slice(&exact[r * x_cols..(r + 1) * x_cols]);
            continue;
        }
        let dyg: f64 = yr
            .iter()
            .zip(yq)
            .zip(gr)
            .map(|((&a, &b), &g)| (a - b) as f64 * g as f64)
            .sum();
        for (j, (&a, &b)) in vis.zip(xr.iter().zip(xq)) {
            o[j] = ((a - b) as f64 * dyg / n2) as f32;
        }
    }
    Ok(out)
}
