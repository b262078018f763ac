//! The reference backend: host memory, our own blocked GEMM (`sgemm`, AVX-512 or AVX2 chosen
//! at run time) and rayon.

mod activation;
mod attention;
mod fused_attention;
mod g_times_w;
mod layout;
mod matmul;
mod norm;
mod reduce;
mod rope;
mod rules;
mod sgemm;
mod simd;
mod softmax;
pub mod variants;
mod weight_rows;
mod weight_t;

pub use simd::{Decode, Kernel};

use super::{Activation, AttentionDims, Backend, MatmulSpec, PickKind, SoftmaxMask};
use crate::error::{Error, Result};
use crate::tensor::{Device, Storage};
use rayon::prelude::*;

/// A zeroed buffer of `n` floats, or an error naming `what` when the memory cannot be had:
/// the buffers that grow with the prompt (attention probabilities grow with its square) must
/// fail as an error, never abort the process. Every op's output comes from here.
pub fn zeros(n: usize, what: &str) -> Result<Vec<f32>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        Error::Device(format!(
            "cpu: out of memory: {what} needs {:.2} GiB",
            (n as f64 * 4.0) / (1u64 << 30) as f64
        ))
    })?;
    if n < ZERO_PAR_MIN || rayon::current_num_threads() == 1 {
        v.resize(n, 0.0);
        return Ok(v);
    }
    // A large buffer is mostly fresh pages, and touching them (a page fault and the kernel's
    // zeroing each) on the calling thread alone kept the other cores waiting: a quarter of a
    // core through a 2,048-token forward pass. Zeroed in parallel, the faults are shared.
    v.spare_capacity_mut()[..n]
        .par_chunks_mut(ZERO_CHUNK)
        .for_each(|c| c.fill(std::mem::MaybeUninit::new(0.0)));
    // SAFETY: the first `n` elements were just initialised, and the capacity is at least `n`.
    unsafe { v.set_len(n) };
    Ok(v)
}

/// Buffers from this many floats (1 MiB) on are zeroed in parallel.
const ZERO_PAR_MIN: usize = 1 << 18;

/// Floats per task when zeroing: a 2 MiB huge page (`crate::alloc`), faulted by one thread.
const ZERO_CHUNK: usize = crate::alloc::HUGE_PAGE / 4;

/// The raw CPU backend; `backend_for` hands it out behind `Checked`, which checks operand sizes.
pub(crate) struct CpuBackend;

/// Below this many output values, threading costs more than it saves.
const PAR_MIN: usize = 1 << 15;

/// The most tape memory (as `chunks::tape_bytes_per_row` estimates it) one thread's chunk of
/// path points may take: on SmolLM2 two rows at 348 tokens, 17 at 60, 32 (the item cap) up
/// to about 30.
const CHUNK_BYTES: usize = 3 << 30;

fn host(s: &Storage) -> Result<&[f32]> {
    match s {
        Storage::Cpu(v) => Ok(v),
        Storage::Stored(m) => Err(Error::Other(format!(
            "this operation has no kernel for a weight stored as {:?} {m:?}; only linear layers and embedding look-ups do (load with --weights f32)",
            m.format()
        ))),
        #[allow(unreachable_patterns)]
        _ => Err(Error::Other(format!(
            "cpu backend given a {} buffer",
            s.device()
        ))),
    }
}

/// A weight operand: f32 values, or a stored-format matrix.
fn weight(s: &Storage) -> Result<weight_rows::WeightRows<'_>> {
    Ok(match s {
        Storage::Stored(m) => weight_rows::WeightRows::Stored(m),
        other => weight_rows::WeightRows::F32(host(other)?),
    })
}

/// Fills `out` row by row (`cols` values each), in parallel when the output is large.
fn for_rows(out: &mut [f32], cols: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if cols == 0 {
        return;
    }
    if out.len() >= PAR_MIN {
        out.par_chunks_mut(cols)
            .enumerate()
            .for_each(|(r, row)| f(r, row));
    } else {
        out.chunks_mut(cols)
            .enumerate()
            .for_each(|(r, row)| f(r, row));
    }
}

/// Elements per parallel task of an elementwise map.
const CHUNK: usize = 1 << 13;

