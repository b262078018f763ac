//! Integrated gradients: `(x − x′) ⊙ Σ_k w_k ∇F(x′ + α_k (x − x′))`.
//!
//! The steps are split into chunks; all path points of a chunk are built on the device in one
//! op and run as one batch through a forward and a backward, and the quadrature-weighted sum
//! over steps is reduced on the device. Chunks are spread over groups that run concurrently
//! (one per CPU thread, each with serial matrix products; a GPU runs one group and
//! parallelises inside each op). Each group adds its chunks in order and the groups' sums are
//! added in order, so the result is deterministic for a given thread count.

use super::{evaluate, Attribution, Options, Prepared};
use crate::error::Result;
use crate::ops;
use crate::tensor::Tensor;
use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};

pub fn integrated_gradients(p: &Prepared, opts: &Options) -> Result<Attribution> {
    let steps = opts.steps;
    let (alphas, weights) = opts.quadrature.nodes(steps)?;
    let baseline = p.baseline(&opts.baseline)?;
    let groups = p.x.backend().concurrent_batches().clamp(1, steps);
    let chunk = opts
        .batch_size
        .unwrap_or_else(|| default_batch(p, steps).min(steps.div_ceil(groups)))
        .clamp(1, steps);
    let starts: Vec<usize> = (0..steps).step_by(chunk).collect();
    let groups = groups.min(starts.len());

    let done = AtomicUsize::new(0);
    let run_group = |g: usize| -> Result<Option<Tensor>> {
        let mut acc: Option<Tensor> = None;
        for &start in starts.iter().skip(g).step_by(groups) {
            let end = (start + chunk).min(steps);
            let a: Vec<f32> = alphas[start..end].iter().map(|&a| a as f32).collect();
            let w: Vec<f32> = weights[start..end].iter().map(|&w| w as f32).collect();
            let points = ops::interpolate(&p.x, &baseline, &a)?;
            let (_, grads) = evaluate::gradients(p.model, &p.target, &points)?;
            let part = ops::weighted_batch_sum(&grads, &w)?;
            acc = Some(match acc {
                None => part,
                Some(prev) => ops::add_tensors(&prev, &part)?,
            });
            if let Some(progress) = &opts.progress {
                progress(done.fetch_add(1, Ordering::Relaxed) + 1, starts.len());
            }
        }
        Ok(acc)
    };
    let partials: Vec<Option<Tensor>> = if groups > 1 {
        (0..groups)
            .into_par_iter()
            .map(run_group)
            .collect::<Result<_>>()?
    } else {
        vec![run_group(0)?]
    };
    let mut acc: Option<Tensor> = None;
    for part in partials.into_iter().flatten() {
        acc = Some(match acc {
            None => part,
            Some(prev) => ops::add_tensors(&prev, &part)?,
        });
    }
    let avg_grad = acc.expect("at least one step").to_vec()?;

    // F at both ends, in one batch.
    let ends = ops::interpolate(&p.x, &baseline, &[1.0, 0.0])?;
    let f = evaluate::scores(p.model, &p.target, &ends)?;
    let (x, b) = (p.x.to_vec()?, baseline.to_vec()?);
    let map: Vec<f32> = avg_grad
        .iter()
        .zip(x.iter().zip(&b))
        .map(|(g, (x, b))| g * (x - b))
        .collect();
    let scores = super::row_sums(&map, p.model.hidden_size());
    let total: f64 = map.iter().map(|&v| v as f64).sum();
    let mut out = p.result("integrated-gradients", scores, map, f[0]);
    out.baseline_score = Some(f[1]);
    out.convergence_delta = Some((total - (f[0] as f64 - f[1] as f64)) as f32);
    out.steps = Some(steps);
    out.quadrature = Some(opts.quadrature.name().to_string());
    Ok(out)
}

/// Path points per batch from a memory budget: a rough count of the activations each point
/// keeps on the tape (projections, attention maps, MLP), times the layers.
fn default_batch(p: &Prepared, steps: usize) -> usize {
    const BUDGET_BYTES: usize = 2 << 30;
    let i = &p.model.info;
    let len = p.ids.len();
    let per_layer = 24 * len * i.hidden_size
        + 6 * len * i.intermediate_size
        + 4 * i.attention_heads * len * len;
    let per_point = (per_layer * i.layers * 4).max(1);
    (BUDGET_BYTES / per_point).clamp(1, steps)
}
