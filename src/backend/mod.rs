//! The backend abstraction: every numeric primitive the ops need, over opaque `Storage`.
//!
//! Ops (`src/ops`) call these primitives and never see host slices, so a GPU backend is a new
//! implementation of this trait plus a `Storage` variant; model and method code do not change.
//! `backend_for` hands each backend out behind `Checked`, which checks every operand's size,
//! so an implementation may take them as given (its own device limits it still checks).

mod checked;
mod checks;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(feature = "wgpu")]
pub mod wgpu;

use crate::error::Result;
use crate::tensor::{Device, Storage};
use checked::Checked;

/// `C[b] = op(A[b]) · op(B[b])` for `b in 0..batch`, all row-major and contiguous.
/// `A` is `[m, k]` (stored `[k, m]` when `trans_a`), `B` is `[k, n]` (stored `[n, k]` when
/// `trans_b`). An operand with `*_batched == false` is one matrix shared by every batch entry
/// (a weight).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulSpec {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub a_batched: bool,
    pub b_batched: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// BERT's exact GELU, `x Φ(x)`.
    GeluErf,
    /// GPT-2's tanh approximation (`gelu_new`).
    GeluTanh,
    /// `x σ(x)` (Llama's SwiGLU gate).
    Silu,
    Tanh,
    Relu,
}

/// Which entries a softmax over the last dimension ignores (treated as −∞).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoftmaxMask {
    None,
    /// Rows are `[.., q, k]` blocks of `len` queries (after `offset` cached keys): key `j` is
    /// visible to query `i` when `j <= i + offset`, and with a sliding `window` of `w` keys
    /// (Mistral, Qwen2, Gemma's local layers) also when `j > i + offset − w`.
    Causal {
        len: usize,
        offset: usize,
        window: Option<usize>,
    },
}

impl SoftmaxMask {
    /// A causal mask with no window.
    pub fn causal(len: usize, offset: usize) -> Self {
        SoftmaxMask::Causal {
            len,
            offset,
            window: None,
        }
    }

    /// The keys `lo..hi` that row `r` of a `[.., cols]` softmax sees.
    pub fn visible(self, r: usize, cols: usize) -> std::ops::Range<usize> {
        match self {
            SoftmaxMask::None => 0..cols,
            SoftmaxMask::Causal {
                len,
                offset,
                window,
            } => {
                let hi = (r % len.max(1) + offset + 1).min(cols);
                let lo = window.map_or(0, |w| (r % len.max(1) + offset + 1).saturating_sub(w));
                lo.min(hi)..hi
            }
        }
    }

    /// `[causal_len, offset, window]` as the kernels take them (0: no mask, no window).
    pub fn words(self) -> [u32; 3] {
        match self {
            SoftmaxMask::None => [0, 0, 0],
            SoftmaxMask::Causal {
                len,
                offset,
                window,
            } => [len.max(1) as u32, offset as u32, window.unwrap_or(0) as u32],
        }
    }
}

/// Sizes of a fused attention-probabilities call: `q: [batch, q_len, head_dim]` against
/// `k: [batch, k_len, head_dim]` gives `[batch, q_len, k_len]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionDims {
    pub batch: usize,
    pub q_len: usize,
    pub k_len: usize,
    pub head_dim: usize,
}

impl AttentionDims {
    /// The scores `Q Kᵀ` as a batched matmul.
    pub fn scores_spec(&self) -> MatmulSpec {
        MatmulSpec {
            batch: self.batch,
            m: self.q_len,
            n: self.k_len,
            k: self.head_dim,
            trans_a: false,
            trans_b: true,
            a_batched: true,
            b_batched: true,
        }
    }

    /// Refuses a head larger than the GPU attention kernels stage in shared (workgroup)
    /// memory: `kernels/attention.cu` and `shaders/attention.wgsl` hold 1,024 values.
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    pub(crate) fn check_staged_head(&self, what: &str) -> crate::error::Result<()> {
        const STAGED: usize = 1024;
        if self.head_dim > STAGED {
            return Err(crate::error::Error::Shape(format!(
                "{what}: head size {} exceeds the GPU kernel's {STAGED}",
                self.head_dim
            )));
        }
        Ok(())
    }

