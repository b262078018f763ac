//! Fused attention probabilities: each query row's scores, scale, mask and softmax in one pass.

use super::softmax::scaled_softmax_in_place;
use crate::backend::{AttentionDims, SoftmaxMask};
use crate::error::Result;
use rayon::prelude::*;

/// One task per (batch, head) group: its scores are a `q_len × k_len` product `Q Kᵀ`, as the
/// fused attention's blocks compute theirs. Under a causal mask the hidden upper triangle is
/// computed too and then zeroed.
pub fn probs(
    q: &[f32],
    k: &[f32],
    d: AttentionDims,
    scale: f32,
    mask: SoftmaxMask,
) -> Result<Vec<f32>> {
    let (hd, ql, kl) = (d.head_dim, d.q_len, d.k_len);
    let mut out = super::zeros(d.batch * ql * kl, "the attention probabilities")?;
    if out.is_empty() {
        return Ok(out);
    }
    let group = |(g, scores): (usize, &mut [f32])| {
        let queries = &q[g * ql * hd..(g + 1) * ql * hd];
        let keys = &k[g * kl * hd..(g + 1) * kl * hd];
        super::fused_attention::scores_into(scores, queries, keys, ql, kl, hd);
        for (i, row) in scores.chunks_mut(kl).enumerate() {
            let vis = mask.visible(g * ql + i, kl);
            row[..vis.start].iter_mut().for_each(|s| *s = 0.0);
            row[vis.end..].iter_mut().for_each(|s| *s = 0.0);
            let visible = &mut row[vis];
            scaled_softmax_in_place(visible, scale);
        }
    };
    out.par_chunks_mut(ql * kl).enumerate().for_each(group);
    Ok(out)
}
