//! Reductions: sequence pooling and cosine similarity to a constant.

use super::for_rows;
use crate::error::Result;

pub fn weighted_seq_sum(x: &[f32], w: &[f32], [b, l, d]: [usize; 3]) -> Result<Vec<f32>> {
    let mut out = super::zeros(b * d, "a reduction")?;
    for_rows(&mut out, d, |ib, o| {
        for (il, &wl) in w.iter().enumerate() {
            let src = &x[(ib * l + il) * d..(ib * l + il + 1) * d];
            for (a, &v) in o.iter_mut().zip(src) {
                *a += wl * v;
            }
        }
    });
    Ok(out)
}

pub fn broadcast_seq(g: &[f32], w: &[f32], [b, l, d]: [usize; 3]) -> Result<Vec<f32>> {
    let mut out = super::zeros(b * l * d, "a reduction")?;
    for_rows(&mut out, d, |r, o| {
        let (ib, il) = (r / l, r % l);
        for (a, &v) in o.iter_mut().zip(&g[ib * d..(ib + 1) * d]) {
            *a = w[il] * v;
        }
    });
    Ok(out)
}

fn dot_norms(x: &[f32], c: &[f32]) -> (f64, f64, f64) {
    let (mut xc, mut xx, mut cc) = (0.0f64, 0.0f64, 0.0f64);
    for (&a, &b) in x.iter().zip(c) {
        xc += a as f64 * b as f64;
        xx += a as f64 * a as f64;
        cc += b as f64 * b as f64;
    }
    (xc, xx.sqrt(), cc.sqrt())
}

pub fn cosine_rows(x: &[f32], c: &[f32], d: usize) -> Result<Vec<f32>> {
    Ok(x.chunks(d)
        .map(|row| {
            let (xc, nx, nc) = dot_norms(row, c);
            (xc / (nx * nc).max(1e-12)) as f32
        })
        .collect())
}

/// `∂cos/∂x = c/(|x||c|) − cos · x/|x|²`.
pub fn cosine_rows_backward(x: &[f32], c: &[f32], g: &[f32], d: usize) -> Result<Vec<f32>> {
    let mut out = super::zeros(x.len(), "a reduction")?;
    for_rows(&mut out, d, |r, o| {
        let row = &x[r * d..(r + 1) * d];
        let (xc, nx, nc) = dot_norms(row, c);
        let nx = nx.max(1e-12);
        let cos = xc / (nx * nc.max(1e-12));
        for j in 0..d {
            let v = c[j] as f64 / (nx * nc.max(1e-12)) - cos * row[j] as f64 / (nx * nx);
            o[j] = (g[r] as f64 * v) as f32;
        }
    });
    Ok(out)
}
