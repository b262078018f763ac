//! Fused attention `softmax(scale · Q Kᵀ) V` and its backward without the probabilities ever
//! held whole: each (batch, head) group runs in blocks of `BLOCK` query rows, and a block's
//! probabilities (`BLOCK` × the keys the block can see) live in a per-thread buffer while it
//! is computed, then again in the backward, which recomputes them. Memory is linear in the
//! length; under a causal mask a block only computes the keys its rows see, so the masked
//! tiles cost nothing.
//!
//! A block's scores are a matrix product `Q Kᵀ` (gemm, keys read as a column-major operand:
//! the SIMD dot-product kernel of the linear layers, one 64-long dot per score, ran at half
//! the rate), then the same row softmax as `attention::probs`; a group's blocks run in a fixed
//! order, so the result does not depend on how the batch is split.

use super::matmul::{product_into, View};
use super::softmax::{dot_f64, scaled_softmax_in_place};
use crate::backend::{AttentionDims, SoftmaxMask};
use crate::error::Result;
use rayon::prelude::*;

/// Query rows per block: 64 rows of 8,192 keys are 2 MB of probabilities per thread.
const BLOCK: usize = 64;

/// The keys rows `rows` of group `g` see: the union of their visible ranges.
fn key_span(
    mask: SoftmaxMask,
    g: usize,
    d: &AttentionDims,
    rows: std::ops::Range<usize>,
) -> (usize, usize) {
    let (mut lo, mut hi) = (d.k_len, 0);
    for i in rows {
        let vis = mask.visible(g * d.q_len + i, d.k_len);
        if !vis.is_empty() {
            lo = lo.min(vis.start);
            hi = hi.max(vis.end);
        }
    }
    (lo.min(hi), hi)
}

/// The probabilities of query rows `rows` of group `g` against keys `lo..hi`, into `p`
/// (`rows.len() × (hi − lo)`, zero where masked).
#[allow(clippy::too_many_arguments)]
fn block_probs(
    q: &[f32],
    k: &[f32],
    d: &AttentionDims,
    g: usize,
    rows: std::ops::Range<usize>,
    (lo, hi): (usize, usize),
    scale: f32,
    mask: SoftmaxMask,
    p: &mut [f32],
) {
    let (hd, span) = (d.head_dim, hi - lo);
    if span == 0 {
        return;
    }
    let queries = &q[(g * d.q_len + rows.start) * hd..(g * d.q_len + rows.end) * hd];
    let keys = &k[(g * d.k_len + lo) * hd..(g * d.k_len + hi) * hd];
    scores_into(p, queries, keys, rows.len(), span, hd);
    for (j, row) in p.chunks_mut(span).enumerate() {
        let vis = mask.visible(g * d.q_len + rows.start + j, d.k_len);
        let (a, b) = (vis.start.max(lo) - lo, vis.end.max(lo) - lo);
        row[..a].iter_mut().for_each(|s| *s = 0.0);
        row[b..].iter_mut().for_each(|s| *s = 0.0);
        let visible = &mut row[a..b];
        scaled_softmax_in_place(visible, scale);
    }
}

/// `out[i, j] = a_i · b_j` for `rows` rows of `a` and `span` rows of `b`, all of length `hd`
/// (a block of scores `Q Kᵀ`, or of `G Vᵀ`): `B` read as a column-major right operand.
pub(super) fn scores_into(
    out: &mut [f32],
    a: &[f32],
    b: &[f32],
    rows: usize,
    span: usize,
    hd: usize,
) {
    let a = View {
        data: a,
        rows: hd,
        cols: 1,
    };
    let b = View {
        data: b,
        rows: 1,
        cols: hd,
    };
    product_into(out, (rows, span, hd), a, b, false);
}

/// The query-row blocks of a group.
fn blocks(q_len: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..q_len)
        .step_by(BLOCK)
        .map(move |r| r..(r + BLOCK).min(q_len))
}

pub fn forward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    d: AttentionDims,
    scale: f32,
    mask: SoftmaxMask,
) -> Result<Vec<f32>> {
    let (hd, ql) = (d.head_dim, d.q_len);
    let mut out = super::zeros(d.batch * ql * hd, "the attention output")?;
    if out.is_empty() {
        return Ok(out);
    }
    let tasks: Vec<(usize, std::ops::Range<usize>)> = (0..d.batch)
        .flat_map(|g| blocks(ql).map(move |r| (g, r)))
        .collect();
    // Blocks are contiguous in the output, in task order.
    let mut chunks: Vec<&mut [f32]> = Vec::with_capacity(tasks.len());
    let mut rest = out.as_mut_slice();
    for (_, rows) in &tasks {
        let (head, tail) = rest.split_at_mut(rows.len() * hd);
        chunks.push(head);
        rest = tail;
    }
    tasks
        .par_iter()
        .zip(chunks.into_par_iter())
        .for_each_init(Vec::new, |p, ((g, rows), dst)| {
            let span = key_span(mask, *g, &d, rows.clone());
            let width = span.1 - span.0;
            p.resize(rows.len() * width, 0.0);
            block_probs(q, k, &d, *g, rows.clone(), span, scale, mask, p);
            let values = &v[(g * d.k_len + span.0) * hd..];
            let pv = View {
                data: p,
                rows: width,
                cols: 1,
            };
            let vv = View {
                data: values,
                rows: hd,
                cols: 1,
            };
            product_into(dst, (rows.len(), hd, width), pv, vv, false);
        });
    Ok(out)
}

