//! Running batched work in chunks: several chunks at once where the backend runs independent
//! batches concurrently (one per CPU thread, each with serial matrix products), and the
//! results folded in chunk order, so the answer depends neither on timing nor on the thread
//! count.

use super::checkpoint::Checkpoint;
use super::prepared::Watch;
use crate::backend::Backend;
use crate::error::Result;
use crate::tensor::Tensor;
use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Calls `work(start, end)` for the chunks of `0..n` (`chunk` items each) and folds their
/// results with `add` in chunk order.
pub fn run<A: Send>(
    n: usize,
    chunk: usize,
    concurrent: usize,
    work: impl Fn(usize, usize) -> Result<A> + Sync,
    add: impl Fn(A, A) -> Result<A>,
    watch: Watch,
) -> Result<A> {
    let chunk = chunk.clamp(1, n.max(1));
    let starts: Vec<usize> = (0..n).step_by(chunk).collect();
    let done = AtomicUsize::new(0);
    let one = |&start: &usize| -> Result<A> {
        watch.check()?;
        let out = work(start, (start + chunk).min(n))?;
        if let Some(p) = watch.progress {
            p(done.fetch_add(1, Ordering::Relaxed) + 1, starts.len());
        }
        Ok(out)
    };
    let parts: Vec<A> = if concurrent > 1 && starts.len() > 1 {
        starts.par_iter().map(one).collect::<Result<_>>()?
    } else {
        starts.iter().map(one).collect::<Result<_>>()?
    };
    let mut parts = parts.into_iter();
    let first = parts
        .next()
        .ok_or_else(|| crate::Error::InvalidArgument("nothing to compute".into()))?;
    parts.try_fold(first, add)
}

/// Items per chunk (`--batch-size auto`): `requested` if given, else as many as the device's
/// free memory holds with `concurrent` chunks alive at once, spread so every concurrent worker
/// gets a share, and at most what the backend finds worth batching.
pub fn size(
    backend: &dyn Backend,
    requested: Option<usize>,
    n: usize,
    per_item_bytes: usize,
) -> usize {
    /// Where the device cannot say how much memory is free (wgpu).
    const FALLBACK_BYTES: usize = 2 << 30;
    let concurrent = backend.concurrent_batches().max(1);
    requested
        .unwrap_or_else(|| {
            let budget = backend.batch_memory().unwrap_or(FALLBACK_BYTES) / concurrent;
            (budget / per_item_bytes.max(1))
                .min(n.div_ceil(concurrent))
                .min(backend.max_batch_items().unwrap_or(usize::MAX))
        })
        .clamp(1, n.max(1))
}

/// Chunk size and concurrency for `n` gradient rows (path points or samples) of the prompt
/// `p`, `requested` rows per chunk if given. Where one row's whole tape would not fit, the
/// rows' passes recompute their layers (`Checkpoint::Auto`), and chunks are sized by that.
pub fn for_gradients(p: &super::Prepared, requested: Option<usize>, n: usize) -> (usize, usize) {
    let len = p.ids.len();
    let per_row = match p.checkpoint.applies(p.model, 1, len) {
        true => checkpointed_bytes_per_row(p.model, len),
        false => tape_bytes_per_row(p.model, len),
    };
    sized(p, requested, n, per_row)
}

/// As `for_gradients`, for passes that keep every layer's attention probabilities (RPI's).
pub fn for_attention_gradients(
    p: &super::Prepared,
    requested: Option<usize>,
    n: usize,
) -> (usize, usize) {
    let per_row = materialised_bytes_per_row(p.model, p.ids.len());
    sized(p, requested, n, per_row)
}

fn sized(
    p: &super::Prepared,
    requested: Option<usize>,
    n: usize,
    per_row: usize,
) -> (usize, usize) {
    let backend = p.x.backend();
    (
        size(backend, requested, n, per_row),
        backend.concurrent_batches(),
    )
}

/// Bytes one row of a layer's tape holds: a rough count of its activations (projections,
/// norms, MLP); the fused attention keeps no probabilities.
fn layer_bytes_per_row(model: &crate::Model, len: usize) -> usize {
    let i = &model.info;
    (24 * len * i.hidden_size + 6 * len * i.intermediate_size) * 4
}