    /// The product of the probabilities `[batch, q_len, k_len]` with `v: [batch, k_len,
    /// head_dim]` (`A V`), or with `transposed` their transpose with `g: [batch, q_len,
    /// head_dim]` (`Aᵀ G`, the gradient at `V`).
    pub fn context_spec(&self, transposed: bool) -> MatmulSpec {
        MatmulSpec {
            batch: self.batch,
            m: if transposed { self.k_len } else { self.q_len },
            n: self.head_dim,
            k: if transposed { self.q_len } else { self.k_len },
            trans_a: transposed,
            trans_b: false,
            a_batched: true,
            b_batched: true,
        }
    }
}

/// The micro-kernels `gradlens bench` measures a GPU's limits with (`kernels/limits.cu`,
/// `shaders/limits.wgsl`); no attribution uses them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKernel {
    /// Sums its input, one partial sum per thread written to the output (a streaming read).
    Read,
    /// Copies its input to the output.
    Copy,
    /// `iterations` rounds of 8 independent FMA chains in each of the output's threads.
    Fma { iterations: u32 },
}

/// What a picked softmax entry reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PickKind {
    Prob,
    LogProb,
}

pub trait Backend: Send + Sync {
    fn device(&self) -> Device;
    /// How many independent batches a method should run at once: the CPU's worker threads,
    /// each batch then computed by one of them; 1 for a device that parallelises inside an op.
    fn concurrent_batches(&self) -> usize {
        1
    }
    /// Bytes free for a run's buffers now, where the device can say: what a run that needs
    /// more is refused against before it starts.
    fn free_memory(&self) -> Option<usize> {
        self.batch_memory()
    }
    /// Bytes the tapes of the batches running at once may fill: most of the memory free now,
    /// where the device can say; `None` leaves the choice to the caller.
    fn batch_memory(&self) -> Option<usize> {
        None
    }
    /// Most items worth putting in one batch; `None` where only memory limits it (a GPU keeps
    /// more cores busy with every row it is given).
    fn max_batch_items(&self) -> Option<usize> {
        None
    }
    /// Waits for every operation submitted so far (a GPU queues its kernels; the CPU has
    /// finished each call when it returns).
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
    fn upload(&self, data: Vec<f32>) -> Result<Storage>;
    fn download(&self, s: &Storage) -> Result<Vec<f32>>;
    fn zeros(&self, len: usize) -> Result<Storage>;

    fn matmul(&self, a: &Storage, b: &Storage, spec: &MatmulSpec) -> Result<Storage>;

    // Elementwise, same length.
    fn add(&self, a: &Storage, b: &Storage) -> Result<Storage>;
    fn mul(&self, a: &Storage, b: &Storage) -> Result<Storage>;
    fn scale(&self, a: &Storage, s: f32) -> Result<Storage>;
    /// `a + b` where `b` repeats along `a` (`a.len()` a multiple of `b.len()`): biases, positions.
    fn add_broadcast(&self, a: &Storage, b: &Storage) -> Result<Storage>;

    fn activation(&self, x: &Storage, f: Activation) -> Result<Storage>;
    /// `g ⊙ f′(x)`.
    fn activation_backward(&self, x: &Storage, g: &Storage, f: Activation) -> Result<Storage>;

    fn softmax(&self, x: &Storage, cols: usize, mask: SoftmaxMask) -> Result<Storage>;
    /// `factor · y ⊙ (g − Σ_j y_j g_j)` row by row (`factor` folds in a following scale, such
    /// as attention's `1/√d`, and a rule's share of the gradient).
    fn softmax_backward(
        &self,
        y: &Storage,
        g: &Storage,
        cols: usize,
        factor: f32,
    ) -> Result<Storage>;

    /// Fused attention probabilities `softmax(scale · Q Kᵀ)` under `mask`, one query row per
    /// pass: scores, scaling, mask and softmax without storing the raw scores. Its backward is
    /// `softmax_backward` with `factor = scale` followed by the two matmuls for `∂Q` and `∂K`.
    fn attention_probs(
        &self,
        q: &Storage,
        k: &Storage,
        dims: AttentionDims,
        scale: f32,
        mask: SoftmaxMask,
    ) -> Result<Storage>;

