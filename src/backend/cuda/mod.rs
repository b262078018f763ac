//! The NVIDIA backend: every primitive as a hand-written CUDA kernel (`kernels/*.cu`), compiled
//! by NVRTC at first use for the device's own architecture and launched through cudarc.
//!
//! cudarc loads `libcuda` and `libnvrtc` at run time, so the binary builds without a CUDA
//! toolkit and runs without one; where either library is missing, `--device cuda` says so.
//! Kernels are queued on one stream and never waited for; only `download` blocks. Operands'
//! sizes are checked on the host before this backend sees them (`super::checked`).

mod context;
mod emulator;
mod kernels;
mod stored;

pub use stored::CudaStoredMatrix;

use super::{Activation, AttentionDims, Backend, LimitKernel, MatmulSpec, PickKind, SoftmaxMask};
use crate::error::{Error, Result};
use crate::tensor::{Device, Storage};
use context::{Arg, Context, Grid, MatmulArgs, Slice};
use std::sync::OnceLock;

/// A device buffer and its length (allocations are at least one element).
pub struct CudaBuffer {
    slice: Slice<f32>,
    len: usize,
}

impl CudaBuffer {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Debug for CudaBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaBuffer({} floats)", self.len)
    }
}

pub struct CudaBackend {
    ctx: Context,
}

static BACKEND: OnceLock<std::result::Result<CudaBackend, String>> = OnceLock::new();

/// The process's CUDA backend on device 0, opened on first use.
pub fn backend() -> Result<&'static CudaBackend> {
    BACKEND
        .get_or_init(|| Context::new().map(|ctx| CudaBackend { ctx }))
        .as_ref()
        .map_err(|e| Error::DeviceUnavailable(e.clone()))
}

/// Whether a CUDA device can be opened through the driver (the emulator aside).
pub fn driver_present() -> bool {
    Context::open_driver().is_ok()
}

/// Compiles every embedded kernel file for `arch` (e.g. "sm_90") exactly as the backend does
/// on first use, and returns each file's CUBIN size. Needs NVRTC only, no GPU or driver, so CI
/// checks the backend's own compile path on machines without a GPU.
pub fn compile_kernels(arch: &str) -> Result<Vec<(&'static str, usize)>> {
    context::nvrtc_present().map_err(Error::DeviceUnavailable)?;
    kernels::FILES
        .iter()
        .map(|&(file, _)| {
            context::compile_file(file, arch)
                .map(|cubin| (file, cubin.len()))
                .map_err(Error::Device)
        })
        .collect()
}

fn buf(s: &Storage) -> Result<&CudaBuffer> {
    match s {
        Storage::Cuda(b) => Ok(b),
        Storage::CudaStored(m) => Err(Error::Other(format!(
            "cuda: this operation has no kernel for a weight stored as {:?} {m:?}; only linear layers and embedding look-ups do (load with --weights f32)",
            m.layout.format
        ))),
        other => Err(Error::Other(format!(
            "cuda backend given a {} buffer",
            other.device()
        ))),
    }
}

fn u(n: usize) -> Arg<'static> {
    Arg::U32(n as u32)
}

fn b(x: &CudaBuffer) -> Arg<'_> {
    Arg::Buf(&x.slice)
}

fn activation_code(f: Activation) -> Arg<'static> {
    Arg::U32(match f {
        Activation::GeluErf => 0,
        Activation::GeluTanh => 1,
        Activation::Silu => 2,
        Activation::Tanh => 3,
        Activation::Relu => 4,
    })
}

/// `(block length, cached keys, window)` of a mask (`SoftmaxMask::words`; 0: none).
fn mask_args(mask: SoftmaxMask) -> [Arg<'static>; 3] {
    mask.words().map(Arg::U32)
}

