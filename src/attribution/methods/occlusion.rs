//! Occlusion: `F(x) − F(x with a window of tokens replaced by the baseline)`, for every window
//! of `window` tokens; a token's score is the mean over the windows that cover it. All
//! occluded copies run as forward passes only, batched (`coalitions::scores`).

use super::common;
use crate::attribution::engine::{coalitions, Baseline, Prepared};
use crate::attribution::{Attribution, Family, Kind, Method, MethodInfo, OptionSpec, Values};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

#[derive(Clone, Debug)]
pub struct Occlusion {
    pub baseline: Baseline,
    /// Tokens replaced at once.
    pub window: usize,
}

const BASELINE: OptionSpec = common::baseline("zero");
const WINDOW: OptionSpec = OptionSpec::new(
    "window",
    Kind::Count,
    Some("1"),
    "how many consecutive tokens are replaced at once",
);

pub static INFO: MethodInfo = MethodInfo {
    name: "occlusion",
    aliases: &[],
    summary: "F(x) - F(a --window of tokens at --baseline), averaged",
    cost: "1 forward of tokens - window + 1 occluded copies, batched",
    family: Family::Perturbation,
    options: &[BASELINE, WINDOW],
    build: |v| Ok(Box::new(Occlusion::from_values(v)?)),
};

impl Occlusion {
    pub fn from_values(v: &Values) -> Result<Self> {
        Ok(Occlusion {
            baseline: v.get(&BASELINE)?,
            window: v.get(&WINDOW)?,
        })
    }
}

impl Default for Occlusion {
    fn default() -> Self {
        Self::from_values(&Values::new()).expect("the defaults are valid")
    }
}

impl Method for Occlusion {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn run(&self, p: &Prepared) -> Result<Attribution> {
        let baseline = p.baseline(&self.baseline)?;
        let r = occlusion(p, &baseline, self.window)?;
        Ok(p.token_level(INFO.name, r.scores, r.f_x))
    }
}

pub struct Out {
    /// One score per token.
    pub scores: Vec<f32>,
    pub f_x: f32,
}

pub fn occlusion(p: &Prepared, baseline: &Tensor, window: usize) -> Result<Out> {
    let len = p.ids.len();
    if window == 0 || window > len {
        return Err(Error::InvalidArgument(format!(
            "--window {window} must be between 1 and the prompt's {len} tokens"
        )));
    }
    let b = baseline.to_vec()?;
    let windows = len - window + 1;
    let f_x = p.score_x()?;
    // Copy `s` has the window starting at token `s` at the baseline.
    let kept = |s: usize, t: usize| t < s || t >= s + window;
    let drops: Vec<f32> = coalitions::scores(p, &b, windows, kept)?
        .into_iter()
        .map(|f| f_x - f)
        .collect();
    let scores = (0..len)
        .map(|i| {
            let covering: Vec<f32> = (i.saturating_sub(window - 1)..=i.min(windows - 1))
                .map(|s| drops[s])
                .collect();
            covering.iter().sum::<f32>() / covering.len() as f32
        })
        .collect();
    Ok(Out { scores, f_x })
}
