//! Guided integrated gradients (Kapishnikov et al. 2021): the path from `x′` to `x` is chosen
//! as it is walked. At step `s` of `S`, the features with the smallest `|∇F|` (a `fraction` of
//! them per inner move) advance towards `x` until the remaining L1 distance is `(1 − s/S)` of the
//! total, every feature kept within `max_dist` (in α) of the straight line's progress; each move
//! adds `(x_new − x_old) ⊙ ∇F(x_step)`, the gradient at the step's start, as in the reference
//! implementation. Completeness holds up to that left Riemann error, which shrinks with 1/steps
//! and with `max_dist` (one move can carry a feature across the whole band, 2 × max_dist);
//! `max_dist = 0` is IG with the left Riemann rule. One gradient per step, one step after the
//! other: each depends on the last.
//!
//! Where the gradient at a step's start overflows f32 (exactly at a zero baseline on an RMSNorm
//! model, every layer's norm scales it by 1/√ε: 316³⁰ on SmolLM2, where the reference gives
//! NaN), every feature ties, so that step's move is straight, and its moves take the gradient
//! at the step's end (the next step's), as the right Riemann rule would.

use super::common;
use crate::attribution::engine::{Baseline, Prepared};
use crate::attribution::{Attribution, Family, Kind, Method, MethodInfo, OptionSpec, Values};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

#[derive(Clone, Debug)]
pub struct GuidedIg {
    pub steps: usize,
    pub baseline: Baseline,
    /// The fraction of features moved per inner step.
    pub fraction: f32,
    /// How far (in α) a feature may run ahead of or behind the straight line.
    pub max_dist: f32,
}

const STEPS: OptionSpec = common::steps("50");
const BASELINE: OptionSpec = common::baseline("zero");
const FRACTION: OptionSpec = OptionSpec::new(
    "fraction",
    Kind::Number,
    Some("0.25"),
    "the fraction of features moved per inner step",
);
const MAX_DIST: OptionSpec = OptionSpec::new(
    "max-dist",
    Kind::Number,
    Some("0.02"),
    "how far (in alpha) a feature may stray from the straight line's progress",
);

pub static INFO: MethodInfo = MethodInfo {
    name: "guided-ig",
    aliases: &[],
    summary: "IG along a gradient-guided path (--fraction, --max-dist)",
    cost: "steps forward+backward, one at a time (each step needs the last)",
    family: Family::Path,
    options: &[STEPS, BASELINE, FRACTION, MAX_DIST],
    build: |v| Ok(Box::new(GuidedIg::from_values(v)?)),
};

impl GuidedIg {
    pub fn from_values(v: &Values) -> Result<Self> {
        Ok(GuidedIg {
            steps: v.positive(&STEPS)?,
            baseline: v.get(&BASELINE)?,
            fraction: v.get(&FRACTION)?,
            max_dist: v.get(&MAX_DIST)?,
        })
    }
}

impl Default for GuidedIg {
    fn default() -> Self {
        Self::from_values(&Values::new()).expect("the defaults are valid")
    }
}

impl Method for GuidedIg {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn run(&self, p: &Prepared) -> Result<Attribution> {
        let baseline = p.baseline(&self.baseline)?;
        let r = guided_ig(p, &baseline, self)?;
        let mut a = p.referenced(INFO.name, r.map, r.f_x, r.f_baseline);
        a.set_extra("steps", self.steps);
        p.warn_discontinuity(&baseline, &mut a)?;
        Ok(a)
    }
}

pub struct Out {
    pub map: Vec<f32>,
    pub f_x: f32,
    pub f_baseline: f32,
}

/// Two L1 distances this close are equal (as in the reference implementation).
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= (1e-9 * a.abs().max(b.abs())).max(1e-9)
}

/// `attr += moved ⊙ g`.
fn add_moves(attr: &mut [f64], moved: &[f64], g: &[f64]) {
    attr.iter_mut()
        .zip(moved.iter().zip(g))
        .for_each(|(a, (m, g))| *a += m * g);
}

fn l1(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| (a - b).abs()).sum()
}

