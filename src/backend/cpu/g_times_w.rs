//! `C = G · W` for a weight stored `[n, k]` (a linear layer's input gradient, `G: [m, n]`):
//! each output `C[i, c] = Σ_j G[i, j] W[j, c]` is one fused multiply-add chain over `j` in
//! order. So a row's value depends neither on the other rows in the product (the batch size)
//! nor on the instruction set or the weight's format: AVX-512, AVX2 and the portable loop,
//! decoding in registers or from a decoded buffer, give the same bits.
//!
//! Column panels of `W` (32 values on AVX-512, 16 on AVX2: one or two registers' worth of a
//! row, decoded in registers by `gguf::decode_simd`; 64 values of f32 rows on AVX-512) are
//! the parallel tasks. Inside a panel, blocks of up to 12 (AVX2 and f32 rows: 6) rows of `G`
//! share each decoded weight vector, so a prompt of up to 12 tokens decodes each weight once
//! per pass. The rows of `W` are taken in tiles of about
//! half a megabyte, which stay in L2 while every panel passes over them; each output's chain
//! continues from tile to tile through `C`. Above `FUSED_ROWS` rows of `G` a stored tile is
//! decoded once into a buffer instead.

use super::simd::{with_rows, Decode, Kernel, Out};
use super::weight_rows::WeightRows;
use crate::error::Result;
use crate::gguf::decode_simd::{each, Format, StoredRows};
use crate::gguf::GgmlType;
use crate::with_format;
use rayon::prelude::*;

/// Above this many rows of `G` a stored tile is decoded once into a buffer rather than in
/// registers for every block of 12 (6) rows.
const FUSED_ROWS: usize = 24;

/// Bytes of `W`'s rows (as stored, or decoded) per tile.
const TILE_BYTES: usize = 1 << 19;

/// `C[m, k] = G[m, n] · W[n, k]`, `W` f32 or stored.
pub fn g_times_w(g: &[f32], w: WeightRows, m: usize, n: usize, k: usize) -> Result<Vec<f32>> {
    product(g, w.stored_rows(k), m, n, k, Kernel::best(), Decode::Auto)
}

/// The columns of `W` each panel task covers.
fn panel_width(kernel: Kernel, format: GgmlType) -> usize {
    match kernel {
        // f32 rows: four vectors a row against 6 rows of `G` (4 loads and 6 broadcasts feed
        // 24 FMAs); decoded rows: two, against 12.
        Kernel::Avx512 if format == GgmlType::F32 => 64,
        Kernel::Avx512 => 32,
        Kernel::Avx2 => 16,
        // The portable loop takes whole rows.
        Kernel::Portable => usize::MAX,
    }
}

