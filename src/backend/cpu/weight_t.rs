//! `C = A · Wᵀ` for a weight stored `[out, in]` (a linear layer's forward): each output is the
//! dot product of an activation row and a weight row, summed in 16 lanes (AVX-512) or 8
//! (AVX2) along the row and reduced once at the end.
//!
//! The weight rows are read in the file's format and decoded in registers, a block of 32
//! values at a time (`gguf::decode_simd`), two weight rows against up to 12 (AVX-512) or 8
//! (AVX2) activation rows, so each decoded value feeds that many FMAs and each loaded
//! activation two. Above `FUSED_ROWS` activation
//! rows a stored tile of 64 weight rows is decoded once into a cache-sized buffer instead (the
//! decode would otherwise repeat per block of rows). Both give the same bits: a value is the
//! same whether decoded in registers or in a buffer, and every output is summed in the same
//! lanes in the same order whichever block it falls in, so a row's result depends neither on
//! the other rows in the product (the batch size) nor on the weight's format (a stored matrix
//! gives exactly its f32 decode's products).
//!
//! A packed GEMM spends its time packing at few rows (the `gemm` crate took 2–20× longer on
//! SmolLM2's layers at 2–60 rows). Compiled for AVX-512 or AVX2+FMA with run-time dispatch
//! (the crate's target is x86-64); the portable loop is the fallback.

#[cfg(target_arch = "x86_64")]
use super::simd::reduce4_avx512;
use super::simd::{with_rows, Decode, Kernel, Out};
use super::weight_rows::WeightRows;
use crate::error::Result;
use crate::gguf::decode_simd::{each, Format, StoredRows};
use crate::gguf::GgmlType;
use crate::with_format;
use rayon::prelude::*;

/// From this many activation rows on, a packed GEMM (`sgemm`; measured with the `gemm` crate it
/// replaced) is as fast or faster for f32 weights: on MiniLM's layers (k = 384) at 250 rows it
/// took 5.2 ms per layer against the dot kernels' 6.4, at 60 rows 2.2 against 1.5. On
/// SmolLM2's MLP at 64 rows `sgemm` takes 1.2 ms against these kernels' 0.6.
pub const GEMM_FROM_ROWS: usize = 128;

/// Weight rows per parallel task.
const TILE: usize = 64;

/// Above this many activation rows a stored tile is decoded once into a buffer rather than in
/// registers for every block of 12 (AVX2: 8) rows.
const FUSED_ROWS: usize = 24;

/// `C[m, n] = A[m, k] · Wᵀ` with `W: [n, k]`, f32 or stored.
pub fn a_times_wt(a: &[f32], w: WeightRows, m: usize, n: usize, k: usize) -> Result<Vec<f32>> {
    product(a, w.stored_rows(k), m, n, k, Kernel::best(), Decode::Auto)
}

pub(super) fn product(
    a: &[f32],
    w: StoredRows,
    m: usize,
    n: usize,
    k: usize,
    kernel: Kernel,
    decode: Decode,
) -> Result<Vec<f32>> {
    assert!(
        a.len() == m * k && w.rows == n && w.cols == k,
        "a_times_wt: operand sizes"
    );
    let mut c = super::zeros(m * n, "a linear layer's output")?;
    let out = Out(c.as_mut_ptr());
    let decode_tiles = w.format != GgmlType::F32
        && match decode {
            Decode::Auto => m > FUSED_ROWS,
            Decode::Registers => false,
            Decode::Tiles => true,
        };
    let tile_rows = if decode_tiles {
        // A decoded tile stays in L2: 64 rows of up to 1024 values, fewer for longer rows.
        ((256 << 10) / (4 * k.max(1))).clamp(2, TILE)
    } else {
        TILE
    };
    (0..n.div_ceil(tile_rows)).into_par_iter().for_each(|t| {
        let rows = t * tile_rows..((t + 1) * tile_rows).min(n);
        if decode_tiles {
            DECODED.with_borrow_mut(|buf| {
                buf.resize(rows.len() * k, 0.0);
                w.decode_into(rows.start, buf);
                let decoded = StoredRows::f32(buf, k);
                // SAFETY: this task writes only columns `rows` of `c` (m × n), through
                // `out` offset to the tile's first column.
                unsafe {
                    tile(
                        a.as_ptr(),
                        m,
                        decoded,
                        0..rows.len(),
                        k,
                        out.offset(rows.start),
                        n,
                        kernel,
                    )
                }
            })
        } else {
            // SAFETY: as above; the tile's weight rows are rows `rows` of `w`.
            unsafe { tile(a.as_ptr(), m, w, rows, k, out, n, kernel) }
        }
    });
    Ok(c)
}

