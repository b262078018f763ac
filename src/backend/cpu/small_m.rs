//! Products of a few activation rows with a weight matrix (`m ≤ SMALL_M`: single-prompt
//! saliency, target rows). A packing GEMM re-packs the whole weight on every call, which for a
//! dozen rows costs more than the arithmetic; these kernels read each weight row once instead.
//! Compiled for AVX2+FMA with run-time dispatch (the crate's default target is plain x86-64).

use rayon::prelude::*;

pub const SMALL_M: usize = 32;

/// Output columns per parallel task.
const COLS: usize = 64;

/// `C[m, n] = A[m, k] · Wᵀ` with `W: [n, k]`: every output is a contiguous dot product.
pub fn a_times_wt(a: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    let mut ct = vec![0.0f32; n * m]; // transposed: one row of m outputs per weight row
    ct.par_chunks_mut(COLS * m)
        .enumerate()
        .for_each(|(blk, out)| {
            let rows = out.len() / m;
            let w = &w[blk * COLS * k..(blk * COLS + rows) * k];
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the features were detected at run time; `dots_avx2` stays inside the slices.
                return unsafe { dots_avx2(a, w, m, k, out) };
            }
            for (j, o) in out.chunks_mut(m).enumerate() {
                for (i, o) in o.iter_mut().enumerate() {
                    *o = dot_portable(&a[i * k..(i + 1) * k], &w[j * k..(j + 1) * k]);
                }
            }
        });
    let mut c = vec![0.0f32; m * n];
    for j in 0..n {
        for i in 0..m {
            c[i * n + j] = ct[j * m + i];
        }
    }
    c
}

/// `out[j·m + i] = a_i · w_j`: blocks of 4 rows of `a` by 3 rows of `w` with 12 independent
/// accumulators, so each loaded vector feeds 3 or 4 FMAs and the FMA latency is hidden (a
/// lone dot product keeps 2 chains and waits on them). Edges fall back to single dots.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dots_avx2(a: &[f32], w: &[f32], m: usize, k: usize, out: &mut [f32]) {
    use std::arch::x86_64::*;
    let rows = w.len() / k;
    let k8 = k / 8 * 8;
    let hsum = |v: __m256| -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps::<1>(s, s)))
    };
    let mut j = 0;
    while j + 3 <= rows {
        let wp = [
            w.as_ptr().add(j * k),
            w.as_ptr().add((j + 1) * k),
            w.as_ptr().add((j + 2) * k),
        ];
        let mut i = 0;
        while i + 4 <= m {
            let ap = [
                a.as_ptr().add(i * k),
                a.as_ptr().add((i + 1) * k),
                a.as_ptr().add((i + 2) * k),
                a.as_ptr().add((i + 3) * k),
            ];
            let mut acc = [[_mm256_setzero_ps(); 3]; 4];
            let mut c = 0;
            while c < k8 {
                let wv = [
                    _mm256_loadu_ps(wp[0].add(c)),
                    _mm256_loadu_ps(wp[1].add(c)),
                    _mm256_loadu_ps(wp[2].add(c)),
                ];
                for r in 0..4 {
                    let av = _mm256_loadu_ps(ap[r].add(c));
                    for q in 0..3 {
                        acc[r][q] = _mm256_fmadd_ps(av, wv[q], acc[r][q]);
                    }
                }
                c += 8;
            }
            for r in 0..4 {
                for q in 0..3 {
                    let mut v = hsum(acc[r][q]);
                    for p in k8..k {
                        v += *ap[r].add(p) * *wp[q].add(p);
                    }
                    out[(j + q) * m + i + r] = v;
                }
            }
            i += 4;
        }
        for r in i..m {
            for q in 0..3 {
                out[(j + q) * m + r] =
                    dot_portable(&a[r * k..(r + 1) * k], &w[(j + q) * k..(j + q + 1) * k]);
            }
        }
        j += 3;
    }
    for q in j..rows {
        for r in 0..m {
            out[q * m + r] = dot_portable(&a[r * k..(r + 1) * k], &w[q * k..(q + 1) * k]);
        }
    }
}

/// `C[m, n] = G[m, k] · W` with `W: [k, n]`: rows of `W` are added into each output row.
pub fn g_times_w(g: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    let blocks = n.div_ceil(COLS * 4);
    let width = COLS * 4;
    let parts: Vec<Vec<f32>> = (0..blocks)
        .into_par_iter()
        .map(|b| {
            let (j0, j1) = (b * width, ((b + 1) * width).min(n));
            let mut out = vec![0.0f32; m * (j1 - j0)];
            for p in 0..k {
                let wr = &w[p * n + j0..p * n + j1];
                for i in 0..m {
                    axpy(
                        g[i * k + p],
                        wr,
                        &mut out[i * (j1 - j0)..(i + 1) * (j1 - j0)],
                    );
                }
            }
            out
        })
        .collect();
    let mut c = vec![0.0f32; m * n];
    for (b, part) in parts.iter().enumerate() {
        let (j0, j1) = (b * width, ((b + 1) * width).min(n));
        for i in 0..m {
            c[i * n + j0..i * n + j1].copy_from_slice(&part[i * (j1 - j0)..(i + 1) * (j1 - j0)]);
        }
    }
    c
}

fn axpy(s: f32, x: &[f32], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the features were detected at run time.
        return unsafe { axpy_avx2(s, x, y) };
    }
    axpy_portable(s, x, y)
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

#[inline(always)]
fn axpy_portable(s: f32, x: &[f32], y: &mut [f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = s.mul_add(x, *y);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn axpy_avx2(s: f32, x: &[f32], y: &mut [f32]) {
    axpy_portable(s, x, y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, n: usize, k: usize, trans_b: bool) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|p| {
                        a[i * k + p] as f64
                            * if trans_b { b[j * k + p] } else { b[p * n + j] } as f64
                    })
                    .sum::<f64>() as f32;
            }
        }
        c
    }

    #[test]
    fn kernels_match_a_naive_product_on_awkward_shapes() {
        for (m, n, k) in [
            (1, 1, 1),
            (3, 67, 19),
            (12, 300, 33),
            (18, 130, 70),
            (32, 257, 129),
        ] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0)
                .collect();
            let b: Vec<f32> = (0..n * k)
                .map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0)
                .collect();
            for (got, want) in [
                (a_times_wt(&a, &b, m, n, k), naive(&a, &b, m, n, k, true)),
                (g_times_w(&a, &b, m, n, k), naive(&a, &b, m, n, k, false)),
            ] {
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() < 1e-4 * (1.0 + w.abs()),
                        "{m}x{n}x{k}: {g} vs {w}"
                    );
                }
            }
        }
    }
}