/// The arguments of `attention.cu`'s kernels: their buffers, then `rows` blocks (query rows,
/// or key rows for the key pass), the shapes, the mask, the scale and the backward's shares.
fn attention_args<'a>(
    buffers: &[Arg<'a>],
    rows: usize,
    dims: AttentionDims,
    scale: f32,
    mask: SoftmaxMask,
    shares: &[f32],
) -> Vec<Arg<'a>> {
    let shapes = [u(rows), u(dims.q_len), u(dims.k_len), u(dims.head_dim)];
    let mut args = buffers.to_vec();
    args.extend(shapes);
    args.extend(mask_args(mask));
    args.push(Arg::F32(scale));
    args.extend(shares.iter().map(|&s| Arg::F32(s)));
    args
}

impl CudaBackend {
    /// The device in use, e.g. "NVIDIA H100 80GB HBM3 (sm_90)".
    pub fn device_name(&self) -> &str {
        self.ctx.name()
    }

    /// The driver's CUDA version, where a driver runs the kernels (not the emulator).
    pub fn driver_version(&self) -> Option<String> {
        self.ctx.driver_version()
    }

    /// Whether the kernels run on the host emulator (`GRADLENS_CUDA_EMULATOR=1`).
    pub fn is_emulated(&self) -> bool {
        self.ctx.is_emulated()
    }

    /// Free and total device memory in bytes (for `--batch-size auto`).
    pub fn memory(&self) -> Result<(usize, usize)> {
        self.ctx.memory()
    }

    fn out(&self, len: usize, what: &str) -> Result<CudaBuffer> {
        Ok(CudaBuffer {
            slice: self.ctx.alloc(len, what)?,
            len,
        })
    }

    /// Allocates `len` outputs, launches `file:entry` with the output first, and wraps it.
    fn run(
        &self,
        file: &'static str,
        entry: &'static str,
        len: usize,
        args: &[Arg],
        grid: Grid,
    ) -> Result<Storage> {
        let out = self.out(len, entry)?;
        let mut all = vec![b(&out)];
        all.extend_from_slice(args);
        if len > 0 {
            self.ctx.launch(file, entry, &all, grid)?;
        }
        Ok(Storage::Cuda(out))
    }

    /// An elementwise kernel over `n` values.
    fn threads(
        &self,
        file: &'static str,
        entry: &'static str,
        n: usize,
        args: &[Arg],
    ) -> Result<Storage> {
        self.run(file, entry, n, args, Grid::Threads(n))
    }

    fn upload_host(&self, data: &[f32]) -> Result<CudaBuffer> {
        Ok(CudaBuffer {
            slice: self.ctx.upload(data)?,
            len: data.len(),
        })
    }

    fn softmax_rows(
        &self,
        entry: &'static str,
        out_len: usize,
        rows: usize,
        args: &[Arg],
    ) -> Result<Storage> {
        self.run("softmax.cu", entry, out_len, args, Grid::Rows(rows))
    }
}

impl CudaBackend {
    /// Queues one of `gradlens bench`'s limit kernels (`kernels/limits.cu`): `Read` sums `a`
    /// into one partial per thread of `out`, `Copy` copies `a` into `out`, `Fma` runs its
    /// chains in one thread per value of `out`. The per-thread outputs must be whole blocks of
    /// 256 and at most 65,535 of them (a 1-D grid).
    pub fn limit_kernel(&self, kernel: LimitKernel, a: &Storage, out: &Storage) -> Result<()> {
        let (a, out) = (buf(a)?, buf(out)?);
        match kernel {
            LimitKernel::Read => self.ctx.launch(
                "limits.cu",
                "read_sum",
                &[b(out), b(a), u(a.len)],
                Grid::Threads(out.len),
            ),
            LimitKernel::Copy => self.ctx.launch(
                "limits.cu",
                "copy",
                &[b(out), b(a), u(a.len)],
                Grid::Threads(a.len),
            ),
            LimitKernel::Fma { iterations } => self.ctx.launch(
                "limits.cu",
                "fma_peak",
                &[b(out), Arg::F32(1.0), Arg::U32(iterations)],
                Grid::Threads(out.len),
            ),
        }
    }
}

impl Backend for CudaBackend {
    fn synchronize(&self) -> Result<()> {
        self.ctx.synchronize()
    }

