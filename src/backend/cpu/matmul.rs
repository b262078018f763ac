//! Batched matrix products: the weight kernels for a linear layer's few rows or a stored
//! weight, `sgemm` for the rest. Transposes are expressed as strides.

use super::sgemm::sgemm;
use super::weight_rows::WeightRows;
use super::{g_times_w, weight_t, PAR_MIN};
use crate::backend::MatmulSpec;
use crate::error::{Error, Result};
use rayon::prelude::*;

/// `op(A) · op(B)`; `B` may be a stored-format weight (see `WeightRows`) where it is a
/// linear layer's weight.
pub fn matmul(a: &[f32], b: WeightRows, s: &MatmulSpec) -> Result<Vec<f32>> {
    let b_len = match b {
        WeightRows::F32(b) => b.len(),
        WeightRows::Stored(w) => w.rows() * w.cols(),
    };
    let (mk, kn, mn) = (s.m * s.k, s.k * s.n, s.m * s.n);
    let need_a = if s.a_batched { s.batch * mk } else { mk };
    let need_b = if s.b_batched { s.batch * kn } else { kn };
    if a.len() != need_a || b_len != need_b {
        return Err(Error::Shape(format!(
            "matmul {s:?}: operands have {} and {b_len} values, expected {need_a} and {need_b}",
            a.len(),
        )));
    }
    if s.batch * mn == 0 {
        return Ok(vec![0.0; s.batch * mn]);
    }
    // A product with a weight (`B` shared by every batch element): a linear layer, where the
    // batch is the path points or samples and `m` the rows (tokens) of one. Which kernel runs is
    // chosen by `m`, never by the batch, and the row-invariant kernels then take every row at
    // once, so a point's result has the same bits in any batching (`sgemm` is row-invariant
    // too: each output is one FMA chain whatever the rows around it).
    // A stored weight always takes these kernels, which decode it a block of rows at a time.
    let weight_product = !s.trans_a && !s.b_batched && (s.a_batched || s.batch == 1);
    if weight_product && (s.m < weight_t::GEMM_FROM_ROWS || b.is_stored()) {
        let rows = s.batch * s.m;
        // `x·Wᵀ` (the forward) on the dot-product kernel; `g·W` (the input gradient) on the
        // FMA-chain kernel.
        return if s.trans_b {
            weight_t::a_times_wt(a, b, rows, s.n, s.k)
        } else {
            g_times_w::g_times_w(a, b, rows, s.k, s.n)
        };
    }
    let WeightRows::F32(b) = b else {
        return Err(Error::Shape(format!(
            "matmul {s:?}: a stored-format weight can only be a linear layer's weight"
        )));
    };
    dense_product(a, b, s)
}

/// `op(A) · op(B)` on `sgemm`, f32 operands of the spec's sizes (checked by `matmul`).
pub fn dense_product(a: &[f32], b: &[f32], s: &MatmulSpec) -> Result<Vec<f32>> {
    let mut out = super::zeros(s.batch * s.m * s.n, "a matrix product")?;
    // On a worker thread, the caller already runs independent work concurrently: stay serial.
    let parallel = rayon::current_thread_index().is_none();
    // Strides (row, column) of op(A) [m, k] and op(B) [k, n].
    let (a_rs, a_cs) = if s.trans_a { (1, s.m) } else { (s.k, 1) };
    let (b_rs, b_cs) = if s.trans_b { (1, s.k) } else { (s.n, 1) };
    let view = |data, rows, cols| View { data, rows, cols };
    if !s.b_batched && !s.trans_a && (s.a_batched || s.batch == 1) {
        // One `B` for every element, whose rows follow each other in `A`: a single product
        // of all the rows, `B` packed once.
        let rows = s.batch * s.m;
        let (a, b) = (view(a, a_rs, a_cs), view(b, b_rs, b_cs));
        sgemm(&mut out, (rows, s.n, s.k), a, b, false, parallel);
        return Ok(out);
    }
    let (mk, kn, mn) = (s.m * s.k, s.k * s.n, s.m * s.n);
    let one = |bi: usize, dst: &mut [f32], parallel: bool| {
        let a_off = if s.a_batched { bi * mk } else { 0 };
        let b_off = if s.b_batched { bi * kn } else { 0 };
        let a = view(&a[a_off..a_off + mk], a_rs, a_cs);
        let b = view(&b[b_off..b_off + kn], b_rs, b_cs);
        sgemm(dst, (s.m, s.n, s.k), a, b, false, parallel);
    };
    let flops = s.batch * mn * s.k;
    if parallel && s.batch > 1 && mn * s.k < PAR_MIN * 8 && flops >= PAR_MIN {
        // Many small products: one per thread.
        out.par_chunks_mut(mn)
            .enumerate()
            .for_each(|(bi, dst)| one(bi, dst, false));
    } else {
        // Few large products: each split over the threads (`sgemm` stays serial when small).
        for (bi, dst) in out.chunks_mut(mn).enumerate() {
            one(bi, dst, parallel);
        }
    }
    Ok(out)
}

