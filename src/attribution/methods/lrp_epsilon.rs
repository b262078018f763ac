//! LRP-ε (Bach et al. 2015): relevance through each linear layer in proportion to the
//! contributions, with ε stabilising the division.

use super::common;
use crate::attribution::engine::single_pass::SinglePass;
use crate::attribution::{Family, MethodInfo, TokenScore, Values};
use crate::autodiff::RuleSet;
use crate::error::Result;
use crate::rules::Lrp;

#[derive(Clone, Copy, Debug)]
pub struct LrpEpsilon {
    pub epsilon: f32,
}

impl LrpEpsilon {
    pub fn from_values(v: &Values) -> Result<Self> {
        Ok(LrpEpsilon {
            epsilon: v.get(&common::EPSILON)?,
        })
    }
}

impl Default for LrpEpsilon {
    fn default() -> Self {
        Self::from_values(&Values::new()).expect("the defaults are valid")
    }
}

pub static INFO: MethodInfo = MethodInfo {
    name: "lrp-epsilon",
    aliases: &[],
    summary: "LRP, epsilon rule on linear layers",
    cost: "1 forward + 1 backward",
    family: Family::Rule,
    options: &[common::EPSILON],
    build: |v| Ok(Box::new(LrpEpsilon::from_values(v)?)),
};

impl SinglePass for LrpEpsilon {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn rules(&self) -> Box<dyn RuleSet> {
        Box::new(Lrp::epsilon(self.epsilon))
    }

    fn times_input(&self) -> bool {
        true
    }

    fn token_score(&self) -> TokenScore {
        TokenScore::Sum
    }
}
