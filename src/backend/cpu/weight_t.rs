//! `C = A · Wᵀ` for a weight stored `[out, in]` (a linear layer's forward, up to
//! `GEMM_FROM_ROWS` rows): each output is a dot product of two contiguous rows. The `gemm`
//! crate packs a transposed right operand slowly (gathering columns): on SmolLM2's layers at
//! 2–60 rows it took 2–20× longer than these kernels, which read each weight row once and keep
//! it in cache while the activation rows pass by. (The backward `G · W` reads `W` in its
//! stored layout, where `gemm` is fast.)
//! Compiled for AVX-512 or AVX2+FMA with run-time dispatch (the crate's target is x86-64).

use super::simd::{blocks, Kernel};
use super::weight_rows::WeightRows;
use rayon::prelude::*;

/// From this many activation rows on, `gemm` is as fast or faster (two concurrent products on
/// 2 cores): on MiniLM's layers (k = 384) at 250 rows it took 5.2 ms per layer against these
/// kernels' 6.4, at 60 rows 2.2 against 1.5; on SmolLM2's they tie at 160 and 320 rows.
pub const GEMM_FROM_ROWS: usize = 128;

/// Output columns (weight rows) per parallel task.
const COLS: usize = 64;

/// `C[m, n] = A[m, k] · Wᵀ` with `W: [n, k]`, f32 or stored (decoded `COLS` rows at a time,
/// into the same kernel, so a stored matrix gives the bits of its f32 decode).
pub fn a_times_wt(a: &[f32], w: WeightRows, m: usize, n: usize, k: usize) -> Vec<f32> {
    product(a, w, m, n, k, Kernel::best())
}

fn product(a: &[f32], w: WeightRows, m: usize, n: usize, k: usize, kernel: Kernel) -> Vec<f32> {
    let mut ct = vec![0.0f32; n * m]; // transposed: one row of m outputs per weight row
    ct.par_chunks_mut(COLS * m)
        .enumerate()
        .for_each(|(blk, out)| {
            let rows = out.len() / m;
            let mut buf = Vec::new();
            let w = w.rows(blk * COLS, rows, k, &mut buf);
            dots_with(a, w, m, k, out, kernel);
        });
    let mut c = vec![0.0f32; m * n];
    for j in 0..n {
        for i in 0..m {
            c[i * n + j] = ct[j * m + i];
        }
    }
    c
}

/// `out[j·m + i] = a_i · w_j` for the `m` rows of `a` and every row of `w` (all of length
/// `k`), on the calling thread. With `a` as keys and `w` as queries this is a row-major block
/// of attention scores.
pub fn dots(a: &[f32], w: &[f32], m: usize, k: usize, out: &mut [f32]) {
    dots_with(a, w, m, k, out, Kernel::best())
}

fn dots_with(a: &[f32], w: &[f32], m: usize, k: usize, out: &mut [f32], kernel: Kernel) {
    assert!(
        a.len() >= m * k && out.len() * k == w.len() * m,
        "dots: operand sizes"
    );
    match kernel {
        // SAFETY: `available` detected the features at run time; the kernels stay inside the
        // slices, whose sizes the assertion checked.
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => unsafe { dots_avx512(a, w, m, k, out) },
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => unsafe { dots_avx2(a, w, m, k, out) },
        _ => {
            for (j, o) in out.chunks_mut(m).enumerate() {
                for (i, o) in o.iter_mut().enumerate() {
                    *o = dot_portable(&a[i * k..(i + 1) * k], &w[j * k..(j + 1) * k]);
                }
            }
        }
    }
}

/// `out[j·m + i] = a_i · w_j` in blocks of 4 rows of `a` by 4 rows of `w`: 16 independent
/// accumulators, each loaded vector feeding 4 FMAs. Row and column remainders take the 1×4,
/// 4×1 and 1×1 shapes of the same kernel; the `k` tail is a masked load.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dots_avx512(a: &[f32], w: &[f32], m: usize, k: usize, out: &mut [f32]) {
    let (ap, wp, op) = (a.as_ptr(), w.as_ptr(), out.as_mut_ptr());
    for (j, wide) in blocks(w.len() / k, 4) {
        for (i, tall) in blocks(m, 4) {
            match (tall, wide) {
                (true, true) => block_avx512::<4, 4>(ap, wp, op, i, j, m, k),
                (true, false) => block_avx512::<4, 1>(ap, wp, op, i, j, m, k),
                (false, true) => block_avx512::<1, 4>(ap, wp, op, i, j, m, k),
                (false, false) => block_avx512::<1, 1>(ap, wp, op, i, j, m, k),
            }
        }
    }
}

/// Rows `i..i+R` of `a` against rows `j..j+Q` of `w`, written to `out[(j+q)·m + i+r]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn block_avx512<const R: usize, const Q: usize>(
    a: *const f32,
    w: *const f32,
    out: *mut f32,
    i: usize,
    j: usize,
    m: usize,
    k: usize,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); Q]; R];
    let mut c = 0;
    while c < k {
        // All 16 lanes but in the last chunk of a row; a masked load costs no more.
        let mask: __mmask16 = if k - c >= 16 {
            u16::MAX
        } else {
            (1u16 << (k - c)) - 1
        };
        let mut wv = [_mm512_setzero_ps(); Q];
        for (q, v) in wv.iter_mut().enumerate() {
            *v = _mm512_maskz_loadu_ps(mask, w.add((j + q) * k + c));
        }
        for (r, row) in acc.iter_mut().enumerate() {
            let av = _mm512_maskz_loadu_ps(mask, a.add((i + r) * k + c));
            for (sum, v) in row.iter_mut().zip(&wv) {
                *sum = _mm512_fmadd_ps(av, *v, *sum);
            }
        }
        c += 16;
    }
    for (r, row) in acc.iter().enumerate() {
        for (q, sum) in row.iter().enumerate() {
            *out.add((j + q) * m + i + r) = _mm512_reduce_add_ps(*sum);
        }
    }
}

