//! `C = G · W` for a weight stored `[n, k]` (a linear layer's input gradient, `G: [m, n]`):
//! each output `C[i, c] = Σ_j G[i, j] W[j, c]` is one fused multiply-add chain over `j` in
//! order. So a row's value depends neither on the other rows in the product (the batch size)
//! nor on the instruction set: AVX-512, AVX2 and the portable loop give the same bits.
//!
//! The loop runs over column panels of `W` (parallel tasks), and inside a panel over blocks of
//! up to 6 rows of `G` that share each loaded weight vector, so a panel is read from cache once
//! per 6 rows.

use super::simd::Kernel;
use super::weight_rows::WeightRows;
use rayon::prelude::*;

/// Columns per parallel task: 64 × `n` weights (e.g. 393 KB at n = 1536) stay in L2.
const PANEL: usize = 64;

/// Rows of `G` per register block: 6 × 4 AVX-512 accumulators (6 × 2 on AVX2) leave room
/// for the weight vectors, and a prompt of up to 6 tokens takes one pass over the weights.
const ROWS: usize = 6;

/// A row-block kernel: `(g, w, out, i, n, t, k, c, width)`.
type RowsFn = unsafe fn(*const f32, *const f32, *mut f32, usize, usize, usize, usize, usize, usize);

/// Weight rows per L1-resident slice of a panel (64 columns × 128 rows = 32 KB).
const SLICE: usize = 128;

/// Bytes of decoded weight rows per tile of a stored matrix.
const TILE_BYTES: usize = 1 << 20;

/// `C[m, k] = G[m, n] · W[n, k]`, `W` f32 or stored.
pub fn g_times_w(g: &[f32], w: WeightRows, m: usize, n: usize, k: usize) -> Vec<f32> {
    product(g, w, m, n, k, Kernel::best())
}

/// Over tiles of `W`'s rows in order (all of them at once for f32; about a megabyte decoded
/// at a time for a stored matrix), each output's chain continuing from the last tile's value,
/// so the tiling does not change a bit.
fn product(g: &[f32], w: WeightRows, m: usize, n: usize, k: usize, kernel: Kernel) -> Vec<f32> {
    assert!(g.len() == m * n, "g_times_w: operand sizes");
    let mut out = vec![0.0f32; m * k];
    let tile = if w.is_stored() {
        (TILE_BYTES / (4 * k.max(1))).clamp(1, n.max(1))
    } else {
        n.max(1)
    };
    let panels = k.div_ceil(PANEL);
    let dst = Out(out.as_mut_ptr());
    let parallel =
        rayon::current_thread_index().is_none() && panels > 1 && m * n * k >= super::PAR_MIN * 16;
    let mut buf = Vec::new();
    for j0 in (0..n).step_by(tile) {
        let t = tile.min(n - j0);
        let wt = w.rows(j0, t, k, &mut buf);
        let run = |p: usize| {
            let (c0, c1) = (p * PANEL, ((p + 1) * PANEL).min(k));
            // SAFETY: panel `p` reads and writes only columns c0..c1 of each row, which no
            // other panel touches, and `out` outlives the loop; `wt` holds rows j0..j0+t.
            unsafe { panel(g, wt, dst.get(), m, n, k, j0, t, c0, c1, kernel) }
        };
        if parallel {
            (0..panels).into_par_iter().for_each(run);
        } else {
            (0..panels).for_each(run);
        }
    }
    out
}

