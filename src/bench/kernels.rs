//! Every kernel the engine uses, on a model's own shapes: the weight products in each stored
//! format (and, on the CPU, each variant side by side), attention materialised and fused,
//! RMS norm, SiLU, RoPE, the causal softmax, path construction and the quadrature
//! reduction. Each case counts the bytes it must move and the FLOPs it must do, and carries
//! an f64 reference of its output (`reference.rs`).

use super::reference as r;
use crate::backend::cpu::variants::{self, Variant, WeightProduct};
use crate::backend::{
    backend_for, composed_attention_backward, Activation, AttentionDims, Backend, MatmulSpec,
    SoftmaxMask,
};
use crate::error::Result;
use crate::gguf::{random_blocks, GgmlType};
use crate::tensor::{Device, Storage, StoredBytes, StoredMatrix, Tensor};
use std::rc::Rc;

/// The sizes the cases take from the model.
#[derive(Clone, Copy, Debug)]
pub struct Shapes {
    pub hidden: usize,
    pub intermediate: usize,
    pub heads: usize,
    pub head_dim: usize,
    /// A prompt's tokens (the few-row products).
    pub tokens: usize,
    /// Rows of a batch of path points (the products' GEMM regime): tokens × points.
    pub batch_rows: usize,
    /// Tokens of the long attention cases.
    pub long: usize,
    /// The format most of the model's weights are stored in.
    pub format: GgmlType,
}

/// One kernel, ready to run.
pub struct Case {
    pub family: &'static str,
    pub variant: String,
    pub format: String,
    pub shape: String,
    /// Bytes it must read and write at least, and FLOPs it must do.
    pub bytes: f64,
    pub flops: f64,
    /// One run: queues the work and returns its output (the caller waits for the device).
    pub run: Box<dyn Fn() -> Result<Tensor>>,
    /// The f64 reference of the output.
    pub reference: Rc<Reference>,
}

/// A kernel's f64 reference output, and how long its one computation took.
pub struct Reference {
    pub values: Vec<f32>,
    pub seconds: f64,
}

fn reference(f: impl FnOnce() -> Vec<f32>) -> Reference {
    let start = std::time::Instant::now();
    let values = f();
    Reference {
        values,
        seconds: start.elapsed().as_secs_f64(),
    }
}

impl Case {
    /// What `--kernels` patterns match: family, variant and format.
    pub fn label(&self) -> String {
        format!("{} {} {}", self.family, self.variant, self.format).to_lowercase()
    }
}

pub const FORMATS: [GgmlType; 11] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
];

pub fn format_name(f: GgmlType) -> String {
    format!("{f:?}").to_lowercase().replace('k', "_k")
}

/// Deterministic values in about [-1, 1].
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// A `[rows, cols]` weight of `format` with random blocks, or `None` where a row cannot be
/// whole blocks of it (the K-quants need 256 values a row).
fn weight(format: GgmlType, rows: usize, cols: usize, seed: u64) -> Option<StoredMatrix> {
    let per = format.block().0;
    if !cols.is_multiple_of(per) {
        return None;
    }
    let bytes = random_blocks(format, rows * cols, seed);
    StoredMatrix::new(format, rows, cols, StoredBytes::Owned(bytes), None).ok()
}

/// Every case for `device`, in the order the table lists them.
pub fn cases(device: Device, s: Shapes) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    weight_products(device, s, &mut out)?;
    attention(device, s, &mut out)?;
    small_ops(device, s, &mut out)?;
    Ok(out)
}

fn upload(device: Device, v: &[f32]) -> Result<Storage> {
    backend_for(device)?.upload(v.to_vec())
}

/// A backend's output as a flat tensor.
fn flat(s: Storage) -> Tensor {
    let n = s.len();
    Tensor::from_storage(s, vec![n].into())
}

type Run = Box<dyn Fn() -> Result<Tensor>>;