/// `kernel(out, a)` over matching chunks of `a` (in parallel when large), into a new buffer
/// that `what` names in an out-of-memory error.
fn chunks1(
    a: &[f32],
    what: &str,
    kernel: impl Fn(&mut [f32], &[f32]) + Sync + Send,
) -> Result<Vec<f32>> {
    let mut out = zeros(a.len(), what)?;
    let kernel = |(o, a): (&mut [f32], &[f32])| kernel(o, a);
    if a.len() >= PAR_MIN {
        out.par_chunks_mut(CHUNK)
            .zip(a.par_chunks(CHUNK))
            .for_each(kernel);
    } else {
        kernel((&mut out, a));
    }
    Ok(out)
}

/// `out[i] = f(a[i])`, in parallel chunks when large (inner loops over slices vectorise).
fn map1(a: &[f32], f: impl Fn(f32) -> f32 + Sync + Send) -> Result<Vec<f32>> {
    chunks1(a, "an elementwise op", |o, a| {
        o.iter_mut().zip(a).for_each(|(o, &a)| *o = f(a))
    })
}

/// `kernel(out, a, b)` over matching chunks of equal-length `a` and `b` (in parallel when
/// large), into a new buffer that `what` names in an out-of-memory error.
fn chunks2(
    a: &[f32],
    b: &[f32],
    what: &str,
    kernel: impl Fn(&mut [f32], &[f32], &[f32]) + Sync + Send,
) -> Result<Vec<f32>> {
    let mut out = zeros(a.len(), what)?;
    let kernel = |((o, a), b): ((&mut [f32], &[f32]), &[f32])| kernel(o, a, b);
    if a.len() >= PAR_MIN {
        out.par_chunks_mut(CHUNK)
            .zip(a.par_chunks(CHUNK))
            .zip(b.par_chunks(CHUNK))
            .for_each(kernel);
    } else {
        kernel(((&mut out, a), b));
    }
    Ok(out)
}

/// `out[i] = f(a[i], b[i])` for equal-length `a` and `b`.
fn map2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync + Send) -> Result<Vec<f32>> {
    chunks2(a, b, "an elementwise op", |o, a, b| {
        o.iter_mut()
            .zip(a)
            .zip(b)
            .for_each(|((o, &a), &b)| *o = f(a, b))
    })
}

/// `g ⊙ f′(x)`, or guided backprop's `max(g, 0) ⊙ max(f′(x), 0)`: one SIMD-dispatched loop
/// per chunk (a per-element closure here would be compiled without FMA, see `activation::exp`).
fn activation_backward(x: &[f32], g: &[f32], f: Activation, guided: bool) -> Result<Vec<f32>> {
    chunks2(x, g, "an activation", |o, x, g| {
        activation::backward_slice(f, guided, x, g, o)
    })
}

impl Backend for CpuBackend {
    fn device(&self) -> Device {
        Device::Cpu
    }

    fn concurrent_batches(&self) -> usize {
        rayon::current_num_threads()
    }

    /// Half of what the kernel reports available (the rest is for the model, the other
    /// methods' buffers and the page cache), and at most `CHUNK_BYTES` (by the tape estimate)
    /// per thread: a long prompt's chunk of many rows gains no speed, while a chunk whose
    /// buffers are reused by the next one saves their page faults (SmolLM2, 348 tokens,
    /// IG-8: 4 rows per chunk took 14.2 s and 5.0 GB, 2 rows 11.9 s and 3.5 GB).
    fn batch_memory(&self) -> Option<usize> {
        Some((self.free_memory()? / 2).min(CHUNK_BYTES * self.concurrent_batches()))
    }

