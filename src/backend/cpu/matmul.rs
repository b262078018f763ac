//! Batched matrix products on the `gemm` crate. Transposes are expressed as strides, so no
//! operand is ever copied.

use super::{weight_t, PAR_MIN};
use crate::backend::MatmulSpec;
use crate::error::{Error, Result};
use gemm::Parallelism;
use rayon::prelude::*;

pub fn matmul(a: &[f32], b: &[f32], s: &MatmulSpec) -> Result<Vec<f32>> {
    let (mk, kn, mn) = (s.m * s.k, s.k * s.n, s.m * s.n);
    let need_a = if s.a_batched { s.batch * mk } else { mk };
    let need_b = if s.b_batched { s.batch * kn } else { kn };
    if a.len() != need_a || b.len() != need_b {
        return Err(Error::Shape(format!(
            "matmul {s:?}: operands have {} and {} values, expected {need_a} and {need_b}",
            a.len(),
            b.len()
        )));
    }
    if mn == 0 {
        return Ok(vec![0.0; s.batch * mn]);
    }
    // Activations times a transposed weight (a linear layer's forward): our dot-product kernel,
    // since gemm packs a transposed right operand slowly (see `weight_t`), up to the row count
    // where gemm's cache blocking wins back its packing.
    if s.batch == 1 && !s.trans_a && !s.b_batched && s.trans_b && s.m < weight_t::GEMM_FROM_ROWS {
        return Ok(weight_t::a_times_wt(a, b, s.m, s.n, s.k));
    }
    let mut out = vec![0.0f32; s.batch * mn];
    // Strides (row, column) of op(A) [m, k] and op(B) [k, n].
    let (a_rs, a_cs) = if s.trans_a {
        (1, s.m as isize)
    } else {
        (s.k as isize, 1)
    };
    let (b_rs, b_cs) = if s.trans_b {
        (1, s.k as isize)
    } else {
        (s.n as isize, 1)
    };
    let one = |bi: usize, dst: &mut [f32], par: Parallelism| {
        let a_off = if s.a_batched { bi * mk } else { 0 };
        let b_off = if s.b_batched { bi * kn } else { 0 };
        // SAFETY: the length checks above keep every strided access of the m×k, k×n and
        // m×n operands inside `a`, `b` and `dst`.
        unsafe {
            gemm::gemm(
                s.m,
                s.n,
                s.k,
                dst.as_mut_ptr(),
                1,
                s.n as isize,
                false,
                a.as_ptr().add(a_off),
                a_cs,
                a_rs,
                b.as_ptr().add(b_off),
                b_cs,
                b_rs,
                0.0,
                1.0,
                false,
                false,
                false,
                par,
            )
        }
    };
    let flops = s.batch * mn * s.k;
    // On a worker thread, the caller already runs independent batches concurrently (one per
    // thread), which scales better than splitting each product: stay serial.
    let inside_worker = rayon::current_thread_index().is_some();
    if inside_worker {
        for (bi, dst) in out.chunks_mut(mn).enumerate() {
            one(bi, dst, Parallelism::None);
        }
    } else if s.batch == 1 || mn * s.k >= PAR_MIN * 8 {
        // Few large products: let gemm split each one.
        let par = if flops >= PAR_MIN {
            Parallelism::Rayon(rayon::current_num_threads())
        } else {
            Parallelism::None
        };
        for (bi, dst) in out.chunks_mut(mn).enumerate() {
            one(bi, dst, par);
        }
    } else if flops >= PAR_MIN {
        out.par_chunks_mut(mn)
            .enumerate()
            .for_each(|(bi, dst)| one(bi, dst, Parallelism::None));
    } else {
        for (bi, dst) in out.chunks_mut(mn).enumerate() {
            one(bi, dst, Parallelism::None);
        }
    }
    Ok(out)
}