/// The weight products `x · Wᵀ` and `g · W` with `W` the MLP's `[intermediate, hidden]`:
/// every format at a prompt's rows, then (on the CPU) the model's own format at a prompt's
/// rows and a batch's, by every variant.
fn weight_products(device: Device, s: Shapes, out: &mut Vec<Case>) -> Result<()> {
    let (n, k) = (s.intermediate, s.hidden);
    let on_cpu = device == Device::Cpu;
    let mut add = |format: GgmlType, m: usize, all_variants: bool, seed: u64| -> Result<()> {
        let Some(stored) = weight(format, n, k, seed) else {
            return Ok(());
        };
        let dense = stored.decode_all();
        let stored_bytes = stored.stored_bytes() as f64;
        // f32 weights are plain tensors, as the engine holds them.
        let stored = Rc::new(if format == GgmlType::F32 {
            Tensor::from_vec(dense.clone(), [n, k], device)?
        } else {
            Tensor::stored_on(stored, device)?
        });
        for product in [WeightProduct::Forward, WeightProduct::InputGradient] {
            let (family, inner, outer) = match product {
                WeightProduct::Forward => ("x·Wᵀ (forward)", k, n),
                WeightProduct::InputGradient => ("g·W (input gradient)", n, k),
            };
            let x = values(m * inner, seed + 1);
            let reference = Rc::new(reference(|| match product {
                WeightProduct::Forward => r::x_wt(&x, &dense, m, n, k),
                WeightProduct::InputGradient => r::g_w(&x, &dense, m, n, k),
            }));
            let shape = format!("{m} × [{n}, {k}]");
            let bytes = stored_bytes + 4.0 * (m * (inner + outer)) as f64;
            let flops = 2.0 * (m * n * k) as f64;
            let mut case = |variant: String, run: Run, bytes| {
                out.push(Case {
                    family,
                    variant,
                    format: format_name(format),
                    shape: shape.clone(),
                    bytes,
                    flops,
                    run,
                    reference: reference.clone(),
                })
            };
            if on_cpu {
                let list = if all_variants {
                    Variant::all()
                } else {
                    vec![Variant::engine()]
                };
                for v in list {
                    let (w, bytes) = if v.reads_stored() || format == GgmlType::F32 {
                        (stored.clone(), bytes)
                    } else {
                        // gemm reads an f32 copy: four bytes a weight.
                        let f32_tensor = Rc::new(Tensor::from_vec(dense.clone(), [n, k], device)?);
                        (f32_tensor, bytes - stored_bytes + 4.0 * (n * k) as f64)
                    };
                    let x = x.clone();
                    let run = move || -> Result<Tensor> {
                        Ok(flat(Storage::Cpu(variants::run(
                            v,
                            product,
                            &x,
                            w.storage(),
                            m,
                            n,
                            k,
                        )?)))
                    };
                    case(v.name(), Box::new(run), bytes);
                }
            } else {
                let be = backend_for(device)?;
                let xs = upload(device, &x)?;
                let w = stored.clone();
                let spec = MatmulSpec {
                    batch: 1,
                    m,
                    n: outer,
                    k: inner,
                    trans_a: false,
                    trans_b: product == WeightProduct::Forward,
                    a_batched: true,
                    b_batched: false,
                };
                let run = move || be.matmul(&xs, w.storage(), &spec).map(flat);
                case(device.to_string(), Box::new(run), bytes);
            }
        }
        Ok(())
    };
    for (i, &format) in FORMATS.iter().enumerate() {
        add(format, s.tokens, false, 10 + i as u64)?;
    }
    if on_cpu {
        add(s.format, s.tokens, true, 100)?;
        add(s.format, s.batch_rows, true, 101)?;
    } else {
        add(s.format, s.batch_rows, false, 101)?;
    }
    Ok(())
}