pub fn guided_ig(p: &Prepared, baseline: &Tensor, opts: &GuidedIg) -> Result<Out> {
    if !(opts.fraction > 0.0 && opts.fraction <= 1.0) {
        return Err(Error::InvalidArgument(format!(
            "guided-ig: --fraction {} must be in (0, 1]",
            opts.fraction
        )));
    }
    if !(opts.max_dist >= 0.0 && opts.max_dist <= 1.0) {
        return Err(Error::InvalidArgument(format!(
            "guided-ig: --max-dist {} must be in [0, 1]",
            opts.max_dist
        )));
    }
    let x: Vec<f64> = p.x.to_vec()?.into_iter().map(f64::from).collect();
    let b: Vec<f64> = baseline.to_vec()?.into_iter().map(f64::from).collect();
    let n = x.len();
    let steps = opts.steps;
    let (fraction, max_dist) = (opts.fraction as f64, opts.max_dist as f64);
    let at =
        |alpha: f64| -> Vec<f64> { b.iter().zip(&x).map(|(b, x)| b + (x - b) * alpha).collect() };
    let l1_total = l1(&x, &b);
    let mut cur = b.clone();
    let mut attr = vec![0.0f64; n];
    let mut f_baseline = 0.0;
    // Moves of a step whose start gradient overflowed, waiting for the next gradient.
    let mut deferred: Option<Vec<f64>> = None;
    for step in 0..steps {
        let point = Tensor::from_vec(
            cur.iter().map(|&v| v as f32).collect(),
            [1, p.ids.len(), p.model.hidden_size()],
            p.x.device(),
        )?;
        let (f, g) = p.gradients(&point)?;
        if step == 0 {
            f_baseline = f[0];
        }
        let g: Vec<f64> = g.to_vec()?.into_iter().map(f64::from).collect();
        // The last step's moves, if their own gradient overflowed, take this one (below).
        if let Some(moved) = deferred.take() {
            add_moves(&mut attr, &moved, &g);
        }
        let overflowed = g.iter().any(|v| !v.is_finite());
        let alpha = (step + 1) as f64 / steps as f64;
        let x_min = at((alpha - max_dist).max(0.0));
        let x_max = at((alpha + max_dist).min(1.0));
        let alpha_min = (alpha - max_dist).max(0.0);
        let l1_target = l1_total * (1.0 - alpha);
        loop {
            let old = cur.clone();
            // Features behind the band catch up with its trailing edge.
            for j in 0..n {
                if x[j] != b[j] && (cur[j] - b[j]) / (x[j] - b[j]) < alpha_min {
                    cur[j] = x_min[j];
                }
            }
            let l1_cur = l1(&x, &cur);
            let mut done = close(l1_target, l1_cur);
            if !done {
                // Move the `fraction` of features with the smallest |gradient| among those not
                // yet at the band's leading edge; features there count as infinitely important.
                // An overflowed gradient ranks nothing: every feature ties, the move is straight.
                let importance = |j: usize| if overflowed { 0.0 } else { g[j].abs() };
                let key = |j: usize| {
                    if cur[j] == x_max[j] {
                        f64::INFINITY
                    } else {
                        importance(j)
                    }
                };
                let mut sorted: Vec<f64> = (0..n).map(key).collect();
                let q = ((fraction * (n - 1) as f64).floor() as usize).min(n - 1);
                let threshold = *sorted.select_nth_unstable_by(q, f64::total_cmp).1;
                let chosen: Vec<usize> = (0..n)
                    .filter(|&j| cur[j] != x_max[j] && importance(j) <= threshold)
                    .collect();
                let l1_chosen: f64 = chosen.iter().map(|&j| (cur[j] - x_max[j]).abs()).sum();
                if l1_chosen == 0.0 {
                    done = true; // nothing left to move: the band has reached x
                } else {
                    let gamma = (l1_cur - l1_target) / l1_chosen;
                    for &j in &chosen {
                        cur[j] = if gamma > 1.0 {
                            x_max[j]
                        } else {
                            cur[j] + gamma * (x_max[j] - cur[j])
                        };
                    }
                    done = gamma <= 1.0;
                }
            }
            let moved: Vec<f64> = cur.iter().zip(&old).map(|(c, o)| c - o).collect();
            if overflowed {
                let d = deferred.get_or_insert_with(|| vec![0.0; n]);
                d.iter_mut().zip(&moved).for_each(|(d, m)| *d += m);
            } else {
                add_moves(&mut attr, &moved, &g);
            }
            if done {
                break;
            }
        }
        p.report_progress(step + 1, steps)?;
    }
    let f_x = match deferred {
        // The last step overflowed too: its moves take the gradient at x.
        Some(moved) => {
            let end = Tensor::from_vec(
                cur.iter().map(|&v| v as f32).collect(),
                [1, p.ids.len(), p.model.hidden_size()],
                p.x.device(),
            )?;
            let (f, g) = p.gradients(&end)?;
            let g: Vec<f64> = g.to_vec()?.into_iter().map(f64::from).collect();
            add_moves(&mut attr, &moved, &g);
            f[0]
        }
        None => p.score_x()?,
    };
    Ok(Out {
        map: attr.into_iter().map(|v| v as f32).collect(),
        f_x,
        f_baseline,
    })
}
