//! Our f32 GEMM, `C = op(A) · op(B)` (or `C += …`), for the products too large for the
//! weight kernels: the linear layers at many rows, and every other dense product but the
//! fused attention's tiles (`matmul::product_into`).
//!
//! The classic blocked design: `B` is packed, a slab of columns at a time, into panels of `NR`
//! columns (`k`-major, so the microkernel loads `NR` contiguous values per step), `A` into
//! panels of `MR` rows, a `KC`-deep block at a time that stays in L2; the microkernel keeps an
//! `MR × NR` tile of `C` in registers (AVX-512: 12 × 32 in 24 of the 32 registers) and does
//! one broadcast of `A` and `NR / lanes` FMAs per row and step. Tiles past the matrix edge are
//! padded with zeros in the packed panels and written back through a small buffer.
//!
//! Every output is one FMA chain over `k` in order, its accumulator stored to `C` and loaded
//! back between `KC` blocks (exact in f32): so an output's bits depend only on its row of `A`
//! and column of `B`, never on the blocking, the matrix sizes, the threads, or the instruction
//! set (AVX-512, AVX2 and the portable `mul_add` give the same bits). That makes a linear
//! layer's rows independent of the batch they are computed in.

use super::matmul::{checked_product, View};
use super::simd::Out;
use rayon::prelude::*;
use std::cell::Cell;

/// Most depth of a packed block: an `A` block (`MC × KC`) stays in L2, a `B` panel
/// (`KC × NR`) in L1 while the `A` panels stream past it. `k` is cut into equal blocks.
const KC: usize = 256;
/// Most rows of a task's row block (`MC`).
const MC: usize = 192;
/// The largest packed `B` slab, in floats (4 MiB): the columns are taken in slabs this size.
const SLAB: usize = 1 << 20;
/// Below this many multiply-adds a product runs on the calling thread.
const PAR_FLOPS: usize = 1 << 18;

/// `dst[m, n] = op(A)[m, k] · op(B)[k, n]`, or `dst +=` with `accumulate` (`dst` row-major,
/// `n` columns); `parallel` splits it over rayon's threads.
pub fn sgemm(
    dst: &mut [f32],
    (m, n, k): (usize, usize, usize),
    a: View,
    b: View,
    accumulate: bool,
    parallel: bool,
) {
    if !checked_product(dst, (m, n, k), a, b, accumulate, "sgemm") {
        return;
    }
    let parallel = parallel && m * n * k >= PAR_FLOPS && rayon::current_num_threads() > 1;
    let p = Problem {
        m,
        n,
        k,
        a,
        b,
        c: Out(dst.as_mut_ptr()),
        accumulate,
    };
    match super::simd::Kernel::best() {
        // SAFETY: `Kernel::best` chose an instruction set this CPU has.
        #[cfg(target_arch = "x86_64")]
        super::simd::Kernel::Avx512 => run::<12, 32, avx512::Tile>(&p, parallel),
        #[cfg(target_arch = "x86_64")]
        super::simd::Kernel::Avx2 => run::<6, 16, avx2::Tile>(&p, parallel),
        _ => run::<4, 8, Portable>(&p, parallel),
    }
}

/// A product's operands; `c` is row-major with `n` columns.
struct Problem<'a> {
    m: usize,
    n: usize,
    k: usize,
    a: View<'a>,
    b: View<'a>,
    c: Out,
    accumulate: bool,
}

/// A microkernel: `C[MR, NR] (+)= A panel · B panel` over `kc` steps, `C` with row stride
/// `ldc`, loaded first when `load` (else overwritten). (A static call: through a function
/// pointer the panels went by the stack, a store-forwarding stall per tile.)
trait Tile {
    /// # Safety
    /// The instruction set is available; the panels hold `kc` steps of the kernel's rows and
    /// columns, `c` its rows at stride `ldc`.
    unsafe fn tile(kc: usize, x: Panels, c: *mut f32, ldc: usize, load: bool);
}

/// The portable microkernel (`portable_tile`).
struct Portable;

impl Tile for Portable {
    unsafe fn tile(kc: usize, x: Panels, c: *mut f32, ldc: usize, load: bool) {
        portable_tile::<4, 8>(kc, x, c, ldc, load)
    }
}

