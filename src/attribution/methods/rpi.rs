//! Relevance propagation by integration over attention (RPI, Barkan et al. 2024): integrated
//! gradients over one layer's attention probabilities `A`, from a diffusion-style random
//! baseline `B = sqrt(ᾱ_T)·A + sqrt(1 − ᾱ_T)·ε` (β linear from 1e-4 to 0.02 over T = 500
//! steps) to `A`. At each path point `P_k = B + α_k (A − B)` the model runs with `P_k` in place
//! of that layer's attention, and `A ⊙ Σ_k w_k ∇_P F(P_k)` is averaged over heads; the target's
//! query row gives per-token scores, averaged over `samples` noise draws. (The reference code
//! keeps the draw that scores best on the evaluation metric, which is circular; we average.)
//! Noise is drawn only where attention is allowed (causal models never see the future).
//! Draw `m` uses its own seeded stream, so results do not depend on batching.

use super::common;
use crate::attribution::engine::{attention, chunks, evaluate, random::Rng, Prepared};
use crate::attribution::{
    Attribution, Family, Kind, Method, MethodInfo, OptionSpec, Quadrature, Values,
};
use crate::error::Result;
use crate::ops;
use crate::tensor::Tensor;

#[derive(Clone, Debug)]
pub struct Rpi {
    pub steps: usize,
    pub quadrature: Quadrature,
    /// Noise draws.
    pub samples: usize,
    pub seed: u64,
    /// The layer whose attention is integrated (`None`: the last).
    pub layer: Option<usize>,
}

const STEPS: OptionSpec = common::steps("30");
const SAMPLES: OptionSpec = common::samples("4");
pub(crate) const LAYER: OptionSpec = OptionSpec::new(
    "layer",
    Kind::Count,
    None,
    "the layer whose attention is read (default: the last)",
);

pub static INFO: MethodInfo = MethodInfo {
    name: "rpi",
    aliases: &[],
    summary: "IG over --layer's attention from noise (--samples draws)",
    cost: "samples x steps forward+backward, batched, + 1 forward",
    family: Family::Attention,
    options: &[STEPS, common::QUADRATURE, SAMPLES, common::SEED, LAYER],
    build: |v| Ok(Box::new(Rpi::from_values(v)?)),
};

impl Rpi {
    pub fn from_values(v: &Values) -> Result<Self> {
        Ok(Rpi {
            steps: v.positive(&STEPS)?,
            quadrature: v.get(&common::QUADRATURE)?,
            samples: v.positive(&SAMPLES)?,
            seed: v.get(&common::SEED)?,
            layer: v.get_opt(&LAYER)?,
        })
    }
}

impl Default for Rpi {
    fn default() -> Self {
        Self::from_values(&Values::new()).expect("the defaults are valid")
    }
}

impl Method for Rpi {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn run(&self, p: &Prepared) -> Result<Attribution> {
        let r = rpi(p, self)?;
        let mut a = p.token_level(INFO.name, r.scores, r.f_x);
        a.set_extra("layer", r.layer);
        a.set_extra("steps", self.steps);
        a.set_extra("quadrature", self.quadrature.name());
        a.set_extra("samples", self.samples);
        a.set_extra("seed", self.seed);
        Ok(a)
    }
}

pub struct Out {
    pub scores: Vec<f32>,
    pub f_x: f32,
    pub layer: usize,
}

/// `ᾱ_T = Π (1 − β_t)` of the linear diffusion schedule.
fn alpha_bar() -> f64 {
    const T: usize = 500;
    (0..T)
        .map(|t| 1.0 - (1e-4 + (0.02 - 1e-4) * t as f64 / (T - 1) as f64))
        .product()
}

pub fn rpi(p: &Prepared, opts: &Rpi) -> Result<Out> {
    let layer = attention::layer_index(p, opts.layer)?;
    let len = p.ids.len();
    let heads = p.model.info.attention_heads;
    let (mut maps, f_x) = attention::attention_maps(p)?;
    let a = maps.swap_remove(layer);
    let n = a.len(); // heads × len × len
    let causal = p.model.arch.is_causal();
    let allowed = |i: usize| !causal || (i % len) <= (i / len) % len;
    let (alphas, weights) = opts.quadrature.nodes(opts.steps)?;
    let steps = alphas.len();
    let samples = opts.samples;
    let (keep, noise) = (alpha_bar().sqrt(), (1.0 - alpha_bar()).sqrt());
    let baseline = |m: usize| -> Vec<f64> {
        let mut rng = Rng::for_sample(opts.seed, m as u64);
        (0..n)
            .map(|i| {
                let e = rng.normal();
                if allowed(i) {
                    keep * a[i] as f64 + noise * e
                } else {
                    0.0
                }
            })
            .collect()
    };
    let total = samples * steps;
    let (chunk, concurrent) = chunks::for_attention_gradients(p, p.batch_size, total);
    let work = |start: usize, end: usize| -> Result<Vec<f64>> {
        let mut probs = Vec::with_capacity((end - start) * n);
        let mut draw: Option<(usize, Vec<f64>)> = None;
        for index in start..end {
            let (m, k) = (index / steps, index % steps);
            if draw.as_ref().is_none_or(|(dm, _)| *dm != m) {
                draw = Some((m, baseline(m)));
            }
            let b = &draw.as_ref().unwrap().1;
            probs.extend((0..n).map(|i| (b[i] + alphas[k] * (a[i] as f64 - b[i])) as f32));
        }
        let rows = end - start;
        let probs = Tensor::from_vec(probs, [rows, heads, len, len], p.x.device())?;
        let x = ops::interpolate(&p.x, &p.x, &vec![1.0; rows])?;
        let (_, g) = evaluate::attention_gradients(p.model, &p.target, &x, layer, probs)?;
        let g = g.to_vec()?;
        let mut acc = vec![0.0f64; n];
        for (r, gr) in g.chunks(n).enumerate() {
            let w = weights[(start + r) % steps] / samples as f64;
            acc.iter_mut()
                .zip(gr)
                .for_each(|(s, &v)| *s += w * v as f64);
        }
        Ok(acc)
    };
    let avg_grad = chunks::run(total, chunk, concurrent, work, chunks::add_vecs, p.watch())?;
    let relevance: Vec<f32> = (0..n).map(|i| (a[i] as f64 * avg_grad[i]) as f32).collect();
    let map = attention::head_map(&relevance, heads, len, None)?;
    let scores = attention::token_scores(&map, &attention::query_weights(&p.target, len));
    Ok(Out { scores, f_x, layer })
}