/// Bytes one path point or sample keeps on the tape: every layer's activations.
pub fn tape_bytes_per_row(model: &crate::Model, len: usize) -> usize {
    layer_bytes_per_row(model, len) * model.info.layers
}

/// As `tape_bytes_per_row`, for a pass that keeps every layer's attention probabilities.
pub fn materialised_bytes_per_row(model: &crate::Model, len: usize) -> usize {
    let i = &model.info;
    tape_bytes_per_row(model, len) + 4 * i.attention_heads * len * len * i.layers * 4
}

/// Bytes one row of a checkpointed pass holds: what enters each step, each layer's attention
/// output, and one layer's tape.
pub fn checkpointed_bytes_per_row(model: &crate::Model, len: usize) -> usize {
    let i = &model.info;
    let steps = i.layers + 2;
    let attention = i.layers * len * i.attention_heads * i.head_dim * 4;
    steps * len * i.hidden_size * 4 + attention + layer_bytes_per_row(model, len)
}

/// A lower bound of what one point's forward and backward pass needs: half the tape estimate
/// (which sizes batches, and errs on the safe side by about 2x on SmolLM2 at 500-1,500
/// tokens), or with checkpointing allowed, a checkpointed pass's.
pub fn min_bytes_one_point(model: &crate::Model, len: usize, checkpoint: Checkpoint) -> usize {
    let whole = tape_bytes_per_row(model, len) / 2;
    match checkpoint {
        Checkpoint::Never => whole,
        _ => whole.min(checkpointed_bytes_per_row(model, len)),
    }
}

/// Refuses, before any work, a prompt whose single forward and backward pass cannot fit in
/// the device's free memory: an error that says what it needs and what there is, instead of
/// an out-of-memory abort (or the kernel's OOM killer) minutes later.
pub fn check_fits(
    model: &crate::Model,
    backend: &dyn Backend,
    len: usize,
    checkpoint: Checkpoint,
) -> Result<()> {
    let Some(free) = backend.free_memory() else {
        return Ok(());
    };
    let need = min_bytes_one_point(model, len, checkpoint);
    if need <= free {
        return Ok(());
    }
    let gib = |b: usize| b as f64 / (1u64 << 30) as f64;
    let how = match checkpoint {
        Checkpoint::Never => " without checkpointing (--checkpoint never)",
        _ => ", recomputing each layer",
    };
    Err(crate::Error::InvalidInput(format!(
        "a text of {len} tokens needs at least {:.1} GiB for one forward and backward pass on \
         {}{how}, but {:.1} GiB are free: shorten the text",
        gib(need),
        backend.device(),
        gib(free)
    )))
}

/// Element-wise sum of two host accumulators.
pub fn add_vecs(mut a: Vec<f64>, b: Vec<f64>) -> Result<Vec<f64>> {
    a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
    Ok(a)
}

pub fn add_tensors(a: Tensor, b: Tensor) -> Result<Tensor> {
    crate::ops::add_tensors(&a, &b)
}

#[cfg(test)]
mod tests {
    use super::size;
    use crate::backend::backend_for;

    #[test]
    fn auto_batches_fit_the_free_memory_and_the_backends_limit() {
        let cpu = backend_for(crate::Device::Cpu).unwrap();
        let free = cpu.batch_memory().expect("/proc/meminfo on Linux");
        let workers = cpu.concurrent_batches();
        // Small items: every worker gets a share, at most 32 items each.
        assert_eq!(size(cpu, None, 1000, 1), 32);
        assert_eq!(size(cpu, None, 10, 1), 10usize.div_ceil(workers));
        // Items of 3/10 of a worker's budget: three per chunk (with room for the free memory
        // to move between the two readings).
        assert_eq!(size(cpu, None, 1000, free / workers / 10 * 3), 3);
        // An item larger than all the free memory still runs, alone.
        assert_eq!(size(cpu, None, 1000, 2 * free), 1);
        // A requested size is kept, within 1..=n.
        assert_eq!(size(cpu, Some(7), 1000, 2 * free), 7);
        assert_eq!(size(cpu, Some(70), 5, 1), 5);
    }
}