/// Where a microkernel reads its panels: `A`'s row `r` at step `p` at `a + r·a_rs + p·a_ps`,
/// `B`'s `NR` values of step `p` at `b + p·b_ps`. A packed panel has `a_rs = 1, a_ps = MR,
/// b_ps = NR`; a small product's operands are read in place where their layout allows.
#[derive(Clone, Copy)]
pub struct Panels {
    a: *const f32,
    a_rs: usize,
    a_ps: usize,
    b: *const f32,
    b_ps: usize,
}

impl Panels {
    fn packed<const MR: usize, const NR: usize>(a: &[f32], b: &[f32]) -> Panels {
        Panels {
            a: a.as_ptr(),
            a_rs: 1,
            a_ps: MR,
            b: b.as_ptr(),
            b_ps: NR,
        }
    }
}

fn run<const MR: usize, const NR: usize, T: Tile>(p: &Problem, parallel: bool) {
    let k_blocks = p.k.div_ceil(KC);
    let kc_max = p.k.div_ceil(k_blocks);
    // A small product on the calling thread reads its operands in place where their layout
    // allows (only the panels cut by an edge are packed): with two sides of 64, packing costs
    // about as much as the product.
    let in_place = !parallel && p.m <= MC;
    let direct_b = in_place && p.b.cols == 1;
    let direct_a = in_place && (p.a.rows == 1 || p.a.cols == 1);
    // Column slabs of whole panels, equal, each at most `SLAB` floats at the full depth.
    let slabs = (p.n.div_ceil(NR) * NR * k_blocks * kc_max).div_ceil(SLAB);
    let slab_cols = p.n.div_ceil(slabs).div_ceil(NR) * NR;
    let mut packed_b = take(&PACKED_B);
    for j0 in (0..p.n).step_by(slab_cols) {
        let cols = slab_cols.min(p.n - j0);
        let panels = cols.div_ceil(NR);
        // Layout: [k block][panel][KC][NR], each block `panels · KC · NR` floats.
        let block_len = panels * kc_max * NR;
        let buf = aligned(&mut packed_b, k_blocks * block_len);
        let pack = |(i, dst): (usize, &mut [f32])| {
            let (kb, panel) = (i / panels, i % panels);
            let (k0, col) = (kb * kc_max, j0 + panel * NR);
            if !(direct_b && col + NR <= p.n) {
                pack_b::<NR>(dst, p.b, k0, kc_max.min(p.k - k0), col, p.n);
            }
        };
        if parallel {
            buf.par_chunks_mut(kc_max * NR).enumerate().for_each(pack);
        } else {
            buf.chunks_mut(kc_max * NR).enumerate().for_each(pack);
        }
        let buf = &*buf;
        // Tasks: row blocks of at most `MC` rows, as many as a multiple of the threads (so
        // they share the work evenly), times column parts where the rows are too few.
        let threads = if parallel {
            rayon::current_num_threads()
        } else {
            1
        };
        let row_tasks = threads * p.m.div_ceil(threads * MC);
        let rows_per_task = p.m.div_ceil(row_tasks).div_ceil(MR) * MR;
        let row_tasks = p.m.div_ceil(rows_per_task);
        let col_parts = (2 * threads).div_ceil(row_tasks).clamp(1, panels);
        let panels_per_part = panels.div_ceil(col_parts);
        let task = |t: usize| {
            let (rt, part) = (t / col_parts, t % col_parts);
            let rows = rt * rows_per_task..((rt + 1) * rows_per_task).min(p.m);
            let first = part * panels_per_part;
            let panel_range = first..((part + 1) * panels_per_part).min(panels);
            if panel_range.is_empty() {
                return;
            }
            let mut packed_a = take(&PACKED_A);
            for kb in 0..k_blocks {
                let k0 = kb * kc_max;
                let kc = kc_max.min(p.k - k0);
                let a_panels = rows.len().div_ceil(MR);
                let abuf = aligned(&mut packed_a, a_panels * kc_max * MR);
                for (ip, dst) in abuf.chunks_mut(kc_max * MR).enumerate() {
                    let row = rows.start + ip * MR;
                    if !(direct_a && row + MR <= p.m) {
                        pack_a::<MR>(dst, p.a, row, p.m, k0, kc);
                    }
                }
                let load = kb > 0 || p.accumulate;
                for jp in panel_range.clone() {
                    let col = j0 + jp * NR;
                    let width = NR.min(p.n - col);
                    let packed = &buf[kb * block_len + jp * kc_max * NR..];
                    for ip in 0..a_panels {
                        let row = rows.start + ip * MR;
                        let height = MR.min(p.m - row);
                        let mut x = Panels::packed::<MR, NR>(&abuf[ip * kc_max * MR..], packed);
                        // SAFETY (the offsets): an operand read in place holds the panel's
                        // `MR` rows or `NR` columns (edge panels are packed) over `kc` steps.
                        if direct_a && height == MR {
                            x.a = unsafe { p.a.data.as_ptr().add(row * p.a.rows + k0 * p.a.cols) };
                            (x.a_rs, x.a_ps) = (p.a.rows, p.a.cols);
                        }
                        if direct_b && width == NR {
                            x.b = unsafe { p.b.data.as_ptr().add(k0 * p.b.rows + col) };
                            x.b_ps = p.b.rows;
                        }
                        // SAFETY: the tile's rows `row..row + height` and columns
                        // `col..col + width` lie inside `c` (m × n), and no other task
                        // writes them.
                        unsafe {
                            let c = p.c.0.add(row * p.n + col);
                            if height == MR && width == NR {
                                T::tile(kc, x, c, p.n, load);
                            } else {
                                edge_tile::<MR, NR, T>(kc, x, c, p.n, (height, width), load);
                            }
                        }
                    }
                }
            }
            give_back(&PACKED_A, packed_a);
        };
        let tasks = row_tasks * col_parts;
        if parallel {
            (0..tasks).into_par_iter().for_each(task);
        } else {
            (0..tasks).for_each(task);
        }
    }
    give_back(&PACKED_B, packed_b);
}

