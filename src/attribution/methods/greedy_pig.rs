//! Greedy PIG (Axiotis et al. 2023): rounds of integrated gradients. Each round runs IG from a
//! baseline in which the tokens selected so far are fixed at their real embeddings (so they get
//! no further attribution), selects the `per_round` unselected tokens with the largest
//! attribution, and records their rows of that round's map. It stops once `budget` tokens are
//! selected; tokens never selected score 0. One round that selects every token is IG. Rounds are
//! sequential; each round's path points run batched.

use super::common;
use super::integrated_gradients::{self, IntegratedGradients};
use crate::attribution::engine::{Baseline, Prepared};
use crate::attribution::{
    Attribution, Family, Kind, Method, MethodInfo, OptionSpec, Quadrature, Values,
};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

#[derive(Clone, Debug)]
pub struct GreedyPig {
    pub steps: usize,
    pub quadrature: Quadrature,
    pub baseline: Baseline,
    /// Tokens selected per round (`None`: a quarter of the prompt, rounded up).
    pub per_round: Option<usize>,
    /// Tokens selected in all (`None`: every token).
    pub budget: Option<usize>,
}

const STEPS: OptionSpec = common::steps("50");
const BASELINE: OptionSpec = common::baseline("zero");
const PER_ROUND: OptionSpec = OptionSpec::new(
    "per-round",
    Kind::Count,
    None,
    "tokens selected per round (default: a quarter of the prompt)",
);
const BUDGET: OptionSpec = OptionSpec::new(
    "budget",
    Kind::Count,
    None,
    "tokens selected in all (default: every token)",
);

pub static INFO: MethodInfo = MethodInfo {
    name: "greedy-pig",
    aliases: &[],
    summary: "rounds of IG fixing the top --per-round tokens, up to --budget",
    cost: "rounds x steps forward+backward; each round batched",
    family: Family::Path,
    options: &[STEPS, common::QUADRATURE, BASELINE, PER_ROUND, BUDGET],
    build: |v| Ok(Box::new(GreedyPig::from_values(v)?)),
};

impl GreedyPig {
    pub fn from_values(v: &Values) -> Result<Self> {
        Ok(GreedyPig {
            steps: v.positive(&STEPS)?,
            quadrature: v.get(&common::QUADRATURE)?,
            baseline: v.get(&BASELINE)?,
            per_round: v.get_opt(&PER_ROUND)?,
            budget: v.get_opt(&BUDGET)?,
        })
    }
}

impl Default for GreedyPig {
    fn default() -> Self {
        Self::from_values(&Values::new()).expect("the defaults are valid")
    }
}

impl Method for GreedyPig {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn run(&self, p: &Prepared) -> Result<Attribution> {
        let baseline = p.baseline(&self.baseline)?;
        let r = greedy_pig(p, &baseline, self)?;
        // A path method like the others: its delta is reported and checked.
        let mut a = p.referenced(INFO.name, r.map, r.f_x, r.f_baseline);
        a.set_extra("steps", self.steps);
        a.set_extra("quadrature", self.quadrature.name());
        a.set_extra("selection_order", r.order);
        a.set_extra("rounds", r.rounds);
        p.warn_discontinuity(&baseline, &mut a)?;
        Ok(a)
    }
}

pub struct Out {
    pub map: Vec<f32>,
    pub f_x: f32,
    pub f_baseline: f32,
    /// The selected tokens, in order of selection.
    pub order: Vec<usize>,
    pub rounds: usize,
}

pub fn greedy_pig(p: &Prepared, baseline: &Tensor, opts: &GreedyPig) -> Result<Out> {
    let (len, d) = (p.ids.len(), p.model.hidden_size());
    let per_round = opts.per_round.unwrap_or(len.div_ceil(4));
    let budget = opts.budget.unwrap_or(len);
    if per_round == 0 || budget == 0 || budget > len {
        return Err(Error::InvalidArgument(format!(
            "greedy-pig: --per-round {per_round} must be at least 1 and --budget {budget} between 1 and the prompt's {len} tokens"
        )));
    }
    let x = p.x.to_vec()?;
    let mut base = baseline.to_vec()?;
    let mut map = vec![0.0f32; len * d];
    let mut order = Vec::with_capacity(budget);
    let (mut f_x, mut f_baseline, mut rounds) = (0.0, 0.0, 0);
    // Progress counts rounds; IG's own progress is per chunk within a round.
    let inner = p.quiet();
    // Each round's baseline is passed in; IG's own is not read.
    let ig = IntegratedGradients {
        steps: opts.steps,
        quadrature: opts.quadrature,
        ..Default::default()
    };
    while order.len() < budget {
        let b = Tensor::from_vec(base.clone(), [len, d], p.x.device())?;
        let r = integrated_gradients::integrated_gradients(&inner, &p.x, &b, &ig)?;
        if rounds == 0 {
            (f_x, f_baseline) = (r.f_x, r.f_baseline);
        }
        rounds += 1;
        let score = |i: usize| {
            r.map[i * d..(i + 1) * d]
                .iter()
                .map(|&v| v as f64)
                .sum::<f64>()
        };
        let mut free: Vec<usize> = (0..len).filter(|i| !order.contains(i)).collect();
        // Largest attribution first; ties by position, so the order is deterministic.
        free.sort_by(|&a, &b| score(b).total_cmp(&score(a)).then(a.cmp(&b)));
        for &i in free.iter().take(per_round.min(budget - order.len())) {
            map[i * d..(i + 1) * d].copy_from_slice(&r.map[i * d..(i + 1) * d]);
            base[i * d..(i + 1) * d].copy_from_slice(&x[i * d..(i + 1) * d]);
            order.push(i);
        }
        p.report_progress(order.len(), budget)?;
    }
    Ok(Out {
        map,
        f_x,
        f_baseline,
        order,
        rounds,
    })
}