    /// Three quarters of the device memory free now (the driver's own count).
    fn batch_memory(&self) -> Option<usize> {
        self.memory().ok().map(|(free, _)| free / 4 * 3)
    }

    fn device(&self) -> Device {
        Device::Cuda
    }

    fn upload(&self, data: Vec<f32>) -> Result<Storage> {
        self.upload_host(&data).map(Storage::Cuda)
    }

    fn download(&self, s: &Storage) -> Result<Vec<f32>> {
        if let Storage::CudaStored(m) = s {
            let x = self.decode_stored(m)?;
            return self.ctx.download(&x.slice, x.len);
        }
        let x = buf(s)?;
        self.ctx.download(&x.slice, x.len)
    }

    fn zeros(&self, len: usize) -> Result<Storage> {
        Ok(Storage::Cuda(CudaBuffer {
            slice: self.ctx.zeros(len)?,
            len,
        }))
    }

    fn matmul(&self, a: &Storage, bm: &Storage, spec: &MatmulSpec) -> Result<Storage> {
        if let Storage::CudaStored(w) = bm {
            return self.stored_matmul(a, w, spec);
        }
        // 64×64 tiles waste most of a tile on a few rows; one thread per output does not.
        self.matmul_with(a, bm, spec, spec.m > 8)
    }

    fn add(&self, a: &Storage, c: &Storage) -> Result<Storage> {
        let (a, c) = (buf(a)?, buf(c)?);
        self.threads("elementwise.cu", "add", a.len(), &[b(a), b(c), u(a.len())])
    }

    fn mul(&self, a: &Storage, c: &Storage) -> Result<Storage> {
        let (a, c) = (buf(a)?, buf(c)?);
        self.threads("elementwise.cu", "mul", a.len(), &[b(a), b(c), u(a.len())])
    }

    fn scale(&self, a: &Storage, s: f32) -> Result<Storage> {
        let a = buf(a)?;
        self.threads(
            "elementwise.cu",
            "scale",
            a.len(),
            &[b(a), Arg::F32(s), u(a.len())],
        )
    }

    fn add_broadcast(&self, a: &Storage, c: &Storage) -> Result<Storage> {
        let (a, c) = (buf(a)?, buf(c)?);
        let args = [b(a), b(c), u(a.len()), u(c.len())];
        self.threads("elementwise.cu", "add_broadcast", a.len(), &args)
    }

    fn activation(&self, x: &Storage, f: Activation) -> Result<Storage> {
        let x = buf(x)?;
        let args = [b(x), u(x.len()), activation_code(f)];
        self.threads("activation.cu", "act_forward", x.len(), &args)
    }

    fn activation_backward(&self, x: &Storage, g: &Storage, f: Activation) -> Result<Storage> {
        let (x, g) = (buf(x)?, buf(g)?);
        let args = [b(x), b(g), u(x.len()), activation_code(f)];
        self.threads("activation.cu", "act_backward", x.len(), &args)
    }

    fn softmax(&self, x: &Storage, cols: usize, mask: SoftmaxMask) -> Result<Storage> {
        let x = buf(x)?;
        let rows = x.len() / cols;
        let [len, offset, window] = mask_args(mask);
        self.softmax_rows(
            "softmax",
            x.len(),
            rows,
            &[b(x), u(rows), u(cols), len, offset, window],
        )
    }

    fn softmax_backward(
        &self,
        y: &Storage,
        g: &Storage,
        cols: usize,
        factor: f32,
    ) -> Result<Storage> {
        let (y, g) = (buf(y)?, buf(g)?);
        let rows = y.len() / cols;
        let args = [b(y), b(g), u(rows), u(cols), Arg::F32(factor)];
        self.softmax_rows("softmax_backward", y.len(), rows, &args)
    }