/// A tile cut by the matrix edge: computed whole in a buffer (the packed panels are padded
/// with zeros), of which the `height × width` corner is copied in and out.
///
/// # Safety
/// `c` holds `height` rows of `width` values at row stride `ldc`.
unsafe fn edge_tile<const MR: usize, const NR: usize, T: Tile>(
    kc: usize,
    x: Panels,
    c: *mut f32,
    ldc: usize,
    (height, width): (usize, usize),
    load: bool,
) {
    let mut buf = [[0.0f32; NR]; MR];
    if load {
        for (r, row) in buf.iter_mut().enumerate().take(height) {
            std::ptr::copy_nonoverlapping(c.add(r * ldc), row.as_mut_ptr(), width);
        }
    }
    T::tile(kc, x, buf.as_mut_ptr().cast(), NR, load);
    for (r, row) in buf.iter().enumerate().take(height) {
        std::ptr::copy_nonoverlapping(row.as_ptr(), c.add(r * ldc), width);
    }
}

/// `A`'s rows `row0..row0 + MR` (zeros past `m`), columns `k0..k0 + kc`, as `[kc][MR]`.
fn pack_a<const MR: usize>(dst: &mut [f32], a: View, row0: usize, m: usize, k0: usize, kc: usize) {
    let rows = MR.min(m - row0);
    let dst = &mut dst[..kc * MR];
    let last = (row0 + rows - 1) * a.rows + (k0 + kc - 1) * a.cols;
    assert!(last < a.data.len(), "pack_a: outside A");
    let src = a.data.as_ptr();
    let d = dst.as_mut_ptr();
    // SAFETY: the assertion bounds every read (the largest index is `last`); `dst` holds
    // `kc · MR` values.
    unsafe {
        for p in 0..kc {
            let col = src.add((k0 + p) * a.cols + row0 * a.rows);
            for r in 0..rows {
                *d.add(p * MR + r) = *col.add(r * a.rows);
            }
            for r in rows..MR {
                *d.add(p * MR + r) = 0.0;
            }
        }
    }
}

/// `B`'s rows `k0..k0 + kc`, columns `col0..col0 + NR` (zeros past `n`), as `[kc][NR]`.
fn pack_b<const NR: usize>(dst: &mut [f32], b: View, k0: usize, kc: usize, col0: usize, n: usize) {
    let width = NR.min(n - col0);
    let dst = &mut dst[..kc * NR];
    let last = (k0 + kc - 1) * b.rows + (col0 + width - 1) * b.cols;
    assert!(last < b.data.len(), "pack_b: outside B");
    let src = b.data.as_ptr();
    let d = dst.as_mut_ptr();
    // SAFETY: as in `pack_a`.
    unsafe {
        for p in 0..kc {
            let row = src.add((k0 + p) * b.rows + col0 * b.cols);
            for c in 0..width {
                *d.add(p * NR + c) = *row.add(c * b.cols);
            }
            for c in width..NR {
                *d.add(p * NR + c) = 0.0;
            }
        }
    }
}

