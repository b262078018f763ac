//! Integrated gradients: `(x − x′) ⊙ Σ_k w_k ∇F(x′ + α_k (x − x′))`.
//!
//! All path points of a chunk are built on the device in one op and run as one batch through a
//! forward and a backward; the quadrature-weighted sum over steps is reduced on the device, and
//! chunks run concurrently where the backend allows (`chunks::run`).

use super::common;
use crate::attribution::engine::{adaptive, chunks, evaluate, Baseline, Prepared};
use crate::attribution::{
    Attribution, Family, Kind, MapAt, Method, MethodInfo, OptionSpec, Quadrature, TokenScore,
    Values,
};
use crate::error::Result;
use crate::ops;
use crate::tensor::Tensor;

/// Integrated gradients from `baseline`: `steps` fixed quadrature nodes, or adaptive
/// refinement to `tolerance`.
#[derive(Clone, Debug)]
pub struct IntegratedGradients {
    pub steps: usize,
    pub quadrature: Quadrature,
    pub baseline: Baseline,
    /// Refine until `|delta| ≤ tolerance · |F(x) − F(x′)|` (adaptive; `steps` is then unused).
    pub tolerance: Option<f32>,
    /// The evaluation budget of adaptive integration.
    pub max_steps: usize,
}

const STEPS: OptionSpec = common::steps("50");
const BASELINE: OptionSpec = common::baseline("zero");
const TOLERANCE: OptionSpec = OptionSpec::new(
    "tolerance",
    Kind::Number,
    None,
    "refine adaptively until |delta| <= T * |F(x) - F(x')| (instead of fixed --steps)",
)
.within(|t| t > 0.0 && t.is_finite(), "a positive number");
const MAX_STEPS: OptionSpec = OptionSpec::new(
    "max-steps",
    Kind::Count,
    Some("600"),
    "the evaluation budget of --tolerance",
);

pub static INFO: MethodInfo = MethodInfo {
    name: "integrated-gradients",
    aliases: &["ig"],
    summary: "path integral of the gradient from --baseline (--steps, or --tolerance)",
    cost: "steps forward+backward, batched, + 1 forward of x and x'",
    family: Family::Path,
    options: &[STEPS, common::QUADRATURE, BASELINE, TOLERANCE, MAX_STEPS],
    build: |v| Ok(Box::new(IntegratedGradients::from_values(v)?)),
};

impl IntegratedGradients {
    pub fn from_values(v: &Values) -> Result<Self> {
        let tolerance: Option<f32> = v.get_opt(&TOLERANCE)?;
        // Adaptive integration chooses its own points: fixed steps and nodes are not read
        // (and so are reported as ignored when given), nor is the budget without it.
        let adaptive = tolerance.is_some();
        Ok(IntegratedGradients {
            steps: if adaptive {
                STEPS.default_value()
            } else {
                v.positive(&STEPS)?
            },
            quadrature: if adaptive {
                Quadrature::GaussLegendre
            } else {
                v.get(&common::QUADRATURE)?
            },
            baseline: v.get(&BASELINE)?,
            tolerance,
            max_steps: if adaptive {
                v.get(&MAX_STEPS)?
            } else {
                MAX_STEPS.default_value()
            },
        })
    }
}

impl Default for IntegratedGradients {
    fn default() -> Self {
        Self::from_values(&Values::new()).expect("the defaults are valid")
    }
}

impl Method for IntegratedGradients {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn run(&self, p: &Prepared) -> Result<Attribution> {
        let baseline = p.baseline(&self.baseline)?;
        let mut a = match self.tolerance {
            None => {
                let r = integrated_gradients(p, &p.x, &baseline, self)?;
                let mut a = p.referenced(INFO.name, r.map, r.f_x, r.f_baseline);
                a.set_extra("steps", self.steps);
                a.set_extra("quadrature", self.quadrature.name());
                a
            }
            Some(tol) => {
                let r = adaptive::adaptive_ig(p, &baseline, tol, self.max_steps)?;
                let mut a = p.referenced(INFO.name, r.map, r.f_x, r.f_baseline);
                a.set_extra("steps", r.gradient_evaluations);
                a.set_extra("evaluations", r.gradient_evaluations);
                a.set_extra("quadrature", "adaptive-simpson");
                if !r.converged {
                    a.warnings.push(format!(
                        "adaptive IG did not reach the tolerance {tol} within --max-steps {} evaluations",
                        self.max_steps
                    ));
                }
                a
            }
        };
        p.warn_discontinuity(&baseline, &mut a)?;
        Ok(a)
    }

    fn as_map(&self) -> Option<&dyn MapAt> {
        Some(self)
    }

    fn delta_hint(&self) -> &'static str {
        match self.tolerance {
            None => "; try more --steps, or --tolerance for adaptive integration",
            Some(_) => "",
        }
    }
}

/// IG at any input (SmoothGrad's noisy copies), from the same baseline, with fixed steps.
impl MapAt for IntegratedGradients {
    fn maps(&self, p: &Prepared, xs: &Tensor) -> Result<Vec<f32>> {
        let baseline = p.baseline(&self.baseline)?;
        let inner = p.quiet();
        let (rows, n) = (xs.dims()[0], p.x.shape().numel());
        let flat = xs.to_vec()?;
        let mut all = Vec::with_capacity(rows * n);
        for row in flat.chunks(n) {
            let x = Tensor::from_vec(row.to_vec(), p.x.shape().clone(), p.x.device())?;
            all.extend(integrated_gradients(&inner, &x, &baseline, self)?.map);
        }
        Ok(all)
    }

    fn rows_per_input(&self) -> usize {
        self.steps
    }

    fn token_score(&self) -> TokenScore {
        TokenScore::Sum
    }
}

pub struct Out {
    pub map: Vec<f32>,
    pub f_x: f32,
    pub f_baseline: f32,
}

/// IG of the target at `x` (the prompt's embeddings, or a noisy copy) from `baseline`.
pub fn integrated_gradients(
    p: &Prepared,
    x: &Tensor,
    baseline: &Tensor,
    opts: &IntegratedGradients,
) -> Result<Out> {
    let steps = opts.steps;
    let (alphas, weights) = opts.quadrature.nodes(steps)?;
    let (chunk, concurrent) = chunks::for_gradients(p, p.batch_size, steps);
    let work = |start: usize, end: usize| -> Result<Tensor> {
        let a: Vec<f32> = alphas[start..end].iter().map(|&a| a as f32).collect();
        let w: Vec<f32> = weights[start..end].iter().map(|&w| w as f32).collect();
        let points = ops::interpolate(x, baseline, &a)?;
        let (_, grads) = p.gradients(&points)?;
        ops::weighted_batch_sum(&grads, &w)
    };
    let avg_grad = chunks::run(
        steps,
        chunk,
        concurrent,
        work,
        chunks::add_tensors,
        p.watch(),
    )?
    .to_vec()?;

    // F at both ends, in one batch.
    let ends = ops::interpolate(x, baseline, &[1.0, 0.0])?;
    let f = evaluate::scores(p.model, &p.target, &ends)?;
    let (xv, b) = (x.to_vec()?, baseline.to_vec()?);
    let map = avg_grad
        .iter()
        .zip(xv.iter().zip(&b))
        .map(|(g, (x, b))| g * (x - b))
        .collect();
    Ok(Out {
        map,
        f_x: f[0],
        f_baseline: f[1],
    })
}
