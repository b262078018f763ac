//! `F` and `∇F` at many inputs that are not on one straight line (sequential IG's one-token
//! paths, discretized IG's segments, the perturbed copies of faithfulness curves): each point is
//! built on the host by `fill`, chunks of them run as one batch, and chunks run concurrently
//! where the backend allows.

use super::{chunks, evaluate, prepared::Watch, Prepared};
use crate::error::Result;
use crate::tensor::Tensor;

/// Builds point `index` (`[tokens, hidden]`) into `out`.
pub trait Fill: Fn(usize, &mut [f32]) + Sync {}
impl<T: Fn(usize, &mut [f32]) + Sync> Fill for T {}

fn batch(p: &Prepared, fill: &impl Fill, start: usize, end: usize) -> Result<Tensor> {
    let n = p.x.shape().numel();
    let mut data = vec![0.0f32; (end - start) * n];
    for (i, out) in data.chunks_mut(n).enumerate() {
        fill(start + i, out);
    }
    let mut dims = vec![end - start];
    dims.extend_from_slice(p.x.dims());
    Tensor::from_vec(data, dims, p.x.device())
}

/// Runs `∇F` at points `0..n` and folds each into a host accumulator of `len` values with
/// `take(index, F, gradient, acc)`. Chunks fold into their own accumulators, added in chunk
/// order, so the result does not depend on timing.
pub fn accumulate_gradients(
    p: &Prepared,
    n: usize,
    len: usize,
    fill: impl Fill,
    take: impl Fn(usize, f32, &[f32], &mut [f64]) + Sync,
    batch_size: Option<usize>,
    watch: Watch,
) -> Result<Vec<f64>> {
    let (chunk, concurrent) = chunks::for_gradients(p, batch_size, n);
    let row = p.x.shape().numel();
    let work = |start: usize, end: usize| -> Result<Vec<f64>> {
        let points = batch(p, &fill, start, end)?;
        let (f, grads) = p.gradients(&points)?;
        let grads = grads.to_vec()?;
        let mut acc = vec![0.0f64; len];
        for (i, g) in grads.chunks(row).enumerate() {
            take(start + i, f[i], g, &mut acc);
        }
        Ok(acc)
    };
    chunks::run(n, chunk, concurrent, work, chunks::add_vecs, watch)
}

/// `F` at points `0..n`, forward passes only.
pub fn scores(
    p: &Prepared,
    n: usize,
    fill: impl Fill,
    batch_size: Option<usize>,
) -> Result<Vec<f32>> {
    let concurrent = p.x.backend().concurrent_batches();
    // Forward passes keep no tape: a fraction of a gradient pass's memory per point.
    let chunk = chunks::size(
        p.x.backend(),
        batch_size,
        n,
        chunks::tape_bytes_per_row(p.model, p.ids.len()) / 4,
    );
    let work = |start: usize, end: usize| {
        evaluate::scores(p.model, &p.target, &batch(p, &fill, start, end)?)
    };
    chunks::run(
        n,
        chunk,
        concurrent,
        work,
        |mut a: Vec<f32>, b| {
            a.extend(b);
            Ok(a)
        },
        p.watch_silent(),
    )
}