/// The portable microkernel: the same FMA chains as the SIMD ones (`mul_add`), so the same bits.
fn portable_tile<const MR: usize, const NR: usize>(
    kc: usize,
    x: Panels,
    c: *mut f32,
    ldc: usize,
    load: bool,
) {
    // SAFETY (all pointer accesses): the caller passes panels of `kc` steps and a tile of
    // `MR` rows of `NR` values at stride `ldc`.
    let mut acc = [[0.0f32; NR]; MR];
    if load {
        for (r, row) in acc.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = unsafe { *c.add(r * ldc + j) };
            }
        }
    }
    for p in 0..kc {
        let bs = unsafe { std::slice::from_raw_parts(x.b.add(p * x.b_ps), NR) };
        for (r, row) in acc.iter_mut().enumerate() {
            let av = unsafe { *x.a.add(r * x.a_rs + p * x.a_ps) };
            for (v, &bv) in row.iter_mut().zip(bs) {
                *v = av.mul_add(bv, *v);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            unsafe { *c.add(r * ldc + j) = v };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::Panels;

    pub struct Tile;

    impl super::Tile for Tile {
        unsafe fn tile(kc: usize, x: Panels, c: *mut f32, ldc: usize, load: bool) {
            tile(kc, x, c, ldc, load)
        }
    }
    use std::arch::x86_64::*;

    /// 12 × 32: 24 accumulators, two `B` loads and twelve broadcasts per step.
    ///
    /// # Safety
    /// AVX-512F is available; the panels hold `kc` steps of 12 rows and 32 columns; `c`
    /// holds 12 rows of 32 values at stride `ldc`.
    #[target_feature(enable = "avx512f,fma")]
    unsafe fn tile(kc: usize, x: Panels, c: *mut f32, ldc: usize, load: bool) {
        // The rows' offsets known at compile time for a packed (or column-major) `A`.
        if x.a_rs == 1 {
            steps::<false>(kc, x, c, ldc, load)
        } else {
            steps::<true>(kc, x, c, ldc, load)
        }
    }

    #[inline(always)]
    unsafe fn steps<const STRIDED_ROWS: bool>(
        kc: usize,
        x: Panels,
        c: *mut f32,
        ldc: usize,
        load: bool,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 2]; 12];
        if load {
            for (r, row) in acc.iter_mut().enumerate() {
                row[0] = _mm512_loadu_ps(c.add(r * ldc));
                row[1] = _mm512_loadu_ps(c.add(r * ldc + 16));
            }
        }
        let rs = if STRIDED_ROWS { x.a_rs } else { 1 };
        let (mut a, mut b) = (x.a, x.b);
        for _ in 0..kc {
            let b0 = _mm512_loadu_ps(b);
            let b1 = _mm512_loadu_ps(b.add(16));
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*a.add(r * rs));
                row[0] = _mm512_fmadd_ps(av, b0, row[0]);
                row[1] = _mm512_fmadd_ps(av, b1, row[1]);
            }
            a = a.add(x.a_ps);
            b = b.add(x.b_ps);
        }
        for (r, row) in acc.iter().enumerate() {
            _mm512_storeu_ps(c.add(r * ldc), row[0]);
            _mm512_storeu_ps(c.add(r * ldc + 16), row[1]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::Panels;

    pub struct Tile;

    impl super::Tile for Tile {
        unsafe fn tile(kc: usize, x: Panels, c: *mut f32, ldc: usize, load: bool) {
            tile(kc, x, c, ldc, load)
        }
    }
    use std::arch::x86_64::*;

    /// 6 × 16: 12 accumulators, two `B` loads and six broadcasts per step.
    ///
    /// # Safety
    /// AVX2 and FMA are available; the panels hold `kc` steps of 6 rows and 16 columns; `c`
    /// holds 6 rows of 16 values at stride `ldc`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile(kc: usize, x: Panels, c: *mut f32, ldc: usize, load: bool) {
        if x.a_rs == 1 {
            steps::<false>(kc, x, c, ldc, load)
        } else {
            steps::<true>(kc, x, c, ldc, load)
        }
    }

    #[inline(always)]
    unsafe fn steps<const STRIDED_ROWS: bool>(
        kc: usize,
        x: Panels,
        c: *mut f32,
        ldc: usize,
        load: bool,
    ) {
        let mut acc = [[_mm256_setzero_ps(); 2]; 6];
        if load {
            for (r, row) in acc.iter_mut().enumerate() {
                row[0] = _mm256_loadu_ps(c.add(r * ldc));
                row[1] = _mm256_loadu_ps(c.add(r * ldc + 8));
            }
        }
        let rs = if STRIDED_ROWS { x.a_rs } else { 1 };
        let (mut a, mut b) = (x.a, x.b);
        for _ in 0..kc {
            let b0 = _mm256_loadu_ps(b);
            let b1 = _mm256_loadu_ps(b.add(8));
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm256_broadcast_ss(&*a.add(r * rs));
                row[0] = _mm256_fmadd_ps(av, b0, row[0]);
                row[1] = _mm256_fmadd_ps(av, b1, row[1]);
            }
            a = a.add(x.a_ps);
            b = b.add(x.b_ps);
        }
        for (r, row) in acc.iter().enumerate() {
            _mm256_storeu_ps(c.add(r * ldc), row[0]);
            _mm256_storeu_ps(c.add(r * ldc + 8), row[1]);
        }
    }
}