    fn attention_probs(
        &self,
        q: &Storage,
        k: &Storage,
        dims: AttentionDims,
        scale: f32,
        mask: SoftmaxMask,
    ) -> Result<Storage> {
        let (q, k) = (buf(q)?, buf(k)?);
        dims.check_staged_head("attention_probs")?;
        let rows = dims.batch * dims.q_len;
        let args = attention_args(&[b(q), b(k)], rows, dims, scale, mask, &[]);
        let n = rows * dims.k_len;
        self.run(
            "attention.cu",
            "attention_probs",
            n,
            &args,
            Grid::Rows(rows),
        )
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
        let (q, k, v) = (buf(q)?, buf(k)?, buf(v)?);
        dims.check_staged_head("attention")?;
        let rows = dims.batch * dims.q_len;
        let args = attention_args(&[b(q), b(k), b(v)], rows, dims, scale, mask, &[]);
        let n = rows * dims.head_dim;
        self.run(
            "attention.cu",
            "attention_forward",
            n,
            &args,
            Grid::Rows(rows),
        )
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
        let (q, k, v, g) = (buf(q)?, buf(k)?, buf(v)?, buf(g)?);
        dims.check_staged_head("attention_backward")?;
        let (rows, key_rows) = (dims.batch * dims.q_len, dims.batch * dims.k_len);
        // The query pass always runs: the key pass needs its per-row statistics.
        let dq = self.out(rows * dims.head_dim, "attention_backward")?;
        let stats = self.out(rows * 3, "attention_backward")?;
        if rows > 0 {
            let buffers = [b(&dq), b(&stats), b(q), b(k), b(v), b(g)];
            let args = attention_args(&buffers, rows, dims, scale, mask, &shares[..1]);
            let entry = "attention_backward_query";
            self.ctx
                .launch("attention.cu", entry, &args, Grid::Rows(rows))?;
        }
        let (dk, dv) = if shares[1] != 0.0 || shares[2] != 0.0 {
            let dk = self.out(key_rows * dims.head_dim, "attention_backward")?;
            let dv = self.out(key_rows * dims.head_dim, "attention_backward")?;
            if key_rows > 0 {
                let buffers = [b(&dk), b(&dv), b(&stats), b(q), b(k), b(v), b(g)];
                let args = attention_args(&buffers, key_rows, dims, scale, mask, &shares[1..]);
                let entry = "attention_backward_key";
                self.ctx
                    .launch("attention.cu", entry, &args, Grid::Rows(key_rows))?;
            }
            (Some(dk), Some(dv))
        } else {
            (None, None)
        };
        let keep =
            |x: Option<CudaBuffer>, share: f32| x.filter(|_| share != 0.0).map(Storage::Cuda);
        Ok([
            keep(Some(dq), shares[0]),
            keep(dk, shares[1]),
            keep(dv, shares[2]),
        ])
    }

    fn layer_norm(
        &self,
        x: &Storage,
        w: &Storage,
        bias: &Storage,
        cols: usize,
        eps: f32,
    ) -> Result<(Storage, Storage, Storage)> {
        let (x, w, bias) = (buf(x)?, buf(w)?, buf(bias)?);
        let rows = x.len() / cols;
        let y = self.out(x.len(), "layer_norm")?;
        let xhat = self.out(x.len(), "layer_norm")?;
        let rstd = self.out(rows, "layer_norm")?;
        if rows > 0 {
            let args = [
                b(&y),
                b(&xhat),
                b(&rstd),
                b(x),
                b(w),
                b(bias),
                u(rows),
                u(cols),
                Arg::F32(eps),
            ];
            self.ctx
                .launch("norm.cu", "layer_norm", &args, Grid::Rows(rows))?;
        }
        Ok((Storage::Cuda(y), Storage::Cuda(xhat), Storage::Cuda(rstd)))
    }

    fn layer_norm_backward(
        &self,
        g: &Storage,
        xhat: &Storage,
        rstd: &Storage,
        w: &Storage,
        cols: usize,
    ) -> Result<Storage> {
        let (g, xhat, rstd, w) = (buf(g)?, buf(xhat)?, buf(rstd)?, buf(w)?);
        let rows = g.len() / cols;
        let args = [b(g), b(xhat), b(rstd), b(w), u(rows), u(cols)];
        self.run(
            "norm.cu",
            "layer_norm_backward",
            g.len(),
            &args,
            Grid::Rows(rows),
        )
    }

