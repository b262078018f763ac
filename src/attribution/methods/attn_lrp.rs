//! AttnLRP (Achtibat et al. 2024): LRP-ε on linear layers, with rules for softmax, the
//! bilinear attention products, gates and normalisation that keep relevance conserved.

use super::common;
use crate::attribution::engine::single_pass::SinglePass;
use crate::attribution::{Family, MethodInfo, TokenScore, Values};
use crate::autodiff::RuleSet;
use crate::error::Result;
use crate::rules::Lrp;

#[derive(Clone, Copy, Debug)]
pub struct AttnLrp {
    pub epsilon: f32,
}

impl AttnLrp {
    pub fn from_values(v: &Values) -> Result<Self> {
        Ok(AttnLrp {
            epsilon: v.get(&common::EPSILON)?,
        })
    }
}

impl Default for AttnLrp {
    fn default() -> Self {
        Self::from_values(&Values::new()).expect("the defaults are valid")
    }
}

pub static INFO: MethodInfo = MethodInfo {
    name: "attnlrp",
    aliases: &[],
    summary: "AttnLRP (Achtibat et al. 2024)",
    cost: "1 forward + 1 backward",
    family: Family::Rule,
    options: &[common::EPSILON],
    build: |v| Ok(Box::new(AttnLrp::from_values(v)?)),
};

impl SinglePass for AttnLrp {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn rules(&self) -> Box<dyn RuleSet> {
        Box::new(Lrp::attn_lrp(self.epsilon))
    }

    fn times_input(&self) -> bool {
        true
    }

    fn token_score(&self) -> TokenScore {
        TokenScore::Sum
    }
}
