//! GradientSHAP (Lundberg & Lee 2017, Captum's estimator): expected gradients over a baseline
//! set, with optional input noise. Sample `s` draws its baseline, `α` and noise from its own
//! seeded stream, so results do not depend on batching.

use super::common;
use crate::attribution::engine::{chunks, noise, random::Rng, Baseline, Prepared};
use crate::attribution::{Attribution, Family, Method, MethodInfo, OptionSpec, Values};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

#[derive(Clone, Debug)]
pub struct GradientShap {
    pub baselines: Vec<Baseline>,
    pub samples: usize,
    /// σ of the input noise (0: none).
    pub noise_std: f32,
    pub seed: u64,
}

const SAMPLES: OptionSpec = common::samples("20");

pub static INFO: MethodInfo = MethodInfo {
    name: "gradient-shap",
    aliases: &[],
    summary: "expected gradients over --baselines",
    cost: "samples forward+backward, batched, + 1 forward of the baselines",
    family: Family::Sampling,
    options: &[common::BASELINES, SAMPLES, common::NOISE_STD, common::SEED],
    build: |v| Ok(Box::new(GradientShap::from_values(v)?)),
};

impl GradientShap {
    pub fn from_values(v: &Values) -> Result<Self> {
        Ok(GradientShap {
            baselines: Baseline::parse_set(&v.get::<String>(&common::BASELINES)?)?,
            samples: v.positive(&SAMPLES)?,
            noise_std: v.get_opt(&common::NOISE_STD)?.unwrap_or(0.0),
            seed: v.get(&common::SEED)?,
        })
    }
}

impl Default for GradientShap {
    fn default() -> Self {
        Self::from_values(&Values::new()).expect("the defaults are valid")
    }
}

impl Method for GradientShap {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn run(&self, p: &Prepared) -> Result<Attribution> {
        if self.samples == 0 {
            return Err(Error::InvalidArgument(
                "--samples must be at least 1".into(),
            ));
        }
        let set = p.baseline_set(&self.baselines)?;
        let r = gradient_shap(p, &set, self, self.noise_std)?;
        let mut a = p.referenced(INFO.name, r.map, r.f_x, r.f_baselines);
        a.set_extra("samples", self.samples);
        a.set_extra("noise_std", self.noise_std);
        a.set_extra("seed", self.seed);
        Ok(a)
    }

    fn delta_hint(&self) -> &'static str {
        "; it is a Monte Carlo estimate: try more --samples"
    }
}

struct Out {
    pub map: Vec<f32>,
    pub f_x: f32,
    /// Mean `F` over the baseline set.
    pub f_baselines: f32,
}

/// Mean over samples of `∇F(b + α(x̃ − b)) ⊙ (x̃ − b)`, with `b` drawn from `baselines`,
/// `α ~ U(0, 1)` and `x̃ = x + ε`, `ε ~ N(0, σ²)`.
fn gradient_shap(
    p: &Prepared,
    baselines: &[Tensor],
    opts: &GradientShap,
    sigma: f32,
) -> Result<Out> {
    let s_total = opts.samples;
    let (len, d) = (p.ids.len(), p.model.hidden_size());
    let x = p.x.to_vec()?;
    let base: Vec<Vec<f32>> = baselines
        .iter()
        .map(|b| b.to_vec())
        .collect::<Result<_>>()?;
    let (chunk, concurrent) = chunks::for_gradients(p, p.batch_size, s_total);
    let work = |start: usize, end: usize| -> Result<Vec<f64>> {
        let (mut points, mut deltas) = (Vec::new(), Vec::new());
        for s in start..end {
            let mut rng = Rng::for_sample(opts.seed, s as u64);
            let b = &base[rng.index(base.len())];
            let alpha = rng.uniform() as f32;
            let xt = noise::noisy(&x, sigma, &mut rng);
            for j in 0..len * d {
                points.push(b[j] + alpha * (xt[j] - b[j]));
                deltas.push(xt[j] - b[j]);
            }
        }
        let pts = Tensor::from_vec(points, [end - start, len, d], p.x.device())?;
        let (_, g) = p.gradients(&pts)?;
        let mut acc = vec![0.0f64; len * d];
        for (i, (g, dl)) in g.to_vec()?.iter().zip(&deltas).enumerate() {
            acc[i % (len * d)] += (*g as f64) * (*dl as f64);
        }
        Ok(acc)
    };
    let sum = chunks::run(
        s_total,
        chunk,
        concurrent,
        work,
        chunks::add_vecs,
        p.watch(),
    )?;
    let map = sum.iter().map(|v| (v / s_total as f64) as f32).collect();
    let f_x = p.score_x()?;
    let f_baselines = noise::mean_score(p, &base)?;
    Ok(Out {
        map,
        f_x,
        f_baselines,
    })
}