    fn rms_norm(
        &self,
        x: &Storage,
        w: &Storage,
        cols: usize,
        eps: f32,
    ) -> Result<(Storage, Storage)> {
        let (x, w) = (buf(x)?, buf(w)?);
        let rows = x.len() / cols;
        let y = self.out(x.len(), "rms_norm")?;
        let rstd = self.out(rows, "rms_norm")?;
        if rows > 0 {
            let args = [b(&y), b(&rstd), b(x), b(w), u(rows), u(cols), Arg::F32(eps)];
            self.ctx
                .launch("norm.cu", "rms_norm", &args, Grid::Rows(rows))?;
        }
        Ok((Storage::Cuda(y), Storage::Cuda(rstd)))
    }

    fn rms_norm_backward(
        &self,
        g: &Storage,
        x: &Storage,
        rstd: &Storage,
        w: &Storage,
        cols: usize,
    ) -> Result<Storage> {
        let (g, x, rstd, w) = (buf(g)?, buf(x)?, buf(rstd)?, buf(w)?);
        let rows = g.len() / cols;
        let args = [b(g), b(x), b(rstd), b(w), u(rows), u(cols)];
        self.run(
            "norm.cu",
            "rms_norm_backward",
            g.len(),
            &args,
            Grid::Rows(rows),
        )
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
        let (x, cos, sin) = (buf(x)?, buf(cos)?, buf(sin)?);
        let pairs = x.len() / 2;
        let sign: f32 = if inverse { -1.0 } else { 1.0 };
        let args = [
            b(x),
            b(cos),
            b(sin),
            u(pairs),
            u(len),
            u(head_dim / 2),
            u(cos.len() / len),
            Arg::F32(sign),
        ];
        self.run("rope.cu", "rope", x.len(), &args, Grid::Threads(pairs))
    }

    fn permute_0213(&self, x: &Storage, dims: [usize; 4]) -> Result<Storage> {
        let x = buf(x)?;
        let [_, bb, c, d] = dims;
        let args = [b(x), u(x.len()), u(bb), u(c), u(d)];
        self.threads("layout.cu", "permute_0213", x.len(), &args)
    }

    fn repeat_heads(&self, x: &Storage, dims: [usize; 4], rep: usize) -> Result<Storage> {
        let x = buf(x)?;
        let [_, h, l, d] = dims;
        let n = x.len() * rep;
        let args = [b(x), u(n), u(h), u(l * d), u(rep)];
        self.threads("layout.cu", "repeat_heads", n, &args)
    }

    fn sum_head_groups(&self, g: &Storage, dims: [usize; 4], rep: usize) -> Result<Storage> {
        let g = buf(g)?;
        let [bs, h, l, d] = dims;
        let n = bs * h * l * d;
        let args = [b(g), u(n), u(h), u(l * d), u(rep)];
        self.threads("layout.cu", "sum_head_groups", n, &args)
    }

    fn concat_seq(
        &self,
        a: &Storage,
        c: &Storage,
        dims_a: [usize; 4],
        t2: usize,
    ) -> Result<Storage> {
        let (a, c) = (buf(a)?, buf(c)?);
        let [_, _, t1, d] = dims_a;
        let n = a.len() + c.len();
        let args = [b(a), b(c), u(n), u(t1 * d), u(t2 * d)];
        self.threads("layout.cu", "concat_seq", n, &args)
    }

    fn gather_rows(&self, table: &Storage, ids: &[u32], cols: usize) -> Result<Storage> {
        if let Storage::CudaStored(m) = table {
            return self.stored_gather(m, ids, cols);
        }
        let table = buf(table)?;
        let n = ids.len() * cols;
        let ids = self.ctx.upload(ids)?;
        let args = [b(table), Arg::Ids(&ids), u(n), u(cols)];
        self.threads("layout.cu", "gather_rows", n, &args)
    }

