//! Integrated gradients: `(x − x′) ⊙ Σ_k w_k ∇F(x′ + α_k (x − x′))`.
//!
//! All path points of a chunk are built on the device in one op and run as one batch through a
//! forward and a backward; the quadrature-weighted sum over steps is reduced on the device, and
//! chunks run concurrently where the backend allows (`chunks::run`).

use super::{chunks, evaluate, Options, Prepared};
use crate::error::Result;
use crate::ops;
use crate::tensor::Tensor;

pub struct Out {
    pub map: Vec<f32>,
    pub f_x: f32,
    pub f_baseline: f32,
}

/// IG of the target at `x` (the prompt's embeddings, or a noisy copy) from `baseline`.
pub fn integrated_gradients(
    p: &Prepared,
    x: &Tensor,
    baseline: &Tensor,
    opts: &Options,
) -> Result<Out> {
    let steps = opts.steps;
    let (alphas, weights) = opts.quadrature.nodes(steps)?;
    let (chunk, concurrent) = chunks::for_gradients(p, opts.batch_size, steps);
    let work = |start: usize, end: usize| -> Result<Tensor> {
        let a: Vec<f32> = alphas[start..end].iter().map(|&a| a as f32).collect();
        let w: Vec<f32> = weights[start..end].iter().map(|&w| w as f32).collect();
        let points = ops::interpolate(x, baseline, &a)?;
        let (_, grads) = evaluate::gradients(p.model, &p.target, &points)?;
        ops::weighted_batch_sum(&grads, &w)
    };
    let avg_grad = chunks::run(
        steps,
        chunk,
        concurrent,
        work,
        chunks::add_tensors,
        opts.progress.as_ref(),
    )?
    .to_vec()?;

    // F at both ends, in one batch.
    let ends = ops::interpolate(x, baseline, &[1.0, 0.0])?;
    let f = evaluate::scores(p.model, &p.target, &ends)?;
    let (xv, b) = (x.to_vec()?, baseline.to_vec()?);
    let map = avg_grad
        .iter()
        .zip(xv.iter().zip(&b))
        .map(|(g, (x, b))| g * (x - b))
        .collect();
    Ok(Out {
        map,
        f_x: f[0],
        f_baseline: f[1],
    })
}
