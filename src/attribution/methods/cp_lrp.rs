//! CP-LRP (Ali et al. 2022): AttnLRP's rules, with the attention weights, Q, K and gates
//! treated as constants, so relevance flows only through the values.

use super::common;
use crate::attribution::engine::single_pass::SinglePass;
use crate::attribution::{Family, MethodInfo, TokenScore, Values};
use crate::autodiff::RuleSet;
use crate::error::Result;
use crate::rules::Lrp;

#[derive(Clone, Copy, Debug)]
pub struct CpLrp {
    pub epsilon: f32,
}

impl CpLrp {
    pub fn from_values(v: &Values) -> Result<Self> {
        Ok(CpLrp {
            epsilon: v.get(&common::EPSILON)?,
        })
    }
}

impl Default for CpLrp {
    fn default() -> Self {
        Self::from_values(&Values::new()).expect("the defaults are valid")
    }
}

pub static INFO: MethodInfo = MethodInfo {
    name: "cp-lrp",
    aliases: &[],
    summary: "AttnLRP without relevance through Q, K and gates",
    cost: "1 forward + 1 backward",
    family: Family::Rule,
    options: &[common::EPSILON],
    build: |v| Ok(Box::new(CpLrp::from_values(v)?)),
};

impl SinglePass for CpLrp {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn rules(&self) -> Box<dyn RuleSet> {
        Box::new(Lrp::cp_lrp(self.epsilon))
    }

    fn times_input(&self) -> bool {
        true
    }

    fn token_score(&self) -> TokenScore {
        TokenScore::Sum
    }
}