    fn select_position(&self, x: &Storage, dims: [usize; 3], pos: usize) -> Result<Storage> {
        let x = buf(x)?;
        let [bs, l, d] = dims;
        let args = [b(x), u(bs * d), u(l), u(d), u(pos)];
        self.threads("layout.cu", "select_position", bs * d, &args)
    }

    fn scatter_position(&self, g: &Storage, dims: [usize; 3], pos: usize) -> Result<Storage> {
        let g = buf(g)?;
        let [bs, l, d] = dims;
        let n = bs * l * d;
        let args = [b(g), u(n), u(l), u(d), u(pos)];
        self.threads("layout.cu", "scatter_position", n, &args)
    }

    fn weighted_seq_sum(&self, x: &Storage, w: &[f32], dims: [usize; 3]) -> Result<Storage> {
        let x = buf(x)?;
        let [bs, l, d] = dims;
        let w = self.upload_host(w)?;
        let args = [b(x), b(&w), u(bs * d), u(l), u(d)];
        self.threads("layout.cu", "weighted_seq_sum", bs * d, &args)
    }

    fn broadcast_seq(&self, g: &Storage, w: &[f32], dims: [usize; 3]) -> Result<Storage> {
        let g = buf(g)?;
        let [bs, l, d] = dims;
        let w = self.upload_host(w)?;
        let n = bs * l * d;
        let args = [b(g), b(&w), u(n), u(l), u(d)];
        self.threads("layout.cu", "broadcast_seq", n, &args)
    }

    fn cosine_rows(&self, x: &Storage, c: &Storage, d: usize) -> Result<Storage> {
        let (x, c) = (buf(x)?, buf(c)?);
        let rows = x.len() / d;
        let args = [b(x), b(c), u(rows), u(d)];
        self.run("cosine.cu", "cosine_rows", rows, &args, Grid::Rows(rows))
    }

    fn cosine_rows_backward(
        &self,
        x: &Storage,
        c: &Storage,
        g: &Storage,
        d: usize,
    ) -> Result<Storage> {
        self.cosine_backward("cosine_rows_backward", x, c, g, d)
    }

    fn pick_softmax(
        &self,
        x: &Storage,
        cols: usize,
        col: usize,
        kind: PickKind,
    ) -> Result<Storage> {
        let x = buf(x)?;
        let rows = x.len() / cols;
        let log = u((kind == PickKind::LogProb) as usize);
        self.softmax_rows("pick", rows, rows, &[b(x), u(rows), u(cols), u(col), log])
    }

    fn pick_softmax_backward(
        &self,
        x: &Storage,
        g: &Storage,
        cols: usize,
        col: usize,
        kind: PickKind,
    ) -> Result<Storage> {
        let (x, g) = (buf(x)?, buf(g)?);
        let rows = x.len() / cols;
        let log = u((kind == PickKind::LogProb) as usize);
        let args = [b(x), b(g), u(rows), u(cols), u(col), log];
        self.softmax_rows("pick_backward", x.len(), rows, &args)
    }

    fn stabilized_ratio(
        &self,
        num: &Storage,
        den: &Storage,
        g: &Storage,
        eps: f32,
    ) -> Result<Storage> {
        let (num, den, g) = (buf(num)?, buf(den)?, buf(g)?);
        let args = [b(num), b(den), b(g), u(num.len()), Arg::F32(eps)];
        self.threads("rules.cu", "stabilized_ratio", num.len(), &args)
    }

    fn guided_backward(&self, x: &Storage, g: &Storage, f: Activation) -> Result<Storage> {
        let (x, g) = (buf(x)?, buf(g)?);
        let args = [b(x), b(g), u(x.len()), activation_code(f)];
        self.threads("activation.cu", "guided", x.len(), &args)
    }

    fn layer_norm_const_backward(
        &self,
        g: &Storage,
        rstd: &Storage,
        w: &Storage,
        cols: usize,
    ) -> Result<Storage> {
        self.norm_const("layer_norm_const_backward", g, rstd, w, cols)
    }

    fn rms_norm_const_backward(
        &self,
        g: &Storage,
        rstd: &Storage,
        w: &Storage,
        cols: usize,
    ) -> Result<Storage> {
        self.norm_const("rms_norm_const_backward", g, rstd, w, cols)
    }