    /// Fused attention `softmax(scale · Q Kᵀ) V` of `q: [batch, q_len, head_dim]` and
    /// `k, v: [batch, k_len, head_dim]`, giving `[batch, q_len, head_dim]`: the probabilities
    /// are not kept (the backward recomputes them). This composition holds one call's
    /// probabilities while it runs; the backends' own kernels hold none (the CPU's a block of
    /// rows per thread, the GPUs' a tile per query row).
    fn attention(
        &self,
        q: &Storage,
        k: &Storage,
        v: &Storage,
        dims: AttentionDims,
        scale: f32,
        mask: SoftmaxMask,
    ) -> Result<Storage> {
        let p = self.attention_probs(q, k, dims, scale, mask)?;
        self.matmul(&p, v, &dims.context_spec(false))
    }

    /// The input gradients of `attention` given `g` at its output, each times its share
    /// (`[q, k, v]`; a share of 0 gives `None` and skips that product): the gradient with
    /// shares of 1, AttnLRP's uniform rules with ¼ (½ at `A V` and ½ again at `Q Kᵀ`) and ½.
    #[allow(clippy::too_many_arguments)]
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
        composed_attention_backward(self, q, k, v, g, dims, scale, mask, shares)
    }

    /// Returns `(y, x̂, 1/σ)`, with `x̂` and `1/σ` saved for the backward.
    fn layer_norm(
        &self,
        x: &Storage,
        w: &Storage,
        b: &Storage,
        cols: usize,
        eps: f32,
    ) -> Result<(Storage, Storage, Storage)>;
    fn layer_norm_backward(
        &self,
        g: &Storage,
        xhat: &Storage,
        rstd: &Storage,
        w: &Storage,
        cols: usize,
    ) -> Result<Storage>;
    /// Returns `(y, 1/rms)`.
    fn rms_norm(
        &self,
        x: &Storage,
        w: &Storage,
        cols: usize,
        eps: f32,
    ) -> Result<(Storage, Storage)>;
    fn rms_norm_backward(
        &self,
        g: &Storage,
        x: &Storage,
        rstd: &Storage,
        w: &Storage,
        cols: usize,
    ) -> Result<Storage>;

    /// Rotary embedding of `x: [rows, len, head_dim]` (rotate-half layout) with tables
    /// `cos, sin: [len, r/2]`: the first `r` dimensions of each head rotate (`r = head_dim`
    /// but for a partial rotary factor), the rest pass through; `inverse` rotates back (the
    /// exact backward).
    fn rope(
        &self,
        x: &Storage,
        cos: &Storage,
        sin: &Storage,
        len: usize,
        head_dim: usize,
        inverse: bool,
    ) -> Result<Storage>;

    /// `[a, b, c, d] -> [a, c, b, d]` (split and merge attention heads; its own inverse).
    fn permute_0213(&self, x: &Storage, dims: [usize; 4]) -> Result<Storage>;
    /// `[b, h, l, d] -> [b, h·rep, l, d]`, each head repeated `rep` times in place (GQA).
    fn repeat_heads(&self, x: &Storage, dims: [usize; 4], rep: usize) -> Result<Storage>;
    /// Backward of `repeat_heads`: sums each group of `rep` heads. `dims` are the input's.
    fn sum_head_groups(&self, g: &Storage, dims: [usize; 4], rep: usize) -> Result<Storage>;

    /// `[b, h, t1, d] ++ [b, h, t2, d] -> [b, h, t1 + t2, d]` along the sequence (a KV cache).
    fn concat_seq(
        &self,
        a: &Storage,
        b: &Storage,
        dims_a: [usize; 4],
        t2: usize,
    ) -> Result<Storage>;
    /// Rows `ids` of `table: [_, cols]`.
    fn gather_rows(&self, table: &Storage, ids: &[u32], cols: usize) -> Result<Storage>;
    /// `x: [b, l, d] -> [b, d]` at sequence position `pos`.
    fn select_position(&self, x: &Storage, dims: [usize; 3], pos: usize) -> Result<Storage>;
    /// Backward of `select_position`: `g: [b, d]` into zeros `[b, l, d]`.
    fn scatter_position(&self, g: &Storage, dims: [usize; 3], pos: usize) -> Result<Storage>;
    /// `Σ_l w_l x[b, l, :]`: masked mean pooling with `w = mask / Σ mask`.
    fn weighted_seq_sum(&self, x: &Storage, w: &[f32], dims: [usize; 3]) -> Result<Storage>;
    /// Backward of `weighted_seq_sum`: `out[b, l, :] = w_l g[b, :]`.
    fn broadcast_seq(&self, g: &Storage, w: &[f32], dims: [usize; 3]) -> Result<Storage>;

    /// `cos(x_b, c)` for each row of `x: [rows, d]`; `c` is a constant vector.
    fn cosine_rows(&self, x: &Storage, c: &Storage, d: usize) -> Result<Storage>;
    fn cosine_rows_backward(
        &self,
        x: &Storage,
        c: &Storage,
        g: &Storage,
        d: usize,
    ) -> Result<Storage>;
    /// Softmax probability or log-probability of column `col` of each row of `x: [rows, cols]`.
    fn pick_softmax(&self, x: &Storage, cols: usize, col: usize, kind: PickKind)
        -> Result<Storage>;
    fn pick_softmax_backward(
        &self,
        x: &Storage,
        g: &Storage,
        cols: usize,
        col: usize,
        kind: PickKind,
    ) -> Result<Storage>;

    // Local rules of the non-gradient rule sets (LRP, guided backprop, DeepLIFT).

    /// `g ⊙ num / (den + ε·sign den)` (sign 0 counts as +): the identity rule of an elementwise
    /// map (`num = f(x)`, `den = x`) and the ε/γ rules' rescaling at a linear layer's output.
    fn stabilized_ratio(
        &self,
        num: &Storage,
        den: &Storage,
        g: &Storage,
        eps: f32,
    ) -> Result<Storage>;
    /// `relu(g) ⊙ relu(f′(x))`: guided backprop through an activation.
    fn guided_backward(&self, x: &Storage, g: &Storage, f: Activation) -> Result<Storage>;
    /// Layer norm backward with the normaliser `1/σ` held constant: `(1/σ)(ĝ − mean ĝ)`, `ĝ = w ⊙ g`.
    fn layer_norm_const_backward(
        &self,
        g: &Storage,
        rstd: &Storage,
        w: &Storage,
        cols: usize,
    ) -> Result<Storage>;
    /// RMS norm backward with `1/rms` held constant: `(1/rms) w ⊙ g`.
    fn rms_norm_const_backward(
        &self,
        g: &Storage,
        rstd: &Storage,
        w: &Storage,
        cols: usize,
    ) -> Result<Storage>;
    /// Cosine backward with `1/|x|` held constant: `g ĉ / |x|`.
    fn cosine_const_norm_backward(
        &self,
        x: &Storage,
        c: &Storage,
        g: &Storage,
        d: usize,
    ) -> Result<Storage>;

    // DeepLIFT: the batch is [inputs; references], the reference of element i is i + len/2,
    // and only the input half carries multipliers (the reference half's are 0).

    /// Rescale rule of an activation: `g ⊙ Δy/Δx` (`f′` at the midpoint where |Δx| < 1e-6).
    fn rescale_halves(
        &self,
        x: &Storage,
        y: &Storage,
        g: &Storage,
        f: Activation,
    ) -> Result<Storage>;
    /// Row-wise rank-one rescale of a map of rows `y = f(x)`: `Δx (Δy · g) / |Δx|²` per row,
    /// over the entries `mask` leaves visible (others get 0); `exact` (the gradient) where
    /// |Δx|² < 1e-12.
    #[allow(clippy::too_many_arguments)]
    fn rank1_rescale_halves(
        &self,
        x: &Storage,
        y: &Storage,
        g: &Storage,
        exact: &Storage,
        x_cols: usize,
        y_cols: usize,
        mask: SoftmaxMask,
    ) -> Result<Storage>;
}