thread_local! {
    /// Packing buffers kept between products, so each large product does not fault fresh
    /// pages in. Taken out while in use: a rayon thread waiting in one product may run a
    /// task of another, which then finds the cell empty and allocates its own.
    static PACKED_A: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    static PACKED_B: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

fn take(cell: &'static std::thread::LocalKey<Cell<Vec<f32>>>) -> Vec<f32> {
    cell.with(|c| c.take())
}

fn give_back(cell: &'static std::thread::LocalKey<Cell<Vec<f32>>>, v: Vec<f32>) {
    cell.with(|c| c.set(v))
}

/// `len` floats of `buf` starting on a 64-byte boundary (the microkernels' aligned loads).
fn aligned(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len + 16 {
        buf.resize(len + 16, 0.0);
    }
    let offset = buf.as_ptr().align_offset(64);
    &mut buf[offset..offset + len]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i * 7 + seed * 13) % 29) as f32 - 14.0) / 9.0)
            .collect()
    }

    /// Every shape near the tile and block edges, every transpose, both modes: the f64
    /// product within rounding, and each output the same FMA chain (bits equal to a plain
    /// `mul_add` loop), serial or parallel.
    #[test]
    fn matches_the_fma_chain_on_awkward_shapes() {
        for &(m, n, k) in &[
            (1, 1, 1),
            (13, 33, 7),
            (12, 32, 256),
            (25, 70, 257),
            (200, 65, 600),
            (7, 1500, 30),
        ] {
            for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                let a = values(m * k, 1);
                let b = values(k * n, 2);
                let av = if ta {
                    View {
                        data: &a,
                        rows: 1,
                        cols: m,
                    }
                } else {
                    View {
                        data: &a,
                        rows: k,
                        cols: 1,
                    }
                };
                let bv = if tb {
                    View {
                        data: &b,
                        rows: 1,
                        cols: k,
                    }
                } else {
                    View {
                        data: &b,
                        rows: n,
                        cols: 1,
                    }
                };
                let c0 = values(m * n, 3);
                let mut chain = vec![0.0f32; m * n];
                let mut exact = vec![0.0f64; m * n];
                for i in 0..m {
                    for j in 0..n {
                        let mut acc = c0[i * n + j];
                        let mut e = acc as f64;
                        for p in 0..k {
                            let x = av.data[i * av.rows + p * av.cols];
                            let y = bv.data[p * bv.rows + j * bv.cols];
                            acc = x.mul_add(y, acc);
                            e += x as f64 * y as f64;
                        }
                        chain[i * n + j] = acc;
                        exact[i * n + j] = e;
                    }
                }
                for parallel in [false, true] {
                    let mut c = c0.clone();
                    sgemm(&mut c, (m, n, k), av, bv, true, parallel);
                    assert_eq!(c, chain, "{m}×{n}×{k} ta {ta} tb {tb} parallel {parallel}");
                    let mut fresh = vec![f32::NAN; m * n];
                    sgemm(&mut fresh, (m, n, k), av, bv, false, parallel);
                    for ((&f, &e), &c) in fresh.iter().zip(&exact).zip(&c0) {
                        let want = e - c as f64;
                        assert!((f as f64 - want).abs() <= 1e-4 * (1.0 + want.abs()));
                    }
                }
            }
        }
    }
}