/// Causal attention over one prompt's heads, at a prompt's length and a long one: the
/// probabilities materialised (`attention_probs`, then `A V`) against the fused kernel, forward
/// and backward.
fn attention(device: Device, s: Shapes, out: &mut Vec<Case>) -> Result<()> {
    let be = backend_for(device)?;
    let (h, d) = (s.heads, s.head_dim);
    let scale = 1.0 / (d as f32).sqrt();
    for (len, seed) in [(s.tokens, 200), (s.long, 210)] {
        let n = h * len * d;
        let (q, k, v, g) = (
            values(n, seed),
            values(n, seed + 1),
            values(n, seed + 2),
            values(n, seed + 3),
        );
        let fwd_ref = Rc::new(reference(|| r::attention(&q, &k, &v, len, d, scale as f64)));
        let bwd_ref = Rc::new(reference(|| {
            r::attention_backward(&q, &k, &v, &g, len, d, scale as f64)
        }));
        let dims = AttentionDims {
            batch: h,
            q_len: len,
            k_len: len,
            head_dim: d,
        };
        let mask = SoftmaxMask::causal(len, 0);
        let (q, k, v, g) = (
            Rc::new(upload(device, &q)?),
            Rc::new(upload(device, &k)?),
            Rc::new(upload(device, &v)?),
            Rc::new(upload(device, &g)?),
        );
        let shape = format!("{h} heads × {len} × {d}, causal");
        // Causal: half the score matrix. Forward: Q Kᵀ and A V; backward four products.
        let pairs = (h * len * (len + 1) / 2) as f64;
        let fwd_flops = 4.0 * pairs * d as f64;
        let bwd_flops = 2.0 * fwd_flops + 4.0 * fwd_flops / 2.0;
        let io = 4.0 * (4 * n) as f64;
        let probs = 4.0 * (h * len * len) as f64;
        let mut case = |family, variant: &str, bytes, flops, reference: &Rc<Reference>, run| {
            out.push(Case {
                family,
                variant: variant.into(),
                format: "f32".into(),
                shape: shape.clone(),
                bytes,
                flops,
                run,
                reference: reference.clone(),
            })
        };
        {
            let (q, k, v) = (q.clone(), k.clone(), v.clone());
            let run = move || {
                let p = be.attention_probs(&q, &k, dims, scale, mask)?;
                be.matmul(&p, &v, &dims.context_spec(false)).map(flat)
            };
            case(
                "attention forward",
                "materialised",
                io + 2.0 * probs,
                fwd_flops,
                &fwd_ref,
                Box::new(run),
            );
        }
        {
            let (q, k, v) = (q.clone(), k.clone(), v.clone());
            let run = move || be.attention(&q, &k, &v, dims, scale, mask).map(flat);
            case(
                "attention forward",
                "fused",
                io,
                fwd_flops,
                &fwd_ref,
                Box::new(run),
            );
        }
        {
            let (q, k, v, g) = (q.clone(), k.clone(), v.clone(), g.clone());
            let run = move || {
                let grads =
                    composed_attention_backward(be, &q, &k, &v, &g, dims, scale, mask, [1.0; 3])?;
                concat(be, grads).map(flat)
            };
            case(
                "attention backward",
                "materialised",
                4.0 / 3.0 * io + 6.0 * probs,
                bwd_flops,
                &bwd_ref,
                Box::new(run),
            );
        }
        {
            let (q, k, v, g) = (q.clone(), k.clone(), v.clone(), g.clone());
            let run = move || {
                let grads = be.attention_backward(&q, &k, &v, &g, dims, scale, mask, [1.0; 3])?;
                concat(be, grads).map(flat)
            };
            case(
                "attention backward",
                "fused",
                4.0 / 3.0 * io,
                bwd_flops,
                &bwd_ref,
                Box::new(run),
            );
        }
    }
    Ok(())
}

/// The three gradients one after another (on the device: two sequence concatenations).
fn concat(be: &dyn Backend, grads: [Option<Storage>; 3]) -> Result<Storage> {
    let [Some(a), Some(b), Some(c)] = grads else {
        return Err(crate::error::Error::Other(
            "attention backward: a gradient is missing".into(),
        ));
    };
    let ab = be.concat_seq(&a, &b, [1, 1, a.len(), 1], b.len())?;
    be.concat_seq(&ab, &c, [1, 1, ab.len(), 1], c.len())
}