    /// What the kernel reports available, or less where a cgroup (a container's limit)
    /// leaves less room, or `GRADLENS_MEMORY_BUDGET` bytes where that is set (a share of a
    /// machine that others use too).
    fn free_memory(&self) -> Option<usize> {
        if let Some(budget) = std::env::var("GRADLENS_MEMORY_BUDGET")
            .ok()
            .and_then(|b| b.trim().parse().ok())
        {
            return Some(budget);
        }
        let info = std::fs::read_to_string("/proc/meminfo").ok()?;
        let kb: usize = info
            .lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        let cgroup = |f: &str| -> Option<usize> {
            std::fs::read_to_string(format!("/sys/fs/cgroup/{f}"))
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        let room = match (cgroup("memory.max"), cgroup("memory.current")) {
            (Some(max), Some(used)) => max.saturating_sub(used),
            _ => usize::MAX,
        };
        Some((kb * 1024).min(room))
    }

    /// Larger batches gain no speed on a CPU, and their fresh gigabyte-sized buffers cost page
    /// faults (sequential IG on SmolLM2 spent as long in the kernel as in the model with
    /// 125-row chunks: 6.0 s against 4.7 s with 25).
    fn max_batch_items(&self) -> Option<usize> {
        Some(32)
    }

    fn upload(&self, data: Vec<f32>) -> Result<Storage> {
        Ok(Storage::Cpu(data))
    }

    fn download(&self, s: &Storage) -> Result<Vec<f32>> {
        match s {
            Storage::Stored(m) => Ok(m.decode_all()),
            other => Ok(host(other)?.to_vec()),
        }
    }

    fn zeros(&self, len: usize) -> Result<Storage> {
        Ok(Storage::Cpu(zeros(len, "a tensor")?))
    }

    fn matmul(&self, a: &Storage, b: &Storage, spec: &MatmulSpec) -> Result<Storage> {
        matmul::matmul(host(a)?, weight(b)?, spec).map(Storage::Cpu)
    }

    fn add(&self, a: &Storage, b: &Storage) -> Result<Storage> {
        let (a, b) = (host(a)?, host(b)?);
        map2(a, b, |a, b| a + b).map(Storage::Cpu)
    }

    fn mul(&self, a: &Storage, b: &Storage) -> Result<Storage> {
        let (a, b) = (host(a)?, host(b)?);
        map2(a, b, |a, b| a * b).map(Storage::Cpu)
    }

    fn scale(&self, a: &Storage, s: f32) -> Result<Storage> {
        let a = host(a)?;
        map1(a, |a| a * s).map(Storage::Cpu)
    }

    fn add_broadcast(&self, a: &Storage, b: &Storage) -> Result<Storage> {
        let (a, b) = (host(a)?, host(b)?);
        let (mut out, n) = (zeros(a.len(), "a broadcast add")?, b.len());
        for_rows(&mut out, n, |r, row| {
            let src = &a[r * n..(r + 1) * n];
            row.iter_mut()
                .zip(src.iter().zip(b))
                .for_each(|(o, (&a, &b))| *o = a + b)
        });
        Ok(Storage::Cpu(out))
    }

    fn activation(&self, x: &Storage, f: Activation) -> Result<Storage> {
        chunks1(host(x)?, "an activation", |o, x| {
            activation::forward_slice(f, x, o)
        })
        .map(Storage::Cpu)
    }

    fn activation_backward(&self, x: &Storage, g: &Storage, f: Activation) -> Result<Storage> {
        activation_backward(host(x)?, host(g)?, f, false).map(Storage::Cpu)
    }

    fn softmax(&self, x: &Storage, cols: usize, mask: SoftmaxMask) -> Result<Storage> {
        softmax::forward(host(x)?, cols, mask).map(Storage::Cpu)
    }

    fn softmax_backward(
        &self,
        y: &Storage,
        g: &Storage,
        cols: usize,
        factor: f32,
    ) -> Result<Storage> {
        softmax::backward(host(y)?, host(g)?, cols, factor).map(Storage::Cpu)
    }

    fn attention_probs(
        &self,
        q: &Storage,
        k: &Storage,
        dims: AttentionDims,
        scale: f32,
        mask: SoftmaxMask,
    ) -> Result<Storage> {
        attention::probs(host(q)?, host(k)?, dims, scale, mask).map(Storage::Cpu)
    }

    fn attention(
        &self,
        q: &Storage,
        k: &Storage,
        v: &Storage,
        dims: AttentionDims,
        scale: f32,
        mask: SoftmaxMask,
    ) -> Result<Storage> {
        fused_attention::forward(host(q)?, host(k)?, host(v)?, dims, scale, mask).map(Storage::Cpu)
    }

    fn attention_backward(
        &self,
        q: &Storage,
        k: &Storage,
        v: &Storage,
        g: &Storage,
        dims: AttentionDims,
        scale: f32,
        mask: SoftmaxMask,
        shares: [f32; 3],
    ) -> Result<[Option<Storage>; 3]> {
        let [a, b, c] = fused_attention::backward(
            host(q)?,
            host(k)?,
            host(v)?,
            host(g)?,
            dims,
            scale,
            mask,
            shares,
        )?;
        Ok([
            a.map(Storage::Cpu),
            b.map(Storage::Cpu),
            c.map(Storage::Cpu),
        ])
    }

    fn layer_norm(
        &self,
        x: &Storage,
        w: &Storage,
        b: &Storage,
        cols: usize,
        eps: f32,
    ) -> Result<(Storage, Storage, Storage)> {
        let (y, xhat, rstd) = norm::layer_norm(host(x)?, host(w)?, host(b)?, cols, eps)?;
        Ok((Storage::Cpu(y), Storage::Cpu(xhat), Storage::Cpu(rstd)))
    }

    fn layer_norm_backward(
        &self,
        g: &Storage,
        xhat: &Storage,
        rstd: &Storage,
        w: &Storage,
        cols: usize,
    ) -> Result<Storage> {
        norm::layer_norm_backward(host(g)?, host(xhat)?, host(rstd)?, host(w)?, cols)
            .map(Storage::Cpu)
    }

    fn rms_norm(
        &self,
        x: &Storage,
        w: &Storage,
        cols: usize,
        eps: f32,
    ) -> Result<(Storage, Storage)> {
        let (y, rstd) = norm::rms_norm(host(x)?, host(w)?, cols, eps)?;
        Ok((Storage::Cpu(y), Storage::Cpu(rstd)))
    }

    fn rms_norm_backward(
        &self,
        g: &Storage,
        x: &Storage,
        rstd: &Storage,
        w: &Storage,
        cols: usize,
    ) -> Result<Storage> {
        norm::rms_norm_backward(host(g)?, host(x)?, host(rstd)?, host(w)?, cols).map(Storage::Cpu)
    }

    fn rope(
        &self,
        x: &Storage,
        cos: &Storage,
        sin: &Storage,
        len: usize,
        head_dim: usize,
        inverse: bool,
    ) -> Result<Storage> {
        rope::apply(host(x)?, host(cos)?, host(sin)?, len, head_dim, inverse).map(Storage::Cpu)
    }

    fn permute_0213(&self, x: &Storage, dims: [usize; 4]) -> Result<Storage> {
        layout::permute_0213(host(x)?, dims).map(Storage::Cpu)
    }

    fn repeat_heads(&self, x: &Storage, dims: [usize; 4], rep: usize) -> Result<Storage> {
        layout::repeat_heads(host(x)?, dims, rep).map(Storage::Cpu)
    }

    fn sum_head_groups(&self, g: &Storage, dims: [usize; 4], rep: usize) -> Result<Storage> {
        layout::sum_head_groups(host(g)?, dims, rep).map(Storage::Cpu)
    }

    fn concat_seq(
        &self,
        a: &Storage,
        b: &Storage,
        dims_a: [usize; 4],
        t2: usize,
    ) -> Result<Storage> {
        layout::concat_seq(host(a)?, host(b)?, dims_a, t2).map(Storage::Cpu)
    }

    fn gather_rows(&self, table: &Storage, ids: &[u32], cols: usize) -> Result<Storage> {
        match table {
            Storage::Stored(m) => Ok(Storage::Cpu(m.gather(ids))),
            other => layout::gather_rows(host(other)?, ids, cols).map(Storage::Cpu),
        }
    }

    fn select_position(&self, x: &Storage, dims: [usize; 3], pos: usize) -> Result<Storage> {
        layout::select_position(host(x)?, dims, pos).map(Storage::Cpu)
    }

    fn scatter_position(&self, g: &Storage, dims: [usize; 3], pos: usize) -> Result<Storage> {
        layout::scatter_position(host(g)?, dims, pos).map(Storage::Cpu)
    }

    fn weighted_seq_sum(&self, x: &Storage, w: &[f32], dims: [usize; 3]) -> Result<Storage> {
        reduce::weighted_seq_sum(host(x)?, w, dims).map(Storage::Cpu)
    }

    fn broadcast_seq(&self, g: &Storage, w: &[f32], dims: [usize; 3]) -> Result<Storage> {
        reduce::broadcast_seq(host(g)?, w, dims).map(Storage::Cpu)
    }

    fn cosine_rows(&self, x: &Storage, c: &Storage, d: usize) -> Result<Storage> {
        reduce::cosine_rows(host(x)?, host(c)?, d).map(Storage::Cpu)
    }

    fn cosine_rows_backward(
        &self,
        x: &Storage,
        c: &Storage,
        g: &Storage,
        d: usize,
    ) -> Result<Storage> {
        reduce::cosine_rows_backward(host(x)?, host(c)?, host(g)?, d).map(Storage::Cpu)
    }

    fn pick_softmax(
        &self,
        x: &Storage,
        cols: usize,
        col: usize,
        kind: PickKind,
    ) -> Result<Storage> {
        softmax::pick(host(x)?, cols, col, kind).map(Storage::Cpu)
    }

    fn pick_softmax_backward(
        &self,
        x: &Storage,
        g: &Storage,
        cols: usize,
        col: usize,
        kind: PickKind,
    ) -> Result<Storage> {
        softmax::pick_backward(host(x)?, host(g)?, cols, col, kind).map(Storage::Cpu)
    }

    fn stabilized_ratio(
        &self,
        num: &Storage,
        den: &Storage,
        g: &Storage,
        eps: f32,
    ) -> Result<Storage> {
        rules::stabilized_ratio(host(num)?, host(den)?, host(g)?, eps).map(Storage::Cpu)
    }

    fn guided_backward(&self, x: &Storage, g: &Storage, f: Activation) -> Result<Storage> {
        activation_backward(host(x)?, host(g)?, f, true).map(Storage::Cpu)
    }

    fn layer_norm_const_backward(
        &self,
        g: &Storage,
        rstd: &Storage,
        w: &Storage,
        cols: usize,
    ) -> Result<Storage> {
        rules::layer_norm_const_backward(host(g)?, host(rstd)?, host(w)?, cols).map(Storage::Cpu)
    }

    fn rms_norm_const_backward(
        &self,
        g: &Storage,
        rstd: &Storage,
        w: &Storage,
        cols: usize,
    ) -> Result<Storage> {
        rules::rms_norm_const_backward(host(g)?, host(rstd)?, host(w)?, cols).map(Storage::Cpu)
    }

    fn cosine_const_norm_backward(
        &self,
        x: &Storage,
        c: &Storage,
        g: &Storage,
        d: usize,
    ) -> Result<Storage> {
        rules::cosine_const_norm_backward(host(x)?, host(c)?, host(g)?, d).map(Storage::Cpu)
    }

    fn rescale_halves(
        &self,
        x: &Storage,
        y: &Storage,
        g: &Storage,
        f: Activation,
    ) -> Result<Storage> {
        rules::rescale_halves(host(x)?, host(y)?, host(g)?, f).map(Storage::Cpu)
    }

    fn rank1_rescale_halves(
        &self,
        x: &Storage,
        y: &Storage,
        g: &Storage,
        exact: &Storage,
        x_cols: usize,
        y_cols: usize,
        mask: SoftmaxMask,
    ) -> Result<Storage> {
        rules::rank1_rescale_halves(
            host(x)?,
            host(y)?,
            host(g)?,
            host(exact)?,
            x_cols,
            y_cols,
            mask,
        )
        .map(Storage::Cpu)
    }
}

#[cfg(test)]
mod zeros_tests {
    #[test]
    fn an_impossible_buffer_is_an_error_not_an_abort() {
        let err = super::zeros(usize::MAX / 8, "the attention probabilities").unwrap_err();
        assert!(err
            .to_string()
            .contains("out of memory: the attention probabilities"));
        assert_eq!(super::zeros(5, "x").unwrap(), vec![0.0; 5]);
    }
}