/// A strided view of a row-major matrix: `data[r · rows + c · cols]` is entry `(r, c)`.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
}

/// The checks both GEMMs start with: a product with nothing to multiply is settled here
/// (`m · n = 0`; `k = 0`, where `dst` is zeroed unless accumulating) and `false` returned;
/// otherwise every strided access of the m×k, k×n and m×n operands must lie inside `a`, `b`
/// and `dst` (a panic naming `what` if not).
pub(super) fn checked_product(
    dst: &mut [f32],
    (m, n, k): (usize, usize, usize),
    a: View,
    b: View,
    accumulate: bool,
    what: &str,
) -> bool {
    if m * n == 0 {
        return false;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return false;
    }
    let last = |v: View, r: usize, c: usize| (r - 1) * v.rows + (c - 1) * v.cols;
    assert!(
        dst.len() >= m * n && last(a, m, k) < a.data.len() && last(b, k, n) < b.data.len(),
        "{what}: operand sizes"
    );
    true
}

/// `dst[m, n] = A[m, k] · B[k, n]`, or `dst += A · B` with `accumulate`, on the calling
/// thread (`dst` row-major with `n` columns): the fused attention's tiles. These stay on the
/// `gemm` crate: two of their three sides are a head's 64, where `sgemm`'s packing costs as
/// much as the product, and reading the operands in place (tried: `Kᵀ` transposed once per
/// call, `P` read down its rows) made saliency at 8,192 tokens 30% slower (94 → 122 s).
pub fn product_into(
    dst: &mut [f32],
    (m, n, k): (usize, usize, usize),
    a: View,
    b: View,
    accumulate: bool,
) {
    if !checked_product(dst, (m, n, k), a, b, accumulate, "product_into") {
        return;
    }
    // SAFETY: `checked_product` keeps every strided access of the m×k, k×n and m×n operands
    // inside `a`, `b` and `dst`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cols as isize,
            a.rows as isize,
            b.data.as_ptr(),
            b.cols as isize,
            b.rows as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, step: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * step % 13) as f32 - 6.1) / 7.3)
            .collect()
    }

    /// A product with a shared weight, as a linear layer makes it: a batch of points of `m`
    /// rows each. Each point's rows must have the same bits as when the point is alone, below
    /// and above the row count where `sgemm` takes over, for the forward (`x·Wᵀ`) and the input
    /// gradient (`g·W`): this is what makes attributions independent of `--batch-size`.
    #[test]
    fn a_point_has_the_same_bits_in_any_batch() {
        let (n, k) = (40, 70);
        for m in [1, 5, weight_t::GEMM_FROM_ROWS + 3] {
            for trans_b in [true, false] {
                let batch = 3;
                let inner_k = if trans_b { k } else { n };
                let a = values(batch * m * inner_k, 7);
                let b = values(n * k, 5);
                let spec = |batch| MatmulSpec {
                    batch,
                    m,
                    n: if trans_b { n } else { k },
                    k: if trans_b { k } else { n },
                    trans_a: false,
                    trans_b,
                    a_batched: true,
                    b_batched: false,
                };
                let all = matmul(&a, WeightRows::F32(&b), &spec(batch)).unwrap();
                let per = all.len() / batch;
                let inner = m * spec(1).k;
                for p in 0..batch {
                    let alone = matmul(
                        &a[p * inner..(p + 1) * inner],
                        WeightRows::F32(&b),
                        &spec(1),
                    )
                    .unwrap();
                    assert_eq!(
                        alone[..],
                        all[p * per..(p + 1) * per],
                        "m {m} trans_b {trans_b} point {p}"
                    );
                }
            }
        }
    }
}
