//! The portable GPU backend: every primitive as a hand-written WGSL kernel (`shaders/`), run
//! through wgpu on Vulkan, Metal or DX12 (and on Mesa's lavapipe CPU driver in CI).
//!
//! Kernels are submitted as they are called and never waited for; only `download` blocks.
//! Operands' sizes are checked before this backend sees them (`super::checked`); what it checks
//! itself is the adapter's limits.

mod buffer;
mod context;
mod kernels;
mod stored;

pub use buffer::GpuBuffer;
pub use stored::GpuStoredMatrix;

use super::{Activation, AttentionDims, Backend, LimitKernel, MatmulSpec, PickKind, SoftmaxMask};
use crate::error::{Error, Result};
use crate::tensor::{Device, Storage};
use context::{Context, Grid};
use kernels::k;
use std::sync::OnceLock;

pub struct WgpuBackend {
    ctx: Context,
}

static BACKEND: OnceLock<std::result::Result<WgpuBackend, String>> = OnceLock::new();

/// The process's wgpu backend, opened on first use on the preferred adapter.
pub fn backend() -> Result<&'static WgpuBackend> {
    BACKEND
        .get_or_init(|| Context::new().map(|ctx| WgpuBackend { ctx }))
        .as_ref()
        .map_err(|e| Error::DeviceUnavailable(e.clone()))
}

/// Every adapter wgpu finds, best first, described for `gradlens info --devices`.
pub fn adapter_descriptions() -> Vec<(String, bool)> {
    context::adapters()
        .iter()
        .map(|a| {
            let info = a.get_info();
            let hardware = !matches!(
                info.device_type,
                wgpu::DeviceType::Cpu | wgpu::DeviceType::Other
            );
            (context::describe(&info), hardware)
        })
        .collect()
}

impl WgpuBackend {
    /// The adapter in use, e.g. "llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu)".
    pub fn adapter_name(&self) -> String {
        self.ctx.name()
    }

    /// The largest buffer one kernel can bind, in bytes.
    pub fn max_binding_bytes(&self) -> usize {
        self.ctx
            .limits
            .max_storage_buffer_binding_size
            .min(self.ctx.limits.max_buffer_size) as usize
    }

    /// The adapter's driver and its version, as the driver reports them.
    pub fn driver(&self) -> String {
        format!("{} {}", self.ctx.info.driver, self.ctx.info.driver_info)
            .trim()
            .to_string()
    }

    pub fn is_hardware(&self) -> bool {
        !matches!(
            self.ctx.info.device_type,
            wgpu::DeviceType::Cpu | wgpu::DeviceType::Other
        )
    }

    fn out(&self, len: usize, what: &str) -> Result<GpuBuffer> {
        self.ctx.alloc(len, what)
    }
}

fn buf(s: &Storage) -> Result<&GpuBuffer> {
    match s {
        Storage::Wgpu(b) => Ok(b),
        Storage::WgpuStored(m) => Err(Error::Other(format!(
            "wgpu: this operation has no kernel for a weight stored as {:?} {m:?}; only linear layers and embedding look-ups do (load with --weights f32)",
            m.layout.format
        ))),
        other => Err(Error::Other(format!(
            "wgpu backend given a {} buffer",
            other.device()
        ))),
    }
}

fn activation_code(f: Activation) -> u32 {
    match f {
        Activation::GeluErf => 0,
        Activation::GeluTanh => 1,
        Activation::Silu => 2,
        Activation::Tanh => 3,
        Activation::Relu => 4,
    }
}

/// The kernel-specific words of `softmax.wgsl`'s parameters.
#[derive(Clone, Copy)]
struct SoftmaxExtra {
    mask: SoftmaxMask,
    col: usize,
    kind: PickKind,
    factor: f32,
}

impl Default for SoftmaxExtra {
    fn default() -> Self {
        SoftmaxExtra {
            mask: SoftmaxMask::None,
            col: 0,
            kind: PickKind::Prob,
            factor: 1.0,
        }
    }
}

fn u(n: usize) -> u32 {
    n as u32
}