/// The output pointer, shared by the panel tasks (each writes its own columns).
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: see `product`: the tasks write disjoint elements.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}
impl Out {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Columns `c0..c1` of every row of `C += G[:, j0..j0+t] · wt`, `wt` holding `t` rows of `W`.
#[allow(clippy::too_many_arguments)]
unsafe fn panel(
    g: &[f32],
    wt: &[f32],
    out: *mut f32,
    m: usize,
    n: usize,
    k: usize,
    j0: usize,
    t: usize,
    c0: usize,
    c1: usize,
    kernel: Kernel,
) {
    // The tile's rows in slices of `SLICE` that stay in L1 while every row block of `G`
    // passes over them; the chains carry on through `out` from slice to slice. `gp` starts at
    // the slice's column of `G` (row stride n), `wp` at its row of the tile.
    for s0 in (0..t).step_by(SLICE) {
        let ts = SLICE.min(t - s0);
        let (gp, wp) = (g.as_ptr().add(j0 + s0), wt.as_ptr().add(s0 * k));
        match kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => {
                for c in (c0..c1).step_by(64) {
                    let width = (c1 - c).min(64);
                    for i in (0..m).step_by(ROWS) {
                        let rows: RowsFn = match (m - i).min(ROWS) {
                            6 => rows_avx512::<6>,
                            5 => rows_avx512::<5>,
                            4 => rows_avx512::<4>,
                            3 => rows_avx512::<3>,
                            2 => rows_avx512::<2>,
                            _ => rows_avx512::<1>,
                        };
                        rows(gp, wp, out, i, n, ts, k, c, width);
                    }
                }
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => {
                for c in (c0..c1).step_by(16) {
                    let width = (c1 - c).min(16);
                    for i in (0..m).step_by(ROWS) {
                        let rows: RowsFn = match (m - i).min(ROWS) {
                            6 => rows_avx2::<6>,
                            5 => rows_avx2::<5>,
                            4 => rows_avx2::<4>,
                            3 => rows_avx2::<3>,
                            2 => rows_avx2::<2>,
                            _ => rows_avx2::<1>,
                        };
                        rows(gp, wp, out, i, n, ts, k, c, width);
                    }
                }
            }
            _ => portable(gp, wp, out, m, n, ts, k, c0, c1),
        }
    }
}

/// The portable chain: the same order, one output at a time.
#[allow(clippy::too_many_arguments)]
unsafe fn portable(
    gp: *const f32,
    wp: *const f32,
    out: *mut f32,
    m: usize,
    n: usize,
    t: usize,
    k: usize,
    c0: usize,
    c1: usize,
) {
    for i in 0..m {
        for c in c0..c1 {
            let mut acc = *out.add(i * k + c);
            for j in 0..t {
                acc = (*gp.add(i * n + j)).mul_add(*wp.add(j * k + c), acc);
            }
            *out.add(i * k + c) = acc;
        }
    }
}
/// Rows `i..i+R` of `C`, columns `c..c+width` (`width` ≤ 64: four 16-lane vectors, masked),
/// continued over the `t` rows of the tile `w`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_avx512<const R: usize>(
    g: *const f32,
    w: *const f32,
    out: *mut f32,
    i: usize,
    n: usize,
    t: usize,
    k: usize,
    c: usize,
    width: usize,
) {
    use std::arch::x86_64::*;
    let masks: [__mmask16; 4] = std::array::from_fn(|v| {
        let live = width.saturating_sub(v * 16).min(16);
        ((1u32 << live) - 1) as u16
    });
    let mut acc: [[__m512; 4]; R] = std::array::from_fn(|r| {
        let src = out.add((i + r) * k + c);
        std::array::from_fn(|v| _mm512_maskz_loadu_ps(masks[v], src.add(v * 16)))
    });
    for j in 0..t {
        let row = w.add(j * k + c);
        let wv: [__m512; 4] =
            std::array::from_fn(|v| _mm512_maskz_loadu_ps(masks[v], row.add(v * 16)));
        for (r, sums) in acc.iter_mut().enumerate() {
            let gv = _mm512_set1_ps(*g.add((i + r) * n + j));
            for (sum, wv) in sums.iter_mut().zip(&wv) {
                *sum = _mm512_fmadd_ps(gv, *wv, *sum);
            }
        }
    }
    for (r, sums) in acc.iter().enumerate() {
        let dst = out.add((i + r) * k + c);
        for (v, sum) in sums.iter().enumerate() {
            _mm512_mask_storeu_ps(dst.add(v * 16), masks[v], *sum);
        }
    }
}

