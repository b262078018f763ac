//! LRP-γ (Montavon et al. 2019): LRP-ε with positive contributions of each linear layer
//! weighted `1 + γ`, which favours evidence for the target over evidence against it.

use super::common;
use crate::attribution::engine::single_pass::SinglePass;
use crate::attribution::{Family, Kind, MethodInfo, OptionSpec, TokenScore, Values};
use crate::autodiff::RuleSet;
use crate::error::Result;
use crate::rules::Lrp;

#[derive(Clone, Copy, Debug)]
pub struct LrpGamma {
    pub gamma: f32,
    pub epsilon: f32,
}

const GAMMA: OptionSpec = OptionSpec::new(
    "gamma",
    Kind::Number,
    Some("0.25"),
    "LRP-gamma's extra weight on positive contributions",
)
.within(
    |g| (0.0..=1000.0).contains(&g),
    "a number from 0 to 1000 (LRP-γ's extra weight on positive contributions)",
);

pub static INFO: MethodInfo = MethodInfo {
    name: "lrp-gamma",
    aliases: &[],
    summary: "LRP, gamma rule on linear layers",
    cost: "1 forward + 1 backward (2 extra products per linear layer)",
    family: Family::Rule,
    options: &[GAMMA, common::EPSILON],
    build: |v| Ok(Box::new(LrpGamma::from_values(v)?)),
};

impl LrpGamma {
    pub fn from_values(v: &Values) -> Result<Self> {
        Ok(LrpGamma {
            gamma: v.get(&GAMMA)?,
            epsilon: v.get(&common::EPSILON)?,
        })
    }
}

impl Default for LrpGamma {
    fn default() -> Self {
        Self::from_values(&Values::new()).expect("the defaults are valid")
    }
}

impl SinglePass for LrpGamma {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn rules(&self) -> Box<dyn RuleSet> {
        Box::new(Lrp::gamma(self.gamma, self.epsilon))
    }

    fn times_input(&self) -> bool {
        true
    }

    fn token_score(&self) -> TokenScore {
        TokenScore::Sum
    }

    fn non_finite_hint(&self) -> Option<&'static str> {
        // Measured on SmolLM2: 1e-6 overflows on some prompts, 1e-2 gives finite scores.
        Some("the gamma rule's denominators come close to 0 and the relevance overflows through the layers: try a larger --epsilon, such as 1e-2")
    }
}