    fn cosine_const_norm_backward(
        &self,
        x: &Storage,
        c: &Storage,
        g: &Storage,
        d: usize,
    ) -> Result<Storage> {
        self.cosine_backward("cosine_const_norm_backward", x, c, g, d)
    }

    fn rescale_halves(
        &self,
        x: &Storage,
        y: &Storage,
        g: &Storage,
        f: Activation,
    ) -> Result<Storage> {
        let (x, y, g) = (buf(x)?, buf(y)?, buf(g)?);
        let h = x.len() / 2;
        let args = [b(x), b(g), b(y), u(h), activation_code(f)];
        self.run(
            "activation.cu",
            "rescale_halves",
            x.len(),
            &args,
            Grid::Threads(h),
        )
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
        let (x, y, g, exact) = (buf(x)?, buf(y)?, buf(g)?, buf(exact)?);
        let rows = x.len() / 2 / x_cols;
        let [len, offset, window] = mask_args(mask);
        let args = [
            b(x),
            b(y),
            b(g),
            b(exact),
            u(rows),
            u(x_cols),
            u(y_cols),
            len,
            offset,
            window,
        ];
        let grid = Grid::Rows(rows);
        self.run("rules.cu", "rank1_rescale_halves", x.len(), &args, grid)
    }
}

impl CudaBackend {
    /// `matmul` with the kernel chosen by the caller: `tiled` (64×64 shared-memory tiles) or one
    /// thread per output. Both are tested against the CPU.
    pub fn matmul_with(
        &self,
        a: &Storage,
        bm: &Storage,
        spec: &MatmulSpec,
        tiled: bool,
    ) -> Result<Storage> {
        let (a, bm) = (buf(a)?, buf(bm)?);
        let &MatmulSpec {
            batch,
            m,
            n,
            k,
            trans_a,
            trans_b,
            a_batched,
            b_batched,
        } = spec;
        if k == 0 {
            return self.zeros(batch * m * n);
        }
        if m > 65535 || batch > 65535 {
            return Err(Error::Shape(format!(
                "matmul: {m} rows or {batch} batch entries exceed one launch (65535)"
            )));
        }
        let p = MatmulArgs {
            m: m as u32,
            n: n as u32,
            k: k as u32,
            trans_a: trans_a as u32,
            trans_b: trans_b as u32,
            stride_a: if a_batched { (m * k) as u32 } else { 0 },
            stride_b: if b_batched { (k * n) as u32 } else { 0 },
        };
        let (entry, grid) = if tiled {
            let g = Grid::Blocks(n.div_ceil(64) as u32, m.div_ceil(64) as u32, batch as u32);
            ("matmul_tiled", g)
        } else {
            (
                "matmul_rows",
                Grid::Blocks(n.div_ceil(256) as u32, m as u32, batch as u32),
            )
        };
        self.run(
            "matmul.cu",
            entry,
            batch * m * n,
            &[b(a), b(bm), Arg::Matmul(p)],
            grid,
        )
    }

    fn norm_const(
        &self,
        entry: &'static str,
        g: &Storage,
        rstd: &Storage,
        w: &Storage,
        cols: usize,
    ) -> Result<Storage> {
        let (g, rstd, w) = (buf(g)?, buf(rstd)?, buf(w)?);
        let rows = g.len() / cols;
        let args = [b(g), b(rstd), b(w), u(rows), u(cols)];
        self.run("norm.cu", entry, g.len(), &args, Grid::Rows(rows))
    }

    fn cosine_backward(
        &self,
        entry: &'static str,
        x: &Storage,
        c: &Storage,
        g: &Storage,
        d: usize,
    ) -> Result<Storage> {
        let (x, c, g) = (buf(x)?, buf(c)?, buf(g)?);
        let rows = x.len() / d;
        let args = [b(x), b(c), b(g), u(rows), u(d)];
        self.run("cosine.cu", entry, x.len(), &args, Grid::Rows(rows))
    }
}