/// Rows `i..i+R` of `C`, columns `c..c+width` (`width` ≤ 16: two 8-lane vectors, masked),
/// continued over the `t` rows of the tile `w`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_avx2<const R: usize>(
    g: *const f32,
    w: *const f32,
    out: *mut f32,
    i: usize,
    n: usize,
    t: usize,
    k: usize,
    c: usize,
    width: usize,
) {
    use std::arch::x86_64::*;
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let masks: [__m256i; 2] = std::array::from_fn(|v| {
        let live = width.saturating_sub(v * 8).min(8) as i32;
        _mm256_cmpgt_epi32(_mm256_set1_epi32(live), lanes)
    });
    let mut acc: [[__m256; 2]; R] = std::array::from_fn(|r| {
        let src = out.add((i + r) * k + c);
        std::array::from_fn(|v| _mm256_maskload_ps(src.add(v * 8), masks[v]))
    });
    for j in 0..t {
        let row = w.add(j * k + c);
        let wv: [__m256; 2] = std::array::from_fn(|v| _mm256_maskload_ps(row.add(v * 8), masks[v]));
        for (r, sums) in acc.iter_mut().enumerate() {
            let gv = _mm256_set1_ps(*g.add((i + r) * n + j));
            for (sum, wv) in sums.iter_mut().zip(&wv) {
                *sum = _mm256_fmadd_ps(gv, *wv, *sum);
            }
        }
    }
    for (r, sums) in acc.iter().enumerate() {
        let dst = out.add((i + r) * k + c);
        for (v, sum) in sums.iter().enumerate() {
            _mm256_maskstore_ps(dst.add(v * 8), masks[v], *sum);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            // Row blocks of every size 1..=6: 8, 10 and 11 end in blocks of 2, 4 and 5.
            (8, 9, 65),
            (10, 140, 17),
            (11, 3, 200),
        ] {
            let (g, w) = operands(m, n, k);
            for kernel in Kernel::available() {
                let got = product(&g, WeightRows::F32(&w), m, n, k, kernel);
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

    /// A stored matrix, decoded in tiles (several here: 900 rows of 300 columns exceed one
    /// 1 MB tile), gives the bits of its f32 decode in both weight products.
    #[test]
    fn a_stored_matrix_gives_the_bits_of_its_decode() {
        use crate::gguf::GgmlType;
        use crate::tensor::{StoredBytes, StoredMatrix};
        let (m, n, k) = (7, 900, 300);
        let bytes: Vec<u8> = (0..n * k)
            .flat_map(|i| half::f16::from_f32(((i * 5 % 11) as f32 - 5.3) / 57.0).to_le_bytes())
            .collect();
        let stored =
            StoredMatrix::new(GgmlType::F16, n, k, StoredBytes::Owned(bytes), None).unwrap();
        let dense = stored.decode_all();
        let g: Vec<f32> = (0..m * n)
            .map(|i| ((i * 7 % 13) as f32 - 6.1) / 7.3)
            .collect();
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 3 % 17) as f32 - 8.1) / 9.3)
            .collect();
        assert!(
            (TILE_BYTES / (4 * k)) < n,
            "the test must span several tiles"
        );
        for kernel in Kernel::available() {
            assert_eq!(
                product(&g, WeightRows::Stored(&stored), m, n, k, kernel),
                product(&g, WeightRows::F32(&dense), m, n, k, kernel),
                "g·W {kernel:?}"
            );
        }
        assert_eq!(
            super::super::weight_t::a_times_wt(&x, WeightRows::Stored(&stored), m, n, k),
            super::super::weight_t::a_times_wt(&x, WeightRows::F32(&dense), m, n, k),
            "x·Wᵀ"
        );
    }

    /// The same bits for a row whatever rows come with it, and on every instruction set.
    #[test]
    fn rows_are_exact_under_any_grouping_and_every_kernel() {
        for (m, n, k) in [(13, 67, 19), (9, 40, 200), (6, 17, 129)] {
            let (g, w) = operands(m, n, k);
            let reference = product(&g, WeightRows::F32(&w), m, n, k, Kernel::Portable);
            for kernel in Kernel::available() {
                assert_eq!(
                    product(&g, WeightRows::F32(&w), m, n, k, kernel),
                    reference,
                    "{kernel:?}"
                );
                for i in 0..m {
                    let alone =
                        product(&g[i * n..(i + 1) * n], WeightRows::F32(&w), 1, n, k, kernel);
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