/// The attention backward from the materialised probabilities (recomputed): `Aᵀ G`, then
/// `G Vᵀ`, the softmax Jacobian with the scale, and `Q Kᵀ`'s two products, each times its
/// share (see `Backend::attention_backward`, whose default this is; `gradlens bench` times it
/// against a backend's fused kernel).
#[allow(clippy::too_many_arguments)]
pub fn composed_attention_backward<B: Backend + ?Sized>(
    be: &B,
    q: &Storage,
    k: &Storage,
    v: &Storage,
    g: &Storage,
    dims: AttentionDims,
    scale: f32,
    mask: SoftmaxMask,
    shares: [f32; 3],
) -> Result<[Option<Storage>; 3]> {
    let p = be.attention_probs(q, k, dims, scale, mask)?;
    let shared = |s: Storage, share: f32| -> Result<Storage> {
        if share == 1.0 {
            Ok(s)
        } else {
            be.scale(&s, share)
        }
    };
    let gv = match shares[2] {
        0.0 => None,
        share => Some(shared(be.matmul(&p, g, &dims.context_spec(true))?, share)?),
    };
    if shares[0] == 0.0 && shares[1] == 0.0 {
        return Ok([None, None, gv]);
    }
    // ∂P = G Vᵀ, then the softmax Jacobian and the scale, then Q Kᵀ's two products.
    let scores = dims.scores_spec();
    let gp = be.matmul(g, v, &scores)?;
    let gs = be.softmax_backward(&p, &gp, dims.k_len, scale)?;
    let gq = match shares[0] {
        0.0 => None,
        share => {
            let spec = MatmulSpec {
                n: dims.head_dim,
                k: dims.k_len,
                trans_b: false,
                ..scores
            };
            Some(shared(be.matmul(&gs, k, &spec)?, share)?)
        }
    };
    let gk = match shares[1] {
        0.0 => None,
        share => {
            let spec = MatmulSpec {
                m: dims.k_len,
                n: dims.head_dim,
                k: dims.q_len,
                trans_a: true,
                trans_b: false,
                ..scores
            };
            Some(shared(be.matmul(&gs, q, &spec)?, share)?)
        }
    };
    Ok([gq, gk, gv])
}

