//! Fused attention probabilities: each query row's scores, scale, mask and softmax in one pass.

use super::for_rows;
use super::softmax::{normalize_in_place, visible};
use crate::backend::{checks, AttentionDims, SoftmaxMask};
use crate::error::Result;

pub fn probs(
    q: &[f32],
    k: &[f32],
    d: AttentionDims,
    scale: f32,
    mask: SoftmaxMask,
) -> Result<Vec<f32>> {
    checks::attention(q.len(), k.len(), &d, "attention_probs")?;
    let (hd, kl) = (d.head_dim, d.k_len);
    let mut out = vec![0.0f32; d.batch * d.q_len * kl];
    for_rows(&mut out, kl, |r, row| {
        let qr = &q[r * hd..(r + 1) * hd];
        let keys = &k[(r / d.q_len) * kl * hd..][..kl * hd];
        let vis = visible(mask, r, kl);
        for (o, kr) in row[..vis].iter_mut().zip(keys.chunks_exact(hd)) {
            *o = scale * qr.iter().zip(kr).map(|(a, b)| a * b).sum::<f32>();
        }
        normalize_in_place(row, vis);
    });
    Ok(out)
}