thread_local! {
    /// Each thread's buffer for decoded tiles, reused from product to product (a fresh one
    /// would be zeroed every time).
    static DECODED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `out[i·n + j] = a_i · w_j` for the `m` rows of `a` (length `k`) and the weight rows
/// `rows` of `w`, on the calling thread.
///
/// # Safety
/// `a` holds `m × k` values; `out` is valid for `(i, j)` at `i·n + j` for `i < m` and every
/// `j` in `rows`.
#[allow(clippy::too_many_arguments)]
unsafe fn tile(
    a: *const f32,
    m: usize,
    w: StoredRows,
    rows: std::ops::Range<usize>,
    k: usize,
    out: Out,
    n: usize,
    kernel: Kernel,
) {
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => with_format!(w.format, F => tile_avx512::<F>(a, m, w, rows, k, out, n)),
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => with_format!(w.format, F => tile_avx2::<F>(a, m, w, rows, k, out, n)),
        _ => tile_portable(a, m, w, rows, k, out, n),
    }
}

/// The portable kernel: each weight row decoded by the scalar decoder, then plain dot products.
unsafe fn tile_portable(
    a: *const f32,
    m: usize,
    w: StoredRows,
    rows: std::ops::Range<usize>,
    k: usize,
    out: Out,
    n: usize,
) {
    let a = std::slice::from_raw_parts(a, m * k);
    let mut row = vec![0.0f32; k];
    for j in rows {
        w.decode_into(j, &mut row);
        for i in 0..m {
            *out.at(i * n + j) = dot_portable(&a[i * k..(i + 1) * k], &row);
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

/// Up to 12 activation rows against two weight rows at a time: 24 accumulators, and each
/// loaded activation vector feeds two FMAs (this kind of CPU loads about one 64-byte vector a
/// cycle but runs two FMAs). A lone last weight row is paired with itself and its twin's
/// result dropped.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,f16c,fma")]
unsafe fn tile_avx512<F: Format>(
    a: *const f32,
    m: usize,
    w: StoredRows,
    rows: std::ops::Range<usize>,
    k: usize,
    out: Out,
    n: usize,
) {
    if F::FORMAT == GgmlType::F32 {
        return dense_avx512(a, m, w, rows, k, out, n);
    }
    for i in (0..m).step_by(12) {
        let args = (a, w, rows.clone(), i, k, out, n);
        with_rows!((m - i).min(12), [1 2 3 4 5 6 7 8 9 10 11 12], |R| rows_avx512::<F, R>(args))
    }
}

/// A block's operands: activations, the weight rows and which of them, the first activation
/// row, `k`, the output and its row length `n`.
type BlockArgs<'a> = (
    *const f32,
    StoredRows<'a>,
    std::ops::Range<usize>,
    usize,
    usize,
    Out,
    usize,
);

/// Activation rows `i..i+R` against the tile's weight rows, two at a time: blocks of 32
/// values, then (float formats only) a whole chunk of 16 and a partial one.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn rows_avx512<F: Format, const R: usize>((a, w, rows, i, k, out, n): BlockArgs) {
    use crate::gguf::decode_simd::avx512::{pair, partial, sixteen};
    use std::arch::x86_64::*;
    let a = a.add(i * k);
    let (units, rest) = (k / 32, k % 32);
    for j in rows.clone().step_by(2) {
        let twin = j + 1 < rows.end;
        let ws = [w.row(j), w.row(if twin { j + 1 } else { j })];
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        for u in 0..units {
            let wv = [pair::<F>(ws[0], u), pair::<F>(ws[1], u)];
            for (r, sums) in acc.iter_mut().enumerate() {
                let p = a.add(r * k + 32 * u);
                for half in 0..2 {
                    let av = _mm512_loadu_ps(p.add(16 * half));
                    sums[0] = _mm512_fmadd_ps(av, wv[0][half], sums[0]);
                    sums[1] = _mm512_fmadd_ps(av, wv[1][half], sums[1]);
                }
            }
        }
        let mut h = 2 * units;
        if rest >= 16 {
            let wv = [sixteen::<F>(ws[0], h), sixteen::<F>(ws[1], h)];
            for (r, sums) in acc.iter_mut().enumerate() {
                let av = _mm512_loadu_ps(a.add(r * k + 16 * h));
                sums[0] = _mm512_fmadd_ps(av, wv[0], sums[0]);
                sums[1] = _mm512_fmadd_ps(av, wv[1], sums[1]);
            }
            h += 1;
        }
        if rest % 16 > 0 {
            let live = rest % 16;
            let mask = ((1u32 << live) - 1) as __mmask16;
            let wv = [partial::<F>(ws[0], h, live), partial::<F>(ws[1], h, live)];
            for (r, sums) in acc.iter_mut().enumerate() {
                let av = _mm512_maskz_loadu_ps(mask, a.add(r * k + 16 * h));
                sums[0] = _mm512_fmadd_ps(av, wv[0], sums[0]);
                sums[1] = _mm512_fmadd_ps(av, wv[1], sums[1]);
            }
        }
        // Two rows' two sums at a time.
        for r in (0..R).step_by(2) {
            let next = if r + 1 < R {
                acc[r + 1]
            } else {
                [_mm512_setzero_ps(); 2]
            };
            let mut sums = [0f32; 4];
            _mm_storeu_ps(
                sums.as_mut_ptr(),
                reduce4_avx512([acc[r][0], acc[r][1], next[0], next[1]]),
            );
            for (dr, pair) in sums.chunks_exact(2).enumerate().take(R - r) {
                *out.at((i + r + dr) * n + j) = pair[0];
                if twin {
                    *out.at((i + r + dr) * n + j + 1) = pair[1];
                }
            }
        }
    }
}

/// f32 weight rows (an f32 matrix, or a decoded tile): up to 6 activation rows against 4
/// weight rows at a time, chunk by chunk, so that 10 loaded vectors feed 24 FMAs (the decoded
/// formats keep two weight rows, whose decode would not leave the registers for four).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,f16c,fma")]
unsafe fn dense_avx512(
    a: *const f32,
    m: usize,
    w: StoredRows,
    rows: std::ops::Range<usize>,
    k: usize,
    out: Out,
    n: usize,
) {
    for i in (0..m).step_by(6) {
        let args = (a, w, rows.clone(), i, k, out, n);
        with_rows!((m - i).min(6), [1 2 3 4 5 6], |R| dense_rows_avx512::<R>(args))
    }
}

/// Activation rows `i..i+R` against the f32 rows of the tile, four at a time (the last
/// group's missing rows repeat its first, their results dropped).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn dense_rows_avx512<const R: usize>((a, w, rows, i, k, out, n): BlockArgs) {
    use std::arch::x86_64::*;
    let a = a.add(i * k);
    let (full, rest) = (k / 16, k % 16);
    let mask = ((1u32 << rest) - 1) as __mmask16;
    for j in rows.clone().step_by(4) {
        let live = (rows.end - j).min(4);
        let ws: [*const f32; 4] =
            std::array::from_fn(|q| w.row(if q < live { j + q } else { j }) as *const f32);
        let mut acc = [[_mm512_setzero_ps(); 4]; R];
        for h in 0..full {
            let wv = each!([ws[0], ws[1], ws[2], ws[3]], |w| _mm512_loadu_ps(
                w.add(16 * h)
            ));
            for (r, sums) in acc.iter_mut().enumerate() {
                let av = _mm512_loadu_ps(a.add(r * k + 16 * h));
                for (sum, wv) in sums.iter_mut().zip(&wv) {
                    *sum = _mm512_fmadd_ps(av, *wv, *sum);
                }
            }
        }
        if rest > 0 {
            let wv = each!([ws[0], ws[1], ws[2], ws[3]], |w| {
                _mm512_maskz_loadu_ps(mask, w.add(16 * full))
            });
            for (r, sums) in acc.iter_mut().enumerate() {
                let av = _mm512_maskz_loadu_ps(mask, a.add(r * k + 16 * full));
                for (sum, wv) in sums.iter_mut().zip(&wv) {
                    *sum = _mm512_fmadd_ps(av, *wv, *sum);
                }
            }
        }
        for (r, sums) in acc.iter().enumerate() {
            let dst = out.at((i + r) * n + j);
            let four = reduce4_avx512(*sums);
            if live == 4 {
                _mm_storeu_ps(dst, four);
            } else {
                let mut v = [0f32; 4];
                _mm_storeu_ps(v.as_mut_ptr(), four);
                std::ptr::copy_nonoverlapping(v.as_ptr(), dst, live);
            }
        }
    }
}