impl WgpuBackend {
    fn elementwise(
        &self,
        entry: &'static str,
        a: &GpuBuffer,
        b: Option<&GpuBuffer>,
        m: usize,
        s: f32,
        op: u32,
    ) -> Result<Storage> {
        let out = self.out(a.len(), entry)?;
        let mut bind = vec![(1, &out), (2, a)];
        if let Some(b) = b {
            bind.push((3, b));
        }
        self.ctx.launch(
            k("elementwise.wgsl", entry),
            &[u(a.len()), u(m), s.to_bits(), op],
            &bind,
            Grid::Threads(a.len()),
        )?;
        Ok(Storage::Wgpu(out))
    }

    fn activation_kernel(
        &self,
        entry: &'static str,
        x: &GpuBuffer,
        g: Option<&GpuBuffer>,
        f: Activation,
    ) -> Result<Storage> {
        let out = self.out(x.len(), entry)?;
        let mut bind = vec![(1, &out), (2, x)];
        if let Some(g) = g {
            bind.push((3, g));
        }
        self.ctx.launch(
            k("activation.wgsl", entry),
            &[u(x.len()), activation_code(f)],
            &bind,
            Grid::Threads(x.len()),
        )?;
        Ok(Storage::Wgpu(out))
    }

    fn layout_kernel(
        &self,
        entry: &'static str,
        n: usize,
        d: [usize; 5],
        bind: &[(u32, &GpuBuffer)],
    ) -> Result<Storage> {
        let out = self.out(n, entry)?;
        let mut all = vec![(1, &out)];
        all.extend_from_slice(bind);
        self.ctx.launch(
            k("layout.wgsl", entry),
            &[u(n), u(d[0]), u(d[1]), u(d[2]), u(d[3]), u(d[4])],
            &all,
            Grid::Threads(n),
        )?;
        Ok(Storage::Wgpu(out))
    }

    fn norm_kernel(
        &self,
        entry: &'static str,
        rows: usize,
        cols: usize,
        eps: f32,
        bind: &[(u32, &GpuBuffer)],
    ) -> Result<Storage> {
        let out = self.out(rows * cols, entry)?;
        let mut all = vec![(1, &out)];
        all.extend_from_slice(bind);
        self.ctx.launch(
            k("norm.wgsl", entry),
            &[u(rows), u(cols), eps.to_bits()],
            &all,
            Grid::Rows(rows),
        )?;
        Ok(Storage::Wgpu(out))
    }

    fn cosine_kernel(
        &self,
        entry: &'static str,
        x: &GpuBuffer,
        c: &GpuBuffer,
        g: Option<&GpuBuffer>,
        d: usize,
    ) -> Result<Storage> {
        let rows = x.len() / d;
        let out = self.out(if g.is_some() { x.len() } else { rows }, entry)?;
        let mut bind = vec![(1, &out), (2, x), (3, c)];
        if let Some(g) = g {
            bind.push((4, g));
        }
        self.ctx.launch(
            k("cosine.wgsl", entry),
            &[u(rows), u(d)],
            &bind,
            Grid::Rows(rows),
        )?;
        Ok(Storage::Wgpu(out))
    }

    fn softmax_kernel(
        &self,
        entry: &'static str,
        x: &GpuBuffer,
        g: Option<&GpuBuffer>,
        out_len: usize,
        cols: usize,
        extra: SoftmaxExtra,
    ) -> Result<Storage> {
        let SoftmaxExtra {
            mask,
            col,
            kind,
            factor,
        } = extra;
        let rows = x.len() / cols;
        let out = self.out(out_len, entry)?;
        let mut bind = vec![(1, &out), (2, x)];
        if let Some(g) = g {
            bind.push((3, g));
        }
        let [len, offset, window] = mask.words();
        self.ctx.launch(
            k("softmax.wgsl", entry),
            &[
                u(rows),
                u(cols),
                len,
                offset,
                u(col),
                (kind == PickKind::LogProb) as u32,
                factor.to_bits(),
                window,
            ],
            &bind,
            Grid::Rows(rows),
        )?;
        Ok(Storage::Wgpu(out))
    }
}

