//! Reductions and path helpers: pooling, cosine similarity, path points, weighted step sums.

use super::{for_rows, same_len};
use crate::error::{Error, Result};

pub fn weighted_seq_sum(x: &[f32], w: &[f32], [b, l, d]: [usize; 3]) -> Result<Vec<f32>> {
    if x.len() != b * l * d || w.len() != l {
        return Err(Error::Shape("weighted_seq_sum: shapes do not match".into()));
    }
    let mut out = vec![0.0f32; b * d];
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
    if g.len() != b * d || w.len() != l {
        return Err(Error::Shape("broadcast_seq: shapes do not match".into()));
    }
    let mut out = vec![0.0f32; b * l * d];
    for_rows(&mut out, d, |r, o| {
        let (ib, il) = (r / l, r % l);
        for (a, &v) in o.iter_mut().zip(&g[ib * d..(ib + 1) * d]) {
            *a = w[il] * v;
        }
    });
    Ok(out)
}

fn rows_of(x: &[f32], c: &[f32], d: usize, what: &str) -> Result<usize> {
    crate::backend::checks::rows_against(x.len(), c.len(), d, what)
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
    rows_of(x, c, d, "cosine_rows")?;
    Ok(x.chunks(d)
        .map(|row| {
            let (xc, nx, nc) = dot_norms(row, c);
            (xc / (nx * nc).max(1e-12)) as f32
        })
        .collect())
}

/// `∂cos/∂x = c/(|x||c|) − cos · x/|x|²`.
pub fn cosine_rows_backward(x: &[f32], c: &[f32], g: &[f32], d: usize) -> Result<Vec<f32>> {
    let rows = rows_of(x, c, d, "cosine_rows_backward")?;
    if g.len() != rows {
        return Err(Error::Shape(
            "cosine_rows_backward: one gradient per row".into(),
        ));
    }
    let mut out = vec![0.0f32; x.len()];
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

pub fn interpolate(x: &[f32], baseline: &[f32], alphas: &[f32]) -> Result<Vec<f32>> {
    same_len(x, baseline, "interpolate")?;
    let n = x.len();
    let mut out = vec![0.0f32; n * alphas.len()];
    for_rows(&mut out, n.max(1), |k, o| {
        let a = alphas[k];
        for j in 0..n {
            o[j] = baseline[j] + a * (x[j] - baseline[j]);
        }
    });
    Ok(out)
}