thread_local! {
    /// The calling thread's buffer for decoded tiles, reused from product to product.
    static DECODED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

pub(super) fn product(
    g: &[f32],
    w: StoredRows,
    m: usize,
    n: usize,
    k: usize,
    kernel: Kernel,
    decode: Decode,
) -> Result<Vec<f32>> {
    assert!(
        g.len() == m * n && w.rows == n && w.cols == k,
        "g_times_w: operand sizes"
    );
    let mut out = super::zeros(m * k, "a linear layer's input gradient")?;
    if m * n * k == 0 {
        return Ok(out);
    }
    let fused = w.format == GgmlType::F32
        || match decode {
            Decode::Auto => m <= FUSED_ROWS,
            Decode::Registers => true,
            Decode::Tiles => false,
        };
    let row_bytes = if fused { w.row_bytes() } else { 4 * k };
    let tile = (TILE_BYTES / row_bytes.max(1)).clamp(1, n);
    let read_as = if fused { w.format } else { GgmlType::F32 };
    let width = panel_width(kernel, read_as).min(k);
    let panels = k.div_ceil(width);
    let parallel =
        rayon::current_thread_index().is_none() && panels > 1 && m * n * k >= super::PAR_MIN * 16;
    let dst = Out(out.as_mut_ptr());
    DECODED.with_borrow_mut(|buf| {
        for j0 in (0..n).step_by(tile) {
            let t = tile.min(n - j0);
            // The tile's rows: `src` rows `first..first + t`.
            let (src, first) = if fused {
                (w, j0)
            } else {
                buf.resize(t * k, 0.0);
                let per_task = (t / rayon::current_num_threads().max(1)).max(1);
                buf.par_chunks_mut(per_task * k)
                    .enumerate()
                    .for_each(|(c, rows)| w.decode_into(j0 + c * per_task, rows));
                (StoredRows::f32(buf, k), 0)
            };
            let run = |p: usize| {
                let cols = p * width..((p + 1) * width).min(k);
                // SAFETY: panel `p` reads and writes only columns `cols` of each row of
                // `out` (m × k), which no other panel touches; `src` holds rows
                // first..first + t and `g` is m × n.
                unsafe { panel(g.as_ptr(), src, first, j0, t, m, n, k, cols, dst, kernel) }
            };
            if parallel {
                (0..panels).into_par_iter().for_each(run);
            } else {
                (0..panels).for_each(run);
            }
        }
    });
    Ok(out)
}

/// Columns `cols` of every row of `C += G[:, j0..j0+t] · W[first..first+t, :]`.
#[allow(clippy::too_many_arguments)]
unsafe fn panel(
    g: *const f32,
    w: StoredRows,
    first: usize,
    j0: usize,
    t: usize,
    m: usize,
    n: usize,
    k: usize,
    cols: std::ops::Range<usize>,
    out: Out,
    kernel: Kernel,
) {
    let tile = Tile {
        g,
        w,
        first,
        j0,
        t,
        n,
        k,
        c: cols.start,
        width: cols.len(),
        out,
    };
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => with_format!(w.format, F => panel_avx512::<F>(tile, m)),
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => with_format!(w.format, F => panel_avx2::<F>(tile, m)),
        _ => portable(tile, m),
    }
}

/// What a row block of a panel works on.
#[derive(Clone, Copy)]
struct Tile<'a> {
    g: *const f32,
    w: StoredRows<'a>,
    /// `w`'s row for the tile's first row of `W`.
    first: usize,
    /// `G`'s column for the tile's first row of `W`.
    j0: usize,
    /// Rows in the tile.
    t: usize,
    /// `G`'s row length.
    n: usize,
    /// `C`'s (and `W`'s) row length.
    k: usize,
    /// The panel's first column and its width.
    c: usize,
    width: usize,
    out: Out,
}