impl WgpuBackend {
    /// `matmul` with the kernel chosen by the caller: `tiled` (workgroup-memory tiles) or one
    /// thread per output. Both are tested against the CPU on every adapter.
    pub fn matmul_with(
        &self,
        a: &Storage,
        b: &Storage,
        spec: &MatmulSpec,
        tiled: bool,
    ) -> Result<Storage> {
        let a = buf(a)?;
        let &MatmulSpec {
            batch,
            m,
            n,
            k: kk,
            trans_a,
            trans_b,
            a_batched,
            b_batched,
        } = spec;
        let out = self.out(batch * m * n, "matmul")?;
        if batch * m * n == 0 {
            return Ok(Storage::Wgpu(out));
        }
        if kk == 0 {
            return self.zeros(batch * m * n);
        }
        let max_z = self.ctx.limits.max_compute_workgroups_per_dimension as usize;
        if m > max_z {
            return Err(Error::Shape(format!(
                "matmul: {m} rows exceed the adapter's {max_z} workgroups per launch"
            )));
        }
        // Batches beyond one launch's z range run as further launches over offset views would
        // need sub-buffer bindings; transformer batches (batch · heads) stay far below 65535.
        if batch > max_z {
            return Err(Error::Shape(format!(
                "matmul: {batch} batch entries exceed the adapter's {max_z} workgroups per launch"
            )));
        }
        let rows_kernel = !tiled;
        let mut params = vec![
            u(m),
            u(n),
            u(kk),
            trans_a as u32,
            trans_b as u32,
            if a_batched { u(m * kk) } else { 0 },
            if b_batched { u(kk * n) } else { 0 },
        ];
        let mut bindings = vec![(1, &out), (2, a)];
        let (file, entry) = match b {
            Storage::WgpuStored(w) => {
                params.extend(w.layout.kernel_words());
                bindings.extend([(3, &w.words), (4, &w.order)]);
                // A few rows: each thread decodes eight weights at a time (one block's scales
                // read once), where the weight's rows are whole groups of eight.
                if rows_kernel && !trans_a && w.layout.cols.is_multiple_of(8) {
                    let (entry, groups) = match trans_b {
                        true => ("stored_x_wt", n.div_ceil(64)),
                        false => ("stored_g_w", (n / 8).div_ceil(64)),
                    };
                    self.ctx.launch(
                        k("stored_weight.wgsl", entry),
                        &params,
                        &bindings,
                        Grid::Groups(u(groups), u(m), u(batch)),
                    )?;
                    return Ok(Storage::Wgpu(out));
                }
                ("stored_weight.wgsl", ["matmul_rows", "matmul"])
            }
            other => {
                bindings.push((3, buf(other)?));
                ("matmul.wgsl", ["matmul_rows", "matmul"])
            }
        };
        self.ctx.launch(
            k(file, entry[!rows_kernel as usize]),
            &params,
            &bindings,
            if rows_kernel {
                Grid::Groups(u(n.div_ceil(64)), u(m), u(batch))
            } else {
                Grid::Groups(u(n.div_ceil(64)), u(m.div_ceil(64)), u(batch))
            },
        )?;
        Ok(Storage::Wgpu(out))
    }
}

impl WgpuBackend {
    /// Launches `stored_weight.wgsl`'s `entry` writing `count` values of `m` (rows `ids`, or
    /// all rows in order).
    fn stored_rows(
        &self,
        entry: &'static str,
        m: &GpuStoredMatrix,
        ids: Option<&GpuBuffer>,
        count: usize,
    ) -> Result<GpuBuffer> {
        let out = self.out(count, entry)?;
        if count == 0 {
            return Ok(out);
        }
        let mut params = vec![0; 7];
        params.extend(m.layout.kernel_words());
        params.extend([u(m.layout.cols), u(count)]);
        let mut bindings = vec![(1, &out), (3, &m.words), (4, &m.order)];
        bindings.extend(ids.map(|ids| (5, ids)));
        self.ctx.launch(
            k("stored_weight.wgsl", entry),
            &params,
            &bindings,
            Grid::Threads(count),
        )?;
        Ok(out)
    }

    fn stored_gather(&self, m: &GpuStoredMatrix, ids: &[u32], cols: usize) -> Result<GpuBuffer> {
        let id_buf = self
            .ctx
            .upload_u32(if ids.is_empty() { &[0] } else { ids })?;
        self.stored_rows("stored_gather", m, Some(&id_buf), ids.len() * cols)
    }

    /// The whole matrix in f32 (a copy: for ops without a stored-format kernel).
    pub fn decode_stored(&self, m: &GpuStoredMatrix) -> Result<GpuBuffer> {
        self.stored_rows("stored_decode", m, None, m.layout.len())
    }
}

