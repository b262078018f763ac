//! LIME (Ribeiro et al. 2016; Captum's `Lime`), tokens as features: `F` at random coalitions
//! (each token kept with probability ½, the rest at the baseline), weighted by an exponential
//! kernel on the cosine distance between `x` and the perturbed input,
//! `exp(−d² / (2 w²))`, and fitted by ridge regression with an intercept. The scores are the
//! coefficients. It has no completeness: they need not sum to `F(x) − F(x′)`. Coalition `s`
//! is drawn from its own seeded stream.

use super::common;
use crate::attribution::engine::{coalitions, random::Rng, Baseline, Prepared};
use crate::attribution::{Attribution, Family, Kind, Method, MethodInfo, OptionSpec, Values};
use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub struct Lime {
    pub baseline: Baseline,
    pub samples: usize,
    pub seed: u64,
    /// The kernel width `w`.
    pub kernel_width: f32,
    /// The ridge penalty.
    pub alpha: f32,
}

const BASELINE: OptionSpec = common::baseline("zero");
const SAMPLES: OptionSpec = common::samples("50");
const KERNEL_WIDTH: OptionSpec = OptionSpec::new(
    "kernel-width",
    Kind::Number,
    Some("1"),
    "lime: the width of the exponential kernel on cosine distance",
)
.within(|w| w > 0.0 && w.is_finite(), "a finite number > 0");
const ALPHA: OptionSpec =
    OptionSpec::new("alpha", Kind::Number, Some("1"), "lime: the ridge penalty")
        .within(|a| a >= 0.0 && a.is_finite(), "a finite number >= 0");

pub static INFO: MethodInfo = MethodInfo {
    name: "lime",
    aliases: &[],
    summary: "ridge fit of F over --samples random coalitions, cosine-kernel weighted",
    cost: "samples + 1 forwards, batched",
    family: Family::Perturbation,
    options: &[BASELINE, SAMPLES, common::SEED, KERNEL_WIDTH, ALPHA],
    build: |v| Ok(Box::new(Lime::from_values(v)?)),
};

impl Lime {
    pub fn from_values(v: &Values) -> Result<Self> {
        Ok(Lime {
            baseline: v.get(&BASELINE)?,
            samples: v.positive(&SAMPLES)?,
            seed: v.get(&common::SEED)?,
            kernel_width: v.get(&KERNEL_WIDTH)?,
            alpha: v.get(&ALPHA)?,
        })
    }
}

impl Default for Lime {
    fn default() -> Self {
        Self::from_values(&Values::new()).expect("the defaults are valid")
    }
}

/// Each coalition's kernel weight: `exp(−d² / (2 w²))`, `d` = 1 − cos(x, perturbed input),
/// with the cosine's denominator clamped at 1e-8 as PyTorch's is.
pub fn weights(x: &[f32], baseline: &[f32], d: usize, masks: &[Vec<bool>], width: f32) -> Vec<f64> {
    let dot = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(u, v)| *u as f64 * *v as f64)
            .sum::<f64>()
    };
    let rows = |v: &[f32]| -> Vec<f64> { v.chunks(d).map(|r| dot(r, r)).collect() };
    let (xx, bb) = (rows(x), rows(baseline));
    let xb: Vec<f64> = x
        .chunks(d)
        .zip(baseline.chunks(d))
        .map(|(a, b)| dot(a, b))
        .collect();
    let norm_x = xx.iter().sum::<f64>().sqrt();
    let w2 = 2.0 * (width as f64).powi(2);
    masks
        .iter()
        .map(|mask| {
            let (mut num, mut pp) = (0.0, 0.0);
            for (t, &keep) in mask.iter().enumerate() {
                num += if keep { xx[t] } else { xb[t] };
                pp += if keep { xx[t] } else { bb[t] };
            }
            let cos = num / (norm_x * pp.sqrt()).max(1e-8);
            (-(1.0 - cos).powi(2) / w2).exp()
        })
        .collect()
}

/// Weighted ridge regression with an (unpenalised) intercept, as scikit-learn's `Ridge`
/// with sample weights: the coefficients and the intercept.
pub fn fit(masks: &[Vec<bool>], weights: &[f64], y: &[f32], alpha: f64) -> Result<(Vec<f32>, f32)> {
    let m = masks.first().map_or(0, Vec::len);
    let total: f64 = weights.iter().sum();
    if total <= 0.0 {
        return Err(Error::InvalidArgument(
            "lime: every coalition weighs 0".into(),
        ));
    }
    let mean_z: Vec<f64> = (0..m)
        .map(|j| {
            masks
                .iter()
                .zip(weights)
                .map(|(z, w)| w * z[j] as u8 as f64)
                .sum::<f64>()
                / total
        })
        .collect();
    let mean_y = y
        .iter()
        .zip(weights)
        .map(|(v, w)| w * *v as f64)
        .sum::<f64>()
        / total;
    let (mut ata, mut atb) = (vec![0.0f64; m * m], vec![0.0f64; m]);
    for ((z, &w), &ys) in masks.iter().zip(weights).zip(y) {
        let a: Vec<f64> = (0..m).map(|j| z[j] as u8 as f64 - mean_z[j]).collect();
        let t = ys as f64 - mean_y;
        for i in 0..m {
            atb[i] += w * a[i] * t;
            for j in 0..m {
                ata[i * m + j] += w * a[i] * a[j];
            }
        }
    }
    for i in 0..m {
        ata[i * m + i] += alpha;
    }
    let coef = coalitions::solve(ata, atb).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "lime: {} coalitions do not determine {m} tokens' coefficients; use more --samples or a larger --alpha",
            masks.len()
        ))
    })?;
    let intercept = mean_y - coef.iter().zip(&mean_z).map(|(c, z)| c * z).sum::<f64>();
    Ok((coef.iter().map(|&v| v as f32).collect(), intercept as f32))
}

impl Method for Lime {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn run(&self, p: &Prepared) -> Result<Attribution> {
        let m = p.ids.len();
        let (x, b) = (p.x.to_vec()?, p.baseline(&self.baseline)?.to_vec()?);
        let masks: Vec<Vec<bool>> = (0..self.samples)
            .map(|s| {
                let mut rng = Rng::for_sample(self.seed, s as u64);
                (0..m).map(|_| rng.uniform() < 0.5).collect()
            })
            .collect();
        // x itself last: F(x), for the report.
        let count = masks.len();
        let f = coalitions::scores(p, &b, count + 1, |c, t| c == count || masks[c][t])?;
        let w = weights(&x, &b, p.model.hidden_size(), &masks, self.kernel_width);
        let (scores, intercept) = fit(&masks, &w, &f[..count], self.alpha as f64)?;
        let mut a = p.token_level(INFO.name, scores, f[count]);
        a.set_extra("samples", self.samples);
        a.set_extra("seed", self.seed);
        a.set_extra("intercept", intercept);
        Ok(a)
    }
}
