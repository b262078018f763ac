//! DeepLIFT (rescale rule) and DeepLIFT-SHAP. The input and its reference run in one batch:
//! `[x, …, x, b_1, …, b_n]`, the target seeded with 1 on the inputs and 0 on the references;
//! the rule set (`rules::DeepLift`) pairs row i with row i + n. The attribution is
//! `mean_i m_i ⊙ (x − b_i)`, which sums to `F(x) − mean_i F(b_i)` exactly.

use super::{evaluate, Prepared};
use crate::error::Result;
use crate::rules::DeepLift;
use crate::tensor::Tensor;

pub struct Out {
    pub map: Vec<f32>,
    pub f_x: f32,
    /// Mean of `F` over the references.
    pub f_ref: f32,
}

pub fn deeplift(p: &Prepared, baselines: &[Tensor]) -> Result<Out> {
    let n = baselines.len();
    let (len, d) = (p.ids.len(), p.model.hidden_size());
    let x = p.x.to_vec()?;
    let mut batch = Vec::with_capacity(2 * n * len * d);
    for _ in 0..n {
        batch.extend_from_slice(&x);
    }
    let refs: Vec<Vec<f32>> = baselines
        .iter()
        .map(|b| b.to_vec())
        .collect::<Result<_>>()?;
    for r in &refs {
        batch.extend_from_slice(r);
    }
    let xs = Tensor::from_vec(batch, [2 * n, len, d], p.x.device())?;
    let mut seed = vec![1.0; n];
    seed.extend(vec![0.0; n]);
    let (f, m) = evaluate::gradients_seeded(p.model, &p.target, &xs, &DeepLift, &seed)?;
    let m = m.to_vec()?;
    let mut map = vec![0.0f64; len * d];
    for (i, r) in refs.iter().enumerate() {
        let mi = &m[i * len * d..(i + 1) * len * d];
        for j in 0..len * d {
            map[j] += mi[j] as f64 * (x[j] - r[j]) as f64 / n as f64;
        }
    }
    Ok(Out {
        map: map.into_iter().map(|v| v as f32).collect(),
        f_x: f[0],
        f_ref: (f[n..].iter().map(|&v| v as f64).sum::<f64>() / n as f64) as f32,
    })
}