impl WgpuBackend {
    /// Queues one of `gradlens bench`'s limit kernels (`shaders/limits.wgsl`): `Read` sums
    /// `a` into one partial per thread of `out`, `Copy` copies `a` into `out`, `Fma` runs its
    /// chains in one thread per value of `out`. The per-thread outputs must be whole
    /// workgroups of 256 and at most 65,535 of them (a 1-D grid).
    pub fn limit_kernel(&self, kernel: LimitKernel, a: &Storage, out: &Storage) -> Result<()> {
        let (a, out) = (buf(a)?, buf(out)?);
        let kernel_file = |entry| k("limits.wgsl", entry);
        match kernel {
            LimitKernel::Read => self.ctx.launch(
                kernel_file("read_sum"),
                &[u(a.len())],
                &[(1, out), (2, a)],
                Grid::Threads(out.len()),
            ),
            LimitKernel::Copy => self.ctx.launch(
                kernel_file("copy"),
                &[u(a.len())],
                &[(1, out), (2, a)],
                Grid::Threads(a.len()),
            ),
            LimitKernel::Fma { iterations } => self.ctx.launch(
                kernel_file("fma_peak"),
                &[0, iterations, 1.0f32.to_bits()],
                &[(1, out)],
                Grid::Threads(out.len()),
            ),
        }
    }
}

impl Backend for WgpuBackend {
    fn synchronize(&self) -> Result<()> {
        self.ctx.wait()
    }

    fn device(&self) -> Device {
        Device::Wgpu
    }

    fn upload(&self, data: Vec<f32>) -> Result<Storage> {
        self.ctx.upload(&data).map(Storage::Wgpu)
    }

    fn download(&self, s: &Storage) -> Result<Vec<f32>> {
        match s {
            Storage::WgpuStored(m) => self.ctx.download(&self.decode_stored(m)?),
            other => self.ctx.download(buf(other)?),
        }
    }

    fn zeros(&self, len: usize) -> Result<Storage> {
        self.ctx.zeros(len).map(Storage::Wgpu)
    }

    fn matmul(&self, a: &Storage, b: &Storage, spec: &MatmulSpec) -> Result<Storage> {
        // The tiled kernel wastes most of a 64-row tile on a few rows, and software adapters
        // (lavapipe) run workgroup barriers so slowly that one thread per output is 4× faster.
        let tiled = spec.m > 8 && self.is_hardware();
        self.matmul_with(a, b, spec, tiled)
    }

    fn add(&self, a: &Storage, b: &Storage) -> Result<Storage> {
        let (a, b) = (buf(a)?, buf(b)?);
        self.elementwise("binary", a, Some(b), 0, 0.0, 0)
    }

    fn mul(&self, a: &Storage, b: &Storage) -> Result<Storage> {
        let (a, b) = (buf(a)?, buf(b)?);
        self.elementwise("binary", a, Some(b), 0, 0.0, 1)
    }

    fn scale(&self, a: &Storage, s: f32) -> Result<Storage> {
        self.elementwise("scale", buf(a)?, None, 0, s, 0)
    }

    fn add_broadcast(&self, a: &Storage, b: &Storage) -> Result<Storage> {
        let (a, b) = (buf(a)?, buf(b)?);
        self.elementwise("add_broadcast", a, Some(b), b.len(), 0.0, 0)
    }

    fn activation(&self, x: &Storage, f: Activation) -> Result<Storage> {
        self.activation_kernel("forward", buf(x)?, None, f)
    }

    fn activation_backward(&self, x: &Storage, g: &Storage, f: Activation) -> Result<Storage> {
        self.activation_kernel("backward", buf(x)?, Some(buf(g)?), f)
    }

    fn softmax(&self, x: &Storage, cols: usize, mask: SoftmaxMask) -> Result<Storage> {
        let x = buf(x)?;
        let extra = SoftmaxExtra {
            mask,
            ..Default::default()
        };
        self.softmax_kernel("softmax", x, None, x.len(), cols, extra)
    }

    fn softmax_backward(
        &self,
        y: &Storage,
        g: &Storage,
        cols: usize,
        factor: f32,
    ) -> Result<Storage> {
        let (y, g) = (buf(y)?, buf(g)?);
        let extra = SoftmaxExtra {
            factor,
            ..Default::default()
        };
        self.softmax_kernel("softmax_backward", y, Some(g), y.len(), cols, extra)
    }

