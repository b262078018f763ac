//! Sequential integrated gradients (Enguehard 2023): for each token `i`, IG along a path on
//! which only token `i` moves from the baseline, the others keeping their real embeddings;
//! row `i` of that IG is token `i`'s attribution. Per token, completeness holds:
//! `Σ_d attr_i = F(x) − F(x with token i at the baseline)`. All `tokens × steps` points run
//! batched.

use super::{points, Options, Prepared};
use crate::error::Result;
use crate::tensor::Tensor;

pub struct Out {
    pub map: Vec<f32>,
    pub f_x: f32,
    /// `F(x with token i at the baseline)`, per token.
    pub f_without: Vec<f32>,
    /// `Σ_d attr_i − (F(x) − F(x_{-i}))`, per token.
    pub deltas: Vec<f32>,
}

pub fn sequential_ig(p: &Prepared, baseline: &Tensor, opts: &Options) -> Result<Out> {
    let (len, d) = (p.ids.len(), p.model.hidden_size());
    let (x, b) = (p.x.to_vec()?, baseline.to_vec()?);
    let (alphas, weights) = opts.quadrature.nodes(opts.steps)?;
    let steps = alphas.len();
    // Point (i, k): x with row i at x′_i + α_k (x_i − x′_i).
    let fill = |index: usize, out: &mut [f32]| {
        let (i, k) = (index / steps, index % steps);
        out.copy_from_slice(&x);
        let a = alphas[k] as f32;
        for j in i * d..(i + 1) * d {
            out[j] = b[j] + a * (x[j] - b[j]);
        }
    };
    let take = |index: usize, _f: f32, g: &[f32], acc: &mut [f64]| {
        let (i, k) = (index / steps, index % steps);
        for j in i * d..(i + 1) * d {
            acc[j] += weights[k] * g[j] as f64 * (x[j] - b[j]) as f64;
        }
    };
    let map = points::accumulate_gradients(
        p,
        len * steps,
        len * d,
        fill,
        take,
        opts.batch_size,
        opts.progress.as_ref(),
    )?;
    // F(x) and F with each token at the baseline, in one forward batch.
    let ends = points::scores(
        p,
        len + 1,
        |index, out: &mut [f32]| {
            out.copy_from_slice(&x);
            if index < len {
                out[index * d..(index + 1) * d].copy_from_slice(&b[index * d..(index + 1) * d]);
            }
        },
        opts.batch_size,
    )?;
    let f_x = ends[len];
    let f_without = ends[..len].to_vec();
    let deltas = (0..len)
        .map(|i| {
            let total: f64 = map[i * d..(i + 1) * d].iter().sum();
            (total - (f_x - f_without[i]) as f64) as f32
        })
        .collect();
    Ok(Out {
        map: map.into_iter().map(|v| v as f32).collect(),
        f_x,
        f_without,
        deltas,
    })
}
