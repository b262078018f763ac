//! KernelSHAP (Lundberg & Lee 2017), tokens as features: a weighted least-squares fit of `F`
//! over random coalitions, with `F(∅) = F(x′)` and the efficiency constraint
//! `Σ φ = F(x) − F(x′)` imposed exactly (one coefficient is eliminated), not approximated by a
//! large weight as Captum does. Coalition sizes are drawn from the Shapley kernel
//! `p(k) ∝ (M − 1) / (k (M − k))`, so each sample weighs 1. When `--samples` covers every
//! coalition (`2^M − 2`), all of them run with their kernel weights and the result is the
//! exact Shapley values. Coalition `s` is drawn from its own seeded stream.

use super::common;
use crate::attribution::engine::{coalitions, random::Rng, Baseline, Prepared};
use crate::attribution::{Attribution, Family, Method, MethodInfo, OptionSpec, Values};
use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub struct KernelShap {
    pub baseline: Baseline,
    /// Coalitions fitted (besides the empty and the full one).
    pub samples: usize,
    pub seed: u64,
}

const BASELINE: OptionSpec = common::baseline("zero");
const SAMPLES: OptionSpec = common::samples("200");

pub static INFO: MethodInfo = MethodInfo {
    name: "kernel-shap",
    aliases: &[],
    summary: "weighted least squares over --samples coalitions; sums to F(x) - F(x') exactly",
    cost: "samples + 2 forwards, batched (all 2^tokens when --samples covers them)",
    family: Family::Perturbation,
    options: &[BASELINE, SAMPLES, common::SEED],
    build: |v| Ok(Box::new(KernelShap::from_values(v)?)),
};

impl KernelShap {
    pub fn from_values(v: &Values) -> Result<Self> {
        Ok(KernelShap {
            baseline: v.get(&BASELINE)?,
            samples: v.positive(&SAMPLES)?,
            seed: v.get(&common::SEED)?,
        })
    }
}

impl Default for KernelShap {
    fn default() -> Self {
        Self::from_values(&Values::new()).expect("the defaults are valid")
    }
}

/// The Shapley kernel's weight of a coalition of `k` of `m` features.
pub fn kernel_weight(k: usize, m: usize) -> f64 {
    let binomial = (0..k).fold(1f64, |c, i| c * (m - i) as f64 / (i + 1) as f64);
    (m - 1) as f64 / (binomial * k as f64 * (m - k) as f64)
}

/// A coalition size from the Shapley kernel's distribution over `1..m`.
fn kernel_size(rng: &mut Rng, m: usize) -> usize {
    let p: Vec<f64> = (1..m)
        .map(|k| (m - 1) as f64 / (k * (m - k)) as f64)
        .collect();
    let mut u = rng.uniform() * p.iter().sum::<f64>();
    for (i, pk) in p.iter().enumerate() {
        if u < *pk {
            return i + 1;
        }
        u -= pk;
    }
    m - 1
}

/// The coefficients of `F(z) ≈ F(x′) + z · φ` by weighted least squares over `masks` (with
/// weights and scores `y`), subject to `Σ φ = f_x − f_b`.
pub fn fit(
    masks: &[Vec<bool>],
    weights: &[f64],
    y: &[f32],
    f_x: f32,
    f_b: f32,
) -> Result<Vec<f32>> {
    let m = masks.first().map_or(0, Vec::len);
    let gap = f_x as f64 - f_b as f64;
    if m <= 1 {
        return Ok(vec![gap as f32; m]);
    }
    // φ_m = gap − Σ_{j<m} φ_j: then y − f_b − z_m gap = Σ_{j<m} (z_j − z_m) φ_j.
    let n = m - 1;
    let (mut ata, mut atb) = (vec![0.0f64; n * n], vec![0.0f64; n]);
    for ((z, &w), &ys) in masks.iter().zip(weights).zip(y) {
        let last = z[n] as u8 as f64;
        let a: Vec<f64> = (0..n).map(|j| z[j] as u8 as f64 - last).collect();
        let t = ys as f64 - f_b as f64 - last * gap;
        for i in 0..n {
            if a[i] != 0.0 {
                atb[i] += w * a[i] * t;
                for j in 0..n {
                    ata[i * n + j] += w * a[i] * a[j];
                }
            }
        }
    }
    let head = coalitions::solve(ata, atb).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "kernel-shap: {} coalitions do not determine {m} tokens' values; use more --samples",
            masks.len()
        ))
    })?;
    let rest = gap - head.iter().sum::<f64>();
    Ok(head.iter().chain([&rest]).map(|&v| v as f32).collect())
}

impl Method for KernelShap {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn run(&self, p: &Prepared) -> Result<Attribution> {
        let m = p.ids.len();
        let b = p.baseline(&self.baseline)?.to_vec()?;
        // Every proper coalition, when there are no more than the samples asked for.
        let every = m < usize::BITS as usize - 1 && (1usize << m).saturating_sub(2) <= self.samples;
        // M − 1 free coefficients need at least as many coalitions: refused before any pass.
        if !every && self.samples < m - 1 {
            return Err(Error::InvalidArgument(format!(
                "kernel-shap: {} coalitions cannot determine {m} tokens' values; use --samples {} or more",
                self.samples,
                m - 1
            )));
        }
        let (masks, weights): (Vec<Vec<bool>>, Vec<f64>) = if every {
            (1..(1usize << m) - 1)
                .map(|c| {
                    let mask: Vec<bool> = (0..m).map(|t| c >> t & 1 == 1).collect();
                    let k = mask.iter().filter(|&&v| v).count();
                    (mask, kernel_weight(k, m))
                })
                .unzip()
        } else {
            (0..self.samples)
                .map(|s| {
                    let mut rng = Rng::for_sample(self.seed, s as u64);
                    let k = kernel_size(&mut rng, m);
                    (coalitions::random_subset(&mut rng, m, k), 1.0)
                })
                .unzip()
        };
        // The full and the empty coalition last: F(x) and F(x′).
        let count = masks.len();
        let f = coalitions::scores(p, &b, count + 2, |c, t| match c {
            c if c < count => masks[c][t],
            c => c == count,
        })?;
        let (f_x, f_b) = (f[count], f[count + 1]);
        let scores = fit(&masks, &weights, &f[..count], f_x, f_b)?;
        let mut a = p.token_level_referenced(INFO.name, scores, f_x, f_b);
        a.set_extra("samples", count);
        a.set_extra("every_coalition", every);
        if !every {
            a.set_extra("seed", self.seed);
        }
        Ok(a)
    }
}