    fn attention_probs(
        &self,
        q: &Storage,
        keys: &Storage,
        dims: AttentionDims,
        scale: f32,
        mask: SoftmaxMask,
    ) -> Result<Storage> {
        let (q, kb) = (buf(q)?, buf(keys)?);
        let rows = dims.batch * dims.q_len;
        let out = self.out(rows * dims.k_len, "attention_probs")?;
        self.ctx.launch(
            k("attention.wgsl", "attention_probs"),
            &attention_params(rows, dims, scale, mask, [0.0; 3]),
            &[(1, &out), (2, q), (3, kb)],
            Grid::Rows(rows),
        )?;
        Ok(Storage::Wgpu(out))
    }

    fn attention(
        &self,
        q: &Storage,
        keys: &Storage,
        values: &Storage,
        dims: AttentionDims,
        scale: f32,
        mask: SoftmaxMask,
    ) -> Result<Storage> {
        let (q, kb, vb) = (buf(q)?, buf(keys)?, buf(values)?);
        dims.check_staged_head("attention")?;
        let rows = dims.batch * dims.q_len;
        let out = self.out(rows * dims.head_dim, "attention")?;
        self.ctx.launch(
            k("attention.wgsl", "attention_forward"),
            &attention_params(rows, dims, scale, mask, [0.0; 3]),
            &[(1, &out), (2, q), (3, kb), (4, vb)],
            Grid::Rows(rows),
        )?;
        Ok(Storage::Wgpu(out))
    }

