//! The references `gradlens bench` checks every kernel against: each computation written
//! plainly in f64 from its definition, independent of every backend's code.

/// `x · Wᵀ`: `x: [m, k]`, `w: [n, k]`.
pub fn x_wt(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let dot: f64 = (0..k)
                .map(|c| x[i * k + c] as f64 * w[j * k + c] as f64)
                .sum();
            out[i * n + j] = dot as f32;
        }
    }
    out
}

/// `g · W`: `g: [m, n]`, `w: [n, k]`.
pub fn g_w(g: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0.0f64; m * k];
    for i in 0..m {
        for j in 0..n {
            let gv = g[i * n + j] as f64;
            for c in 0..k {
                out[i * k + c] += gv * w[j * k + c] as f64;
            }
        }
    }
    out.into_iter().map(|v| v as f32).collect()
}

/// RMS norm of each row of `x` (`cols` wide) times `w`.
pub fn rms_norm(x: &[f32], w: &[f32], cols: usize, eps: f64) -> Vec<f32> {
    x.chunks(cols)
        .flat_map(|row| {
            let ms = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / cols as f64;
            let r = 1.0 / (ms + eps).sqrt();
            row.iter()
                .zip(w)
                .map(move |(&v, &w)| (v as f64 * r * w as f64) as f32)
        })
        .collect()
}

