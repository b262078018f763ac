//! The CPU's weight products one variant at a time, for `gradlens bench` to time side by side:
//! each instruction set with a stored matrix decoded in registers or in tiles, the portable
//! loop, and `sgemm` on an f32 copy (what the engine runs for f32 weights at many rows). The
//! engine's own choice (`Variant::Engine`) is `matmul`'s: `Kernel::best()` with `Decode::Auto`
//! at few rows or for a stored weight, `sgemm` for f32 weights at many.

use super::simd::{Decode, Kernel};
use super::{g_times_w, host, matmul, weight, weight_t};
use crate::backend::MatmulSpec;
use crate::error::{Error, Result};
use crate::tensor::Storage;

/// Which weight product: a linear layer's forward, or its input gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightProduct {
    /// `x · Wᵀ`: `x: [m, k]`, `W: [n, k]`.
    Forward,
    /// `g · W`: `g: [m, n]`, `W: [n, k]`.
    InputGradient,
}

/// One way to compute a weight product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// What the engine runs (`matmul`'s choice by the row count and the weight's format).
    Engine,
    Kernel(Kernel, Decode),
    /// `sgemm` on f32 weights (a stored matrix must be decoded first).
    Sgemm,
}

impl Variant {
    /// What the engine runs.
    pub fn engine() -> Variant {
        Variant::Engine
    }

    /// Every variant this CPU can run, the engine's first.
    pub fn all() -> Vec<Variant> {
        let mut all = vec![Variant::engine()];
        for kernel in Kernel::available() {
            let decodes: &[Decode] = match kernel {
                Kernel::Portable => &[Decode::Auto],
                _ => &[Decode::Registers, Decode::Tiles],
            };
            all.extend(decodes.iter().map(|&d| Variant::Kernel(kernel, d)));
        }
        all.push(Variant::Sgemm);
        all
    }

    pub fn name(self) -> String {
        match self {
            Variant::Engine => format!("{} (engine)", kernel_name(Kernel::best())),
            Variant::Kernel(Kernel::Portable, _) => "portable".into(),
            Variant::Kernel(kernel, Decode::Auto) => format!("{} auto", kernel_name(kernel)),
            Variant::Kernel(kernel, Decode::Registers) => {
                format!("{} registers", kernel_name(kernel))
            }
            Variant::Kernel(kernel, Decode::Tiles) => format!("{} tiles", kernel_name(kernel)),
            Variant::Sgemm => "sgemm (f32)".into(),
        }
    }

    /// Whether this variant reads the weight as stored (else it needs an f32 copy).
    pub fn reads_stored(self) -> bool {
        self != Variant::Sgemm
    }
}

fn kernel_name(kernel: Kernel) -> &'static str {
    match kernel {
        Kernel::Avx512 => "avx512",
        Kernel::Avx2 => "avx2",
        Kernel::Portable => "portable",
    }
}

/// The engine's instruction set, by name (`avx512`, `avx2`, `portable`).
pub fn engine_kernel() -> &'static str {
    kernel_name(Kernel::best())
}

/// `product` of `x` (`m` rows) with the weight `w: [n, k]` (CPU storage: f32 or stored; f32
/// for `Sgemm`), by `variant`.
pub fn run(
    variant: Variant,
    product: WeightProduct,
    x: &[f32],
    w: &Storage,
    m: usize,
    n: usize,
    k: usize,
) -> Result<Vec<f32>> {
    let inner = match product {
        WeightProduct::Forward => k,
        WeightProduct::InputGradient => n,
    };
    if x.len() != m * inner || w.len() != n * k {
        return Err(Error::Shape(format!(
            "{product:?}: {} activations and {} weights for m {m}, [{n}, {k}]",
            x.len(),
            w.len()
        )));
    }
    let spec = MatmulSpec {
        batch: 1,
        m,
        n: if product == WeightProduct::Forward {
            n
        } else {
            k
        },
        k: inner,
        trans_a: false,
        trans_b: product == WeightProduct::Forward,
        a_batched: true,
        b_batched: false,
    };
    match variant {
        Variant::Engine => matmul::matmul(x, weight(w)?, &spec),
        Variant::Kernel(kernel, decode) => {
            if !Kernel::available().contains(&kernel) {
                return Err(Error::DeviceUnavailable(format!(
                    "this CPU cannot run the {} kernels",
                    kernel_name(kernel)
                )));
            }
            let rows = weight(w)?.stored_rows(k);
            match product {
                WeightProduct::Forward => weight_t::product(x, rows, m, n, k, kernel, decode),
                WeightProduct::InputGradient => {
                    g_times_w::product(x, rows, m, n, k, kernel, decode)
                }
            }
        }
        Variant::Sgemm => matmul::dense_product(x, host(w)?, &spec),
    }
}