    fn attention_backward(
        &self,
        q: &Storage,
        keys: &Storage,
        values: &Storage,
        g: &Storage,
        dims: AttentionDims,
        scale: f32,
        mask: SoftmaxMask,
        shares: [f32; 3],
    ) -> Result<[Option<Storage>; 3]> {
        let (q, kb, vb, g) = (buf(q)?, buf(keys)?, buf(values)?, buf(g)?);
        dims.check_staged_head("attention_backward")?;
        let (rows, key_rows) = (dims.batch * dims.q_len, dims.batch * dims.k_len);
        // The query pass always runs: the key pass needs its per-row statistics.
        let dq = self.out(rows * dims.head_dim, "attention_backward")?;
        let stats = self.out(rows * 3, "attention_backward")?;
        self.ctx.launch(
            k("attention.wgsl", "attention_backward_query"),
            &attention_params(rows, dims, scale, mask, shares),
            &[(1, &dq), (2, q), (3, kb), (4, vb), (5, g), (6, &stats)],
            Grid::Rows(rows),
        )?;
        let (dk, dv) = if shares[1] != 0.0 || shares[2] != 0.0 {
            let dk = self.out(key_rows * dims.head_dim, "attention_backward")?;
            let dv = self.out(key_rows * dims.head_dim, "attention_backward")?;
            self.ctx.launch(
                k("attention.wgsl", "attention_backward_key"),
                &attention_params(key_rows, dims, scale, mask, shares),
                &[
                    (1, &dk),
                    (2, q),
                    (3, kb),
                    (4, vb),
                    (5, g),
                    (6, &stats),
                    (7, &dv),
                ],
                Grid::Rows(key_rows),
            )?;
            (Some(dk), Some(dv))
        } else {
            (None, None)
        };
        let keep = |x: Option<GpuBuffer>, share: f32| x.filter(|_| share != 0.0).map(Storage::Wgpu);
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
        b: &Storage,
        cols: usize,
        eps: f32,
    ) -> Result<(Storage, Storage, Storage)> {
        let (x, w, b) = (buf(x)?, buf(w)?, buf(b)?);
        let rows = x.len() / cols;
        let y = self.out(x.len(), "layer_norm")?;
        let xhat = self.out(x.len(), "layer_norm")?;
        let rstd = self.out(rows, "layer_norm")?;
        self.ctx.launch(
            k("norm.wgsl", "layer_norm"),
            &[u(rows), u(cols), eps.to_bits()],
            &[(1, &y), (2, &xhat), (3, &rstd), (4, x), (5, w), (6, b)],
            Grid::Rows(rows),
        )?;
        Ok((Storage::Wgpu(y), Storage::Wgpu(xhat), Storage::Wgpu(rstd)))
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
        self.norm_kernel(
            "layer_norm_backward",
            rows,
            cols,
            0.0,
            &[(7, g), (8, xhat), (9, rstd), (5, w)],
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
        self.ctx.launch(
            k("norm.wgsl", "rms_norm"),
            &[u(rows), u(cols), eps.to_bits()],
            &[(1, &y), (3, &rstd), (4, x), (5, w)],
            Grid::Rows(rows),
        )?;
        Ok((Storage::Wgpu(y), Storage::Wgpu(rstd)))
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
        self.norm_kernel(
            "rms_norm_backward",
            rows,
            cols,
            0.0,
            &[(7, g), (4, x), (9, rstd), (5, w)],
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
        let half = head_dim / 2;
        let pairs = x.len() / 2;
        let out = self.out(x.len(), "rope")?;
        let sign: f32 = if inverse { -1.0 } else { 1.0 };
        self.ctx.launch(
            k("rope.wgsl", "rope"),
            &[
                u(pairs),
                u(len),
                u(half),
                sign.to_bits(),
                u(cos.len() / len),
            ],
            &[(1, &out), (2, x), (3, cos), (4, sin)],
            Grid::Threads(pairs),
        )?;
        Ok(Storage::Wgpu(out))
    }

    fn permute_0213(&self, x: &Storage, dims: [usize; 4]) -> Result<Storage> {
        let x = buf(x)?;
        let [a, b, c, d] = dims;
        self.layout_kernel("permute_0213", x.len(), [a, b, c, d, 0], &[(2, x)])
    }

    fn repeat_heads(&self, x: &Storage, dims: [usize; 4], rep: usize) -> Result<Storage> {
        let x = buf(x)?;
        let [_, h, l, d] = dims;
        self.layout_kernel(
            "repeat_heads",
            x.len() * rep,
            [h, l * d, rep, 0, 0],
            &[(2, x)],
        )
    }

    fn sum_head_groups(&self, g: &Storage, dims: [usize; 4], rep: usize) -> Result<Storage> {
        let g = buf(g)?;
        let [b, h, l, d] = dims;
        self.layout_kernel(
            "sum_head_groups",
            b * h * l * d,
            [h, l * d, rep, 0, 0],
            &[(2, g)],
        )
    }

    fn concat_seq(
        &self,
        a: &Storage,
        b: &Storage,
        dims_a: [usize; 4],
        t2: usize,
    ) -> Result<Storage> {
        let (a, b) = (buf(a)?, buf(b)?);
        let [_, _, t1, d] = dims_a;
        self.layout_kernel(
            "concat_seq",
            a.len() + b.len(),
            [t1 * d, t2 * d, 0, 0, 0],
            &[(2, a), (3, b)],
        )
    }

    fn gather_rows(&self, table: &Storage, ids: &[u32], cols: usize) -> Result<Storage> {
        if let Storage::WgpuStored(m) = table {
            return self.stored_gather(m, ids, cols).map(Storage::Wgpu);
        }
        let table = buf(table)?;
        let ids = self.ctx.upload_u32(ids)?;
        self.layout_kernel(
            "gather_rows",
            ids.len() * cols,
            [cols, 0, 0, 0, 0],
            &[(2, table), (4, &ids)],
        )
    }

    fn select_position(&self, x: &Storage, dims: [usize; 3], pos: usize) -> Result<Storage> {
        let x = buf(x)?;
        let [b, l, d] = dims;
        self.layout_kernel("select_position", b * d, [l, d, pos, 0, 0], &[(2, x)])
    }

    fn scatter_position(&self, g: &Storage, dims: [usize; 3], pos: usize) -> Result<Storage> {
        let g = buf(g)?;
        let [b, l, d] = dims;
        self.layout_kernel("scatter_position", b * l * d, [l, d, pos, 0, 0], &[(2, g)])
    }

    fn weighted_seq_sum(&self, x: &Storage, w: &[f32], dims: [usize; 3]) -> Result<Storage> {
        let x = buf(x)?;
        let [b, l, d] = dims;
        let w = self.ctx.upload(w)?;
        self.layout_kernel(
            "weighted_seq_sum",
            b * d,
            [l, d, 0, 0, 0],
            &[(2, x), (5, &w)],
        )
    }

    fn broadcast_seq(&self, g: &Storage, w: &[f32], dims: [usize; 3]) -> Result<Storage> {
        let g = buf(g)?;
        let [b, l, d] = dims;
        let w = self.ctx.upload(w)?;
        self.layout_kernel(
            "broadcast_seq",
            b * l * d,
            [l, d, 0, 0, 0],
            &[(2, g), (5, &w)],
        )
    }

    fn cosine_rows(&self, x: &Storage, c: &Storage, d: usize) -> Result<Storage> {
        self.cosine_kernel("cosine_rows", buf(x)?, buf(c)?, None, d)
    }

    fn cosine_rows_backward(
        &self,
        x: &Storage,
        c: &Storage,
        g: &Storage,
        d: usize,
    ) -> Result<Storage> {
        self.cosine_kernel("cosine_rows_backward", buf(x)?, buf(c)?, Some(buf(g)?), d)
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
        let extra = SoftmaxExtra {
            col,
            kind,
            ..Default::default()
        };
        self.softmax_kernel("pick", x, None, rows, cols, extra)
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
        let extra = SoftmaxExtra {
            col,
            kind,
            ..Default::default()
        };
        self.softmax_kernel("pick_backward", x, Some(g), x.len(), cols, extra)
    }

    fn stabilized_ratio(
        &self,
        num: &Storage,
        den: &Storage,
        g: &Storage,
        eps: f32,
    ) -> Result<Storage> {
        let (num, den, g) = (buf(num)?, buf(den)?, buf(g)?);
        let out = self.out(num.len(), "stabilized_ratio")?;
        self.ctx.launch(
            k("rules.wgsl", "stabilized_ratio"),
            &[u(num.len()), 0, 0, eps.to_bits()],
            &[(1, &out), (2, num), (3, den), (4, g)],
            Grid::Threads(num.len()),
        )?;
        Ok(Storage::Wgpu(out))
    }

    fn guided_backward(&self, x: &Storage, g: &Storage, f: Activation) -> Result<Storage> {
        self.activation_kernel("guided", buf(x)?, Some(buf(g)?), f)
    }

    fn layer_norm_const_backward(
        &self,
        g: &Storage,
        rstd: &Storage,
        w: &Storage,
        cols: usize,
    ) -> Result<Storage> {
        let (g, rstd, w) = (buf(g)?, buf(rstd)?, buf(w)?);
        let rows = g.len() / cols;
        self.norm_kernel(
            "layer_norm_const_backward",
            rows,
            cols,
            0.0,
            &[(7, g), (9, rstd), (5, w)],
        )
    }

    fn rms_norm_const_backward(
        &self,
        g: &Storage,
        rstd: &Storage,
        w: &Storage,
        cols: usize,
    ) -> Result<Storage> {
        let (g, rstd, w) = (buf(g)?, buf(rstd)?, buf(w)?);
        let rows = g.len() / cols;
        self.norm_kernel(
            "rms_norm_const_backward",
            rows,
            cols,
            0.0,
            &[(7, g), (9, rstd), (5, w)],
        )
    }

    fn cosine_const_norm_backward(
        &self,
        x: &Storage,
        c: &Storage,
        g: &Storage,
        d: usize,
    ) -> Result<Storage> {
        self.cosine_kernel(
            "cosine_const_norm_backward",
            buf(x)?,
            buf(c)?,
            Some(buf(g)?),
            d,
        )
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
        let out = self.out(x.len(), "rescale_halves")?;
        self.ctx.launch(
            k("activation.wgsl", "rescale_halves"),
            &[u(h), activation_code(f)],
            &[(1, &out), (2, x), (3, g), (4, y)],
            Grid::Threads(h),
        )?;
        Ok(Storage::Wgpu(out))
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
        let out = self.out(x.len(), "rank1_rescale_halves")?;
        let [len, offset, window] = mask.words();
        self.ctx.launch(
            k("rules.wgsl", "rank1_rescale_halves"),
            &[u(rows), u(x_cols), u(y_cols), 0, len, offset, window],
            &[(1, &out), (2, x), (3, y), (4, g), (5, exact)],
            Grid::Rows(rows),
        )?;
        Ok(Storage::Wgpu(out))
    }
}

/// `attention.wgsl`'s parameters: `rows` workgroups (query rows, or key rows for the key
/// pass), the shapes, the mask and the backward's shares.
fn attention_params(
    rows: usize,
    dims: AttentionDims,
    scale: f32,
    mask: SoftmaxMask,
    shares: [f32; 3],
) -> [u32; 11] {
    let [len, offset, window] = mask.words();
    [
        u(rows),
        u(dims.q_len),
        u(dims.k_len),
        u(dims.head_dim),
        len,
        offset,
        scale.to_bits(),
        window,
        shares[0].to_bits(),
        shares[1].to_bits(),
        shares[2].to_bits(),
    ]
}