/// The gradient of `rms_norm` at `x` for `g` at its output:
/// `r (w ⊙ g) − x r³ mean(x ⊙ w ⊙ g)`.
pub fn rms_norm_backward(x: &[f32], g: &[f32], w: &[f32], cols: usize, eps: f64) -> Vec<f32> {
    x.chunks(cols)
        .zip(g.chunks(cols))
        .flat_map(|(row, gr)| {
            let ms = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / cols as f64;
            let r = 1.0 / (ms + eps).sqrt();
            let dot = (0..cols)
                .map(|c| row[c] as f64 * w[c] as f64 * gr[c] as f64)
                .sum::<f64>()
                / cols as f64;
            (0..cols)
                .map(move |c| {
                    (r * w[c] as f64 * gr[c] as f64 - row[c] as f64 * r.powi(3) * dot) as f32
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `x σ(x)`.
pub fn silu(x: &[f32]) -> Vec<f32> {
    x.iter()
        .map(|&v| (v as f64 * sigmoid(v as f64)) as f32)
        .collect()
}

/// `g ⊙ silu′(x)`, `silu′ = σ + x σ (1 − σ)`.
pub fn silu_backward(x: &[f32], g: &[f32]) -> Vec<f32> {
    x.iter()
        .zip(g)
        .map(|(&v, &g)| {
            let (v, s) = (v as f64, sigmoid(v as f64));
            (g as f64 * (s + v * s * (1.0 - s))) as f32
        })
        .collect()
}

/// Causal softmax of `[rows, len]` score blocks of `len` queries (row `r` sees keys `0..=r % len`).
pub fn causal_softmax(x: &[f32], len: usize) -> Vec<f32> {
    x.chunks(len)
        .enumerate()
        .flat_map(|(r, row)| {
            let seen = r % len + 1;
            let max = row[..seen]
                .iter()
                .fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            let e: Vec<f64> = row[..seen]
                .iter()
                .map(|&v| (v as f64 - max).exp())
                .collect();
            let sum: f64 = e.iter().sum();
            let mut out: Vec<f32> = e.iter().map(|v| (v / sum) as f32).collect();
            out.resize(len, 0.0);
            out
        })
        .collect()
}

/// Rotate-half RoPE of `x: [heads, len, d]` with `cos, sin: [len, d/2]`.
pub fn rope(x: &[f32], cos: &[f32], sin: &[f32], len: usize, d: usize) -> Vec<f32> {
    let half = d / 2;
    let mut out = vec![0.0; x.len()];
    for (row, (xr, or)) in x.chunks(d).zip(out.chunks_mut(d)).enumerate() {
        let p = row % len;
        for i in 0..half {
            let (c, s) = (cos[p * half + i] as f64, sin[p * half + i] as f64);
            let (a, b) = (xr[i] as f64, xr[i + half] as f64);
            or[i] = (a * c - b * s) as f32;
            or[i + half] = (b * c + a * s) as f32;
        }
    }
    out
}

/// Path points `x′ + α (x − x′)` for each `α`, concatenated.
pub fn interpolate(x: &[f32], baseline: &[f32], alphas: &[f32]) -> Vec<f32> {
    alphas
        .iter()
        .flat_map(|&a| {
            x.iter()
                .zip(baseline)
                .map(move |(&x, &b)| (b as f64 + a as f64 * (x as f64 - b as f64)) as f32)
        })
        .collect()
}

/// `Σ_k w_k x_k` over the rows of `xs: [w.len(), n]`.
pub fn weighted_sum(xs: &[f32], w: &[f32]) -> Vec<f32> {
    let n = xs.len() / w.len().max(1);
    (0..n)
        .map(|c| {
            w.iter()
                .enumerate()
                .map(|(k, &wk)| wk as f64 * xs[k * n + c] as f64)
                .sum::<f64>() as f32
        })
        .collect()
}

/// Causal attention `softmax(scale · Q Kᵀ) V` per head: `q, k, v: [heads, len, d]`.
pub fn attention(q: &[f32], k: &[f32], v: &[f32], len: usize, d: usize, scale: f64) -> Vec<f32> {
    let probs = attention_probs(q, k, len, d, scale);
    let mut out = vec![0.0f64; q.len()];
    for (h, p) in probs.chunks(len * len).enumerate() {
        for i in 0..len {
            for j in 0..=i {
                for c in 0..d {
                    out[(h * len + i) * d + c] += p[i * len + j] * v[(h * len + j) * d + c] as f64;
                }
            }
        }
    }
    out.into_iter().map(|x| x as f32).collect()
}

fn attention_probs(q: &[f32], k: &[f32], len: usize, d: usize, scale: f64) -> Vec<f64> {
    let heads = q.len() / (len * d);
    let mut p = vec![0.0f64; heads * len * len];
    for h in 0..heads {
        for i in 0..len {
            let row = &mut p[(h * len + i) * len..(h * len + i + 1) * len];
            for (j, s) in row.iter_mut().enumerate().take(i + 1) {
                *s = scale
                    * (0..d)
                        .map(|c| q[(h * len + i) * d + c] as f64 * k[(h * len + j) * d + c] as f64)
                        .sum::<f64>();
            }
            let max = row[..=i].iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
            let mut sum = 0.0;
            for s in row[..=i].iter_mut() {
                *s = (*s - max).exp();
                sum += *s;
            }
            for s in row[..=i].iter_mut() {
                *s /= sum;
            }
        }
    }
    p
}

/// The gradients of causal `attention` at `q`, `k`, `v` for `g` at its output, concatenated:
/// `dV = Pᵀ G`, `dS = P ⊙ (G Vᵀ − rowsum(P ⊙ G Vᵀ))`, `dQ = scale · dS K`, `dK = scale · dSᵀ Q`.
pub fn attention_backward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    g: &[f32],
    len: usize,
    d: usize,
    scale: f64,
) -> Vec<f32> {
    let probs = attention_probs(q, k, len, d, scale);
    let heads = q.len() / (len * d);
    let (mut dq, mut dk, mut dv) = (
        vec![0.0f64; q.len()],
        vec![0.0f64; q.len()],
        vec![0.0f64; q.len()],
    );
    let at = |h: usize, i: usize, c: usize| (h * len + i) * d + c;
    for h in 0..heads {
        let p = &probs[h * len * len..(h + 1) * len * len];
        for i in 0..len {
            let dp: Vec<f64> = (0..=i)
                .map(|j| {
                    (0..d)
                        .map(|c| g[at(h, i, c)] as f64 * v[at(h, j, c)] as f64)
                        .sum()
                })
                .collect();
            let dot: f64 = (0..=i).map(|j| p[i * len + j] * dp[j]).sum();
            for j in 0..=i {
                let ds = p[i * len + j] * (dp[j] - dot);
                for c in 0..d {
                    dv[at(h, j, c)] += p[i * len + j] * g[at(h, i, c)] as f64;
                    dq[at(h, i, c)] += scale * ds * k[at(h, j, c)] as f64;
                    dk[at(h, j, c)] += scale * ds * q[at(h, i, c)] as f64;
                }
            }
        }
    }
    dq.iter().chain(&dk).chain(&dv).map(|&x| x as f32).collect()
}

/// The largest difference from `want`, relative to `want`'s largest magnitude (0 where both
/// are all zeros; infinite where a value is not finite or the lengths differ).
pub fn relative_error(got: &[f32], want: &[f32]) -> f64 {
    if got.len() != want.len() || got.iter().any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    let scale = want.iter().fold(0.0f64, |m, &v| m.max((v as f64).abs()));
    let worst = got
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (&a, &b)| m.max((a as f64 - b as f64).abs()));
    if scale == 0.0 {
        worst
    } else {
        worst / scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The attention backward against central differences of the forward, one element each.
    #[test]
    fn attention_backward_matches_finite_differences() {
        let (heads, len, d) = (2, 3, 4);
        let n = heads * len * d;
        let make = |s: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (((i * s + 3) % 11) as f32 - 5.0) / 7.0)
                .collect()
        };
        let (q, k, v, g) = (make(3), make(5), make(7), make(2));
        let scale = 0.5;
        let grads = attention_backward(&q, &k, &v, &g, len, d, scale);
        let loss = |q: &[f32], k: &[f32], v: &[f32]| -> f64 {
            attention(q, k, v, len, d, scale)
                .iter()
                .zip(&g)
                .map(|(&o, &g)| o as f64 * g as f64)
                .sum()
        };
        let h = 1e-3f32;
        for which in 0..3 {
            for i in [0, n / 2, n - 1] {
                let mut ops = [q.clone(), k.clone(), v.clone()];
                ops[which][i] += h;
                let up = loss(&ops[0], &ops[1], &ops[2]);
                ops[which][i] -= 2.0 * h;
                let down = loss(&ops[0], &ops[1], &ops[2]);
                let fd = (up - down) / (2.0 * h as f64);
                let got = grads[which * n + i] as f64;
                assert!(
                    (fd - got).abs() < 1e-3,
                    "operand {which} [{i}]: {got} vs {fd}"
                );
            }
        }
    }

    #[test]
    fn rms_norm_backward_matches_finite_differences() {
        let cols = 5;
        let x: Vec<f32> = (0..10).map(|i| (i as f32 - 4.0) / 3.0).collect();
        let w: Vec<f32> = (0..cols).map(|i| 0.5 + i as f32 / 4.0).collect();
        let g: Vec<f32> = (0..10).map(|i| ((i * 3 % 7) as f32 - 3.0) / 2.0).collect();
        let grad = rms_norm_backward(&x, &g, &w, cols, 1e-6);
        let loss = |x: &[f32]| -> f64 {
            rms_norm(x, &w, cols, 1e-6)
                .iter()
                .zip(&g)
                .map(|(&y, &g)| y as f64 * g as f64)
                .sum()
        };
        for i in 0..10 {
            let mut xp = x.clone();
            xp[i] += 1e-3;
            let mut xm = x.clone();
            xm[i] -= 1e-3;
            let fd = (loss(&xp) - loss(&xm)) / 2e-3;
            assert!(
                (fd - grad[i] as f64).abs() < 1e-3,
                "[{i}] {} vs {fd}",
                grad[i]
            );
        }
    }
}