/// `[∂Q, ∂K, ∂V]` times `shares` (`None` for a share of 0).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    g: &[f32],
    d: AttentionDims,
    scale: f32,
    mask: SoftmaxMask,
    shares: [f32; 3],
) -> Result<[Option<Vec<f32>>; 3]> {
    let (hd, ql, kl) = (d.head_dim, d.q_len, d.k_len);
    let want = |share: f32, n: usize, what| -> Result<Vec<f32>> {
        if share == 0.0 {
            Ok(Vec::new())
        } else {
            super::zeros(n, what)
        }
    };
    let mut gq = want(
        shares[0],
        d.batch * ql * hd,
        "the attention's query gradient",
    )?;
    let mut gk = want(shares[1], d.batch * kl * hd, "the attention's key gradient")?;
    let mut gv = want(
        shares[2],
        d.batch * kl * hd,
        "the attention's value gradient",
    )?;
    let need_scores = shares[0] != 0.0 || shares[1] != 0.0;
    let group = |grp: usize, gq: &mut [f32], gk: &mut [f32], gv: &mut [f32]| {
        let (mut p, mut gp) = (Vec::new(), Vec::new());
        for rows in blocks(ql) {
            let span = key_span(mask, grp, &d, rows.clone());
            let (lo, hi) = span;
            let (n, width) = (rows.len(), hi - lo);
            if width == 0 {
                continue;
            }
            p.resize(n * width, 0.0);
            block_probs(q, k, &d, grp, rows.clone(), span, scale, mask, &mut p);
            let g_blk = &g[(grp * ql + rows.start) * hd..(grp * ql + rows.end) * hd];
            let g_view = View {
                data: g_blk,
                rows: hd,
                cols: 1,
            };
            if !gv.is_empty() {
                // ∂V[lo..hi] += Pᵀ G.
                let pt = View {
                    data: &p,
                    rows: 1,
                    cols: width,
                };
                product_into(&mut gv[lo * hd..hi * hd], (width, hd, n), pt, g_view, true);
            }
            if !need_scores {
                continue;
            }
            // ∂P = G Vᵀ, one row of scores per query (as the forward's Q Kᵀ).
            gp.resize(n * width, 0.0);
            let values = &v[(grp * kl + lo) * hd..(grp * kl + hi) * hd];
            scores_into(&mut gp, g_blk, values, n, width, hd);
            // ∂S = scale · P ⊙ (∂P − Σ P ∂P), row by row; masked entries have P = 0.
            for (pr, gr) in p.chunks(width).zip(gp.chunks_mut(width)) {
                let dot = dot_f64(pr, gr);
                for (o, &pv) in gr.iter_mut().zip(pr) {
                    *o = scale * pv * (*o - dot as f32);
                }
            }
            let gs = View {
                data: &gp,
                rows: width,
                cols: 1,
            };
            if !gq.is_empty() {
                // ∂Q = ∂S K.
                let keys = View {
                    data: &k[(grp * kl + lo) * hd..],
                    rows: hd,
                    cols: 1,
                };
                let dst = &mut gq[rows.start * hd..rows.end * hd];
                product_into(dst, (n, hd, width), gs, keys, false);
            }
            if !gk.is_empty() {
                // ∂K[lo..hi] += ∂Sᵀ Q.
                let gst = View {
                    data: &gp,
                    rows: 1,
                    cols: width,
                };
                let queries = View {
                    data: &q[(grp * ql + rows.start) * hd..],
                    rows: hd,
                    cols: 1,
                };
                product_into(
                    &mut gk[lo * hd..hi * hd],
                    (width, hd, n),
                    gst,
                    queries,
                    true,
                );
            }
        }
    };
    // One task per group; a missing gradient is an empty buffer, split into empty chunks.
    let (cq, ck, cv) = (
        per_group(&mut gq, ql * hd, d.batch),
        per_group(&mut gk, kl * hd, d.batch),
        per_group(&mut gv, kl * hd, d.batch),
    );
    cq.into_par_iter()
        .zip(ck)
        .zip(cv)
        .enumerate()
        .for_each(|(grp, ((a, b), c))| group(grp, a, b, c));
    let finish = |mut buf: Vec<f32>, share: f32| {
        if buf.is_empty() && share == 0.0 {
            return None;
        }
        if share != 1.0 {
            buf.iter_mut().for_each(|x| *x *= share);
        }
        Some(buf)
    };
    Ok([
        finish(gq, shares[0]),
        finish(gk, shares[1]),
        finish(gv, shares[2]),
    ])
}

/// `buf` as `groups` chunks of `len`, or `groups` empty chunks where `buf` is empty (a
/// gradient not asked for).
fn per_group(buf: &mut [f32], len: usize, groups: usize) -> Vec<&mut [f32]> {
    if buf.is_empty() || len == 0 {
        (0..groups).map(|_| &mut [][..]).collect()
    } else {
        buf.chunks_mut(len).collect()
    }
}