/// The backend that owns tensors on `device`, behind the shape checks of `Checked`, or why
/// it cannot be used.
pub fn backend_for(device: Device) -> Result<&'static dyn Backend> {
    match device {
        Device::Cpu => {
            static CPU: Checked = Checked(&cpu::CpuBackend);
            Ok(&CPU)
        }
        #[cfg(feature = "wgpu")]
        Device::Wgpu => {
            static WGPU: std::sync::OnceLock<Checked> = std::sync::OnceLock::new();
            let raw = wgpu::backend()?;
            Ok(WGPU.get_or_init(|| Checked(raw)))
        }
        #[cfg(not(feature = "wgpu"))]
        Device::Wgpu => Err(crate::error::Error::DeviceUnavailable(
            "wgpu: this build has no wgpu backend; rebuild with `--features wgpu`".into(),
        )),
        #[cfg(feature = "cuda")]
        Device::Cuda => {
            static CUDA: std::sync::OnceLock<Checked> = std::sync::OnceLock::new();
            let raw = cuda::backend()?;
            Ok(CUDA.get_or_init(|| Checked(raw)))
        }
        #[cfg(not(feature = "cuda"))]
        Device::Cuda => Err(crate::error::Error::DeviceUnavailable(
            "cuda: this build has no CUDA backend; rebuild with `--features cuda`".into(),
        )),
    }
}

/// What `--device auto` picks: CUDA when a device and NVRTC are there, else a hardware wgpu
/// adapter, else the CPU. (Software adapters such as lavapipe, and the CUDA emulator, are
/// slower than the CPU backend.)
pub fn auto_device() -> Device {
    #[cfg(feature = "cuda")]
    if cuda::backend().is_ok_and(|b| !b.is_emulated()) {
        return Device::Cuda;
    }
    #[cfg(feature = "wgpu")]
    if wgpu::backend().is_ok_and(|b| b.is_hardware()) {
        return Device::Wgpu;
    }
    Device::Cpu
}