/// Up to 8 activation rows against one weight row at a time: 8 accumulators, 4 decoded
/// vectors and an activation vector of the 16 registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c,fma")]
unsafe fn tile_avx2<F: Format>(
    a: *const f32,
    m: usize,
    w: StoredRows,
    rows: std::ops::Range<usize>,
    k: usize,
    out: Out,
    n: usize,
) {
    for i in (0..m).step_by(8) {
        let args = (a, w, rows.clone(), i, k, out, n);
        with_rows!((m - i).min(8), [1 2 3 4 5 6 7 8], |R| rows_avx2::<F, R>(args))
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn rows_avx2<F: Format, const R: usize>((a, w, rows, i, k, out, n): BlockArgs) {
    use crate::gguf::decode_simd::avx2::{pair, partial, sixteen};
    use std::arch::x86_64::*;
    let a = a.add(i * k);
    let (units, rest) = (k / 32, k % 32);
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let reduce = |s: __m256| {
        let s = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps::<1>(s));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps::<1>(s, s)))
    };
    for j in rows {
        let row = w.row(j);
        let mut acc = [_mm256_setzero_ps(); R];
        for u in 0..units {
            let wv = pair::<F>(row, u);
            for (r, sum) in acc.iter_mut().enumerate() {
                let p = a.add(r * k + 32 * u);
                for (q, wv) in wv.iter().enumerate() {
                    *sum = _mm256_fmadd_ps(_mm256_loadu_ps(p.add(8 * q)), *wv, *sum);
                }
            }
        }
        let mut h = 2 * units;
        if rest >= 16 {
            let wv = sixteen::<F>(row, h);
            for (r, sum) in acc.iter_mut().enumerate() {
                let p = a.add(r * k + 16 * h);
                for (q, wv) in wv.iter().enumerate() {
                    *sum = _mm256_fmadd_ps(_mm256_loadu_ps(p.add(8 * q)), *wv, *sum);
                }
            }
            h += 1;
        }
        if rest % 16 > 0 {
            let live = (rest % 16) as i32;
            let masks = each!([0, 8], |from| _mm256_cmpgt_epi32(
                _mm256_set1_epi32(live - from),
                lanes
            ));
            let wv = partial::<F>(row, h, rest % 16);
            for (r, sum) in acc.iter_mut().enumerate() {
                let p = a.add(r * k + 16 * h);
                for (q, wv) in wv.iter().enumerate() {
                    let av = _mm256_maskload_ps(p.add(8 * q), masks[q]);
                    *sum = _mm256_fmadd_ps(av, *wv, *sum);
                }
            }
        }
        for (r, sum) in acc.iter().enumerate() {
            *out.at((i + r) * n + j) = reduce(*sum);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's output (its only error is an allocation that fails).
    fn product(
        x: &[f32],
        w: StoredRows,
        m: usize,
        n: usize,
        k: usize,
        kernel: Kernel,
        decode: Decode,
    ) -> Vec<f32> {
        super::product(x, w, m, n, k, kernel, decode).unwrap()
    }

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

    fn f32_rows(w: &[f32], k: usize) -> StoredRows<'_> {
        StoredRows::f32(w, k)
    }

    /// A row's result must not depend on which rows come with it (the batch size decides that),
    /// so every kernel sums each output in one order whatever block it lands in: the rows of a
    /// product, bit for bit, equal the same rows computed alone or in any other grouping.
    #[test]
    fn each_row_is_computed_the_same_whatever_rows_come_with_it() {
        for (m, n, k) in [
            (13, 67, 19),
            (9, 10, 70),
            (6, 130, 129),
            (5, 7, 8),
            (21, 9, 33),
        ] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7 % 13) as f32 - 6.1) / 7.3)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 5 % 11) as f32 - 5.3) / 5.7)
                .collect();
            for kernel in Kernel::available() {
                let all = product(&a, f32_rows(&w, k), m, n, k, kernel, Decode::Auto);
                for split in [1, 2, 3, 5] {
                    for start in (0..m).step_by(split) {
                        let rows = split.min(m - start);
                        let part = product(
                            &a[start * k..(start + rows) * k],
                            f32_rows(&w, k),
                            rows,
                            n,
                            k,
                            kernel,
                            Decode::Auto,
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

    /// Every block shape and tail: rows and weight rows that are not multiples of the blocks,
    /// `k` below, at and across the 16-value chunks, more columns than one task.
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
                let got = product(&a, f32_rows(&w, k), m, n, k, kernel, Decode::Auto);
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