/// The AVX2 version: blocks of 4 rows of `a` by 3 rows of `w` with 12 accumulators (a lone
/// dot product keeps 2 chains and waits on the FMA latency); the edges take the 1×3, 4×1 and
/// 1×1 shapes of the same kernel, so every output is summed in the same order whichever block
/// it falls in. (It once finished edge rows with `dot_portable`, whose order differs: a row's
/// value then depended on how many rows came with it, and so on the batch size.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dots_avx2(a: &[f32], w: &[f32], m: usize, k: usize, out: &mut [f32]) {
    let (ap, wp, op) = (a.as_ptr(), w.as_ptr(), out.as_mut_ptr());
    for (j, wide) in blocks(w.len() / k, 3) {
        for (i, tall) in blocks(m, 4) {
            match (tall, wide) {
                (true, true) => block_avx2::<4, 3>(ap, wp, op, i, j, m, k),
                (true, false) => block_avx2::<4, 1>(ap, wp, op, i, j, m, k),
                (false, true) => block_avx2::<1, 3>(ap, wp, op, i, j, m, k),
                (false, false) => block_avx2::<1, 1>(ap, wp, op, i, j, m, k),
            }
        }
    }
}

/// Rows `i..i+R` of `a` against rows `j..j+Q` of `w`, written to `out[(j+q)·m + i+r]`; the `k`
/// tail is a masked load into the same 8 lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn block_avx2<const R: usize, const Q: usize>(
    a: *const f32,
    w: *const f32,
    out: *mut f32,
    i: usize,
    j: usize,
    m: usize,
    k: usize,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_ps(); Q]; R];
    let mut c = 0;
    while c < k {
        let live = (k - c).min(8) as i32;
        let mask = _mm256_cmpgt_epi32(
            _mm256_set1_epi32(live),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        );
        let mut wv = [_mm256_setzero_ps(); Q];
        for (q, v) in wv.iter_mut().enumerate() {
            *v = _mm256_maskload_ps(w.add((j + q) * k + c), mask);
        }
        for (r, row) in acc.iter_mut().enumerate() {
            let av = _mm256_maskload_ps(a.add((i + r) * k + c), mask);
            for (sum, v) in row.iter_mut().zip(&wv) {
                *sum = _mm256_fmadd_ps(av, *v, *sum);
            }
        }
        c += 8;
    }
    for (r, row) in acc.iter().enumerate() {
        for (q, sum) in row.iter().enumerate() {
            let s = _mm_add_ps(
                _mm256_castps256_ps128(*sum),
                _mm256_extractf128_ps::<1>(*sum),
            );
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            *out.add((j + q) * m + i + r) = _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps::<1>(s, s)));
        }
    }
}

/// Sixteen independent accumulators let the compiler keep two vector registers of partial sums.
#[inline(always)]
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..16 {
            acc[l] = x[l].mul_add(y[l], acc[l]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|p| a[i * k + p] as f64 * w[j * k + p] as f64)
                    .sum::<f64>() as f32;
            }
        }
        c
    }

    /// A row's result must not depend on which rows come with it (the batch size decides that),
    /// so every kernel sums each output in one order whatever block it lands in: the rows of a
    /// product, bit for bit, equal the same rows computed alone or in any other grouping.
    #[test]
    fn each_row_is_computed_the_same_whatever_rows_come_with_it() {
        for (m, n, k) in [(13, 67, 19), (9, 10, 70), (6, 130, 129), (5, 7, 8)] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7 % 13) as f32 - 6.1) / 7.3)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 5 % 11) as f32 - 5.3) / 5.7)
                .collect();
            for kernel in Kernel::available() {
                let all = product(&a, WeightRows::F32(&w), m, n, k, kernel);
                for split in [1, 2, 3, 5] {
                    for start in (0..m).step_by(split) {
                        let rows = split.min(m - start);
                        let part = product(
                            &a[start * k..(start + rows) * k],
                            WeightRows::F32(&w),
                            rows,
                            n,
                            k,
                            kernel,
                        );
                        assert_eq!(
                            part[..],
                            all[start * n..(start + rows) * n],
                            "{kernel:?} {m}x{n}x{k}: rows {start}..{} alone",
                            start + rows
                        );
                    }
                }
            }
        }
    }

    /// Every block shape and tail: rows and weight rows that are not multiples of 4 (or 3),
    /// `k` below, at and across the 16- and 8-wide vectors, more columns than one task.
    #[test]
    fn kernel_matches_a_naive_product_on_awkward_shapes() {
        for (m, n, k) in [
            (1, 1, 1),
            (3, 67, 19),
            (12, 300, 33),
            (18, 130, 70),
            (32, 257, 129),
            (7, 5, 16),
            (45, 131, 200),
        ] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0)
                .collect();
            let want = naive(&a, &w, m, n, k);
            for kernel in Kernel::available() {
                let got = product(&a, WeightRows::F32(&w), m, n, k, kernel);
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() < 1e-4 * (1.0 + w.abs()),
                        "{kernel:?} {m}x{n}x{k}: {g} vs {w}"
                    );
                }
            }
        }
    }
}