/// The portable chain: the same order, each weight row decoded once by the scalar decoder.
unsafe fn portable(p: Tile, m: usize) {
    let mut row = vec![0.0f32; p.k];
    for jj in 0..p.t {
        p.w.decode_into(p.first + jj, &mut row);
        for i in 0..m {
            let gv = *p.g.add(i * p.n + p.j0 + jj);
            for c in p.c..p.c + p.width {
                let o = p.out.at(i * p.k + c);
                *o = gv.mul_add(row[c], *o);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,f16c,fma")]
unsafe fn panel_avx512<F: Format>(p: Tile, m: usize) {
    if F::FORMAT == GgmlType::F32 {
        for i in (0..m).step_by(6) {
            with_rows!((m - i).min(6), [1 2 3 4 5 6], |R| dense_rows_avx512::<R>(p, i))
        }
        return;
    }
    for i in (0..m).step_by(12) {
        with_rows!((m - i).min(12), [1 2 3 4 5 6 7 8 9 10 11 12], |R| rows_avx512::<F, R>(p, i))
    }
}

/// Rows `i..i+R` of `C`, the panel's columns (two 16-lane vectors, masked past `width`),
/// continued over the tile's rows of `W`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn rows_avx512<F: Format, const R: usize>(p: Tile, i: usize) {
    use crate::gguf::decode_simd::avx512::{pair, partial, sixteen};
    use std::arch::x86_64::*;
    let masks: [__mmask16; 2] = std::array::from_fn(|v| {
        let live = p.width.saturating_sub(v * 16).min(16);
        ((1u32 << live) - 1) as u16
    });
    let mut acc: [[__m512; 2]; R] = std::array::from_fn(|r| {
        let src = p.out.at((i + r) * p.k + p.c);
        std::array::from_fn(|v| _mm512_maskz_loadu_ps(masks[v], src.add(v * 16)))
    });
    let h = p.c / 16;
    // (No closure for the broadcast: one would be compiled without AVX-512 and not inlined.)
    let g_at = p.g.add(i * p.n + p.j0);
    if p.width == 32 {
        for jj in 0..p.t {
            let row = p.w.row(p.first + jj);
            let wv = pair::<F>(row, h / 2);
            for (r, sums) in acc.iter_mut().enumerate() {
                let gv = _mm512_set1_ps(*g_at.add(r * p.n + jj));
                sums[0] = _mm512_fmadd_ps(gv, wv[0], sums[0]);
                sums[1] = _mm512_fmadd_ps(gv, wv[1], sums[1]);
            }
        }
    } else {
        // The last panel of a float-format row whose length is not a multiple of 32.
        for jj in 0..p.t {
            let row = p.w.row(p.first + jj);
            let wv = [
                if p.width >= 16 {
                    sixteen::<F>(row, h)
                } else {
                    partial::<F>(row, h, p.width)
                },
                if p.width > 16 {
                    partial::<F>(row, h + 1, p.width - 16)
                } else {
                    _mm512_setzero_ps()
                },
            ];
            for (r, sums) in acc.iter_mut().enumerate() {
                let gv = _mm512_set1_ps(*g_at.add(r * p.n + jj));
                sums[0] = _mm512_fmadd_ps(gv, wv[0], sums[0]);
                sums[1] = _mm512_fmadd_ps(gv, wv[1], sums[1]);
            }
        }
    }
    for (r, sums) in acc.iter().enumerate() {
        let dst = p.out.at((i + r) * p.k + p.c);
        for (v, sum) in sums.iter().enumerate() {
            _mm512_mask_storeu_ps(dst.add(v * 16), masks[v], *sum);
        }
    }
}

/// Rows `i..i+R` of `C`, the panel's columns (four 16-lane vectors of f32 weights, masked past
/// `width`), continued over the tile's rows of `W`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn dense_rows_avx512<const R: usize>(p: Tile, i: usize) {
    use std::arch::x86_64::*;
    let masks: [__mmask16; 4] = std::array::from_fn(|v| {
        let live = p.width.saturating_sub(v * 16).min(16);
        ((1u32 << live) - 1) as u16
    });
    let mut acc: [[__m512; 4]; R] = std::array::from_fn(|r| {
        let src = p.out.at((i + r) * p.k + p.c);
        std::array::from_fn(|v| _mm512_maskz_loadu_ps(masks[v], src.add(v * 16)))
    });
    for jj in 0..p.t {
        let row = (p.w.row(p.first + jj) as *const f32).add(p.c);
        let wv = each!([0, 1, 2, 3], |v| _mm512_maskz_loadu_ps(
            masks[v],
            row.add(v * 16)
        ));
        for (r, sums) in acc.iter_mut().enumerate() {
            let gv = _mm512_set1_ps(*p.g.add((i + r) * p.n + p.j0 + jj));
            for (sum, wv) in sums.iter_mut().zip(&wv) {
                *sum = _mm512_fmadd_ps(gv, *wv, *sum);
            }
        }
    }
    for (r, sums) in acc.iter().enumerate() {
        let dst = p.out.at((i + r) * p.k + p.c);
        for (v, sum) in sums.iter().enumerate() {
            _mm512_mask_storeu_ps(dst.add(v * 16), masks[v], *sum);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c,fma")]
unsafe fn panel_avx2<F: Format>(p: Tile, m: usize) {
    for i in (0..m).step_by(6) {
        with_rows!((m - i).min(6), [1 2 3 4 5 6], |R| rows_avx2::<F, R>(p, i))
    }
}

/// Rows `i..i+R` of `C`, the panel's 16 columns (two 8-lane vectors, masked past `width`),
/// continued over the tile's rows of `W`: 12 accumulators, 2 decoded vectors and a broadcast
/// of the 16 registers.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn rows_avx2<F: Format, const R: usize>(p: Tile, i: usize) {
    use crate::gguf::decode_simd::avx2::{partial, sixteen};
    use std::arch::x86_64::*;
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let masks: [__m256i; 2] = std::array::from_fn(|v| {
        let live = p.width.saturating_sub(v * 8).min(8) as i32;
        _mm256_cmpgt_epi32(_mm256_set1_epi32(live), lanes)
    });
    let mut acc: [[__m256; 2]; R] = std::array::from_fn(|r| {
        let src = p.out.at((i + r) * p.k + p.c);
        std::array::from_fn(|v| _mm256_maskload_ps(src.add(v * 8), masks[v]))
    });
    let h = p.c / 16;
    for jj in 0..p.t {
        let row = p.w.row(p.first + jj);
        let wv = if p.width == 16 {
            sixteen::<F>(row, h)
        } else {
            partial::<F>(row, h, p.width)
        };
        for (r, sums) in acc.iter_mut().enumerate() {
            let gv = _mm256_set1_ps(*p.g.add((i + r) * p.n + p.j0 + jj));
            sums[0] = _mm256_fmadd_ps(gv, wv[0], sums[0]);
            sums[1] = _mm256_fmadd_ps(gv, wv[1], sums[1]);
        }
    }
    for (r, sums) in acc.iter().enumerate() {
        let dst = p.out.at((i + r) * p.k + p.c);
        for (v, sum) in sums.iter().enumerate() {
            _mm256_maskstore_ps(dst.add(v * 8), masks[v], *sum);
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

    fn operands(m: usize, n: usize, k: usize) -> (Vec<f32>, Vec<f32>) {
        let g = (0..m * n)
            .map(|i| ((i * 7 % 13) as f32 - 6.1) / 7.3)
            .collect();
        let w = (0..n * k)
            .map(|i| ((i * 5 % 11) as f32 - 5.3) / 5.7)
            .collect();
        (g, w)
    }

    /// Against an f64 product, on shapes with row, panel and vector remainders.
    #[test]
    fn kernel_matches_a_naive_product_on_awkward_shapes() {
        for (m, n, k) in [
            (1, 1, 1),
            (3, 67, 19),
            (12, 30, 300),
            (18, 130, 70),
            (7, 5, 129),
            // Row blocks of every size 1..=12: 13 and 23 end in blocks of 1 and 11.
            (13, 9, 65),
            (23, 140, 17),
            (11, 3, 200),
            (30, 20, 48),
        ] {
            let (g, w) = operands(m, n, k);
            for kernel in Kernel::available() {
                let got = product(&g, StoredRows::f32(&w, k), m, n, k, kernel, Decode::Auto);
                for i in 0..m {
                    for c in 0..k {
                        let want: f64 = (0..n)
                            .map(|j| g[i * n + j] as f64 * w[j * k + c] as f64)
                            .sum();
                        let v = got[i * k + c] as f64;
                        assert!(
                            (v - want).abs() < 1e-4 * (1.0 + want.abs()),
                            "{kernel:?} {m}x{n}x{k} [{i}, {c}]: {v} vs {want}"
                        );
                    }
                }
            }
        }
    }

    /// Stored matrices of every format, decoded in registers or in tiles (with more rows of
    /// `W` than one tile), give the bits of their f32 decode in both weight products, with
    /// and without a row order, for few and many rows of `G`.
    #[test]
    fn stored_matrices_give_the_bits_of_their_decode() {
        use crate::tensor::{StoredBytes, StoredMatrix};
        use GgmlType::*;
        for format in [F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4K, Q5K, Q6K] {
            let (per, size) = format.block();
            let k = if per == 1 { 300 } else { 2 * per.max(32) };
            let n = if per == 256 { 1100 } else { 900 };
            let bytes: Vec<u8> = (0..n * k / per * size)
                .map(|i| ((i * 37 + 11) % 251) as u8)
                .collect();
            let mut bytes = bytes;
            let half = |v: f32| half::f16::from_f32(v).to_le_bytes();
            for (b, block) in bytes.chunks_exact_mut(size).enumerate() {
                let s = 0.01 * (1.0 + (b % 5) as f32) * if b % 2 == 0 { 1.0 } else { -1.0 };
                match format {
                    F16 => block.copy_from_slice(&half((b % 23) as f32 / 7.0 - 1.5)),
                    BF16 => block.copy_from_slice(
                        &half::bf16::from_f32((b % 23) as f32 / 7.0 - 1.5).to_le_bytes(),
                    ),
                    Q6K => block[208..].copy_from_slice(&half(s)),
                    Q4_1 | Q5_1 | Q4K | Q5K => {
                        block[..2].copy_from_slice(&half(s));
                        block[2..4].copy_from_slice(&half(0.3 * s));
                    }
                    _ => block[..2].copy_from_slice(&half(s)),
                }
            }
            let order: Vec<u32> = (0..n as u32).map(|r| (r * 7 + 3) % n as u32).collect();
            for order in [None, Some(order)] {
                let stored =
                    StoredMatrix::new(format, n, k, StoredBytes::Owned(bytes.clone()), order)
                        .unwrap();
                let dense = stored.decode_all();
                for m in [7, FUSED_ROWS + 5] {
                    let g: Vec<f32> = (0..m * n)
                        .map(|i| ((i * 7 % 13) as f32 - 6.1) / 7.3)
                        .collect();
                    let x: Vec<f32> = (0..m * k)
                        .map(|i| ((i * 3 % 17) as f32 - 8.1) / 9.3)
                        .collect();
                    let dense = StoredRows::f32(&dense, k);
                    for kernel in Kernel::available() {
                        let want_gw = product(&g, dense, m, n, k, kernel, Decode::Auto);
                        let x_wt = |w, decode| {
                            super::super::weight_t::product(&x, w, m, n, k, kernel, decode).unwrap()
                        };
                        let want_xwt = x_wt(dense, Decode::Auto);
                        for decode in [Decode::Registers, Decode::Tiles] {
                            let what = format!("{format:?} {kernel:?} {decode:?} m {m}");
                            assert_eq!(
                                product(&g, stored.stored_rows(), m, n, k, kernel, decode),
                                want_gw,
                                "g·W {what}"
                            );
                            assert_eq!(x_wt(stored.stored_rows(), decode), want_xwt, "x·Wᵀ {what}");
                        }
                    }
                }
            }
        }
    }

    /// The same bits for a row whatever rows come with it, and on every instruction set.
    #[test]
    fn rows_are_exact_under_any_grouping_and_every_kernel() {
        for (m, n, k) in [(13, 67, 19), (9, 40, 200), (6, 17, 129), (27, 11, 40)] {
            let (g, w) = operands(m, n, k);
            let w = StoredRows::f32(&w, k);
            let reference = product(&g, w, m, n, k, Kernel::Portable, Decode::Auto);
            for kernel in Kernel::available() {
                assert_eq!(
                    product(&g, w, m, n, k, kernel, Decode::Auto),
                    reference,
                    "{kernel:?}"
                );
                for i in 0..m {
                    let alone = product(&g[i * n..(i + 1) * n], w, 1, n, k, kernel, Decode::Auto);
                    assert_eq!(
                        alone[..],
                        reference[i * k..(i + 1) * k],
                        "{kernel:?} row {i}"
                    );
                }
            }
        }
    }
}
