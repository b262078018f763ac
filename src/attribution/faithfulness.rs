//! Faithfulness of attributions: does removing the tokens a method ranks highest change `F`
//! more than removing others? For each method, tokens are ranked by score, and `F` is measured
//!
//! - along the **deletion** curve: the top `k` tokens replaced by the baseline, for 0%, 10%, …,
//!   100% of the tokens (lower area is better);
//! - along the **insertion** curve: the baseline with only the top `k` tokens real (higher area
//!   is better);
//! - **comprehensiveness** and **sufficiency** (DeYoung et al. 2020): the mean over the bins
//!   1%, 5%, 10%, 20%, 50% (at least one token each) of `F(x) − F(x without the top k)` (higher is
//!   better) and `F(x) − F(only the top k)` (lower is better);
//! - **AOPC** (Samek et al. 2017): the mean of `F(x) − F(x without the top k)` over the deletion
//!   curve's points.
//!
//! Every perturbed copy of every method runs in one batched set of forward passes.

use super::engine::points;
use super::{run_prepared, Attribution, Baseline, Method, Prepared, Settings, TargetInfo};
use crate::error::Result;
use crate::models::Model;
use serde::{Deserialize, Serialize};
use std::time::Instant;

pub const FRACTIONS: [f32; 11] = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
pub const BINS: [f32; 5] = [0.01, 0.05, 0.1, 0.2, 0.5];
/// The k of the agreement matrix's top-k overlap (at most half the tokens).
pub const AGREEMENT_TOP_K: usize = 5;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MethodFaithfulness {
    pub method: String,
    pub scores: Vec<f32>,
    /// Token indices, highest score first.
    pub ranking: Vec<usize>,
    /// `F` with the top `round(f × tokens)` tokens replaced, for each of `fractions`.
    pub deletion: Vec<f32>,
    /// `F` of the baseline with the top `round(f × tokens)` tokens real.
    pub insertion: Vec<f32>,
    /// Trapezoidal areas under the curves over `fractions`.
    pub deletion_auc: f32,
    pub insertion_auc: f32,
    pub comprehensiveness: f32,
    pub sufficiency: f32,
    pub aopc: f32,
    /// The attribution's own time.
    pub elapsed_ms: f64,
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Evaluation {
    pub model: String,
    pub architecture: String,
    pub tokens: Vec<String>,
    pub target: TargetInfo,
    /// `F(x)` and `F` with every token at the baseline.
    pub target_score: f32,
    pub baseline_score: f32,
    /// What removed tokens are replaced by.
    pub baseline: String,
    pub fractions: Vec<f32>,
    pub bins: Vec<f32>,
    pub methods: Vec<MethodFaithfulness>,
    /// How far the methods agree on the ranking of the tokens (two or more methods).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement: Option<super::agreement::Agreement>,
    pub elapsed_ms: f64,
}

/// Tokens by score, highest first (ties: earlier first, so the order is deterministic).
fn ranking(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order
}

fn trapezoid(xs: &[f32], ys: &[f32]) -> f32 {
    xs.windows(2)
        .zip(ys.windows(2))
        .map(|(x, y)| (x[1] - x[0]) * 0.5 * (y[0] + y[1]))
        .sum()
}

/// One perturbed copy: the top `k` of `order` taken from `x` and the rest from `baseline`
/// (`keep`), or the reverse.
struct Copy {
    method: usize,
    k: usize,
    keep: bool,
}

/// The one baseline every evaluated method and every removed token share: `values`'
/// `baseline`, or the pad token's embedding where the model has one, else zero (set into
/// `values`, so each method reads the same).
pub fn shared_baseline(values: &mut crate::attribution::Values) -> Result<Baseline> {
    let text = values.raw("baseline").unwrap_or("pad-or-zero").to_string();
    let baseline: Baseline = text.parse()?;
    values.set("baseline", &text);
    Ok(baseline)
}

/// Attributes `ids` with each method and measures the faithfulness of each; `baseline`
/// replaces removed tokens. Every method explains the same target, resolved once.
pub fn faithfulness(
    model: &Model,
    ids: &[u32],
    methods: &[&dyn Method],
    baseline: &Baseline,
    settings: &Settings,
) -> Result<Evaluation> {
    let start = Instant::now();
    let p = Prepared::from_ids(model, ids.to_vec(), settings)?;
    let len = ids.len();
    let d = model.hidden_size();
    let results: Vec<Attribution> = methods
        .iter()
        .map(|m| run_prepared(&p, *m))
        .collect::<Result<_>>()?;
    let orders: Vec<Vec<usize>> = results.iter().map(|a| ranking(&a.scores)).collect();
    let count = |f: f32| ((f * len as f32).round() as usize).min(len);
    let bin_count = |f: f32| ((f * len as f32).ceil() as usize).clamp(1, len);
    let mut copies = Vec::new();
    for m in 0..results.len() {
        for keep in [false, true] {
            copies.extend(FRACTIONS.iter().map(|&f| Copy {
                method: m,
                k: count(f),
                keep,
            }));
            copies.extend(BINS.iter().map(|&f| Copy {
                method: m,
                k: bin_count(f),
                keep,
            }));
        }
    }
    let (x, b) = (p.x.to_vec()?, p.baseline(baseline)?.to_vec()?);
    // The last two copies: x itself and the whole baseline.
    let n = copies.len() + 2;
    let fill = |i: usize, out: &mut [f32]| {
        if i >= copies.len() {
            out.copy_from_slice(if i == copies.len() { &x } else { &b });
            return;
        }
        let c = &copies[i];
        let (top, rest) = if c.keep { (&x, &b) } else { (&b, &x) };
        out.copy_from_slice(rest);
        for &t in &orders[c.method][..c.k] {
            out[t * d..(t + 1) * d].copy_from_slice(&top[t * d..(t + 1) * d]);
        }
    };
    let f = points::scores(&p, n, fill, settings.batch_size)?;
    let (f_x, f_b) = (f[n - 2], f[n - 1]);
    let per = 2 * (FRACTIONS.len() + BINS.len());
    let mut out = Vec::with_capacity(results.len());
    for (m, a) in results.into_iter().enumerate() {
        let block = &f[m * per..(m + 1) * per];
        let (removed, kept) = block.split_at(per / 2);
        let (deletion, del_bins) = removed.split_at(FRACTIONS.len());
        let (insertion, ins_bins) = kept.split_at(FRACTIONS.len());
        let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
        out.push(MethodFaithfulness {
            method: a.method.clone(),
            ranking: orders[m].clone(),
            deletion_auc: trapezoid(&FRACTIONS, deletion),
            insertion_auc: trapezoid(&FRACTIONS, insertion),
            comprehensiveness: mean(&del_bins.iter().map(|v| f_x - v).collect::<Vec<_>>()),
            sufficiency: mean(&ins_bins.iter().map(|v| f_x - v).collect::<Vec<_>>()),
            aopc: mean(&deletion.iter().map(|v| f_x - v).collect::<Vec<_>>()),
            deletion: deletion.to_vec(),
            insertion: insertion.to_vec(),
            scores: a.scores,
            elapsed_ms: a.elapsed_ms,
            warnings: a.warnings,
        });
    }
    let agreement = (out.len() >= 2).then(|| {
        let names: Vec<String> = out.iter().map(|m| m.method.clone()).collect();
        let scores: Vec<Vec<f32>> = out.iter().map(|m| m.scores.clone()).collect();
        // On short prompts a top-5 would hold every token: at most half of them.
        let k = AGREEMENT_TOP_K.min(ids.len().div_ceil(2));
        super::agreement::agreement(&names, &scores, k)
    });
    Ok(Evaluation {
        model: model.name.clone(),
        architecture: model.arch.name().to_string(),
        tokens: ids.iter().map(|&i| model.tokenizer.token_text(i)).collect(),
        target: p.target.info(model),
        target_score: f_x,
        baseline_score: f_b,
        baseline: match baseline {
            Baseline::Zero => "zero".into(),
            Baseline::Pad => "pad".into(),
            Baseline::PadOrZero if model.pad_token_id().is_some() => "pad".into(),
            Baseline::PadOrZero => "zero".into(),
            Baseline::Custom(_) => "custom".into(),
        },
        fractions: FRACTIONS.to_vec(),
        bins: BINS.to_vec(),
        methods: out,
        agreement,
        elapsed_ms: start.elapsed().as_secs_f64() * 1e3,
    })
}