/// RMS norm and SiLU on a batch's rows, RoPE and the causal softmax at the long length, the
/// path points of 50 steps and their quadrature sum.
fn small_ops(device: Device, s: Shapes, out: &mut Vec<Case>) -> Result<()> {
    let be = backend_for(device)?;
    let rows = s.batch_rows;
    let mut case = |family: &'static str,
                    shape: String,
                    bytes: f64,
                    flops: f64,
                    expected: Reference,
                    run: Run| {
        out.push(Case {
            family,
            variant: device.to_string(),
            format: "f32".into(),
            shape,
            bytes,
            flops,
            run,
            reference: Rc::new(expected),
        })
    };
    let eps = 1e-5f32;
    // RMS norm forward and backward over the hidden size.
    {
        let cols = s.hidden;
        let (x, w, g) = (
            values(rows * cols, 300),
            values(cols, 301),
            values(rows * cols, 302),
        );
        let n = (rows * cols) as f64;
        let fwd = reference(|| r::rms_norm(&x, &w, cols, eps as f64));
        let back = reference(|| r::rms_norm_backward(&x, &g, &w, cols, eps as f64));
        let (xs, ws, gs) = (
            upload(device, &x)?,
            upload(device, &w)?,
            upload(device, &g)?,
        );
        let shape = format!("{rows} × {cols}");
        let (xs, ws) = (Rc::new(xs), Rc::new(ws));
        {
            let (xs, ws) = (xs.clone(), ws.clone());
            let run = move || be.rms_norm(&xs, &ws, cols, eps).map(|(y, _)| flat(y));
            case(
                "rms norm forward",
                shape.clone(),
                8.0 * n,
                4.0 * n,
                fwd,
                Box::new(run),
            );
        }
        let (_, rstd) = be.rms_norm(&xs, &ws, cols, eps)?;
        let run = move || be.rms_norm_backward(&gs, &xs, &rstd, &ws, cols).map(flat);
        case(
            "rms norm backward",
            shape,
            12.0 * n,
            8.0 * n,
            back,
            Box::new(run),
        );
    }
    // SiLU forward and backward over the MLP width.
    {
        let n = rows * s.intermediate;
        let (x, g) = (values(n, 310), values(n, 311));
        let fwd = reference(|| r::silu(&x));
        let back = reference(|| r::silu_backward(&x, &g));
        let (xs, gs) = (Rc::new(upload(device, &x)?), upload(device, &g)?);
        let shape = format!("{rows} × {}", s.intermediate);
        {
            let xs = xs.clone();
            let run = move || be.activation(&xs, Activation::Silu).map(flat);
            case(
                "silu forward",
                shape.clone(),
                8.0 * n as f64,
                5.0 * n as f64,
                fwd,
                Box::new(run),
            );
        }
        let run = move || be.activation_backward(&xs, &gs, Activation::Silu).map(flat);
        case(
            "silu backward",
            shape,
            12.0 * n as f64,
            8.0 * n as f64,
            back,
            Box::new(run),
        );
    }
    // RoPE of every head at the long length.
    {
        let (len, d) = (s.long, s.head_dim);
        let n = s.heads * len * d;
        let x = values(n, 320);
        let angle: Vec<f32> = (0..len * d / 2)
            .map(|i| (i / (d / 2)) as f32 * 10000f32.powf(-2.0 * (i % (d / 2)) as f32 / d as f32))
            .collect();
        let (cos, sin): (Vec<f32>, Vec<f32>) = angle.iter().map(|a| (a.cos(), a.sin())).unzip();
        let expected = reference(|| r::rope(&x, &cos, &sin, len, d));
        let (xs, cs, ss) = (
            upload(device, &x)?,
            upload(device, &cos)?,
            upload(device, &sin)?,
        );
        let run = move || be.rope(&xs, &cs, &ss, len, d, false).map(flat);
        let bytes = 8.0 * n as f64 + 8.0 * (len * d / 2) as f64;
        case(
            "rope",
            format!("{} heads × {len} × {d}", s.heads),
            bytes,
            3.0 * n as f64,
            expected,
            Box::new(run),
        );
    }
    // The causal softmax of the long length's scores.
    {
        let len = s.long;
        let n = s.heads * len * len;
        let x = values(n, 330);
        let expected = reference(|| r::causal_softmax(&x, len));
        let xs = upload(device, &x)?;
        let run = move || be.softmax(&xs, len, SoftmaxMask::causal(len, 0)).map(flat);
        case(
            "softmax (causal)",
            format!("{} × {len} × {len}", s.heads),
            8.0 * n as f64,
            2.5 * n as f64,
            expected,
            Box::new(run),
        );
    }
    // Integrated gradients' 50 path points and their weighted sum.
    {
        let steps = 50;
        let n = s.tokens * s.hidden;
        let (x, b) = (values(n, 340), values(n, 341));
        let alphas: Vec<f32> = (0..steps)
            .map(|i| (i as f32 + 0.5) / steps as f32)
            .collect();
        let expected = reference(|| r::interpolate(&x, &b, &alphas));
        let xt = Tensor::from_vec(x, [s.tokens, s.hidden], device)?;
        let bt = Tensor::from_vec(b, [s.tokens, s.hidden], device)?;
        let shape = format!("{steps} × {} × {}", s.tokens, s.hidden);
        let a2 = alphas.clone();
        let run = move || crate::ops::interpolate(&xt, &bt, &a2);
        let bytes = 4.0 * ((steps + 2) * n) as f64;
        case(
            "path points",
            shape.clone(),
            bytes,
            2.0 * (steps * n) as f64,
            expected,
            Box::new(run),
        );
        let xs = values(steps * n, 342);
        let w: Vec<f32> = values(steps, 343);
        let expected = reference(|| r::weighted_sum(&xs, &w));
        let xs = Tensor::from_vec(xs, [steps, s.tokens, s.hidden], device)?;
        let run = move || crate::ops::weighted_batch_sum(&xs, &w);
        case(
            "quadrature sum",
            shape,
            4.0 * ((steps + 1) * n) as f64,
            2.0 * (steps * n) as f64,
            expected,
            Box::new(run),
        );
    }
    Ok(())
}
