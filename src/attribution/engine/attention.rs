//! Attention as an explanation baseline: one layer's attention weights (one head, or the mean
//! over heads), and attention rollout (Abnar & Zuidema 2020), the product over layers of
//! `½ (mean-head attention) + ½ I`, which follows information through the residual stream.
//! A token's score is the row of the query position the target reads (see `query_weights`).

use super::{targets::Target, Prepared};
use crate::autodiff::Tape;
use crate::error::{Error, Result};
use crate::models::AttentionHook;

/// Every layer's attention probabilities of the prompt, `[layer][head × len × len]`, and
/// `F(x)` from the same forward pass.
pub fn attention_maps(p: &Prepared) -> Result<(Vec<Vec<f32>>, f32)> {
    let mut tape = Tape::new();
    let mut hook = AttentionHook::recording();
    let x = tape.constant(p.x_batch()?);
    let h = p.model.forward_hooked(&mut tape, x, &mut hook)?;
    let maps = hook
        .probabilities
        .iter()
        .map(|&v| tape.value(v).to_vec())
        .collect::<Result<_>>()?;
    let f = p.target.score(p.model, &mut tape, h)?;
    Ok((maps, tape.value(f).to_vec()?[0]))
}

/// How much each query position's row counts towards the target: the last position for a
/// next token, the first ([CLS]) for a classifier, all of them for mean-pooled cosine.
pub fn query_weights(target: &Target, len: usize) -> Vec<f32> {
    let mut w = vec![0.0; len];
    match target {
        Target::NextToken { .. } => w[len - 1] = 1.0,
        Target::Class { .. } => w[0] = 1.0,
        Target::Cosine { .. } => w.fill(1.0 / len as f32),
    }
    w
}

/// The layer to read: `requested`, or the last.
pub fn layer_index(p: &Prepared, requested: Option<usize>) -> Result<usize> {
    let layers = p.model.info.layers;
    match requested {
        None => Ok(layers - 1),
        Some(l) if l < layers => Ok(l),
        Some(l) => Err(Error::InvalidArgument(format!(
            "--layer {l}: {} has layers 0 to {}",
            p.model.name,
            layers - 1
        ))),
    }
}

/// `[len × len]`: one head of `layer`, or the mean over heads.
pub fn head_map(layer: &[f32], heads: usize, len: usize, head: Option<usize>) -> Result<Vec<f32>> {
    let n = len * len;
    match head {
        Some(h) if h >= heads => Err(Error::InvalidArgument(format!(
            "--head {h}: the model has heads 0 to {}",
            heads - 1
        ))),
        Some(h) => Ok(layer[h * n..(h + 1) * n].to_vec()),
        None => Ok((0..n)
            .map(|i| (0..heads).map(|h| layer[h * n + i]).sum::<f32>() / heads as f32)
            .collect()),
    }
}

/// Rollout `[len × len]` over all layers.
pub fn rollout(maps: &[Vec<f32>], heads: usize, len: usize) -> Result<Vec<f32>> {
    let mut r: Vec<f64> = (0..len * len)
        .map(|i| if i / len == i % len { 1.0 } else { 0.0 })
        .collect();
    for layer in maps {
        let mean = head_map(layer, heads, len, None)?;
        let a: Vec<f64> = (0..len * len)
            .map(|i| 0.5 * mean[i] as f64 + if i / len == i % len { 0.5 } else { 0.0 })
            .collect();
        let mut next = vec![0.0f64; len * len];
        for q in 0..len {
            for m in 0..len {
                let aqm = a[q * len + m];
                if aqm != 0.0 {
                    for k in 0..len {
                        next[q * len + k] += aqm * r[m * len + k];
                    }
                }
            }
        }
        r = next;
    }
    Ok(r.into_iter().map(|v| v as f32).collect())
}

/// Per-token scores: the query rows of `map: [len × len]` weighted by `query_weights`.
pub fn token_scores(map: &[f32], weights: &[f32]) -> Vec<f32> {
    let len = weights.len();
    (0..len)
        .map(|k| (0..len).map(|q| weights[q] * map[q * len + k]).sum())
        .collect()
}

/// `[layer][head][query][key]`, for the JSON.
pub fn nested(maps: &[Vec<f32>], heads: usize, len: usize) -> Vec<Vec<Vec<Vec<f32>>>> {
    maps.iter()
        .map(|layer| {
            layer
                .chunks(len * len)
                .take(heads)
                .map(|h| h.chunks(len).map(<[f32]>::to_vec).collect())
                .collect()
        })
        .collect()
}
