//! Sequential integrated gradients (Enguehard 2023): for each token `i`, IG along a path on
//! which only token `i` moves from the baseline, the others keeping their real embeddings;
//! row `i` of that IG is token `i`'s attribution. Per token, completeness holds:
//! `Σ_d attr_i = F(x) − F(x with token i at the baseline)`. All `tokens × steps` points run
//! batched.

use super::common;
use crate::attribution::engine::{points, Baseline, Prepared};
use crate::attribution::{
    Attribution, Family, Method, MethodInfo, OptionSpec, Quadrature, TokenScore, Values,
};
use crate::error::Result;
use crate::tensor::Tensor;

#[derive(Clone, Debug)]
pub struct SequentialIg {
    pub steps: usize,
    pub quadrature: Quadrature,
    /// The paper's is the pad (or mask) embedding.
    pub baseline: Baseline,
}

const STEPS: OptionSpec = common::steps("50");
const BASELINE: OptionSpec = common::baseline("pad-or-zero");

pub static INFO: MethodInfo = MethodInfo {
    name: "sequential-ig",
    aliases: &[],
    summary: "IG per token, the other tokens kept real",
    cost: "tokens x steps forward+backward, batched, + tokens + 1 forwards",
    family: Family::Path,
    options: &[STEPS, common::QUADRATURE, BASELINE],
    build: |v| Ok(Box::new(SequentialIg::from_values(v)?)),
};

impl SequentialIg {
    pub fn from_values(v: &Values) -> Result<Self> {
        Ok(SequentialIg {
            steps: v.positive(&STEPS)?,
            quadrature: v.get(&common::QUADRATURE)?,
            baseline: v.get(&BASELINE)?,
        })
    }
}

impl Default for SequentialIg {
    fn default() -> Self {
        Self::from_values(&Values::new()).expect("the defaults are valid")
    }
}

impl Method for SequentialIg {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn run(&self, p: &Prepared) -> Result<Attribution> {
        let baseline = p.baseline(&self.baseline)?;
        let r = sequential_ig(p, &baseline, self)?;
        let mut a = p.result(INFO.name, TokenScore::Sum, r.map, r.f_x);
        a.set_extra("steps", self.steps);
        a.set_extra("quadrature", self.quadrature.name());
        let gaps: Vec<f32> = r.f_without.iter().map(|f| r.f_x - f).collect();
        let worst = (0..gaps.len())
            .max_by(|&i, &j| r.deltas[i].abs().total_cmp(&r.deltas[j].abs()))
            .unwrap_or(0);
        let scale = gaps.iter().fold(1e-6f32, |m, g| m.max(g.abs()));
        if r.deltas[worst].abs() > 0.05 * scale {
            a.warnings.push(format!(
                "token {worst}'s delta {:.4} is {:.0}% of the largest per-token gap F(x) - F(x with token i at the baseline) = {scale:.4}; try more --steps",
                r.deltas[worst],
                100.0 * r.deltas[worst].abs() / scale
            ));
        }
        a.set_extra("per_token_delta", r.deltas);
        Ok(a)
    }
}

pub struct Out {
    pub map: Vec<f32>,
    pub f_x: f32,
    /// `F(x with token i at the baseline)`, per token.
    pub f_without: Vec<f32>,
    /// `Σ_d attr_i − (F(x) − F(x_{-i}))`, per token.
    pub deltas: Vec<f32>,
}

pub fn sequential_ig(p: &Prepared, baseline: &Tensor, opts: &SequentialIg) -> Result<Out> {
    let (len, d) = (p.ids.len(), p.model.hidden_size());
    let (x, b) = (p.x.to_vec()?, baseline.to_vec()?);
    let (alphas, weights) = opts.quadrature.nodes(opts.steps)?;
    let steps = alphas.len();
    // Point (i, k): x with row i at x′_i + α_k (x_i − x′_i).
    let fill = |index: usize, out: &mut [f32]| {
        let (i, k) = (index / steps, index % steps);
        out.copy_from_slice(&x);
        let a = alphas[k] as f32;
        for j in i * d..(i + 1) * d {
            out[j] = b[j] + a * (x[j] - b[j]);
        }
    };
    let take = |index: usize, _f: f32, g: &[f32], acc: &mut [f64]| {
        let (i, k) = (index / steps, index % steps);
        for j in i * d..(i + 1) * d {
            acc[j] += weights[k] * g[j] as f64 * (x[j] - b[j]) as f64;
        }
    };
    let map =
        points::accumulate_gradients(p, len * steps, len * d, fill, take, p.batch_size, p.watch())?;
    // F(x) and F with each token at the baseline, in one forward batch.
    let ends = points::scores(
        p,
        len + 1,
        |index, out: &mut [f32]| {
            out.copy_from_slice(&x);
            if index < len {
                out[index * d..(index + 1) * d].copy_from_slice(&b[index * d..(index + 1) * d]);
            }
        },
        p.batch_size,
    )?;
    let f_x = ends[len];
    let f_without = ends[..len].to_vec();
    let deltas = (0..len)
        .map(|i| {
            let total: f64 = map[i * d..(i + 1) * d].iter().sum();
            (total - (f_x - f_without[i]) as f64) as f32
        })
        .collect();
    Ok(Out {
        map: map.into_iter().map(|v| v as f32).collect(),
        f_x,
        f_without,
        deltas,
    })
}
