//! Shapley value sampling (Castro et al. 2009; Captum's `ShapleyValueSampling`), tokens as
//! players: for each of `samples` random orders, the tokens join a coalition one at a time,
//! from the baseline to `x`, and each is credited with `F` after minus `F` before it joined.
//! Each order's credits sum to `F(x) − F(x′)` exactly, so the average does too. With
//! `--exact` (at most 8 tokens), every coalition runs and the scores are the Shapley values.
//! All coalitions are forward passes only, batched; order `k` is drawn from its own seeded
//! stream, so the result does not depend on batching.

use super::common;
use crate::attribution::engine::{coalitions, random::Rng, Baseline, Prepared};
use crate::attribution::{Attribution, Family, Kind, Method, MethodInfo, OptionSpec, Values};
use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub struct ShapleySampling {
    /// What an absent token is replaced by.
    pub baseline: Baseline,
    /// Random orders.
    pub samples: usize,
    pub seed: u64,
    /// Enumerate every coalition instead of sampling orders.
    pub exact: bool,
}

/// `--exact` runs `2^tokens` forward passes.
pub const MAX_EXACT_TOKENS: usize = 8;

const BASELINE: OptionSpec = common::baseline("zero");
const SAMPLES: OptionSpec = common::samples("25");
const EXACT: OptionSpec = OptionSpec::new(
    "exact",
    Kind::Flag,
    None,
    "shapley-sampling: every coalition (2^tokens forward passes, at most 8 tokens)",
);

pub static INFO: MethodInfo = MethodInfo {
    name: "shapley-sampling",
    aliases: &[],
    summary: "Shapley values of the tokens from --samples random orders (or --exact)",
    cost: "samples x (tokens + 1) forwards, batched; --exact: 2^tokens forwards",
    family: Family::Perturbation,
    options: &[BASELINE, SAMPLES, common::SEED, EXACT],
    build: |v| Ok(Box::new(ShapleySampling::from_values(v)?)),
};

impl ShapleySampling {
    pub fn from_values(v: &Values) -> Result<Self> {
        let exact = v.flag(&EXACT)?;
        Ok(ShapleySampling {
            baseline: v.get(&BASELINE)?,
            // Orders are not drawn when every coalition runs.
            samples: if exact {
                SAMPLES.default_value()
            } else {
                v.positive(&SAMPLES)?
            },
            seed: if exact { 0 } else { v.get(&common::SEED)? },
            exact,
        })
    }
}

impl Default for ShapleySampling {
    fn default() -> Self {
        Self::from_values(&Values::new()).expect("the defaults are valid")
    }
}

/// Order `k` of `n` tokens (Fisher–Yates from its own stream).
fn order(seed: u64, k: usize, n: usize) -> Vec<usize> {
    let mut rng = Rng::for_sample(seed, k as u64);
    let mut perm: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        perm.swap(i, rng.index(i + 1));
    }
    perm
}

/// `s! (n − s − 1)! / n!`: the weight of a coalition of `s` others in token `i`'s value.
fn shapley_weight(s: usize, n: usize) -> f64 {
    let fact = |m: usize| (1..=m).map(|v| v as f64).product::<f64>();
    fact(s) * fact(n - s - 1) / fact(n)
}

impl Method for ShapleySampling {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn run(&self, p: &Prepared) -> Result<Attribution> {
        let n = p.ids.len();
        let b = p.baseline(&self.baseline)?.to_vec()?;
        let (scores, f_x, f_b) = if self.exact {
            if n > MAX_EXACT_TOKENS {
                return Err(Error::InvalidArgument(format!(
                    "shapley-sampling --exact runs every coalition, 2^tokens forward passes: at most {MAX_EXACT_TOKENS} tokens, and this prompt has {n}"
                )));
            }
            let f = coalitions::scores(p, &b, 1 << n, |mask, t| mask >> t & 1 == 1)?;
            let scores: Vec<f32> = (0..n)
                .map(|i| {
                    (0..1usize << n)
                        .filter(|s| s >> i & 1 == 0)
                        .map(|s| {
                            let w = shapley_weight(s.count_ones() as usize, n);
                            w * (f[s | 1 << i] as f64 - f[s] as f64)
                        })
                        .sum::<f64>() as f32
                })
                .collect();
            (scores, f[(1 << n) - 1], f[0])
        } else {
            // Order k's coalitions: its first j tokens, j = 0..=n.
            // Position of each token in each order.
            let rank: Vec<Vec<usize>> = (0..self.samples)
                .map(|k| {
                    let mut r = vec![0; n];
                    for (j, &t) in order(self.seed, k, n).iter().enumerate() {
                        r[t] = j;
                    }
                    r
                })
                .collect();
            let f = coalitions::scores(p, &b, self.samples * (n + 1), |index, t| {
                rank[index / (n + 1)][t] < index % (n + 1)
            })?;
            let mut sum = vec![0.0f64; n];
            for (k, fk) in f.chunks(n + 1).enumerate() {
                for (j, &t) in order(self.seed, k, n).iter().enumerate() {
                    sum[t] += fk[j + 1] as f64 - fk[j] as f64;
                }
            }
            let scores = sum
                .iter()
                .map(|v| (v / self.samples as f64) as f32)
                .collect();
            (scores, f[n], f[0])
        };
        let mut a = p.token_level_referenced(INFO.name, scores, f_x, f_b);
        if self.exact {
            a.set_extra("exact", true);
        } else {
            a.set_extra("samples", self.samples);
            a.set_extra("seed", self.seed);
        }
        Ok(a)
    }
}
