//! DeepLIFT (rescale rule) against one reference; `rescale` is also DeepLIFT-SHAP's. The input and its reference run in one batch:
//! `[x, …, x, b_1, …, b_n]`, the target seeded with 1 on the inputs and 0 on the references;
//! the rule set (`rules::DeepLift`) pairs row i with row i + n. The attribution is
//! `mean_i m_i ⊙ (x − b_i)`, which sums to `F(x) − mean_i F(b_i)` exactly.

use super::common;
use crate::attribution::engine::{Baseline, Prepared};
use crate::attribution::{Attribution, Family, Method, MethodInfo, OptionSpec, Values};
use crate::error::Result;
use crate::rules;
use crate::tensor::Tensor;

#[derive(Clone, Debug)]
pub struct DeepLift {
    pub baseline: Baseline,
}

const BASELINE: OptionSpec = common::baseline("zero");

pub static INFO: MethodInfo = MethodInfo {
    name: "deeplift",
    aliases: &[],
    summary: "rescale rule against --baseline",
    cost: "1 forward + 1 backward of a batch of 2 (input, reference)",
    family: Family::Rule,
    options: &[BASELINE],
    build: |v| Ok(Box::new(DeepLift::from_values(v)?)),
};

impl DeepLift {
    pub fn from_values(v: &Values) -> Result<Self> {
        Ok(DeepLift {
            baseline: v.get(&BASELINE)?,
        })
    }
}

impl Default for DeepLift {
    fn default() -> Self {
        Self::from_values(&Values::new()).expect("the defaults are valid")
    }
}

impl Method for DeepLift {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn run(&self, p: &Prepared) -> Result<Attribution> {
        let r = rescale(p, &[p.baseline(&self.baseline)?])?;
        Ok(p.referenced(INFO.name, r.map, r.f_x, r.f_ref))
    }
}

pub struct Out {
    pub map: Vec<f32>,
    pub f_x: f32,
    /// Mean of `F` over the references.
    pub f_ref: f32,
}

/// `mean_i m_i ⊙ (x − b_i)` over the references `baselines`.
pub fn rescale(p: &Prepared, baselines: &[Tensor]) -> Result<Out> {
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
    let (f, m) = p.gradients_seeded(&xs, &rules::DeepLift, &seed)?;
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
